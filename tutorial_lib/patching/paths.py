"""Chapter 04's path patching (Wang et al. 2022): the effect of sender heads along the paths to
receiver heads' queries, keys or values (or straight to the logits), everything else frozen.

One core, ``path_values``, runs a batch of sender sets: ``path_patch`` gives it one variant per head of
a layer, ``path_patch_group`` one variant with a whole group.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from ..validation import TutorialInputError, expect_choice, expect_heads, expect_model
from .engine import cache_many, forward_from_layer, needed
from .grids import check_pair, get_act_name
from .metrics import Metric, metric_scalar, metric_values
from .native import repeat_rows

__all__ = ["PathSetup", "path_patch", "path_patch_group", "path_patch_groups", "path_patch_to_receiver", "path_values"]


@dataclass(frozen=True)
class PathSetup:
    """What every sender set of one path-patching call shares: the model, both runs' caches, the clean
    metric, the receivers (None: the logits) and their inputs, and how the other components behave.

    Chapter 04: activation patching.
    """

    model: Any
    clean_cache: dict[str, Tensor]
    corrupted_cache: dict[str, Tensor]
    clean_value: Tensor
    metric: Metric
    receivers: list[tuple[int, int]] | None
    inputs: tuple[str, ...]
    freeze_mlps: bool = False
    freeze_others: bool = True
    engine: str | None = None


def path_setup(
    model,
    clean: Tensor,
    corrupted: Tensor,
    metric: Metric,
    receivers: list[tuple[int, int]] | None,
    inputs: tuple[str, ...],
    freeze_mlps: bool = False,
    freeze_others: bool = True,
    engine: str | None = None,
) -> PathSetup:
    """Cache the clean and corrupted runs (one forward) for path_values. Chapter 04: activation patching."""
    kinds = ("z", "resid_pre") if model.cfg.attn_only else ("z", "resid_pre", "mlp_out")
    names = [get_act_name(k, layer) for layer in range(model.cfg.n_layers) for k in kinds]
    (clean_logits, clean_cache), (_, corrupted_cache) = cache_many(model, [clean, corrupted], needed(names), engine)
    clean_value = metric_scalar(metric(clean_logits)).to(clean.device)
    return PathSetup(model, clean_cache, corrupted_cache, clean_value, metric, receivers, inputs, freeze_mlps,
                     freeze_others, engine)  # fmt: skip


def path_values(setup: PathSetup, senders: Bool[Tensor, "var layer head"]) -> Float[Tensor, " var"]:
    """metric for each variant's sender set (senders[v, layer, head]), on the clean tokens:

      1. run with the senders' outputs (hook_z) taken from the corrupted run and every other head's output
         frozen at its clean value (unless freeze_others=False: then they recompute; MLPs recompute unless
         freeze_mlps); record each receiver's input, or, with receivers None, the logits;
      2. run the clean tokens again with only those receiver inputs replaced (everything else recomputes)
         and evaluate the metric.
    A receiver at or before the first sender's layer sees no change; with none after it, the clean metric.

    Chapter 04: activation patching.
    """
    n_var = senders.shape[0]
    start = int(senders.any(0).any(-1).nonzero()[0, 0])  # the first sender layer: nothing changes before it
    later = None if setup.receivers is None else [r for r in setup.receivers if r[0] > start]
    if later == []:
        return setup.clean_value.expand(n_var).clone()
    with torch.no_grad():
        result, captured = _sender_run(setup, senders, start, later)
        if later is None:
            return metric_values(setup.metric, result.reshape(n_var, -1, *result.shape[1:]))
        return _receiver_run(setup, captured, later, n_var)


def _sender_hook(setup: PathSetup, senders: Tensor, layer: int) -> Callable:
    """hook_z of `layer` in step 1: the senders corrupted, the other heads frozen (or recomputed).

    Chapter 04: activation patching.
    """
    n_var = senders.shape[0]
    name = get_act_name("z", layer)
    clean_z, corr_z = setup.clean_cache[name], setup.corrupted_cache[name]
    here = senders[:, layer]  # [var, head]

    def hook(z: Tensor, hook) -> Tensor:  # noqa: ARG001 - TransformerLens passes the hook point
        if not here.any():
            return repeat_rows(clean_z, n_var) if setup.freeze_others else z
        other = clean_z[None] if setup.freeze_others else z.reshape(n_var, *clean_z.shape)
        mixed = torch.where(here[:, None, None, :, None], corr_z[None], other)
        return mixed.reshape(n_var * clean_z.shape[0], *clean_z.shape[1:])

    return hook


def _sender_run(
    setup: PathSetup, senders: Tensor, start: int, later: list[tuple[int, int]] | None
) -> tuple[Tensor, dict[str, Tensor]]:
    """Step 1 from block `start`: logits (receivers None) or the residual, and the receivers' inputs.

    Chapter 04: activation patching.
    """
    model, n_var = setup.model, senders.shape[0]
    n_layers = model.cfg.n_layers
    hooks = [(get_act_name("z", layer), _sender_hook(setup, senders, layer)) for layer in range(start, n_layers)]
    if setup.freeze_mlps:
        for layer in range(start, n_layers):
            clean_mlp = setup.clean_cache[get_act_name("mlp_out", layer)]
            hooks.append((get_act_name("mlp_out", layer), lambda a, hook, m=clean_mlp: repeat_rows(m, n_var)))  # noqa: ARG005
    captured: dict[str, Tensor] = {}
    for layer in sorted({r[0] for r in later or []}):
        for kind in setup.inputs:
            name = get_act_name(kind, layer)

            def grab(a: Tensor, hook, name=name) -> None:  # noqa: ARG001
                captured[name] = a.detach().clone()

            hooks.append((name, grab))
    resid = repeat_rows(setup.clean_cache[get_act_name("resid_pre", start)], n_var)
    last = None if later is None else max(r[0] for r in later)
    stop = None if last is None or last + 1 >= n_layers else last + 1
    result = forward_from_layer(model, resid, start, hooks, stop_at_layer=stop, engine=setup.engine)
    return result, captured


def _receiver_run(
    setup: PathSetup, captured: dict[str, Tensor], later: list[tuple[int, int]], n_var: int
) -> Float[Tensor, " var"]:
    """Step 2: the clean run with only the receivers' inputs replaced by step 1's; the metric per variant.

    Chapter 04: activation patching.
    """
    model = setup.model
    n_heads = model.cfg.n_heads
    device = setup.clean_value.device
    patch_hooks = []
    for layer in sorted({r[0] for r in later}):
        for kind in setup.inputs:
            name = get_act_name(kind, layer)
            n_here = captured[name].shape[2]  # fewer key/value heads on a grouped-query model: the group's one
            heads = torch.zeros(n_here, dtype=torch.bool, device=device)
            heads[[r[1] // (n_heads // n_here) for r in later if r[0] == layer]] = True

            def put(a: Tensor, hook, new=captured[name], heads=heads) -> Tensor:  # noqa: ARG001
                return torch.where(heads[None, None, :, None], new, a)

            patch_hooks.append((name, put))
    start = min(r[0] for r in later)
    resid = repeat_rows(setup.clean_cache[get_act_name("resid_pre", start)], n_var)
    logits = forward_from_layer(model, resid, start, patch_hooks, engine=setup.engine)
    return metric_values(setup.metric, logits.reshape(n_var, -1, *logits.shape[1:]))


def _check_path(
    model, receivers, receiver_input: str | Sequence[str], freeze_mlps: bool
) -> tuple[list[tuple[int, int]] | None, tuple[str, ...]]:
    """The receivers (None: the logits) and receiver inputs of a path-patching call, checked.

    Chapter 04: activation patching.
    """
    inputs = (receiver_input,) if isinstance(receiver_input, str) else tuple(receiver_input)
    if not inputs:
        raise TutorialInputError("receiver_input must name at least one of 'q', 'k', 'v'.")
    for i in inputs:
        expect_choice(i, ("q", "k", "v"), "receiver_input")
    if freeze_mlps and model.cfg.attn_only:
        raise TutorialInputError("freeze_mlps=True needs MLPs; the model is attention-only.")
    return (None if receivers is None else expect_heads(receivers, model, "receivers")), inputs


def path_patch(
    model,
    clean_tokens: Int[Tensor, "batch pos"],
    corrupted_tokens: Int[Tensor, "batch pos"],
    metric: Metric,
    receivers: Sequence[tuple[int, int]] | None = None,
    receiver_input: str | Sequence[str] = ("q", "k", "v"),
    freeze_mlps: bool = False,
    engine: str | None = None,
) -> Float[Tensor, "layer head"]:
    """metric after patching the path sender head -> receivers, for every sender head (Wang et al. 2022).

    For each sender head (layer, head), on the **clean** tokens:
      1. run with the sender's output (hook_z) taken from the corrupted run and every other head's
         output frozen at its clean value (MLPs recompute, unless `freeze_mlps`, which freezes
         hook_mlp_out from the sender's layer on); record the receivers' inputs: hook_q/k/v
         (chosen by `receiver_input`) of each receiver head (layer, head), or, when `receivers` is
         None, the logits (grouped-query models: a receiver's key or value is the one its query group
         shares, so patching it reaches the group's other heads too);
      2. run the clean tokens again with only those receiver inputs replaced by the values from 1.
         (everything else, including later layers, recomputes) and evaluate `metric`.
    With `receivers=None` the metric of step 1's logits is returned (the path sender -> logits).
    A sender at or after the last receiver's layer has no path to it: its cell is the clean metric.
    Normalise with normalise(value, clean, corrupted): 1 = path not needed, 0 = the full corruption.

    Chapter 04: activation patching.
    """
    clean, corrupted = check_pair(model, clean_tokens, corrupted_tokens)
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    checked, inputs = _check_path(model, receivers, receiver_input, freeze_mlps)
    setup = path_setup(model, clean, corrupted, metric, checked, inputs, freeze_mlps, engine=engine)
    out = setup.clean_value.expand(n_layers, n_heads).clone()
    last = n_layers if checked is None else max(r[0] for r in checked)
    eye = torch.eye(n_heads, dtype=torch.bool, device=clean.device)
    for sender_layer in range(last):  # one variant per sender head of this layer
        senders = torch.zeros(n_heads, n_layers, n_heads, dtype=torch.bool, device=clean.device)
        senders[:, sender_layer] = eye
        out[sender_layer] = path_values(setup, senders)
    return out


def path_patch_group(
    model,
    clean_tokens: Int[Tensor, "batch pos"],
    corrupted_tokens: Int[Tensor, "batch pos"],
    metric: Metric,
    senders: Sequence[tuple[int, int]],
    receivers: Sequence[tuple[int, int]] | None = None,
    receiver_input: str | Sequence[str] = ("q", "k", "v"),
    freeze_mlps: bool = False,
    freeze_others: bool = True,
    engine: str | None = None,
) -> Float[Tensor, ""]:
    """path_patch for a *group* of sender heads corrupted together: one metric value.

    Heads that share a job (several heads that each carry part of the same signal) can each look
    unimportant alone; corrupting the whole group along the path tests the job itself. Same recipe
    and normalisation as `path_patch`; the senders' paths to each other are frozen too.
    freeze_others=False lets the non-sender heads recompute in step 1: the senders' total effect on
    the receivers, through every later head, instead of the direct paths.

    Chapter 04: activation patching.
    """
    clean, corrupted = check_pair(model, clean_tokens, corrupted_tokens)
    group = expect_heads(senders, model, "senders")
    checked, inputs = _check_path(model, receivers, receiver_input, freeze_mlps)
    setup = path_setup(model, clean, corrupted, metric, checked, inputs, freeze_mlps, freeze_others, engine)
    mask = torch.zeros(1, model.cfg.n_layers, model.cfg.n_heads, dtype=torch.bool, device=clean.device)
    for layer, head in group:
        mask[0, layer, head] = True
    return path_values(setup, mask)[0]


def path_patch_groups(
    model,
    clean_tokens: Int[Tensor, "batch pos"],
    corrupted_tokens: Int[Tensor, "batch pos"],
    metric: Metric,
    groups: Sequence[Sequence[tuple[int, int]]],
    receivers: Sequence[tuple[int, int]] | None = None,
    receiver_input: str | Sequence[str] = ("q", "k", "v"),
) -> Float[Tensor, " n_groups"]:
    """path_patch_group for several sender groups along the same path: one value per group, from one pair of
    cached runs and one batched forward (a group and its random controls, say).

    Chapter 04: activation patching.
    """
    clean, corrupted = check_pair(model, clean_tokens, corrupted_tokens)
    if not isinstance(groups, (list, tuple)) or not groups:
        raise TutorialInputError(f"groups must be a non-empty list of sender lists, got {groups!r}.")
    checked_groups = [expect_heads(g, model, f"groups[{i}]") for i, g in enumerate(groups)]
    checked, inputs = _check_path(model, receivers, receiver_input, False)
    setup = path_setup(model, clean, corrupted, metric, checked, inputs)
    return path_values(setup, group_masks(model, checked_groups, clean.device))


def group_masks(model, groups: Sequence[Sequence[tuple[int, int]]], device=None) -> Bool[Tensor, "group layer head"]:
    """path_values' sender masks: one row per group of (layer, head) pairs (checked by the caller).

    Chapter 04: activation patching.
    """
    mask = torch.zeros(len(groups), model.cfg.n_layers, model.cfg.n_heads, dtype=torch.bool, device=device)
    for i, group in enumerate(groups):
        for layer, head in group:
            mask[i, layer, head] = True
    return mask


def path_patch_to_receiver(model, clean_tokens, corrupted_tokens, metric, senders, receiver, receiver_input) -> float:
    """metric on the clean run when only head `receiver`'s input `receiver_input` ("q", "k" or "v") sees the
    corrupted outputs of the `senders` heads (every other head frozen at its clean output while it is computed).

    Chapter 04: activation patching. Exercise 04.5 (the reference).
    """
    ((layer, _),) = expect_heads([receiver], expect_model(model), "receiver")
    if any(sender_layer >= layer for sender_layer, _ in expect_heads(senders, model, "senders")):
        raise TutorialInputError(
            f"receiver {tuple(receiver)} must sit in a later layer than every sender, got {senders}."
        )
    return path_patch_group(model, clean_tokens, corrupted_tokens, metric, senders, receivers=[receiver],
                            receiver_input=receiver_input).item()  # fmt: skip
