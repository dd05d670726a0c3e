"""Checks for chapter 01, toy models of superposition: `from tutorial_lib.checks import superposition as checks`."""

from __future__ import annotations

import copy
import math
from typing import Any

import torch

from .. import superposition as sp
from .core import Mismatch, call_student, compare, exercise
from .guard import Mutable


def _rng_kept(fn):
    """Run fn under a fixed global seed, then restore the caller's RNG state (the notebook stays reproducible)."""
    state = torch.get_rng_state()
    try:
        torch.manual_seed(1234)
        return fn()
    finally:
        torch.set_rng_state(state)


def _random_weights(g: torch.Generator, n_inst: int, n_feat: int, n_hidden: int) -> torch.Tensor:
    return torch.randn(n_inst, n_feat, n_hidden, generator=g)


@exercise("01.1", "Sparse synthetic features", reference=sp.generate_batch)
def check_generate_batch(fn):
    n_batch, n_feat = 20000, 6
    for p in (torch.tensor([1.0, 0.5, 0.1]), torch.tensor([0.3, 0.03])):
        x = _rng_kept(lambda p=p: call_student(fn, n_batch, p, n_feat))
        if not isinstance(x, torch.Tensor) or tuple(x.shape) != (n_batch, len(p), n_feat):
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise Mismatch(
                f"expected a tensor of shape {(n_batch, len(p), n_feat)} [batch, instances, features], got {got}."
            )
        if not torch.isfinite(x).all() or x.min() < 0 or x.max() > 1:
            raise Mismatch(f"values must lie in [0, 1], got {x.min().item():.3g} to {x.max().item():.3g}.")
        on = x > 0
        rate = on.float().mean(dim=(0, 2))
        tol = 5 * torch.sqrt(p * (1 - p) / (n_batch * n_feat)) + 0.005
        for i in range(len(p)):
            if abs(rate[i] - p[i]) > tol[i]:
                hint = ""
                if abs(rate[i] - (1 - p[i])) <= tol[i]:
                    hint = " That is 1 - p: a feature is present when rand < p, not rand > p."
                raise Mismatch(
                    f"instance {i} has feature probability {p[i]:.3g}, but {rate[i]:.3g} of its entries are non-zero.{hint}"
                    " Broadcast p over [batch, instances, features] as p[:, None] (one probability per instance)."
                )
        values = x[on]
        if values.numel() and (values.var() < 1e-4):
            raise Mismatch(
                f"every present feature has the value {values[0].item():.3g}. Multiply the mask by "
                "independent uniform values in [0, 1] (torch.rand), not by a constant."
            )
        mean = values.mean().item()
        if abs(mean - 0.5) > 0.02:
            raise Mismatch(
                f"present features should be uniform in [0, 1] (mean 0.5), but their mean is {mean:.3g}. "
                "If you reused the draw that decided presence (values < p), draw the values separately."
            )
        i = int(torch.argmin((p - 0.3).abs()))  # co-occurrence of features 0 and 1 in a sparse instance
        both = (on[:, i, 0] & on[:, i, 1]).float().mean().item()
        if abs(both - p[i].item() ** 2) > 0.02:
            raise Mismatch(
                f"features 0 and 1 are present together in {both:.3g} of samples; independent features would give "
                f"p^2 = {p[i].item() ** 2:.3g}. Draw one random number per feature, not one per sample or instance."
            )


@exercise("01.2", "The toy model's forward pass", reference=sp.toy_model_forward)
def check_toy_model_forward(fn):
    for seed in range(3):
        g = torch.Generator().manual_seed(seed)
        n_inst, n_feat, n_hidden = 3 + seed, 5 + seed, 2 + seed
        W = _random_weights(g, n_inst, n_feat, n_hidden)
        b = 0.3 * torch.randn(n_inst, n_feat, generator=g)
        x = torch.rand(16, n_inst, n_feat, generator=g)
        got = call_student(fn, W, b, x)
        want = sp.toy_model_forward(W, b, x)
        if isinstance(got, torch.Tensor) and got.shape == want.shape and not torch.allclose(got, want, atol=1e-5):
            pre = sp.toy_model_forward(W, b, x, output="linear")
            if torch.allclose(got, pre, atol=1e-5):
                raise Mismatch("your output has negative entries: apply the ReLU to W^T W x + b.")
            if torch.allclose(got, sp.toy_model_forward(W, torch.zeros_like(b), x), atol=1e-5):
                raise Mismatch("your output matches the model without its bias: add b before the ReLU.")
            if torch.allclose(got, torch.relu(sp.toy_model_forward(W, b, x, output="linear") - b) + 0 * b, atol=1e-5):
                raise Mismatch("add b before the ReLU, not after.")
        compare(
            got,
            want,
            "x' = ReLU(W^T W x + b)",
            hint="Per instance: h = x @ W[i] ([batch, hidden]), then h @ W[i].T + b[i]. "
            "With einsum: 'batch inst feat, inst feat hidden -> batch inst hidden' and back.",
        )


