"""hooks.py against independent computations: F.cross_entropy, the cached pattern, a model whose
head's output weights are zeroed, and the logits themselves."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from transformer_lens.config import TransformerBridgeConfig
from transformer_lens.model_bridge import TransformerBridge

from tutorial_lib import hooks
from tutorial_lib.validation import TutorialInputError


def _model(device, seed=0):
    cfg = TransformerBridgeConfig(
        n_layers=2,
        d_model=32,
        n_heads=4,
        d_head=8,
        d_mlp=64,
        d_vocab=23,
        n_ctx=16,
        normalization_type="LN",
        act_fn="gelu",
        seed=seed,
        device=str(device),
    )
    model = TransformerBridge.boot_native(cfg)
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


def test_component_attribution_sums_to_the_logit(device):
    model = _model(device)
    with torch.no_grad():  # a trained LayerNorm has a gain and a bias: a fresh one (1 and 0) would hide their terms
        model.ln_final.w.uniform_(0.5, 1.5)
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
