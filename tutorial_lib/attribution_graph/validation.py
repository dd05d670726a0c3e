"""Validating an attribution graph by intervention: the graph's predicted effect on the logit of
ablating a latent against the effect measured in the replacement model (errors kept fixed, attention
and later transcoders live)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from jaxtyping import Int
from torch import Tensor

from ..transcoders import Transcoder, mlp_errors, replacement_logits
from .graph import AttributionGraph

__all__ = ["measured_ablation_effects", "predicted_ablation_effects"]


def predicted_ablation_effects(graph: AttributionGraph, nodes: Tensor) -> Tensor:
    """Change of the logit predicted by the frozen-linear graph when latent node i is set to 0:
    -a_i times its total per-unit effect through every path of latents, (e (I - M)^-1)_i with M the
    per-unit latent-to-latent edges and e the per-unit latent-to-logit edges.

    Chapter 08: transcoders and attribution graphs.
    """
    n = graph.n_latents
    m = graph.per_unit[:n, :n]
    total = torch.linalg.solve((torch.eye(n) - m).T, graph.per_unit[-1, :n])
    return -(graph.activations * total)[nodes]


@torch.no_grad()
def measured_ablation_effects(
    model, transcoders: Sequence[Transcoder], tokens: Int[Tensor, "1 pos"], graph: AttributionGraph, nodes: Tensor
) -> Tensor:
    """Change of the logit when latent node i is set to 0 in the replacement model (error nodes fixed
    at their clean values; attention patterns, norms and later latents recomputed). One batched run.

    Chapter 08: transcoders and attribution graphs.
    """
    errors = [e.expand(len(nodes), -1, -1) for e in mlp_errors(model, transcoders, tokens)]
    where = [graph.latents[int(i)] for i in nodes]

    def ablate(layer: int, z: Tensor) -> Tensor:
        z = z.clone()
        for b, (lay, pos, j) in enumerate(where):
            if lay == layer:
                z[b, pos, j] = 0.0
        return z

    logits = replacement_logits(model, transcoders, tokens.expand(len(nodes), -1), errors, edit_latents=ablate)
    return logits[:, -1, graph.token] - graph.logit