@exercise("01.3", "The importance-weighted loss", reference=sp.importance_weighted_loss)
def check_importance_weighted_loss(fn):
    for seed in range(3):
        g = torch.Generator().manual_seed(seed)
        n_inst, n_feat = 2 + seed, 4 + seed
        x = torch.rand(32, n_inst, n_feat, generator=g)
        out = torch.rand(32, n_inst, n_feat, generator=g)
        importance = torch.rand(n_inst, n_feat, generator=g)
        got = call_student(fn, out, x, importance)
        want = sp.importance_weighted_loss(out, x, importance)
        if isinstance(got, torch.Tensor) and got.shape == want.shape and not torch.allclose(got, want, atol=1e-5):
            if torch.allclose(got, ((x - out) ** 2).mean(dim=(0, 2)), atol=1e-5):
                raise Mismatch(
                    "your loss ignores the importance: multiply each squared error by importance[inst, feat]."
                )
            if torch.allclose(got, want * n_feat, atol=1e-5):
                raise Mismatch("your loss is n_features times too large: take the mean over features, not the sum.")
        compare(
            got,
            want,
            "the loss per instance",
            hint="Average importance * (x - out)^2 over the batch and feature dimensions; keep one value per instance.",
        )


@exercise("01.6", "Per-feature dimensionality", reference=sp.feature_dimensionality)
def check_feature_dimensionality(fn):
    for seed in range(3):
        g = torch.Generator().manual_seed(seed)
        W = _random_weights(g, 2 + seed, 6, 3)
        got = call_student(fn, W)
        want = sp.feature_dimensionality(W)
        if isinstance(got, torch.Tensor) and got.shape == want.shape and not torch.allclose(got, want, atol=1e-4):
            raw = torch.einsum("ifh,ijh->ifj", W, W).pow(2).sum(-1)
            if torch.allclose(got, W.pow(2).sum(-1) ** 2 / raw, atol=1e-4) or torch.allclose(
                got, W.pow(2).sum(-1) / raw, atol=1e-4
            ):
                raise Mismatch("in the denominator use the unit vector W_i / ||W_i|| dotted with W_j, not W_i itself.")
            W_hat = W / W.norm(dim=-1, keepdim=True)
            overlaps = torch.einsum("ifh,ijh->ifj", W_hat, W).pow(2)
            no_self = overlaps.sum(-1) - overlaps.diagonal(dim1=-2, dim2=-1)
            if torch.allclose(got, W.pow(2).sum(-1) / no_self, atol=1e-4):
                raise Mismatch("the sum over j includes j = i (the feature itself): that is what keeps D_i <= 1.")
        compare(
            got,
            want,
            "D_i for every instance and feature",
            hint="D_i = ||W_i||^2 / sum_j (W_i_hat . W_j)^2, with W_i the row of feature i in W[inst] ([features, hidden]).",
        )
    pentagon = torch.stack(
        [torch.cos(torch.arange(5) * 2 * math.pi / 5), torch.sin(torch.arange(5) * 2 * math.pi / 5)], -1
    )
    got = call_student(fn, pentagon[None])
    compare(
        got,
        torch.full((1, 5), 0.4),
        "D_i of a regular pentagon (each feature owns 2/5 of a dimension)",
        atol=1e-4,
        hint="Square the dot products before summing.",
    )


def _phase_cases(g: torch.Generator, n: int) -> torch.Tensor:
    """Weights near each phase diagram solution, with noise and random signs."""
    prototypes = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, -1.0], [0.1, 0.2], [1.0, 1.0]])
    idx = torch.randint(len(prototypes), (n,), generator=g)
    W = prototypes[idx] * (0.8 + 0.5 * torch.rand(n, 2, generator=g))
    W = W + 0.05 * torch.randn(n, 2, generator=g)
    sign = torch.where(torch.rand(n, 1, generator=g) < 0.5, -1.0, 1.0)
    return (W * sign)[..., None]


@exercise("01.7", "Reading the phase diagram", reference=sp.classify_two_feature_solution)
def check_classify_two_feature_solution(fn):
    for seed in range(3):
        W = _phase_cases(torch.Generator().manual_seed(seed), 40)
        got = call_student(fn, W)
        want = sp.classify_two_feature_solution(W)
        usable = isinstance(got, torch.Tensor) and got.shape == want.shape and bool(torch.isfinite(got).all())
        if usable and not torch.equal(got.long(), want):
            for code, name in enumerate(sp.PHASES):
                wrong = (want == code) & (got.long() != code)
                if wrong.any():
                    k = int(wrong.nonzero()[0])
                    w = W[k, :, 0].tolist()
                    raise Mismatch(
                        f"W = [{w[0]:.2f}, {w[1]:.2f}] (norms of feature 0 and the extra feature 1) is "
                        f"'{name}' (code {code}), you answered code {int(got[k])}. Compare the norms |W_i| "
                        "with the threshold; the sign of W does not matter, and superposition means both are represented."
                    )
        compare(
            got,
            want,
            "the phase codes",
            hint="Return a long tensor [instances] with codes 0, 1, 2 in the order of PHASES.",
        )


