"""Pruning an attribution graph by influence on its logit (Ameisen et al. 2025, "graph pruning")."""

from __future__ import annotations

import torch
from torch import Tensor

from ..validation import TutorialInputError
from .graph import AttributionGraph, attribution_graph

__all__ = ["circuit_latents", "error_share", "influence", "prune", "strongest_path", "top_latents"]


def influence(graph: AttributionGraph) -> Tensor:
    """Each node's influence on the logit: with A = |adjacency| normalised so each target's incoming
    edges sum to 1, the logit's row of A + A^2 + ... = (I - A)^-1 - I (the graph is acyclic).

    Exercise 08.6. Chapter 08: transcoders and attribution graphs.
    """
    a = graph.adjacency.abs()
    a = a / a.sum(1, keepdim=True).clamp_min(1e-12)
    eye = torch.eye(a.shape[0])
    return (torch.linalg.solve(eye - a, eye) - eye)[-1]


def prune(graph: AttributionGraph, threshold: float = 0.8) -> Tensor:
    """Indices of the fewest nodes whose influence on the logit sums to >= `threshold` of the total,
    most influential first (the logit node itself excluded).

    Chapter 08: transcoders and attribution graphs.
    """
    if not isinstance(threshold, float | int) or not 0 < threshold <= 1:
        raise TutorialInputError(f"threshold must be a number in (0, 1], got {threshold!r}.")
    inf = influence(graph)[:-1]
    order = inf.argsort(descending=True)
    cum = inf[order].cumsum(0) / inf.sum().clamp_min(1e-12)
    n = int((cum < threshold).sum()) + 1
    return order[: min(n, len(order))]


def strongest_path(graph: AttributionGraph, start: int, via_layer: int | None = None) -> list[int]:
    """The path from latent node `start` to the logit whose product of normalised |edges| (as in
    `influence`) is largest, as node indices from `start` to the logit, through latent nodes only;
    with `via_layer`, the best path through exactly one latent of that layer.

    Chapter 08: transcoders and attribution graphs.
    """
    n = graph.n_latents
    if not isinstance(start, int) or not 0 <= start < n:
        raise TutorialInputError(f"start must be a latent node index in [0, {n}), got {start!r}.")
    a = graph.adjacency.abs()
    a = a / a.sum(1, keepdim=True).clamp_min(1e-12)
    if via_layer is not None:
        mids = [i for i in range(n) if graph.latents[i][0] == via_layer and a[i, start] > 0]
        if not mids:
            raise TutorialInputError(f"no latent of layer {via_layer} receives an edge from node {start}.")
        return [start, max(mids, key=lambda i: float(a[i, start] * a[-1, i])), len(a) - 1]
    best = a[-1, :n].clone()  # best path weight from each latent to the logit
    nxt = [-1] * n  # -1: straight to the logit
    for i in range(n - 1, -1, -1):  # latents are ordered by layer, so later nodes are done first
        via = a[:n, i] * best
        j = int(via.argmax())
        if via[j] > best[i]:
            best[i], nxt[i] = via[j], j
    path = [start]
    while nxt[path[-1]] >= 0:
        path.append(nxt[path[-1]])
    return [*path, len(a) - 1]


def top_latents(graphs: list[AttributionGraph], n: int) -> list[tuple[int, int]]:
    """The n (layer, latent index) pairs with the largest influence on the logit summed over `graphs`
    (every position of every prompt): the latents a set of prompts shares.

    Chapter 08: transcoders and attribution graphs.
    """
    if not graphs or not all(isinstance(g, AttributionGraph) for g in graphs):
        raise TutorialInputError("graphs must be a non-empty list of AttributionGraph objects.")
    total: dict[tuple[int, int], float] = {}
    for g in graphs:
        inf = influence(g)
        for node, (layer, _, j) in enumerate(g.latents):
            total[(layer, j)] = total.get((layer, j), 0.0) + float(inf[node])
    return sorted(total, key=lambda key: -total[key])[:n]


def circuit_latents(model, transcoders, prompts: list[Tensor], token: int, n: int) -> list[tuple[int, int]]:
    """The n (layer, latent index) pairs with the most influence on `token`'s logit summed over the
    attribution graphs of `prompts` (each [1, pos]): a latent circuit shared by the prompts.

    Exercise 08.8. Chapter 08: transcoders and attribution graphs.
    """
    if not isinstance(n, int) or n < 1:
        raise TutorialInputError(f"n must be a positive int, got {n!r}.")
    return top_latents([attribution_graph(model, transcoders, p, token) for p in prompts], n)


def error_share(model, transcoders, prompts: list[Tensor], token: int) -> float:
    """The error nodes' share of the total influence on `token`'s logit, summed over the prompts' graphs:
    how much of the graph runs through what the transcoders do not explain.

    Chapter 08: transcoders and attribution graphs.
    """
    err, total = 0.0, 0.0
    for p in prompts:
        g = attribution_graph(model, transcoders, p, token)
        node_inf = influence(g)[:-1]
        err += node_inf[g.n_latents : g.n_latents + g.n_layers * g.n_pos].sum().item()
        total += node_inf.sum().item()
    return err / max(total, 1e-12)
