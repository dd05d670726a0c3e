"""Chapter 03's stronger baselines for probing claims: a nonlinear (MLP) probe for what linear erasure
leaves behind, random directions matched to the probe direction's variance, and the online (MDL) code
length of a probe's labels (Voita and Titov 2020)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor

from ..validation import TutorialInputError, expect_finite, expect_int_at_least, expect_ndim
from .probes import _check_xy, train_logistic_probe


def train_mlp_probe(
    X: Float[Tensor, "n d"], y: Int[Tensor, " n"], n_classes: int, hidden: int = 64, steps: int = 400, seed: int = 0
) -> torch.nn.Module:
    """A one-hidden-layer ReLU classifier on standardised inputs, trained full-batch with Adam.

    Chapter 03: probing (what a nonlinear probe reads after a linear erasure)."""
    X, y = _check_xy(X, y, "class")
    n_classes, hidden = expect_int_at_least(n_classes, "n_classes", 2), expect_int_at_least(hidden, "hidden")
    g = torch.Generator().manual_seed(seed)
    mean, std = X.mean(0), X.std(0).clamp_min(1e-6)
    net = torch.nn.Sequential(torch.nn.Linear(X.shape[1], hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, n_classes))
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(p.shape[-1]))
    opt = torch.optim.Adam(net.parameters(), lr=1e-2, weight_decay=1e-4)
    Z = (X - mean) / std
    for _ in range(expect_int_at_least(steps, "steps")):
        opt.zero_grad()
        F.cross_entropy(net(Z), y).backward()
        opt.step()
    net.requires_grad_(False)
    return torch.nn.Sequential(_Standardise(mean, std), net)


class _Standardise(torch.nn.Module):
    def __init__(self, mean: Tensor, std: Tensor):
        super().__init__()
        self.mean, self.std = mean, std

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std


def mlp_probe_accuracy(
    X_train: Tensor, y_train: Tensor, X_test: Tensor, y_test: Tensor, n_classes: int = 2, seed: int = 0
) -> float:
    """Held-out accuracy of `train_mlp_probe`.

    Chapter 03: probing (what a nonlinear probe reads after a linear erasure)."""
    net = train_mlp_probe(X_train, y_train, n_classes, seed=seed)
    X_test, y_test = _check_xy(X_test, y_test, "class")
    return (net(X_test.float()).argmax(-1) == y_test).float().mean().item()


def variance_matched_directions(
    X: Float[Tensor, "n d"], direction: Float[Tensor, " d"], n: int = 8, k: int = 8, seed: int = 0
) -> Float[Tensor, "n d"]:
    """`n` random unit directions orthogonal to `direction`, inside the span of the top `k` principal
    components of X with `direction` removed, whose variance of X along them is closest to the variance
    along `direction` (drawn from 64 n candidates): a control that removes as much of the activations as
    the probe direction does (or as much as any other direction can), where the activations live.

    Exercise 03.7. Chapter 03: probing."""
    X = expect_finite(expect_ndim(X, 2, "X", "[n, d]"), "X").float()
    direction = expect_finite(expect_ndim(direction, 1, "direction", "[d]"), "direction").float()
    if direction.shape[0] != X.shape[1] or direction.norm() == 0:
        raise TutorialInputError(
            f"direction must be a non-zero [d] vector with d = {X.shape[1]}, got {tuple(direction.shape)}."
        )
    n, k = expect_int_at_least(n, "n"), expect_int_at_least(k, "k")
    centred = X - X.mean(0)
    unit = direction / direction.norm()
    away = centred - (centred @ unit)[:, None] * unit  # the candidates are orthogonal to `direction`
    basis = torch.linalg.svd(away, full_matrices=False).Vh[: min(k, X.shape[1] - 1)]  # [k, d]
    g = torch.Generator().manual_seed(seed)
    candidates = torch.randn(64 * n, basis.shape[0], generator=g) @ basis
    candidates = candidates / candidates.norm(dim=-1, keepdim=True)
    target = (centred @ unit).var()
    gap = ((centred @ candidates.T).var(0) - target).abs()
    return candidates[gap.argsort()[:n]]


def online_code_length(
    X: Float[Tensor, "n d"],
    y: Int[Tensor, " n"],
    n_classes: int,
    fractions: tuple[float, ...] = (0.05, 0.1, 0.2, 0.4, 0.7, 1.0),
    seed: int = 0,
) -> dict:
    """Online (prequential) code length of the labels y given X, in bits (Voita and Titov 2020): the rows in
    a seeded random order; the first block is sent with the uniform code; each later block with a logistic
    probe trained on every row before it. Returns "online", "uniform" (n log2 C), "compression"
    (uniform / online) and "blocks" (the bits of each block).

    Exercise 03.8. Chapter 03: probing."""
    X, y = _check_xy(X, y, "class")
    n_classes = expect_int_at_least(n_classes, "n_classes", 2)
    ends = [max(1, int(round(f * len(y)))) for f in fractions]
    if ends != sorted(ends) or ends[-1] != len(y):
        raise TutorialInputError(f"fractions must rise to 1.0, got {fractions}.")
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    X, y = X[order], y[order]
    blocks = [ends[0] * math.log2(n_classes)]
    for start, end in zip(ends[:-1], ends[1:]):
        W, b = train_logistic_probe(X[:start], y[:start], n_classes)
        log_p = F.log_softmax(X[start:end] @ W + b, dim=-1)
        blocks.append(-log_p.gather(1, y[start:end, None]).sum().item() / math.log(2))
    online, uniform = sum(blocks), len(y) * math.log2(n_classes)
    return {"online": online, "uniform": uniform, "compression": uniform / online, "blocks": blocks}
