"""Chapter 07's ACDC (Conmy et al. 2023): prune the edge graph one edge at a time, receivers from the logits
backwards, each receiver's senders latest first; an edge is removed for good (it carries the corrupted
value from then on) when removing it raises the distance from the full model by less than the threshold.

The distance defaults to Conmy et al.'s: the KL divergence of the circuit's next-token distribution at the
final position from the full model's, averaged over prompts. Exactly that sequential algorithm, made fast:

* the senders before a receiver's layer are those of the clean run (the edges decided so far all point into
  later receivers), and the trials of one receiver change only that receiver's input: each trial recomputes
  the one head (or MLP) that reads it (its inputs that the trials leave unchanged projected once), then the
  later layers, from outputs computed once per receiver;
* with the default distance, the last layer and the logits are computed at the final position only;
* the trials of one receiver are batched speculatively: variant j removes candidate j on top of the earlier
  candidates decided as guessed (first guess: removed; later guesses: from the previous batch's increments),
  which is the true state whenever those guesses were right. The first wrong guess ends the speculation and
  the rest is re-run from the corrected state. Decisions and scores equal the one-forward-per-edge loop's.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from jaxtyping import Float, Int
from torch import Tensor

from ..validation import expect_int_at_least, expect_number, expect_tokens
from . import forward as fw
from .edges import (
    Stage,
    _bias_before,
    _empty_outs,
    _forward,
    _receive,
    _replacement,
    _run_stage,
    _sender_outputs,
    stages,
)
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

    distance.last_position = True  # type: ignore[attr-defined]  # ACDC may compute the final position only
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
    last_only: bool = False
    n_forwards: int = 0

    def __post_init__(self) -> None:
        self.order = stages(self.g)
        self.delta = self.clean_outs - self.repl  # what removing an edge from a sender subtracts
        self.heads: dict[int, Tensor] = {}  # sender -> its output in the current state (dropped when it changes)
        # the outputs the trials start from: clean before the stage being decided (its edges all point into later
        # receivers), that stage's heads as in `heads`; later senders' values are never read (the trials
        # recompute the live ones, and the others' edges into live receivers are all removed)
        self.outs = self.clean_outs.clone()
        self.readers = [-1 if rd is None else rd for rd in map(self.g.reader, range(self.g.n_receivers))]
        self.valid = self.g.valid.to(self.ablate.device)


def _distances(st: _State, logits: Tensor) -> Tensor:
    """The distance of each variant's logits [V, batch, pos, vocab]. Chapter 07: circuit discovery."""
    st.n_forwards += logits.shape[0]
    return torch.stack([torch.as_tensor(st.distance(lg)).double().reshape(()) for lg in logits])  # type: ignore[operator]


def _live(st: _State) -> Tensor:
    """bool [S]: the senders with a path of kept edges to the logits (the others cannot change them).

    Chapter 07: circuit discovery.
    """
    g = st.g
    kept, readers = (st.valid & ~st.ablate).tolist(), st.readers
    reads_live = [rd < 0 for rd in readers]  # the logits
    live = [False] * g.n_senders
    for s in reversed(range(g.n_senders)):  # a sender's edges go to receivers read by later senders (or the logits)
        live[s] = any(k and rl for k, rl in zip(kept[s], reads_live, strict=True))
        if live[s]:
            reads_live = [rl or rd == s for rl, rd in zip(reads_live, readers, strict=True)]
    return torch.tensor(live, device=st.ablate.device)


def _stage_base(st: _State, i: int, r: int, live: Tensor) -> tuple[Tensor, Tensor]:
    """The inputs [1, B, P, n, D] of r's reader (its q, k and v, or its one input) and the sender outputs
    [B, P, S, D] up to stage i (the stage's other live heads included), in the current state.

    Chapter 07: circuit discovery.
    """
    g, stage = st.g, st.order[i]
    outs, bias = st.outs[None], _bias_before(st.w, stage)  # updated in place: the trials copy it
    if stage.kind != "attn":
        return _receive(stage, outs, st.repl, st.ablate, bias), outs[0]
    head = stage.receivers.index(r) % g.n_heads
    others = [h for h in range(g.n_heads) if h != head and bool(live[g.head_sender(stage.layer, h)])]
    todo = tuple(h for h in others if g.head_sender(stage.layer, h) not in st.heads)
    if todo:  # the heads whose inputs changed since they were last computed
        part = Stage(stage.layer, "attn", stage.n_before, _head_receivers(g, stage.layer, todo), todo)
        _run_stage(st.w, g, part, _receive(part, outs, st.repl, st.ablate, bias), outs, st.last_only)
        st.heads.update({g.head_sender(stage.layer, h): outs[0, :, :, g.head_sender(stage.layer, h)] for h in todo})
    mine = Stage(stage.layer, "attn", stage.n_before, _head_receivers(g, stage.layer, (head,)), (head,))
    return _receive(mine, outs, st.repl, st.ablate, bias), outs[0]


def _head_receivers(g: Graph, layer: int, heads: tuple[int, ...]) -> tuple[int, ...]:
    """The q inputs, then the k, then the v inputs of `heads` of `layer`. Chapter 07: circuit discovery."""
    return tuple(g.head_receiver(layer, h, k) for k in "qkv" for h in heads)


