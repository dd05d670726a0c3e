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


@exercise("06.3", "Best-match cosine between two dictionaries", reference=op.max_cosines)
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


@exercise("06.7", "Mahalanobis distance", reference=op.mahalanobis)
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


@exercise("06.4", "The direct effect of a head", reference=op.direct_effect)
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


@exercise("06.5", "Self-repair fraction", reference=op.self_repair_fraction)
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


@exercise("06.9", "Patch a subspace", reference=op.patch_subspace)
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


@exercise("06.11", "Spearman rank correlation", reference=op.spearman)
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


@exercise("06.10", "Steps to reach a loss", reference=op.steps_to_reach)
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


def _entry(got, key, what: str):
    """got[key] of a student's dict, or a Mismatch that says what was expected."""
    if not isinstance(got, dict) or key not in got:
        found = sorted(got) if isinstance(got, dict) else type(got).__name__
        raise Mismatch(f"return a dict with the key {key!r} ({what}); got {found}.")
    return got[key]


def _model_and_batch(seed: int, attn_only: bool = False):
    from .core import random_model

    model = random_model(seed, attn_only=attn_only)
    g = _gen(seed)
    tokens = torch.randint(0, model.cfg.d_vocab, (8, 9), generator=g)
    return model, tokens, op.component_means(model, torch.randint(0, model.cfg.d_vocab, (8, 9), generator=g))


@exercise("06.2", "Measure a circuit's coverage", reference=op.circuit_coverage)
def check_circuit_coverage(fn):
    for seed, attn_only, keep in [(1, True, {(0, 1), (1, 2)}), (0, False, {(1, 0)})]:
        model, tokens, means = _model_and_batch(seed, attn_only)
        metric = lambda logits: logits[:, -1, 3].mean()  # noqa: E731
        got, want = (
            call_student(fn, model, tokens, metric, keep, means),
            op.circuit_coverage(model, tokens, metric, keep, means),
        )
        steps = [
            ("clean", "run the model with no hooks and apply the metric."),
            (
                "ablated",
                "with every head ablated, each head's hook_z is replaced by means[name] at the same "
                "position (the first z.shape[1] positions), in every layer; the MLPs are not touched.",
            ),
            ("circuit", "keep the heads in keep_heads and replace only the others, layer by layer."),
            ("recovered", "(circuit - ablated) / (clean - ablated), from your three numbers."),
        ]
        for key, hint in steps:
            compare(_entry(got, key, "a float"), want[key], f"{key!r}", atol=1e-4, hint=hint)


@exercise("06.6", "Direct and total effects of every head", reference=op.direct_and_total_effects)
def check_direct_and_total_effects(fn):
    for seed in (1, 2):
        model, tokens, means = _model_and_batch(seed, attn_only=seed == 1)
        g = _gen(10 + seed)
        answer, wrong = (torch.randint(0, model.cfg.d_vocab, (8,), generator=g) for _ in range(2))
        end_pos = torch.randint(4, 9, (8,), generator=g)
        got = call_student(fn, model, tokens, answer, wrong, end_pos, means)
        want = op.direct_and_total_effects(model, tokens, answer, wrong, end_pos, means)
        compare(
            _entry(got, "clean", "the clean logit difference"),
            want["clean"],
            "'clean'",
            atol=1e-4,
            hint="the mean over prompts of logit[answer] - logit[wrong] at each prompt's end_pos.",
        )
        compare(
            _entry(got, "total", "[n_layers, n_heads]"),
            want["total"],
            "'total'",
            atol=1e-4,
            hint="mean-ablate one head at a time (its hook_z at every position replaced by means) and "
            "record clean - ablated logit difference, averaged over prompts.",
        )
        compare(
            _entry(got, "direct", "[n_layers, n_heads]"),
            want["direct"],
            "'direct'",
            atol=1e-4,
            hint="the head's change at end_pos, (mean z - clean z) @ W_O, centred over d_model, divided by "
            "the clean final LayerNorm scale and projected on (W_U[:, answer] - W_U[:, wrong]) * ln_final.w; "
            "report the drop (minus that change), averaged over prompts.",
        )


