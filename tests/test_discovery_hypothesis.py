"""tutorial_lib.discovery.hypothesis: Shi et al.'s tests on planted-2l, whose circuit is known. The true
circuit passes equivalence and minimality; without one of its edges it fails equivalence; with one extra
edge, minimality names exactly that edge. The HSIC statistic tells dependent from shuffled samples."""

from __future__ import annotations

import functools

import pytest
import torch

from tutorial_lib import organisms
from tutorial_lib import patching as P
from tutorial_lib.discovery import build_graph
from tutorial_lib.discovery import hypothesis as H
from tutorial_lib.organisms.planted import TRUE_EDGES, planted_pairs
from tutorial_lib.validation import TutorialInputError

EXTRA = ("a0.0", "a1.0.v")  # an edge outside the planted circuit


@functools.cache
def planted():
    model = organisms.load("planted-2l")
    clean, corrupted, a, b = planted_pairs(128, seed=0)
    metric = functools.partial(P.logit_diff, correct_tokens=a, wrong_tokens=b, per_prompt=True)
    return model, clean, corrupted, metric, build_graph(model)


def metric_of(n: int):
    """The per-prompt logit difference of planted()'s first n prompts."""
    _, _, a, b = planted_pairs(128, seed=0)
    return functools.partial(P.logit_diff, correct_tokens=a[:n], wrong_tokens=b[:n], per_prompt=True)


def test_true_circuit_is_equivalent_and_a_circuit_missing_an_edge_is_not():
    model, clean, corrupted, metric, g = planted()
    true = H.equivalence_test(model, clean, corrupted, metric, g.mask(TRUE_EDGES))
    missing = H.equivalence_test(model, clean, corrupted, metric, g.mask(TRUE_EDGES[1:]))
    assert true.passed and abs(true.statistic - 0.5) < 0.05 and true.p_value < 0.05
    assert not missing.passed and missing.statistic < 0.2 and missing.p_value > 0.5


def test_minimality_keeps_every_true_edge_and_names_the_extra_one():
    model, clean, corrupted, metric, g = planted()
    true = H.minimality_test(model, clean, corrupted, metric, g.mask(TRUE_EDGES))
    assert true.passed and true.p_values is not None and bool((true.p_values < 0.05).all())
    circuit = g.mask([*TRUE_EDGES, EXTRA])
    extra = H.minimality_test(model, clean, corrupted, metric, circuit)
    assert extra.p_values is not None
    order = [tuple(e) for e in circuit.nonzero().tolist()]
    flagged = [order[i] for i in (extra.p_values >= 0.05).nonzero().flatten().tolist()]
    assert not extra.passed and flagged == [g.edge(*EXTRA)]


def test_minimality_in_chunks_equals_all_at_once():
    model, clean, corrupted, metric, g = planted()
    circuit = g.mask([*TRUE_EDGES, EXTRA])
    whole = H.minimality_test(model, clean[:16], corrupted[:16], metric_of(16), circuit)
    chunked = H.minimality_test(model, clean[:16], corrupted[:16], metric_of(16), circuit, batch_size=7)
    assert whole.p_values is not None and chunked.p_values is not None
    torch.testing.assert_close(chunked.p_values, whole.p_values, atol=0, rtol=0)
    assert chunked.statistic == whole.statistic
    with pytest.raises(TutorialInputError, match="batch_size"):
        H.minimality_test(model, clean[:4], corrupted[:4], metric_of(4), circuit, batch_size=0)


def test_hsic_tells_dependence_from_shuffled_samples():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(64, generator=gen)
    y = x**2 + 0.1 * torch.randn(64, generator=gen)  # dependent, uncorrelated
    shuffled = y[torch.randperm(64, generator=gen)]
    assert H.hsic(x, y) > 3 * H.hsic(x, shuffled)


def test_binomial_tails():
    assert H._binom_tail(0, 10, 0.3, upper=True) == pytest.approx(1.0)
    assert H._binom_tail(10, 10, 0.5, upper=False) == pytest.approx(1.0)
    assert H._binom_tail(10, 10, 0.5, upper=True) == pytest.approx(0.5**10)


def test_bad_inputs_are_named():
    model, clean, corrupted, metric, g = planted()
    with pytest.raises(TutorialInputError, match="one value per prompt"):
        H.equivalence_test(model, clean, corrupted, lambda lg: lg[:, -1, 0].mean(), g.mask(TRUE_EDGES))
    with pytest.raises(TutorialInputError, match="at least one edge"):
        H.minimality_test(model, clean, corrupted, metric, torch.zeros_like(g.valid))
    with pytest.raises(TutorialInputError, match="delta"):
        H.equivalence_test(model, clean, corrupted, metric, g.mask(TRUE_EDGES), delta=0.7)
