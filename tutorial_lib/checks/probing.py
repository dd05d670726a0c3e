"""Checks for chapter 03, probing: probe datasets, logistic probes, control tasks, projecting a
direction out, and steering vectors. The references live in the kernel (`tutorial_lib.probing`), each with
its exercise id in its docstring."""

from __future__ import annotations

import functools
import math

import torch
from torch import Tensor

from .. import probing
from ..probing import probe_rows, steered_logits, steering_vector, train_logistic_probe
from .core import Mismatch, call_student, compare, exercise, random_model


def _tokens(seed: int, batch: int = 3, pos: int = 9) -> Tensor:
    """Random token ids for the tiny random model (vocabulary of 23)."""
    return torch.randint(0, 23, (batch, pos), generator=torch.Generator().manual_seed(seed))


def _pair(got, what: str) -> tuple[Tensor, Tensor]:
    if not isinstance(got, (tuple, list)) or len(got) != 2 or not all(isinstance(t, Tensor) for t in got):
        raise Mismatch(f"{what}: expected a tuple of two tensors, got {type(got).__name__}.")
    return got[0], got[1]


@exercise("03.1", "Activation rows for a probe", reference=probe_rows)
def check_probe_rows(fn):
    for seed in range(3):
        g = torch.Generator().manual_seed(seed)
        act = torch.randn(3, 7, 5, generator=g)
        labels = torch.randint(0, 4, (3, 7), generator=g)
        mask = torch.rand(3, 7, generator=g) > 0.4
        mask[:, 0] = False  # BOS is never probed
        X, y = _pair(call_student(fn, act, labels, mask), "probe_rows")
        want_X, want_y = probe_rows(act, labels, mask)
        hint = (
            "index with the boolean mask directly, act[mask] and labels[mask]: it keeps the rows in (batch, pos) "
            "order and drops the positions where mask is False."
        )
        compare(X, want_X, "the activation rows X [n, d]", hint=hint)
        compare(y, want_y, "the labels y [n]", hint=hint + " Keep the labels' integer dtype.")


def _clusters(seed: int, n: int = 300, d: int = 8, n_classes: int = 3) -> tuple[Tensor, Tensor]:
    """Gaussian classes with overlapping means, an offset and uneven scales (a probe must get most, not all)."""
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(n_classes, d, generator=g) * 0.6
    y = torch.randint(0, n_classes, (n,), generator=g)
    scale = torch.rand(d, generator=g) * 3 + 0.5
    X = (means[y] + torch.randn(n, d, generator=g)) * scale + 2.0
    return X, y


@functools.lru_cache(maxsize=4)
def _reference_probe(seed: int) -> tuple[Tensor, Tensor]:
    X, y = _clusters(seed)
    return train_logistic_probe(X[:200], y[:200], 3)


@exercise("03.2", "Train a logistic probe", reference=train_logistic_probe)
def check_train_logistic_probe(fn):
    for seed in range(2):
        X, y = _clusters(seed)
        Xtr, ytr, Xte, yte = X[:200], y[:200], X[200:], y[200:]
        W, b = _pair(call_student(fn, Xtr.clone(), ytr.clone(), 3), "train_logistic_probe")
        if W.shape != (X.shape[1], 3) or b.shape != (3,):
            hint = " (W is [d, C]: transpose it?)" if W.shape == (3, X.shape[1]) else ""
            raise Mismatch(
                f"expected W of shape {(X.shape[1], 3)} and b of shape (3,), got {tuple(W.shape)} "
                f"and {tuple(b.shape)}{hint}."
            )
        W, b = W.detach().float(), b.detach().float()
        if not (torch.isfinite(W).all() and torch.isfinite(b).all()):
            raise Mismatch("your weights contain NaN or inf: lower the learning rate or standardise X first.")
        ref_W, ref_b = _reference_probe(seed)
        pred, ref_pred = (Xte @ W + b).argmax(-1), (Xte @ ref_W + ref_b).argmax(-1)
        acc, ref_acc = (pred == yte).float().mean().item(), (ref_pred == yte).float().mean().item()
        agree = (pred == ref_pred).float().mean().item()
        if acc < ref_acc - 0.05 or agree < 0.85:
            raise Mismatch(
                f"held-out accuracy {acc:.3f} (the reference probe gets {ref_acc:.3f}; the two agree on {agree:.0%} "
                "of rows). Minimise F.cross_entropy(X @ W + b, y) for enough steps; the inputs have an offset and "
                "uneven scales, so standardise X (then fold mean and std back into W and b) or use L-BFGS / Adam. "
                "W and b must act on the raw X."
            )


