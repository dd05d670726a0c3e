"""The transformer's forward pass written out from its weights (chapter 00): one attention layer, LayerNorm
and one whole block, as toy-lm computes them (GPT-2 style: LayerNorm, learned positions, a GELU MLP).

They exist so that a student can check, number for number, that the hook points of chapter 00 hold what
the forward pass computes. Real models built differently (SmolLM2: RMSNorm, rotary embeddings,
grouped-query attention, a gated MLP) are refused with a message saying so: the library's other
kernels read them through their hooks instead (`hooks.attention_inputs`, `hooks.apply_final_norm`)."""

from __future__ import annotations

import math

import einops
import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor

from .validation import (
    TutorialInputError,
    expect_finite,
    expect_index,
    expect_last_dim,
    expect_model,
    expect_ndim,
    expect_number,
    expect_tensor,
)

ACTIVATIONS = {"gelu": F.gelu, "gelu_new": lambda x: F.gelu(x, approximate="tanh"), "relu": F.relu}


def _expect_gpt2_style(model) -> None:
    cfg = expect_model(model).cfg
    kv = getattr(cfg, "n_key_value_heads", None)
    problems = [
        what
        for what, bad in (
            ("LayerNorm (normalization_type 'LN')", getattr(cfg, "normalization_type", None) != "LN"),
            ("learned positions (not rotary)", getattr(cfg, "positional_embedding_type", "standard") != "standard"),
            ("one key head per query head", kv not in (None, cfg.n_heads)),
            (f"an MLP activation in {sorted(ACTIVATIONS)}", not cfg.attn_only and cfg.act_fn not in ACTIVATIONS),
        )
        if bad
    ]
    if problems:
        raise TutorialInputError(
            "the forward pass by hand is written for toy-lm's GPT-2-style block; this model lacks "
            + ", ".join(problems)
            + ". Chapter 00 runs these cells on toy-lm."
        )


def _expect_resid(model, x: object, name: str) -> Tensor:
    x = expect_ndim(x, 3, name, "[batch, pos, d_model]")
    return expect_finite(expect_last_dim(x, model.cfg.d_model, name), name)


def attention_layer(model, x: Float[Tensor, "batch pos d_model"], layer: int) -> Float[Tensor, "batch pos d_model"]:
    """Layer `layer`'s attention output (what `blocks.{layer}.hook_attn_out` holds) from its normalised
    input x (`blocks.{layer}.ln1.hook_out`, after the gain and bias): queries, keys and values from W_Q, W_K, W_V and their
    biases, the causal softmax of q.k / sqrt(d_head), the weighted sum of values, and W_O summed over heads.

    Exercise 00.6. Chapter 00: foundations."""
    _expect_gpt2_style(model)
    layer = expect_index(layer, "layer", model.cfg.n_layers)
    x = _expect_resid(model, x, "x")
    attn = model.blocks[layer].attn
    q = einops.einsum(x, attn.W_Q, "b p d, h d e -> b p h e") + attn.b_Q
    k = einops.einsum(x, attn.W_K, "b p d, h d e -> b p h e") + attn.b_K
    v = einops.einsum(x, attn.W_V, "b p d, h d e -> b p h e") + attn.b_V
    scores = einops.einsum(q, k, "b q h e, b k h e -> b h q k") / math.sqrt(model.cfg.d_head)
    n = x.shape[1]
    future = torch.triu(torch.ones(n, n, dtype=torch.bool, device=x.device), diagonal=1)
    pattern = scores.masked_fill(future, float("-inf")).softmax(dim=-1)
    z = einops.einsum(pattern, v, "b h q k, b k h e -> b q h e")
    return einops.einsum(z, attn.W_O, "b q h e, h e d -> b q d") + attn.b_O


def layer_norm(x: Float[Tensor, "... d_model"], norm_module, eps: float) -> Float[Tensor, "... d_model"]:
    """LayerNorm as TransformerLens computes it: centre, divide by sqrt(mean square + eps), then the
    module's gain `w` and bias `b`.

    Chapter 00: foundations (part of Exercise 00.7)."""
    x = expect_finite(expect_tensor(x, "x"), "x")
    if not (hasattr(norm_module, "w") and hasattr(norm_module, "b")):
        raise TutorialInputError(
            f"norm_module must be a LayerNorm with a gain w and a bias b, got {type(norm_module).__name__}."
        )
    expect_number(eps, "eps", 0.0)
    x = x - x.mean(dim=-1, keepdim=True)
    scale = (x.pow(2).mean(dim=-1, keepdim=True) + eps).sqrt()
    return x / scale * norm_module.w + norm_module.b


def transformer_block(
    model, resid_pre: Float[Tensor, "batch pos d_model"], layer: int
) -> Float[Tensor, "batch pos d_model"]:
    """Block `layer` of a GPT-2-style model from its input residual stream (`blocks.{layer}.hook_resid_pre`)
    to its output (`hook_resid_post`): resid_mid = resid_pre + attention(LN1(resid_pre)); resid_post =
    resid_mid + W_out act(W_in LN2(resid_mid) + b_in) + b_out.

    Exercise 00.7. Chapter 00: foundations."""
    _expect_gpt2_style(model)
    layer = expect_index(layer, "layer", model.cfg.n_layers)
    resid_pre = _expect_resid(model, resid_pre, "resid_pre")
    block, eps = model.blocks[layer], model.cfg.eps
    resid_mid = resid_pre + attention_layer(model, layer_norm(resid_pre, block.ln1, eps), layer)
    if model.cfg.attn_only:
        return resid_mid
    mlp = block.mlp
    pre = einops.einsum(layer_norm(resid_mid, block.ln2, eps), mlp.W_in, "b p d, d m -> b p m") + mlp.b_in
    post = ACTIVATIONS[model.cfg.act_fn](pre)
    return resid_mid + einops.einsum(post, mlp.W_out, "b p m, m d -> b p d") + mlp.b_out
