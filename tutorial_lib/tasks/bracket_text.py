"""Nested-bracket sequences with their depth at every token (chapter 03)."""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch
from jaxtyping import Bool, Int
from torch import Tensor

from ..validation import TutorialInputError, expect_int_at_least
from .seeding import python_rng
from .words import ADJECTIVES, CLOSE, NOUNS, OPEN, encode, stack_rows


@dataclass
class BracketBatch:
    """Word sequences with nested round brackets; depth[b, pos] = brackets open after token pos.

    Chapter 03: probing."""

    texts: list[str]
    tokens: Int[Tensor, "batch pos"]
    depth: Int[Tensor, "batch pos"]  # 0 at BOS; "(" raises it at its own position, ")" lowers it
    can_close: Bool[Tensor, "batch pos"]  # depth > 0: a ")" may come next


def _bracket_words(rng: random.Random, n_words: int, max_depth: int) -> list[str]:
    """A balanced sequence of `n_words` tokens (ending in "."): brackets open/close at random, forced closed at the end.

    Chapter 03: probing."""
    out, depth = [], 0
    body = n_words - 1
    while len(out) < body:
        left = body - len(out)
        if depth >= left:  # only closes fit
            out.append(CLOSE)
            depth -= 1
            continue
        r = rng.random()
        if depth < max_depth and depth + 2 <= left and r < 0.25:
            out.append(OPEN)
            depth += 1
        elif depth > 0 and r < 0.55:
            out.append(CLOSE)
            depth -= 1
        else:
            out.append(rng.choice(NOUNS + ADJECTIVES))
    return out + ["."]


def bracket_depth(words: list[str]) -> list[int]:
    """Depth after each word (reference counter).

    Chapter 03: probing."""
    if isinstance(words, str) or not all(isinstance(w, str) for w in words):
        raise TutorialInputError(f"words must be a list of words (str), e.g. text.split(), got {words!r}.")
    d, out = 0, []
    for i, w in enumerate(words):
        d += (w == OPEN) - (w == CLOSE)
        if d < 0:
            raise TutorialInputError(f"words closes a bracket that was never opened (word {i}: {CLOSE!r}).")
        out.append(d)
    return out


def brackets(batch: int, n_words: int = 24, max_depth: int = 4, seed: int | torch.Generator = 0) -> BracketBatch:
    """Nested-bracket sequences of `n_words` tokens after BOS, e.g. "( cat ( red ) tree ) dog .", with depths.

    Chapter 03: probing."""
    expect_int_at_least(batch, "batch")
    expect_int_at_least(n_words, "n_words", 3)
    expect_int_at_least(max_depth, "max_depth", 0)
    rng = python_rng(seed)
    words = [_bracket_words(rng, n_words, max_depth) for _ in range(batch)]
    texts = [" ".join(w) for w in words]
    tokens = stack_rows([encode(t) for t in texts])
    depth = torch.tensor([[0] + bracket_depth(w) for w in words])
    return BracketBatch(texts=texts, tokens=tokens, depth=depth, can_close=depth > 0)
