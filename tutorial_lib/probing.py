"""Probing, from correlation to causation: activation datasets, linear probes, control tasks,
layer sweeps, and interventions / steering along a direction through TransformerLens hooks.

Shapes: `n` rows of a probe dataset (one per chosen token), `d` activation width (trailing dims of
the hook flattened), `C` classes, `S` steering strengths, `k` chosen output tokens.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float, Int
from torch import Tensor

from .progress import progress
from .validation import (
    TutorialInputError,
    expect_choice,
    expect_dtype,
    expect_ndim,
    expect_range,
    expect_shape,
    expect_tensor,
)

Positions = str | int | Tensor | None
Metric = Callable[[Tensor], Tensor | float]

__all__ = [
    "ProbeDataset",
    "LogisticProbe",
    "RidgeProbe",
    "DiffMeansProbe",
    "ProbeResult",
    "ControlResult",
    "SweepResult",
    "InterventionResult",
    "SteeringResult",
    "split_prompts",
    "make_dataset",
    "collect_activations",
    "train_logistic",
    "train_ridge",
    "diff_of_means",
    "logistic_probe",
    "diff_of_means_probe",
    "ridge_probe",
    "run_probe",
    "control_labels",
    "control_task",
    "layer_sweep",
    "project_out",
    "intervene",
    "random_direction_control",
    "steer",
    "is_monotonic",
    "valid_hook_names",
    "r2_score",
]


# ----------------------------------------------------------------------------------------------
# Datasets
# ----------------------------------------------------------------------------------------------


@dataclass
class ProbeDataset:
    """One row per probed token: activation, label, which prompt it came from, and the split.

    `labels` is [n] (int class ids or float scalars) or [n, k] (float targets for ridge).
    `train_idx` / `test_idx` index rows; whole prompts sit on one side of the split.
    """

    acts: Float[Tensor, "n d"]
    labels: Tensor
    prompt_ids: Int[Tensor, " n"]
    train_idx: Int[Tensor, " n_train"]
    test_idx: Int[Tensor, " n_test"]
    positions: Int[Tensor, " n"] | None = None
    token_ids: Int[Tensor, " n"] | None = None
    hook_name: str | None = None

    def __len__(self) -> int:
        return self.acts.shape[0]

    @property
    def X_train(self) -> Float[Tensor, "n_train d"]:
        return self.acts[self.train_idx]

    @property
    def X_test(self) -> Float[Tensor, "n_test d"]:
        return self.acts[self.test_idx]

    @property
    def y_train(self) -> Tensor:
        return self.labels[self.train_idx]

    @property
    def y_test(self) -> Tensor:
        return self.labels[self.test_idx]

    def with_acts(self, acts: Float[Tensor, "n d"]) -> ProbeDataset:
        """The same rows, labels and split with other activations (e.g. a direction projected out)."""
        expect_shape(acts, (len(self), None), "acts", "[n, d]")
        return ProbeDataset(
            acts,
            self.labels,
            self.prompt_ids,
            self.train_idx,
            self.test_idx,
            self.positions,
            self.token_ids,
            self.hook_name,
        )

    def with_labels(self, labels: Tensor) -> ProbeDataset:
        """The same rows and split with other labels (e.g. control-task labels)."""
        expect_tensor(labels, "labels")
        if labels.shape[0] != len(self):
            raise TutorialInputError(
                f"labels must have {len(self)} rows (one per activation), got {tuple(labels.shape)}."
            )
        return ProbeDataset(
            self.acts,
            labels,
            self.prompt_ids,
            self.train_idx,
            self.test_idx,
            self.positions,
            self.token_ids,
            self.hook_name,
        )


def split_prompts(
    n_prompts: int, test_frac: float = 0.25, seed: int = 0
) -> tuple[Int[Tensor, " a"], Int[Tensor, " b"]]:
    """Seeded split of prompt indices 0..n_prompts-1 into (train, test), both sorted, both non-empty."""
    if not isinstance(n_prompts, int) or n_prompts < 2:
        raise TutorialInputError(f"need at least 2 prompts to split into train and test, got {n_prompts!r}.")
    expect_range(test_frac, "test_frac", 0.0, 1.0)
    n_test = min(max(1, round(test_frac * n_prompts)), n_prompts - 1)
    perm = torch.randperm(n_prompts, generator=torch.Generator().manual_seed(seed))
    return perm[n_test:].sort().values, perm[:n_test].sort().values


def make_dataset(
    acts: Float[Tensor, "n d"],
    labels: Tensor,
    prompt_ids: Int[Tensor, " n"] | None = None,
    test_frac: float = 0.25,
    seed: int = 0,
    token_ids: Int[Tensor, " n"] | None = None,
    positions: Int[Tensor, " n"] | None = None,
    hook_name: str | None = None,
) -> ProbeDataset:
    """A ProbeDataset from raw activations; rows sharing a prompt id stay on one side of the split.

    Without prompt_ids every row is its own prompt (a plain seeded row split).
    """
    expect_ndim(acts, 2, "acts", "[n, d]")
    expect_dtype(acts, "float", "acts")
    n = acts.shape[0]
    _check_labels(labels, n)
    if prompt_ids is None:
        prompt_ids = torch.arange(n, device=acts.device)
    expect_shape(prompt_ids, (n,), "prompt_ids", "[n]")
    expect_dtype(prompt_ids, "int", "prompt_ids")
    for name, t in (("token_ids", token_ids), ("positions", positions)):
        if t is not None:
            expect_shape(t, (n,), name, "[n]")
    prompt_ids = prompt_ids.to(acts.device)
    token_ids = None if token_ids is None else token_ids.to(acts.device)
    positions = None if positions is None else positions.to(acts.device)
    uniq, inverse = torch.unique(prompt_ids, return_inverse=True)
    train_p, test_p = split_prompts(len(uniq), test_frac, seed)
    is_test = torch.zeros(len(uniq), dtype=torch.bool)
    is_test[test_p] = True
    row_test = is_test.to(acts.device)[inverse]
    rows = torch.arange(n, device=acts.device)
    return ProbeDataset(
        acts, labels.to(acts.device), prompt_ids, rows[~row_test], rows[row_test], positions, token_ids, hook_name
    )


def _check_labels(labels: object, n: int) -> Tensor:
    labels = expect_tensor(labels, "labels")
    if labels.ndim not in (1, 2) or labels.shape[0] != n:
        raise TutorialInputError(
            f"labels must have shape ({n},) or ({n}, k): one label per activation row; got {tuple(labels.shape)}."
        )
    if labels.dtype == torch.bool:
        raise TutorialInputError("labels must be int class ids or float targets, got a bool tensor; use labels.long().")
    return labels


def valid_hook_names(model) -> list[str]:
    """Every hook name `run_with_cache` reports for this model (legacy names included)."""
    tokens = torch.zeros(1, 1, dtype=torch.long, device=_model_device(model))
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens)
    return list(cache.keys())


def _model_device(model) -> torch.device:
    return next(model.parameters()).device


def _check_hook(model, hook_name: str) -> str:
    if not isinstance(hook_name, str) or model.get_hook_point(hook_name) is None:
        names = valid_hook_names(model)
        compact = sorted({re.sub(r"^blocks\.\d+\.", "blocks.{l}.", n) for n in names})
        legacy = [n for n in compact if "hook_" in n.split(".")[-1] and "._" not in n]
        close = difflib.get_close_matches(str(hook_name), names, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise TutorialInputError(
            f"unknown hook name {hook_name!r}.{hint} Valid names (l = 0..{model.cfg.n_layers - 1}): "
            + ", ".join(legacy)
        )
    if hook_name.endswith(("hook_pattern", "hook_attn_scores")):
        raise TutorialInputError(
            f"{hook_name!r} is [batch, head, q, k]: probes need [batch, pos, ...] activations; "
            "use e.g. blocks.{l}.attn.hook_z or a residual hook."
        )
    return hook_name


def _check_tokens(tokens: object, model=None) -> Tensor:
    tokens = expect_ndim(tokens, 2, "tokens", "[batch, pos]")
    expect_dtype(tokens, "int", "tokens")
    if model is not None and tokens.numel() and (tokens.min() < 0 or tokens.max() >= model.cfg.d_vocab):
        raise TutorialInputError(
            f"tokens must lie in [0, {model.cfg.d_vocab - 1}] (d_vocab), "
            f"got values in [{int(tokens.min())}, {int(tokens.max())}]."
        )
    return tokens


def _position_mask(positions: Positions, batch: int, seq: int, device) -> Bool[Tensor, "batch pos"]:
    """Turn "all" / an int / a [batch] index tensor / a [batch, pos] bool mask into a [batch, pos] mask."""
    if positions is None or (isinstance(positions, str) and positions == "all"):
        return torch.ones(batch, seq, dtype=torch.bool, device=device)
    if isinstance(positions, str):
        raise TutorialInputError(
            f'positions must be "all", an int, a [batch] int tensor or a [batch, pos] bool mask; got {positions!r}.'
        )
    if isinstance(positions, int):
        positions = torch.full((batch,), positions, dtype=torch.long)
    positions = expect_tensor(positions, "positions").to(device)
    if positions.dtype == torch.bool:
        expect_shape(positions, (batch, seq), "positions (a bool mask)", "[batch, pos]")
        return positions
    expect_dtype(positions, "int", "positions")
    expect_shape(positions, (batch,), "positions (one index per prompt)", "[batch]")
    if positions.numel() and (positions.min() < -seq or positions.max() >= seq):
        raise TutorialInputError(
            f"positions must lie in [-{seq}, {seq - 1}] for prompts of length {seq}, "
            f"got values in [{int(positions.min())}, {int(positions.max())}]."
        )
    mask = torch.zeros(batch, seq, dtype=torch.bool, device=device)
    mask[torch.arange(batch, device=device), positions % seq] = True
    return mask


def _labels_at(labels: Tensor, mask: Bool[Tensor, "batch pos"]) -> Tensor:
    """Labels per chosen token: [batch] labels repeat over a prompt's positions, [batch, pos] are indexed."""
    batch, seq = mask.shape
    labels = expect_tensor(labels, "labels").to(mask.device)
    if labels.shape == (batch, seq):
        return labels[mask]
    if labels.shape == (batch,):
        return labels[:, None].expand(batch, seq)[mask]
    raise TutorialInputError(
        f"labels must have shape ({batch},) (one per prompt) or ({batch}, {seq}) (one per token), got {tuple(labels.shape)}."
    )


