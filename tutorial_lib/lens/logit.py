"""The logit lens: the residual stream before each block (and after the last) read through the final
norm, with its statistics recomputed for each entry, and the unembedding."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor

from ..validation import TutorialInputError, expect_finite, expect_last_dim, expect_model


def residual_stack(model, cache) -> Float[Tensor, "layer_plus_1 batch pos d_model"]:
    """The residual stream entering each block and leaving the last: entry l is what block l reads,
    entry n_layers is what the final norm reads (the same entries as TransformerLens's
    `cache.accumulated_resid()`).

    Chapter 08: lenses."""
    n = expect_model(model).cfg.n_layers
    names = [f"blocks.{layer}.hook_resid_pre" for layer in range(n)] + [f"blocks.{n - 1}.hook_resid_post"]
    missing = [name for name in names if name not in cache]
    if missing:
        raise TutorialInputError(f"the cache holds no {missing[0]}: run the model with run_with_cache and keep it.")
    return torch.stack([cache[name] for name in names])


def read_out(model, resid: Float[Tensor, "*any d_model"]) -> Float[Tensor, "*any d_vocab"]:
    """Logits from residual-stream vectors: the model's own final norm (statistics recomputed from
    `resid`, not frozen at the cached scale) followed by its unembedding.

    Chapter 08: lenses."""
    resid = expect_finite(expect_last_dim(resid, expect_model(model).cfg.d_model, "resid"), "resid")
    x = model.ln_final(resid) if getattr(model, "ln_final", None) is not None else resid
    return model.unembed(x)


def logit_lens(model, cache) -> Float[Tensor, "layer_plus_1 batch pos d_vocab"]:
    """The logit lens (nostalgebraist 2020): `read_out` applied to every entry of `residual_stack`.
    The last entry equals the model's logits.

    Exercise 08.1. Chapter 08: lenses."""
    return read_out(model, residual_stack(model, cache))


def lens_kl(
    lens_logits: Float[Tensor, "layer batch pos d_vocab"],
    final_logits: Float[Tensor, "batch pos d_vocab"],
    mask: Tensor | None = None,
) -> Float[Tensor, " layer"]:
    """KL(final || lens) in nats per layer, averaged over the positions where `mask` is True (all
    positions when None): how far each layer's read-out is from the model's output distribution.

    Exercise 08.2. Chapter 08: lenses."""
    lens_logits = expect_finite(lens_logits, "lens_logits")
    if lens_logits.ndim != 4 or lens_logits.shape[1:] != final_logits.shape:
        raise TutorialInputError(
            f"lens_logits must be [layer, *final_logits.shape] = [layer, {list(final_logits.shape)}], "
            f"got {list(lens_logits.shape)}."
        )
    target = F.log_softmax(final_logits.float(), dim=-1)
    pred = F.log_softmax(lens_logits.float(), dim=-1)
    kl = (target.exp() * (target - pred)).sum(-1)  # [layer, batch, pos]
    if mask is None:
        return kl.mean(dim=(1, 2))
    if mask.shape != final_logits.shape[:2] or mask.dtype != torch.bool:
        raise TutorialInputError(f"mask must be a bool tensor of shape {list(final_logits.shape[:2])}.")
    if not mask.any():
        raise TutorialInputError("mask selects no position.")
    return (kl * mask).sum(dim=(1, 2)) / mask.sum()
