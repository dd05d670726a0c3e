"""Chapter 07's computational graph: the model as senders (the embedding, every head, every MLP) that write
into the residual stream and receivers (each head's q, k and v input, each MLP's input, the logits) that read it.

An edge sender -> receiver exists when the sender writes before the receiver reads: a head of layer l feeds
every q/k/v input of layers > l, the MLP of layer l and later, and the logits; an MLP of layer l feeds layers
> l and the logits; the embedding feeds everything. Edges are held as a dense [sender, receiver] matrix with
`valid` marking those that exist (Conmy et al. 2023's graph, with the q/k/v split of their ACDC code).

Senders are ordered [embed, a0.0 .. a0.{H-1}, m0, a1.0, ..., m{L-1}]; receivers [a0.0.q .. a0.{H-1}.q,
a0.0.k .., a0.0.v .., m0, a1.0.q, ..., logits] (no m entries on attention-only models).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..validation import TutorialInputError, expect_model

__all__ = ["Graph", "build_graph"]


@dataclass(frozen=True)
class Graph:
    """The edge graph of one architecture: names, layer bookkeeping and the valid-edge matrix.

    Chapter 07: circuit discovery.
    """

    n_layers: int
    n_heads: int
    has_mlp: bool
    senders: tuple[str, ...]
    receivers: tuple[str, ...]
    valid: Tensor  # bool [n_senders, n_receivers]

    @property
    def n_senders(self) -> int:
        return len(self.senders)

    @property
    def n_receivers(self) -> int:
        return len(self.receivers)

    @property
    def n_edges(self) -> int:
        return int(self.valid.sum())

    def head_sender(self, layer: int, head: int) -> int:
        """Index of head (layer, head) among the senders. Chapter 07: circuit discovery."""
        return 1 + layer * self.per_layer_senders + head

    def mlp_sender(self, layer: int) -> int:
        """Index of layer's MLP among the senders. Chapter 07: circuit discovery."""
        if not self.has_mlp:
            raise TutorialInputError("this model is attention-only: it has no MLP senders.")
        return 1 + layer * self.per_layer_senders + self.n_heads

    @property
    def per_layer_senders(self) -> int:
        return self.n_heads + int(self.has_mlp)

    @property
    def per_layer_receivers(self) -> int:
        return 3 * self.n_heads + int(self.has_mlp)

    def head_receiver(self, layer: int, head: int, kind: str) -> int:
        """Index of head (layer, head)'s input `kind` ("q", "k" or "v") among the receivers.

        Chapter 07: circuit discovery.
        """
        if kind not in ("q", "k", "v"):
            raise TutorialInputError(f"kind must be 'q', 'k' or 'v', got {kind!r}.")
        return layer * self.per_layer_receivers + "qkv".index(kind) * self.n_heads + head

    def mlp_receiver(self, layer: int) -> int:
        """Index of layer's MLP input among the receivers. Chapter 07: circuit discovery."""
        if not self.has_mlp:
            raise TutorialInputError("this model is attention-only: it has no MLP receivers.")
        return layer * self.per_layer_receivers + 3 * self.n_heads

    @property
    def logits_receiver(self) -> int:
        return self.n_receivers - 1

    def reader(self, receiver: int) -> int | None:
        """The sender that reads `receiver` (the head of a q/k/v input, the MLP of an MLP input; None for the
        logits). Chapter 07: circuit discovery."""
        if receiver == self.logits_receiver:
            return None
        layer, k = divmod(receiver, self.per_layer_receivers)
        return self.mlp_sender(layer) if k == 3 * self.n_heads else self.head_sender(layer, k % self.n_heads)

    def senders_before(self, layer: int, stage: str) -> int:
        """How many senders write before `stage` ("attn", "mlp" or "logits") of `layer` reads.

        Chapter 07: circuit discovery.
        """
        if stage == "logits":
            return self.n_senders
        return 1 + layer * self.per_layer_senders + (self.n_heads if stage == "mlp" else 0)

    def edge(self, sender: str, receiver: str) -> tuple[int, int]:
        """(sender index, receiver index) of the edge named by its ends, e.g. ("a0.1", "a1.0.q").

        Chapter 07: circuit discovery.
        """
        for name, pool in ((sender, self.senders), (receiver, self.receivers)):
            if name not in pool:
                raise TutorialInputError(f"unknown node {name!r}; expected one of {', '.join(pool[:6])}, ...")
        s, r = self.senders.index(sender), self.receivers.index(receiver)
        if not self.valid[s, r]:
            raise TutorialInputError(f"{sender} does not write before {receiver} reads: no such edge.")
        return s, r

    def edge_names(self, mask: Tensor | None = None) -> list[str]:
        """ "sender->receiver" for every valid edge (or every edge set in `mask`), in index order.

        Chapter 07: circuit discovery.
        """
        mask = self.valid if mask is None else (mask.bool().cpu() & self.valid)
        return [f"{self.senders[s]}->{self.receivers[r]}" for s, r in mask.nonzero().tolist()]

    def mask(self, edges: list[tuple[str, str]] | None = None) -> Tensor:
        """A bool [sender, receiver] mask holding `edges` (names) or, with None, every valid edge.

        Chapter 07: circuit discovery.
        """
        if edges is None:
            return self.valid.clone()
        out = torch.zeros_like(self.valid)
        for sender, receiver in edges:
            out[self.edge(sender, receiver)] = True
        return out


def build_graph(model) -> Graph:
    """The edge graph of `model` (a TransformerLens bridge or anything with its cfg fields).

    Chapter 07: circuit discovery.
    """
    cfg = expect_model(model).cfg
    n_layers, n_heads, has_mlp = int(cfg.n_layers), int(cfg.n_heads), not bool(cfg.attn_only)
    senders, receivers, r_layer, r_mlp = ["embed"], [], [], []
    s_layer: list[float] = [-1.0]
    for layer in range(n_layers):
        senders += [f"a{layer}.{h}" for h in range(n_heads)]
        s_layer += [layer] * n_heads
        for kind in "qkv":
            receivers += [f"a{layer}.{h}.{kind}" for h in range(n_heads)]
        r_layer += [layer] * 3 * n_heads
        r_mlp += [False] * 3 * n_heads
        if has_mlp:
            senders.append(f"m{layer}")
            s_layer.append(layer + 0.5)  # an MLP writes after its layer's heads
            receivers.append(f"m{layer}")
            r_layer.append(layer)
            r_mlp.append(True)
    receivers.append("logits")
    r_layer.append(n_layers)
    r_mlp.append(False)
    s_at = torch.tensor(s_layer, dtype=torch.float64)[:, None]
    r_at = torch.tensor(r_layer, dtype=torch.float64)[None] + 0.25 * torch.tensor(r_mlp, dtype=torch.float64)[None]
    # a head (layer l) feeds the MLP of layer l (l < l + 0.25); an MLP (l + 0.5) feeds layer l + 1 onward
    valid = s_at < r_at
    return Graph(n_layers, n_heads, has_mlp, tuple(senders), tuple(receivers), valid)
