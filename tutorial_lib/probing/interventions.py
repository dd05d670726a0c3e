"""Chapter 03's interventions: project a direction out of an activation or add it (steering), through a
TransformerLens hook, and compare with random directions.

Shapes: `d` activation width (trailing dims of the hook flattened), `S` steering strengths, `k` chosen
output tokens.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor

from ..progress import progress
from ..validation import (
    TutorialInputError,
    expect_choice,
    expect_dtype,
    expect_finite,
    expect_model,
    expect_ndim,
    expect_number,
    expect_scalar,
    expect_shape,
    expect_tensor,
    expect_tokens,
    model_device,
)
from .datasets import Positions, check_hook, position_mask
from .probes import diff_of_means

Metric = Callable[[Tensor], Tensor | float]

__all__ = [
    "InterventionResult",
    "Metric",
    "SteeringResult",
    "direction_hook",
    "intervene",
    "is_monotonic",
    "project_out",
    "random_direction_control",
    "steer",
    "steered_logits",
    "steering_vector",
]


def project_out(x: Float[Tensor, "... d"], direction: Float[Tensor, "*k d"]) -> Float[Tensor, "... d"]:
    """Remove the component of x along `direction` [d] (x - (x . u) u, u unit), or along the span of k rows [k, d].

    Chapter 03: probing. Exercise 03.4 (the reference).
    """
    x = expect_tensor(x, "x")
    direction = expect_tensor(direction, "direction")
    if direction.ndim not in (1, 2):
        raise TutorialInputError(
            f"direction must be [d] or a stack of directions [k, d], got shape {tuple(direction.shape)}."
        )
    if x.shape[-1] != direction.shape[-1]:
        raise TutorialInputError(f"direction has {direction.shape[-1]} entries but x's last dim is {x.shape[-1]}.")
    if not bool(expect_finite(direction, "direction").any()):
        raise TutorialInputError("direction is all zeros: it points nowhere, so there is nothing to project out.")
    if direction.ndim == 1:
        u = direction.to(x.device, x.dtype)
        u = u / u.norm().clamp_min(1e-12)
        return x - (x @ u)[..., None] * u
    U, S, _ = torch.linalg.svd(direction.to(x.device, torch.float32).T, full_matrices=False)
    Q = U[:, S > 1e-6 * S.max()].to(x.dtype)  # orthonormal basis of the span, [d, rank]
    return x - (x @ Q) @ Q.T


def direction_hook(direction: Tensor, mode: str, alpha: float, positions: Positions):
    """A TransformerLens hook fn applying the edit to [batch, pos, ...] activations at chosen positions.

    Chapter 03: probing.
    """
    expect_choice(mode, ("project_out", "add"), "mode")
    if mode == "add" or expect_tensor(direction, "direction").ndim != 2:
        expect_ndim(direction, 1, "direction", "[d] (trailing dims of the hook flattened)")
    expect_finite(direction, "direction")
    expect_number(alpha, "alpha")

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
        mask = position_mask(positions, act.shape[0], act.shape[1], act.device)
        return torch.where(mask[..., None], edited, flat).reshape(act.shape)

    return fn


@dataclass
class InterventionResult:
    """Behaviour metric before and after the edit; change = patched - clean. Chapter 03: probing."""

    clean: float
    patched: float

    @property
    def change(self) -> float:
        return self.patched - self.clean


def _scalar(value, what: str) -> float:
    """One number from what `what` returned: Tensor.item() of a one-element tensor, float() of a Python number.

    Chapter 03: probing.
    """
    checked = expect_scalar(value, what)
    return checked.item() if isinstance(value, Tensor) else float(value)  # pyright: ignore[reportArgumentType]


def _check_intervention(model, tokens, hook_name, direction, metric, mode):
    """The checked tokens (on the model's device) of an intervention, and its other arguments. Chapter 03: probing."""
    tokens = expect_tokens(tokens, "tokens", model).to(model_device(model))
    check_hook(model, hook_name)
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

    Chapter 03: probing.
    """
    tokens = _check_intervention(model, tokens, hook_name, direction, metric, mode)
    if clean is None:
        clean = _scalar(metric(model(tokens)), "metric")
    fn = direction_hook(direction, mode, alpha, positions)
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
    (for a [k, d] stack: random rank-k subspaces).

    Chapter 03: probing.
    """
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
    """Per strength: probabilities of the chosen tokens at the final position and the metric. Chapter 03: probing."""

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

    Chapter 03: probing.
    """
    tokens = _check_intervention(model, tokens, hook_name, vector, metric or (lambda _logits: 0.0), "add")
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
        fn = direction_hook(vector, "add", s, positions)
        logits = model.run_with_hooks(tokens, fwd_hooks=[(hook_name, fn)])
        final = logits[torch.arange(batch, device=logits.device), last].float().softmax(-1)
        probs.append(final[:, targets].cpu())
        if metric is not None:
            values.append(_scalar(metric(logits), "metric"))
    return SteeringResult(strengths, torch.stack(probs), torch.tensor(values) if metric is not None else None)


def is_monotonic(values: Sequence[float] | Tensor, increasing: bool = True, tol: float = 0.0) -> bool:
    """True when consecutive values never move the wrong way by more than tol. Chapter 03: probing."""
    v = expect_finite(torch.as_tensor(values, dtype=torch.float64), "values")
    if sum(size > 1 for size in v.shape) > 1:
        raise TutorialInputError(f"values must be one sequence of numbers, got shape {tuple(v.shape)}.")
    v = v.flatten()
    steps = v.diff() if increasing else -v.diff()
    return bool((steps >= -tol).all())


def steering_vector(X: Tensor, y: Tensor) -> Tensor:
    """mean(X[y == 1]) - mean(X[y == 0]), not normalised.

    Chapter 03: probing. Exercise 03.5 (the reference).
    """
    return diff_of_means(X, y, 1, 0, normalize=False)


def steered_logits(model, tokens: Tensor, hook_name: str, vector: Tensor, strength: float) -> Tensor:
    """Logits with strength * vector added to `hook_name` at every position.

    Chapter 03: probing. Exercise 03.6 (the reference).
    """
    fn = direction_hook(vector, "add", strength, "all")
    tokens = expect_tokens(tokens, "tokens", expect_model(model))
    return model.run_with_hooks(tokens, fwd_hooks=[(hook_name, fn)])


def depth0_close_probability(
    model, tokens: Int[Tensor, "batch pos"], depth: Tensor, hook_name: str, vector: Tensor, close_id: int
) -> float:
    """Mean P(`close_id`) at the depth-0 positions (BOS and the last position left out) with `vector`
    added at `hook_name` at every position: what Exercise 03.9 asks to push above 0.5.

    Chapter 03: probing (steering)."""
    tokens = expect_tokens(tokens, "tokens", expect_model(model))
    hook_name = check_hook(model, hook_name)
    depth = expect_shape(torch.as_tensor(depth), tuple(tokens.shape), "depth", "[batch, pos]")
    outside = depth == 0
    outside[:, 0] = outside[:, -1] = False
    with torch.no_grad():
        probs = steered_logits(model, tokens, hook_name, vector, 1.0).softmax(-1)[..., close_id]
    return probs[outside].mean().item()


def find_steering_vector(
    model, tokens: Int[Tensor, "batch pos"], can_close: Tensor, hook_name: str
) -> Float[Tensor, " d"]:
    """A vector that makes the model predict `)` where no bracket is open: 1.5 times the difference of the
    mean activations at `hook_name` with and without an open bracket (BOS left out).

    Exercise 03.9 (an open exercise: any vector with the measured property passes). Chapter 03: probing."""
    tokens = expect_tokens(tokens, "tokens", expect_model(model))
    hook_name = check_hook(model, hook_name)
    expect_shape(torch.as_tensor(can_close), tuple(tokens.shape), "can_close", "[batch, pos]")
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, names_filter=hook_name)
    act, labels = cache[hook_name][:, 1:], torch.as_tensor(can_close)[:, 1:].long()
    return 1.5 * steering_vector(act.reshape(-1, act.shape[-1]), labels.reshape(-1))