def _rows_from_act(act: Tensor, mask: Bool[Tensor, "batch pos"]) -> Float[Tensor, "n d"]:
    """[batch, pos, ...] activation -> [n, d] rows at the masked positions (trailing dims flattened)."""
    if act.ndim < 3 or act.shape[:2] != mask.shape:
        raise TutorialInputError(
            f"the hook's activation must be [batch, pos, ...] with batch, pos = {tuple(mask.shape)}, "
            f"got {tuple(act.shape)}."
        )
    return act.reshape(*act.shape[:2], -1)[mask].float()


def _dataset_from_cache(act, tokens, labels, mask, test_frac, seed, hook_name) -> ProbeDataset:
    batch, seq = mask.shape
    prompt_grid = torch.arange(batch, device=mask.device)[:, None].expand(batch, seq)
    pos_grid = torch.arange(seq, device=mask.device)[None, :].expand(batch, seq)
    return make_dataset(
        _rows_from_act(act, mask),
        _labels_at(labels, mask),
        prompt_grid[mask],
        test_frac,
        seed,
        token_ids=tokens.to(mask.device)[mask],
        positions=pos_grid[mask],
        hook_name=hook_name,
    )


@torch.no_grad()
def collect_activations(
    model,
    tokens: Int[Tensor, "batch pos"],
    labels: Tensor,
    hook_name: str,
    positions: Positions = "all",
    test_frac: float = 0.25,
    seed: int = 0,
) -> ProbeDataset:
    """Run the model once, keep `hook_name` at the chosen positions, and split by prompt.

    labels: [batch] (one per prompt, repeated over its chosen positions) or [batch, pos] (per token).
    positions: "all", an int (same position in every prompt, may be negative), a [batch] int tensor,
    or a [batch, pos] bool mask.
    """
    tokens = _check_tokens(tokens, model)
    _check_hook(model, hook_name)
    tokens = tokens.to(_model_device(model))
    mask = _position_mask(positions, *tokens.shape, tokens.device)
    _labels_at(labels, mask)  # validate before the forward pass
    _, cache = model.run_with_cache(tokens, names_filter=[hook_name])
    return _dataset_from_cache(cache[hook_name], tokens, labels, mask, test_frac, seed, hook_name)


