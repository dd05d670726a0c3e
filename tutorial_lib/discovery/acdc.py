"""Chapter 07's ACDC (Conmy et al. 2023): prune the edge graph one edge at a time, receivers from the logits
backwards, each receiver's senders latest first; an edge is removed for good (it carries the corrupted
value from then on) when removing it raises the distance from the full model by less than the threshold.

The distance defaults to Conmy et al.'s: the KL divergence of the circuit's next-token distribution at the
final position from the full model's, averaged over prompts. Exactly that sequential algorithm, made fast:

* the senders before a receiver's layer are those of the clean run (the edges decided so far all point into
  later receivers), and the trials of one receiver change only that receiver's input: each trial recomputes
  the one head (or MLP) that reads it (its inputs that the trials leave unchanged projected once), then only
  the later senders that a changed sender reaches by a kept edge, from their inputs in the current state plus
  the changes (every live sender's output in the current state is kept, and updated when an edge is removed:
  as the circuit thins, a trial recomputes a few heads, not the later layers);
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
    _clean_run,
    _replacement,
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
    p_base = base.exp()

    def distance(logits: Tensor) -> Tensor:  # also takes leading variant axes [..., batch, pos, vocab]
        logp = torch.log_softmax(logits[..., -1, :].double(), -1)
        return (p_base * (base - logp)).sum(-1).mean(-1)

    distance.last_position = True  # type: ignore[attr-defined]  # ACDC may compute the final position only
    distance.batched = True  # type: ignore[attr-defined]  # ACDC may pass all variants' logits at once
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
        self.order, n_s = stages(self.g), self.g.n_senders
        repl = self.repl.expand(self.clean_outs.shape[0], *self.repl.shape[1:])
        # sender-major [2S, B, P, D], so that every receiver input is one matrix product with `mix`: each live
        # sender's output in the current state (the last layer's at the final position only with last_only),
        # updated in place when an edge is removed, then the senders' replacements; dead senders' values are
        # never read (their every edge into a live receiver is removed, so they are multiplied by exactly 0)
        self.both = torch.cat([self.clean_outs, repl], 2).permute(2, 0, 1, 3).contiguous()
        self.outs = self.both[:n_s]
        self.delta = self.both[:n_s] - self.both[n_s:]  # what removing an edge from a sender subtracts
        self.readers = [-1 if rd is None else rd for rd in map(self.g.reader, range(self.g.n_receivers))]
        valid = self.g.valid.to(self.ablate.device)
        self.kept = (valid & ~self.ablate).tolist()  # kept in step with ablate
        # [R, 2S]: a receiver reads its kept senders' outputs and its removed ones' replacements
        self.mix = torch.cat([(valid & ~self.ablate).T, (valid & self.ablate).T], 1).to(self.both.dtype)
        self.live: list[bool] | None = None  # _live's answer, until an edge is removed
        self.cache: dict[tuple, Tensor] = {}  # receiver index tensors and the biases before each stage


def _inputs(st: _State, part: Stage, p: int) -> Tensor:
    """The inputs [R, B, p, D] of the part's receivers in the current state, at the last p positions.

    Chapter 07: circuit discovery.
    """
    key = (part.layer, part.kind, part.receivers)
    if key not in st.cache:
        st.cache[key] = torch.tensor(part.receivers, device=st.mix.device)
        st.cache[key[:2]] = _bias_before(st.w, part)
    both = st.both if p == st.both.shape[2] else st.both[:, :, -p:]
    x = torch.matmul(st.mix[st.cache[key]], both.reshape(both.shape[0], -1))
    return x.view(len(part.receivers), *both.shape[1:]) + st.cache[key[:2]]


def _distances(st: _State, logits: Tensor) -> Tensor:
    """The distance of each variant's logits [V, batch, pos, vocab]. Chapter 07: circuit discovery."""
    st.n_forwards += logits.shape[0]
    if getattr(st.distance, "batched", False):
        return st.distance(logits).double().reshape(logits.shape[0])  # type: ignore[operator]
    return torch.stack([torch.as_tensor(st.distance(lg)).double().reshape(()) for lg in logits])  # type: ignore[operator]


def _live(st: _State) -> list[bool]:
    """The senders with a path of kept edges to the logits (the others cannot change them).

    Chapter 07: circuit discovery.
    """
    if st.live is not None:
        return st.live
    kept, readers = st.kept, st.readers
    reads_live = [rd < 0 for rd in readers]  # the logits
    live = [False] * st.g.n_senders
    for s in reversed(range(st.g.n_senders)):  # a sender's edges go to receivers read by later senders (or the logits)
        live[s] = any(k and rl for k, rl in zip(kept[s], reads_live, strict=True))
        if live[s]:
            reads_live = [rl or rd == s for rl, rd in zip(reads_live, readers, strict=True)]
    st.live = live
    return live


