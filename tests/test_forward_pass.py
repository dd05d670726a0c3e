"""forward_pass.py against the model itself: the by-hand attention layer equals hook_attn_out, a block
equals hook_resid_post, LayerNorm equals the cached ln outputs, on random GPT-2-style bridges with
non-trivial biases and gains (so a dropped bias would show) and on toy-lm; other architectures are refused."""

from __future__ import annotations

import pytest
import torch
from arch_models import random_llama
from transformer_lens.config import TransformerBridgeConfig
from transformer_lens.model_bridge import TransformerBridge

from tutorial_lib import forward_pass, organisms
from tutorial_lib.validation import TutorialInputError


def _model(device, attn_only: bool = False, act_fn: str = "gelu"):
    cfg = TransformerBridgeConfig(
        n_layers=2, d_model=32, n_heads=4, d_head=8, d_mlp=None if attn_only else 64, d_vocab=23, n_ctx=16,
        attn_only=attn_only, normalization_type="LN", act_fn=act_fn, seed=3, device=str(device),
    )  # fmt: skip
    model = TransformerBridge.boot_native(cfg)  # pyright: ignore[reportAttributeAccessIssue]
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            gain = name.endswith("weight") and any(f"{n}." in name for n in ("ln1", "ln2", "ln_out"))
            if name.endswith("bias") or gain:
                p.copy_((1.0 if gain else 0.0) + 0.3 * torch.randn(p.shape, generator=g).to(device))
    return model.eval()


@pytest.mark.parametrize("attn_only,act_fn", [(False, "gelu"), (False, "relu"), (True, "gelu")])
def test_attention_layer_and_block_equal_the_cache(device, attn_only, act_fn):
    model = _model(device, attn_only, act_fn)
    tokens = torch.randint(0, 23, (3, 9), device=device)
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens)
        for layer in range(2):
            x = cache[f"blocks.{layer}.ln1.hook_out"]
            torch.testing.assert_close(forward_pass.attention_layer(model, x, layer), cache["attn_out", layer])
            torch.testing.assert_close(
                forward_pass.transformer_block(model, cache["resid_pre", layer], layer), cache["resid_post", layer]
            )
            ln = forward_pass.layer_norm(cache["resid_pre", layer], model.blocks[layer].ln1, model.cfg.eps)
            torch.testing.assert_close(ln, x)


def test_the_blocks_chain_to_toy_lms_logits():
    model = organisms.load("toy-lm")
    tokens = model.to_tokens("When Mary and John went to the store, John gave a drink to")
    with torch.no_grad():
        logits, cache = model.run_with_cache(tokens)
        resid = cache["hook_embed"] + cache["hook_pos_embed"]
        for layer in range(model.cfg.n_layers):
            resid = forward_pass.transformer_block(model, resid, layer)
        final = forward_pass.layer_norm(resid, model.ln_final, model.cfg.eps)
        torch.testing.assert_close(final @ model.W_U + model.b_U, logits, atol=1e-4, rtol=1e-4)


def test_a_dropped_output_bias_would_be_caught(device):
    """The biases are non-zero, so the test above could fail: without b_O the layer differs from the cache."""
    model = _model(device)
    with torch.no_grad():
        _, cache = model.run_with_cache(torch.randint(0, 23, (2, 7), device=device))
        out = forward_pass.attention_layer(model, cache["blocks.0.ln1.hook_out"], 0)
    assert not torch.allclose(out - model.blocks[0].attn.b_O, cache["attn_out", 0], atol=1e-3)


def test_other_architectures_and_bad_input_are_refused(device):
    with pytest.raises(TutorialInputError, match="GPT-2-style"):
        forward_pass.attention_layer(random_llama(), torch.zeros(1, 3, 64), 0)
    model = _model(device)
    with pytest.raises(TutorialInputError, match="layer"):
        forward_pass.transformer_block(model, torch.zeros(1, 3, 32, device=device), 5)
    with pytest.raises(TutorialInputError, match="d_model"):
        forward_pass.attention_layer(model, torch.zeros(1, 3, 31, device=device), 0)
    with pytest.raises(TutorialInputError, match="resid_pre"):
        forward_pass.transformer_block(model, torch.zeros(3, 32, device=device), 0)
