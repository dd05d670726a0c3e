"""Induction heads (chapter 05): what attention heads attend to, what their weights compute,
what they contribute to the logits, and when the circuit forms during training.

Conventions. A "pattern" is [batch, head, q, k] (one layer, as in `blocks.{l}.attn.hook_pattern`)
or [batch, layer, head, q, k] (all layers); scores come back as [head] or [layer, head].
Sequences repeat a segment: the token at position q occurred before at q - period. The
`repeated` mask marks the query positions q where both tokens[q] and tokens[q + 1] are repeats,
so tokens[q + 1] is predictable by copying; `first` marks the matching positions q - period.
The classic [BOS, x, x] batch (x of length L) is the case period = L, repeated = L+1 .. 2L-1.

Weight circuits follow TransformerLens's row-vector convention (x @ W): OV = W_V W_O and
QK = W_Q W_K^T, both `FactoredMatrix` [(layer,) head, d_model, d_model]. With `fold_ln=True`
(default) LayerNorm weights are folded in and writing weights centred, as
`HookedTransformer.from_pretrained` did by default; the per-token LayerNorm scale is ignored.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import einops
import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor
from transformer_lens import FactoredMatrix
from transformer_lens.utilities import get_act_name

from .hooks import per_token_loss
from .validation import TutorialInputError, expect_choice, expect_dtype, expect_ndim, expect_range, expect_shape

SCORE_KINDS = ("previous", "induction", "duplicate", "current")
COMPOSITION_KINDS = ("Q", "K", "V")
ABLATIONS = ("zero", "mean")


# --------------------------------------------------------------------------- masks and inputs


def repeat_masks(
    seq_len: int,
    period: int | Int[Tensor, " batch"],
    start: int | Int[Tensor, " batch"] = 1,
    length: int | Int[Tensor, " batch"] | None = None,
    batch: int | None = None,
) -> tuple[Bool[Tensor, "batch pos"], Bool[Tensor, "batch pos"]]:
    """(first, repeated) masks for rows whose segment tokens[start : start+length] repeats at start+period.

    `length` defaults to `period` (back-to-back copies). repeated[q]: tokens[q] and tokens[q+1] both
    lie in the second copy; first[q] = repeated[q + period]. [BOS, x, x] is period=L, start=1.
    """
    if not isinstance(seq_len, int) or seq_len < 2:
        raise TutorialInputError(f"seq_len must be an int >= 2, got {seq_len!r}.")
    sizes = [t.shape[0] for t in (period, start, length) if isinstance(t, Tensor)]
    n = batch if batch is not None else (sizes[0] if sizes else 1)
    device = next((t.device for t in (period, start, length) if isinstance(t, Tensor)), None)

    def as_rows(v: int | Tensor) -> Tensor:
        if isinstance(v, Tensor):
            return v.to(device=device, dtype=torch.long)
        return torch.full((n,), int(v), device=device)

    p = as_rows(period)
    s = as_rows(start)
    ln = p if length is None else as_rows(length)
    for name, v in (("period", p), ("start", s), ("length", ln)):
        expect_shape(v, (n,), name, "[batch]")
    if (p < 1).any() or (s < 0).any() or (ln < 2).any() or (ln > p).any():
        raise TutorialInputError("need period >= 1, start >= 0 and 2 <= length <= period in every row.")
    if (s + p + ln > seq_len).any():
        raise TutorialInputError(
            f"the second copy (start + period + length) must fit in seq_len={seq_len}, "
            f"got up to {int((s + p + ln).max())}."
        )
    q = torch.arange(seq_len, device=p.device)[None, :]
    lo = (s + p)[:, None]
    repeated = (q >= lo) & (q <= lo + ln[:, None] - 2)
    first = (q >= s[:, None]) & (q <= (s + ln)[:, None] - 2)
    return first, repeated


def _is_segments(x: object) -> bool:
    return all(hasattr(x, a) for a in ("tokens", "period", "repeated", "first"))


def _resolve_batch(
    tokens: Any, period: int | Tensor | None
) -> tuple[Tensor, Tensor, Bool[Tensor, "batch pos"], Bool[Tensor, "batch pos"]]:
    """tokens (a [BOS, x, x] tensor) or a RepeatedSegments -> (tokens, period [batch], first, repeated)."""
    if _is_segments(tokens):
        seg = tokens
        toks = expect_ndim(seg.tokens, 2, "segments.tokens", "[batch, pos]")
        p = seg.period.to(toks.device).long()
        repeated = expect_shape(seg.repeated, tuple(toks.shape), "segments.repeated", "[batch, pos]").to(toks.device)
        # Keep only queries whose own token is a repeat too (an induction head needs it).
        q = torch.arange(toks.shape[1], device=toks.device)[None, :]
        repeated = repeated & (q - p[:, None] >= 0)
        if hasattr(seg, "start"):
            repeated = repeated & (q - p[:, None] >= seg.start.to(toks.device)[:, None])
        # first[q] = repeated[q + period], so both masks hold the same tokens' two occurrences.
        ahead = q + p[:, None]
        first = repeated.gather(1, ahead.clamp(max=toks.shape[1] - 1)) & (ahead < toks.shape[1])
        return toks, p, first, repeated
    toks = expect_ndim(tokens, 2, "tokens", "[batch, pos]")
    expect_dtype(toks, "int", "tokens")
    batch, pos = toks.shape
    if period is None:
        if pos % 2 != 1:
            raise TutorialInputError(
                f"tokens must be [BOS, x, x] with an odd length 1 + 2 * half_len when no period is given, "
                f"got {pos} positions; pass period= or a RepeatedSegments batch."
            )
        period = (pos - 1) // 2
    first, repeated = repeat_masks(pos, period, start=1, batch=batch)
    p = period.long() if isinstance(period, Tensor) else torch.full((batch,), int(period))
    return toks, p.to(toks.device), first.to(toks.device), repeated.to(toks.device)


# --------------------------------------------------------------------------- attention-pattern scores


def stack_patterns(cache: Any) -> Float[Tensor, "batch layer head q k"]:
    """All layers' `hook_pattern` from an ActivationCache (or a dict) as one [batch, layer, head, q, k] tensor."""
    layers = []
    while get_act_name("pattern", len(layers)) in cache:
        layers.append(cache[get_act_name("pattern", len(layers))])
    if not layers:
        raise TutorialInputError(
            "the cache holds no blocks.{l}.attn.hook_pattern: run the model with "
            "names_filter=lambda name: name.endswith('hook_pattern') (or no filter)."
        )
    return torch.stack(layers, dim=1)


