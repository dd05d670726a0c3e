"""Chapter 07's forward pass written per edge: every receiver (a head's q, k or v input, an MLP's input, the
logits) reads its own copy of the residual stream, rebuilt as the sum of the senders' outputs, so that each
edge can carry either the run's own value or a replacement (the corrupted run's, or a mean).

The forward uses the model's own weights (TransformerLens names: W_E, W_pos, W_Q, ..., W_U and the LayerNorm
modules), and `check_model` proves once per model that it reproduces the model's logits. It supports
pre-LN / RMSNorm models with standard positional embeddings and one key/value head per query head (native
organisms and GPT-2-architecture bridges); rotary and grouped-query models are refused with a message.
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
    W_pos: Tensor
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


def _ln_params(module) -> tuple[Tensor | None, Tensor | None]:
    """(weight, bias) of a bridge's normalisation module (None where it has none). Chapter 07: circuit discovery."""
    inner = getattr(module, "original_component", module) if module is not None else None
    w, b = getattr(inner, "weight", None), getattr(inner, "bias", None)
    return (w.detach() if isinstance(w, Tensor) else None), (b.detach() if isinstance(b, Tensor) else None)


def _refuse(cfg) -> None:
    """A clear error for architectures the per-edge forward does not cover. Chapter 07: circuit discovery."""
    kv = getattr(cfg, "n_key_value_heads", None)
    reasons = {
        "rotary or other non-standard positional embeddings": getattr(cfg, "positional_embedding_type", "standard")
        != "standard",
        "grouped-query attention (fewer key/value heads than query heads)": kv is not None and kv != cfg.n_heads,
        "a gated MLP": bool(getattr(cfg, "gated_mlp", False)),
        "parallel attention and MLP": bool(getattr(cfg, "parallel_attn_mlp", False)),
        f"activation {getattr(cfg, 'act_fn', None)!r}": not cfg.attn_only and cfg.act_fn not in ACTS,
        f"normalisation {cfg.normalization_type!r}": cfg.normalization_type
        not in ("LN", "LNPre", "RMS", "RMSPre", None),
    }
    found = [k for k, bad in reasons.items() if bad]
    if found:
        raise TutorialInputError(
            "circuit discovery's per-edge forward supports pre-LN models with standard positional embeddings "
            f"(the organisms, GPT-2); this model has {', '.join(found)}."
        )


def weights(model) -> Weights:
    """The model's weights in the per-edge forward's layout. Chapter 07: circuit discovery."""
    cfg = expect_model(model).cfg
    _refuse(cfg)
    get = lambda n: getattr(model, n).detach()  # noqa: E731
    mlp = None if cfg.attn_only else True
    scale = math.sqrt(cfg.d_head) if getattr(cfg, "use_attn_scale", True) else 1.0
    given = float(getattr(cfg, "attn_scale", -1.0) or -1.0)
    scale = given if given > 0 else scale
    return Weights(
        get("W_E"), get("W_pos"), get("W_Q"), get("b_Q"), get("W_K"), get("b_K"), get("W_V"), get("b_V"),
        get("W_O"), get("b_O"), mlp and get("W_in"), mlp and get("b_in"), mlp and get("W_out"),
        mlp and get("b_out"), get("W_U"), get("b_U"),
        [_ln_params(getattr(b, "ln1", None)) for b in model.blocks],
        [_ln_params(getattr(b, "ln2", None)) for b in model.blocks] if mlp else [],
        _ln_params(getattr(model, "ln_final", None)), str(cfg.normalization_type), float(getattr(cfg, "eps", 1e-5)),
        str(cfg.act_fn), scale,
    )  # fmt: skip


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


def attention(w: Weights, layer: int, xq: Tensor, xk: Tensor, xv: Tensor, heads: list[int] | None = None) -> Tensor:
    """Each head's output (its z times W_O, bias excluded) from its own q, k and v inputs.

    xq [rows, q_pos, head, d_model] (q_pos <= pos: the last positions' queries only), xk, xv [rows, pos, head,
    d_model]; `heads` picks the heads the inputs hold (default all). Returns [rows, q_pos, head, d_model].
    Chapter 07: circuit discovery.
    """
    ln, sel = w.ln1[layer], slice(None) if heads is None else heads
    q = torch.einsum("nphd,hde->nphe", normalise(w, xq, ln), w.W_Q[layer][sel]) + w.b_Q[layer][sel]
    k = torch.einsum("nphd,hde->nphe", normalise(w, xk, ln), w.W_K[layer][sel]) + w.b_K[layer][sel]
    v = torch.einsum("nphd,hde->nphe", normalise(w, xv, ln), w.W_V[layer][sel]) + w.b_V[layer][sel]
    scores = torch.einsum("nqhe,nkhe->nhqk", q, k) / w.scale
    n_q, n_pos = xq.shape[1], xk.shape[1]
    causal = torch.ones(n_q, n_pos, dtype=torch.bool, device=xq.device).triu(1 + n_pos - n_q)
    pattern = torch.softmax(scores.masked_fill(causal, float("-inf")), dim=-1)
    z = torch.einsum("nhqk,nkhe->nqhe", pattern, v)
    return torch.einsum("nqhe,hed->nqhd", z, w.W_O[layer][sel])


def mlp(w: Weights, layer: int, x: Tensor) -> Tensor:
    """The MLP's output (bias included) on its input x [..., d_model]. Chapter 07: circuit discovery."""
    assert w.W_in is not None and w.b_in is not None and w.W_out is not None and w.b_out is not None
    hidden = ACTS[w.act](normalise(w, x, w.ln2[layer]) @ w.W_in[layer] + w.b_in[layer])
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
