"""Chapter 07's forward pass written per edge: every receiver (a head's q, k or v input, an MLP's input, the
logits) reads its own copy of the residual stream, rebuilt as the sum of the senders' outputs, so that each
edge can carry either the run's own value or a replacement (the corrupted run's, or a mean).

The forward uses the model's own weights (TransformerLens names: W_E, W_pos, W_Q, ..., W_U and the LayerNorm
modules), and `check_model` proves once per model that it reproduces the model's logits. It supports
pre-LN / RMSNorm models with learned or rotary positions, plain or gated MLPs, and grouped-query attention
(native organisms, GPT-2 and Llama-architecture bridges such as SmolLM2); other architectures are refused
with a message.

Grouped-query attention: each query head gets its own copy of its key/value head's weights, so that every
query head has its own k and v inputs (receivers). Without ablations this is the model's forward exactly;
an edge into a.h.k changes the keys query head h reads and no other head's, a finer graph than the
model's own (where the heads of a group read one shared key input).
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ..validation import TutorialInputError, expect_model, model_device

__all__ = ["Weights", "check_model", "weights"]

_CHECKED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
ACTS = {
    "relu": F.relu,
    "gelu": F.gelu,
    "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
    "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "silu": F.silu,
}


@dataclass
class Weights:
    """The tensors the per-edge forward reads (per layer lists where the bridge stacks them).

    Chapter 07: circuit discovery.
    """

    W_E: Tensor
    W_pos: Tensor | None  # None on rotary models
    W_Q: Tensor
    b_Q: Tensor
    W_K: Tensor
    b_K: Tensor
    W_V: Tensor
    b_V: Tensor
    W_O: Tensor
    b_O: Tensor
    W_in: Tensor | None
    b_in: Tensor | None
    W_out: Tensor | None
    b_out: Tensor | None
    W_U: Tensor
    b_U: Tensor
    ln1: list[tuple[Tensor | None, Tensor | None]]
    ln2: list[tuple[Tensor | None, Tensor | None]]
    ln_final: tuple[Tensor | None, Tensor | None]
    norm: str
    eps: float
    act: str
    scale: float
    fused: bool = False  # normalise with torch's fused kernels (faster; rounding differs from the modules')
    W_gate: Tensor | None = None  # a gated MLP's gate projection (hidden = act(x W_gate) * (x W_in))
    rotary: tuple[Tensor, Tensor] | None = None  # cos, sin [position, d_head] of rotary models


def _ln_params(module) -> tuple[Tensor | None, Tensor | None]:
    """(weight, bias) of a bridge's normalisation module (None where it has none). Chapter 07: circuit discovery."""
    inner = getattr(module, "original_component", module) if module is not None else None
    w, b = getattr(inner, "weight", None), getattr(inner, "bias", None)
    return (w.detach() if isinstance(w, Tensor) else None), (b.detach() if isinstance(b, Tensor) else None)


def _refuse(cfg) -> None:
    """A clear error for architectures the per-edge forward does not cover. Chapter 07: circuit discovery."""
    kv = getattr(cfg, "n_key_value_heads", None) or cfg.n_heads
    pos = getattr(cfg, "positional_embedding_type", "standard")
    reasons = {
        f"positional embeddings {pos!r}": pos not in ("standard", "rotary"),
        "partial or adjacent-pair rotary embeddings": pos == "rotary"
        and (bool(getattr(cfg, "rotary_adjacent_pairs", False)) or (getattr(cfg, "rotary_dim", None) or cfg.d_head) != cfg.d_head),
        f"{cfg.n_heads} query heads that do not share {kv} key/value heads evenly": cfg.n_heads % kv != 0,
        "parallel attention and MLP": bool(getattr(cfg, "parallel_attn_mlp", False)),
        f"activation {getattr(cfg, 'act_fn', None)!r}": not cfg.attn_only and cfg.act_fn not in ACTS,
        f"normalisation {cfg.normalization_type!r}": cfg.normalization_type
        not in ("LN", "LNPre", "RMS", "RMSPre", None),
    }  # fmt: skip
    found = [k for k, bad in reasons.items() if bad]
    if found:
        raise TutorialInputError(
            "circuit discovery's per-edge forward supports pre-norm models with learned or rotary positions "
            f"(the organisms, GPT-2, Llama/SmolLM2); this model has {', '.join(found)}."
        )


def _param(model, name: str, zeros: tuple[int, ...] | None = None) -> Tensor | None:
    """The bridge's stacked parameter `name`, or zeros of shape `zeros` where the checkpoint has none
    (bias-free models). Chapter 07: circuit discovery."""
    try:
        value = getattr(model, name)
    except AttributeError:
        value = None
    if value is None:
        return None if zeros is None else model.W_E.new_zeros(zeros).detach()
    return value.detach()