def _as_pattern5(pattern: Any) -> tuple[Float[Tensor, "batch layer head q k"], bool]:
    """Accept a cache, [batch, head, q, k] or [batch, layer, head, q, k]; say whether to drop the layer axis."""
    if not isinstance(pattern, Tensor):
        if hasattr(pattern, "keys") or hasattr(pattern, "__contains__"):
            return stack_patterns(pattern), False
        raise TutorialInputError(f"pattern must be a tensor or an ActivationCache, got {type(pattern).__name__}.")
    expect_dtype(pattern, "float", "pattern")
    if pattern.ndim == 4:
        return pattern[:, None], True
    if pattern.ndim == 5:
        return pattern, False
    raise TutorialInputError(
        f"pattern must be [batch, head, q, k] or [batch, layer, head, q, k], got shape {tuple(pattern.shape)}."
    )


def _query_mask(mask: Tensor | None, batch: int, n_q: int, device, default: Tensor) -> Tensor:
    if mask is None:
        return default
    mask = expect_dtype(mask, "bool", "query_mask")
    if mask.ndim == 1:
        mask = mask[None].expand(batch, -1)
    expect_shape(mask, (batch, n_q), "query_mask", "[batch, q]")
    return mask.to(device)


def target_score(
    pattern: Any, target: Int[Tensor, "batch q"], query_mask: Bool[Tensor, "batch q"]
) -> Float[Tensor, "... head"]:
    """Mean attention from each masked query q to key target[b, q], pooled over batch and queries."""
    p5, squeeze = _as_pattern5(pattern)
    b, _, _, n_q, n_k = p5.shape
    expect_shape(target, (b, n_q), "target", "[batch, q]")
    expect_shape(query_mask, (b, n_q), "query_mask", "[batch, q]")
    valid = query_mask.to(p5.device) & (target >= 0).to(p5.device) & (target < n_k).to(p5.device)
    if not valid.any():
        raise TutorialInputError("no query position is left to score: check query_mask and period.")
    idx = target.to(p5.device).clamp(0, n_k - 1)[:, None, None, :, None].expand(*p5.shape[:4], 1)
    picked = p5.gather(-1, idx).squeeze(-1)  # [batch, layer, head, q]
    w = valid[:, None, None, :].to(p5.dtype)
    score = (picked * w).sum(dim=(0, 3)) / w.sum(dim=(0, 3))
    return score[0] if squeeze else score


def _period_rows(period: int | Tensor, batch: int, device) -> Tensor:
    if isinstance(period, Tensor):
        period = expect_dtype(period, "int", "period")
        if period.ndim == 0:
            period = period.expand(batch)
        expect_shape(period, (batch,), "period", "[batch]")
        return period.to(device).long()
    if not isinstance(period, int) or period < 1:
        raise TutorialInputError(f"period must be a positive int or an int tensor [batch], got {period!r}.")
    return torch.full((batch,), period, device=device, dtype=torch.long)


