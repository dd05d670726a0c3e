"""Synthetic ground truth: sparse activations built from a known dictionary of features, so that
what an SAE learned can be compared with what is there."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor

from ..validation import TutorialInputError, expect_int_at_least, expect_number, expect_range

__all__ = ["feature_frequencies", "synthetic_activations"]

_DATA_STREAM = 0x5EED_DA7A  # offsets the data's seed from SAE initialisations (see synthetic_activations)


def feature_frequencies(n_features: int, l0: float, decay: float = 0.5) -> Float[Tensor, " n_features"]:
    """Firing probabilities p_i proportional to (i + 1)^-decay, scaled to sum to l0, capped at 0.9.

    Chapter 02: sparse autoencoders.
    """
    if not isinstance(n_features, int) or n_features < 1:
        raise TutorialInputError(f"n_features must be a positive int, got {n_features!r}.")
    expect_range(l0, "l0", 1e-6, 0.9 * n_features)
    p = (torch.arange(n_features, dtype=torch.float64) + 1).pow(-float(decay))
    for _ in range(50):  # rescale, cap, repeat: the cap moves mass to the other features
        p = (p * l0 / p.sum()).clamp(max=0.9)
        if abs(float(p.sum()) - l0) < 1e-9:
            break
    return p.float()


def synthetic_activations(
    n_samples: int,
    d_in: int = 64,
    n_features: int = 256,
    l0: float = 8.0,
    *,
    freq_decay: float = 0.5,
    correlation: float = 0.0,
    n_factors: int = 8,
    magnitude_std: float = 0.25,
    noise_std: float = 0.0,
    seed: int = 0,
    device=None,
) -> tuple[Float[Tensor, "n_samples d_in"], Float[Tensor, "n_features d_in"]]:
    """Sparse activations built from a known dictionary: returns (acts, true_features).

    Chapter 02: sparse autoencoders.

    Features are random unit vectors in d_in dimensions (n_features > d_in: superposition). Feature i
    fires with probability `feature_frequencies(n_features, l0, freq_decay)[i]` (so about l0 per
    sample, frequencies spread over a factor n_features^freq_decay) with magnitude |1 + magnitude_std
    * N(0, 1)|. With correlation c > 0, firing is driven by a Gaussian copula through `n_factors`
    shared factors (each feature's latent has variance c from the factors), which keeps every
    feature's frequency but makes features co-occur. Computed on CPU with a seeded generator, then
    moved to `device`, so the numbers do not depend on the device. The generator is seeded apart from
    the SAEs' (`SAE(seed=seed)`), so an SAE never starts at the true dictionary.
    """
    for name, v in (("n_samples", n_samples), ("d_in", d_in), ("n_features", n_features)):
        if not isinstance(v, int) or v < 1:
            raise TutorialInputError(f"{name} must be a positive int, got {v!r}.")
    expect_range(correlation, "correlation", 0.0, 0.99)
    expect_int_at_least(n_factors, "n_factors")
    expect_number(freq_decay, "freq_decay")
    expect_number(magnitude_std, "magnitude_std", 0.0)
    expect_number(noise_std, "noise_std", 0.0)
    # Not manual_seed(seed): an SAE built with the same seed draws its decoder from that stream and
    # would start at the true features (its MCC was 1.0 before any training).
    gen = torch.Generator().manual_seed(_DATA_STREAM + seed)
    features = F.normalize(torch.randn(n_features, d_in, generator=gen), dim=1)
    p = feature_frequencies(n_features, l0, freq_decay)
    cut = torch.special.ndtri(p.double()).float()  # fire when a standard normal falls below this
    mixing = F.normalize(torch.randn(n_factors, n_features, generator=gen), dim=0) if correlation > 0 else None
    acts = torch.empty(n_samples, d_in)
    chunk = max(1, (1 << 24) // n_features)
    for s in range(0, n_samples, chunk):
        m = min(chunk, n_samples - s)
        latent = torch.randn(m, n_features, generator=gen)
        if mixing is not None:
            shared = torch.randn(m, n_factors, generator=gen) @ mixing
            latent = math.sqrt(1 - correlation) * latent + math.sqrt(correlation) * shared
        fire = latent < cut
        codes = torch.zeros(m, n_features)
        codes[fire] = (1 + magnitude_std * torch.randn(int(fire.sum()), generator=gen)).abs()
        acts[s : s + m] = codes @ features
    if noise_std > 0:
        acts += noise_std * torch.randn(n_samples, d_in, generator=gen)
    return acts.to(device), features.to(device)
