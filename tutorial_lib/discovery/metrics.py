"""Chapter 07's measures of a circuit: faithfulness (the metric recovered by the circuit alone, every edge
outside it ablated), Wang et al. (2022)'s incompleteness and minimality scores, ROC curves and AUC of an edge ranking against a known circuit, and bootstrap
confidence intervals over prompts.
"""

from __future__ import annotations

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from ..sae.metrics import auroc
from ..validation import TutorialInputError, expect_dtype, expect_int_at_least, expect_range
from .edges import run_edges
from .graph import build_graph

__all__ = [
    "auc",
    "bootstrap_ci",
    "circuit_subsets",
    "faithfulness",
    "incompleteness",
    "minimality",
    "roc_curve",
    "top_k_mask",
]


def _values(metric, logits: Tensor, per_prompt: bool = False) -> Tensor:
    """metric of each variant's logits [V, B, P, d_vocab], stacked: [V], or [V, B] when per_prompt (the metric
    then returns one value per prompt). Chapter 07: circuit discovery."""
    shape = (logits.shape[1],) if per_prompt else ()
    out = [torch.as_tensor(metric(lg)).float() for lg in logits]
    if any(v.shape != shape and not (v.numel() == 1 and not per_prompt) for v in out):
        raise TutorialInputError(f"metric must return {'one value per prompt, ' if per_prompt else 'a scalar, '}"
                                 f"shape {list(shape)}; got {list(out[0].shape)}.")  # fmt: skip
    return torch.stack([v.reshape(shape) for v in out])


def faithfulness(
    model,
    clean_tokens: Int[Tensor, "batch pos"],
    corrupted_tokens: Int[Tensor, "batch pos"],
    metric,
    circuits: Bool[Tensor, "... sender receiver"],
    replacement: Tensor | None = None,
) -> Float[Tensor, "..."]:
    """(metric(circuit) - metric(corrupted)) / (metric(clean) - metric(corrupted)) for each circuit: the run on
    the clean tokens with every edge outside the circuit carrying the corrupted tokens' value (or
    `replacement`'s, e.g. mean_sender_outputs). circuits: [S, R], [V, S, R] or [V, pos, S, R] bool.

    1 means the circuit alone reproduces the model on this metric, 0 that it does no better than the
    corrupted run. Chapter 07: circuit discovery. Exercise 07.4 (the reference).
    """
    expect_dtype(circuits, "bool", "circuits")
    single = circuits.ndim == 2
    circuits = circuits[None] if single else circuits
    g = build_graph(model)
    repl = corrupted_tokens if replacement is None else replacement
    ablate = g.valid.to(circuits.device) & ~circuits
    with torch.no_grad():
        ends, _ = run_edges(model, clean_tokens, corrupted_tokens, torch.stack([g.valid, ~g.valid]).to(circuits.device))
        m_corr, m_clean = _values(metric, ends)  # every edge ablated, then none
        if abs(float(m_clean - m_corr)) <= 1e-6 * max(1.0, abs(float(m_clean))):
            raise TutorialInputError("the clean and corrupted runs give the same metric: faithfulness is undefined.")
        logits, _ = run_edges(model, clean_tokens, repl, ablate)
    out = (_values(metric, logits) - m_corr) / (m_clean - m_corr)
    return out[0] if single else out


def top_k_mask(scores: Float[Tensor, "sender receiver"], k: int, valid: Tensor | None = None) -> Tensor:
    """The k edges with the largest |score| as a bool mask (ties broken by index). Chapter 07: circuit discovery."""
    flat = scores.abs().flatten().clone()
    if valid is not None:
        flat[~valid.flatten().to(flat.device)] = -1.0
    order = torch.argsort(flat, descending=True, stable=True)
    out = torch.zeros_like(flat, dtype=torch.bool)
    out[order[: expect_int_at_least(k, "k", 0)]] = True
    return out.reshape(scores.shape)


def _ranked_against(scores: Tensor, truth: Tensor) -> tuple[Tensor, Tensor]:
    """Flattened float64 scores and bool truth, one entry per edge, with both classes present."""
    scores, truth = scores.flatten().double(), expect_dtype(truth, "bool", "truth").flatten()
    if scores.shape != truth.shape:
        raise TutorialInputError(
            f"scores and truth must hold one entry per edge; got {scores.shape} and {truth.shape}."
        )
    if bool(truth.all()) or not bool(truth.any()):
        raise TutorialInputError("truth must hold both circuit and non-circuit edges to draw a ROC curve.")
    return scores, truth


def roc_curve(
    scores: Float[Tensor, " edge"], truth: Bool[Tensor, " edge"]
) -> tuple[Float[Tensor, " point"], Float[Tensor, " point"]]:
    """(false positive rate, true positive rate) of ranking edges by score (highest first) against the true
    circuit, one point per threshold, from (0, 0) to (1, 1). Tied scores move together (a diagonal step).

    Chapter 07: circuit discovery. Exercise 07.5 (the reference).
    """
    scores, truth = _ranked_against(scores, truth)
    n_pos, n_neg = int(truth.sum()), int((~truth).sum())
    order = torch.argsort(scores, descending=True, stable=True)
    s, t = scores[order], truth[order].double()
    tps, fps = torch.cumsum(t, 0), torch.cumsum(1 - t, 0)
    last_of_tie = torch.cat([s[1:] != s[:-1], torch.tensor([True])])
    zero = torch.zeros(1, dtype=torch.float64)
    return torch.cat([zero, fps[last_of_tie] / n_neg]), torch.cat([zero, tps[last_of_tie] / n_pos])


