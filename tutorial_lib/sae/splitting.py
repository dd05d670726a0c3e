"""Feature splitting: which latents of a small SAE have two or more close children in a bigger one, and
whether the children divide the parent's contexts by what the contexts hold (token identity) more than a
random division of the same contexts would.

Chapter 02: sparse autoencoders (section 6; Bricken et al. 2023).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ..validation import TutorialInputError, expect_range
from .base import SAE

__all__ = ["Split", "feature_splits"]


@dataclass(frozen=True)
class Split:
    """One small latent with two close children: the children (closest first), the fraction of the
    parent's contexts each fires on, their overlap (Jaccard) there, and the total-variation distance
    between the token distributions of the contexts where only one child fires (`tv`) and, as the
    control, of a random division of the parent's contexts into sets of the same sizes (`tv_random`).

    Chapter 02: sparse autoencoders.
    """

    parent: int
    children: tuple[int, int]
    fractions: tuple[float, float]
    jaccard: float
    tv: float
    tv_random: float


def _token_dist(tokens: Tensor, mask: Tensor, n_vocab: int) -> Tensor:
    h = torch.bincount(tokens[mask], minlength=n_vocab).double()
    return h / h.sum().clamp_min(1)


def feature_splits(
    small: SAE, big: SAE, acts: Tensor, tokens: Tensor, n_vocab: int, *, threshold: float = 0.6, seed: int = 0
) -> list[Split]:
    """Every latent of `small` with >= 2 decoder rows of `big` above cosine `threshold`, as a `Split` of
    its two closest children, measured on `acts` [n, d_in] whose tokens are `tokens` [n].

    Chapter 02: sparse autoencoders.
    """
    if not isinstance(small, SAE) or not isinstance(big, SAE) or small.d_in != big.d_in:
        raise TutorialInputError("small and big must be tutorial_lib.sae.SAEs of the same d_in.")
    expect_range(threshold, "threshold", -1.0, 1.0)
    if acts.ndim != 2 or tokens.shape != acts.shape[:1]:
        raise TutorialInputError(
            f"acts must be [n, d_in] and tokens [n], got {tuple(acts.shape)} and {tuple(tokens.shape)}."
        )
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        cos = (F.normalize(small.W_dec, dim=1) @ F.normalize(big.W_dec, dim=1).T).cpu()
        z_small, z_big = (small.encode(acts) > 0).cpu(), (big.encode(acts) > 0).cpu()
    tokens = tokens.cpu()
    splits = []
    for parent in ((cos > threshold).sum(1) >= 2).nonzero().flatten().tolist():
        kids = cos[parent].topk(2).indices.tolist()
        on = z_small[:, parent]
        a, b = on & z_big[:, kids[0]], on & z_big[:, kids[1]]
        only_a, only_b = a & ~b, b & ~a
        idx = on.nonzero().flatten()
        idx = idx[torch.randperm(len(idx), generator=gen)]
        na, nb = int(only_a.sum()), int(only_b.sum())
        ra, rb = torch.zeros_like(on), torch.zeros_like(on)
        ra[idx[:na]], rb[idx[na : na + nb]] = True, True
        n_on = max(int(on.sum()), 1)

        def tv(x: Tensor, y: Tensor) -> float:
            return float(0.5 * (_token_dist(tokens, x, n_vocab) - _token_dist(tokens, y, n_vocab)).abs().sum())

        splits.append(
            Split(
                parent,
                (kids[0], kids[1]),
                (int(a.sum()) / n_on, int(b.sum()) / n_on),
                float((a & b).sum() / (a | b).sum().clamp_min(1)),
                tv(only_a, only_b),
                tv(ra, rb),
            )
        )
    return splits