# ----------------------------------------------------------------------------------------------
# Probes
# ----------------------------------------------------------------------------------------------


@dataclass
class LogisticProbe:
    """Multi-class logistic regression on standardised inputs: logits = ((x - mean) / std) @ W + b."""

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
    """Linear map y = X @ W + b fitted in closed form with an L2 penalty alpha * ||W||^2."""

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
    """Nearest class mean along difference-of-means directions (binary: threshold at the midpoint)."""

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
    """A fitted probe with its train and test score (accuracy, or R^2 for ridge)."""

    probe: LogisticProbe | RidgeProbe | DiffMeansProbe
    train_score: float
    test_score: float

    @property
    def accuracy(self) -> float:
        return self.test_score


def r2_score(pred: Tensor, y: Tensor) -> float:
    """Coefficient of determination, pooled over outputs when y is [n, k]."""
    y = y.float()
    ss_res = (y - pred).pow(2).sum()
    ss_tot = (y - y.mean(0)).pow(2).sum()
    return (1 - ss_res / ss_tot.clamp_min(1e-12)).item()


def _check_xy(X: object, y: object, kind: str) -> tuple[Tensor, Tensor]:
    X = expect_ndim(X, 2, "X", "[n, d]")
    expect_dtype(X, "float", "X")
    y = _check_labels(y, X.shape[0])
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
    """Full-batch L-BFGS on mean cross-entropy + l2/2 * ||W||^2 (inputs standardised first)."""
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
    """Closed-form ridge on centred data: W = (Xc^T Xc + alpha n I)^-1 Xc^T yc, b = mean(y) - mean(X) W."""
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
    """mean(X[y == positive]) - mean(X[y == negative]) (negative=None: all other rows); unit length if normalize."""
    X = expect_ndim(X, 2, "X", "[n, d]")
    y = _check_labels(y, X.shape[0]).to(X.device)
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
    X, y = _check_xy(X, y, "class")
    classes = torch.unique(y)
    if len(classes) < 2:
        raise TutorialInputError(f"the training split has only one class ({classes.tolist()}); need at least 2.")
    means = torch.stack([X[y == c].float().mean(0) for c in classes])
    return DiffMeansProbe(means, classes)


