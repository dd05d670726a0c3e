"""tutorial_lib.probing.datasets: splits, activation rows and labels, and the input checks of every probing kernel."""

from __future__ import annotations

import pytest
import torch
from probing_support import D_MODEL, D_VOCAB, SEQ, shared_model

from tutorial_lib import probing
from tutorial_lib.validation import TutorialInputError


@pytest.fixture
def model(device):
    return shared_model(device)


def test_split_keeps_prompts_apart_and_is_seeded(device):
    prompt_ids = torch.arange(40, device=device).repeat_interleave(5)
    X = torch.randn(200, 4, device=device)
    ds = probing.make_dataset(X, torch.zeros(200, dtype=torch.long, device=device), prompt_ids, test_frac=0.25, seed=3)
    train_p, test_p = set(ds.prompt_ids[ds.train_idx].tolist()), set(ds.prompt_ids[ds.test_idx].tolist())
    assert not train_p & test_p
    assert len(test_p) == 10 and len(train_p) == 30
    assert sorted(ds.train_idx.tolist() + ds.test_idx.tolist()) == list(range(200))
    again = probing.make_dataset(X, ds.labels, prompt_ids, test_frac=0.25, seed=3)
    other = probing.make_dataset(X, ds.labels, prompt_ids, test_frac=0.25, seed=4)
    assert torch.equal(again.test_idx, ds.test_idx)
    assert not torch.equal(other.test_idx, ds.test_idx)


@pytest.mark.parametrize("kind", ["all", "int", "index", "mask"])
def test_collect_activations_matches_the_cache(model, device, kind):
    tokens = torch.randint(0, D_VOCAB, (12, SEQ), device=device)
    per_token = torch.randint(0, 3, (12, SEQ), device=device)
    hook = "blocks.1.hook_resid_mid"
    if kind == "all":
        positions, mask = "all", torch.ones(12, SEQ, dtype=torch.bool)
    elif kind == "int":
        positions = -1
        mask = torch.zeros(12, SEQ, dtype=torch.bool)
        mask[:, -1] = True
    elif kind == "index":
        positions = torch.randint(0, SEQ, (12,), device=device)
        mask = torch.zeros(12, SEQ, dtype=torch.bool)
        mask[torch.arange(12), positions.cpu()] = True
    else:
        mask = torch.rand(12, SEQ) < 0.4
        positions = mask.to(device)
    ds = probing.collect_activations(model, tokens, per_token, hook, positions, seed=1)
    _, cache = model.run_with_cache(tokens)
    mask = mask.to(device)
    torch.testing.assert_close(ds.acts, cache[hook][mask])
    assert torch.equal(ds.labels, per_token[mask])
    assert ds.token_ids is not None and ds.positions is not None
    assert torch.equal(ds.token_ids, tokens[mask])
    rows, cols = mask.nonzero(as_tuple=True)
    assert torch.equal(ds.prompt_ids, rows) and torch.equal(ds.positions, cols)
    assert not set(ds.prompt_ids[ds.train_idx].tolist()) & set(ds.prompt_ids[ds.test_idx].tolist())
    # [batch] labels repeat over each prompt's chosen positions
    per_prompt = torch.arange(12, device=device)
    ds2 = probing.collect_activations(model, tokens, per_prompt, hook, positions, seed=1)
    assert torch.equal(ds2.labels, rows)


def test_collect_activations_flattens_head_dims(model, device):
    tokens = torch.randint(0, D_VOCAB, (4, SEQ), device=device)
    ds = probing.collect_activations(model, tokens, torch.zeros(4, dtype=torch.long), "blocks.0.attn.hook_z", -1)
    _, cache = model.run_with_cache(tokens)
    torch.testing.assert_close(ds.acts, cache["blocks.0.attn.hook_z"][:, -1].reshape(4, -1))


def test_input_validation(model, device):
    tokens = torch.randint(0, D_VOCAB, (4, SEQ), device=device)
    labels = torch.zeros(4, dtype=torch.long)
    with pytest.raises(TutorialInputError, match=r"Did you mean 'blocks.0.hook_resid_post'"):
        probing.collect_activations(model, tokens, labels, "blocks.0.hook_resid_postt")
    with pytest.raises(TutorialInputError, match=r"\[batch, pos\]"):
        probing.collect_activations(model, tokens[0], labels, "blocks.0.hook_resid_post")
    with pytest.raises(TutorialInputError, match="one per prompt"):
        probing.collect_activations(model, tokens, torch.zeros(5, dtype=torch.long), "blocks.0.hook_resid_post")
    with pytest.raises(TutorialInputError, match="positions"):
        probing.collect_activations(model, tokens, labels, "blocks.0.hook_resid_post", torch.zeros(3, dtype=torch.long))
    with pytest.raises(TutorialInputError, match="positions"):
        probing.collect_activations(model, tokens, labels, "blocks.0.hook_resid_post", torch.full((4,), SEQ))
    with pytest.raises(TutorialInputError, match="d_vocab"):
        probing.collect_activations(model, tokens + D_VOCAB, labels, "blocks.0.hook_resid_post")
    with pytest.raises(TutorialInputError, match="hook_z"):
        probing.collect_activations(model, tokens, labels, "blocks.0.attn.hook_pattern")
    with pytest.raises(TutorialInputError, match="one label per activation"):
        probing.make_dataset(torch.randn(10, 3), torch.zeros(9, dtype=torch.long))
    with pytest.raises(TutorialInputError, match="int"):
        probing.train_logistic(torch.randn(10, 3), torch.rand(10))
    with pytest.raises(TutorialInputError, match="probe"):
        probing.layer_sweep(model, tokens, labels, probe="svm")
    with pytest.raises(TutorialInputError, match="layers"):
        probing.layer_sweep(model, tokens, labels, layers=[2])
    with pytest.raises(TutorialInputError, match="direction has 5 entries"):
        probing.intervene(model, tokens, "blocks.0.hook_resid_post", torch.randn(5, device=device), lambda x: x.mean())
    with pytest.raises(TutorialInputError, match="mode"):
        probing.intervene(
            model, tokens, "blocks.0.hook_resid_post", torch.randn(D_MODEL), lambda x: x.mean(), mode="zero"
        )
    with pytest.raises(TutorialInputError, match="scalar"):
        probing.intervene(model, tokens, "blocks.0.hook_resid_post", torch.randn(D_MODEL), lambda x: x)
