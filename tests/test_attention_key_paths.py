"""Tests for tutorial_lib.attention.key_paths: the previous-token senders, their random controls and the
causal K-composition test, on the induction-2l organism (its circuit is known: L0H1 -> L1H0, L1H1 keys)."""

from __future__ import annotations

import pytest
import torch

from tutorial_lib import attention as A
from tutorial_lib import organisms
from tutorial_lib.validation import TutorialInputError


def test_senders_are_the_best_previous_token_heads_before_the_layer():
    previous = torch.tensor([[0.1, 0.8, 0.3], [0.9, 0.2, 0.05], [0.95, 0.0, 0.0]])
    assert A.previous_token_senders(previous, 2, n=2) == [(1, 0), (0, 1)]
    assert A.previous_token_senders(previous, 1, n=1) == [(0, 1)]
    controls = A.random_senders(previous, [(1, 0), (0, 1)], n_sets=4, max_previous=0.25, seed=0)
    assert len(controls) == 4
    for group in controls:
        assert [layer for layer, _ in group] == [1, 0], "the same layers as the senders"
        assert all(previous[layer, head] < 0.25 for layer, head in group), "heads that are not previous-token heads"
    assert controls == A.random_senders(previous, [(1, 0), (0, 1)], n_sets=4, max_previous=0.25, seed=0)


def test_key_path_test_finds_the_organisms_k_composition(induction):
    data = organisms.induction_batch(60, induction.cfg.d_vocab, 5)
    other = organisms.induction_batch(60, induction.cfg.d_vocab, 105).tokens
    scores = A.head_scores(induction, data)
    senders = A.previous_token_senders(scores["previous"], 1, n=1)
    assert senders == [(0, 1)]
    controls = A.random_senders(scores["previous"], senders, n_sets=1, max_previous=0.4)
    assert controls == [[(0, 0)]]
    got = A.key_path_test(induction, data, other, senders, [(1, 0), (1, 1)], controls)
    assert got["clean"] < 0.5 and got["k"] > got["clean"] + 3
    assert got["q"] < got["clean"] + 1 and got["v"] < got["clean"] + 1
    assert got["controls"][0] < got["clean"] + 1, "L0H0 is not what the keys read"


def test_key_paths_reject_bad_input(induction):
    previous = torch.rand(2, 2)
    with pytest.raises(TutorialInputError, match="before_layer"):
        A.previous_token_senders(previous, 3)
    with pytest.raises(TutorialInputError, match="hold 2"):
        A.previous_token_senders(previous, 1, n=3)
    with pytest.raises(TutorialInputError, match="no head"):
        A.random_senders(torch.ones(2, 2), [(0, 1)])
    data = organisms.induction_batch(8, induction.cfg.d_vocab, 5)
    with pytest.raises(TutorialInputError, match="before every receiver"):
        A.key_path_test(induction, data, data.tokens, [(1, 0)], [(1, 1)])
