"""Pruning an attribution graph by influence on its logit (Ameisen et al. 2025, "graph pruning")."""

from __future__ import annotations

import torch
from torch import Tensor

from ..validation import TutorialInputError
from .graph import AttributionGraph

__all__ = ["influence", "prune"]


def influence(graph: AttributionGraph) -> Tensor:
    """Each node's influence on the logit: with A = |adjacency| normalised so each target's incoming
    edges sum to 1, the logit's row of A + A^2 + ... = (I - A)^-1 - I (the graph is acyclic).

    Chapter 08: transcoders and attribution graphs.
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
