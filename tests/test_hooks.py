"""hooks.py against independent computations: F.cross_entropy, the cached pattern, a model whose
head's output weights are zeroed, and the logits themselves."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from attention_models import model_getter
from transformer_lens.config import TransformerBridgeConfig
from transformer_lens.model_bridge import TransformerBridge

from tutorial_lib import hooks
from tutorial_lib.validation import TutorialInputError


def _model(device, seed=0, norm="LN"):
    cfg = TransformerBridgeConfig(
        n_layers=2,
        d_model=32,
        n_heads=4,
        d_head=8,
        d_mlp=64,
        d_vocab=23,
        n_ctx=16,
        normalization_type=norm,
        act_fn="gelu",
        seed=seed,
        device=str(device),
    )
    model = TransformerBridge.boot_native(cfg)  # pyright: ignore[reportAttributeAccessIssue]
    model.eval()
    return model


def test_per_token_loss_matches_cross_entropy(device):
    logits = torch.randn(3, 7, 11, device=device)
    tokens = torch.randint(0, 11, (3, 7), device=device)
    want = F.cross_entropy(logits[:, :-1].reshape(-1, 11), tokens[:, 1:].reshape(-1), reduction="none").view(3, 6)
    torch.testing.assert_close(hooks.per_token_loss(logits, tokens), want)


def test_attention_pattern_matches_the_cache(device):
    model = _model(device)
    _, cache = model.run_with_cache(torch.randint(0, 23, (2, 9), device=device))
    for layer in range(2):
        got = hooks.attention_pattern(cache["q", layer], cache["k", layer])
        torch.testing.assert_close(got, cache["pattern", layer], atol=1e-5, rtol=1e-4)


def test_attention_by_offset_reads_known_patterns():
    n = 6
    previous = torch.zeros(1, 2, n, n)
    previous[0, 0, 0, 0] = 1.0
    previous[0, 0, torch.arange(1, n), torch.arange(n - 1)] = 1.0  # head 0: previous token
    previous[0, 1] = torch.eye(n)  # head 1: current token
    assert hooks.attention_by_offset(previous, 1).tolist() == [1.0, 0.0]
    assert hooks.attention_by_offset(previous, 0).tolist() == [pytest.approx(1 / n), 1.0]
    with pytest.raises(TutorialInputError, match="offset"):
        hooks.attention_by_offset(previous, n)


def test_ablating_a_head_equals_zeroing_its_output_weights(device):
    model = _model(device)
    tokens = torch.randint(0, 23, (3, 9), device=device)
    ablated = hooks.ablate_head_loss(model, tokens, layer=1, head=2)
    twin = _model(device)
    with torch.no_grad():
        twin.blocks[1].attn.o.weight.view(32, 4, 8)[:, 2] = 0.0  # o.weight is [d_model, heads*d_head]
    assert ablated == pytest.approx(twin(tokens, return_type="loss").item(), abs=1e-5)
    assert ablated != pytest.approx(model(tokens, return_type="loss").item(), abs=1e-5)


@pytest.mark.parametrize("norm", ["LN", "RMS"])
def test_component_attribution_sums_to_the_logit(device, norm):
    model = _model(device, norm=norm)
    with torch.no_grad():  # a trained LayerNorm has a gain and a bias: a fresh one (1 and 0) would hide their terms
        model.ln_final.w.uniform_(0.5, 1.5)
        if norm == "LN":
            model.ln_final.b.normal_()
    tokens = torch.randint(0, 23, (4, 8), device=device)
    logits, cache = model.run_with_cache(tokens)
    answers = torch.randint(0, 23, (4,), device=device)
    parts = hooks.component_logit_attribution(model, cache, answers)
    assert parts.shape == (2 + 2 * 2, 4)
    want = logits[torch.arange(4), -1, answers]
    torch.testing.assert_close(parts.sum(0) + hooks.logit_constant(model, answers), want, atol=1e-4, rtol=1e-4)


def test_bad_input_says_what_was_expected():
    with pytest.raises(TutorialInputError, match=r"\[batch, pos, vocab\]"):
        hooks.per_token_loss(torch.randn(3, 4), torch.zeros(3, 4, dtype=torch.long))
    with pytest.raises(TutorialInputError, match="same shape"):
        hooks.attention_pattern(torch.randn(1, 3, 2, 4), torch.randn(1, 4, 2, 4))


@pytest.fixture(scope="module")
def models():
    """Attention-only models with non-trivial norm weights and biases (see attention_models)."""
    return model_getter()


def test_head_ablation_hook_zero_mean_and_given_values():
    z = torch.randn(3, 5, 4, 2, generator=torch.Generator().manual_seed(0))
    before = z.clone()
    out = hooks.head_ablation_hook([1, 3])(z, None)
    assert torch.equal(z, before), "the hook edits a copy"
    assert (out[:, :, [1, 3]] == 0).all() and torch.equal(out[:, :, [0, 2]], z[:, :, [0, 2]])
    mean = hooks.head_ablation_hook(2, "mean")(z, None)
    torch.testing.assert_close(mean[:, :, 2], z[:, :, 2].mean(0, keepdim=True).expand(3, -1, -1))
    assert torch.equal(mean[:, :, [0, 1, 3]], z[:, :, [0, 1, 3]])
    given = torch.randn(1, 5, 4, 2)
    out = hooks.head_ablation_hook([0], given)(z, None)
    assert torch.equal(out[:, :, 0], given[:, :, 0].expand(3, -1, -1)) and torch.equal(out[:, :, 1:], z[:, :, 1:])
    longer = torch.randn(1, 8, 4, 2, dtype=torch.float64)  # means of a longer run, in another dtype
    out = hooks.head_ablation_hook([2], longer)(z, None)
    assert out.dtype == z.dtype and torch.equal(out[:, :, 2], longer[:, :5, 2].float().expand(3, -1, -1))
    with pytest.raises(TutorialInputError, match="replacement"):
        hooks.head_ablation_hook(0, "resample")


@pytest.mark.parametrize("ln", ["LN", "RMS"])
def test_dla_sums_to_logit(device, models, ln):
    model = models(device, ln)
    toks = torch.randint(0, 20, (3, 9), generator=torch.Generator().manual_seed(2)).to(device)
    logits, cache = model.run_with_cache(toks)
    answer = torch.tensor([4, 7, 11], device=device)
    pos = torch.tensor([8, 3, 5], device=device)
    dla = hooks.direct_logit_attribution(model, cache, answer, pos)
    assert dla.shape == (3, 2, 3)
    # the other components of the residual stream, through the same frozen LayerNorm
    rows = torch.arange(3, device=device)
    rest = cache["hook_embed"][rows, pos] + cache["hook_pos_embed"][rows, pos] + model.b_O.sum(0)
    rest = hooks.apply_final_norm(model, cache, rest, (rows, pos))
    rest = (rest * hooks.logit_directions(model, answer)).sum(-1)
    bias = model.W_U[:, answer].T @ model.ln_final.b if ln == "LN" else 0.0
    total = dla.sum((1, 2)) + rest + bias + model.b_U[answer]
    assert torch.allclose(total, logits[rows, pos, answer], atol=1e-4)
    # every position at once agrees with one position at a time
    every = hooks.direct_logit_attribution(model, cache, toks.roll(-1, dims=1))
    assert torch.allclose(
        every[rows, pos], hooks.direct_logit_attribution(model, cache, toks.roll(-1, 1)[rows, pos], pos)
    )


def test_dla_of_a_logit_difference_is_the_difference(device, models):
    model = models(device, "RMS")
    toks = torch.randint(0, 20, (3, 9), generator=torch.Generator().manual_seed(4)).to(device)
    _, cache = model.run_with_cache(toks)
    right, wrong = torch.tensor([4, 7, 11], device=device), torch.tensor([1, 2, 3], device=device)
    diff = hooks.direct_logit_attribution(model, cache, right, -1, wrong=wrong)
    want = hooks.direct_logit_attribution(model, cache, right) - hooks.direct_logit_attribution(model, cache, wrong)
    torch.testing.assert_close(diff, want, atol=1e-5, rtol=1e-5)


def test_mean_ablation_grid_equals_one_ablation_per_head(device):
    model = _model(device)
    tokens = torch.randint(0, 23, (4, 9), device=device)
    grid = hooks.mean_ablation_grid(model, tokens)
    clean = model(tokens, return_type="loss").item()
    for layer, head in [(0, 1), (1, 3)]:
        with torch.no_grad():
            _, cache = model.run_with_cache(tokens)
            means = cache["z", layer].mean(0, keepdim=True)
            hook = (f"blocks.{layer}.attn.hook_z", hooks.head_ablation_hook(head, means))
            replaced = model.run_with_hooks(tokens, return_type="loss", fwd_hooks=[hook]).item()
        assert grid[layer, head].item() == pytest.approx(replaced - clean, abs=1e-5)
    assert grid.abs().sum() > 0


def test_heads_carrying_logit_diff_finds_toy_lms_name_mover_and_not_a_wrong_one():
    from tutorial_lib import organisms, tasks

    model = organisms.load("toy-lm")
    batch = tasks.ioi(30, seed=5)
    found = hooks.heads_carrying_logit_diff(model, batch.tokens, batch.io_token, batch.s_token)
    assert found == [(0, 0)]
    clean = hooks.mean_logit_diff_ablated(model, batch.tokens, batch.io_token, batch.s_token, [])
    assert hooks.mean_logit_diff_ablated(model, batch.tokens, batch.io_token, batch.s_token, found) < 0.5 * clean
    # control: a layer-1 head does not carry it, and asking to keep nothing finds no set of at most 2 heads
    assert hooks.mean_logit_diff_ablated(model, batch.tokens, batch.io_token, batch.s_token, [(1, 1)]) > 0.8 * clean
    assert hooks.heads_carrying_logit_diff(model, batch.tokens, batch.io_token, batch.s_token, keep=0.0) == []