def _receiver_trials(st: _State, i: int, r: int, removed: Tensor, base: tuple[Tensor, Tensor], live: Tensor) -> Tensor:
    """The distance when receiver r's edges from the senders in removed[v] (bool [V, S]) are removed on top
    of the state `base` was computed in: only r's reader and the later stages' `live` senders are recomputed.

    Chapter 07: circuit discovery.
    """
    w, g, stage = st.w, st.g, st.order[i]
    x_base, outs_base = base
    n, k, n_var = stage.n_before, stage.receivers.index(r), removed.shape[0]
    kind, head = divmod(k, g.n_heads)
    delta = st.delta[..., :n, :]
    xr = x_base[:, :, :, kind] - torch.matmul(removed[:, :n].to(delta.dtype), delta).permute(2, 0, 1, 3)  # [V, B, P, D]
    if stage.kind == "logits":
        return _distances(st, fw.unembed(w, xr[:, :, -1:] if st.last_only else xr))
    outs = outs_base[None].repeat(n_var, 1, 1, 1, 1)
    if stage.kind == "mlp":
        outs[..., g.mlp_sender(stage.layer), :] = fw.mlp(w, stage.layer, xr)
    else:
        xs = [x_base[:, :, :, j, None] for j in range(3)]  # [1, B, P, 1, D]: shared by the variants
        xs[kind] = xr[..., None, :]  # [V, B, P, 1, D]: what the variants change
        q = xs[0][:, :, -1:] if st.last_only and stage.layer == g.n_layers - 1 else xs[0]
        out = fw.attention(w, stage.layer, q, xs[1], xs[2], heads=[head])  # [V, B, q_pos, 1, D]
        outs[..., -q.shape[2] :, g.head_sender(stage.layer, head), :] = out[..., 0, :]
    logits = _forward(w, g, outs, st.repl, st.ablate, start=i + 1, last_only=st.last_only, live=live)
    return _distances(st, logits)


def _decide_receiver(st: _State, i: int, r: int, current: float, tau: float, scores: Tensor, chunk: int) -> float:
    """Decide every edge into receiver r, senders latest first, exactly as the sequential loop would.

    Each batch runs variant j = candidate j removed on top of the earlier candidates decided as guessed
    (first guess: removed); the decisions are read off in order while the guesses hold, the rest re-guessed
    from this batch's increments and re-run. Returns the new distance. Chapter 07: circuit discovery.
    """
    todo = [s for s in reversed(range(st.g.n_senders)) if st.g.valid[s, r]]
    live = _live(st)  # edges into later receivers are decided: which senders can still reach the logits
    if st.order[i].kind != "logits" and not live[st.g.reader(r)]:
        for s in todo:  # r's reader has no path to the logits: removing its edges changes nothing
            scores[s, r], st.ablate[s, r] = 0.0, tau > 0
        return current
    base, gone = _stage_base(st, i, r, live), torch.zeros(st.g.n_senders, dtype=torch.bool, device=st.ablate.device)
    keep_guess = dict.fromkeys(todo, False)
    while todo:
        batch = todo[:chunk]
        removed = gone[None].repeat(len(batch), 1)
        for j, s in enumerate(batch):
            removed[j, s] = True
            if not keep_guess[s]:
                removed[j + 1 :, s] = True
        values = _receiver_trials(st, i, r, removed, base, live).tolist()
        before, prev = [], current  # the distance each variant's state had before its own candidate
        for j, s in enumerate(batch):
            before.append(prev)
            prev = prev if keep_guess[s] else values[j]
        done = len(batch)
        for j, s in enumerate(batch):
            scores[s, r] = values[j] - current
            keep = values[j] - current >= tau
            if not keep:
                st.ablate[s, r], gone[s], current = True, True, values[j]
                st.heads.pop(st.g.reader(r), None)  # type: ignore[arg-type]
            if keep != keep_guess[s]:
                done = j + 1
                for m in range(done, len(batch)):
                    keep_guess[batch[m]] = values[m] - before[m] >= tau
                break
        todo = todo[done:]
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
    w, g = replace(fw.check_model(model), fused=True), build_graph(model)
    with torch.inference_mode():
        clean_outs = _sender_outputs(w, g, clean)
        repl = _replacement(w, g, corrupted_tokens.to(clean.device), clean)
        if distance is None:
            distance = kl_to(_forward(w, g, _empty_outs(w, g, clean, 1), repl, None)[0])
        ablate = torch.zeros(g.n_senders, g.n_receivers, dtype=torch.bool, device=clean.device)
        st = _State(w, g, clean_outs, repl, ablate, distance, bool(getattr(distance, "last_position", False)))
        scores = torch.full(g.valid.shape, float("nan"), dtype=torch.float64)
        outs = clean_outs[None].clone()
        current = float(_distances(st, _forward(w, g, outs, repl, ablate, last_only=st.last_only))[0])
        order, chunk = stages(g), expect_int_at_least(chunk, "chunk", 1)
        for i in reversed(range(len(order))):
            for r in reversed(order[i].receivers):
                current = _decide_receiver(st, i, r, current, tau, scores, chunk)
    kept = g.valid.to(ablate.device) & ~st.ablate
    return ACDCResult(kept.cpu(), scores, current, tau, st.n_forwards)


def acdc_sweep(model, clean_tokens, corrupted_tokens, thresholds, distance=None) -> list[ACDCResult]:
    """acdc at each threshold (the circuit shrinks as the threshold grows). Chapter 07: circuit discovery."""
    return [acdc(model, clean_tokens, corrupted_tokens, t, distance) for t in thresholds]
