"""Chapter 01's measures of the geometry a toy model learns: features represented, dimensionality,
interference, 2-D angles, polysemantic neurons and the two-feature phase diagram."""

from __future__ import annotations

import einops
import torch
from jaxtyping import Float, Int
from torch import Tensor

from ..validation import TutorialInputError, expect_finite, expect_ndim, expect_number, expect_range
from .model import _check_weights as _check_model_weights

# Labels of `classify_two_feature_solution`, in the order of its integer codes.
PHASES = ("not represented", "dedicated dimension", "superposition")


def _check_weights(W: object, name: str = "W") -> Tensor:
    """Float weights [instances, features, hidden] with no NaN or inf. Chapter 01: toy models of superposition."""
    W = _check_model_weights(W, name)
    expect_finite(W, name)
    return W


def features_represented(W: Float[Tensor, "inst feat hidden"]) -> Float[Tensor, " inst"]:
    """||W||_F^2 per instance: about the number of features the model represents (each at norm ~1).

    Chapter 01: toy models of superposition (counting represented features).
    """
    W = _check_weights(W)
    return W.pow(2).sum(dim=(1, 2))


def dimensions_per_feature(W: Float[Tensor, "inst feat hidden"]) -> Float[Tensor, " inst"]:
    """m / ||W||_F^2: hidden dimensions spent per represented feature (1/2 for antipodal pairs).

    Chapter 01: toy models of superposition (dimensions per feature).
    """
    W = _check_weights(W)
    return W.shape[2] / features_represented(W).clamp_min(1e-12)


def _unit_rows(W: Tensor, eps: float = 1e-8) -> Tensor:
    return W / W.norm(dim=-1, keepdim=True).clamp_min(eps)


def feature_dimensionality(W: Float[Tensor, "inst feat hidden"]) -> Float[Tensor, "inst feat"]:
    """D_i = ||W_i||^2 / sum_j (W_i_hat . W_j)^2: the share of a dimension feature i owns (1, 1/2, 2/5, ...; ~0 if absent).

    Chapter 01: toy models of superposition. Reference for Exercise 01.6.
    """
    W = _check_weights(W)
    overlaps = einops.einsum(_unit_rows(W), W, "inst i hidden, inst j hidden -> inst i j")
    return W.pow(2).sum(-1) / overlaps.pow(2).sum(-1).clamp_min(1e-12)


def interference(W: Float[Tensor, "inst feat hidden"]) -> Float[Tensor, "inst feat"]:
    """sum_{j != i} (W_i_hat . W_j)^2: how much of other features leaks onto feature i's direction.

    Chapter 01: toy models of superposition (interference between features).
    """
    W = _check_weights(W)
    overlaps = einops.einsum(_unit_rows(W), W, "inst i hidden, inst j hidden -> inst i j").pow(2)
    return overlaps.sum(-1) - overlaps.diagonal(dim1=-2, dim2=-1)


def gram(W: Float[Tensor, "inst feat hidden"]) -> Float[Tensor, "inst feat feat"]:
    """W W^T per instance: norms on the diagonal, interference off it (the paper's matrix plots).

    Chapter 01: toy models of superposition (the W W^T plots).
    """
    W = _check_weights(W)
    return einops.einsum(W, W, "inst i hidden, inst j hidden -> inst i j")


def feature_angles(W: Float[Tensor, "inst feat 2"]) -> Float[Tensor, "inst feat"]:
    """The direction of each feature in a 2-D hidden space, in degrees in [0, 360).

    Chapter 01: toy models of superposition (2-D geometry).
    """
    W = _check_weights(W)
    if W.shape[2] != 2:
        raise TutorialInputError(f"feature_angles needs a 2-D hidden space, got hidden size {W.shape[2]}.")
    return torch.rad2deg(torch.atan2(W[..., 1], W[..., 0])) % 360


def adjacent_angle_gaps(W: Float[Tensor, "feat 2"], min_norm: float = 0.5) -> Float[Tensor, " represented"]:
    """Angles (degrees) between neighbouring represented features of one 2-D instance, going round the circle.

    Chapter 01: toy models of superposition (2-D geometry: regular polygons).
    """
    W = expect_ndim(W, 2, "W", "[features, 2] (one instance)")
    expect_finite(W, "W")
    expect_number(min_norm, "min_norm", 0.0)
    angles = feature_angles(W[None])[0][W.norm(dim=-1) > min_norm].sort().values
    if angles.numel() < 2:
        return torch.full((angles.numel(),), 360.0, device=W.device)
    return torch.diff(torch.cat([angles, angles[:1] + 360]))


def neuron_feature_counts(
    W: Float[Tensor, "inst feat hidden"], threshold: float = 0.3, min_norm: float = 0.0
) -> Int[Tensor, "inst hidden"]:
    """For a privileged basis: how many features each neuron reads with a weight above `threshold` (>1: polysemantic).

    Only represented features count: those with ||W_i|| > `min_norm` (0 counts every feature).

    Chapter 01: toy models of superposition (a privileged basis: polysemantic neurons).
    """
    W = _check_weights(W)
    expect_number(threshold, "threshold", 0.0)
    expect_number(min_norm, "min_norm", 0.0)
    represented = W.norm(dim=-1, keepdim=True) > min_norm
    return ((W.abs() > threshold) & represented).sum(dim=1)


def classify_two_feature_solution(W: Float[Tensor, "inst 2 1"], threshold: float = 0.5) -> Int[Tensor, " inst"]:
    """Which of the phase diagram's solutions each 2-feature, 1-dimension instance learned (codes index PHASES).

    Feature 1 is the extra feature. 0: it is not represented (|W_1| < threshold); 1: it owns the
    dimension (the other feature is not represented); 2: both are represented (superposition).

    Chapter 01: toy models of superposition. Reference for Exercise 01.7.
    """
    W = _check_weights(W)
    if W.shape[1:] != (2, 1):
        raise TutorialInputError(
            f"W must have shape [instances, 2, 1] (2 features, 1 dimension), got {tuple(W.shape)}."
        )
    expect_number(threshold, "threshold", 0.0)
    norms = W.norm(dim=-1)
    extra, other = norms[:, 1] > threshold, norms[:, 0] > threshold
    codes = torch.zeros(W.shape[0], dtype=torch.long, device=W.device)
    codes[extra & ~other] = 1
    codes[extra & other] = 2
    return codes


def two_feature_losses(importance: float, feature_probability: float) -> dict[str, float]:
    """Expected loss (summed over the 2 features, importance 1 and `importance`) of the phase diagram's candidates.

    Closed forms for the ReLU model with x_i ~ U[0, 1] w.p. p: keeping one feature with
    weight 1 and bias 0 loses the other feature's E[x^2] = p/3; the antipodal pair W = (1, -1),
    b = 0 makes the features interfere only when both are present (through the ReLU).

    Chapter 01: toy models of superposition (the phase diagram's closed forms).
    """
    p = expect_range(float(feature_probability), "feature_probability", 0, 1)
    if p == 0:
        raise TutorialInputError("feature_probability must lie in (0, 1] (with 0 no feature is ever present), got 0.")
    r = expect_range(float(importance), "importance", 0)
    ex2 = p / 3  # E[x^2] for one feature
    # Both present (prob p^2): out_0 = relu(x0 - x1), error on feature 0 is min(x0, x1)...: E[min(x0,x1)^2] = 1/6.
    both = p * p / 6
    return {
        "not represented": r * ex2,
        "dedicated dimension": ex2,
        "superposition": (1 + r) * both,
    }
