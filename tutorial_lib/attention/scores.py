"""Attention-pattern detectors: previous-token, induction, duplicate-token and current-token scores
per head (chapter 05)."""

from __future__ import annotations

from typing import Any

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor
from transformer_lens.utilities import get_act_name  # pyright: ignore[reportPrivateImportUsage]

from ..validation import TutorialInputError, expect_dtype, expect_finite, expect_shape, expect_tokens, model_device
from .masks import is_segments, resolve_batch

SCORE_KINDS = ("previous", "induction", "duplicate", "current")


def stack_patterns(cache: Any) -> Float[Tensor, "batch layer head q k"]:
    """All layers' `hook_pattern` from an ActivationCache (or a dict) as one [batch, layer, head, q, k] tensor.

    Chapter 05: induction heads."""
    if isinstance(cache, Tensor) or not (hasattr(cache, "keys") or hasattr(cache, "__contains__")):
        raise TutorialInputError(f"cache must be an ActivationCache or a dict, got {type(cache).__name__}.")
    layers = []
    while get_act_name("pattern", len(layers)) in cache:
        layers.append(cache[get_act_name("pattern", len(layers))])
    if not layers:
        raise TutorialInputError(
            "the cache holds no blocks.{l}.attn.hook_pattern: run the model with "
            "names_filter=lambda name: name.endswith('hook_pattern') (or no filter)."
        )
    return torch.stack(layers, dim=1)


def _as_pattern5(pattern: Any) -> tuple[Float[Tensor, "batch layer head q k"], bool]:
    """Accept a cache, [batch, head, q, k] or [batch, layer, head, q, k]; say whether to drop the layer axis.

    Chapter 05: induction heads."""
    if not isinstance(pattern, Tensor):
        if hasattr(pattern, "keys") or hasattr(pattern, "__contains__"):
            return stack_patterns(pattern), False
        raise TutorialInputError(f"pattern must be a tensor or an ActivationCache, got {type(pattern).__name__}.")
    expect_dtype(pattern, "float", "pattern")
    expect_finite(pattern, "pattern")
    if pattern.ndim == 4:
        return pattern[:, None], True
    if pattern.ndim == 5:
        return pattern, False
    raise TutorialInputError(
        f"pattern must be [batch, head, q, k] or [batch, layer, head, q, k], got shape {tuple(pattern.shape)}."
    )


def _query_mask(mask: Tensor | None, batch: int, n_q: int, device, default: Tensor) -> Tensor:
    """A [batch, q] bool mask of scored queries: `mask` checked and broadcast, or `default`. Chapter 05: induction heads."""
    if mask is None:
        return default
    mask = expect_dtype(mask, "bool", "query_mask")
    if mask.ndim == 1:
        mask = mask[None].expand(batch, -1)
    expect_shape(mask, (batch, n_q), "query_mask", "[batch, q]")
    return mask.to(device)


def target_score(
    pattern: Any, target: Int[Tensor, "batch q"], query_mask: Bool[Tensor, "batch q"]
) -> Float[Tensor, "... head"]:
    """Mean attention from each masked query q to key target[b, q], pooled over batch and queries.

    Chapter 05: induction heads."""
    p5, squeeze = _as_pattern5(pattern)
    b, _, _, n_q, n_k = p5.shape
    expect_shape(target, (b, n_q), "target", "[batch, q]")
    expect_shape(query_mask, (b, n_q), "query_mask", "[batch, q]")
    valid = query_mask.to(p5.device) & (target >= 0).to(p5.device) & (target < n_k).to(p5.device)
    if not valid.any():
        raise TutorialInputError("no query position is left to score: check query_mask and period.")
    idx = target.to(p5.device).clamp(0, n_k - 1)[:, None, None, :, None].expand(*p5.shape[:4], 1)
    picked = p5.gather(-1, idx).squeeze(-1)  # [batch, layer, head, q]
    w = valid[:, None, None, :].to(p5.dtype)
    score = (picked * w).sum(dim=(0, 3)) / w.sum(dim=(0, 3))
    return score[0] if squeeze else score


def _period_rows(period: int | Tensor, batch: int, device) -> Tensor:
    """`period` (an int or an int tensor [batch] or []) as a long tensor [batch]. Chapter 05: induction heads."""
    if isinstance(period, Tensor):
        period = expect_dtype(period, "int", "period")
        if period.ndim == 0:
            period = period.expand(batch)
        expect_shape(period, (batch,), "period", "[batch]")
        return period.to(device).long()
    if not isinstance(period, int) or period < 1:
        raise TutorialInputError(f"period must be a positive int or an int tensor [batch], got {period!r}.")
    return torch.full((batch,), period, device=device, dtype=torch.long)