def _offset_score(pattern: Any, back: int | Tensor, shift: int, query_mask: Tensor | None, default_from: Tensor):
    """Score attention from q to q - back + shift; default queries: q >= default_from[b]."""
    p5, squeeze = _as_pattern5(pattern)
    b, n_q = p5.shape[0], p5.shape[3]
    back = (
        _period_rows(back, b, p5.device)
        if not (isinstance(back, int) and back == 0)
        else torch.zeros(b, dtype=torch.long, device=p5.device)
    )
    q = torch.arange(n_q, device=p5.device)[None, :]
    mask = _query_mask(query_mask, b, n_q, p5.device, q >= default_from.to(p5.device)[:, None])
    score = target_score(p5, q - back[:, None] + shift, mask)
    return score[0] if squeeze else score


def previous_token_score(pattern: Any, query_mask: Bool[Tensor, "batch q"] | None = None) -> Float[Tensor, "... head"]:
    """Mean attention from each token to the one before it (queries q >= 1 unless masked)."""
    p5, _ = _as_pattern5(pattern)
    return _offset_score(pattern, 1, 0, query_mask, torch.ones(p5.shape[0], dtype=torch.long))


def current_token_score(pattern: Any, query_mask: Bool[Tensor, "batch q"] | None = None) -> Float[Tensor, "... head"]:
    """Mean attention from each token to itself (queries q >= 1 unless masked: BOS can only see itself)."""
    p5, _ = _as_pattern5(pattern)
    return _offset_score(pattern, 0, 0, query_mask, torch.ones(p5.shape[0], dtype=torch.long))


def induction_score(
    pattern: Any, period: int | Int[Tensor, " batch"], query_mask: Bool[Tensor, "batch q"] | None = None
) -> Float[Tensor, "... head"]:
    """Mean attention from each repeated token to the token after its previous occurrence (q -> q - period + 1).

    Default queries: q >= period + 1, the second half of [BOS, x, x]; pass `repeated` otherwise.
    """
    p5, _ = _as_pattern5(pattern)
    rows = _period_rows(period, p5.shape[0], p5.device)
    return _offset_score(pattern, rows, 1, query_mask, rows + 1)


def duplicate_token_score(
    pattern: Any, period: int | Int[Tensor, " batch"], query_mask: Bool[Tensor, "batch q"] | None = None
) -> Float[Tensor, "... head"]:
    """Mean attention from each repeated token to its previous occurrence (q -> q - period)."""
    p5, _ = _as_pattern5(pattern)
    rows = _period_rows(period, p5.shape[0], p5.device)
    return _offset_score(pattern, rows, 0, query_mask, rows + 1)


def attention_scores(
    pattern: Any, period: int | Int[Tensor, " batch"], query_mask: Bool[Tensor, "batch q"] | None = None
) -> dict[str, Float[Tensor, "... head"]]:
    """All four scores at once. `query_mask` (e.g. `repeated`) restricts induction and duplicate queries only."""
    p5, squeeze = _as_pattern5(pattern)
    pat = p5[:, 0] if squeeze else p5
    return {
        "previous": previous_token_score(pat),
        "induction": induction_score(pat, period, query_mask),
        "duplicate": duplicate_token_score(pat, period, query_mask),
        "current": current_token_score(pat),
    }


@torch.no_grad()
def head_scores(model, tokens: Any, period: int | Tensor | None = None) -> dict[str, Float[Tensor, "layer head"]]:
    """Run `model` on [BOS, x, x] tokens or a RepeatedSegments batch, caching only the patterns,
    and score every head: {"previous", "induction", "duplicate", "current"} -> [n_layers, n_heads]."""
    toks, p, _, repeated = _resolve_batch(tokens, period)
    toks = toks.to(_model_device(model))
    _, cache = model.run_with_cache(toks, names_filter=lambda name: name.endswith("hook_pattern"))
    mask = repeated.to(toks.device) if _is_segments(tokens) else None  # [BOS, x, x]: the whole second half
    return attention_scores(stack_patterns(cache), p.to(toks.device), mask)


# --------------------------------------------------------------------------- weight circuits


def _model_device(model) -> torch.device:
    return next(model.parameters()).device


def _ln_kind(model) -> str | None:
    return getattr(model.cfg, "normalization_type", None)


def _ln_weight(ln_module) -> Tensor | None:
    w = getattr(ln_module, "w", None) if ln_module is not None else None
    return w if isinstance(w, Tensor) else None


