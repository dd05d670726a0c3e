"""Chapter 03's probes: logistic regression, ridge regression and difference of means, fitted on a
ProbeDataset's train split and scored on its test split.

Shapes: `n` rows, `d` activation width, `C` classes, `k` regression targets.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor

from ..progress import progress
from ..validation import (
    TutorialInputError,
    expect_choice,
    expect_dtype,
    expect_finite,
    expect_ndim,
    expect_range,
    expect_same_shape,
)
from .datasets import ProbeDataset, check_labels

__all__ = [
    "PROBES",
    "DiffMeansProbe",
    "LogisticProbe",
    "ProbeResult",
    "RidgeProbe",
    "check_dataset",
    "diff_of_means",
    "diff_of_means_probe",
    "logistic_probe",
    "r2_score",
    "ridge_probe",
    "run_probe",
    "train_logistic",
    "train_logistic_probe",
    "train_ridge",
]


@dataclass
class LogisticProbe:
    """Multi-class logistic regression on standardised inputs: logits = ((x - mean) / std) @ W + b.

    Chapter 03: probing.
    """

    W: Float[Tensor, "d C"]
    b: Float[Tensor, " C"]
    mean: Float[Tensor, " d"]
    std: Float[Tensor, " d"]

    def logits(self, X: Float[Tensor, "n d"]) -> Float[Tensor, "n C"]:
        return ((X - self.mean) / self.std) @ self.W + self.b

    def predict(self, X: Float[Tensor, "n d"]) -> Int[Tensor, " n"]:
        return self.logits(X).argmax(-1)

    def score(self, X: Float[Tensor, "n d"], y: Int[Tensor, " n"]) -> float:
        """Accuracy."""
        return (self.predict(X) == y).float().mean().item()

    @property
    def weight(self) -> Float[Tensor, "d C"]:
        """The per-class weights in the original activation space (W / std)."""
        return self.W / self.std[:, None]

    @property
    def direction(self) -> Float[Tensor, " d"]:
        """Unit direction in activation space that separates class 1 from class 0."""
        w = self.weight[:, 1] - self.weight[:, 0]
        return w / w.norm()


@dataclass
class RidgeProbe:
    """Linear map y = X @ W + b fitted in closed form with an L2 penalty alpha * ||W||^2. Chapter 03: probing."""

    W: Float[Tensor, "d k"]
    b: Float[Tensor, " k"]
    scalar: bool = True

    def predict(self, X: Float[Tensor, "n d"]) -> Tensor:
        out = X @ self.W + self.b
        return out[:, 0] if self.scalar else out

    def score(self, X: Float[Tensor, "n d"], y: Tensor) -> float:
        """R^2 = 1 - SS_res / SS_tot (summed over outputs)."""
        return r2_score(self.predict(X), y)


@dataclass
class DiffMeansProbe:
    """Nearest class mean along difference-of-means directions (binary: threshold at the midpoint).

    Chapter 03: probing.
    """

    means: Float[Tensor, "C d"]
    classes: Int[Tensor, " C"]

    def predict(self, X: Float[Tensor, "n d"]) -> Int[Tensor, " n"]:
        if len(self.classes) == 2:
            u = self.direction
            mid = (self.means[0] + self.means[1]) @ u / 2
            return self.classes[((X @ u) > mid).long()]
        return self.classes[torch.cdist(X, self.means).argmin(-1)]

    def score(self, X: Float[Tensor, "n d"], y: Int[Tensor, " n"]) -> float:
        return (self.predict(X) == y).float().mean().item()

    @property
    def direction(self) -> Float[Tensor, " d"]:
        """Unit vector from the mean of the first class to the mean of the second."""
        v = self.means[-1] - self.means[0]
        return v / v.norm()


@dataclass
class ProbeResult:
    """A fitted probe with its train and test score (accuracy, or R^2 for ridge). Chapter 03: probing."""

    probe: LogisticProbe | RidgeProbe | DiffMeansProbe
    train_score: float
    test_score: float

    @property
    def accuracy(self) -> float:
        return self.test_score


def r2_score(pred: Tensor, y: Tensor) -> float:
    """Coefficient of determination, pooled over outputs when y is [n, k]. Chapter 03: probing."""
    expect_same_shape(pred, y, "pred and y")
    if y.shape[0] < 2:
        raise TutorialInputError(f"pred and y need at least 2 rows for an R^2, got shape {tuple(y.shape)}.")
    expect_finite(pred, "pred")
    expect_finite(y, "y")
    y = y.float()
    ss_res = (y - pred).pow(2).sum()
    ss_tot = (y - y.mean(0)).pow(2).sum()
    return (1 - ss_res / ss_tot.clamp_min(1e-12)).item()


def _check_xy(X: object, y: object, kind: str) -> tuple[Tensor, Tensor]:
    """Float X [n, d] with n >= 2 and labels y for it (class ids >= 0 when kind is 'class'). Chapter 03: probing."""
    X = expect_ndim(X, 2, "X", "[n, d]")
    expect_finite(expect_dtype(X, "float", "X"), "X")
    y = expect_finite(check_labels(y, X.shape[0]), "y")
    if kind == "class":
        if y.ndim != 1:
            raise TutorialInputError(f"class labels must be 1-d [n], got shape {tuple(y.shape)}.")
        expect_dtype(y, "int", "labels (class ids)")
        if y.numel() and y.min() < 0:
            raise TutorialInputError(f"class labels must be ids >= 0, got a minimum of {int(y.min())}.")
    if X.shape[0] < 2:
        raise TutorialInputError(f"need at least 2 rows to fit a probe, got {X.shape[0]}.")
    return X, y.to(X.device)


def train_logistic(
    X: Float[Tensor, "n d"],
    y: Int[Tensor, " n"],
    n_classes: int | None = None,
    l2: float = 1e-3,
    max_iter: int = 100,
) -> LogisticProbe:
    """Full-batch L-BFGS on mean cross-entropy + l2/2 * ||W||^2 (inputs standardised first). Chapter 03: probing."""
    X, y = _check_xy(X, y, "class")
    expect_range(l2, "l2", 0.0)
    n_classes = int(y.max()) + 1 if n_classes is None else n_classes
    if n_classes < 2 or n_classes <= int(y.max()):
        raise TutorialInputError(f"n_classes must be >= 2 and > the largest label {int(y.max())}, got {n_classes}.")
    X = X.detach().float()
    mean, std = X.mean(0), X.std(0).clamp_min(1e-6)
    Z = (X - mean) / std
    W = torch.zeros(X.shape[1], n_classes, device=X.device, requires_grad=True)
    b = torch.zeros(n_classes, device=X.device, requires_grad=True)
    chunk = 25
    opt = torch.optim.LBFGS(
        [W, b],
        lr=1,
        max_iter=chunk,
        history_size=20,
        line_search_fn="strong_wolfe",
        tolerance_grad=1e-6,
        tolerance_change=1e-9,
    )

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(Z @ W + b, y) + 0.5 * l2 * W.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        prev = None
        for _ in progress(range(max(1, -(-max_iter // chunk))), desc="logistic probe (L-BFGS)"):
            loss = opt.step(closure).item()
            if prev is not None and abs(prev - loss) < 1e-9:
                break
            prev = loss
    return LogisticProbe(W.detach(), b.detach(), mean, std)


def train_ridge(X: Float[Tensor, "n d"], y: Tensor, alpha: float = 1e-3) -> RidgeProbe:
    """Closed-form ridge on centred data: W = (Xc^T Xc + alpha n I)^-1 Xc^T yc, b = mean(y) - mean(X) W.

    Chapter 03: probing.
    """
    X, y = _check_xy(X, y, "regression")
    expect_range(alpha, "alpha", 0.0)
    scalar = y.ndim == 1
    Y = (y[:, None] if scalar else y).float()
    X = X.detach().float()
    mx, my = X.mean(0), Y.mean(0)
    Xc, Yc = X - mx, Y - my
    n, d = X.shape
    A = Xc.T @ Xc + alpha * n * torch.eye(d, device=X.device)
    W = torch.linalg.lstsq(A, Xc.T @ Yc).solution if alpha == 0 else torch.linalg.solve(A, Xc.T @ Yc)
    return RidgeProbe(W, my - mx @ W, scalar)


def diff_of_means(
    X: Float[Tensor, "n d"], y: Tensor, positive: int = 1, negative: int | None = 0, normalize: bool = True
) -> Float[Tensor, " d"]:
    """mean(X[y == positive]) - mean(X[y == negative]) (negative=None: all other rows); unit length if normalize.

    Chapter 03: probing.
    """
    X = expect_finite(expect_ndim(X, 2, "X", "[n, d]"), "X")
    y = check_labels(y, X.shape[0]).to(X.device)
    pos = y == positive
    neg = ~pos if negative is None else y == negative
    if not pos.any() or not neg.any():
        raise TutorialInputError(
            f"diff_of_means needs rows of both classes: found {int(pos.sum())} with label "
            f"{positive!r} and {int(neg.sum())} with label {negative!r}."
        )
    v = X[pos].float().mean(0) - X[neg].float().mean(0)
    return v / v.norm().clamp_min(1e-12) if normalize else v


def _fit_diff_means(X: Tensor, y: Tensor) -> DiffMeansProbe:
    """The class means of X (at least two classes). Chapter 03: probing."""
    X, y = _check_xy(X, y, "class")
    classes = torch.unique(y)
    if len(classes) < 2:
        raise TutorialInputError(f"the training split has only one class ({classes.tolist()}); need at least 2.")
    means = torch.stack([X[y == c].float().mean(0) for c in classes])
    return DiffMeansProbe(means, classes)


def check_dataset(ds: object) -> ProbeDataset:
    """A ProbeDataset with rows on both sides of its split. Chapter 03: probing."""
    if not isinstance(ds, ProbeDataset):
        raise TutorialInputError(
            f"expected a ProbeDataset (from collect_activations or make_dataset), got {type(ds).__name__}."
        )
    if len(ds.train_idx) == 0 or len(ds.test_idx) == 0:
        raise TutorialInputError(
            f"the split is empty on one side: {len(ds.train_idx)} train rows, {len(ds.test_idx)} test rows."
        )
    return ds


def logistic_probe(ds: ProbeDataset, l2: float = 1e-3, max_iter: int = 100) -> ProbeResult:
    """Fit a logistic probe on the train split; score accuracy on train and test. Chapter 03: probing."""
    ds = check_dataset(ds)
    _check_xy(ds.acts, ds.labels, "class")
    n_classes = max(2, int(ds.labels.max()) + 1)
    probe = train_logistic(ds.X_train, ds.y_train, n_classes, l2, max_iter)
    return ProbeResult(probe, probe.score(ds.X_train, ds.y_train), probe.score(ds.X_test, ds.y_test))


def diff_of_means_probe(ds: ProbeDataset) -> ProbeResult:
    """Class means on the train split; classify by the nearest mean (binary: midpoint along their difference).

    Chapter 03: probing.
    """
    ds = check_dataset(ds)
    probe = _fit_diff_means(ds.X_train, ds.y_train)
    return ProbeResult(probe, probe.score(ds.X_train, ds.y_train), probe.score(ds.X_test, ds.y_test))


def ridge_probe(ds: ProbeDataset, alpha: float = 1e-3) -> ProbeResult:
    """Closed-form ridge regression on the train split; scores are R^2. Chapter 03: probing."""
    ds = check_dataset(ds)
    probe = train_ridge(ds.X_train, ds.y_train, alpha)
    return ProbeResult(probe, probe.score(ds.X_train, ds.y_train), probe.score(ds.X_test, ds.y_test))


PROBES = {"logistic": logistic_probe, "diff_of_means": diff_of_means_probe, "ridge": ridge_probe}


def run_probe(ds: ProbeDataset, probe: str = "logistic", **kwargs) -> ProbeResult:
    """Dispatch by name: "logistic", "diff_of_means" or "ridge". Chapter 03: probing."""
    expect_choice(probe, PROBES, "probe")
    return PROBES[probe](ds, **kwargs)


def train_logistic_probe(X: Tensor, y: Tensor, n_classes: int) -> tuple[Tensor, Tensor]:
    """A logistic probe as raw-space weights: logits = X @ W + b, W [d, C], b [C].

    Chapter 03: probing. Exercise 03.2 (the reference).
    """
    probe = train_logistic(X, y, n_classes)
    W = probe.weight
    return W, probe.b - probe.mean @ W
