"""One small training loop: next-token cross-entropy with AdamW, used by the organism recipes and chapters."""

from __future__ import annotations

from collections.abc import Callable

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor, nn

from .hooks import per_token_loss
from .progress import progress
from .validation import TutorialInputError, expect_dtype, expect_int_at_least, expect_ndim, expect_number, model_device


def _core(model: nn.Module) -> nn.Module:
    """The module to run in the loop. A native TransformerBridge wraps a plain PyTorch model that shares its
    parameters (`model.original_model`); stepping that one skips the hook machinery and gives the same logits."""
    core = getattr(model, "original_model", None)
    return core if isinstance(core, nn.Module) and getattr(model, "cfg", None) is not None else model


def lm_loss(
    logits: Float[Tensor, "batch pos vocab"],
    tokens: Int[Tensor, "batch pos"],
    mask: Bool[Tensor, "batch pos"] | None = None,
) -> Tensor:
    """Mean next-token cross-entropy; mask[b, p] (shape [batch, pos] or [batch, pos-1]) keeps the
    prediction made at position p of token p+1.

    Chapter 05: induction heads (training a small transformer); also used in chapter 06.
    """
    nll = per_token_loss(logits, tokens)
    if mask is None:
        return nll.mean()
    _check_mask(mask, tokens)
    mask = mask[:, : nll.shape[1]].to(nll.dtype)
    return (nll * mask).sum() / mask.sum().clamp(min=1)


def _check_mask(mask: object, tokens: Tensor) -> None:
    """A bool mask [batch, pos] or [batch, pos-1] for these tokens. Chapter 05: induction heads."""
    mask = expect_dtype(expect_ndim(mask, 2, "mask", "[batch, pos]"), "bool", "mask")
    batch, pos = tokens.shape
    if mask.shape[0] != batch or mask.shape[1] not in (pos, pos - 1):
        raise TutorialInputError(
            f"mask must have shape ({batch}, {pos}) or ({batch}, {pos - 1}) [batch, pos], got {tuple(mask.shape)}."
        )


def train_lm(
    model: nn.Module,
    batch_fn: Callable[[int], Int[Tensor, "batch pos"]],
    steps: int,
    lr: float = 1e-3,
    weight_decay: float = 0.01,
    warmup: int = 0,
    loss_mask_fn: Callable[[Tensor], Tensor] | None = None,
    callback: Callable[[int, nn.Module, float], None] | None = None,
    every: int = 50,
    seed: int = 0,
    desc: str = "training",
    num_threads: int | None = None,
) -> list[float]:
    """Train `model` on next-token prediction for `steps` AdamW steps and return the per-step losses.

    batch_fn(step) returns a token batch (call it with your own seeded generator for reproducibility).
    loss_mask_fn(tokens) returns a bool mask [batch, pos] (or [batch, pos-1]) of the predictions that count.
    warmup: linear learning-rate warm-up steps (then constant). callback(step, model, loss) runs every
    `every` steps and after the last. num_threads: torch threads during the loop (1 is often much faster
    on a busy machine), restored afterwards. The model is left in eval mode.

    Chapter 05: induction heads (training a small transformer until the circuit forms).
    """
    expect_int_at_least(steps, "steps")
    expect_number(lr, "lr", 0.0)
    expect_number(weight_decay, "weight_decay", 0.0)
    expect_int_at_least(warmup, "warmup", 0)
    expect_int_at_least(every, "every")
    model_device(_core(model))
    torch.manual_seed(seed)
    old_threads = torch.get_num_threads()
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    core = _core(model)
    device = next(core.parameters()).device
    opt = torch.optim.AdamW(core.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warmup) if warmup else 1.0)
    losses: list[float] = []
    core.train()
    try:
        for step in progress(range(steps), desc=desc, total=steps):
            tokens = batch_fn(step)
            expect_dtype(expect_ndim(tokens, 2, "batch_fn(step)", "[batch, pos]"), "int", "batch_fn(step)")
            tokens = tokens.to(device)
            mask = loss_mask_fn(tokens) if loss_mask_fn is not None else None
            loss = lm_loss(core(tokens), tokens, mask)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
            if callback is not None and (step % every == 0 or step == steps - 1):
                callback(step, model, losses[-1])
    finally:
        core.eval()
        model.eval()
        torch.set_num_threads(old_threads)
    return losses
