"""Chapter 07's node-level baseline: node attribution patching, the first-order effect of patching each
node's (sender's) whole output at once, to compare with the edge methods.

    score(s) = sum over positions of (out_s(clean) - out_s(corrupted)) . d metric / d out_s

the gradient taken on the corrupted run (the denoising convention of `eap_scores`). A sender's output is
read by every later receiver, so d metric / d out_s is the sum of the gradients at the receivers it feeds:
the node score is the sum of the node's EAP edge scores over its receivers, and one forward and one
backward score every head, MLP and the embedding (Nanda 2023's attribution patching, per node).

A node ranking says which components matter, not how they are wired: `edge_scores_from_nodes` turns it
into an edge ranking (an edge is as strong as its weaker end) so that it can be scored against a circuit
of edges, where it cannot tell a head's query input from its key input.
"""

from __future__ import annotations

import torch
from jaxtyping import Float, Int
from torch import Tensor

from ..validation import TutorialInputError, expect_ndim
from .eap import eap_scores
from .graph import Graph, build_graph

__all__ = ["edge_scores_from_nodes", "node_attribution"]


def node_attribution(
    model,
    clean_tokens: Int[Tensor, "batch pos"],
    corrupted_tokens: Int[Tensor, "batch pos"],
    metric,
    ig_steps: int = 1,
) -> Float[Tensor, " sender"]:
    """Node attribution patching: each sender's (embedding, head, MLP) first-order effect on `metric` of
    restoring its clean output on the corrupted run, batch mean (ig_steps > 1: with integrated gradients).

    Chapter 07: circuit discovery.
    """
    return eap_scores(model, clean_tokens, corrupted_tokens, metric, ig_steps=ig_steps).sum(1)


def edge_scores_from_nodes(
    g: Graph | object, node_scores: Float[Tensor, " sender"]
) -> Float[Tensor, "sender receiver"]:
    """An edge ranking from a node ranking: edge s -> r scores min(|score(s)|, |score(reader of r)|) (the
    logits count as infinitely important); 0 off the graph. `g` is a Graph or a model.

    Chapter 07: circuit discovery.
    """
    g = g if isinstance(g, Graph) else build_graph(g)
    expect_ndim(node_scores, 1, "node_scores", "[sender]")
    if node_scores.shape[0] != g.n_senders:
        raise TutorialInputError(
            f"node_scores must have one score per sender ({g.n_senders}), got {node_scores.shape[0]}."
        )
    size = node_scores.detach().abs().double().cpu()
    readers = [g.reader(r) for r in range(g.n_receivers)]
    reader_size = torch.tensor([float("inf") if rd is None else float(size[rd]) for rd in readers], dtype=torch.float64)
    edge = torch.minimum(size[:, None], reader_size[None, :])
    return torch.where(g.valid, edge, torch.zeros_like(edge))
