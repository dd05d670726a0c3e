"""Chapter 04's head sets: patch a group of heads together (denoising), and a greedy search for a small
set whose clean outputs restore the answer (the open exercise's reference)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from jaxtyping import Float, Int
from torch import Tensor

from ..validation import expect_heads, expect_range
from .grids import check_pair
from .metrics import Metric
from .paths import path_patch_group

__all__ = ["greedy_head_set", "patch_head_group"]


def patch_head_group(
    model,
    clean_tokens: Int[Tensor, "batch pos"],
    corrupted_tokens: Int[Tensor, "batch pos"],
    metric: Metric,
    heads: Sequence[tuple[int, int]],
    engine: str | None = None,
) -> Float[Tensor, ""]:
    """metric of the corrupted run with the clean outputs (hook_z, every position) of all `heads` patched in
    together, everything else recomputing: activation patching (denoising) of a group of heads.

    It is path patching with the roles swapped (the corrupted prompt is the run, the clean heads the
    senders) and nothing frozen. Chapter 04: activation patching.
    """
    check_pair(model, clean_tokens, corrupted_tokens)
    group = expect_heads(heads, model, "heads")
    return path_patch_group(model, corrupted_tokens, clean_tokens, metric, group, freeze_others=False, engine=engine)


def greedy_head_set(
    model,
    clean_tokens: Int[Tensor, "batch pos"],
    corrupted_tokens: Int[Tensor, "batch pos"],
    metric: Metric,
    max_heads: int = 3,
) -> Int[Tensor, "k 2"]:
    """A small set of heads whose clean outputs, patched together into the corrupted run, restore as much of
    the metric as possible: grown greedily, each round adding the head that raises patch_head_group most.
    Returns one row (layer, head) per chosen head, in the order chosen.

    Chapter 04: activation patching. Exercise 04.8 (the reference, as `find_head_set`).
    """
    expect_range(max_heads, "max_heads", low=1)
    heads = [(layer, h) for layer in range(model.cfg.n_layers) for h in range(model.cfg.n_heads)]
    chosen: list[tuple[int, int]] = []
    for _ in range(min(max_heads, len(heads))):
        scores = {h: patch_head_group(model, clean_tokens, corrupted_tokens, metric, [*chosen, h]).item()
                  for h in heads if h not in chosen}  # fmt: skip
        chosen.append(max(scores, key=lambda h: scores[h]))
    return torch.tensor(chosen, dtype=torch.long).reshape(-1, 2)
