"""Checks for chapter 00, foundations: hooks and caches."""

from __future__ import annotations

import copy
import functools

import torch

from .. import forward_pass, hooks, tasks
from .core import Mismatch, call_student, compare, exercise, random_model, student_heads


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


@functools.cache
def _biased_model(seed: int = 0):
    """A fresh random check model (not the shared cached one, which earlier checks have run) with every
    bias and norm gain set to non-trivial values, so that a forgotten bias or gain changes the answer."""
    model = random_model.__wrapped__(0)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            norm_gain = name.endswith("weight") and any(f"{n}." in name for n in ("ln1", "ln2", "ln_out"))
            if name.endswith("bias") or norm_gain:
                p.copy_((1.0 if norm_gain else 0.0) + 0.3 * torch.randn(p.shape, generator=g))
    # the student's function runs in a worker thread, where no_grad does not apply: no graph to carry
    model.requires_grad_(False)
    return model


def _near(got, want, atol: float = 1e-4) -> bool:
    return isinstance(got, torch.Tensor) and got.shape == want.shape and torch.allclose(got, want, atol=atol)


@exercise("00.6", "One attention layer from its weights", reference=forward_pass.attention_layer)
def check_attention_layer(fn):
    model = _biased_model()
    for seed, layer in [(0, 0), (1, 1)]:
        with torch.no_grad():
            _, cache = model.run_with_cache(_tokens(seed))
            x = cache[f"blocks.{layer}.ln1.hook_out"]
            got = call_student(fn, model, x, layer)
            want = forward_pass.attention_layer(model, x, layer)
            attn = model.blocks[layer].attn
            if _near(got, want - attn.b_O):
                raise Mismatch("your output lacks the output bias: add attn.b_O after summing over heads.")
        compare(
            got,
            want,
            f"layer {layer}'s attention output [batch, pos, d_model]",
            atol=1e-4,
            hint="q, k and v each need their bias (b_Q, b_K, b_V); divide the scores by sqrt(d_head); mask "
            "the future with -inf before the softmax over keys; weight the values by the pattern, then apply "
            "W_O and sum over heads. It should equal cache['attn_out', layer].",
        )


@exercise("00.7", "A whole transformer block", reference=forward_pass.transformer_block)
def check_transformer_block(fn):
    model = _biased_model(1)
    for seed, layer in [(0, 0), (2, 1)]:
        with torch.no_grad():
            _, cache = model.run_with_cache(_tokens(seed))
            resid_pre = cache["resid_pre", layer]
            got = call_student(fn, model, resid_pre, layer)
            want = forward_pass.transformer_block(model, resid_pre, layer)
            if _near(got, cache["resid_mid", layer]):
                raise Mismatch("you return resid_mid: add the MLP's output (LN2, W_in + b_in, GELU, W_out + b_out).")
            if _near(got, want - resid_pre):
                raise Mismatch("the residual stream is missing: the block adds its outputs to resid_pre.")
        compare(
            got,
            want,
            f"block {layer}'s output resid_post [batch, pos, d_model]",
            atol=1e-4,
            hint="LayerNorm centres each vector, divides by sqrt(mean square + model.cfg.eps), then multiplies by "
            "the norm's w and adds its b; the block adds the attention output to resid_pre (giving resid_mid), "
            "then the MLP of LN2(resid_mid). It should equal cache['resid_post', layer].",
        )


@exercise("00.8", "The mean-ablation grid", reference=hooks.mean_ablation_grid)
def check_mean_ablation_grid(fn):
    model = random_model(0)
    tokens = _tokens(3, batch=6)
    got = call_student(fn, model, tokens)
    want = hooks.mean_ablation_grid(model, tokens)
    if isinstance(got, torch.Tensor) and got.shape == want.shape:
        zero = torch.tensor(
            [[hooks.ablate_head_loss(model, tokens, layer, head) for head in range(model.cfg.n_heads)]
             for layer in range(model.cfg.n_layers)]
        ) - model(tokens, return_type="loss").item()  # fmt: skip
        if torch.allclose(got.float(), zero, atol=1e-5):
            raise Mismatch("these are zero-ablation rises: replace the head's z by its mean over the batch "
                           "(dim 0) at each position instead of by 0.")  # fmt: skip
        if torch.allclose(got.float(), -want, atol=1e-5):
            raise Mismatch("the sign is flipped: report ablated loss minus clean loss.")
    compare(
        got,
        want,
        "the loss rise per head [layer, head]",
        atol=1e-5,
        hint="subtract the clean loss; edit only z[:, :, head] (a clone) in blocks.{layer}.attn.hook_z, with "
        "z[:, :, head].mean(dim=0, keepdim=True).",
    )


@exercise("00.9", "Find the heads IOI needs (open)", reference=hooks.heads_carrying_logit_diff)
def check_heads_carrying_logit_diff(fn):
    from .. import organisms

    model = organisms.load("toy-lm")
    for seed in (11, 12):
        batch = tasks.ioi(40, seed=seed)
        got = call_student(fn, model, batch.tokens, batch.io_token, batch.s_token)
        what = f"heads for IOI batch of seed {seed}"
        heads = student_heads(got, model, what)
        clean = hooks.mean_logit_diff_ablated(model, batch.tokens, batch.io_token, batch.s_token, [])
        left = hooks.mean_logit_diff_ablated(model, batch.tokens, batch.io_token, batch.s_token, heads)
        if left > 0.5 * clean:
            raise Mismatch(
                f"{what}: mean-ablating {heads} leaves {left:.2f} of the {clean:.2f} logit difference (more than half). "
                "Direct logit attribution cannot find them: measure the logit difference with each head ablated."
            )
