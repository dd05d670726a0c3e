"""Hooks and caches, the basic moves of TransformerLens: next-token loss, attention recomputed
from queries and keys, reading patterns by offset, ablating a head, and splitting a logit into
what each component of the residual stream wrote."""

from __future__ import annotations

import math

import einops
import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens.ActivationCache import ActivationCache

from .validation import TutorialInputError, expect_dtype, expect_ndim, expect_range


def per_token_loss(
    logits: Float[Tensor, "batch pos vocab"], tokens: Int[Tensor, "batch pos"]
) -> Float[Tensor, "batch pos_minus_1"]:
    """Cross-entropy of predicting tokens[:, i+1] from logits[:, i] (the last position predicts nothing)."""
    expect_ndim(logits, 3, "logits", "[batch, pos, vocab]")
    expect_ndim(tokens, 2, "tokens", "[batch, pos]")
    if logits.shape[:2] != tokens.shape:
        raise TutorialInputError(
            f"logits {tuple(logits.shape)} and tokens {tuple(tokens.shape)} must share [batch, pos]."
        )
    log_probs = logits[:, :-1].log_softmax(dim=-1)
    return -log_probs.gather(-1, tokens[:, 1:, None])[..., 0]


def attention_pattern(
    q: Float[Tensor, "batch pos head d_head"], k: Float[Tensor, "batch pos head d_head"]
) -> Float[Tensor, "batch head q_pos k_pos"]:
    """softmax(q k^T / sqrt(d_head)) with the causal mask: what `hook_pattern` holds."""
    expect_ndim(q, 4, "q", "[batch, pos, head, d_head]")
    expect_ndim(k, 4, "k", "[batch, pos, head, d_head]")
    if q.shape != k.shape:
        raise TutorialInputError(f"q {tuple(q.shape)} and k {tuple(k.shape)} must have the same shape.")
    scores = einops.einsum(q, k, "b q h d, b k h d -> b h q k") / math.sqrt(q.shape[-1])
    n = q.shape[1]
    future = torch.triu(torch.ones(n, n, dtype=torch.bool, device=q.device), diagonal=1)
    return scores.masked_fill(future, float("-inf")).softmax(dim=-1)


def attention_by_offset(pattern: Float[Tensor, "batch head q_pos k_pos"], offset: int) -> Float[Tensor, " head"]:
    """Mean attention from each position to the position `offset` before it (1: the previous token)."""
    expect_ndim(pattern, 4, "pattern", "[batch, head, q_pos, k_pos]")
    expect_range(offset, "offset", 0, pattern.shape[-1] - 1)
    diagonal = pattern.diagonal(offset=-offset, dim1=-2, dim2=-1)  # [batch, head, q_pos - offset]
    return diagonal.mean(dim=(0, -1))


def ablate_head_loss(model, tokens: Int[Tensor, "batch pos"], layer: int, head: int) -> float:
    """The model's mean next-token loss with one head's output (its hook_z) set to zero."""
    expect_dtype(expect_ndim(tokens, 2, "tokens", "[batch, pos]"), "int", "tokens")
    expect_range(layer, "layer", 0, model.cfg.n_layers - 1)
    expect_range(head, "head", 0, model.cfg.n_heads - 1)

    def zero_head(z: Float[Tensor, "batch pos head d_head"], hook) -> Float[Tensor, "batch pos head d_head"]:
        z[:, :, head] = 0.0
        return z

    with torch.no_grad():
        loss = model.run_with_hooks(tokens, return_type="loss", fwd_hooks=[(f"blocks.{layer}.attn.hook_z", zero_head)])
    return loss.item()


def component_logit_attribution(
    model, cache: ActivationCache, answer_tokens: Int[Tensor, " batch"]
) -> Float[Tensor, "component batch"]:
    """Each residual-stream component's direct contribution to the answer's logit at the last position.

    Components follow `cache.decompose_resid` (embed, pos_embed, 0_attn_out, 0_mlp_out, ...). The final
    LayerNorm is linear once its scale is frozen: centre and divide by the cached scale
    (`apply_ln_to_stack`), multiply by its gain, project onto the answer's unembedding. The terms sum to
    the logit minus two input-independent constants: the LayerNorm bias's and the unembedding bias's."""
    expect_ndim(answer_tokens, 1, "answer_tokens", "[batch]")
    stack = cache.decompose_resid(layer=-1, pos_slice=-1)  # [component, batch, d_model]
    scaled = cache.apply_ln_to_stack(stack, layer=-1, pos_slice=-1)
    directions = model.ln_final.w[:, None] * model.W_U[:, answer_tokens]  # [d_model, batch]
    return einops.einsum(scaled, directions, "comp batch d, d batch -> comp batch")


def logit_constant(model, answer_tokens: Int[Tensor, " batch"]) -> Float[Tensor, " batch"]:
    """The part of each answer's logit that no component writes: final LayerNorm bias plus unembedding bias."""
    return model.ln_final.b @ model.W_U[:, answer_tokens] + model.b_U[answer_tokens]
