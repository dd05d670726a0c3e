"""Chapter 04's grids: which hook each grid patches, its axes, one boolean mask per patched variant, and
the input checks every patching kernel shares."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor
from transformer_lens.utilities import get_act_name as _get_act_name  # pyright: ignore[reportPrivateImportUsage]

from ..validation import TutorialInputError, expect_tokens

# Hook names are built thousands of times per grid: cache them.
get_act_name = functools.lru_cache(maxsize=4096)(_get_act_name)

__all__ = ["GRIDS", "TRANSFORMERLENS", "Grid", "get_act_name"]


@dataclass(frozen=True)
class Grid:
    """One patching grid: the hook it patches, its axes after "layer", in TransformerLens' order.

    Chapter 04: activation patching.
    """

    hook: str  # short name for get_act_name
    axes: tuple[str, ...]
    doc: str


GRIDS: dict[str, Grid] = {
    "resid_pre": Grid("resid_pre", ("pos",), "[layer, pos]: residual stream entering each block"),
    "attn_out": Grid("attn_out", ("pos",), "[layer, pos]: output of each attention layer"),
    "mlp_out": Grid("mlp_out", ("pos",), "[layer, pos]: output of each MLP layer"),
    "head_out_all_pos": Grid("z", ("head",), "[layer, head]: each head's output (hook_z), all positions"),
    "head_out_by_pos": Grid("z", ("pos", "head"), "[layer, pos, head]: each head's output at one position"),
    "head_pattern_all_pos": Grid("pattern", ("head",), "[layer, head]: each head's whole attention pattern"),
    "head_pattern_by_pos": Grid(
        "pattern", ("head", "dest_pos"), "[layer, head, dest_pos]: one head's pattern row for one query"
    ),
    # Whole-layer grids, used by ablations: one variant per layer.
    "resid_pre_layer": Grid("resid_pre", (), "[layer]: the whole residual stream entering each block"),
    "attn_out_layer": Grid("attn_out", (), "[layer]: the whole output of each attention layer"),
    "mlp_out_layer": Grid("mlp_out", (), "[layer]: the whole output of each MLP layer"),
}
PATCH_GRIDS = tuple(g for g in GRIDS if not g.endswith("_layer"))
# The transformer_lens.patching function each patching grid equals (the tests and the benchmark compare them).
TRANSFORMERLENS = {
    "resid_pre": "get_act_patch_resid_pre",
    "attn_out": "get_act_patch_attn_out",
    "mlp_out": "get_act_patch_mlp_out",
    "head_out_all_pos": "get_act_patch_attn_head_out_all_pos",
    "head_out_by_pos": "get_act_patch_attn_head_out_by_pos",
    "head_pattern_all_pos": "get_act_patch_attn_head_pattern_all_pos",
    "head_pattern_by_pos": "get_act_patch_attn_head_pattern_by_pos",
}


def masks(grid: Grid, act_shape: Sequence[int]) -> tuple[Tensor, tuple[int, ...]]:
    """Boolean masks [n_variants, *act_shape (broadcastable)] in TL's row-major order, and the axis sizes.

    Chapter 04: activation patching.
    """
    if grid.hook in ("resid_pre", "attn_out", "mlp_out"):  # act [pos, d_model]
        n_pos = act_shape[0]
        if grid.axes == ("pos",):
            return torch.eye(n_pos, dtype=torch.bool)[:, :, None], (n_pos,)
        return torch.ones(1, n_pos, 1, dtype=torch.bool), ()
    if grid.hook == "z":  # act [pos, head, d_head]
        n_pos, n_heads = act_shape[0], act_shape[1]
        eye_h = torch.eye(n_heads, dtype=torch.bool)
        if grid.axes == ("head",):
            return eye_h[:, None, :, None], (n_heads,)
        eye_p = torch.eye(n_pos, dtype=torch.bool)
        mask = eye_p[:, None, :, None] & eye_h[None, :, None, :]  # [p, h, pos, head]
        return mask.reshape(n_pos * n_heads, n_pos, n_heads, 1), (n_pos, n_heads)
    if grid.hook == "pattern":  # act [head, dest, src]
        n_heads, n_dest = act_shape[0], act_shape[1]
        eye_h = torch.eye(n_heads, dtype=torch.bool)
        if grid.axes == ("head",):
            return eye_h[:, :, None, None], (n_heads,)
        eye_q = torch.eye(n_dest, dtype=torch.bool)
        mask = eye_h[:, None, :, None] & eye_q[None, :, None, :]  # [h, q, head, dest]
        return mask.reshape(n_heads * n_dest, n_heads, n_dest, 1), (n_heads, n_dest)
    raise AssertionError(grid)


# --------------------------------------------------------------------------------------------
# Input checks shared by the patching kernels


def check_model(model) -> None:
    """A TransformerLens bridge in eval mode. Chapter 04: activation patching."""
    if not hasattr(model, "cfg") or not hasattr(model, "run_with_cache"):
        raise TutorialInputError(f"model must be a TransformerLens TransformerBridge, got {type(model).__name__}.")
    if model.training:
        raise TutorialInputError("model is in training mode; call model.eval() before patching.")


def check_pair(model, clean_tokens: object, corrupted_tokens: object) -> tuple[Tensor, Tensor]:
    """The model, and clean and corrupted tokens of one shape. Chapter 04: activation patching."""
    check_model(model)
    clean = expect_tokens(clean_tokens, "clean_tokens", model)
    corrupted = expect_tokens(corrupted_tokens, "corrupted_tokens", model)
    if clean.shape != corrupted.shape:
        raise TutorialInputError(
            "clean_tokens and corrupted_tokens must have the same shape [batch, pos], got "
            f"{tuple(clean.shape)} and {tuple(corrupted.shape)}."
        )
    return clean, corrupted


def valid_grids(model) -> list[str]:
    """The grids this model has (no MLP grids on attention-only models). Chapter 04: activation patching."""
    return [g for g in GRIDS if not (model.cfg.attn_only and GRIDS[g].hook == "mlp_out")]


def check_grid(model, grid: str, allowed: Sequence[str]) -> Grid:
    """The Grid called `grid`, if it is allowed and the model has it. Chapter 04: activation patching."""
    valid = [g for g in allowed if g in valid_grids(model)]
    if grid not in valid:
        note = " (the model is attention-only: it has no MLPs)" if grid in GRIDS else ""
        raise TutorialInputError(f"unknown grid {grid!r}{note}; valid grids: {', '.join(valid)}.")
    return GRIDS[grid]


def check_layers(model, layers: object) -> list[int] | None:
    """None (every layer) or a non-empty list of distinct layer indices of `model`, as ints.

    Chapter 04: activation patching (a real model's grids at a few depths)."""
    if layers is None:
        return None
    n_layers = model.cfg.n_layers
    items = list(layers) if isinstance(layers, (list, tuple, range)) else None
    out = [int(x) for x in items if isinstance(x, int) and not isinstance(x, bool)] if items is not None else []
    if (
        items is None
        or not out
        or len(out) != len(items)
        or len(set(out)) != len(out)
        or not all(0 <= x < n_layers for x in out)
    ):
        raise TutorialInputError(
            f"layers must be None (every layer) or a non-empty list of distinct ints in [0, {n_layers}); got {layers!r}."
        )
    return out