@exercise("03.3", "Control-task labels", reference=probing.control_labels)
def check_control_labels(fn):
    g = torch.Generator().manual_seed(0)
    token_ids = torch.randint(0, 400, (3000,), generator=g)
    labels = (torch.rand(3000, generator=g) < 0.2).long() * 2  # classes {0, 2}, 80% / 20%
    labels[token_ids % 5 == 0] = 1  # a third class; the real labels vary within a token type
    outs = []
    for seed in (0, 0, 1):
        got = call_student(fn, token_ids.clone(), labels.clone(), seed)
        if not isinstance(got, Tensor) or got.shape != labels.shape:
            raise Mismatch(
                f"expected one control label per row, a tensor of shape {tuple(labels.shape)}, "
                f"got {got.shape if isinstance(got, Tensor) else type(got).__name__}."
            )
        outs.append(got.long())
    got = outs[0]
    if not torch.isin(got, labels.unique()).all():
        raise Mismatch("some control labels are not among the real labels' values: draw them from the real labels.")
    types, inverse = token_ids.unique(return_inverse=True)
    for t in range(len(types)):
        if got[inverse == t].unique().numel() != 1:
            raise Mismatch(
                "rows with the same token id got different control labels: the control task gives each "
                "token *type* one label (use torch.unique(token_ids, return_inverse=True))."
            )
    if not torch.equal(outs[0], outs[1]):
        raise Mismatch("the same seed gave different control labels: draw with torch.Generator().manual_seed(seed).")
    if torch.equal(outs[0], outs[2]):
        raise Mismatch(
            "seeds 0 and 1 gave the same control labels: the labels per type must be random, drawn "
            "with a generator seeded by `seed`."
        )
    per_type = torch.zeros(len(types), dtype=torch.long).scatter_(0, inverse, got)
    for c in labels.unique().tolist():
        want, have = (labels == c).float().mean().item(), (per_type == c).float().mean().item()
        if abs(have - want) > 0.1:
            raise Mismatch(
                f"class {c} labels {have:.0%} of the token types but {want:.0%} of the real rows: draw each "
                "type's label from the empirical label distribution (e.g. the label of a random row), "
                "not uniformly over the classes."
            )


@exercise("03.4", "Project a direction out", reference=probing.project_out)
def check_project_out(fn):
    for seed, shape in [(0, (6, 5)), (1, (2, 3, 8)), (2, (4, 16))]:
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(*shape, generator=g)
        direction = torch.randn(shape[-1], generator=g) * 3  # not unit length on purpose
        got = call_student(fn, x.clone(), direction.clone())
        compare(
            got,
            probing.project_out(x, direction),
            "x with the direction projected out",
            hint="normalise the direction first (u = direction / direction.norm()), then subtract (x @ u)[..., None] * u; "
            "the result must be orthogonal to the direction.",
        )


@exercise("03.5", "A steering vector from two classes", reference=steering_vector)
def check_steering_vector(fn):
    for seed in range(3):
        g = torch.Generator().manual_seed(seed)
        X = torch.randn(40, 6, generator=g) + 1.0
        y = torch.randint(0, 2, (40,), generator=g)
        compare(
            call_student(fn, X.clone(), y.clone()),
            steering_vector(X, y),
            "the steering vector [d]",
            hint="mean over the rows with y == 1 minus the mean over the rows with y == 0 (means per class, "
            "not over all rows), and do not normalise it: its length is the size of the shift.",
        )


@exercise("03.6", "Steer the model through a hook", reference=steered_logits)
def check_steered_logits(fn):
    model = random_model(0)
    for seed, layer, strength in [(0, 0, 2.0), (1, 1, -1.5)]:
        tokens = _tokens(seed)
        hook_name = f"blocks.{layer}.hook_resid_post"
        vector = torch.randn(model.cfg.d_model, generator=torch.Generator().manual_seed(seed))
        with torch.no_grad():
            got = call_student(fn, model, tokens, hook_name, vector.clone(), strength)
            want = steered_logits(model, tokens, hook_name, vector, strength)
            clean = model(tokens)
        if isinstance(got, Tensor) and got.shape == want.shape and torch.allclose(got.float(), clean, atol=1e-5):
            raise Mismatch(
                "the logits did not change: your hook must return the edited activation, and be passed "
                "as model.run_with_hooks(tokens, fwd_hooks=[(hook_name, hook_fn)])."
            )
        compare(
            got,
            want,
            f"the steered logits at {hook_name}",
            atol=1e-4,
            hint="add strength * vector to the activation at every position (act + strength * vector "
            "broadcasts over batch and pos), without normalising the vector.",
        )