def _center(w: Tensor) -> Tensor:
    """Remove each row's mean over d_model (what a following LayerNorm does to a write)."""
    return w - w.mean(dim=-1, keepdim=True)


def circuit_weights(model, fold_ln: bool = True) -> dict[str, Tensor]:
    """W_E [vocab, d_model], W_Q/W_K/W_V [layer, head, d_model, d_head], W_O [layer, head, d_head, d_model],
    W_U [d_model, vocab]; with fold_ln, LayerNorm weights folded in and writing weights centred."""
    if not isinstance(fold_ln, bool):
        raise TutorialInputError(f"fold_ln must be True or False, got {fold_ln!r}.")
    w = {name: getattr(model, name).detach() for name in ("W_E", "W_Q", "W_K", "W_V", "W_O", "W_U")}
    if not fold_ln:
        return w
    kind = _ln_kind(model)
    if kind in ("LN", "LNPre"):
        w["W_E"] = _center(w["W_E"])
        w["W_O"] = _center(w["W_O"])
        w["W_U"] = w["W_U"] - w["W_U"].mean(dim=-1, keepdim=True)  # logits shift, softmax does not
    gains = [_ln_weight(getattr(block, "ln1", None)) for block in model.blocks]
    if all(g is not None for g in gains):
        g = torch.stack([x.detach() for x in gains])[:, None, :, None]  # [layer, 1, d_model, 1]
        for name in ("W_Q", "W_K", "W_V"):
            w[name] = w[name] * g
    g_final = _ln_weight(getattr(model, "ln_final", None))
    if g_final is not None:
        w["W_U"] = g_final.detach()[:, None] * w["W_U"]
    return w


def _layer(model, layer: int | None) -> slice | int:
    if layer is None:
        return slice(None)
    if not isinstance(layer, int) or not 0 <= layer < model.cfg.n_layers:
        raise TutorialInputError(f"layer must be an int in [0, {model.cfg.n_layers - 1}], got {layer!r}.")
    return layer


def qk_circuit(model, layer: int | None = None, fold_ln: bool = True) -> FactoredMatrix:
    """W_Q W_K^T per head: [layer, head, d_model, d_model] (or [head, ...] for one layer); query rows, key columns."""
    w, sl = circuit_weights(model, fold_ln), _layer(model, layer)
    return FactoredMatrix(w["W_Q"][sl], w["W_K"][sl].transpose(-2, -1))


def ov_circuit(model, layer: int | None = None, fold_ln: bool = True) -> FactoredMatrix:
    """W_V W_O per head: [layer, head, d_model, d_model] (or [head, ...]): what a head writes for what it reads."""
    w, sl = circuit_weights(model, fold_ln), _layer(model, layer)
    return FactoredMatrix(w["W_V"][sl], w["W_O"][sl])


def full_ov_circuit(model, layer: int | None = None, fold_ln: bool = True) -> FactoredMatrix:
    """W_E W_V W_O W_U: [(layer,) head, d_vocab, d_vocab]; row = attended token, column = logit it raises."""
    w, sl = circuit_weights(model, fold_ln), _layer(model, layer)
    return FactoredMatrix(w["W_E"] @ w["W_V"][sl], w["W_O"][sl] @ w["W_U"])


def full_qk_circuit(model, layer: int | None = None, fold_ln: bool = True) -> FactoredMatrix:
    """W_E W_Q W_K^T W_E^T: [(layer,) head, d_vocab, d_vocab]; how much query token i attends to key token j."""
    w, sl = circuit_weights(model, fold_ln), _layer(model, layer)
    return FactoredMatrix(w["W_E"] @ w["W_Q"][sl], (w["W_E"] @ w["W_K"][sl]).transpose(-2, -1))


def copying_score(circuit: FactoredMatrix | Tensor, signed: bool = False) -> Float[Tensor, "*batch"]:
    """Positive eigenvalue mass of a square circuit: sum(max(Re λ, 0)) / sum(|λ|), in [0, 1].

    1 for the identity (a copying head), 0 for minus the identity. signed=True gives Elhage et al.'s
    Re(sum λ) / sum |λ| in [-1, 1] instead.
    """
    if isinstance(circuit, FactoredMatrix):
        if circuit.ldim != circuit.rdim:
            raise TutorialInputError(f"the circuit must be square, got {tuple(circuit.shape)}.")
        eig = circuit.eigenvalues  # from the small [mdim, mdim] product BA: same nonzero eigenvalues
    else:
        expect_dtype(circuit, "float", "circuit")
        if circuit.ndim < 2 or circuit.shape[-1] != circuit.shape[-2]:
            raise TutorialInputError(f"circuit must be a square matrix [..., n, n], got {tuple(circuit.shape)}.")
        eig = torch.linalg.eigvals(circuit.double())
    mass = eig.abs().sum(-1)
    top = eig.real.sum(-1) if signed else eig.real.clamp(min=0).sum(-1)
    return (top / mass.clamp(min=torch.finfo(mass.dtype).tiny)).float()