def _reader_part(g: Graph, stage: Stage, r: int) -> Stage:
    """The part of `stage` that reads receiver r: its head's q, k and v inputs (or the whole MLP / logits stage).

    Chapter 07: circuit discovery.
    """
    if stage.kind != "attn":
        return stage
    head = stage.receivers.index(r) % g.n_heads
    return Stage(stage.layer, "attn", stage.n_before, _head_receivers(g, stage.layer, (head,)), (head,))


def _head_receivers(g: Graph, layer: int, heads: tuple[int, ...]) -> tuple[int, ...]:
    """The q inputs, then the k, then the v inputs of `heads` of `layer`. Chapter 07: circuit discovery."""
    return tuple(g.head_receiver(layer, h, k) for k in "qkv" for h in heads)


def _dirty_part(st: _State, stage: Stage, changed: list[int], live: list[bool]) -> Stage | None:
    """The part of a later `stage` whose inputs the `changed` senders reach by a kept edge (live senders only;
    the logits always). Chapter 07: circuit discovery."""
    g, kept = st.g, st.kept
    hit = lambda t, rs: live[t] and any(kept[s][r] for s in changed for r in rs)  # noqa: E731
    if stage.kind == "logits":
        return stage
    if stage.kind == "mlp":
        return stage if hit(g.mlp_sender(stage.layer), stage.receivers) else None
    heads = tuple(h for h in range(g.n_heads)
                  if hit(g.head_sender(stage.layer, h), _head_receivers(g, stage.layer, (h,))))  # fmt: skip
    if not heads:
        return None
    return Stage(stage.layer, "attn", stage.n_before, _head_receivers(g, stage.layer, heads), heads)


def _propagate(st: _State, i: int, new: dict[int, Tensor]) -> Tensor:
    """Logits [V, B, P', vocab] of variants in which the senders in `new` (sender -> output [V, B, P', D])
    changed: each later stage recomputes only the live senders a changed sender reaches by a kept edge, from
    their inputs in the current state plus the changes. `new` gains the recomputed senders' outputs.

    Chapter 07: circuit discovery.
    """
    w, g, live = st.w, st.g, _live(st)
    for stage in st.order[i + 1 :]:
        part = _dirty_part(st, stage, list(new), live)
        if part is None:
            continue
        late = st.last_only and stage.kind != "attn" and stage.layer >= g.n_layers - 1  # the final position only
        p = 1 if late else st.outs.shape[2]
        x = _inputs(st, part, p)[:, None]  # [R, 1, B, p, D]
        if new:
            dd = torch.stack([out[..., -p:, :] - st.outs[s, :, -p:] for s, out in new.items()])  # [n, V, B, p, D]
            keep = torch.tensor([[float(st.kept[s][r]) for s in new] for r in part.receivers], dtype=dd.dtype)
            x = x + torch.matmul(keep.to(dd.device), dd.reshape(len(new), -1)).view(-1, *dd.shape[1:])
        if stage.kind == "logits":
            return fw.unembed(w, x[0])
        if stage.kind == "mlp":
            new[g.mlp_sender(stage.layer)] = fw.mlp(w, stage.layer, x[0])
            continue
        heads = list(part.heads or ())
        rows = x.unflatten(0, (3, len(heads))).movedim(1, -2)  # [3, V, B, P, h, D]
        xq = rows[0][:, :, -1:] if st.last_only and stage.layer == g.n_layers - 1 else rows[0]
        out = fw.attention(w, stage.layer, xq, rows[1], rows[2], heads=heads)
        new.update({g.head_sender(stage.layer, h): out[..., j, :] for j, h in enumerate(heads)})
    raise AssertionError("the stages end with the logits")


def _receiver_trials(st: _State, i: int, r: int, removed: Tensor, x_base: Tensor) -> tuple[Tensor, dict[int, Tensor]]:
    """The distance when receiver r's edges from the senders in removed[v] (bool [V, S]) are removed on top
    of the current state (x_base: r's reader's inputs in it), and the changed senders' outputs per variant:
    only r's reader and the later senders it reaches are recomputed.

    Chapter 07: circuit discovery.
    """
    w, g, stage = st.w, st.g, st.order[i]
    n, k = stage.n_before, stage.receivers.index(r)
    kind, head = divmod(k, g.n_heads)
    delta = st.delta[:n].reshape(n, -1)
    xr = x_base[kind] - torch.matmul(removed[:, :n].to(delta.dtype), delta).view(-1, *x_base.shape[1:])  # [V, B, P, D]
    if stage.kind == "logits":
        return _distances(st, fw.unembed(w, xr[:, :, -1:] if st.last_only else xr)), {}
    if stage.kind == "mlp":
        new = {g.mlp_sender(stage.layer): fw.mlp(w, stage.layer, xr)}
    else:
        xs = [x_base[j, None, :, :, None] for j in range(3)]  # [1, B, P, 1, D]: shared by the variants
        xs[kind] = xr[..., None, :]  # [V, B, P, 1, D]: what the variants change
        q = xs[0][:, :, -1:] if st.last_only and stage.layer == g.n_layers - 1 else xs[0]
        out = fw.attention(w, stage.layer, q, xs[1], xs[2], heads=[head])  # [V, B, q_pos, 1, D]
        new = {g.head_sender(stage.layer, head): out[..., 0, :]}
    return _distances(st, _propagate(st, i, new)), new


