"""Chapter 04's attribution patching (Nanda 2023): every cell of every grid estimated to first order
from one clean forward, one corrupted forward and one backward."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from jaxtyping import Float, Int
from torch import Tensor

from .engine import cache, needed
from .grids import GRIDS, PATCH_GRIDS, Grid, check_grid, check_pair, get_act_name, valid_grids
from .metrics import Metric, metric_scalar

__all__ = ["attribution_patch", "attribution_patch_resid"]


def attribution_patch(
    model,
    clean_tokens: Int[Tensor, "batch pos"],
    corrupted_tokens: Int[Tensor, "batch pos"],
    metric: Metric,
    grids: Sequence[str] | str | None = None,
    engine: str | None = None,
) -> dict[str, Float[Tensor, "layer ..."]]:
    """Linear estimate of metric(patched) - metric(corrupted) for every cell of each grid at once.

    Attribution patching (Nanda 2023, "Attribution Patching: Activation Patching At Industrial
    Scale"): with the corrupted run's activations a_corr, the clean run's a_clean, and the gradient
    g = d metric / d a taken on the corrupted run, patching a cell is estimated as the first-order
    Taylor term sum over the cell (and over the batch) of (a_clean - a_corr) * g. It costs one clean
    forward (cache), one corrupted forward and one backward, whatever the grid sizes.
    Compare with activation_patch(...) - metric(corrupted_logits). Shapes as in GRIDS.

    Chapter 04: activation patching.
    """
    clean, corrupted = check_pair(model, clean_tokens, corrupted_tokens)
    valid = [g for g in PATCH_GRIDS if g in valid_grids(model)]
    grids = valid if grids is None else [grids] if isinstance(grids, str) else list(grids)
    for g in grids:
        check_grid(model, g, PATCH_GRIDS)
    hooks_needed = sorted({GRIDS[g].hook for g in grids})
    names = [get_act_name(h, layer) for h in hooks_needed for layer in range(model.cfg.n_layers)]
    _, clean_cache = cache(model, clean, needed(names), engine)
    acts, grads = _corrupted_grads(model, corrupted, metric, names)
    out = {}
    for g in grids:
        spec = GRIDS[g]
        per_layer = []
        for layer in range(model.cfg.n_layers):
            name = get_act_name(spec.hook, layer)
            contrib = ((clean_cache[name] - acts[name]) * grads[name]).sum(dim=0)  # [*rest]
            per_layer.append(_reduce_cells(spec, contrib))
        out[g] = torch.stack(per_layer).detach()
    return out


def _corrupted_grads(
    model, corrupted: Tensor, metric: Metric, names: list[str]
) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """The corrupted run's activations at `names` and d metric / d activation (zeros where unused).

    Chapter 04: activation patching.
    """
    live: dict[str, Tensor] = {}

    def keep(name: str) -> Callable:
        def hook(act: Tensor, hook) -> Tensor:  # noqa: ARG001 - TransformerLens passes the hook point
            live[name] = act
            return act

        return hook

    def make_leaf(act: Tensor, hook) -> Tensor:  # noqa: ARG001 - TransformerLens passes the hook point
        return act.detach().requires_grad_(True)  # gradients exist even if the weights are frozen

    with torch.enable_grad():
        logits = model.run_with_hooks(corrupted, fwd_hooks=[("hook_embed", make_leaf)] + [(n, keep(n)) for n in names])
        value = metric(logits)
        metric_scalar(value)
        # autograd.grad, not backward(): leaves the model's .grad untouched.
        got = torch.autograd.grad(value, [live[n] for n in names], allow_unused=True)
    grads = {n: torch.zeros_like(live[n]) if g is None else g.detach() for n, g in zip(names, got)}
    return {n: live[n].detach() for n in names}, grads


def _reduce_cells(spec: Grid, contrib: Tensor) -> Tensor:
    """Sum a per-element attribution [*rest] into the grid's cells. Chapter 04: activation patching."""
    if spec.hook in ("resid_pre", "attn_out", "mlp_out"):  # [pos, d]
        return contrib.sum(-1) if spec.axes else contrib.sum()
    if spec.hook == "z":  # [pos, head, d_head]
        per = contrib.sum(-1)
        return per.sum(0) if spec.axes == ("head",) else per
    # pattern [head, dest, src]
    per = contrib.sum(-1)
    return per.sum(-1) if spec.axes == ("head",) else per


def attribution_patch_resid(model, clean_tokens, corrupted_tokens, metric) -> Float[Tensor, "layer pos"]:
    """Attribution-patching estimate of patching resid_pre at each (layer, position): sum of (clean - corrupted) * grad.

    Chapter 04: activation patching. Exercise 04.6 (the reference).
    """
    return attribution_patch(model, clean_tokens, corrupted_tokens, metric, grids="resid_pre")["resid_pre"]
