"""Chapter 07's edge patching: run the model with any set of edges carrying a replacement value (the
corrupted run's sender output, or its mean over a reference batch), many edge sets at once.

Receiver r's input in a run where edges A are ablated is

    sum over senders s of  out_s            (the run's own, recomputed, outputs)
                       -  [s -> r in A] (out_s - replacement_s)
    + the attention output biases of the layers before r  (they belong to no head)

which is the residual stream itself when A is empty. Every variant (one edge set each) is a row block of
one batched forward; `start` lets a run begin at a later layer from outputs computed before (ACDC).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor

from ..validation import TutorialInputError, expect_dtype, expect_ndim, expect_tokens
from . import forward as fw
from .graph import Graph, build_graph

__all__ = ["edge_patch", "mean_sender_outputs", "run_edges", "sender_outputs", "stages"]


@dataclass(frozen=True)
class Stage:
    """One step of the forward: the heads of a layer ("attn"), its MLP ("mlp") or the unembedding ("logits").

    Chapter 07: circuit discovery.
    """

    layer: int
    kind: str
    n_before: int  # senders written before this stage reads
    receivers: tuple[int, ...]  # the receiver indices this stage reads
    heads: tuple[int, ...] | None = None  # an "attn" stage restricted to these heads (None: all)


def stages(g: Graph) -> list[Stage]:
    """The forward's stages in order, each with its receivers. Chapter 07: circuit discovery."""
    out = []
    for layer in range(g.n_layers):
        qkv = tuple(g.head_receiver(layer, h, k) for k in "qkv" for h in range(g.n_heads))
        out.append(Stage(layer, "attn", g.senders_before(layer, "attn"), qkv))
        if g.has_mlp:
            out.append(Stage(layer, "mlp", g.senders_before(layer, "mlp"), (g.mlp_receiver(layer),)))
    out.append(Stage(g.n_layers, "logits", g.n_senders, (g.logits_receiver,)))
    return out


def _bias_before(w: fw.Weights, st: Stage) -> Tensor:
    """The attention output biases written before stage `st` reads. Chapter 07: circuit discovery."""
    upto = st.layer + (1 if st.kind == "mlp" else 0)
    return w.b_O[:upto].sum(0) if upto > 0 else torch.zeros_like(w.b_O[0])


def _receive(st: Stage, outs: Tensor, repl: Tensor, ablate: Tensor | None, bias: Tensor) -> Tensor:
    """The inputs [var, batch, pos, receiver, d_model] of the stage's receivers; `ablate` is [V, S, R],
    [V, P, S, R] or one [S, R] mask shared by every variant. Chapter 07: circuit discovery."""
    n = st.n_before
    n_r = len(st.receivers)
    if ablate is None:
        total = outs[..., :n, :].sum(-2) + bias  # [V, B, P, D]
        return total[..., None, :].expand(*total.shape[:-1], n_r, total.shape[-1])
    if repl.ndim == 5:  # a replacement per (sender, receiver) edge: [B or 1, P, S, R_all, D] (causal scrubbing)
        return _receive_per_edge(st, outs, repl, ablate, bias)
    if ablate.ndim == 2:  # one mask: each receiver sums kept senders' own outputs and removed ones' replacements
        a = ablate[:n, list(st.receivers)].to(outs.dtype).T  # [R, S]: a matmul, 4x faster than the einsum
        return torch.matmul(1 - a, outs[..., :n, :]) + (torch.matmul(a, repl[..., :n, :]) + bias[..., None, :])
    total = outs[..., :n, :].sum(-2) + bias  # [V, B, P, D]
    delta = outs[..., :n, :] - repl[..., :n, :]
    a = ablate[..., :n, list(st.receivers)].to(delta.dtype)
    spec = "vbpsd,vsr->vbprd" if a.ndim == 3 else "vbpsd,vpsr->vbprd"
    return total[..., None, :] - torch.einsum(spec, delta, a)


def _receive_per_edge(st: Stage, outs: Tensor, repl: Tensor, ablate: Tensor, bias: Tensor) -> Tensor:
    """_receive with a replacement per edge, repl [B or 1, P, S, R_all, D]. Chapter 07: circuit discovery."""
    n, r_idx = st.n_before, list(st.receivers)
    total = outs[..., :n, :].sum(-2) + bias  # [V, B, P, D]
    delta = outs[..., :n, None, :] - repl[:, :, :n][:, :, :, r_idx]  # [V, B, P, S, R, D]
    a = ablate[..., :n, r_idx].to(delta.dtype)
    a = a[None] if a.ndim == 2 else a
    spec = "vbpsrd,vsr->vbprd" if a.ndim == 3 else "vbpsrd,vpsr->vbprd"
    return total[..., None, :] - torch.einsum(spec, delta, a)


