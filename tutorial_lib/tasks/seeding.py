"""Seeds: every generator takes an int or a torch.Generator; the same seed gives the same data."""

from __future__ import annotations

import random

import torch

from ..validation import TutorialInputError


def torch_generator(seed: int | torch.Generator) -> torch.Generator:
    """A torch.Generator from an int seed (a generator passes through). Chapters 02-06: every generator's seed."""
    if isinstance(seed, torch.Generator):
        return seed
    if not isinstance(seed, int):
        raise TutorialInputError(f"seed must be an int or a torch.Generator, got {type(seed).__name__}.")
    return torch.Generator().manual_seed(seed)


def python_rng(seed: int | torch.Generator) -> random.Random:
    """A Python RNG for the text generators, derived from an int seed or a torch.Generator.

    Chapters 02-06: every generator's seed."""
    if isinstance(seed, torch.Generator):
        return random.Random(int(torch.randint(0, 2**31 - 1, (1,), generator=seed)))
    if not isinstance(seed, int):
        raise TutorialInputError(f"seed must be an int or a torch.Generator, got {type(seed).__name__}.")
    return random.Random(seed)


def int_range(value: int | tuple[int, int], name: str) -> tuple[int, int]:
    """An int or an inclusive range (low, high) as (low, high), checked. Chapters 02-06: every generator's seed."""
    lo, hi = (value, value) if isinstance(value, int) else tuple(value)
    if not (isinstance(lo, int) and isinstance(hi, int)) or lo > hi or lo < 0:
        raise TutorialInputError(f"{name} must be an int >= 0 or an inclusive range (low, high), got {value!r}.")
    return lo, hi
