"""Checks for chapter 06, open problems as experiments: coverage, dictionary agreement, distance
from the data, direct versus total effects, subspace patching, rank agreement, compute equivalents."""

from __future__ import annotations

import math

import torch

from .. import open_problems as op
from .core import Mismatch, call_student, compare, exercise


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@exercise("06.1", "Fraction of a behaviour recovered by a circuit", reference=op.fraction_recovered)
def check_fraction_recovered(fn):
    for seed in range(3):
        g = _gen(seed)
        clean, ablated = torch.rand(5, generator=g) + 2.0, torch.rand(5, generator=g) - 1.0
        circuit = ablated + torch.rand(5, generator=g) * (clean - ablated)
        if seed == 1:  # losses: clean is the lowest, ablated the highest
            clean, ablated = -clean, -ablated
            circuit = -circuit
        got = call_student(fn, clean, circuit, ablated)
        compare(
            got,
            op.fraction_recovered(clean, circuit, ablated),
            "the fraction recovered",
            hint="(circuit - ablated) / (clean - ablated): measure from the ablated baseline, not from zero; "
            "the same formula works for losses, where every quantity changes sign.",
        )
    got = call_student(fn, 9.0, 9.0, 1.0)
    compare(
        got if not isinstance(got, torch.Tensor) else float(got),
        1.0,
        "a circuit that matches the clean model",
        hint="when circuit == clean the answer is 1.",
    )


@exercise("06.2", "Best-match cosine between two dictionaries", reference=op.max_cosines)
def check_max_cosines(fn):
    for seed in range(3):
        g = _gen(seed)
        W_a, W_b = torch.randn(7, 5, generator=g) * 3, torch.randn(11, 5, generator=g) * 0.5
        W_b[:3] = W_a[[2, 0, 5]] * 2.0  # three shared directions at another scale
        got = call_student(fn, W_a, W_b)
        want = op.max_cosines(W_a, W_b)
        if isinstance(got, torch.Tensor) and got.shape == (11,):
            raise Mismatch(
                "you returned one value per row of W_b: take the maximum over W_b's rows (dim=-1), "
                "one value per row of W_a."
            )
        compare(
            got,
            want,
            "the best cosine of each row of W_a",
            hint="normalise each row to unit length before the matrix product W_a @ W_b.T, then take the max "
            "over the last dimension (the max, not the mean, and not the absolute value).",
        )


@exercise("06.5", "Mahalanobis distance", reference=op.mahalanobis)
def check_mahalanobis(fn):
    for seed in range(3):
        g = _gen(seed)
        A = torch.randn(4, 4, generator=g)
        data = torch.randn(200, 4, generator=g) @ A + torch.randn(4, generator=g)
        mean, cov = op.gaussian_stats(data)
        x = torch.randn(6, 4, generator=g) * 2
        got = call_student(fn, x, mean, cov)
        want = op.mahalanobis(x, mean, cov)
        compare(
            got,
            want,
            "the Mahalanobis distance per row",
            atol=1e-3,
            rtol=1e-3,
            hint="sqrt((x - mean) @ inverse(cov) @ (x - mean)) row by row: solve with torch.linalg.solve "
            "(or use the inverse), subtract the mean first, and take the square root at the end.",
        )


@exercise("06.3", "The direct effect of a head", reference=op.direct_effect)
def check_direct_effect(fn):
    for seed in range(3):
        g = _gen(seed)
        delta, direction = torch.randn(5, 8, generator=g) + 0.7, torch.randn(5, 8, generator=g)
        scale = torch.rand(5, 1, generator=g) + 0.5
        got = call_student(fn, delta, scale, direction)
        compare(
            got,
            op.direct_effect(delta, scale, direction),
            "the direct effect per prompt",
            hint="LayerNorm subtracts the mean over d_model: centre delta_out first, then divide by the frozen "
            "scale and take the dot product with the direction (sum over d_model).",
        )


@exercise("06.4", "Self-repair fraction", reference=op.self_repair_fraction)
def check_self_repair_fraction(fn):
    for seed in range(3):
        g = _gen(seed)
        direct = torch.rand(2, 4, generator=g) + 0.5
        total = direct * (torch.rand(2, 4, generator=g) * 1.5 - 0.2)
        compare(
            call_student(fn, direct, total),
            op.self_repair_fraction(direct, total),
            "the self-repair fraction",
            hint="(direct - total) / direct: the share of the direct effect that the rest of the model makes up; "
            "0 when total == direct.",
        )


@exercise("06.6", "Patch a subspace", reference=op.patch_subspace)
def check_patch_subspace(fn):
    for seed in range(3):
        g = _gen(seed)
        h, src = torch.randn(4, 6, generator=g), torch.randn(4, 6, generator=g)
        basis = torch.randn(2 if seed else 1, 6, generator=g) * 3  # not orthonormal
        got = call_student(fn, h, src, basis)
        compare(
            got,
            op.patch_subspace(h, src, basis),
            "the patched activations",
            atol=1e-4,
            hint="orthonormalise the basis first (torch.linalg.qr(basis.T)), then add the projection of "
            "(h_source - h) onto the subspace to h; the part of h outside the subspace must not change.",
        )


@exercise("06.8", "Spearman rank correlation", reference=op.spearman)
def check_spearman(fn):
    for seed in range(3):
        g = _gen(seed)
        a = torch.randn(8, generator=g)
        b = a.exp() if seed == 0 else torch.randn(8, generator=g) * 10
        compare(
            call_student(fn, a, b),
            op.spearman(a, b),
            "the rank correlation",
            atol=1e-4,
            hint="correlate the ranks, not the values: rank each tensor (argsort of argsort), centre the ranks "
            "and divide their dot product by the product of their norms.",
        )


@exercise("06.7", "Steps to reach a loss", reference=op.steps_to_reach)
def check_steps_to_reach(fn):
    steps = [0, 10, 20, 40, 80]
    losses = [5.0, 3.0, 2.5, 2.2, 2.0]
    for target in (4.0, 2.5, 2.1):
        got = call_student(fn, steps, losses, target)
        compare(
            got,
            float(op.steps_to_reach(steps, losses, target)),
            f"the step at which the loss reaches {target}",
            atol=1e-4,
            hint="find the first logged loss <= target and interpolate linearly between it and the "
            "step before: step_a + (loss_a - target) / (loss_a - loss_b) * (step_b - step_a).",
        )
    got = call_student(fn, steps, losses, 1.0)
    try:
        never = float(got) == math.inf
    except (TypeError, ValueError, RuntimeError):
        never = False
    if not never:
        raise Mismatch(
            "a curve that never reaches the target should give math.inf (it takes more steps than were run)."
        )
