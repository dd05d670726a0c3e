"""Chapter 01's trained phase diagram and the packing question: where two features in one dimension
superpose, and whether packing many features into few dimensions pays (Elhage et al. 2022)."""

from __future__ import annotations

import torch
from jaxtyping import Float, Int
from torch import Tensor

from ..validation import TutorialInputError, expect_finite, expect_int_at_least, expect_ndim, expect_range
from .measures import classify_two_feature_solution
from .model import ToyModel, _forward, _weighted_loss, train

EVAL_SEED, EVAL_BATCH = 123, 20000


def trained_phase_diagram(
    relative_importance: Float[Tensor, " r"],
    feature_probability: Float[Tensor, " p"],
    runs: int = 4,
    steps: int = 1000,
    batch_size: int = 256,
    lr: float = 3e-2,
    seed: int = 0,
) -> tuple[Int[Tensor, "r p"], Int[Tensor, "r p runs"]]:
    """Train `runs` 2-feature, 1-dimension models per (relative importance of feature 1, feature probability)
    cell in one batch; return the solution of each cell's lowest-loss run on a fixed evaluation batch
    [r, p] and every run's solution [r, p, runs] (codes index PHASES).

    Exercise 01.8. Chapter 01: toy models of superposition (the phase diagram)."""
    rel = expect_finite(
        expect_ndim(torch.as_tensor(relative_importance, dtype=torch.float32), 1, "relative_importance", "[r]"),
        "relative_importance",
    )
    prb = expect_finite(
        expect_ndim(torch.as_tensor(feature_probability, dtype=torch.float32), 1, "feature_probability", "[p]"),
        "feature_probability",
    )
    runs = expect_int_at_least(runs, "runs")
    R, P = len(rel), len(prb)
    rel_all = rel[:, None, None].expand(R, P, runs).reshape(-1)
    prb_all = prb[None, :, None].expand(R, P, runs).reshape(-1)
    importance = torch.stack([torch.ones_like(rel_all), rel_all], dim=-1)
    model = ToyModel(2, 1, R * P * runs, prb_all, importance, seed=seed)
    train(model, steps=steps, batch_size=batch_size, lr=lr, seed=seed, desc="2 features, 1 dim")
    with torch.no_grad():
        x_eval = model.generate_batch(EVAL_BATCH, torch.Generator().manual_seed(EVAL_SEED))
        eval_loss = model.loss(x_eval).view(R, P, runs)
    codes = classify_two_feature_solution(model.W.detach()).view(R, P, runs)
    best = codes.gather(-1, eval_loss.argmin(-1, keepdim=True))[..., 0]
    return best, codes


def dense_baseline_loss(importance: Float[Tensor, " feat"], n_hidden: int, feature_probability: float) -> float:
    """Expected loss of the best solution without superposition: the `n_hidden` most important features kept
    exactly (orthonormal directions, zero bias) and the rest dropped, each dropped feature costing its
    importance times E[x^2] = p/3, averaged over the features.

    Chapter 01: toy models of superposition (does packing pay?)."""
    imp = expect_finite(
        expect_ndim(torch.as_tensor(importance, dtype=torch.float32), 1, "importance", "[feat]"), "importance"
    )
    n_hidden = expect_int_at_least(n_hidden, "n_hidden")
    p = expect_range(float(feature_probability), "feature_probability", 0.0, 1.0)
    dropped = imp.sort(descending=True).values[n_hidden:]
    return float(dropped.sum() * p / 3 / len(imp))


def packing_score(
    W: Float[Tensor, "feat hidden"],
    b: Float[Tensor, " feat"],
    feature_probability: float,
    importance: Float[Tensor, " feat"],
    n_samples: int = 50000,
    seed: int = 7,
) -> dict[str, float]:
    """What Exercise 01.5 measures of a packed model (W, b) at its feature probability: "represented"
    (features with ||W_i|| > 0.5), "loss" on fresh data (ReLU output model) and "baseline"
    (`dense_baseline_loss`).

    Chapter 01: toy models of superposition (does packing pay?)."""
    W = expect_finite(expect_ndim(torch.as_tensor(W, dtype=torch.float32), 2, "W", "[feat, hidden]"), "W")
    b = expect_finite(expect_ndim(torch.as_tensor(b, dtype=torch.float32), 1, "b", "[feat]"), "b")
    imp = torch.as_tensor(importance, dtype=torch.float32)
    if b.shape[0] != W.shape[0] or imp.shape != b.shape:
        raise TutorialInputError(
            f"W [feat, hidden], b [feat] and importance [feat] disagree: {tuple(W.shape)}, {tuple(b.shape)}, {tuple(imp.shape)}."
        )
    p = expect_range(float(feature_probability), "feature_probability", 0.0, 1.0)
    model = ToyModel(W.shape[0], W.shape[1], 1, p, imp[None])
    with torch.no_grad():
        x = model.generate_batch(n_samples, torch.Generator().manual_seed(seed))
        loss = _weighted_loss(_forward(W[None], b[None], x, "relu", False), x, imp[None])
    return {"represented": float((W.norm(dim=-1) > 0.5).sum()), "loss": float(loss[0]),
            "baseline": dense_baseline_loss(imp, W.shape[1], p)}  # fmt: skip


def pack_features(
    n_features: int = 20,
    n_hidden: int = 5,
    feature_probability: float = 0.01,
    runs: int = 2,
    steps: int = 500,
    seed: int = 1,
) -> tuple[Float[Tensor, "feat hidden"], Float[Tensor, " feat"], float]:
    """Train `runs` models with importance 0.7^i at `feature_probability` and return the one with the lowest
    evaluation loss among those representing at least twice as many features as dimensions: (W, b, p).

    Exercise 01.5 (an open exercise: any (W, b, p) with the measured property passes).
    Chapter 01: toy models of superposition."""
    importance = 0.7 ** torch.arange(float(n_features))
    model = ToyModel(n_features, n_hidden, runs, feature_probability, importance, seed=seed)
    train(model, steps=steps, batch_size=256, lr=1e-2, seed=seed, desc="packing")
    with torch.no_grad():
        losses = model.loss(model.generate_batch(EVAL_BATCH, torch.Generator().manual_seed(0)))
    represented = (model.W.norm(dim=-1) > 0.5).sum(-1)
    best = int(torch.where(represented >= 2 * n_hidden, losses, torch.inf).argmin())
    return model.W[best].detach(), model.b_final[best].detach(), feature_probability
