"""Repeated-segment masks: which query positions an induction head can predict (chapter 05)."""

from __future__ import annotations

from typing import Any

import torch
from jaxtyping import Bool, Int
from torch import Tensor

from ..validation import TutorialInputError, expect_dtype, expect_ndim, expect_shape


def repeat_masks(
    seq_len: int,
    period: int | Int[Tensor, " batch"],
    start: int | Int[Tensor, " batch"] = 1,
    length: int | Int[Tensor, " batch"] | None = None,
    batch: int | None = None,
) -> tuple[Bool[Tensor, "batch pos"], Bool[Tensor, "batch pos"]]:
    """(first, repeated) masks for rows whose segment tokens[start : start+length] repeats at start+period.

    `length` defaults to `period` (back-to-back copies). repeated[q]: tokens[q] and tokens[q+1] both
    lie in the second copy; first[q] = repeated[q + period]. [BOS, x, x] is period=L, start=1.
    Chapter 05: induction heads.
    """
    if not isinstance(seq_len, int) or seq_len < 2:
        raise TutorialInputError(f"seq_len must be an int >= 2, got {seq_len!r}.")
    sizes = [t.shape[0] for t in (period, start, length) if isinstance(t, Tensor)]
    n = batch if batch is not None else (sizes[0] if sizes else 1)
    device = next((t.device for t in (period, start, length) if isinstance(t, Tensor)), None)

    def as_rows(v: int | Tensor) -> Tensor:
        if isinstance(v, Tensor):
            return v.to(device=device, dtype=torch.long)
        return torch.full((n,), int(v), device=device)

    p = as_rows(period)
    s = as_rows(start)
    ln = p if length is None else as_rows(length)
    for name, v in (("period", p), ("start", s), ("length", ln)):
        expect_shape(v, (n,), name, "[batch]")
    if (p < 1).any() or (s < 0).any() or (ln < 2).any() or (ln > p).any():
        raise TutorialInputError("need period >= 1, start >= 0 and 2 <= length <= period in every row.")
    if (s + p + ln > seq_len).any():
        raise TutorialInputError(
            f"the second copy (start + period + length) must fit in seq_len={seq_len}, "
            f"got up to {int((s + p + ln).max())}."
        )
    q = torch.arange(seq_len, device=p.device)[None, :]
    lo = (s + p)[:, None]
    repeated = (q >= lo) & (q <= lo + ln[:, None] - 2)
    first = (q >= s[:, None]) & (q <= (s + ln)[:, None] - 2)
    return first, repeated


def is_segments(x: object) -> bool:
    """Whether x looks like a `tasks.RepeatedSegments` batch. Chapter 05: induction heads."""
    return all(hasattr(x, a) for a in ("tokens", "period", "repeated", "first"))


def resolve_batch(
    tokens: Any, period: int | Tensor | None
) -> tuple[Tensor, Tensor, Bool[Tensor, "batch pos"], Bool[Tensor, "batch pos"]]:
    """tokens (a [BOS, x, x] tensor) or a RepeatedSegments -> (tokens, period [batch], first, repeated).

    Chapter 05: induction heads."""
    if is_segments(tokens):
        seg = tokens
        toks = expect_ndim(seg.tokens, 2, "segments.tokens", "[batch, pos]")
        p = seg.period.to(toks.device).long()
        repeated = expect_shape(seg.repeated, tuple(toks.shape), "segments.repeated", "[batch, pos]").to(toks.device)
        # Keep only queries whose own token is a repeat too (an induction head needs it).
        q = torch.arange(toks.shape[1], device=toks.device)[None, :]
        repeated = repeated & (q - p[:, None] >= 0)
        if hasattr(seg, "start"):
            repeated = repeated & (q - p[:, None] >= seg.start.to(toks.device)[:, None])
        # first[q] = repeated[q + period], so both masks hold the same tokens' two occurrences.
        ahead = q + p[:, None]
        first = repeated.gather(1, ahead.clamp(max=toks.shape[1] - 1)) & (ahead < toks.shape[1])
        return toks, p, first, repeated
    toks = expect_ndim(tokens, 2, "tokens", "[batch, pos]")
    expect_dtype(toks, "int", "tokens")
    batch, pos = toks.shape
    if period is None:
        if pos % 2 != 1:
            raise TutorialInputError(
                f"tokens must be [BOS, x, x] with an odd length 1 + 2 * half_len when no period is given, "
                f"got {pos} positions; pass period= or a RepeatedSegments batch."
            )
        period = (pos - 1) // 2
    first, repeated = repeat_masks(pos, period, start=1, batch=batch)
    p = period.long() if isinstance(period, Tensor) else torch.full((batch,), int(period))
    return toks, p.to(toks.device), first.to(toks.device), repeated.to(toks.device)