def _dense(x: FactoredMatrix | Tensor) -> Tensor:
    return x.AB if isinstance(x, FactoredMatrix) else x


def composition_score(
    left: FactoredMatrix | Tensor, right: FactoredMatrix | Tensor
) -> Float[Tensor, "*left_dims *right_dims"]:
    """||L R||_F / (||L||_F ||R||_F) for every pair: left [*a, n, n] and right [*b, n, n] -> [*a, *b]."""
    left, right = _dense(left), _dense(right)
    expect_dtype(left, "float", "left")
    expect_dtype(right, "float", "right")
    if left.ndim < 2 or right.ndim < 2 or left.shape[-1] != right.shape[-2]:
        raise TutorialInputError(
            f"left [..., m, n] and right [..., n, p] must chain, got {tuple(left.shape)} and {tuple(right.shape)}."
        )
    b = right.ndim - 2
    lhs = left.reshape(*left.shape[:-2], *([1] * b), *left.shape[-2:])
    prod = lhs @ right
    norms = torch.linalg.matrix_norm
    return norms(prod) / (norms(left).reshape(left.shape[:-2] + (1,) * b) * norms(right))


def composition_scores(
    model, kind: str, layer_a: int = 0, layer_b: int = 1, fold_ln: bool = True
) -> Float[Tensor, "heads_a heads_b"]:
    """Q-, K- or V-composition of every head in layer_a (writer) with every head in layer_b (reader).

    Q: ||OV_a QK_b||, K: ||OV_a QK_b^T|| (the key side reads OV_a's output), V: ||OV_a OV_b||,
    each over the product of the norms (Elhage et al. 2021, in TransformerLens's row convention).
    """
    expect_choice(kind, COMPOSITION_KINDS, "kind")
    _layer(model, layer_a), _layer(model, layer_b)
    if layer_a >= layer_b:
        raise TutorialInputError(f"layer_a must come before layer_b, got {layer_a} and {layer_b}.")
    ov_a = ov_circuit(model, layer_a, fold_ln).AB
    right = {
        "Q": lambda: qk_circuit(model, layer_b, fold_ln).AB,
        "K": lambda: qk_circuit(model, layer_b, fold_ln).AB.transpose(-2, -1),
        "V": lambda: ov_circuit(model, layer_b, fold_ln).AB,
    }[kind]()
    return composition_score(ov_a, right)


def composition_baseline(
    d_model: int, d_head: int, n_samples: int = 256, seed: int = 0, device: str | torch.device | None = None
) -> Float[Tensor, " n_samples"]:
    """Composition scores of random pairs of rank-d_head matrices W_1 W_2 ([d_model, d_head] @ [d_head, d_model],
    Gaussian entries): what chance looks like for heads of this shape."""
    for name, v in (("d_model", d_model), ("d_head", d_head), ("n_samples", n_samples)):
        if not isinstance(v, int) or v < 1:
            raise TutorialInputError(f"{name} must be a positive int, got {v!r}.")
    gen = torch.Generator().manual_seed(seed)
    f = [
        torch.randn(n_samples, *shape, generator=gen)
        for shape in [(d_model, d_head), (d_head, d_model), (d_model, d_head), (d_head, d_model)]
    ]
    left, right = (f[0] @ f[1]).to(device), (f[2] @ f[3]).to(device)
    norms = torch.linalg.matrix_norm
    return norms(left @ right) / (norms(left) * norms(right))


# --------------------------------------------------------------------------- direct logit attribution


def _final_ln(model, cache, x: Tensor, index: tuple) -> Tensor:
    """Apply ln_final's linear part to residual pieces x [..., d_model] read at cache positions `index`."""
    kind = _ln_kind(model)
    if kind in ("LN", "LNPre"):
        x = x - x.mean(dim=-1, keepdim=True)
    if kind is not None:
        name = "ln_final.hook_scale"
        if name not in cache:
            raise TutorialInputError(f"the cache holds no {name}: run the model without a names_filter (or keep it).")
        scale = cache[name][index]  # [..., 1]
        while scale.ndim < x.ndim:
            scale = scale.unsqueeze(-2)
        x = x / scale
    g = _ln_weight(getattr(model, "ln_final", None))
    return x * g if g is not None else x


