"""Feature absorption (Chanin et al. 2024, "A is for Absorption"): when a parent feature is always
present with its children, a sparse dictionary can save a latent per token by folding the parent's
direction into each child's latent; the parent's own latent then fails to fire exactly where a child is
present. Measured on a known hierarchy: synthetic activations with a planted parent feature and
children that imply it, and a control where the children occur independently of the parent.

Chapter 08: explaining latents automatically.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float
from torch import Tensor

from .. import sae as S
from ..validation import (
    TutorialInputError,
    expect_dtype,
    expect_int_at_least,
    expect_ndim,
    expect_number,
    expect_shape,
)

__all__ = ["Hierarchy", "absorption_rate", "hierarchical_features", "main_latent", "train_hierarchy_sae"]


@dataclass
class Hierarchy:
    """Synthetic activations x = sum of active features' directions times magnitudes. Feature 0 is the
    parent, features 1..n_children its children, the rest independent. Chapter 08: explaining latents
    automatically."""

    x: Float[Tensor, "n d"]
    active: Bool[Tensor, "n feature"]
    directions: Float[Tensor, "feature d"]
    n_children: int

    @property
    def parent(self) -> Bool[Tensor, " n"]:
        """Where the parent is present. Chapter 08: explaining latents automatically."""
        return self.active[:, 0]

    @property
    def child(self) -> Bool[Tensor, " n"]:
        """Where some child is present. Chapter 08: explaining latents automatically."""
        return self.active[:, 1 : 1 + self.n_children].any(1)


def hierarchical_features(
    n: int, d: int = 32, n_children: int = 3, n_other: int = 12, hierarchy: bool = True, seed: int = 0
) -> Hierarchy:
    """`n` rows: the parent present with probability 0.25; then one of `n_children` children with
    probability 0.8, only where the parent is (`hierarchy`), or anywhere at the same rate (the control);
    each other feature with probability 0.1; magnitudes uniform in [0.5, 1.5]; orthonormal directions.
    Chapter 08: explaining latents automatically."""
    expect_int_at_least(n, "n")
    expect_int_at_least(n_children, "n_children")
    expect_int_at_least(n_other, "n_other", 0)
    n_features = 1 + n_children + n_other
    expect_int_at_least(d, "d", n_features)
    g = torch.Generator().manual_seed(seed)
    directions = torch.linalg.qr(torch.randn(d, d, generator=g))[0].T[:n_features].contiguous()
    active = torch.zeros(n, n_features, dtype=torch.bool)
    active[:, 0] = torch.rand(n, generator=g) < 0.25
    which = torch.randint(0, n_children, (n,), generator=g)
    has_child = torch.rand(n, generator=g) < 0.8 * (1.0 if hierarchy else 0.25)
    if hierarchy:
        has_child &= active[:, 0]
    active[torch.arange(n)[has_child], 1 + which[has_child]] = True
    active[:, 1 + n_children :] = torch.rand(n, n_other, generator=g) < 0.1
    x = (active * (0.5 + torch.rand(n, n_features, generator=g))) @ directions
    return Hierarchy(x=x, active=active, directions=directions, n_children=n_children)


def train_hierarchy_sae(data: Hierarchy, k: int = 2, steps: int = 800, seed: int = 0) -> S.SAE:
    """A TopK SAE (chapter 02's) with one latent per true feature, trained on `data.x`.
    Chapter 08: explaining latents automatically."""
    if not isinstance(data, Hierarchy):
        raise TutorialInputError(f"data must be a Hierarchy (hierarchical_features(...)), got {type(data).__name__}.")
    sae = S.make_sae("topk", data.x.shape[1], data.active.shape[1], k=k, seed=seed)
    S.train_sae(sae, data.x, steps=steps, batch_size=512, lr=3e-3, seed=seed)
    return sae.eval()


def main_latent(fires: Bool[Tensor, "n latent"], label: Bool[Tensor, " n"]) -> int:
    """The latent whose firing best matches the label (highest F1): the label's "own" latent.
    Chapter 08: explaining latents automatically."""
    fires = expect_dtype(expect_ndim(fires, 2, "fires", "[n, latent]"), "bool", "fires")
    label = expect_dtype(expect_ndim(label, 1, "label", "[n]"), "bool", "label")
    if len(label) != len(fires) or not label.any():
        raise TutorialInputError(f"label must be [n] = [{len(fires)}] with some positives, got {tuple(label.shape)}.")
    tp = (fires & label[:, None]).sum(0).float()
    f1 = 2 * tp / (fires.sum(0) + label.sum()).float()
    return int(f1.argmax())


def absorption_rate(
    codes: Float[Tensor, "n latent"],
    decoder: Float[Tensor, "latent d"],
    parent: Bool[Tensor, " n"],
    parent_direction: Float[Tensor, " d"],
    min_cosine: float = 0.3,
) -> dict[str, float]:
    """Exercise 08.11. Of the rows where the parent is present, the share where its main latent is silent
    while another active latent's decoder row points along the parent (cosine >= `min_cosine`): that
    latent has absorbed the parent. Also the main latent's recall. Chapter 08: explaining latents
    automatically."""
    codes = expect_dtype(expect_ndim(codes, 2, "codes", "[n, latent]"), "float", "codes")
    decoder = expect_dtype(expect_ndim(decoder, 2, "decoder", "[latent, d]"), "float", "decoder")
    parent_direction = expect_dtype(
        expect_ndim(parent_direction, 1, "parent_direction", "[d]"), "float", "parent_direction"
    )
    parent = expect_dtype(
        expect_shape(parent, (codes.shape[0],), "parent", "[n], one per row of codes"), "bool", "parent"
    )
    if decoder.shape[0] != codes.shape[1] or parent_direction.shape != decoder.shape[1:]:
        raise TutorialInputError(f"decoder must be [latent, d] = [{codes.shape[1]}, d] and parent_direction [d], got "
                                 f"{tuple(decoder.shape)} and {tuple(parent_direction.shape)}.")  # fmt: skip
    expect_number(min_cosine, "min_cosine", -1, 1)
    fires = codes > 0
    m = main_latent(fires, parent)
    along = F.normalize(decoder.float(), dim=-1) @ F.normalize(parent_direction.float(), dim=0) >= min_cosine
    along[m] = False
    absorbed = parent & ~fires[:, m] & (fires & along).any(1)
    return {
        "main": float(m),
        "rate": float(absorbed.sum() / parent.sum()),
        "recall": float(fires[parent, m].float().mean()),
    }
