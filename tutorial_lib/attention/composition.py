"""Composition between heads: how much one head's output feeds another's query, key or value
(Q-, K-, V-composition, Elhage et al. 2021), and what chance looks like (chapter 05)."""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor
from transformer_lens import FactoredMatrix

from ..validation import TutorialInputError, expect_choice, expect_dtype, expect_finite, expect_ndim
from .circuits import dense, layer_slice, ov_circuit, qk_circuit

COMPOSITION_KINDS = ("Q", "K", "V")


def composition_score(
    left: FactoredMatrix | Tensor, right: FactoredMatrix | Tensor
) -> Float[Tensor, "*left_dims *right_dims"]:
    """||L R||_F / (||L||_F ||R||_F) for every pair: left [*a, n, n] and right [*b, n, n] -> [*a, *b].

    Chapter 05: induction heads."""
    left, right = dense(left), dense(right)
    expect_dtype(left, "float", "left")
    expect_dtype(right, "float", "right")
    expect_finite(left, "left")
    expect_finite(right, "right")
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
    Chapter 05: induction heads.
    """
    expect_choice(kind, COMPOSITION_KINDS, "kind")
    layer_slice(model, layer_a)
    layer_slice(model, layer_b)
    if layer_a >= layer_b:
        raise TutorialInputError(f"layer_a must come before layer_b, got {layer_a} and {layer_b}.")
    ov_a = dense(ov_circuit(model, layer_a, fold_ln))
    right = {
        "Q": lambda: dense(qk_circuit(model, layer_b, fold_ln)),
        "K": lambda: dense(qk_circuit(model, layer_b, fold_ln)).transpose(-2, -1),
        "V": lambda: dense(ov_circuit(model, layer_b, fold_ln)),
    }[kind]()
    return composition_score(ov_a, right)


def k_composition_score(
    ov_a: Float[Tensor, "heads_a d d"], qk_b: Float[Tensor, "heads_b d d"]
) -> Float[Tensor, "heads_a heads_b"]:
    """K-composition of writers OV_a [heads_a, d, d] with readers QK_b [heads_b, d, d]: [heads_a, heads_b].

    The key side reads what OV_a wrote: ||OV_a QK_b^T||_F / (||OV_a||_F ||QK_b||_F) for every pair.
    Exercise 05.6 (the notebook's `k_composition`). Chapter 05: induction heads."""
    expect_ndim(dense(ov_a), 3, "ov_a", "[heads_a, d, d]")
    expect_ndim(dense(qk_b), 3, "qk_b", "[heads_b, d, d]")
    return composition_score(ov_a, qk_b.transpose(-2, -1))


def composition_baseline(
    d_model: int, d_head: int, n_samples: int = 256, seed: int = 0, device: str | torch.device | None = None
) -> Float[Tensor, " n_samples"]:
    """Composition scores of random pairs of rank-d_head matrices W_1 W_2 ([d_model, d_head] @ [d_head, d_model],
    Gaussian entries): what chance looks like for heads of this shape.
    Chapter 05: induction heads."""
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