def _check_ds(ds: object) -> ProbeDataset:
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
    """Fit a logistic probe on the train split; score accuracy on train and test."""
    ds = _check_ds(ds)
    _check_xy(ds.acts, ds.labels, "class")
    n_classes = max(2, int(ds.labels.max()) + 1)
    probe = train_logistic(ds.X_train, ds.y_train, n_classes, l2, max_iter)
    return ProbeResult(probe, probe.score(ds.X_train, ds.y_train), probe.score(ds.X_test, ds.y_test))


def diff_of_means_probe(ds: ProbeDataset) -> ProbeResult:
    """Class means on the train split; classify by the nearest mean (binary: midpoint along their difference)."""
    ds = _check_ds(ds)
    probe = _fit_diff_means(ds.X_train, ds.y_train)
    return ProbeResult(probe, probe.score(ds.X_train, ds.y_train), probe.score(ds.X_test, ds.y_test))


def ridge_probe(ds: ProbeDataset, alpha: float = 1e-3) -> ProbeResult:
    """Closed-form ridge regression on the train split; scores are R^2."""
    ds = _check_ds(ds)
    probe = train_ridge(ds.X_train, ds.y_train, alpha)
    return ProbeResult(probe, probe.score(ds.X_train, ds.y_train), probe.score(ds.X_test, ds.y_test))