def direct_logit_attribution(
    model, cache, answer: int | Int[Tensor, " batch"] | Int[Tensor, "batch pos"], pos: int | Int[Tensor, " batch"] = -1
) -> Float[Tensor, "batch ... layer head"]:
    """Each head's direct contribution to the answer's logit: result_h through ln_final (frozen scale) onto W_U[:, answer].

    answer int or [batch] with pos int or [batch] -> [batch, layer, head]; answer [batch, pos] (every position,
    e.g. tokens[:, 1:] padded) -> [batch, pos, layer, head]. Summed with the embeddings, b_O and the biases
    of ln_final and the unembedding it gives the logit exactly.
    """
    z = torch.stack([cache[get_act_name("z", layer)] for layer in range(model.cfg.n_layers)], dim=2)
    batch, n_pos = z.shape[0], z.shape[1]
    rows = torch.arange(batch, device=z.device)
    if isinstance(answer, Tensor) and answer.ndim == 2:
        expect_dtype(answer, "int", "answer")
        expect_shape(answer, (batch, n_pos), "answer", "[batch, pos]")
        index, z_at, ans = (slice(None), slice(None)), z, answer.to(z.device)
    else:
        if isinstance(answer, int):
            answer = torch.full((batch,), answer)
        expect_dtype(answer, "int", "answer")
        expect_shape(answer, (batch,), "answer", "[batch]")
        if isinstance(pos, int):
            expect_range(pos, "pos", -n_pos, n_pos - 1)
            pos = torch.full((batch,), pos % n_pos)
        expect_shape(expect_dtype(pos, "int", "pos"), (batch,), "pos", "[batch]")
        index = (rows, pos.to(z.device) % n_pos)
        z_at, ans = z[index], answer.to(z.device)
    results = einops.einsum(
        z_at, model.W_O, "... layer head d_head, layer head d_head d_model -> ... layer head d_model"
    )
    directions = model.W_U[:, ans]  # [d_model, *answer_shape]
    directions = einops.rearrange(directions, "d_model ... -> ... d_model")
    results = _final_ln(model, cache, results, index)
    return einops.einsum(results, directions, "... layer head d_model, ... d_model -> ... layer head")


# --------------------------------------------------------------------------- ablations and losses


def token_losses(
    logits: Float[Tensor, "batch pos vocab"], tokens: Int[Tensor, "batch pos"]
) -> Float[Tensor, "batch pos"]:
    """Cross-entropy of predicting tokens[q + 1] at q; the last position (no target) gets 0."""
    return torch.nn.functional.pad(per_token_loss(logits, tokens), (0, 1))


def repeat_losses(
    logits: Float[Tensor, "batch pos vocab"], tokens: Any, period: int | Tensor | None = None
) -> dict[str, float]:
    """Mean loss on the first occurrence and on the repeated one: {"first", "repeated"}."""
    toks, _, first, repeated = _resolve_batch(tokens, period)
    loss = token_losses(logits, toks.to(logits.device))
    return {
        "first": loss[first.to(loss.device)].mean().item(),
        "repeated": loss[repeated.to(loss.device)].mean().item(),
    }


@torch.no_grad()
def ablation_losses(
    model, tokens: Any, kind: str = "zero", period: int | Tensor | None = None
) -> dict[str, Float[Tensor, "layer head"] | float]:
    """Ablate one head at a time (hook_z set to zero, or to its mean over the batch at each position) and
    return the losses: {"first", "repeated"} [n_layers, n_heads], plus "clean_first", "clean_repeated"."""
    expect_choice(kind, ABLATIONS, "kind")
    toks, p, first, repeated = _resolve_batch(tokens, period)
    device = _model_device(model)
    toks, first, repeated = toks.to(device), first.to(device), repeated.to(device)
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    out = {"first": torch.zeros(n_layers, n_heads), "repeated": torch.zeros(n_layers, n_heads)}

    def losses(logits):
        loss = token_losses(logits, toks)
        return loss[first].mean().item(), loss[repeated].mean().item()

    out["clean_first"], out["clean_repeated"] = losses(model(toks))
    for layer in range(n_layers):
        for head in range(n_heads):

            def hook(z, hook, head=head):
                z = z.clone()
                z[:, :, head] = 0.0 if kind == "zero" else z[:, :, head].mean(dim=0, keepdim=True)
                return z

            logits = model.run_with_hooks(toks, fwd_hooks=[(get_act_name("z", layer), hook)])
            out["first"][layer, head], out["repeated"][layer, head] = losses(logits)
    return out


