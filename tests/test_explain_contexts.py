"""tutorial_lib.explain.contexts: max-activating, random-activating and non-activating contexts, the
shuffled control and the context's text, against direct computations on small tensors."""

from __future__ import annotations

import pytest
import torch

from tutorial_lib import explain as E
from tutorial_lib.validation import TutorialInputError


def _acts(device) -> torch.Tensor:
    acts = torch.zeros(3, 5, device=device)
    acts[0, 1], acts[1, 4], acts[2, 0], acts[2, 2] = 3.0, 5.0, 1.0, 2.0
    return acts


def test_max_activating_is_largest_first_and_stops_at_the_firing_ones(device):
    acts = _acts(device)
    assert E.max_activating(acts, 3).tolist() == [[1, 4], [0, 1], [2, 2]]
    assert len(E.max_activating(acts, 10)) == 4  # only four positions fire
    mask = torch.ones_like(acts, dtype=torch.bool)
    mask[1, 4] = False
    assert E.max_activating(acts, 1, mask).tolist() == [[0, 1]]


def test_random_and_non_activating_draw_from_the_right_positions(device):
    acts = _acts(device)
    fires = E.random_activating(acts, 10, seed=1)
    assert sorted(map(tuple, fires.tolist())) == [(0, 1), (1, 4), (2, 0), (2, 2)]
    held = E.random_activating(acts, 10, seed=1, exclude=E.max_activating(acts, 2))
    assert sorted(map(tuple, held.tolist())) == [(2, 0), (2, 2)]
    quiet = E.non_activating(acts, 100, seed=0)
    assert len(quiet) == 11 and bool((acts[quiet[:, 0], quiet[:, 1]] == 0).all())
    assert torch.equal(E.random_activating(acts, 2, seed=3), E.random_activating(acts, 2, seed=3))


def test_shuffled_activations_keep_the_values_and_the_masked_positions():
    acts = torch.arange(24.0).reshape(4, 6)
    mask = torch.rand(4, 6, generator=torch.Generator().manual_seed(0)) < 0.7
    out = E.shuffled_activations(acts, seed=0, mask=mask)
    assert torch.equal(out[~mask], acts[~mask])
    assert sorted(out[mask].tolist()) == sorted(acts[mask].tolist()) and not torch.equal(out, acts)


def test_context_text_marks_the_token():
    vocab = ["a", "b", "c", "d"]
    tokens = torch.tensor([[0, 1, 2, 3]])
    assert E.context_text(tokens, torch.tensor([0, 2]), vocab, before=1) == "b [[c]]"
    with pytest.raises(TutorialInputError, match="inside tokens"):
        E.context_text(tokens, (1, 0), vocab)
