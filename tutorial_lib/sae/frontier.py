"""The sparsity-reconstruction frontier: TopK and ReLU-L1 SAEs trained equally long on the same data,
with L0, explained variance and (on synthetic data) feature recovery, compared at matched L0.

Chapter 02: sparse autoencoders (section 3, and the robustness tests in tests/test_claims_02.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from ..validation import TutorialInputError, expect_finite, expect_int_at_least, expect_number
from .architectures import ReLUSAE, TopKSAE
from .base import SAE
from .metrics import evaluate, feature_recovery, shared_latent_fraction
from .training import TrainHistory, train_sae

__all__ = ["FrontierPoint", "ev_at_l0", "matched_gaps", "score_point", "seed_agreement", "smoothed", "sweep_frontier"]


@dataclass(frozen=True)
class FrontierPoint:
    """One trained SAE of a sweep: its architecture, knob (k or l1_coeff), held-out L0, EV and MCC,
    its training history and the SAE itself.

    Chapter 02: sparse autoencoders.
    """

    arch: str
    knob: float
    l0: float
    ev: float
    mcc: float
    history: TrainHistory
    sae: SAE | None = field(default=None, compare=False, repr=False)


def sweep_frontier(
    x_train: Tensor,
    x_test: Tensor,
    true_features: Tensor | None,
    *,
    ks: Sequence[int] = (4, 8, 16, 32),
    l1_coeffs: Sequence[float] = (1.0, 0.6, 0.3, 0.15),
    steps: int = 1200,
    batch_size: int = 256,
    lr: float = 2e-3,
    seed: int = 0,
) -> list[FrontierPoint]:
    """Train one TopK SAE per k and one ReLU-L1 SAE per coefficient, all for the same `steps`.

    Chapter 02: sparse autoencoders.

    Width is 4x the input dimension. MCC is NaN without `true_features`.
    """
    expect_int_at_least(steps, "steps")
    if x_train.ndim != 2 or x_test.ndim != 2 or x_train.shape[1] != x_test.shape[1]:
        raise TutorialInputError(
            f"x_train and x_test must be [n, d] with the same d, got {tuple(x_train.shape)} and {tuple(x_test.shape)}."
        )
    d = x_train.shape[1]
    saes = [("topk", float(k), TopKSAE(d, 4 * d, k=int(k), seed=seed)) for k in ks]
    saes += [("relu", float(c), ReLUSAE(d, 4 * d, l1_coeff=float(c), seed=seed)) for c in l1_coeffs]
    points = []
    for arch, knob, sae in saes:
        sae = sae.to(x_train.device)
        hist = train_sae(sae, x_train, steps=steps, batch_size=batch_size, lr=lr, seed=seed, desc=f"{arch} {knob:g}")
        points.append(score_point(arch, knob, sae, hist, x_test, true_features))
    return points


def score_point(
    arch: str, knob: float, sae: SAE, history: TrainHistory, x_test: Tensor, true_features: Tensor | None
) -> FrontierPoint:
    """A trained SAE's FrontierPoint: L0 and EV on `x_test`, MCC against `true_features` (NaN without).

    Chapter 02: sparse autoencoders.
    """
    if not isinstance(sae, SAE):
        raise TutorialInputError(f"sae must be a tutorial_lib.sae.SAE, got {type(sae).__name__}.")
    ev = evaluate(sae, x_test)
    mcc = float("nan") if true_features is None else feature_recovery(sae, true_features.to(x_test.device))["mcc"]
    return FrontierPoint(arch, knob, ev.l0, ev.explained_variance, mcc, history, sae)


def ev_at_l0(points: Sequence[FrontierPoint], l0: float) -> float:
    """EV interpolated linearly in log L0 along one architecture's points.

    Chapter 02: sparse autoencoders.
    """
    pts = sorted((p.l0, p.ev) for p in points)
    if not pts:
        raise TutorialInputError("ev_at_l0 needs at least one frontier point.")
    expect_number(l0, "l0", 1e-12)
    return float(np.interp(np.log(l0), [np.log(p[0]) for p in pts], [p[1] for p in pts]))


def matched_gaps(points: Sequence[FrontierPoint], n: int = 3) -> tuple[list[float], list[float]]:
    """(matched L0s, EV(TopK) - EV(ReLU) there) at `n` L0s spaced geometrically over the shared range.

    Chapter 02: sparse autoencoders.
    """
    n = expect_int_at_least(n, "n", 1)
    topk = [p for p in points if p.arch == "topk"]
    relu = [p for p in points if p.arch == "relu"]
    if not topk or not relu:
        raise TutorialInputError("matched_gaps needs both 'topk' and 'relu' points.")
    lo = max(min(p.l0 for p in topk), min(p.l0 for p in relu))
    hi = min(max(p.l0 for p in topk), max(p.l0 for p in relu))
    if lo > hi:
        raise TutorialInputError(
            f"the two L0 ranges do not overlap (TopK and ReLU share no L0 between {lo:.1f} and {hi:.1f})."
        )
    l0s = [float(v) for v in np.geomspace(lo, hi, n)]
    return l0s, [ev_at_l0(topk, v) - ev_at_l0(relu, v) for v in l0s]


def smoothed(values: Sequence[float], width: int = 5) -> list[float]:
    """Running mean over `width` logged values (for loss curves of small-batch runs).

    Chapter 02: sparse autoencoders.
    """
    width = expect_int_at_least(width, "width", 1)
    t = expect_finite(torch.tensor(list(values), dtype=torch.float64), "values")
    if len(t) < width:
        return t.tolist()
    return torch.nn.functional.avg_pool1d(t[None, None], width, 1).flatten().tolist()


def seed_agreement(
    data: Tensor,
    steps: int,
    *,
    seeds: Sequence[int] = (0, 1),
    thresholds: Sequence[float] = (0.5, 0.7, 0.9),
    d_sae: int = 256,
    k: int = 8,
    batch_size: int = 1024,
    lr: float = 5e-3,
) -> tuple[list[float], list[TopKSAE], list[TrainHistory]]:
    """Train two TopK SAEs on `data` that differ only in their seed (initialisation and batch order) and
    return (the fraction of the first's latents whose best match in the second has cosine above each
    threshold, the two SAEs, their histories).

    Chapter 02: sparse autoencoders (section 5, seed disagreement; Paulo and Belrose 2025).
    """
    expect_int_at_least(steps, "steps")
    if len(seeds) != 2:
        raise TutorialInputError(f"seeds must name two seeds, got {seeds!r}.")
    if data.ndim != 2:
        raise TutorialInputError(f"data must be [n, d_in], got shape {tuple(data.shape)}.")
    saes = [TopKSAE(data.shape[1], d_sae, k=k, seed=int(s)).to(data.device) for s in seeds]
    hists = [
        train_sae(m, data, steps=steps, batch_size=batch_size, lr=lr, seed=int(s), desc=f"seed {s}")
        for s, m in zip(seeds, saes)
    ]
    return [shared_latent_fraction(saes[0], saes[1], t) for t in thresholds], saes, hists