def _heads_list(model, heads: Any, name: str) -> list[tuple[int, int]]:
    try:
        out = [(int(layer), int(head)) for layer, head in heads]
    except (TypeError, ValueError):
        raise TutorialInputError(f"{name} must be a list of (layer, head) pairs, got {heads!r}.") from None
    for layer, head in out:
        if not (0 <= layer < model.cfg.n_layers and 0 <= head < model.cfg.n_heads):
            raise TutorialInputError(
                f"{name}: ({layer}, {head}) is not a head of a {model.cfg.n_layers}-layer, {model.cfg.n_heads}-head model."
            )
    return out


@torch.no_grad()
def ablated_loss(
    model,
    tokens: Any,
    heads: Sequence[tuple[int, int]],
    kind: str = "zero",
    keep: bool = False,
    period: int | Tensor | None = None,
) -> dict[str, float]:
    """Mean loss on the first and on the repeated occurrence ({"first", "repeated"}) with the listed heads'
    hook_z ablated together (keep=True: every head *except* the listed ones). kind "zero" sets z to 0;
    "mean" to its mean over the batch at each position, taken from the clean run."""
    expect_choice(kind, ABLATIONS, "kind")
    listed = set(_heads_list(model, heads, "heads"))
    toks, _, first, repeated = _resolve_batch(tokens, period)
    device = _model_device(model)
    toks, first, repeated = toks.to(device), first.to(device), repeated.to(device)
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    ablate = {(li, h) for li in range(n_layers) for h in range(n_heads) if ((li, h) in listed) != keep}
    means = {}
    if kind == "mean" and ablate:
        _, cache = model.run_with_cache(toks, names_filter=lambda name: name.endswith("attn.hook_z"))
        means = {li: cache[get_act_name("z", li)].mean(dim=0, keepdim=True) for li in range(n_layers)}

    def hook(z, hook, layer: int = 0):
        idx = [h for h in range(n_heads) if (layer, h) in ablate]
        z = z.clone()
        z[:, :, idx] = 0.0 if kind == "zero" else means[layer][:, :, idx].expand(z.shape[0], -1, -1, -1)
        return z

    hooks = [
        (get_act_name("z", li), functools.partial(hook, layer=li))
        for li in range(n_layers)
        if any((li, h) in ablate for h in range(n_heads))
    ]
    loss = token_losses(model.run_with_hooks(toks, fwd_hooks=hooks), toks)
    return {"first": loss[first].mean().item(), "repeated": loss[repeated].mean().item()}


def circuit_coverage(
    model, tokens: Any, circuit: Sequence[tuple[int, int]], period: int | Tensor | None = None
) -> float:
    """How much of the in-context loss drop (first-occurrence loss minus repeated-occurrence loss) the
    `circuit` heads produce alone, every other head mean-ablated: drop(circuit only) / drop(clean model)."""
    clean = ablated_loss(model, tokens, [], period=period)
    alone = ablated_loss(model, tokens, circuit, kind="mean", keep=True, period=period)
    drop = clean["first"] - clean["repeated"]
    if abs(drop) < 1e-8:
        raise TutorialInputError("the clean model shows no in-context loss drop on these tokens: nothing to cover.")
    return (alone["first"] - alone["repeated"]) / drop


# --------------------------------------------------------------------------- watching training


@dataclass
class Transition:
    """When the in-context loss gap and the induction score each cross halfway from start to end."""

    loss_step: float
    induction_step: float
    head: tuple[int, int]
    total_steps: int

    @property
    def gap_fraction(self) -> float:
        """|loss_step - induction_step| as a fraction of the whole run."""
        return abs(self.loss_step - self.induction_step) / max(self.total_steps, 1)


def halfway_step(steps: Sequence[int], values: Sequence[float] | Tensor, window: int = 1) -> float:
    """First step where `values` crosses halfway between its start and end (means of `window` records),
    linearly interpolated between records."""
    v = torch.as_tensor(values, dtype=torch.float64).flatten()
    s = torch.as_tensor(steps, dtype=torch.float64).flatten()
    if v.numel() != s.numel() or v.numel() < 2:
        raise TutorialInputError(
            f"need matching steps and values with at least 2 records, got {s.numel()} and {v.numel()}."
        )
    if not isinstance(window, int) or not 1 <= window <= v.numel() // 2:
        raise TutorialInputError(f"window must be an int in [1, {v.numel() // 2}], got {window!r}.")
    start, end = v[:window].mean(), v[-window:].mean()
    mid, sign = (start + end) / 2, torch.sign(end - start)
    if sign == 0:
        raise TutorialInputError("the curve ends where it starts: there is no transition to locate.")
    crossed = (sign * (v - mid) >= 0).nonzero()
    i = int(crossed[0])
    if i == 0:
        return float(s[0])
    frac = (mid - v[i - 1]) / (v[i] - v[i - 1])
    return float(s[i - 1] + frac * (s[i] - s[i - 1]))


