"""tutorial_lib.explain.absorption: the planted hierarchy is what it says, main_latent picks the best F1,
and absorption_rate counts a hand-built absorbed row and nothing else. (The trained-SAE claim and its
control are in tests/test_claims_08.py.)"""

from __future__ import annotations

import pytest
import torch

from tutorial_lib import explain as E
from tutorial_lib.validation import TutorialInputError


def test_hierarchy_children_imply_the_parent_and_the_control_does_not():
    h = E.hierarchical_features(4000, seed=0)
    assert bool((h.parent | ~h.child).all())  # a child only with its parent
    assert torch.allclose(h.directions @ h.directions.T, torch.eye(len(h.directions)), atol=1e-5)
    assert h.child[h.parent].float().mean().item() == pytest.approx(0.8, abs=0.05)
    control = E.hierarchical_features(4000, hierarchy=False, seed=0)
    assert (control.child & ~control.parent).any()
    assert control.child.float().mean().item() == pytest.approx(h.child.float().mean().item(), abs=0.03)


def test_main_latent_has_the_best_f1():
    label = torch.tensor([True, True, False, False])
    fires = torch.tensor([[True, True, True], [True, False, True], [True, False, False], [True, False, False]])
    assert E.main_latent(fires, label) == 2  # latent 0 fires everywhere, latent 1 misses one
    with pytest.raises(TutorialInputError, match="positives"):
        E.main_latent(fires, torch.zeros(4, dtype=torch.bool))


def test_absorption_rate_counts_rows_taken_over_by_a_latent_along_the_parent():
    direction = torch.tensor([1.0, 0.0, 0.0])
    decoder = torch.tensor([[1.0, 0.0, 0.0], [0.7, 0.7, 0.0], [0.0, 0.0, 1.0]])  # parent, child+parent, other
    codes = torch.tensor([[1.0, 0, 0], [1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0], [0, 0, 0], [0, 0, 1.0]])
    parent = torch.tensor([True, True, True, True, False, False])
    out = E.absorption_rate(codes, decoder, parent, direction)
    assert out == {"main": 0.0, "rate": 0.25, "recall": 0.5}  # row 2 absorbed; row 3's latent is off-direction
    assert E.absorption_rate(codes, decoder, parent, direction, min_cosine=0.8)["rate"] == 0.0
