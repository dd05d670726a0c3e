"""The causal K-composition test on any model (chapter 05): the previous-token heads before an induction
head, and path patching from them into the induction heads' queries, keys or values, against random
senders from the same layers. On a grouped-query model a receiver's key (or value) is its key head's, so
patching it reaches the other query heads of the group too (`patching.path_patch_group`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import torch
from torch import Tensor

from ..patching.grids import check_pair
from ..patching.paths import group_masks, path_setup, path_values
from ..validation import (
    TutorialInputError,
    expect_heads,
    expect_int_at_least,
    expect_ndim,
    expect_number,
)
from .ablation import token_losses
from .masks import resolve_batch


def previous_token_senders(previous: Tensor, before_layer: int, n: int = 4) -> list[tuple[int, int]]:
    """The `n` heads with the highest previous-token score (`previous` [layer, head]) in layers before
    `before_layer`, best first: the candidate senders of K-composition into an induction head there.

    Chapter 05: induction heads."""
    previous = expect_ndim(previous, 2, "previous", "[layer, head]")
    n = expect_int_at_least(n, "n")
    n_layers, n_heads = previous.shape
    if not isinstance(before_layer, int) or not 1 <= before_layer <= n_layers:
        raise TutorialInputError(f"before_layer must be an int in [1, {n_layers}], got {before_layer!r}.")
    if n > before_layer * n_heads:
        raise TutorialInputError(f"n = {n} heads asked for, but layers < {before_layer} hold {before_layer * n_heads}.")
    order = previous[:before_layer].flatten().argsort(descending=True)[:n]
    return [divmod(int(i), n_heads) for i in order]


def random_senders(
    previous: Tensor, senders: Sequence[tuple[int, int]], n_sets: int = 3, max_previous: float = 0.2, seed: int = 0
) -> list[list[tuple[int, int]]]:
    """`n_sets` control sets: for each sender, a random head of the same layer whose previous-token score is
    below `max_previous` (the same layers, not the same job). Chapter 05: induction heads."""
    previous = expect_ndim(previous, 2, "previous", "[layer, head]")
    n_sets = expect_int_at_least(n_sets, "n_sets")
    expect_number(max_previous, "max_previous")
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n_sets):
        chosen = []
        for layer, _head in senders:
            pool = (previous[layer] < max_previous).nonzero().flatten().tolist()
            if not pool:
                raise TutorialInputError(f"layer {layer} has no head with a previous-token score < {max_previous}.")
            chosen.append((layer, pool[int(torch.randint(len(pool), (1,), generator=gen))]))
        out.append(chosen)
    return out


def key_path_test(
    model,
    tokens: Any,
    corrupted: Tensor,
    senders: Sequence[tuple[int, int]],
    receivers: Sequence[tuple[int, int]],
    controls: Sequence[Sequence[tuple[int, int]]] = (),
) -> dict[str, Any]:
    """Repeated-half loss on `tokens` ([BOS, x, x] or a RepeatedSegments batch) when only the receivers'
    queries, keys or values see the `senders`' outputs from the `corrupted` run (every other path clean):
    {"clean", "q", "k", "v", "controls": [the keys' loss with each control sender set instead]}.
    K-composition predicts "k" far above "q", "v" and the controls.

    Chapter 05: induction heads."""
    toks, _, _, repeated = resolve_batch(tokens, None)
    senders, receivers = expect_heads(senders, model, "senders"), expect_heads(receivers, model, "receivers")
    if max(layer for layer, _ in senders) >= min(layer for layer, _ in receivers):
        raise TutorialInputError(f"every sender must sit before every receiver, got {senders} -> {receivers}.")
    device = next(model.parameters()).device
    toks, repeated, corrupted = toks.to(device), repeated.to(device), corrupted.to(device)

    def repeated_loss(logits: Tensor) -> Tensor:
        return token_losses(logits, toks)[repeated].mean()

    # patching.path_patch_group's recipe with the two runs cached once for q, k and v, and the keys' senders
    # and every control set in one batch
    toks, corrupted = check_pair(model, toks, corrupted)
    setup = path_setup(model, toks, corrupted, repeated_loss, receivers, ("k",))
    groups = [senders] + [expect_heads(group, model, "controls") for group in controls]

    def run(inp: str, n: int) -> list[float]:
        return path_values(replace(setup, inputs=(inp,)), group_masks(model, groups[:n], device)).tolist()

    with torch.no_grad():
        clean = repeated_loss(model(toks)).item()
    keys = run("k", len(groups))
    return {"clean": clean, "q": run("q", 1)[0], "k": keys[0], "v": run("v", 1)[0], "controls": keys[1:]}
