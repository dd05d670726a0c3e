"""Chapter 01's data: sparse synthetic features, with per-instance probabilities and importances."""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor

from ..validation import TutorialInputError, expect_dtype, expect_int_at_least, expect_range, expect_shape


def _probability_tensor(p: float | Tensor, n_instances: int, name: str = "feature_probability") -> Tensor:
    """A float or a [instances] tensor of probabilities -> a [instances] float tensor, checked in [0, 1]."""
    if not isinstance(p, Tensor):
        if not isinstance(p, (int, float)):
            raise TutorialInputError(f"{name} must be a number or a tensor [instances], got {type(p).__name__}.")
        expect_range(float(p), name, 0, 1)
        return torch.full((n_instances,), float(p))
    p = expect_dtype(p, "float", name)
    if p.ndim == 0:
        p = p.expand(n_instances)
    expect_shape(p, (n_instances,), name, "[instances]")
    if not ((p >= 0) & (p <= 1)).all():
        raise TutorialInputError(
            f"{name} must lie in [0, 1], got values from {p.min().item():.3g} to {p.max().item():.3g}."
        )
    return p


def _importance_tensor(importance: float | Tensor, n_instances: int, n_features: int) -> Tensor:
    """A float, a [features] or a [instances, features] tensor -> [instances, features], checked >= 0."""
    if not isinstance(importance, Tensor):
        if not isinstance(importance, (int, float)):
            raise TutorialInputError(
                f"importance must be a number or a tensor [features] / [instances, features], got {type(importance).__name__}."
            )
        importance = torch.tensor(float(importance))
    importance = expect_dtype(importance, "float", "importance")
    if importance.ndim == 0:
        importance = importance.expand(n_instances, n_features)
    elif importance.ndim == 1:
        expect_shape(importance, (n_features,), "importance", "[features]")
        importance = importance.expand(n_instances, n_features)
    else:
        expect_shape(importance, (n_instances, n_features), "importance", "[instances, features]")
    if (importance < 0).any():
        raise TutorialInputError("importance must be non-negative: it weights a squared error.")
    return importance


def generate_batch(
    n_batch: int,
    feature_probability: float | Float[Tensor, " inst"],
    n_features: int,
    n_instances: int | None = None,
    correlated_pairs: int = 0,
    anticorrelated_pairs: int = 0,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> Float[Tensor, "batch inst feat"]:
    """Synthetic sparse features: each is present with probability p (its instance's), then uniform in [0, 1].

    The first `2 * correlated_pairs` features come in pairs that are present together; the next
    `2 * anticorrelated_pairs` in pairs of which at most one is present (the pair is active with
    probability 2p, capped at 1, then one of the two chosen). The rest are independent.

    Chapter 01: toy models of superposition. Reference for Exercise 01.1.
    """
    if isinstance(feature_probability, Tensor) and n_instances is None:
        n_instances = feature_probability.numel()
    n_instances = 1 if n_instances is None else n_instances
    for value, name in ((n_batch, "n_batch"), (n_features, "n_features"), (n_instances, "n_instances")):
        expect_int_at_least(value, name)
    for value, name in ((correlated_pairs, "correlated_pairs"), (anticorrelated_pairs, "anticorrelated_pairs")):
        expect_int_at_least(value, name, 0)
    n_paired = 2 * (correlated_pairs + anticorrelated_pairs)
    if n_paired > n_features:
        raise TutorialInputError(
            f"{correlated_pairs} correlated and {anticorrelated_pairs} anti-correlated pairs need "
            f"{n_paired} features, but n_features is {n_features}."
        )
    if device is None:
        device = (
            generator.device
            if generator is not None
            else (feature_probability.device if isinstance(feature_probability, Tensor) else "cpu")
        )
    p = _probability_tensor(feature_probability, n_instances).to(device)
    return _generate(n_batch, p, n_features, correlated_pairs, anticorrelated_pairs, generator)


def _generate(
    n_batch: int,
    p: Tensor,
    n_features: int,
    correlated_pairs: int,
    anticorrelated_pairs: int,
    g: torch.Generator | None,
) -> Tensor:
    """generate_batch without the input checks; p is [instances] on the target device."""
    device, n_instances = p.device, p.shape[0]
    n_paired = 2 * (correlated_pairs + anticorrelated_pairs)
    if n_paired == 0:
        # One draw does both jobs: u < p with probability p, and then 1 - u/p is uniform on (0, 1].
        u = torch.rand(n_batch, n_instances, n_features, generator=g, device=device)
        return u.div_(p[:, None].clamp_min(1e-12)).neg_().add_(1).relu_()
    values = torch.rand(n_batch, n_instances, n_features, generator=g, device=device)
    parts = []
    if correlated_pairs:
        present = torch.rand(n_batch, n_instances, correlated_pairs, 1, generator=g, device=device) < p[:, None, None]
        parts.append(present.expand(-1, -1, -1, 2).flatten(-2))
    if anticorrelated_pairs:
        k = anticorrelated_pairs
        active = torch.rand(n_batch, n_instances, k, generator=g, device=device) < (2 * p[:, None]).clamp(max=1)
        first = torch.rand(n_batch, n_instances, k, generator=g, device=device) < 0.5
        parts.append(torch.stack([active & first, active & ~first], dim=-1).flatten(-2))
    n_independent = n_features - n_paired
    if n_independent:
        parts.append(torch.rand(n_batch, n_instances, n_independent, generator=g, device=device) < p[:, None])
    mask = torch.cat(parts, dim=-1)
    return values * mask