@exercise("06.8", "Where the ablation values sit", reference=op.replacement_distances)
def check_replacement_distances(fn):
    from types import SimpleNamespace

    model, _, _ = _model_and_batch(0)
    g = _gen(5)

    def batch(n):
        return SimpleNamespace(
            tokens=torch.randint(0, 23, (n, 9), generator=g), end_pos=torch.randint(3, 9, (n,), generator=g)
        )

    fit, held, ref = batch(60), batch(12), batch(10)
    pick = torch.randint(10, (12,), generator=g)
    got, want = (
        call_student(fn, model, fit, held, ref, 1, pick),
        op.replacement_distances(model, fit, held, ref, 1, pick),
    )
    hints = {
        "held-out": "fit mean and covariance on fit's hook_z at its end positions, head by head, then measure held's.",
        "zero": "the distance of the zero vector (one row).",
        "mean": "the distance of ref's mean at its end positions (one row): the value mean-ablation writes.",
        "resample": "ref's activations in the order pick gives (ref[pick]): the values resample-ablation writes.",
    }
    for head in range(model.cfg.n_heads):
        row = got.get(head) if isinstance(got, dict) else None
        for key, hint in hints.items():
            compare(
                _entry(row, key, f"head {head}'s distances"),
                want[head][key],
                f"head {head}, {key!r}",
                atol=1e-3,
                rtol=1e-3,
                hint=hint + " Use op.gaussian_stats and op.mahalanobis(..., ridge=1e-4).",
            )


@exercise("06.12", "Error bars for a rank correlation", reference=op.bootstrap_rank_correlation)
def check_bootstrap_rank_correlation(fn):
    g = _gen(3)
    x = torch.arange(6.0)
    for p, n, what in [(0.5 + 0.08 * x, 3000, "well separated"), (0.5 + 0.01 * x, 40, "noisy")]:
        correct = (torch.rand(6, n, generator=g) < p[:, None]).double()
        got, want = call_student(fn, x, correct, 200, 0), op.bootstrap_rank_correlation(x, correct, 200, 0)
        if not isinstance(got, torch.Tensor) or got.shape != (200,):
            raise Mismatch(f"return one correlation per resample, a tensor of shape (200,); got {_shape(got)}.")
        if not bool((got.float().abs() <= 1 + 1e-6).all()):  # also catches NaN and inf
            raise Mismatch("every correlation lies in [-1, 1]; some of yours do not (NaN, inf or unscaled).")
        for q in (0.1, 0.5, 0.9):
            compare(
                float(got.float().quantile(q)),
                float(want.quantile(q)),
                f"the {q:.0%} quantile ({what} items)",
                atol=0.15,
                hint="resample the examples (columns) with replacement, recompute each item's accuracy "
                "as the row mean, and take Spearman's correlation with x, once per resample.",
            )


def _shape(x) -> str:
    return str(tuple(x.shape)) if isinstance(x, torch.Tensor) else type(x).__name__


@exercise("06.13", "A small circuit for toy-lm's language modelling (open)", reference=op.find_circuit)
def check_find_circuit(fn):
    from .. import organisms, tasks
    from ..training import lm_loss

    toy = organisms.load("toy-lm")
    search = tasks.corpus_tokens(64, 32, seed=7)
    search_means = op.component_means(toy, tasks.corpus_tokens(64, 32, seed=8))
    metric = lambda lg: lm_loss(lg, search, search[:, 1:] != tasks.PAD_ID)  # noqa: E731
    answer = call_student(fn, toy, search, metric, search_means, 2)
    if not isinstance(answer, tuple) or len(answer) != 2:
        raise Mismatch(f"return a pair (heads, recovered): a set of (layer, head) and a float; got {answer!r:.80}.")
    got, reported = answer
    valid = {(layer, h) for layer in range(toy.cfg.n_layers) for h in range(toy.cfg.n_heads)}
    if not isinstance(got, (set, list, tuple)) or not all(
        tuple(h) in valid for h in got if isinstance(h, (tuple, list))
    ):
        raise Mismatch(f"return a set of (layer, head) tuples of toy-lm's heads; got {got!r:.80}.")
    heads = {tuple(h) for h in got}
    if len(heads) > 2 or len(heads) != len(got):
        raise Mismatch(f"at most 2 distinct heads, please; got {sorted(heads)}.")
    compare(
        reported,
        op.circuit_coverage(toy, search, metric, heads, search_means)["recovered"],
        "the fraction your circuit recovers on the search documents",
        atol=1e-3,
        hint="report circuit_coverage(model, tokens, metric, heads, means)['recovered'] of the heads you return.",
    )
    held = tasks.corpus_tokens(64, 32, seed=9)  # measured on text the search never saw
    rec = op.circuit_coverage(
        toy,
        held,
        lambda lg: lm_loss(lg, held, held[:, 1:] != tasks.PAD_ID),
        heads,
        op.component_means(toy, tasks.corpus_tokens(64, 32, seed=10)),
    )["recovered"]
    if not rec >= 0.7:
        raise Mismatch(
            f"your circuit {sorted(heads)} recovers {rec:.2f} of the held-out loss; the goal is 0.70. "
            "Try a greedy search: add the head that brings the loss closest to the clean model's."
        )
