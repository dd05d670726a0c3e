"""Chapter 04's activation patching: patch each clean activation of a grid into the corrupted run.

Denoising, as ``transformer_lens.patching``: run the **corrupted** tokens, patch in one activation from
the **clean** run, record ``metric(patched_logits)``. Every grid equals its TransformerLens twin
(``grids.TRANSFORMERLENS``) to float tolerance.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from jaxtyping import Float, Int
from torch import Tensor

from ..validation import expect_heads, expect_index, expect_ndim, expect_range, expect_same_shape
from .engine import cache_many, needed
from .grids import GRIDS, PATCH_GRIDS, check_grid, check_layers, check_pair, get_act_name
from .metrics import Metric
from .runner import DEFAULT_CHUNK_ELEMENTS, cached_names, run_grid

__all__ = [
    "activation_patch",
    "patch_attn_out",
    "patch_head_out_all_pos",
    "patch_head_out_by_pos",
    "patch_head_pattern_all_pos",
    "patch_head_pattern_by_pos",
    "patch_heads",
    "patch_mlp_out",
    "patch_position_hook",
    "patch_resid_pre",
]


def patch_position_hook(
    activation: Float[Tensor, "batch pos d_model"],
    hook,  # noqa: ARG001 - the TransformerLens hook signature (activation, hook)
    clean_activation: Float[Tensor, "batch pos d_model"],
    pos: int,
) -> Float[Tensor, "batch pos d_model"]:
    """The corrupted activation with position `pos` replaced by the clean one (every prompt).

    Chapter 04: activation patching. Exercise 04.2 (the reference).
    """
    expect_same_shape(expect_ndim(activation, 3, "activation", "[batch, pos, d_model]"), clean_activation,
                      "activation and clean_activation")  # fmt: skip
    expect_index(pos, "pos", activation.shape[1])
    out = activation.clone()
    out[:, pos] = clean_activation[:, pos]
    return out


def activation_patch(
    model,
    clean_tokens: Int[Tensor, "batch pos"],
    corrupted_tokens: Int[Tensor, "batch pos"],
    metric: Metric,
    grid: str,
    chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
    engine: str | None = None,
    layers: Sequence[int] | None = None,
) -> Float[Tensor, "layer ..."]:
    """metric after patching each clean activation of `grid` into the corrupted run (see GRIDS for shapes).

    Equal to ``transformer_lens.patching.<TRANSFORMERLENS[grid]>(model, corrupted_tokens, clean_cache, metric)``.
    `engine` caps the engine used (see tutorial_lib.patching.engine). `layers` (default: every layer) patches
    only those layers: row i of the result is layer ``layers[i]`` (a real model's grid at a few depths).

    Chapter 04: activation patching.
    """
    clean, corrupted = check_pair(model, clean_tokens, corrupted_tokens)
    spec = check_grid(model, grid, PATCH_GRIDS)
    expect_range(chunk_elements, "chunk_elements", low=1)
    chosen = check_layers(model, layers)
    names = needed(cached_names(model, spec))
    (_, clean_cache), (corrupted_logits, corrupted_cache) = cache_many(model, [clean, corrupted], names, engine)

    def source(layer: int) -> Tensor:
        return clean_cache[get_act_name(spec.hook, layer)]

    return run_grid(model, spec, corrupted_cache, corrupted_logits, metric, source, chunk_elements, engine, chosen)


def patch_resid_pre(
    model, clean_tokens, corrupted_tokens, metric, engine: str | None = None, layers: Sequence[int] | None = None
) -> Float[Tensor, "layer pos"]:
    """Patch the clean residual stream entering each block, one position at a time.

    Chapter 04: activation patching. Exercise 04.3 (the reference, as `patch_resid_pre_grid`).
    """
    return activation_patch(model, clean_tokens, corrupted_tokens, metric, "resid_pre", engine=engine, layers=layers)


def patch_attn_out(
    model, clean_tokens, corrupted_tokens, metric, engine: str | None = None, layers: Sequence[int] | None = None
) -> Float[Tensor, "layer pos"]:
    """Patch each attention layer's clean output, one position at a time.

    Chapter 04: activation patching.
    """
    return activation_patch(model, clean_tokens, corrupted_tokens, metric, "attn_out", engine=engine, layers=layers)


def patch_mlp_out(
    model, clean_tokens, corrupted_tokens, metric, engine: str | None = None, layers: Sequence[int] | None = None
) -> Float[Tensor, "layer pos"]:
    """Patch each MLP layer's clean output, one position at a time.

    Chapter 04: activation patching.
    """
    return activation_patch(model, clean_tokens, corrupted_tokens, metric, "mlp_out", engine=engine, layers=layers)


def patch_head_out_all_pos(
    model, clean_tokens, corrupted_tokens, metric, engine: str | None = None, layers: Sequence[int] | None = None
) -> Float[Tensor, "layer head"]:
    """Patch each head's clean output (hook_z) at every position.

    Chapter 04: activation patching. Exercise 04.4 (the reference, as `patch_head_grid`).
    """
    return activation_patch(
        model, clean_tokens, corrupted_tokens, metric, "head_out_all_pos", engine=engine, layers=layers
    )


def patch_heads(
    model, clean_tokens, corrupted_tokens, metric, heads: Sequence[tuple[int, int]], engine: str | None = None
) -> Float[Tensor, " n_heads"]:
    """metric after patching each of `heads` alone (its clean hook_z, every position) into the corrupted run:
    the cells ``patch_head_out_all_pos(...)[layer, head]`` of those heads only, from one pair of cached runs
    (a real model's few heads picked by a first pass, without patching every head of their layers).

    Chapter 04: activation patching.
    """
    clean, corrupted = check_pair(model, clean_tokens, corrupted_tokens)
    group = expect_heads(heads, model, "heads")
    spec = GRIDS["head_out_all_pos"]
    layers = sorted({layer for layer, _ in group})
    names = needed(cached_names(model, spec))
    (_, clean_cache), (corrupted_logits, corrupted_cache) = cache_many(model, [clean, corrupted], names, engine)
    wanted = torch.zeros(model.cfg.n_layers, model.cfg.n_heads, dtype=torch.bool)
    for layer, h in group:
        wanted[layer, h] = True
    grid = run_grid(model, spec, corrupted_cache, corrupted_logits, metric,
                    lambda layer: clean_cache[get_act_name(spec.hook, layer)], DEFAULT_CHUNK_ELEMENTS, engine,
                    layers, keep=lambda layer: wanted[layer])  # fmt: skip
    return torch.stack([grid[layers.index(layer), h] for layer, h in group])


def patch_head_out_by_pos(
    model, clean_tokens, corrupted_tokens, metric, engine: str | None = None, layers: Sequence[int] | None = None
) -> Float[Tensor, "layer pos head"]:
    """Patch each head's clean output (hook_z) at one position.

    Chapter 04: activation patching.
    """
    return activation_patch(
        model, clean_tokens, corrupted_tokens, metric, "head_out_by_pos", engine=engine, layers=layers
    )


def patch_head_pattern_all_pos(
    model, clean_tokens, corrupted_tokens, metric, engine: str | None = None
) -> Float[Tensor, "layer head"]:
    """Patch each head's whole clean attention pattern.

    Chapter 04: activation patching.
    """
    return activation_patch(model, clean_tokens, corrupted_tokens, metric, "head_pattern_all_pos", engine=engine)


def patch_head_pattern_by_pos(
    model, clean_tokens, corrupted_tokens, metric, engine: str | None = None
) -> Float[Tensor, "layer head dest_pos"]:
    """Patch one row (one destination position) of each head's clean attention pattern.

    Chapter 04: activation patching.
    """
    return activation_patch(model, clean_tokens, corrupted_tokens, metric, "head_pattern_by_pos", engine=engine)
