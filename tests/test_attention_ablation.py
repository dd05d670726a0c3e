"""Tests for tutorial_lib.attention.ablation: losses with heads ablated, against weight surgery."""

from __future__ import annotations

import copy

import pytest
import torch
from attention_models import model_getter

from tutorial_lib import attention as A
from tutorial_lib.validation import TutorialInputError


@pytest.fixture(scope="module")
def models():
    """See attention_models.model_getter."""
    return model_getter()


def test_ablation_matches_weight_surgery(device, models):
    model = models(device)
    toks = torch.randint(1, 20, (4, 5), generator=torch.Generator().manual_seed(0))
    toks = torch.cat([torch.zeros(4, 1, dtype=torch.long), toks, toks], dim=1).to(device)
    out = A.ablation_losses(model, toks, "zero")
    assert out["first"].shape == (2, 3)
    # zeroing head (1, 2)'s z equals zeroing its slice of W_O
    surgery = copy.deepcopy(model)
    with torch.no_grad():
        d_head = model.cfg.d_head
        surgery.blocks[1].attn.o.weight[:, 2 * d_head : 3 * d_head] = 0.0
    losses = A.repeat_losses(surgery(toks), toks)
    assert out["repeated"][1, 2].item() == pytest.approx(losses["repeated"], abs=1e-5)
    assert out["first"][1, 2].item() == pytest.approx(losses["first"], abs=1e-5)
    clean = A.repeat_losses(model(toks), toks)
    assert out["clean_repeated"] == pytest.approx(clean["repeated"], abs=1e-6)
    # mean ablation over a batch of one changes nothing
    one = A.ablation_losses(model, toks[:1], "mean")
    assert torch.allclose(one["repeated"], torch.full((2, 3), one["clean_repeated"]), atol=1e-5)
    with pytest.raises(TutorialInputError, match="kind"):
        A.ablation_losses(model, toks, "resample")


def test_ablated_loss_groups_heads_and_coverage_is_a_ratio_of_drops(device, models):
    model = models(device)
    toks = torch.randint(1, 20, (4, 5), generator=torch.Generator().manual_seed(0))
    toks = torch.cat([torch.zeros(4, 1, dtype=torch.long), toks, toks], dim=1).to(device)
    single = A.ablation_losses(model, toks, "zero")
    one = A.ablated_loss(model, toks, [(1, 2)])  # a group of one head is the per-head ablation
    assert one["repeated"] == pytest.approx(single["repeated"][1, 2].item(), abs=1e-5)
    # two heads at once equals zeroing both W_O slices
    surgery = copy.deepcopy(model)
    d_head = model.cfg.d_head
    with torch.no_grad():
        surgery.blocks[0].attn.o.weight[:, 0:d_head] = 0.0
        surgery.blocks[1].attn.o.weight[:, d_head : 2 * d_head] = 0.0
    both = A.ablated_loss(model, toks, [(0, 0), (1, 1)])
    assert both["first"] == pytest.approx(A.repeat_losses(surgery(toks), toks)["first"], abs=1e-5)
    # keep=True with every head listed ablates nothing; with none listed it ablates everything
    every = [(layer, h) for layer in range(2) for h in range(3)]
    clean = A.repeat_losses(model(toks), toks)
    assert A.ablated_loss(model, toks, every, keep=True)["repeated"] == pytest.approx(clean["repeated"], abs=1e-5)
    assert A.ablated_loss(model, toks, [], kind="zero", keep=True) == pytest.approx(A.ablated_loss(model, toks, every))
    # coverage of the whole model is 1 by definition
    assert A.circuit_coverage(model, toks, every) == pytest.approx(1.0, abs=1e-4)


def test_find_copy_heads_returns_a_set_with_the_property(induction):
    from tutorial_lib import organisms

    data = organisms.induction_batch(60, induction.cfg.d_vocab, 3)
    heads = A.find_copy_heads(induction, data)
    assert 1 <= len(heads) <= 2
    clean = A.ablated_loss(induction, data, [])
    r = A.ablated_loss(induction, data, heads, kind="mean")
    assert r["repeated"] - clean["repeated"] > 1.0 and abs(r["first"] - clean["first"]) < 0.3
    assert A.find_copy_heads(induction, data, rise=100.0) == []