def _offset_score(pattern: Any, back: int | Tensor, shift: int, query_mask: Tensor | None, default_from: Tensor):
    """Score attention from q to q - back + shift; default queries: q >= default_from[b].

    Chapter 05: induction heads."""
    p5, squeeze = _as_pattern5(pattern)
    b, n_q = p5.shape[0], p5.shape[3]
    if n_q != p5.shape[4]:
        raise TutorialInputError(f"pattern must be square [..., q, k] with q == k, got shape {tuple(p5.shape)}.")
    back = (
        _period_rows(back, b, p5.device)
        if not (isinstance(back, int) and back == 0)
        else torch.zeros(b, dtype=torch.long, device=p5.device)
    )
    q = torch.arange(n_q, device=p5.device)[None, :]
    mask = _query_mask(query_mask, b, n_q, p5.device, q >= default_from.to(p5.device)[:, None])
    score = target_score(p5, q - back[:, None] + shift, mask)
    return score[0] if squeeze else score


def previous_token_score(pattern: Any, query_mask: Bool[Tensor, "batch q"] | None = None) -> Float[Tensor, "... head"]:
    """Mean attention from each token to the one before it (queries q >= 1 unless masked).

    Exercise 05.2.

    Chapter 05: induction heads."""
    p5, _ = _as_pattern5(pattern)
    return _offset_score(pattern, 1, 0, query_mask, torch.ones(p5.shape[0], dtype=torch.long))


def current_token_score(pattern: Any, query_mask: Bool[Tensor, "batch q"] | None = None) -> Float[Tensor, "... head"]:
    """Mean attention from each token to itself (queries q >= 1 unless masked: BOS can only see itself).

    Chapter 05: induction heads."""
    p5, _ = _as_pattern5(pattern)
    return _offset_score(pattern, 0, 0, query_mask, torch.ones(p5.shape[0], dtype=torch.long))


def induction_score(
    pattern: Any, period: int | Int[Tensor, " batch"], query_mask: Bool[Tensor, "batch q"] | None = None
) -> Float[Tensor, "... head"]:
    """Mean attention from each repeated token to the token after its previous occurrence (q -> q - period + 1).

    Default queries: q >= period + 1, the second half of [BOS, x, x]; pass `repeated` otherwise.
    Exercise 05.3.
    Chapter 05: induction heads.
    """
    p5, _ = _as_pattern5(pattern)
    rows = _period_rows(period, p5.shape[0], p5.device)
    return _offset_score(pattern, rows, 1, query_mask, rows + 1)


def duplicate_token_score(
    pattern: Any, period: int | Int[Tensor, " batch"], query_mask: Bool[Tensor, "batch q"] | None = None
) -> Float[Tensor, "... head"]:
    """Mean attention from each repeated token to its previous occurrence (q -> q - period).

    Chapter 05: induction heads."""
    p5, _ = _as_pattern5(pattern)
    rows = _period_rows(period, p5.shape[0], p5.device)
    return _offset_score(pattern, rows, 0, query_mask, rows + 1)


def attention_scores(
    pattern: Any, period: int | Int[Tensor, " batch"], query_mask: Bool[Tensor, "batch q"] | None = None
) -> dict[str, Float[Tensor, "... head"]]:
    """All four scores at once. `query_mask` (e.g. `repeated`) restricts induction and duplicate queries only.

    Chapter 05: induction heads."""
    p5, squeeze = _as_pattern5(pattern)
    pat = p5[:, 0] if squeeze else p5
    return {
        "previous": previous_token_score(pat),
        "induction": induction_score(pat, period, query_mask),
        "duplicate": duplicate_token_score(pat, period, query_mask),
        "current": current_token_score(pat),
    }


@torch.no_grad()
def head_scores(model, tokens: Any, period: int | Tensor | None = None) -> dict[str, Float[Tensor, "layer head"]]:
    """Run `model` on [BOS, x, x] tokens or a RepeatedSegments batch, caching only the patterns,
    and score every head: {"previous", "induction", "duplicate", "current"} -> [n_layers, n_heads].
    Exercise 05.4 (the notebook's `detect_heads`). Chapter 05: induction heads."""
    toks, p, _, repeated = resolve_batch(tokens, period)
    toks = expect_tokens(toks, "tokens", model).to(model_device(model))
    _, cache = model.run_with_cache(toks, names_filter=lambda name: name.endswith("hook_pattern"))
    mask = repeated.to(toks.device) if is_segments(tokens) else None  # [BOS, x, x]: the whole second half
    return attention_scores(stack_patterns(cache), p.to(toks.device), mask)