PROBES = {"logistic": logistic_probe, "diff_of_means": diff_of_means_probe, "ridge": ridge_probe}


def run_probe(ds: ProbeDataset, probe: str = "logistic", **kwargs) -> ProbeResult:
    """Dispatch by name: "logistic", "diff_of_means" or "ridge"."""
    expect_choice(probe, PROBES, "probe")
    return PROBES[probe](ds, **kwargs)


# ----------------------------------------------------------------------------------------------
# Control tasks (Hewitt and Liang 2019)
# ----------------------------------------------------------------------------------------------


def control_labels(token_ids: Int[Tensor, " n"], labels: Tensor, seed: int = 0) -> Tensor:
    """Give every token type one fixed random label, drawn from the empirical label distribution.

    A probe that can read token identity scores well on these labels; one that reads the property
    (and not the token) does not.
    """
    token_ids = expect_ndim(token_ids, 1, "token_ids", "[n]")
    expect_dtype(token_ids, "int", "token_ids")
    labels = _check_labels(labels, token_ids.shape[0])
    types, inverse = torch.unique(token_ids, return_inverse=True)
    g = torch.Generator().manual_seed(seed)
    pick = torch.randint(0, labels.shape[0], (len(types),), generator=g).to(labels.device)
    return labels[pick][inverse.to(labels.device)]


@dataclass
class ControlResult:
    """Real-task and control-task test scores; selectivity = real - control.

    control_chance: the majority-class rate of the control labels on the test split (what a probe
    that reads nothing scores; NaN for regression).
    """

    real: float
    control: float
    control_chance: float
    real_result: ProbeResult = field(repr=False)
    control_result: ProbeResult = field(repr=False)

    @property
    def selectivity(self) -> float:
        return self.real - self.control


def control_task(
    ds: ProbeDataset, probe: str = "logistic", seed: int = 0, control_ids: Int[Tensor, " n"] | None = None, **kwargs
) -> ControlResult:
    """Train the same probe on the real labels and on control labels keyed by token identity."""
    ds = _check_ds(ds)
    ids = ds.token_ids if control_ids is None else control_ids
    if ids is None:
        raise TutorialInputError(
            "control_task needs token identities: pass control_ids=[n] or build the dataset "
            "with collect_activations / make_dataset(token_ids=...)."
        )
    expect_shape(ids, (len(ds),), "control_ids", "[n]")
    real = run_probe(ds, probe, **kwargs)
    ctrl_labels = control_labels(ids.to(ds.labels.device), ds.labels, seed)
    ctrl = run_probe(ds.with_labels(ctrl_labels), probe, **kwargs)
    test = ctrl_labels[ds.test_idx]
    chance = float("nan") if probe == "ridge" else test.unique(return_counts=True)[1].max().item() / len(test)
    return ControlResult(real.test_score, ctrl.test_score, chance, real, ctrl)


# ----------------------------------------------------------------------------------------------
# Layer sweep
# ----------------------------------------------------------------------------------------------


