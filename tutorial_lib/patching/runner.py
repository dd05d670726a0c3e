"""Chapter 04's grid runner: metric(patched run) for every variant of a grid, batched, each forward
started at the patched layer by the engine the model passes (see ``engine``).

A variant whose source equals the unpatched activation bit for bit wherever it patches (e.g. positions
before the first token where clean and corrupted prompts differ) cannot change the forward: its value
is the unpatched run's metric and it is not run. All variants of one layer go through one forward with
``n_variants * batch`` rows, chunked so that the widest per-row activation stays under
``chunk_elements`` elements.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import torch
from torch import Tensor

from . import native
from .engine import engine_for, forward_from_layer, uses_block_stack
from .grids import Grid, get_act_name, masks
from .metrics import Metric, metric_scalar, metric_values

# Rows (variants x batch) per batched forward are capped so that the largest per-row activation
# (logits, MLP hidden, attention pattern) stays under this many elements per chunk.
DEFAULT_CHUNK_ELEMENTS = 2**23

__all__ = ["DEFAULT_CHUNK_ELEMENTS", "cached_names", "reads_last_position_only", "run_grid"]


def cached_names(model, grid: Grid) -> list[str]:
    """The activations run_grid reads: the grid's hook and the native engine's, every layer.

    Chapter 04: activation patching.
    """
    kinds = (grid.hook, *native.fast_names(model))
    return [get_act_name(k, layer) for layer in range(model.cfg.n_layers) for k in kinds]


def run_grid(
    model,
    grid: Grid,
    base_cache,
    base_logits: Tensor,
    metric: Metric,
    source: Callable[[int], Tensor],
    chunk_elements: int,
    engine: str | None = None,
    layers: Sequence[int] | None = None,
    keep: Callable[[int], Tensor] | None = None,
) -> Tensor:
    """metric(patched run) for every variant of `grid`: the base run with `source(layer)` patched in, for
    every layer or only `layers` (one row each, in that order). `keep(layer)` (a bool per variant) runs only
    those variants; the others are not run and hold the base run's value.

    Chapter 04: activation patching.
    """
    base_value = metric_scalar(metric(base_logits)).to(base_logits.device)
    fast = engine_for(model, engine) == "native"
    last = (fast or uses_block_stack(model, engine)) and reads_last_position_only(metric, base_logits)
    rows_out = []
    for layer in range(model.cfg.n_layers) if layers is None else layers:
        base_act = base_cache[get_act_name(grid.hook, layer)]  # [batch, *rest]
        src = source(layer).to(base_act.dtype)
        layer_masks, axis_sizes = masks(grid, tuple(base_act.shape[1:]))
        layer_masks = layer_masks.to(base_act.device)
        if keep is not None:  # a variant with an empty mask changes nothing and is not run (see _first_changed)
            layer_masks = layer_masks & keep(layer).to(base_act.device).view(-1, *[1] * (layer_masks.ndim - 1))
        first = _first_changed(grid, base_act, src, layer_masks)
        n_pos = base_act.shape[2 if grid.hook == "pattern" else 1]
        per_row = _per_row(model, base_cache[get_act_name("resid_pre", layer)].shape[1], n_pos, last and not fast)
        max_var = max(1, chunk_elements // (per_row * base_act.shape[0]))
        values = base_value.expand(layer_masks.shape[0]).clone()
        if fast:
            for idx, start in _groups(first, n_pos, max_var, base_act.shape[0]):
                with torch.no_grad():
                    logits = native.fast_logits(
                        model, base_cache, base_logits, grid.hook, layer, src, layer_masks[idx], start, last=last
                    )
                values[idx] = metric_values(metric, logits).to(src.device)
        else:
            todo = (first < n_pos).nonzero().flatten().tolist()
            resid = base_cache[get_act_name("resid_pre", layer)]
            for i in range(0, len(todo), max_var):
                idx = todo[i : i + max_var]
                name = get_act_name(grid.hook, layer)
                values[idx] = _run_variants(model, layer, name, resid, src, layer_masks[idx], metric, engine, last)
        rows_out.append(values.reshape(axis_sizes))
    return torch.stack(rows_out)


def _first_changed(grid: Grid, base_act: Tensor, src: Tensor, layer_masks: Tensor) -> Tensor:
    """The first position each variant's patch changes ([var]; n_pos when none: the variant is a no-op).

    Chapter 04: activation patching.
    """
    hit = layer_masks & (src != base_act).any(dim=0)  # [var, *rest]: where the patch changes something
    pos_axis = 2 if grid.hook == "pattern" else 1
    n_pos = base_act.shape[pos_axis]
    changed = hit.flatten(pos_axis + 1).any(-1) if hit.ndim > pos_axis + 1 else hit
    if grid.hook == "pattern":
        changed = changed.any(1)
    return torch.where(
        changed.any(-1), changed.float().argmax(-1), torch.full_like(changed[:, 0], n_pos, dtype=torch.long)
    )


def _per_row(model, seq: int, n_pos: int, last_logits: bool) -> int:
    """Elements of the widest activation of one row of a forward (last_logits: logits at the final position alone).

    Chapter 04: activation patching.
    """
    if not last_logits:
        return seq * _widest(model, n_pos)
    d_vocab = model.cfg.d_vocab_out if model.cfg.d_vocab_out > 0 else model.cfg.d_vocab
    return max(d_vocab, seq * max(model.cfg.d_mlp or 0, model.cfg.n_heads * n_pos, model.cfg.d_model))


def _widest(model, n_pos: int) -> int:
    """The widest per-row activation of a forward: logits, MLP hidden, patterns or the residual.

    Chapter 04: activation patching.
    """
    d_vocab = model.cfg.d_vocab_out if model.cfg.d_vocab_out > 0 else model.cfg.d_vocab
    return max(d_vocab, model.cfg.d_mlp or 0, model.cfg.n_heads * n_pos, model.cfg.d_model)


def _groups(
    first: Tensor, n_pos: int, max_var: int, batch: int, min_rows: int = 256
) -> Iterator[tuple[list[int], int]]:
    """Variants grouped by the first position they change (each group runs from its smallest one).

    Neighbouring start positions are merged until a group has `min_rows` rows, trading a little
    recomputation for fewer, larger forwards; groups never exceed `max_var` variants.

    Chapter 04: activation patching.
    """
    order = sorted((p, i) for i, p in enumerate(first.tolist()) if p < n_pos)
    group: list[int] = []
    start = None
    for p, i in order:
        if group and (len(group) >= max_var or (len(group) * batch >= min_rows and p != start)):
            yield group, start  # pyright: ignore[reportReturnType] - start is set once group is non-empty
            group, start = [], None
        if start is None:
            start = p
        group.append(i)
    if group:
        yield group, start  # pyright: ignore[reportReturnType]


def reads_last_position_only(metric: Metric, logits: Tensor) -> bool:
    """Whether `metric` ignores every position but the last: it gives the same finite value when the
    others are NaN. Then the patched forwards need only the final position's logits.

    Chapter 04: activation patching.
    """
    try:
        with torch.no_grad():
            want = metric_scalar(metric(logits))
            blind = logits.clone()
            blind[:, :-1] = float("nan")
            got = metric_scalar(metric(blind))
    except Exception:  # noqa: BLE001 - a metric that cannot take NaN: assume it reads everything
        return False
    return bool(torch.isfinite(got)) and bool(got == want)


def _run_variants(
    model,
    layer: int,
    name: str,
    resid: Tensor,
    src: Tensor,
    layer_masks: Tensor,
    metric: Metric,
    engine: str | None,
    last: bool = False,
) -> Tensor:
    """One batched forward from `layer` for len(layer_masks) variants; returns their metric values.

    Chapter 04: activation patching.
    """
    n_var, batch = layer_masks.shape[0], resid.shape[0]
    sel = layer_masks[:, None]  # [var, 1, *rest]

    def patch(act: Tensor, hook) -> Tensor:  # noqa: ARG001 - TransformerLens passes the hook point
        act = act.reshape(n_var, batch, *act.shape[1:])
        return torch.where(sel, src[None], act).reshape(n_var * batch, *act.shape[2:])

    with torch.no_grad():
        logits = forward_from_layer(model, resid.repeat(n_var, 1, 1), layer, [(name, patch)], engine=engine, last=last)
    logits = logits.reshape(n_var, batch, *logits.shape[1:])
    return metric_values(metric, logits).to(resid.device)
