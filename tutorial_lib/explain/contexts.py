"""The contexts an explanation is written from and scored on: where one latent fires most
(max-activating), where it fires at all (random-activating, drawn at random), and where it does not.
A context is a (row, position) pair of a token corpus; `context_text` shows the words before it.

Chapter 08: explaining latents automatically.
"""

from __future__ import annotations

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from ..validation import TutorialInputError, expect_dtype, expect_int_at_least, expect_ndim, expect_same_shape

__all__ = ["context_text", "max_activating", "non_activating", "random_activating", "shuffled_activations"]


def _check(acts: object, mask: object) -> tuple[Tensor, Tensor]:
    acts = expect_dtype(expect_ndim(acts, 2, "acts", "[batch, pos]: one latent's activations"), "float", "acts")
    if mask is None:
        return acts, torch.ones_like(acts, dtype=torch.bool)
    expect_same_shape(acts, expect_dtype(mask, "bool", "mask"), "acts and mask")
    return acts, mask  # pyright: ignore[reportReturnType]


def _sample(candidates: Tensor, n: int, seed: int) -> Int[Tensor, "k 2"]:
    where = candidates.nonzero()
    pick = torch.randperm(len(where), generator=torch.Generator().manual_seed(seed))[:n]
    return where[pick.to(where.device)]


def max_activating(
    acts: Float[Tensor, "batch pos"], n: int, mask: Bool[Tensor, "batch pos"] | None = None
) -> Int[Tensor, "k 2"]:
    """The (row, position) of the latent's `n` largest positive activations, largest first (fewer when it
    fires less often). Chapter 08: explaining latents automatically."""
    acts, mask = _check(acts, mask)
    expect_int_at_least(n, "n")
    live = acts.masked_fill(~mask, 0.0).flatten()
    k = min(n, int((live > 0).sum()))
    top = live.topk(k).indices
    return torch.stack([top // acts.shape[1], top % acts.shape[1]], dim=1)


def random_activating(
    acts: Float[Tensor, "batch pos"],
    n: int,
    seed: int = 0,
    mask: Bool[Tensor, "batch pos"] | None = None,
    exclude: Int[Tensor, "m 2"] | None = None,
) -> Int[Tensor, "k 2"]:
    """`n` contexts drawn uniformly among those where the latent fires (minus `exclude`, e.g. the
    max-activating contexts an explainer saw): the held-out positives of detection scoring.
    Chapter 08: explaining latents automatically."""
    acts, mask = _check(acts, mask)
    expect_int_at_least(n, "n")
    fires = (acts > 0) & mask
    if exclude is not None:
        exclude = expect_ndim(exclude, 2, "exclude", "[k, 2]: (row, position) pairs")
        fires = fires.clone()
        fires[exclude[:, 0], exclude[:, 1]] = False
    return _sample(fires, n, seed)


def non_activating(
    acts: Float[Tensor, "batch pos"], n: int, seed: int = 0, mask: Bool[Tensor, "batch pos"] | None = None
) -> Int[Tensor, "k 2"]:
    """`n` contexts drawn uniformly among the (masked) positions where the latent is zero: the negatives.
    Chapter 08: explaining latents automatically."""
    acts, mask = _check(acts, mask)
    expect_int_at_least(n, "n")
    return _sample((acts <= 0) & mask, n, seed)


def shuffled_activations(
    acts: Float[Tensor, "batch pos"], seed: int = 0, mask: Bool[Tensor, "batch pos"] | None = None
) -> Float[Tensor, "batch pos"]:
    """The control: the same activations permuted across the masked positions, so that they keep their
    distribution but lose any relation to the text. Chapter 08: explaining latents automatically."""
    acts, mask = _check(acts, mask)
    out = acts.clone()
    values = acts[mask]
    out[mask] = values[torch.randperm(len(values), generator=torch.Generator().manual_seed(seed)).to(values.device)]
    return out


def context_text(
    tokens: Int[Tensor, "batch pos"], where: Int[Tensor, "2"] | tuple[int, int], vocab: list[str], before: int = 8
) -> str:
    """The `before` words up to a context, its own word marked [[like this]].
    Chapter 08: explaining latents automatically."""
    tokens = expect_dtype(expect_ndim(tokens, 2, "tokens", "[batch, pos]"), "int", "tokens")
    row, pos = (int(v) for v in where)
    if not (0 <= row < tokens.shape[0] and 0 <= pos < tokens.shape[1]):
        raise TutorialInputError(
            f"where must be a (row, position) inside tokens {tuple(tokens.shape)}, got {(row, pos)}."
        )
    words = [vocab[int(t)] for t in tokens[row, max(0, pos - before) : pos + 1]]
    return " ".join([*words[:-1], f"[[{words[-1]}]]"])
