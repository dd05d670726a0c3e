"""Chapter 07's ACDC (Conmy et al. 2023): prune the edge graph one edge at a time, receivers from the logits
backwards, each receiver's senders latest first; an edge is removed for good (it carries the corrupted
value from then on) when removing it raises the distance from the full model by less than the threshold.

The distance defaults to Conmy et al.'s: the KL divergence of the circuit's next-token distribution at the
final position from the full model's, averaged over prompts. Exactly that sequential algorithm, made fast:

* the senders before a receiver's layer are those of the clean run (the edges decided so far all point into
  later receivers), so each trial runs from the receiver's layer on;
* the trials of one receiver are batched speculatively: variant j removes the receiver's first j candidate
  edges, which is the true state whenever the first j - 1 were all removed; the first kept edge ends the
  speculation and the rest are re-run from the corrected state. Decisions and scores equal the
  one-forward-per-edge loop's.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor

from ..validation import expect_int_at_least, expect_number, expect_tokens
from . import forward as fw
from .edges import _empty_outs, _forward, _replacement, _sender_outputs, stages
from .graph import Graph, build_graph

__all__ = ["ACDCResult", "acdc", "acdc_sweep", "kl_to"]


@dataclass
class ACDCResult:
    """What ACDC kept, each edge's score (the distance increase when it was tried; NaN off the graph), the
    final distance, the threshold and how many patched forwards it ran.

    Chapter 07: circuit discovery.
    """

    kept: Tensor
    scores: Tensor
    distance: float
    threshold: float
    n_forwards: int

    @property
    def n_edges(self) -> int:
        return int(self.kept.sum())


def kl_to(base_logits: Float[Tensor, "batch pos d_vocab"]):
    """The distance ACDC minimises by default: KL(full model || circuit) of the final position's next-token
    distribution, averaged over prompts.

    Chapter 07: circuit discovery.
    """
    base = torch.log_softmax(base_logits[:, -1].double(), -1)

    def distance(logits: Tensor) -> Tensor:
        logp = torch.log_softmax(logits[:, -1].double(), -1)
        return (base.exp() * (base - logp)).sum(-1).mean()

    return distance


@dataclass
class _State:
    """ACDC's working state: the weights, graph, clean outputs, replacement and the ablated set so far.

    Chapter 07: circuit discovery.
    """

    w: fw.Weights
    g: Graph
    clean_outs: Tensor
    repl: Tensor
    ablate: Tensor
    distance: object
    n_forwards: int = 0


def _trial(st: _State, stage: int, variants: Tensor) -> Tensor:
    """The distance of each variant's ablation [V, S, R], run from stage `stage` on. Chapter 07: circuit discovery."""
    n_var = variants.shape[0]
    outs = st.clean_outs[None].expand(n_var, *st.clean_outs.shape).clone()
    logits = _forward(st.w, st.g, outs, st.repl, variants, start=stage)
    st.n_forwards += n_var
    return torch.stack([torch.as_tensor(st.distance(lg)).double().reshape(()) for lg in logits])  # type: ignore[operator]


def _receiver(st: _State, stage: int, r: int, current: float, tau: float, scores: Tensor, chunk: int) -> float:
    """Decide every edge into receiver r (speculative batches); returns the new distance. Chapter 07: circuit discovery."""
    todo = [s for s in reversed(range(st.g.n_senders)) if st.g.valid[s, r]]
    while todo:
        batch = todo[:chunk]
        variants = st.ablate[None].repeat(len(batch), 1, 1)
        for j, s in enumerate(batch):
            variants[j:, s, r] = True  # variant j: the first j + 1 candidates removed
        values = _trial(st, stage, variants).tolist()
        done = len(batch)
        for j, s in enumerate(batch):
            scores[s, r] = values[j] - current
            if values[j] - current < tau:
                st.ablate[s, r], current = True, values[j]
            else:  # kept: later variants assumed it removed; re-run them
                done = j + 1
                break
        todo = todo[done:]
    return current


def acdc(
    model,
    clean_tokens: Int[Tensor, "batch pos"],
    corrupted_tokens: Int[Tensor, "batch pos"] | Tensor,
    threshold: float,
    distance=None,
    chunk: int = 64,
) -> ACDCResult:
    """ACDC at `threshold` on `clean_tokens`, removed edges carrying `corrupted_tokens`' values (or a float
    replacement [batch or 1, pos, sender, d_model], e.g. mean_sender_outputs). `distance` maps logits to a
    number to keep small (default kl_to the full model); `chunk` bounds the variants per forward.

    Chapter 07: circuit discovery. Exercise 07.2 (the reference).
    """
    clean = expect_tokens(clean_tokens, "clean_tokens", model)
    tau = expect_number(threshold, "threshold", 0.0)
    w, g = fw.check_model(model), build_graph(model)
    with torch.no_grad():
        clean_outs = _sender_outputs(w, g, clean)
        repl = _replacement(w, g, corrupted_tokens.to(clean.device), clean)
        if distance is None:
            distance = kl_to(_forward(w, g, _empty_outs(w, g, clean, 1), repl, None)[0])
        ablate = torch.zeros(g.n_senders, g.n_receivers, dtype=torch.bool, device=clean.device)
        st = _State(w, g, clean_outs, repl, ablate, distance)
        scores = torch.full(g.valid.shape, float("nan"), dtype=torch.float64)
        current = float(_trial(st, 0, ablate[None])[0])
        order = stages(g)
        for i in reversed(range(len(order))):
            for r in reversed(order[i].receivers):
                current = _receiver(st, i, r, current, tau, scores, expect_int_at_least(chunk, "chunk", 1))
    kept = g.valid.to(ablate.device) & ~st.ablate
    return ACDCResult(kept.cpu(), scores, current, tau, st.n_forwards)


def acdc_sweep(model, clean_tokens, corrupted_tokens, thresholds, distance=None) -> list[ACDCResult]:
    """acdc at each threshold (the circuit shrinks as the threshold grows). Chapter 07: circuit discovery."""
    return [acdc(model, clean_tokens, corrupted_tokens, t, distance) for t in thresholds]