def _commit(st: _State, new: dict[int, Tensor], j: int, s: int, r: int) -> None:
    """Remove edge s -> r for good, the changed senders' outputs taken from variant j (the new state).

    Chapter 07: circuit discovery.
    """
    st.ablate[s, r], st.mix[r, s], st.mix[r, st.g.n_senders + s] = True, 0.0, 1.0
    st.kept[s][r], st.live = False, None
    for t, out in new.items():
        st.outs[t, :, -out.shape[-2] :] = out[j]


def _decide_receiver(st: _State, i: int, r: int, current: float, tau: float, scores: Tensor, chunk: int) -> float:
    """Decide every edge into receiver r, senders latest first, exactly as the sequential loop would.

    Each batch runs variant j = candidate j removed on top of the earlier candidates decided as guessed
    (first guess: removed); the decisions are read off in order while the guesses hold, the rest re-guessed
    from this batch's increments and re-run. Returns the new distance. Chapter 07: circuit discovery.
    """
    todo = [s for s in reversed(range(st.g.n_senders)) if st.g.valid[s, r]]
    if st.order[i].kind != "logits" and not _live(st)[st.readers[r]]:
        for s in todo:  # r's reader has no path to the logits: removing its edges changes nothing
            scores[s, r], st.ablate[s, r], st.kept[s][r] = 0.0, tau > 0, not tau > 0
            st.mix[r, s], st.mix[r, st.g.n_senders + s] = float(not tau > 0), float(tau > 0)
        st.live = None
        return current
    part = _reader_part(st.g, st.order[i], r)
    x_base = _inputs(st, part, st.outs.shape[2])
    gone = torch.zeros(st.g.n_senders, dtype=torch.bool, device=st.ablate.device)
    keep_guess = dict.fromkeys(todo, False)
    while todo:
        batch = todo[:chunk]
        removed = gone[None].repeat(len(batch), 1)
        for j, s in enumerate(batch):
            removed[j, s] = True
            if not keep_guess[s]:
                removed[j + 1 :, s] = True
        values, new = _receiver_trials(st, i, r, removed, x_base)
        values = values.tolist()
        before, prev = [], current  # the distance each variant's state had before its own candidate
        for j, s in enumerate(batch):
            before.append(prev)
            prev = prev if keep_guess[s] else values[j]
        done = len(batch)
        for j, s in enumerate(batch):
            scores[s, r] = values[j] - current
            keep = values[j] - current >= tau
            if not keep:
                _commit(st, new, j, s, r)
                gone[s], current = True, values[j]
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
        clean_outs, clean_logits = _clean_run(w, g, clean)
        repl = _replacement(w, g, corrupted_tokens.to(clean.device), clean)
        distance = kl_to(clean_logits) if distance is None else distance
        ablate = torch.zeros(g.n_senders, g.n_receivers, dtype=torch.bool, device=clean.device)
        st = _State(w, g, clean_outs, repl, ablate, distance, bool(getattr(distance, "last_position", False)))
        scores = torch.full(g.valid.shape, float("nan"), dtype=torch.float64)
        current = float(_distances(st, _propagate(st, len(st.order) - 2, {}))[0])  # the full circuit
        order, chunk = stages(g), expect_int_at_least(chunk, "chunk", 1)
        for i in reversed(range(len(order))):
            for r in reversed(order[i].receivers):
                current = _decide_receiver(st, i, r, current, tau, scores, chunk)
    kept = g.valid.to(ablate.device) & ~st.ablate
    return ACDCResult(kept.cpu(), scores, current, tau, st.n_forwards)


def acdc_sweep(model, clean_tokens, corrupted_tokens, thresholds, distance=None) -> list[ACDCResult]:
    """acdc at each threshold (the circuit shrinks as the threshold grows). Chapter 07: circuit discovery."""
    return [acdc(model, clean_tokens, corrupted_tokens, t, distance) for t in thresholds]