def auc(scores: Float[Tensor, " edge"], truth: Bool[Tensor, " edge"]) -> float:
    """Area under roc_curve: the chance a random true edge outranks a random other edge (ties count half),
    computed by `sae.auroc` (the one implementation).

    Chapter 07: circuit discovery.
    """
    scores, truth = _ranked_against(scores, truth)
    return auroc(scores, truth)


def bootstrap_ci(
    per_prompt: Float[Tensor, " prompt"], n_boot: int = 1000, level: float = 0.95, seed: int = 0, stat=None
) -> tuple[float, float, float]:
    """(estimate, low, high): a statistic of per-prompt values (default the mean) with a percentile bootstrap
    interval, prompts resampled with replacement (seeded). `stat` maps a [n_boot, prompt] tensor to [n_boot]
    (e.g. a ratio of means given stacked columns); with values [prompt, k] it gets [n_boot, prompt, k].

    Chapter 07: circuit discovery. Exercise 07.7 (the reference).
    """
    x = torch.as_tensor(per_prompt).double()
    expect_range(level, "level", 0.0, 1.0)
    n = x.shape[0]
    if n < 2:
        raise TutorialInputError(f"a bootstrap needs at least 2 prompts, got {n}.")
    stat = (lambda v: v.mean(1)) if stat is None else stat
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randint(n, (expect_int_at_least(n_boot, "n_boot", 10), n), generator=gen)
    boots = stat(x[idx])
    tail = (1 - level) / 2
    low, high = torch.quantile(boots, torch.tensor([tail, 1 - tail], dtype=torch.float64))
    return float(stat(x[None])[0]), float(low), float(high)


def ablated_logits(model, clean_tokens, corrupted_tokens, ablate: Tensor) -> Tensor:
    """Logits [V, B, P, d_vocab] of the clean run with the edges in each mask of `ablate` [V, S, R] carrying
    the corrupted tokens' value (edges outside the graph never count). Chapter 07: circuit discovery."""
    expect_dtype(ablate, "bool", "ablate")
    valid = build_graph(model).valid.to(ablate.device)
    with torch.no_grad():
        logits, _ = run_edges(model, clean_tokens, corrupted_tokens, ablate & valid)
    return logits


def _ablated_values(model, clean_tokens, corrupted_tokens, metric, ablate: Tensor, per_prompt: bool = False) -> Tensor:
    """metric of each ablated run (ablated_logits). Chapter 07: circuit discovery."""
    return _values(metric, ablated_logits(model, clean_tokens, corrupted_tokens, ablate), per_prompt)


def incompleteness(
    model, clean_tokens, corrupted_tokens, metric, circuit: Bool[Tensor, "sender receiver"],
    removals: Bool[Tensor, "variant sender receiver"], per_prompt: bool = False,
) -> Tensor:  # fmt: skip
    """Wang et al. (2022)'s incompleteness |F(C \\ K) - F(M \\ K)| for each subset K of the circuit in `removals`:
    F is the metric, C \\ K the circuit without K (every other edge ablated), M \\ K the whole model without K.
    Near 0 for every K means the circuit is complete: removing part of it hurts the circuit as it hurts the
    model, so nothing outside the circuit compensates. With per_prompt (a metric returning one value per
    prompt), the signed differences F(C \\ K) - F(M \\ K) of each prompt, [V, B], whose mean's size is the score
    (for bootstrap_ci). Chapter 07: circuit discovery.
    """
    expect_dtype(circuit, "bool", "circuit")
    if removals.ndim != 3 or bool((removals & ~circuit).any()):
        raise TutorialInputError("removals must be [V, sender, receiver] bool masks of edges inside the circuit.")
    ablate = torch.cat([~circuit | removals, removals])
    f = _ablated_values(model, clean_tokens, corrupted_tokens, metric, ablate, per_prompt)
    diff = f[: len(removals)] - f[len(removals) :]
    return diff if per_prompt else diff.abs()


def minimality(
    model, clean_tokens, corrupted_tokens, metric, circuit: Bool[Tensor, "sender receiver"],
    removed: Bool[Tensor, "sender receiver"] | None = None, per_prompt: bool = False,
) -> Tensor:  # fmt: skip
    """Wang et al. (2022)'s minimality score of each circuit edge v: |F(C \\ (K + v)) - F(C \\ K)|, with K the
    edges in `removed` (default none), in the order of circuit.nonzero(). An edge scoring near 0 for every K
    adds nothing to the circuit. With per_prompt, the signed per-prompt changes [E, B] (see incompleteness).
    Chapter 07: circuit discovery.
    """
    expect_dtype(circuit, "bool", "circuit")
    k = torch.zeros_like(circuit) if removed is None else removed & circuit
    edges = (circuit & ~k).nonzero()
    base = ~circuit | k
    ablate = base[None].repeat(len(edges) + 1, 1, 1)
    ablate[torch.arange(1, len(edges) + 1), edges[:, 0], edges[:, 1]] = True
    f = _ablated_values(model, clean_tokens, corrupted_tokens, metric, ablate, per_prompt)
    return f[1:] - f[0] if per_prompt else (f[1:] - f[0]).abs()


def circuit_subsets(
    circuit: Bool[Tensor, "sender receiver"], n: int, seed: int = 0
) -> Bool[Tensor, "k sender receiver"]:
    """Subsets K of a circuit to test completeness on: none, the whole circuit, then n random halves (each
    edge in with probability 1/2, seeded). Chapter 07: circuit discovery."""
    expect_dtype(circuit, "bool", "circuit")
    gen = torch.Generator().manual_seed(seed)
    halves = (torch.rand(expect_int_at_least(n, "n", 0), *circuit.shape, generator=gen) < 0.5).to(circuit.device)
    return torch.cat([torch.zeros_like(circuit)[None], circuit[None], halves & circuit])
