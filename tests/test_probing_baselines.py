"""probing/baselines.py against independent facts: the MLP probe learns an XOR no linear probe can; the
variance-matched directions are unit, orthogonal to the given direction and matched in variance where that
is possible; the online code length equals a hand-computed two-block code and falls with easier labels."""

from __future__ import annotations

import math

import pytest
import torch

from tutorial_lib import probing
from tutorial_lib.validation import TutorialInputError


def test_mlp_probe_reads_xor_which_a_linear_probe_cannot():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(800, 2, generator=g)
    y = ((X[:, 0] > 0) ^ (X[:, 1] > 0)).long()
    assert probing.mlp_probe_accuracy(X[:600], y[:600], X[600:], y[600:]) > 0.9
    W, b = probing.train_logistic_probe(X[:600], y[:600], 2)
    assert ((X[600:] @ W + b).argmax(-1) == y[600:]).float().mean() < 0.7


def test_variance_matched_directions_are_orthogonal_unit_and_matched():
    g = torch.Generator().manual_seed(1)
    X = torch.randn(500, 10, generator=g) * torch.tensor([3.0, 2.0, 2.0, 1.0, 1, 1, 1, 1, 1, 1])
    direction = torch.zeros(10)
    direction[1] = 1.0  # variance 4; the directions of variance 4 away from it lie in the span of axes 0 and 2
    dirs = probing.variance_matched_directions(X, direction, n=4, k=3)
    torch.testing.assert_close(dirs.norm(dim=-1), torch.ones(4))
    assert (dirs @ direction).abs().max() < 1e-5
    variances = ((X - X.mean(0)) @ dirs.T).var(0)
    assert ((variances - 4.0).abs() < 0.8).all(), variances


def test_online_code_length_by_hand():
    g = torch.Generator().manual_seed(2)
    X = torch.randn(40, 3, generator=g)
    y = (X[:, 0] > 0).long()
    got = probing.online_code_length(X, y, 2, fractions=(0.5, 1.0), seed=3)
    order = torch.randperm(40, generator=torch.Generator().manual_seed(3))
    Xo, yo = X[order], y[order]
    W, b = probing.train_logistic_probe(Xo[:20], yo[:20], 2)
    second = -torch.log_softmax(Xo[20:] @ W + b, -1).gather(1, yo[20:, None]).sum().item() / math.log(2)
    assert got["online"] == pytest.approx(20 + second, rel=1e-5)
    assert got["uniform"] == pytest.approx(40.0) and got["blocks"][0] == pytest.approx(20.0)
    noisy = y[torch.randperm(40, generator=torch.Generator().manual_seed(4))]
    assert probing.online_code_length(X, noisy, 2)["compression"] < got["compression"]


def test_bad_input_is_named():
    with pytest.raises(TutorialInputError, match="fractions"):
        probing.online_code_length(torch.randn(10, 2), torch.zeros(10, dtype=torch.long), 2, fractions=(0.5, 0.9))
    with pytest.raises(TutorialInputError, match="direction"):
        probing.variance_matched_directions(torch.randn(10, 3), torch.zeros(3))
