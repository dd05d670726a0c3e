"""Chapter 07's ACDC (Conmy et al. 2023): prune the edge graph one edge at a time, receivers from the logits
backwards, each receiver's senders latest first; an edge is removed for good (it carries the corrupted
value from then on) when removing it raises the distance from the full model by less than the threshold.

The distance defaults to Conmy et al.'s: the KL divergence of the circuit's next-token distribution at the
final position from the full model's, averaged over prompts. Exactly that sequential algorithm, made fast:

* the senders before a receiver's layer are those of the clean run (the edges decided so far all point into
  later receivers), so each trial runs from the receiver's layer on;
* the trials of one layer's receivers are batched speculatively: one batch removes each candidate edge alone
  to guess which edges will be kept; the next runs variant j = candidate j removed on top of the earlier
  candidates decided as guessed, which is the true state whenever those guesses were right. The first wrong
  guess ends the speculation and the rest is re-run from the corrected state. Decisions and scores equal
  the one-forward-per-edge loop's.
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


def _speculate(st: _State, stage: int, todo: list[tuple[int, int]], keep_guess: list[bool]) -> Tensor:
    """One batch: variant j removes candidate j on top of the state, with candidates before it decided as
    guessed. Chapter 07: circuit discovery."""
    variants = st.ablate[None].repeat(len(todo), 1, 1)
    for j, (s, r) in enumerate(todo):
        variants[j, s, r] = True
        if not keep_guess[j]:
            variants[j + 1 :, s, r] = True
    return _trial(st, stage, variants)


def _stage(st: _State, stage: int, todo: list[tuple[int, int]], current: float, tau: float, scores: Tensor,
           chunk: int) -> float:  # fmt: skip
    """Decide every edge into the stage's receivers, in ACDC's order, exactly as the sequential loop would.

    Each chunk first removes every candidate alone (one batch) to guess which will be kept, then runs the
    speculative batch under those guesses; the decisions are read off in order while the guesses hold, and
    the rest is re-run from the first wrong guess. Returns the new distance. Chapter 07: circuit discovery.
    """
    while todo:
        batch = todo[:chunk]
        alone = st.ablate[None].repeat(len(batch), 1, 1)
        for j, (s, r) in enumerate(batch):
            alone[j, s, r] = True
        guess = [v - current >= tau for v in _trial(st, stage, alone).tolist()]
        while batch:
            values = _speculate(st, stage, batch, guess).tolist()
            done = len(batch)
            for j, (s, r) in enumerate(batch):
                scores[s, r] = values[j] - current
                keep = values[j] - current >= tau
                if not keep:
                    st.ablate[s, r], current = True, values[j]
                if keep != guess[j]:  # later variants assumed the other decision: re-run them
                    done = j + 1
                    break
            batch, guess, todo = batch[done:], guess[done:], todo[done:]
    return current


def acdc(
    model,
    clean_tokens: Int[Tensor, "batch pos"],
    corrupted_tokens: Int[Tensor, "batch pos"] | Tensor,
    threshold: float,
    distance=None,
    chunk: int = 16,
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
        order, chunk = stages(g), expect_int_at_least(chunk, "chunk", 1)
        for i in reversed(range(len(order))):
            todo = [(s, r) for r in reversed(order[i].receivers) for s in reversed(range(g.n_senders)) if g.valid[s, r]]
            current = _stage(st, i, todo, current, tau, scores, chunk)
    kept = g.valid.to(ablate.device) & ~st.ablate
    return ACDCResult(kept.cpu(), scores, current, tau, st.n_forwards)


def acdc_sweep(model, clean_tokens, corrupted_tokens, thresholds, distance=None) -> list[ACDCResult]:
    """acdc at each threshold (the circuit shrinks as the threshold grows). Chapter 07: circuit discovery."""
    return [acdc(model, clean_tokens, corrupted_tokens, t, distance) for t in thresholds]