def _run_stage(w: fw.Weights, g: Graph, st: Stage, x: Tensor, outs: Tensor, last_only: bool = False) -> Tensor | None:
    """Compute the stage's senders into `outs` (in place); return logits at the "logits" stage. With
    `last_only`, the last layer's queries (and so its outputs, then the logits) at the last position only.

    Chapter 07: circuit discovery.
    """
    v, b, p = x.shape[:3]
    last = last_only and st.layer == g.n_layers - 1
    if st.kind == "logits":
        return fw.unembed(w, x[..., 0, :])
    if st.kind == "mlp":
        outs[..., -x.shape[2] :, g.mlp_sender(st.layer), :] = fw.mlp(w, st.layer, x[..., 0, :])
        return None
    heads = list(range(g.n_heads)) if st.heads is None else list(st.heads)
    rows = x.reshape(v * b, p, 3, len(heads), -1)
    xq = rows[:, -1:, 0] if last else rows[:, :, 0]
    result = fw.attention(w, st.layer, xq, rows[:, :, 1], rows[:, :, 2], heads=None if st.heads is None else heads)
    slots = [g.head_sender(st.layer, h) for h in heads]
    outs[..., -xq.shape[1] :, slots, :] = result.reshape(v, b, xq.shape[1], len(heads), -1)
    return None


def _live_part(g: Graph, st: Stage, live: Tensor) -> Stage | None:
    """The part of stage `st` whose senders are `live` (None if none is). Chapter 07: circuit discovery."""
    if st.kind == "mlp":
        return st if bool(live[g.mlp_sender(st.layer)]) else None
    if st.kind == "logits":
        return st
    heads = tuple(h for h in range(g.n_heads) if bool(live[g.head_sender(st.layer, h)]))
    if len(heads) == g.n_heads or not heads:
        return st if heads else None
    receivers = tuple(g.head_receiver(st.layer, h, k) for k in "qkv" for h in heads)
    return Stage(st.layer, st.kind, st.n_before, receivers, heads)


def _forward(w, g, outs, repl, ablate, start: int = 0, taps: list | None = None, last_only: bool = False,
             live: Tensor | None = None) -> Tensor:  # fmt: skip
    """Stages `start`.. of the per-edge forward on `outs` [V, B, P, S, D] (earlier senders filled in);
    returns logits [V, B, P, d_vocab] ([V, B, 1, d_vocab] of the last position with `last_only`). With `taps`
    a list, each stage's input gets a zero tensor that requires grad added (appended to taps): the gradient
    of a metric with respect to every receiver input. With `live` (bool [S]), only the live senders are
    recomputed (ACDC: a sender whose every path to the logits is ablated cannot change them).

    Chapter 07: circuit discovery.
    """
    logits = None
    for st in stages(g)[start:]:
        part = st if live is None else _live_part(g, st, live)
        if part is None:
            continue
        st = part
        late = last_only and st.kind != "attn" and st.layer >= g.n_layers - 1  # reads the last position only
        x = _receive(st, outs[..., -1:, :, :] if late else outs, repl[:, -1:] if late else repl, ablate,
                     _bias_before(w, st))  # fmt: skip
        if taps is not None:
            tap = torch.zeros_like(x, requires_grad=True)
            taps.append(tap)
            x = x + tap
        logits = _run_stage(w, g, st, x, outs, last_only)
    assert logits is not None
    return logits


def _empty_outs(w: fw.Weights, g: Graph, tokens: Tensor, n_var: int, embed: Tensor | None = None) -> Tensor:
    """[V, B, P, S, D] zeros with the embedding sender filled in. Chapter 07: circuit discovery."""
    b, p = tokens.shape
    outs = w.W_E.new_zeros(n_var, b, p, g.n_senders, w.W_E.shape[1])
    outs[..., 0, :] = embed_output(w, tokens) if embed is None else embed
    return outs


def embed_output(w: fw.Weights, tokens: Tensor) -> Tensor:
    """The embedding sender's output [batch, pos, d_model]: token plus positional embedding (it reads the
    token at its position alone). Chapter 07: circuit discovery."""
    return w.W_E[tokens] if w.W_pos is None else w.W_E[tokens] + w.W_pos[: tokens.shape[1]]


def sender_outputs(model, tokens: Int[Tensor, "batch pos"]) -> Float[Tensor, "batch pos sender d_model"]:
    """Every sender's output on `tokens` (no edge ablated): the embedding, each head's z @ W_O, each MLP's output.

    Chapter 07: circuit discovery.
    """
    tokens = expect_tokens(tokens, "tokens", model)
    return _sender_outputs(fw.check_model(model), build_graph(model), tokens)


def _sender_outputs(w: fw.Weights, g: Graph, tokens: Tensor) -> Tensor:
    """sender_outputs with the weights given. Chapter 07: circuit discovery."""
    return _clean_run(w, g, tokens)[0]