@exercise("03.7", "Variance-matched random directions", reference=probing.variance_matched_directions)
def check_variance_matched_directions(fn):
    g = torch.Generator().manual_seed(0)
    X = torch.randn(300, 12, generator=g) * torch.linspace(3.0, 0.2, 12)  # anisotropic, like activations
    direction = torch.randn(12, generator=g)
    got = call_student(fn, X.clone(), direction.clone(), n=5, k=4, seed=3)
    want = probing.variance_matched_directions(X, direction, n=5, k=4, seed=3)
    if isinstance(got, Tensor) and got.shape == want.shape:
        if not torch.allclose(got.norm(dim=-1), torch.ones(5), atol=1e-4):
            raise Mismatch("return unit vectors: normalise each candidate (divide by its norm).")
        if (got @ (direction / direction.norm())).abs().max() > 1e-4:
            raise Mismatch("the directions must be orthogonal to `direction`: remove it from the centred X "
                           "before the SVD, so that the principal directions avoid it.")  # fmt: skip
    compare(
        got,
        want,
        "the variance-matched directions [n, d]",
        atol=1e-4,
        hint="centre X; project `direction` out; basis = the top k rows of torch.linalg.svd(rest, "
        "full_matrices=False).Vh; candidates = torch.randn(64 * n, k, generator=torch.Generator().manual_seed(seed)) "
        "@ basis, normalised; keep the n whose variance (centred @ candidates.T).var(0) is closest to the variance "
        "along the unit direction, in order of closeness.",
    )


@exercise("03.8", "The online code length", reference=probing.online_code_length)
def check_online_code_length(fn):
    g = torch.Generator().manual_seed(1)
    X = torch.randn(200, 6, generator=g)
    y = (X[:, 0] + 0.5 * torch.randn(200, generator=g) > 0).long()
    got = call_student(fn, X.clone(), y.clone(), 2)
    want = probing.online_code_length(X, y, 2)
    if isinstance(got, dict) and "online" in got and isinstance(got["online"], float | int):
        if abs(got["online"] - want["uniform"]) < 1e-3:
            raise Mismatch("your online code length equals the uniform code: only the first block uses the "
                           "uniform code; code each later block with a probe trained on the rows before it.")  # fmt: skip
        if abs(got["online"] / math.log(2) - want["online"]) < 1e-2 * want["online"]:
            raise Mismatch("the code length looks like nats: divide natural-log code lengths by log(2) for bits.")
    compare(got, want, "the code lengths", atol=1e-2, rtol=1e-3,
            hint="first put the rows in the order torch.randperm(len(y), generator=torch.Generator().manual_seed(seed)); "
            "cut at ends = [max(1, round(f * len(y)))]; the first block costs ends[0] * log2(C); each later "
            "block costs -sum(log2 p(y | x)) under train_logistic_probe(X[:start], y[:start], C).")  # fmt: skip


@exercise("03.9", "A steering vector that closes brackets (open)", reference=probing.find_steering_vector)
def check_find_steering_vector(fn):
    from .. import organisms, tasks

    model, hook = organisms.load("toy-lm"), "blocks.0.hook_resid_post"
    close = tasks.WORD_TO_ID[")"]
    fit, fresh = tasks.brackets(80, n_words=24, seed=11), tasks.brackets(80, n_words=24, seed=12)
    got = call_student(fn, model, fit.tokens, fit.can_close, hook)
    if not isinstance(got, Tensor) or tuple(got.shape) != (model.cfg.d_model,) or not torch.isfinite(got).all():
        raise Mismatch(f"return a finite vector of shape ({model.cfg.d_model},), got {got!r:.100}.")
    with torch.no_grad():
        _, cache = model.run_with_cache(fit.tokens, names_filter=hook)
    act, labels = cache[hook][:, 1:].reshape(-1, model.cfg.d_model), fit.can_close[:, 1:].reshape(-1).long()
    budget = 1.5 * steering_vector(act, labels).norm().item()
    if got.norm().item() > budget + 1e-4:
        raise Mismatch(f"your vector's norm is {got.norm().item():.1f}; the budget is 1.5 |v| = {budget:.1f}.")
    p = probing.depth0_close_probability(model, fresh.tokens, fresh.depth, hook, got.detach().float(), close)
    if p <= 0.5:
        raise Mismatch(f"on new prompts, mean P(')') at depth 0 is {p:.2f} with your vector (needs > 0.5): "
                       "go further along the difference of means, within the budget.")  # fmt: skip