def _train_case(steps: int, log_every: int) -> tuple[sp.ToyModel, sp.ToyModel, dict[str, Any]]:
    model = sp.ToyModel(5, 2, 3, torch.tensor([1.0, 0.1, 0.01]), 0.9 ** torch.arange(5.0), seed=3)
    return (
        copy.deepcopy(model),
        copy.deepcopy(model),
        dict(steps=steps, batch_size=64, lr=1e-2, seed=5, log_every=log_every),
    )


@exercise("01.4", "Train many toy models at once", reference=sp.train)
def check_train(fn):
    for steps, log_every in [(40, 10), (25, 0)]:
        mine, ref, kwargs = _train_case(steps, log_every)
        start = mine.W.detach().clone()
        got = call_student(fn, Mutable(mine), **kwargs)  # training changes the model in place
        want = sp.train(ref, **kwargs, desc="reference")
        if torch.equal(mine.W.detach(), start):
            raise Mismatch(
                "the weights did not change: step an optimiser over model.parameters() after loss.backward() "
                "(and train the model you were given, not a copy)."
            )
        if not torch.allclose(mine.W.detach(), ref.W.detach(), atol=1e-4):
            raise Mismatch(
                f"after {steps} steps your weights differ from the reference's: use torch.optim.Adam(model.parameters(), "
                "lr=lr), draw each batch with model.generate_batch(batch_size, g) from one generator "
                "g = torch.Generator().manual_seed(seed) created before the loop, call opt.zero_grad() every step, "
                "and backpropagate the SUM of the per-instance losses model.loss(x)."
            )
        compare(
            got,
            want,
            f"the loss history (log_every={log_every})",
            atol=1e-5,
            hint="record loss.detach() [instances] at steps 0, log_every, 2 * log_every, ... and at the last step "
            "(only the last when log_every is 0), computed before that step's update; stack them into [logged, inst].",
        )


@exercise("01.5", "Pack twice as many features as dimensions (open)", reference=sp.pack_features)
def check_pack_features(fn):
    got = call_student(fn)
    try:
        W, b, p = got
        p = float(p)
    except (TypeError, ValueError):
        raise Mismatch(f"expected (W [20, 5], b [20], p), got {got!r:.200}.") from None
    if not (isinstance(W, torch.Tensor) and isinstance(b, torch.Tensor)):
        raise Mismatch(f"return W and b as torch tensors, got {type(W).__name__} and {type(b).__name__}.")
    W, b = W.detach().float().cpu(), b.detach().float().cpu()
    if tuple(W.shape) != (20, 5) or tuple(b.shape) != (20,):
        raise Mismatch(f"expected W of shape (20, 5) and b of shape (20,), got {tuple(W.shape)} and {tuple(b.shape)}.")
    if not 0.001 <= p <= 0.1:
        raise Mismatch(f"choose a feature probability p between 0.001 and 0.1, got {p:g}.")
    if not (torch.isfinite(W).all() and torch.isfinite(b).all()):
        raise Mismatch("W and b must be finite.")
    score = sp.packing_score(W, b, p, 0.7 ** torch.arange(20.0))
    if score["represented"] < 10:
        raise Mismatch(
            f"{score['represented']:.0f} features have ||W_i|| > 0.5; at least 10 (twice the 5 dimensions) are needed. "
            "Sparser data, more training, or the best of several runs."
        )
    if score["loss"] > 0.5 * score["baseline"]:
        raise Mismatch(
            f"your loss {score['loss']:.2e} at p = {p:g} is not below half the loss of keeping the 5 most important "
            f"features exactly ({score['baseline']:.2e}): the features are there, but they interfere too much "
            "(negative biases filter the interference; train longer)."
        )


@exercise("01.8", "The phase diagram, trained", reference=sp.trained_phase_diagram)
def check_trained_phase_diagram(fn):
    rel, prb = torch.tensor([0.2, 1.0, 5.0]), torch.tensor([0.02, 1.0])
    got = call_student(fn, rel, prb, runs=2, steps=300)
    want = sp.trained_phase_diagram(rel, prb, runs=2, steps=300)
    if not (isinstance(got, tuple) and len(got) == 2):
        raise Mismatch(f"return (best [r, p], codes [r, p, runs]), got {type(got).__name__}.")
    compare(
        got[1],
        want[1],
        "every run's solution codes [r, p, runs]",
        hint="one ToyModel(2, 1, r * p * runs, probabilities, importances, seed=seed) with the cells in the order "
        "(importance, probability, run): expand rel[:, None, None] and prb[None, :, None] to [r, p, runs] and "
        "flatten; importance [1, r] per instance; train(model, steps, batch_size, lr, seed=seed); "
        "classify_two_feature_solution(model.W) viewed as [r, p, runs].",
    )
    compare(
        got[0],
        want[0],
        "the best run's solution per cell [r, p]",
        hint="the best run is the one with the lowest model.loss on one evaluation batch of 20000 drawn with "
        "torch.Generator().manual_seed(123); pick its code with codes.gather(-1, loss.argmin(-1, keepdim=True)).",
    )