@dataclass
class SweepResult:
    """Test score per layer ([L]) or per layer and position ([L, pos], NaN where no data)."""

    layers: list[int]
    hook_names: list[str]
    scores: Tensor
    control_scores: Tensor | None = None

    @property
    def selectivity(self) -> Tensor | None:
        return None if self.control_scores is None else self.scores - self.control_scores

    @property
    def best_layer(self) -> int:
        s = self.scores if self.scores.ndim == 1 else self.scores.nan_to_num(-float("inf")).amax(-1)
        return self.layers[int(s.argmax())]


def _hook_for(hook: str, layer: int) -> str:
    if "{" in hook:
        return hook.format(layer=layer, l=layer)
    from transformer_lens.utilities import get_act_name

    return get_act_name(hook, layer)


@torch.no_grad()
def layer_sweep(
    model,
    tokens: Int[Tensor, "batch pos"],
    labels: Tensor,
    hook: str = "resid_post",
    layers: Sequence[int] | None = None,
    positions: Positions = "all",
    probe: str = "logistic",
    per_position: bool = False,
    control: bool = False,
    test_frac: float = 0.25,
    seed: int = 0,
    **probe_kwargs,
) -> SweepResult:
    """Probe every layer from one `run_with_cache` (names_filter keeps only the hooks swept).

    hook: a TransformerLens short name for get_act_name ("resid_post", "resid_pre", "mlp_out", "z")
    or a template like "blocks.{layer}.hook_resid_mid". per_position trains one probe per position.
    control adds Hewitt-Liang control scores (token-identity labels) per layer.
    """
    tokens = _check_tokens(tokens, model).to(_model_device(model))
    layers = list(range(model.cfg.n_layers)) if layers is None else list(layers)
    if not layers or any(not isinstance(layer, int) or not 0 <= layer < model.cfg.n_layers for layer in layers):
        raise TutorialInputError(f"layers must be ints in [0, {model.cfg.n_layers - 1}], got {layers!r}.")
    expect_choice(probe, PROBES, "probe")
    names = [_check_hook(model, _hook_for(hook, layer)) for layer in layers]
    mask = _position_mask(positions, *tokens.shape, tokens.device)
    _labels_at(labels, mask)  # validate before the forward pass
    _, cache = model.run_with_cache(tokens, names_filter=names)

    def score(ds: ProbeDataset) -> tuple[float, float]:
        if not control:
            return run_probe(ds, probe, **probe_kwargs).test_score, float("nan")
        res = control_task(ds, probe, seed, **probe_kwargs)
        return res.real, res.control

    seq = tokens.shape[1]
    shape = (len(layers), seq) if per_position else (len(layers),)
    scores = torch.full(shape, float("nan"))
    ctrl = torch.full(shape, float("nan"))
    for i, name in enumerate(progress(names, desc="layer sweep")):
        if not per_position:
            scores[i], ctrl[i] = score(_dataset_from_cache(cache[name], tokens, labels, mask, test_frac, seed, name))
            continue
        for p in range(seq):
            m = mask.clone()
            m[:, torch.arange(seq, device=m.device) != p] = False
            if m.sum() < 4:
                continue
            ds = _dataset_from_cache(cache[name], tokens, labels, m, test_frac, seed, name)
            if probe != "ridge" and len(torch.unique(ds.y_train)) < 2:
                continue  # one class only at this position: nothing to probe
            scores[i, p], ctrl[i, p] = score(ds)
    return SweepResult(layers, names, scores, ctrl if control else None)


# ----------------------------------------------------------------------------------------------
# Interventions and steering
# ----------------------------------------------------------------------------------------------


