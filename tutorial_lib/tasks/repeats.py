"""Repeated segments for induction (chapter 05): random tokens with one segment copied later."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Bool, Int
from torch import Tensor

from ..validation import TutorialInputError, expect_int_at_least
from .seeding import int_range, torch_generator


@dataclass
class RepeatedSegments:
    """Random tokens with one segment repeated once: [BOS, filler, seg, seg, filler].

    Chapter 05: induction heads."""

    tokens: Int[Tensor, "batch pos"]  # position 0 is BOS
    period: Int[Tensor, " batch"]  # distance between the two occurrences (= segment length unless `length` is set)
    start: Int[Tensor, " batch"]  # position where the first occurrence begins
    repeated: Bool[Tensor, "batch pos"]  # pos and pos+1 inside the second occurrence: tokens[pos+1] is a copy
    first: Bool[Tensor, "batch pos"]  # the matching positions inside the first occurrence (repeated shifted back)


def _random_tokens(shape: tuple[int, ...], d_vocab: int, bos: int, gen: torch.Generator) -> Tensor:
    """Uniform tokens in [0, d_vocab) that never equal `bos`.

    Chapter 05: induction heads."""
    x = torch.randint(0, d_vocab - 1, shape, generator=gen)
    return x + (x >= bos).long()


def repeated_segments(
    batch: int,
    seq_len: int,
    d_vocab: int,
    period: int | tuple[int, int],
    offset: int | tuple[int, int] = 0,
    bos: int = 0,
    seed: int | torch.Generator = 0,
    length: int | tuple[int, int] | None = None,
) -> RepeatedSegments:
    """Each row copies a random segment `period` positions later; the first copy starts at 1 + `offset`.

    `period`, `offset` and `length` (the segment's length; None: equal to the period, so the copy follows
    right after the original) are ints or inclusive ranges drawn per row, so no fixed position or fixed
    offset predicts the copies: only looking back to the earlier occurrence does. A length shorter than
    the period leaves random filler between the two occurrences.
    Chapter 05: induction heads.
    """
    expect_int_at_least(batch, "batch")
    expect_int_at_least(seq_len, "seq_len")
    p_lo, p_hi = int_range(period, "period")
    o_lo, o_hi = int_range(offset, "offset")
    l_lo, l_hi = (p_lo, p_hi) if length is None else int_range(length, "length")
    if p_lo < 2 or l_lo < 2:
        raise TutorialInputError(f"period and length must be at least 2, got {period!r} and {length!r}.")
    if 1 + o_hi + p_hi + min(l_hi, p_hi) > seq_len:
        raise TutorialInputError(
            f"seq_len={seq_len} is too short: BOS + offset up to {o_hi} + period up to {p_hi} + a copy of up to "
            f"{min(l_hi, p_hi)} tokens need {1 + o_hi + p_hi + min(l_hi, p_hi)}."
        )
    if d_vocab < 3 or not 0 <= bos < d_vocab:
        raise TutorialInputError(f"need d_vocab >= 3 and 0 <= bos < d_vocab, got d_vocab={d_vocab}, bos={bos}.")
    gen = torch_generator(seed)
    p = torch.randint(p_lo, p_hi + 1, (batch,), generator=gen)
    start = 1 + torch.randint(o_lo, o_hi + 1, (batch,), generator=gen)
    n = p if length is None else torch.minimum(torch.randint(l_lo, l_hi + 1, (batch,), generator=gen), p)
    tokens = _random_tokens((batch, seq_len), d_vocab, bos, gen)
    tokens[:, 0] = bos
    pos = torch.arange(seq_len)[None, :]
    s2 = (start + p)[:, None]
    second = (pos >= s2) & (pos < s2 + n[:, None])
    source = (pos - p[:, None]).clamp(min=0)
    tokens = torch.where(second, tokens.gather(1, source), tokens)
    repeated = (pos >= s2) & (pos < s2 + n[:, None] - 1)
    first = (pos >= start[:, None]) & (pos < (start + n - 1)[:, None])
    return RepeatedSegments(tokens=tokens, period=p, start=start, repeated=repeated, first=first)


def repeated_tokens(
    batch: int, half_len: int, d_vocab: int, bos: int = 0, seed: int | torch.Generator = 0
) -> Int[Tensor, "batch 1+2*half_len"]:
    """The classic head-detector input [BOS, x, x] with x uniform random tokens of length `half_len`.

    Exercise 05.1. Chapter 05: induction heads."""
    expect_int_at_least(batch, "batch")
    expect_int_at_least(half_len, "half_len")
    if not isinstance(d_vocab, int) or not isinstance(bos, int) or d_vocab < 2 or not 0 <= bos < d_vocab:
        raise TutorialInputError(f"need d_vocab >= 2 and 0 <= bos < d_vocab, got d_vocab={d_vocab!r}, bos={bos!r}.")
    x = _random_tokens((batch, half_len), d_vocab, bos, torch_generator(seed))
    return torch.cat([torch.full((batch, 1), bos), x, x], dim=1)