@dataclass
class InductionMonitor:
    """A `train_lm` callback: every `every` steps, the loss on first vs repeated occurrences of a fixed probe
    batch and every head's scores. Probe: a RepeatedSegments batch or [BOS, x, x] tokens."""

    every: int
    probe: Any
    period: int | Tensor | None = None
    steps: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    loss_first: list[float] = field(default_factory=list)
    loss_repeated: list[float] = field(default_factory=list)
    scores: dict[str, list[Tensor]] = field(default_factory=lambda: {k: [] for k in SCORE_KINDS})

    def __post_init__(self):
        if not isinstance(self.every, int) or self.every < 1:
            raise TutorialInputError(f"every must be a positive int, got {self.every!r}.")
        self._batch = _resolve_batch(self.probe, self.period)

    @torch.no_grad()
    def __call__(self, step: int, model, loss: float) -> None:
        if step % self.every != 0:
            return
        modules = list(model.modules())
        core = getattr(model, "original_model", None)  # train_lm steps a bridge's native core
        if isinstance(core, torch.nn.Module):
            modules += list(core.modules())
        modes = [mod.training for mod in modules]
        model.eval()
        toks, p, first, repeated = (t.to(_model_device(model)) for t in self._batch)
        logits, cache = model.run_with_cache(toks, names_filter=lambda name: name.endswith("hook_pattern"))
        loss_tok = token_losses(logits, toks)
        scores = attention_scores(stack_patterns(cache), p, repeated if _is_segments(self.probe) else None)
        for mod, mode in zip(modules, modes):
            mod.training = mode
        self.steps.append(int(step))
        self.train_loss.append(float(loss))
        self.loss_first.append(loss_tok[first].mean().item())
        self.loss_repeated.append(loss_tok[repeated].mean().item())
        for k in SCORE_KINDS:
            self.scores[k].append(scores[k].cpu())

    def history(self) -> dict[str, Tensor]:
        """Recorded curves as tensors: steps [n], losses [n], each score kind [n, layer, head]."""
        if not self.steps:
            raise TutorialInputError("the monitor has recorded nothing yet: pass it to train_lm(callback=...).")
        out = {
            "steps": torch.tensor(self.steps),
            "train_loss": torch.tensor(self.train_loss),
            "loss_first": torch.tensor(self.loss_first),
            "loss_repeated": torch.tensor(self.loss_repeated),
        }
        out.update({k: torch.stack(v) for k, v in self.scores.items()})
        return out

    def transition(self, head: tuple[int, int] | None = None, window: int = 1) -> Transition:
        """See `transition_steps`."""
        return transition_steps(self.history(), head=head, window=window)


def transition_steps(history: dict[str, Tensor], head: tuple[int, int] | None = None, window: int = 1) -> Transition:
    """Halfway steps of the in-context gap (loss_first - loss_repeated) and of `head`'s induction score
    (default: the head with the highest final induction score)."""
    for key in ("steps", "loss_first", "loss_repeated", "induction"):
        if key not in history:
            raise TutorialInputError(f"history must hold {key!r} (use InductionMonitor.history()).")
    ind = history["induction"]
    expect_ndim(ind, 3, "history['induction']", "[records, layer, head]")
    if head is None:
        flat = int(ind[-window:].mean(0).argmax())
        head = divmod(flat, ind.shape[2])
    layer, h = head
    steps = history["steps"]
    gap = history["loss_first"] - history["loss_repeated"]
    return Transition(
        loss_step=halfway_step(steps, gap, window),
        induction_step=halfway_step(steps, ind[:, layer, h], window),
        head=(int(layer), int(h)),
        total_steps=int(steps[-1]),
    )


__all__ = [
    "ABLATIONS",
    "COMPOSITION_KINDS",
    "SCORE_KINDS",
    "InductionMonitor",
    "Transition",
    "ablated_loss",
    "ablation_losses",
    "attention_scores",
    "circuit_coverage",
    "circuit_weights",
    "composition_baseline",
    "composition_score",
    "composition_scores",
    "copying_score",
    "current_token_score",
    "direct_logit_attribution",
    "duplicate_token_score",
    "full_ov_circuit",
    "full_qk_circuit",
    "halfway_step",
    "head_scores",
    "induction_score",
    "ov_circuit",
    "previous_token_score",
    "qk_circuit",
    "repeat_losses",
    "repeat_masks",
    "stack_patterns",
    "target_score",
    "token_losses",
    "transition_steps",
]