def project_out(x: Float[Tensor, "... d"], direction: Float[Tensor, "*k d"]) -> Float[Tensor, "... d"]:
    """Remove the component of x along `direction` [d] (x - (x . u) u, u unit), or along the span of k rows [k, d]."""
    x = expect_tensor(x, "x")
    direction = expect_tensor(direction, "direction")
    if direction.ndim not in (1, 2):
        raise TutorialInputError(
            f"direction must be [d] or a stack of directions [k, d], got shape {tuple(direction.shape)}."
        )
    if x.shape[-1] != direction.shape[-1]:
        raise TutorialInputError(f"direction has {direction.shape[-1]} entries but x's last dim is {x.shape[-1]}.")
    if direction.ndim == 1:
        u = direction.to(x.device, x.dtype)
        u = u / u.norm().clamp_min(1e-12)
        return x - (x @ u)[..., None] * u
    U, S, _ = torch.linalg.svd(direction.to(x.device, torch.float32).T, full_matrices=False)
    Q = U[:, S > 1e-6 * S.max()].to(x.dtype)  # orthonormal basis of the span, [d, rank]
    return x - (x @ Q) @ Q.T


def _direction_hook(direction: Tensor, mode: str, alpha: float, positions: Positions):
    """A TransformerLens hook fn applying the edit to [batch, pos, ...] activations at chosen positions."""

    def fn(act: Tensor, hook) -> Tensor:
        if act.ndim < 3:
            raise TutorialInputError(f"hook {hook.name} gives shape {tuple(act.shape)}; need [batch, pos, ...].")
        flat = act.reshape(*act.shape[:2], -1)
        if flat.shape[-1] != direction.shape[-1]:
            raise TutorialInputError(
                f"direction has {direction.shape[-1]} entries but the activation at {hook.name} "
                f"has {flat.shape[-1]} per position (shape {tuple(act.shape)})."
            )
        d = direction.to(act.device, act.dtype)
        edited = project_out(flat, d) if mode == "project_out" else flat + alpha * d
        mask = _position_mask(positions, *act.shape[:2], act.device)
        return torch.where(mask[..., None], edited, flat).reshape(act.shape)

    return fn


@dataclass
class InterventionResult:
    """Behaviour metric before and after the edit; change = patched - clean."""

    clean: float
    patched: float

    @property
    def change(self) -> float:
        return self.patched - self.clean


def _scalar(value, what: str) -> float:
    if isinstance(value, Tensor):
        if value.numel() != 1:
            raise TutorialInputError(f"{what} must return a scalar, got a tensor of shape {tuple(value.shape)}.")
        return value.item()
    return float(value)


def _check_intervention(model, tokens, hook_name, direction, metric, mode):
    tokens = _check_tokens(tokens, model).to(_model_device(model))
    _check_hook(model, hook_name)
    expect_choice(mode, ("project_out", "add"), "mode")
    if mode == "add" or expect_tensor(direction, "direction").ndim != 2:
        expect_ndim(direction, 1, "direction", "[d] (trailing dims of the hook flattened)")
    expect_dtype(direction, "float", "direction")
    if not callable(metric):
        raise TutorialInputError(f"metric must be a callable logits -> scalar, got {type(metric).__name__}.")
    return tokens


@torch.no_grad()
def intervene(
    model,
    tokens: Int[Tensor, "batch pos"],
    hook_name: str,
    direction: Float[Tensor, " d"],
    metric: Metric,
    mode: str = "project_out",
    alpha: float = 1.0,
    positions: Positions = "all",
    clean: float | None = None,
) -> InterventionResult:
    """Project `direction` out of `hook_name` (or add alpha * direction) and measure metric(logits).

    `direction` is used as given for "add" (its norm matters) and normalised for "project_out", which
    also takes a stack [k, d] and removes its whole span. Pass `clean` to skip the clean forward pass when it is already known.
    """
    tokens = _check_intervention(model, tokens, hook_name, direction, metric, mode)
    if clean is None:
        clean = _scalar(metric(model(tokens)), "metric")
    fn = _direction_hook(direction, mode, alpha, positions)
    patched = _scalar(metric(model.run_with_hooks(tokens, fwd_hooks=[(hook_name, fn)])), "metric")
    return InterventionResult(clean, patched)


