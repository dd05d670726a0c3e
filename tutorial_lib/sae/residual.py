"""An SAE on a language model's residual stream, the same code for an organism and a real model: text
packed into rows without padding, activations from the positions after the attention sinks, and a latent
chosen for a label on one half of the rows and scored on the other half, beside a shuffled-label control."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor

from ..validation import (
    TutorialInputError,
    expect_finite,
    expect_int_at_least,
    expect_model,
    expect_ndim,
    expect_range,
    expect_shape,
)
from .metrics import auroc, latent_label_correlation

__all__ = ["LabelLatent", "latent_for_label", "packed_tokens", "residual_activations"]


def packed_tokens(model, texts: list[str], n_ctx: int) -> Int[Tensor, "rows n_ctx"]:
    """The texts, tokenized by the model's own tokenizer, joined and cut into rows [BOS, n_ctx - 1 tokens]
    (the last partial row dropped): every position holds text, none is padding.

    Chapter 02: sparse autoencoders (SAEs on a real model).
    """
    expect_model(model)
    expect_int_at_least(n_ctx, "n_ctx", 2)
    if isinstance(texts, str) or not texts or not all(isinstance(t, str) for t in texts):
        raise TutorialInputError(f"texts must be a non-empty list of str, e.g. tasks.corpus(100), got {texts!r:.80}.")
    tokenizer = getattr(model, "tokenizer", None)
    if tokenizer is None or tokenizer.bos_token_id is None:
        raise TutorialInputError("the model needs a tokenizer with a BOS token to pack text into rows.")
    ids = [i for row in tokenizer([" " + t for t in texts], add_special_tokens=False)["input_ids"] for i in row]
    n = len(ids) // (n_ctx - 1)
    if n == 0:
        raise TutorialInputError(
            f"the texts give {len(ids)} tokens, fewer than one row of {n_ctx - 1}: pass more text."
        )
    rows = torch.tensor(ids[: n * (n_ctx - 1)], dtype=torch.long).reshape(n, n_ctx - 1)
    return torch.cat([torch.full((n, 1), int(tokenizer.bos_token_id)), rows], dim=1)


@torch.no_grad()
def residual_activations(
    model, tokens: Int[Tensor, "batch pos"], layer: int, from_pos: int = 0, batch_size: int = 16
) -> Float[Tensor, "n d_model"]:
    """The residual stream entering block `layer` (blocks.{layer}.hook_resid_pre) at positions from `from_pos`
    on, one row per token (batch-major). The forward pass stops at that block.

    Chapter 02: sparse autoencoders (SAEs on a real model).
    """
    expect_model(model)
    tokens = expect_ndim(tokens, 2, "tokens", "[batch, pos]")
    expect_range(expect_int_at_least(layer, "layer", 0), "layer", 0, model.cfg.n_layers - 1)
    expect_range(expect_int_at_least(from_pos, "from_pos", 0), "from_pos", 0, tokens.shape[1] - 1)
    expect_int_at_least(batch_size, "batch_size")
    device = next(model.parameters()).device
    parts = [
        model(tokens[s : s + batch_size].to(device), stop_at_layer=layer)[:, from_pos:]
        for s in range(0, tokens.shape[0], batch_size)
    ]
    return torch.cat(parts).reshape(-1, model.cfg.d_model)


@dataclass(frozen=True)
class LabelLatent:
    """The latent that tracks a binary label best on the selection rows, scored on the held-out rows.

    Chapter 02: sparse autoencoders (SAEs on a real model).
    """

    latent: int
    r_select: float  # its correlation with the label on the selection rows
    auroc: float  # its AUROC for the label on the held-out rows
    shuffled_latent: int  # the same procedure with the labels shuffled (the control) ...
    auroc_shuffled: float  # ... and its held-out AUROC: what choosing among many latents gives by itself


def _pick(z: Tensor, labels: Tensor, split: int) -> tuple[int, float, float]:
    """(latent, selection correlation, held-out AUROC) of the latent most positively correlated with labels.

    Chapter 02: sparse autoencoders.
    """
    r = latent_label_correlation(z[:split], labels[:split])
    latent = int(r.argmax())
    return latent, float(r[latent]), auroc(z[split:, latent], labels[split:])


def latent_for_label(z: Float[Tensor, "n d_sae"], labels: Tensor, split: int, seed: int = 0) -> LabelLatent:
    """Choose the latent most positively correlated with a binary label on rows [:split], score its AUROC
    on rows [split:]; then the same with the labels shuffled (within each half), the control.

    Chapter 02: sparse autoencoders (SAEs on a real model).

    Order the rows so that the two halves hold different prompts: the held-out score is then not
    inflated by the choice among d_sae latents, and the control shows what that choice alone gives.
    """
    z = expect_finite(expect_ndim(z, 2, "z", "[n, d_sae]"), "z").detach()
    labels = expect_shape(labels, (z.shape[0],), "labels", "[n] (one per row of z)").bool().to(z.device)
    expect_range(expect_int_at_least(split, "split", 2), "split", 2, z.shape[0] - 2)
    for name, part in (("selection", labels[:split]), ("held-out", labels[split:])):
        if part.all() or not part.any():
            raise TutorialInputError(f"the {name} rows need both labels (positives and negatives).")
    latent, r_select, score = _pick(z, labels, split)
    gen = torch.Generator().manual_seed(seed)
    perm = torch.cat([torch.randperm(split, generator=gen), split + torch.randperm(len(labels) - split, generator=gen)])
    shuffled, _, score_shuffled = _pick(z, labels[perm.to(labels.device)], split)
    return LabelLatent(latent, r_select, score, shuffled, score_shuffled)
