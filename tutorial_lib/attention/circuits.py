"""Weight circuits: QK and OV per head, the full circuits through the embedding and unembedding,
and how much a circuit copies (chapter 05).

TransformerLens's row-vector convention (x @ W): OV = W_V W_O and QK = W_Q W_K^T, both
`FactoredMatrix` [(layer,) head, d_model, d_model]. With `fold_ln=True` (default) LayerNorm weights are
folded in and writing weights centred; the per-token LayerNorm scale is ignored. Grouped-query models
(SmolLM2) get one key/value weight per query head; on rotary models the QK circuit omits the rotation."""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor
from transformer_lens import FactoredMatrix

from ..hooks import norm_gain
from ..validation import TutorialInputError, expect_dtype, expect_model


def _ln_kind(model) -> str | None:
    """The model's normalization_type ("LN", "LNPre", "RMS", ...; None without norms). Chapter 05: induction heads."""
    return getattr(model.cfg, "normalization_type", None)


def _center(w: Tensor) -> Tensor:
    """Remove each row's mean over d_model (what a following LayerNorm does to a write).

    Chapter 05: induction heads."""
    return w - w.mean(dim=-1, keepdim=True)


def circuit_weights(model, fold_ln: bool = True) -> dict[str, Tensor]:
    """W_E [vocab, d_model], W_Q/W_K/W_V [layer, head, d_model, d_head], W_O [layer, head, d_head, d_model],
    W_U [d_model, vocab]; with fold_ln, LayerNorm weights folded in and writing weights centred (RMSNorm:
    its gains folded, nothing centred). Grouped-query models get each query head's shared W_K, W_V repeated.
    Rotary models: QK circuits are the position-free part (the rotation by the positions' offset is not in them).
    Chapter 05: induction heads."""
    expect_model(model)
    if not isinstance(fold_ln, bool):
        raise TutorialInputError(f"fold_ln must be True or False, got {fold_ln!r}.")
    w = {name: getattr(model, name).detach() for name in ("W_E", "W_Q", "W_K", "W_V", "W_O", "W_U")}
    n_heads = model.cfg.n_heads
    for name in ("W_K", "W_V"):  # grouped-query attention: one key/value head per query head (as the model reads)
        if w[name].shape[1] != n_heads:
            w[name] = w[name].repeat_interleave(n_heads // w[name].shape[1], dim=1)
    if not fold_ln:
        return w
    kind = _ln_kind(model)
    if kind in ("LN", "LNPre"):
        w["W_E"] = _center(w["W_E"])
        w["W_O"] = _center(w["W_O"])
        w["W_U"] = w["W_U"] - w["W_U"].mean(dim=-1, keepdim=True)  # logits shift, softmax does not
    gains = [norm_gain(getattr(block, "ln1", None)) for block in model.blocks]
    if all(g is not None for g in gains):
        g = torch.stack([x.detach() for x in gains if x is not None])[:, None, :, None]  # [layer, 1, d_model, 1]
        for name in ("W_Q", "W_K", "W_V"):
            w[name] = w[name] * g
    g_final = norm_gain(getattr(model, "ln_final", None))
    if g_final is not None:
        w["W_U"] = g_final.detach()[:, None] * w["W_U"]
    return w


def layer_slice(model, layer: int | None) -> slice | int:
    """`layer` checked against the model, or slice(None) for every layer. Chapter 05: induction heads."""
    if layer is None:
        return slice(None)
    if not isinstance(layer, int) or not 0 <= layer < model.cfg.n_layers:
        raise TutorialInputError(f"layer must be an int in [0, {model.cfg.n_layers - 1}], got {layer!r}.")
    return layer


def qk_circuit(model, layer: int | None = None, fold_ln: bool = True) -> FactoredMatrix:
    """W_Q W_K^T per head: [layer, head, d_model, d_model] (or [head, ...] for one layer); query rows, key columns.

    Chapter 05: induction heads."""
    w, sl = circuit_weights(model, fold_ln), layer_slice(model, layer)
    return FactoredMatrix(w["W_Q"][sl], w["W_K"][sl].transpose(-2, -1))


def ov_circuit(model, layer: int | None = None, fold_ln: bool = True) -> FactoredMatrix:
    """W_V W_O per head: [layer, head, d_model, d_model] (or [head, ...]): what a head writes for what it reads.

    Chapter 05: induction heads."""
    w, sl = circuit_weights(model, fold_ln), layer_slice(model, layer)
    return FactoredMatrix(w["W_V"][sl], w["W_O"][sl])


def full_ov_circuit(model, layer: int | None = None, fold_ln: bool = True) -> FactoredMatrix:
    """W_E W_V W_O W_U: [(layer,) head, d_vocab, d_vocab]; row = attended token, column = logit it raises.

    Chapter 05: induction heads."""
    w, sl = circuit_weights(model, fold_ln), layer_slice(model, layer)
    return FactoredMatrix(w["W_E"] @ w["W_V"][sl], w["W_O"][sl] @ w["W_U"])


def full_qk_circuit(model, layer: int | None = None, fold_ln: bool = True) -> FactoredMatrix:
    """W_E W_Q W_K^T W_E^T: [(layer,) head, d_vocab, d_vocab]; how much query token i attends to key token j.

    Chapter 05: induction heads."""
    w, sl = circuit_weights(model, fold_ln), layer_slice(model, layer)
    return FactoredMatrix(w["W_E"] @ w["W_Q"][sl], (w["W_E"] @ w["W_K"][sl]).transpose(-2, -1))


def dense(x: FactoredMatrix | Tensor) -> Tensor:
    """The dense matrix of a FactoredMatrix (a tensor as it is). Chapter 05: induction heads."""
    ab = x.AB if isinstance(x, FactoredMatrix) else x
    if not isinstance(ab, Tensor):
        raise TutorialInputError(f"expected a tensor or a FactoredMatrix of tensors, got {type(ab).__name__}.")
    return ab


def copying_score(circuit: FactoredMatrix | Tensor, signed: bool = False) -> Float[Tensor, "*batch"]:
    """Positive eigenvalue mass of a square circuit: sum(max(Re λ, 0)) / sum(|λ|), in [0, 1].

    1 for the identity (a copying head), 0 for minus the identity. signed=True gives Elhage et al.'s
    Re(sum λ) / sum |λ| in [-1, 1] instead.
    Chapter 05: induction heads.
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


def ov_copying(model, layer: int, head: int, fold_ln: bool = False) -> float:
    """Fraction of tokens t whose full OV circuit W_E W_OV W_U maps t most strongly to t itself (token 0,
    BOS, excluded); a plainer copying measure than `copying_score`. Raw weights unless fold_ln.
    Chapter 05: induction heads."""
    if not isinstance(head, int) or not 0 <= head < model.cfg.n_heads:
        raise TutorialInputError(f"head must be an int in [0, {model.cfg.n_heads - 1}], got {head!r}.")
    full = dense(full_ov_circuit(model, layer, fold_ln=fold_ln))[head].detach()
    return float((full[1:, 1:].argmax(-1) == torch.arange(full.shape[0] - 1, device=full.device)).float().mean())
