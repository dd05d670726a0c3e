"""Attribution graph for one prompt (Ameisen et al. 2025) on a model whose MLPs are replaced by
transcoders: nodes are the active transcoder latents at every position, one error node per (layer,
position), one embedding node per position and the chosen output logit; an edge is the direct linear
effect of a source on a target with attention patterns and LayerNorm scales frozen at the prompt's
values (linear through attention OV and the frozen norms; not through other latents). The edges come from
one batch of cotangent rows carried down the frozen model by hand (no forward per target), checked
against autograd's one backward per node (`naive=True`) by tests/test_attribution_graph_graph.py."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor

from ..hooks import norm_gain
from ..transcoders import Transcoder, mlp_errors
from ..validation import TutorialInputError, expect_ndim

__all__ = ["AttributionGraph", "attribution_graph", "clean_state", "frozen_forward", "logit_edges"]


@dataclass
class AttributionGraph:
    """Nodes and the [n_nodes, n_nodes] adjacency (adjacency[target, source] = attribution of the edge).

    Chapter 08: transcoders and attribution graphs.

    Node order: latents (layer, pos, index) for every active latent, then error nodes (layer, pos),
    then embedding nodes (pos), then the logit node (last). `per_unit[t, s]` is the edge divided by
    the source's activation (latent sources only; 0 elsewhere). `bias` is the logit with every source
    at zero: logit == adjacency[-1].sum() + bias exactly.
    """

    latents: list[tuple[int, int, int]]
    n_layers: int
    n_pos: int
    token: int
    logit: float
    bias: float
    adjacency: Tensor
    per_unit: Tensor
    activations: Tensor

    @property
    def n_latents(self) -> int:
        return len(self.latents)

    def names(self) -> list[str]:
        """A readable name per node, e.g. 'L1 p5 #37', 'err L0 p2', 'emb p0', 'logit'."""
        out = [f"L{layer} p{pos} #{j}" for layer, pos, j in self.latents]
        out += [f"err L{layer} p{pos}" for layer in range(self.n_layers) for pos in range(self.n_pos)]
        return out + [f"emb p{pos}" for pos in range(self.n_pos)] + ["logit"]


def clean_state(model, transcoders: Sequence[Transcoder], tokens: Int[Tensor, "1 pos"]) -> dict[str, Tensor]:
    """What the graph freezes or uses as source values, from one clean run: attention patterns, norm
    scales, the residual stream entering layer 0, transcoder codes z and error nodes.

    Chapter 08: transcoders and attribution graphs.
    """
    tokens = expect_ndim(tokens, 2, "tokens", "[1, pos]")
    if tokens.shape[0] != 1:
        raise TutorialInputError(
            f"an attribution graph is for one prompt: tokens must be [1, pos], got {tuple(tokens.shape)}."
        )
    n = model.cfg.n_layers
    keep = {"blocks.0.hook_resid_pre", "ln_final.hook_scale"}
    keep |= {
        f"blocks.{i}.{h}"
        for i in range(n)
        for h in ("attn.hook_pattern", "ln1.hook_scale", "ln2.hook_scale", "ln2.hook_out")
    }
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, names_filter=lambda name: name in keep)
        state = {k: cache[k].detach() for k in keep}
        state["z"] = torch.stack([tc.encode(cache[f"blocks.{i}.ln2.hook_out"][0]) for i, tc in enumerate(transcoders)])
        state["err"] = torch.stack([e[0] for e in mlp_errors(model, transcoders, tokens)])
    return state


def frozen_forward(
    model,
    transcoders: Sequence[Transcoder],
    tokens: Int[Tensor, "1 pos"],
    state: dict[str, Tensor],
    resid0: Float[Tensor, "batch pos d_model"],
    z: Float[Tensor, "batch layer pos d_latent"],
    err: Float[Tensor, "batch layer pos d_model"],
    stop_at_layer: int | None = None,
) -> tuple[Float[Tensor, "batch layer pos d_latent"], Float[Tensor, "batch pos vocab"]]:
    """The frozen-linear replacement model, batched over copies of the prompt: (every latent's
    pre-activation, the logits), as affine functions of the sources resid0, z and err.

    Chapter 08: transcoders and attribution graphs.

    Patterns and norm scales come from `state`; each MLP's output is z @ W_dec + b_dec + err, so a
    gradient reaches a source only through the residual stream, attention OV and the frozen norms.
    """
    batch = resid0.shape[0]
    pre: dict[int, Tensor] = {}

    def const(name: str):
        return lambda act, hook: state[name].expand_as(act).to(act.dtype)  # noqa: ARG005 - TransformerLens's interface

    hooks = [
        ("blocks.0.hook_resid_pre", lambda act, hook: resid0),  # noqa: ARG005
        ("ln_final.hook_scale", const("ln_final.hook_scale")),
    ]
    for i, tc in enumerate(transcoders):

        def grab(act, hook, i=i, tc=tc):  # noqa: ARG001
            pre[i] = tc.pre_acts(act.reshape(-1, act.shape[-1])).reshape(batch, -1, tc.d_sae)
            return act

        def mlp(act, hook, i=i, tc=tc):  # noqa: ARG001
            return (z[:, i] @ tc.W_dec + tc.b_dec + err[:, i]).to(act.dtype)

        hooks += [
            (f"blocks.{i}.{h}", const(f"blocks.{i}.{h}"))
            for h in ("attn.hook_pattern", "ln1.hook_scale", "ln2.hook_scale")
        ]
        hooks += [(f"blocks.{i}.ln2.hook_out", grab), (f"blocks.{i}.hook_mlp_out", mlp)]
    if stop_at_layer is None:
        logits = model.run_with_hooks(tokens.expand(batch, -1), fwd_hooks=hooks)
    else:  # the latents of the first stop_at_layer layers only; the second value is then the residual stream
        logits = model.run_with_hooks(tokens.expand(batch, -1), fwd_hooks=hooks, stop_at_layer=stop_at_layer)
    return torch.stack([pre[i] for i in range(len(pre))], 1), logits


def _release(model, tokens: Tensor) -> None:
    """Run one token without gradients: TransformerBridge keeps tensors of its last forward (e.g. the
    attention's captured residual), which after a gradient pass hold the autograd graph alive and make
    the model impossible to deepcopy."""
    with torch.no_grad():
        model(tokens[:, :1])


def _sources(state: dict[str, Tensor], batch: int) -> tuple[Tensor, Tensor, Tensor]:
    """Leaf copies of the clean sources (resid0, z, err), one per batch row, that gradients reach."""
    return tuple(
        t.expand(batch, *t.shape).clone().requires_grad_(True)
        for t in (state["blocks.0.hook_resid_pre"][0], state["z"], state["err"])
    )  # type: ignore[return-value]


def _targets(pre: Tensor, logits: Tensor, latents: list[tuple[int, int, int]], token: int, rows: Tensor) -> Tensor:
    """Per batch row its target: the pre-activation of latent `rows[b]`, or the last logit for row n_latents."""
    is_lat = rows < len(latents)
    out = torch.zeros(len(rows), dtype=pre.dtype, device=pre.device)
    if not is_lat.all():
        b = torch.arange(len(rows))[~is_lat]
        out = out.index_put((b,), logits[b, -1, token])
    if is_lat.any():
        idx = torch.tensor(latents, dtype=torch.long).reshape(-1, 3)[rows[is_lat]]
        b = torch.arange(len(rows))[is_lat]
        out = out.index_put((b,), pre[b, idx[:, 0], idx[:, 1], idx[:, 2]])
    return out


def _edge_rows(state: dict[str, Tensor], grads: Sequence[Tensor], active: Tensor) -> tuple[Tensor, Tensor]:
    """(attribution rows [batch, n_nodes - 1] over the sources, per-unit rows over latent sources)."""
    g_r, g_z, g_e = grads
    per_unit = g_z[:, active]
    lat = per_unit * state["z"][active]
    err = (g_e * state["err"]).sum(-1).flatten(1)
    emb = (g_r * state["blocks.0.hook_resid_pre"][0]).sum(-1)
    return torch.cat([lat, err, emb], 1), per_unit


def _assemble(graph_args: dict, rows: Tensor, per_unit: Tensor) -> AttributionGraph:
    n_lat = len(graph_args["latents"])
    n = rows.shape[1] + 1
    adjacency = torch.zeros(n, n)
    adjacency[:n_lat, :-1] = rows[:n_lat]
    adjacency[-1, :-1] = rows[n_lat]
    unit = torch.zeros(n, n)
    unit[:n_lat, :n_lat] = per_unit[:n_lat]
    unit[-1, :n_lat] = per_unit[n_lat]
    return AttributionGraph(adjacency=adjacency.detach(), per_unit=unit.detach(), **graph_args)


def _chunks(latents: list[tuple[int, int, int]], n_layers: int, naive: bool) -> list[tuple[Tensor, int | None]]:
    """Target rows batched per backward pass, each with where its forward may stop: one row per pass for the
    naive reference (full forwards); otherwise one pass per layer of target latents, stopping after that
    layer (a latent's pre-activation depends on nothing later), the last layer's pass also holding the logit."""
    n_t = len(latents) + 1
    if naive:
        return [(torch.tensor([r]), None) for r in range(n_t)]
    layer_of = torch.tensor([lat[0] for lat in latents] + [n_layers - 1], dtype=torch.long)
    out = []
    for layer in range(n_layers):
        rows = (layer_of == layer).nonzero().flatten()
        if len(rows):
            out.append((rows, layer + 1 if layer < n_layers - 1 else None))
    return out


def _norm_back(model, norm: str, state: dict[str, Tensor], g: Tensor) -> Tensor:
    """The frozen norm `norm` ('blocks.0.ln1', 'ln_final', ...) transposed: a cotangent [..., pos, d_model]
    on its output to one on its input (times the gain, over the clean scale, centred for LayerNorm)."""
    module = model.ln_final if norm == "ln_final" else getattr(model.blocks[int(norm.split(".")[1])], norm[-3:])
    gain = norm_gain(module)
    g = (g if gain is None else g * gain) / state[f"{norm}.hook_scale"][0]
    return g - g.mean(-1, keepdim=True) if model.cfg.normalization_type in ("LN", "LNPre") else g


def _attention_back(model, layer: int, state: dict[str, Tensor], g: Tensor) -> Tensor:
    """Cotangents g [rows, pos, d_model] on the residual stream after layer `layer`'s attention carried to
    the stream before it: the skip path plus the frozen attention (clean pattern, OV) and its frozen norm."""
    w_v, w_o = model.W_V[layer], model.W_O[layer]
    w_v = w_v.repeat_interleave(w_o.shape[0] // w_v.shape[0], 0)  # grouped-query value heads, as they are used
    u = torch.einsum("bqd,hed->bhqe", g, w_o)
    u = torch.einsum("hqk,bhqe->bhke", state[f"blocks.{layer}.attn.hook_pattern"][0], u)
    return g + _norm_back(model, f"blocks.{layer}.ln1", state, torch.einsum("bhke,hde->bkd", u, w_v))


def _latent_grads(g: Tensor, w_dec: Tensor, on: Tensor) -> Tensor:
    """Cotangents g [rows, pos, d_model] on a layer's MLP output, read at its active latents `on` [pos, d_sae]
    in their (pos, index) order: g[:, pos] . W_dec[index], one small matmul per position."""
    count = on.sum(1)
    idx = torch.zeros(on.shape[0], max(int(count.max()), 1), dtype=torch.long)
    keep = torch.arange(idx.shape[1]) < count[:, None]
    idx[keep] = on.nonzero()[:, 1]
    return torch.bmm(g.transpose(0, 1), w_dec[idx].transpose(1, 2)).transpose(0, 1)[:, keep]


def _frozen_vjp(
    model, transcoders: Sequence[Transcoder], state: dict[str, Tensor], token: int
) -> tuple[Tensor, Tensor]:
    """Every target's gradient with respect to the sources, by hand and with no forward: the frozen model
    is linear in its sources, so one batch of cotangent rows (the logit's, then each layer's active latents'
    from the top, added where they enter) is carried down the residual stream through each frozen
    attention and norm. Returns (edge rows, per-unit rows) as `_edge_rows` does, targets in node order."""
    active, n_layers = state["z"] > 0, len(transcoders)
    g = _norm_back(model, "ln_final", state, model.W_U[:, token])[None, -1:]
    g = torch.cat([torch.zeros(1, active.shape[1] - 1, g.shape[-1]), g], 1)  # the logit reads the last position
    reached, lat_grads, err_grads = [], [], []  # per layer from the top: rows above it, their grads there
    for layer in range(n_layers - 1, -1, -1):
        reached.append(len(g))
        lat_grads.append(_latent_grads(g, transcoders[layer].W_dec, active[layer]))
        err_grads.append((g * state["err"][layer]).sum(-1))
        on = active[layer].nonzero()
        inject = torch.zeros(len(on), *g.shape[1:])
        inject[torch.arange(len(on)), on[:, 0]] = transcoders[layer].W_enc.T[on[:, 1]]  # each latent's encoder row
        g = torch.cat([g, _norm_back(model, f"blocks.{layer}.ln2", state, inject)])
        g = _attention_back(model, layer, state, g)
    sizes = active.flatten(1).sum(1).tolist()
    per_unit, err = torch.zeros(len(g), sum(sizes)), torch.zeros(len(g), n_layers, g.shape[1])
    for i, layer in enumerate(range(n_layers - 1, -1, -1)):
        per_unit[: reached[i], sum(sizes[:layer]) : sum(sizes[: layer + 1])] = lat_grads[i]
        err[: reached[i], layer] = err_grads[i]
    emb = (g * state["blocks.0.hook_resid_pre"][0]).sum(-1)
    rows = torch.cat([per_unit * state["z"][active], err.flatten(1), emb], 1)
    order = [torch.arange(1 + sum(sizes[layer + 1 :]), 1 + sum(sizes[layer:])) for layer in range(n_layers)]
    order = torch.cat([*order, torch.zeros(1, dtype=torch.long)])  # rows were added top-down, the logit's first
    return rows[order], per_unit[order]


def _autograd_rows(model, transcoders, tokens, token, state, latents, naive) -> tuple[Tensor, Tensor, float | None]:
    """Edge rows by autograd through `frozen_forward`: one backward per target (`naive`) or per layer of targets."""
    active = state["z"] > 0
    rows, units, logit = [], [], None
    for chunk, stop in _chunks(latents, len(transcoders), naive):
        leaves = _sources(state, len(chunk))
        resid0, z, err = leaves
        pre, logits = frozen_forward(model, transcoders, tokens, state, resid0, z, err, stop_at_layer=stop)
        target = _targets(pre, logits, latents, token, chunk).sum()
        grads = torch.autograd.grad(target, leaves, allow_unused=True)  # type: ignore[arg-type]
        grads = [torch.zeros_like(leaf) if g is None else g for g, leaf in zip(grads, leaves, strict=True)]
        r, u = _edge_rows(state, grads, active)
        rows.append(r)
        units.append(u)
        if stop is None:
            logit = logits[0, -1, token].item()
    _release(model, tokens)
    return torch.cat(rows), torch.cat(units), logit


def _complete(rows: Tensor, pre: Tensor, logits: Tensor, active: Tensor, token: int) -> bool:
    """Whether every target's edges sum to its value with the sources on minus with them off (the frozen
    model is affine in them), from `pre`/`logits` of a batch [sources off, sources on]: the self-check of
    the hand-written backward, which fails on a model whose blocks it does not describe."""
    want = torch.cat([(pre[1] - pre[0])[active], (logits[1, -1, token] - logits[0, -1, token])[None]])
    off = torch.cat([pre[0][active], logits[0, -1, token][None]]).abs()
    return bool(((rows.sum(1) - want).abs() <= 1e-4 * (rows.abs().sum(1) + off) + 1e-5).all())


def attribution_graph(
    model, transcoders: Sequence[Transcoder], tokens: Int[Tensor, "1 pos"], token: int, *, naive: bool = False
) -> AttributionGraph:
    """The attribution graph of `tokens`'s last-position logit for `token`: every target's incoming
    edges at once, by carrying one batch of cotangent rows (one per target) down the frozen model by hand
    (`_frozen_vjp`), self-checked against the model's own affine identity (else, autograd through
    `frozen_forward`, one backward pass per layer of targets). `naive=True` is the reference: one
    autograd backward per target node (same numbers, much slower).

    Chapter 08: transcoders and attribution graphs.
    """
    if not isinstance(token, int) or not 0 <= token < model.cfg.d_vocab:
        raise TutorialInputError(f"token must be an int token id in [0, {model.cfg.d_vocab}), got {token!r}.")
    state = clean_state(model, transcoders, tokens)
    active = state["z"] > 0
    latents: list[tuple[int, int, int]] = [(int(a), int(b), int(c)) for a, b, c in active.nonzero().tolist()]
    with torch.no_grad():  # every source off (the bias), then on (the logit)
        r0, z, err = (
            torch.stack([torch.zeros_like(t), t])
            for t in (state["blocks.0.hook_resid_pre"][0], state["z"], state["err"])
        )
        pre, logits = frozen_forward(model, transcoders, tokens, state, r0, z, err)
    bias, logit = logits[0, -1, token].item(), logits[1, -1, token].item()
    try:
        fast = None if naive else _frozen_vjp(model, transcoders, state, token)
    except (AttributeError, KeyError, IndexError, RuntimeError):  # a model without toy-lm's names or shapes
        fast = None
    if fast is not None and _complete(fast[0], pre, logits, active, token):
        rows, units = fast
    else:
        rows, units, autograd_logit = _autograd_rows(model, transcoders, tokens, token, state, latents, naive)
        logit = logit if autograd_logit is None else autograd_logit
    args = {"latents": latents, "n_layers": len(transcoders), "n_pos": tokens.shape[1], "token": token,
            "logit": logit, "bias": bias, "activations": state["z"][active]}  # fmt: skip
    return _assemble(args, rows, units)


def logit_edges(
    model, transcoders: Sequence[Transcoder], tokens: Int[Tensor, "1 pos"], token: int
) -> Float[Tensor, " n_sources"]:
    """The logit node's incoming edges, in the graph's node order (active latents, error nodes, embedding
    nodes): one backward pass of the frozen-linear model from the last position's `token` logit to
    leaf copies of the sources, each gradient times its source's value.

    Exercise 08.5. Chapter 08: transcoders and attribution graphs.
    """
    if not isinstance(token, int) or not 0 <= token < model.cfg.d_vocab:
        raise TutorialInputError(f"token must be an int token id in [0, {model.cfg.d_vocab}), got {token!r}.")
    state = clean_state(model, transcoders, tokens)
    leaves = _sources(state, 1)
    _, logits = frozen_forward(model, transcoders, tokens, state, *leaves)
    grads = torch.autograd.grad(logits[0, -1, token], leaves)
    _release(model, tokens)
    return _edge_rows(state, grads, state["z"] > 0)[0][0].detach()
