"""Tests for tutorial_lib.attention.scores: the detectors on hand-built patterns and on a model."""

from __future__ import annotations

import pytest
import torch
from attention_models import causal_uniform, model_getter, offset_pattern

from tutorial_lib import attention as A
from tutorial_lib.validation import TutorialInputError


@pytest.fixture(scope="module")
def models():
    """See attention_models.model_getter."""
    return model_getter()


def test_perfect_patterns_score_one(device):
    n, half = 11, 5
    prev = offset_pattern(3, 2, n, 1, device)
    assert torch.allclose(A.previous_token_score(prev), torch.ones(2, device=device))
    assert torch.allclose(A.current_token_score(prev), torch.zeros(2, device=device))
    ind = offset_pattern(3, 2, n, half - 1, device)
    assert torch.allclose(A.induction_score(ind, half), torch.ones(2, device=device))
    dup = offset_pattern(3, 2, n, half, device)
    assert torch.allclose(A.duplicate_token_score(dup, half), torch.ones(2, device=device))
    assert torch.allclose(A.induction_score(dup, half), torch.zeros(2, device=device))
    cur = offset_pattern(3, 2, n, 0, device)
    assert torch.allclose(A.current_token_score(cur), torch.ones(2, device=device))


def test_uniform_patterns(device):
    n = 7
    full = torch.full((2, 3, n, n), 1.0 / n, device=device)
    for score in (A.previous_token_score(full), A.current_token_score(full), A.induction_score(full, 3)):
        assert torch.allclose(score, torch.full((3,), 1.0 / n, device=device))
    # causal uniform: query q spreads over q + 1 keys; the previous-token score is the mean of 1/(q+1), q >= 1
    causal = causal_uniform(2, 3, n, device)
    want = torch.tensor([1.0 / (q + 1) for q in range(1, n)]).mean()
    assert torch.allclose(A.previous_token_score(causal).cpu(), want.expand(3))


def test_per_row_period_and_mask(device):
    """Rows with different periods: the induction score follows each row's own period and only its mask."""
    n, periods = 14, torch.tensor([3, 5])
    _, rep = A.repeat_masks(n, periods, start=torch.tensor([2, 1]))
    pat = offset_pattern(2, 1, n, periods - 1, device)
    assert torch.allclose(A.induction_score(pat, periods, rep.to(device)), torch.ones(1, device=device))
    # head 1 is an induction head only in row 0 (row 1 attends to the previous token): score = row 0's share
    mixed = torch.cat([pat, offset_pattern(2, 1, n, 1, device)], dim=1)
    mixed[0, 1] = pat[0, 0]
    want = rep[0].sum() / rep.sum()
    got = A.induction_score(mixed, periods, rep.to(device))
    assert torch.allclose(got.cpu(), torch.stack([torch.tensor(1.0), want]))


def test_layer_axis_and_cache(device):
    """[batch, layer, head, q, k] scores per layer, and a cache gives the same answer as the stacked tensor."""
    n, half = 9, 4
    stack = torch.stack([offset_pattern(2, 2, n, 1, device), offset_pattern(2, 2, n, half - 1, device)], dim=1)
    scores = A.attention_scores(stack, half)
    assert scores["induction"].shape == (2, 2)
    assert torch.allclose(scores["previous"][0], torch.ones(2, device=device))
    assert torch.allclose(scores["induction"][1], torch.ones(2, device=device))
    cache = {f"blocks.{layer}.attn.hook_pattern": stack[:, layer] for layer in range(2)}
    assert torch.equal(A.induction_score(cache, half), scores["induction"])


def test_score_reference_loop(device):
    """Random patterns: the vectorised score equals a plain Python loop over rows and queries."""
    gen = torch.Generator().manual_seed(1)
    b, h, n = 3, 2, 12
    pat = torch.rand(b, h, n, n, generator=gen).tril().to(device)
    pat = pat / pat.sum(-1, keepdim=True)
    periods = torch.tensor([3, 4, 5])
    _, rep = A.repeat_masks(n, periods, start=torch.tensor([1, 2, 1]))
    got = A.induction_score(pat, periods, rep.to(device))
    vals = [[pat[i, :, q, q - periods[i] + 1] for q in range(n) if rep[i, q]] for i in range(b)]
    want = torch.stack([v for row in vals for v in row]).mean(0)
    assert torch.allclose(got, want)


def test_score_validation():
    with pytest.raises(TutorialInputError, match="pattern"):
        A.previous_token_score(torch.rand(3, 4, 4))
    with pytest.raises(TutorialInputError, match="period"):
        A.induction_score(torch.rand(1, 2, 5, 5), 0)
    with pytest.raises(TutorialInputError, match="query_mask"):
        A.induction_score(torch.rand(1, 2, 5, 5), 2, torch.ones(1, 4, dtype=torch.bool))
    with pytest.raises(TutorialInputError, match="hook_pattern"):
        A.stack_patterns({})


def test_head_scores_on_model(device, models):
    model = models(device)
    toks = torch.randint(1, model.cfg.d_vocab, (4, 5), generator=torch.Generator().manual_seed(0))
    toks = torch.cat([torch.zeros(4, 1, dtype=torch.long), toks, toks], dim=1).to(device)
    scores = A.head_scores(model, toks)
    assert set(scores) == set(A.SCORE_KINDS)
    _, cache = model.run_with_cache(toks)
    assert torch.allclose(scores["induction"], A.induction_score(cache, 5))
    for v in scores.values():
        assert v.shape == (model.cfg.n_layers, model.cfg.n_heads) and ((v >= 0) & (v <= 1)).all()
    with pytest.raises(TutorialInputError, match="odd"):
        A.head_scores(model, toks[:, :-1])