def _per_query_head(x: Tensor, n_heads: int) -> Tensor:
    """Key/value weights [layer, kv_head, ...] repeated to one per query head (Llama's grouping).

    Chapter 07: circuit discovery.
    """
    return x if x.shape[1] == n_heads else x.repeat_interleave(n_heads // x.shape[1], dim=1)


def _rotary_table(model, n_pos: int) -> tuple[Tensor, Tensor]:
    """cos, sin [position, d_head] of a rotary model, from its own rotary module where it has one (rope
    scaling included), else from cfg.rotary_base. Chapter 07: circuit discovery."""
    cfg, hf = model.cfg, getattr(model, "original_model", None)
    rot = getattr(getattr(hf, "model", None), "rotary_emb", None)
    positions = torch.arange(n_pos, device=model.W_E.device)
    if rot is not None:
        with torch.no_grad():
            cos, sin = rot(model.W_E.new_zeros(1, n_pos, cfg.d_head).float(), positions[None])
        return cos[0].detach(), sin[0].detach()
    half = torch.arange(0, cfg.d_head, 2, device=positions.device).float() / cfg.d_head
    angles = positions[:, None].float() / (float(getattr(cfg, "rotary_base", 10000)) ** half)[None]
    angles = torch.cat([angles, angles], -1)
    return angles.cos(), angles.sin()


def weights(model) -> Weights:
    """The model's weights in the per-edge forward's layout. Chapter 07: circuit discovery."""
    cfg = expect_model(model).cfg
    _refuse(cfg)
    n_l, n_h, d, dh = cfg.n_layers, cfg.n_heads, cfg.d_model, cfg.d_head
    mlp = not cfg.attn_only
    d_mlp = int(model.W_in.shape[-1]) if mlp else 0
    scale = math.sqrt(dh) if getattr(cfg, "use_attn_scale", True) else 1.0
    given = float(getattr(cfg, "attn_scale", -1.0) or -1.0)
    kv = lambda n: _per_query_head(_param(model, n, (n_l, n_h, dh)), n_h)  # type: ignore[arg-type]  # noqa: E731
    rotary = getattr(cfg, "positional_embedding_type", "standard") == "rotary"
    return Weights(
        _param(model, "W_E"), None if rotary else _param(model, "W_pos"), _param(model, "W_Q"),  # type: ignore[arg-type]
        _param(model, "b_Q", (n_l, n_h, dh)), kv("W_K"), kv("b_K"), kv("W_V"), kv("b_V"), _param(model, "W_O"),  # type: ignore[arg-type]
        _param(model, "b_O", (n_l, d)), _param(model, "W_in") if mlp else None,  # type: ignore[arg-type]
        _param(model, "b_in", (n_l, d_mlp)) if mlp else None, _param(model, "W_out") if mlp else None,
        _param(model, "b_out", (n_l, d)) if mlp else None, _param(model, "W_U"), _param(model, "b_U", (cfg.d_vocab,)),  # type: ignore[arg-type]
        [_ln_params(getattr(b, "ln1", None)) for b in model.blocks],
        [_ln_params(getattr(b, "ln2", None)) for b in model.blocks] if mlp else [],
        _ln_params(getattr(model, "ln_final", None)), str(cfg.normalization_type), float(getattr(cfg, "eps", 1e-5)),
        str(cfg.act_fn), given if given > 0 else scale,
        W_gate=_param(model, "W_gate") if mlp and getattr(cfg, "gated_mlp", False) else None,
        rotary=_rotary_table(model, min(int(cfg.n_ctx), 4096)) if rotary else None,
    )  # fmt: skip


def _rotate(w: Weights, x: Tensor, first: int) -> Tensor:
    """Rotary embedding of queries or keys x [rows, pos, head, d_head] at positions first, first + 1, ...

    Chapter 07: circuit discovery.
    """
    if w.rotary is None:
        return x
    if first + x.shape[-3] > w.rotary[0].shape[0]:
        raise TutorialInputError(f"circuit discovery's rotary table covers {w.rotary[0].shape[0]} positions; "
                                 f"got a sequence of {first + x.shape[-3]}.")  # fmt: skip
    cos, sin = (t[first : first + x.shape[-3], None, :].to(x.dtype) for t in w.rotary)
    half = x.shape[-1] // 2
    return x * cos + torch.cat([-x[..., half:], x[..., :half]], -1) * sin


def normalise(w: Weights, x: Tensor, params: tuple[Tensor | None, Tensor | None]) -> Tensor:
    """LayerNorm or RMSNorm over the last axis, with the module's weight and bias. Chapter 07: circuit discovery."""
    if w.norm == "None":
        return x
    if w.fused:
        weight, bias = params
        if w.norm.startswith("LN"):
            return F.layer_norm(x, x.shape[-1:], weight, bias, w.eps)
        x = F.rms_norm(x, x.shape[-1:], weight, w.eps)
        return x if bias is None else x + bias
    if w.norm.startswith("LN"):
        x = x - x.mean(-1, keepdim=True)
    x = x / (x.pow(2).mean(-1, keepdim=True) + w.eps).sqrt()
    weight, bias = params
    if weight is not None:
        x = x * weight
    return x if bias is None else x + bias


def _head_slice(heads: list[int] | None) -> slice | list[int]:
    """`heads` as a slice where they are consecutive (weights indexed by a view, not a copy), else as given.

    Chapter 07: circuit discovery.
    """
    if heads is None:
        return slice(None)
    if heads and heads == list(range(heads[0], heads[0] + len(heads))):
        return slice(heads[0], heads[0] + len(heads))
    return heads


def attention(w: Weights, layer: int, xq: Tensor, xk: Tensor, xv: Tensor, heads: list[int] | None = None) -> Tensor:
    """Each head's output (its z times W_O, bias excluded) from its own q, k and v inputs.

    xq [rows, q_pos, head, d_model] (q_pos <= pos: the last positions' queries only), xk, xv [rows, pos, head,
    d_model]; `heads` picks the heads the inputs hold (default all). Returns [rows, q_pos, head, d_model].
    The rows may be several leading axes, broadcast between the inputs (ACDC shares the inputs its variants
    do not change).
    Chapter 07: circuit discovery.
    """
    ln, sel = w.ln1[layer], _head_slice(heads)
    q = torch.einsum("...phd,hde->...phe", normalise(w, xq, ln), w.W_Q[layer][sel]) + w.b_Q[layer][sel]
    k = torch.einsum("...phd,hde->...phe", normalise(w, xk, ln), w.W_K[layer][sel]) + w.b_K[layer][sel]
    v = torch.einsum("...phd,hde->...phe", normalise(w, xv, ln), w.W_V[layer][sel]) + w.b_V[layer][sel]
    n_q, n_pos = xq.shape[-3], xk.shape[-3]
    q, k = _rotate(w, q, n_pos - n_q), _rotate(w, k, 0)
    scores = torch.einsum("...qhe,...khe->...hqk", q, k) / w.scale
    causal = torch.ones(n_q, n_pos, dtype=torch.bool, device=xq.device).triu(1 + n_pos - n_q)
    pattern = torch.softmax(scores.masked_fill(causal, float("-inf")), dim=-1)
    z = torch.einsum("...hqk,...khe->...qhe", pattern, v)
    return torch.einsum("...qhe,hed->...qhd", z, w.W_O[layer][sel])


def mlp(w: Weights, layer: int, x: Tensor) -> Tensor:
    """The MLP's output (bias included) on its input x [..., d_model]. Chapter 07: circuit discovery."""
    assert w.W_in is not None and w.b_in is not None and w.W_out is not None and w.b_out is not None
    x = normalise(w, x, w.ln2[layer])
    if w.W_gate is None:
        hidden = ACTS[w.act](x @ w.W_in[layer] + w.b_in[layer])
    else:
        hidden = ACTS[w.act](x @ w.W_gate[layer]) * (x @ w.W_in[layer] + w.b_in[layer])
    return hidden @ w.W_out[layer] + w.b_out[layer]


def unembed(w: Weights, x: Tensor) -> Tensor:
    """Logits from the final residual stream. Chapter 07: circuit discovery."""
    return normalise(w, x, w.ln_final) @ w.W_U + w.b_U


def check_model(model) -> Weights:
    """The model's Weights, after checking (once per model, the verdict remembered) that the per-edge forward reproduces its logits.

    Chapter 07: circuit discovery.
    """
    from .edges import run_edges  # the full forward lives with edge patching

    w = weights(model)  # read afresh each call (cheap views): a model trained in between is seen as it is now
    if model in _CHECKED:
        return w
    gen = torch.Generator().manual_seed(0)
    tokens = torch.randint(model.cfg.d_vocab, (2, min(8, model.cfg.n_ctx)), generator=gen).to(model_device(model))
    with torch.no_grad():
        want = model(tokens)
        got = run_edges(model, tokens, tokens, None, w=w)[0][0]
    tol = 1e-4 * max(1.0, want.abs().max().item())
    if got.shape != want.shape or not torch.allclose(got, want, atol=tol, rtol=1e-4):
        raise TutorialInputError(
            "circuit discovery's per-edge forward does not reproduce this model's logits "
            f"(largest difference {(got - want).abs().max().item():.2g}); its architecture is not supported."
        )
    _CHECKED[model] = True
    return w
