"""Checks for chapter 00, foundations: hooks and caches."""

from __future__ import annotations

import copy

import torch

from .. import hooks
from .core import Mismatch, call_student, compare, exercise, random_model


def _tokens(seed: int, batch: int = 3, pos: int = 9) -> torch.Tensor:
    return torch.randint(0, 23, (batch, pos), generator=torch.Generator().manual_seed(seed))


@exercise("00.1", "Per-token loss", reference=hooks.per_token_loss)
def check_per_token_loss(fn):
    for seed in range(3):
        g = torch.Generator().manual_seed(seed)
        logits, tokens = torch.randn(2, 6, 11, generator=g), torch.randint(0, 11, (2, 6), generator=g)
        compare(
            call_student(fn, logits, tokens),
            hooks.per_token_loss(logits, tokens),
            "the loss per token",
            hint="logits at position i predict the token at i+1: compare logits[:, :-1] with tokens[:, 1:], "
            "and take minus the log-softmax (not the softmax) of the right token.",
        )


@exercise("00.2", "Attention patterns from queries and keys", reference=hooks.attention_pattern)
def check_attention_pattern(fn):
    for seed in range(3):
        g = torch.Generator().manual_seed(seed)
        q, k = torch.randn(2, 7, 3, 5, generator=g), torch.randn(2, 7, 3, 5, generator=g)
        got = call_student(fn, q, k)
        want = hooks.attention_pattern(q, k)
        if isinstance(got, torch.Tensor) and got.shape == want.shape and torch.isfinite(got).all():
            if got.triu(diagonal=1).abs().max() > 1e-6:
                raise Mismatch(
                    "your pattern attends to future positions: mask the scores above the diagonal "
                    "with -inf before the softmax."
                )
            if not torch.allclose(got.sum(-1), torch.ones_like(got.sum(-1)), atol=1e-4):
                raise Mismatch(
                    "each query's attention should sum to 1 over keys: take the softmax over the last (key) dimension."
                )
        compare(
            got,
            want,
            "the attention pattern [batch, head, q_pos, k_pos]",
            hint="divide the scores by sqrt(d_head) before the softmax.",
        )


@exercise("00.3", "Attention by offset", reference=hooks.attention_by_offset)
def check_attention_by_offset(fn):
    for seed, offset in [(0, 1), (1, 0), (2, 3)]:
        q = torch.randn(2, 8, 4, 6, generator=torch.Generator().manual_seed(seed))
        pattern = hooks.attention_pattern(q, q.roll(1, dims=1))
        compare(
            call_student(fn, pattern, offset),
            hooks.attention_by_offset(pattern, offset),
            f"the mean attention to the token {offset} back, per head",
            hint="average pattern[b, h, i, i - offset] over the batch and over the positions i >= offset only "
            "(torch.diagonal with offset=-offset picks them).",
        )


@exercise("00.4", "Zero-ablate one head", reference=hooks.ablate_head_loss)
def check_ablate_head_loss(fn):
    model = random_model(0)
    clean = model(_tokens(0), return_type="loss").item()
    for seed, layer, head in [(0, 0, 1), (1, 1, 3), (2, 1, 0)]:
        tokens = _tokens(seed)
        got = call_student(fn, model, tokens, layer, head)
        want = hooks.ablate_head_loss(model, tokens, layer, head)
        if isinstance(got, torch.Tensor):
            got = got.item() if got.numel() == 1 else got
        if seed == 0 and isinstance(got, float) and abs(got - clean) < 1e-7 and abs(want - clean) > 1e-7:
            raise Mismatch(
                "the loss did not change: your hook must modify z and return it, and be attached to "
                f"'blocks.{layer}.attn.hook_z' through model.run_with_hooks(..., fwd_hooks=[(name, fn)])."
            )
        compare(
            got,
            float(want),
            f"the loss with L{layer}H{head} ablated",
            atol=1e-5,
            hint="zero z[:, :, head] (dimensions [batch, pos, head, d_head]), not z[:, head].",
        )


@exercise("00.5", "Split a logit into components", reference=hooks.component_logit_attribution)
def check_component_logit_attribution(fn):
    model = copy.deepcopy(random_model(0))  # a copy: the cached model is shared with other checks
    with torch.no_grad():  # give the final LayerNorm a real gain and bias, as in a trained model
        model.ln_final.w.copy_(torch.linspace(0.5, 1.5, model.cfg.d_model))
        model.ln_final.b.copy_(torch.linspace(-0.3, 0.3, model.cfg.d_model))
    for seed in range(2):
        tokens = _tokens(seed)
        _, cache = model.run_with_cache(tokens)
        answers = tokens[:, 0]
        compare(
            call_student(fn, model, cache, answers),
            hooks.component_logit_attribution(model, cache, answers),
            "the logit attribution [component, batch]",
            atol=1e-4,
            hint="scale the stack with cache.apply_ln_to_stack(stack, layer=-1, pos_slice=-1), multiply by the "
            "final LayerNorm's gain model.ln_final.w, then project onto model.W_U[:, answer_tokens]; "
            "use the last position only.",
        )