@torch.no_grad()
def random_direction_control(
    model,
    tokens: Int[Tensor, "batch pos"],
    hook_name: str,
    direction: Float[Tensor, " d"],
    metric: Metric,
    mode: str = "project_out",
    alpha: float = 1.0,
    positions: Positions = "all",
    n_samples: int = 8,
    seed: int = 0,
) -> Float[Tensor, " n_samples"]:
    """Metric changes from the same intervention along random directions with the norm of `direction`
    (for a [k, d] stack: random rank-k subspaces)."""
    tokens = _check_intervention(model, tokens, hook_name, direction, metric, mode)
    if not isinstance(n_samples, int) or n_samples < 1:
        raise TutorialInputError(f"n_samples must be a positive int, got {n_samples!r}.")
    g = torch.Generator().manual_seed(seed)
    rand = torch.randn(n_samples, *direction.shape, generator=g)  # [n, d] or [n, k, d]: a random subspace of rank k
    rand = rand / rand.norm(dim=-1, keepdim=True) * direction.norm(dim=-1, keepdim=True).cpu()
    clean = _scalar(metric(model(tokens)), "metric")
    changes = [
        intervene(model, tokens, hook_name, r.to(direction), metric, mode, alpha, positions, clean).change for r in rand
    ]
    return torch.tensor(changes)


@dataclass
class SteeringResult:
    """Per strength: probabilities of the chosen tokens at the final position and the metric."""

    strengths: Float[Tensor, " S"]
    probs: Float[Tensor, "S batch k"]
    metric: Float[Tensor, " S"] | None

    @property
    def mean_probs(self) -> Float[Tensor, "S k"]:
        return self.probs.mean(1)


@torch.no_grad()
def steer(
    model,
    tokens: Int[Tensor, "batch pos"],
    hook_name: str,
    vector: Float[Tensor, " d"],
    strengths: Sequence[float] | Tensor,
    target_tokens: Sequence[int] | Tensor,
    metric: Metric | None = None,
    positions: Positions = "all",
    final_positions: Int[Tensor, " batch"] | None = None,
) -> SteeringResult:
    """Add strength * vector at `hook_name` for each strength; read the final-position distribution.

    The vector is used as given (e.g. an unnormalised difference of means), so strength 1 moves an
    activation by the full mean difference. final_positions: [batch] index of each prompt's last token
    (default -1, for unpadded prompts).
    """
    tokens = _check_intervention(model, tokens, hook_name, vector, metric or (lambda x: 0.0), "add")
    strengths = torch.as_tensor(strengths, dtype=torch.float32).flatten()
    if strengths.numel() == 0:
        raise TutorialInputError("strengths must hold at least one value.")
    targets = torch.as_tensor(target_tokens, dtype=torch.long, device=tokens.device).flatten()
    if targets.numel() == 0 or targets.min() < 0 or targets.max() >= model.cfg.d_vocab:
        raise TutorialInputError(
            f"target_tokens must be token ids in [0, {model.cfg.d_vocab - 1}], got {targets.tolist()}."
        )
    batch = tokens.shape[0]
    last = torch.full((batch,), -1, dtype=torch.long) if final_positions is None else final_positions
    last = expect_shape(last, (batch,), "final_positions", "[batch]").to(tokens.device)
    probs, values = [], []
    for s in progress(strengths.tolist(), desc="steering"):
        fn = _direction_hook(vector, "add", s, positions)
        logits = model.run_with_hooks(tokens, fwd_hooks=[(hook_name, fn)])
        final = logits[torch.arange(batch, device=logits.device), last].float().softmax(-1)
        probs.append(final[:, targets].cpu())
        if metric is not None:
            values.append(_scalar(metric(logits), "metric"))
    return SteeringResult(strengths, torch.stack(probs), torch.tensor(values) if metric is not None else None)


def is_monotonic(values: Sequence[float] | Tensor, increasing: bool = True, tol: float = 0.0) -> bool:
    """True when consecutive values never move the wrong way by more than tol."""
    v = torch.as_tensor(values, dtype=torch.float64).flatten()
    steps = v.diff() if increasing else -v.diff()
    return bool((steps >= -tol).all())