def _clean_run(w: fw.Weights, g: Graph, tokens: Tensor) -> tuple[Tensor, Tensor]:
    """The sender outputs [B, P, S, D] and logits [B, P, d_vocab] of the plain run (no edge ablated).

    Chapter 07: circuit discovery.
    """
    with torch.no_grad():
        outs = _empty_outs(w, g, tokens, 1)
        logits = _forward(w, g, outs, outs[0], None)
    return outs[0], logits[0]


def mean_sender_outputs(model, tokens: Int[Tensor, "batch pos"]) -> Float[Tensor, "1 pos sender d_model"]:
    """Each sender's output averaged over a reference batch, per position: the replacement of mean ablation.

    Chapter 07: circuit discovery.
    """
    return sender_outputs(model, tokens).mean(0, keepdim=True)


def _replacement(w: fw.Weights, g: Graph, replacement: Tensor, tokens: Tensor) -> Tensor:
    """Sender outputs to ablate edges to: computed from corrupted tokens, or given. Chapter 07: circuit discovery."""
    if not replacement.is_floating_point():
        if replacement.shape != tokens.shape:
            raise TutorialInputError(
                f"corrupted tokens must have the clean tokens' shape {tuple(tokens.shape)}, got {tuple(replacement.shape)}."
            )
        return _sender_outputs(w, g, replacement)
    n_senders = g.n_senders
    if replacement.ndim == 5:  # one replacement per edge (causal scrubbing)
        if replacement.shape[1:4] != (tokens.shape[1], n_senders, g.n_receivers):
            raise TutorialInputError(
                f"a per-edge replacement must be [batch or 1, {tokens.shape[1]}, {n_senders}, {g.n_receivers}, "
                f"d_model], got {tuple(replacement.shape)}."
            )
        return replacement
    expect_ndim(replacement, 4, "replacement", "[batch or 1, pos, sender, d_model] (or a per-edge [.., receiver, ..])")
    if replacement.shape[1:3] != (tokens.shape[1], n_senders):
        raise TutorialInputError(
            f"replacement must be [batch or 1, {tokens.shape[1]}, {n_senders}, d_model], got {tuple(replacement.shape)}."
        )
    return replacement


def _ablation(g: Graph, ablate: Tensor | None, n_pos: int) -> Tensor | None:
    """`ablate` as [V, S, R] or [V, P, S, R] bool, invalid edges cleared. Chapter 07: circuit discovery."""
    if ablate is None:
        return None
    expect_dtype(ablate, "bool", "ablate")
    if ablate.ndim == 2:
        ablate = ablate[None]
    if ablate.ndim not in (3, 4) or tuple(ablate.shape[-2:]) != (g.n_senders, g.n_receivers):
        raise TutorialInputError(
            f"ablate must be a bool mask [sender={g.n_senders}, receiver={g.n_receivers}], optionally with leading "
            f"[variant] or [variant, pos={n_pos}] axes; got shape {tuple(ablate.shape)}."
        )
    if ablate.ndim == 4 and ablate.shape[1] != n_pos:
        raise TutorialInputError(f"a per-position ablate mask needs {n_pos} positions, got {ablate.shape[1]}.")
    return ablate & g.valid.to(ablate.device)


def run_edges(
    model,
    tokens: Int[Tensor, "batch pos"],
    replacement: Tensor,
    ablate: Tensor | None,
    w: fw.Weights | None = None,
) -> tuple[Float[Tensor, "var batch pos d_vocab"], Float[Tensor, "var batch pos sender d_model"]]:
    """Logits and sender outputs of the run on `tokens` with each variant's ablated edges (ablate[v, s, r],
    or ablate[v, pos, s, r] per position) carrying the replacement: corrupted tokens' sender outputs, or a
    float [batch or 1, pos, sender, d_model] tensor (e.g. mean_sender_outputs), or one replacement per edge,
    [batch or 1, pos, sender, receiver, d_model] (causal scrubbing). ablate None: the plain run.

    Chapter 07: circuit discovery.
    """
    tokens = expect_tokens(tokens, "tokens", model)
    w = fw.check_model(model) if w is None else w
    g = build_graph(model)
    repl = _replacement(w, g, replacement.to(tokens.device), tokens)
    mask = _ablation(g, ablate, tokens.shape[1])
    outs = _empty_outs(w, g, tokens, 1 if mask is None else mask.shape[0])
    return _forward(w, g, outs, repl, mask), outs


def edge_patch(model, tokens, replacement, ablate: Tensor, metric) -> Float[Tensor, " var"]:
    """metric(logits) of each variant of run_edges: the metric with each edge set ablated.

    Chapter 07: circuit discovery. Exercise 07.1 (the reference).
    """
    with torch.no_grad():
        logits, _ = run_edges(model, tokens, replacement, ablate)
    return torch.stack([torch.as_tensor(metric(lg)).float().reshape(()) for lg in logits])
