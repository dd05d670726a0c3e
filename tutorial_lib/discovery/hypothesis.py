"""Chapter 07's statistical tests of a circuit hypothesis, after Shi et al. (2024), "Hypothesis testing the
circuit hypothesis in LLMs": each turns a property a circuit should have into a test with a p-value.

- **Equivalence**: the circuit alone (every other edge carrying its corrupted value) performs like the whole
  model. Over prompts, the fraction q on which the circuit beats the model should be near 1/2; the null
  hypothesis is that it is not (|q - 1/2| >= delta), tested by two one-sided binomial tests (ties, within
  `tol`, split evenly). A small p-value accepts equivalence.
- **Minimality**: every edge of the circuit is needed. Removing edge e from the circuit changes the metric
  by |F(C) - F(C \\ e)|; the reference is how much adding one random edge from outside changes the circuit,
  |F(C + r) - F(C)|. The p-value of e is the fraction of reference edges that change it at least as much
  (plus one, over one plus their number). A small p-value says the edge is needed.
- **Independence**: what the rest of the model does, with the circuit knocked out, tells nothing about
  what the circuit does: an HSIC permutation test between the per-prompt metrics of the circuit and of
  its complement. A large p-value keeps independence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from jaxtyping import Bool, Float
from torch import Tensor

from ..validation import TutorialInputError, expect_dtype, expect_int_at_least, expect_range
from .graph import build_graph
from .metrics import ablated_logits

__all__ = ["HypothesisTest", "equivalence_test", "hsic", "independence_test", "minimality_test"]


@dataclass(frozen=True)
class HypothesisTest:
    """A test's statistic, p-value(s) and verdict at its level alpha. Chapter 07: circuit discovery."""

    statistic: float
    p_value: float
    passed: bool
    p_values: Tensor | None = None  # minimality: one per circuit edge, in circuit.nonzero() order


def _per_prompt(model, clean, corrupted, metric, ablate: Tensor) -> Float[Tensor, "variant batch"]:
    """metric(logits) -> [batch] of the clean run with each mask's edges corrupted. Chapter 07: circuit discovery."""
    logits = ablated_logits(model, clean, corrupted, ablate)
    out = torch.stack([torch.as_tensor(metric(lg)).float() for lg in logits])
    if out.shape != (len(ablate), clean.shape[0]):
        raise TutorialInputError(
            f"metric must return one value per prompt, [{clean.shape[0]}]; got {tuple(out.shape[1:])}."
        )
    return out


def _binom_tail(k: int, n: int, p: float, upper: bool) -> float:
    """P(X >= k) (upper) or P(X <= k) for X ~ Binomial(n, p). Chapter 07: circuit discovery."""
    ks = range(k, n + 1) if upper else range(0, k + 1)
    return float(sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in ks))


def equivalence_test(model, clean, corrupted, metric, circuit: Bool[Tensor, "sender receiver"], delta: float = 0.1,
                     alpha: float = 0.05, tol: float = 1e-4) -> HypothesisTest:  # fmt: skip
    """Shi et al.'s equivalence test: statistic = fraction of prompts on which the circuit beats the model.

    Chapter 07: circuit discovery (validation).
    """
    expect_range(delta, "delta", 0.0, 0.5)
    scores = _per_prompt(model, clean, corrupted, metric, torch.stack([~circuit, torch.zeros_like(circuit)]))
    diff = scores[0] - scores[1]
    n, ties = diff.numel(), int((diff.abs() <= tol).sum())
    wins = int((diff > tol).sum()) + ties // 2
    p = max(_binom_tail(wins, n, 0.5 - delta, upper=True), _binom_tail(wins, n, 0.5 + delta, upper=False))
    return HypothesisTest(wins / n, p, p < alpha)


def minimality_test(model, clean, corrupted, metric, circuit: Bool[Tensor, "sender receiver"],
                    alpha: float = 0.05, batch_size: int | None = None) -> HypothesisTest:  # fmt: skip
    """Shi et al.'s minimality test: one p-value per circuit edge against random edges from outside it;
    passed when every edge's p-value is below alpha. statistic: the largest p-value. It runs one variant per
    edge of the graph: `batch_size` variants per forward at most (default all at once) bounds the memory.

    Chapter 07: circuit discovery (validation).
    """
    expect_dtype(circuit, "bool", "circuit")
    valid = build_graph(model).valid.to(circuit.device)
    inside, outside = (circuit & valid).nonzero(), (~circuit & valid).nonzero()
    if len(inside) == 0 or len(outside) == 0:
        raise TutorialInputError("the circuit must hold at least one edge of the graph and leave at least one out.")
    masks = [~circuit]
    for s, r in inside.tolist():  # the circuit without one of its edges
        m = ~circuit.clone()
        m[s, r] = True
        masks.append(m)
    for s, r in outside.tolist():  # the circuit with one more edge
        m = ~circuit.clone()
        m[s, r] = False
        masks.append(m)
    size = len(masks) if batch_size is None else expect_int_at_least(batch_size, "batch_size", 1)
    stacked = torch.stack(masks)
    f = torch.cat([_per_prompt(model, clean, corrupted, metric, stacked[i : i + size]).mean(1)
                   for i in range(0, len(masks), size)])  # fmt: skip
    removed = (f[1 : 1 + len(inside)] - f[0]).abs()
    added = (f[1 + len(inside) :] - f[0]).abs()
    p_values = (1 + (added[None] >= removed[:, None]).sum(1)) / (1 + len(added))
    worst = float(p_values.max())
    return HypothesisTest(worst, worst, worst < alpha, p_values)


def hsic(x: Float[Tensor, " n"], y: Float[Tensor, " n"]) -> float:
    """The (biased) HSIC statistic of two samples with Gaussian kernels of median-distance width.

    Chapter 07: circuit discovery (validation).
    """
    n = x.numel()
    h = torch.eye(n, dtype=torch.float64) - 1.0 / n

    def gram(v: Tensor) -> Tensor:
        d2 = (v.double()[:, None] - v.double()[None]) ** 2
        width = d2[d2 > 0].median() if bool((d2 > 0).any()) else torch.tensor(1.0, dtype=torch.float64)
        return torch.exp(-d2 / width)

    return float((gram(x) @ h @ gram(y) @ h).trace() / n**2)


def independence_test(model, clean, corrupted, metric, circuit: Bool[Tensor, "sender receiver"], alpha: float = 0.05,
                      n_perm: int = 200, seed: int = 0) -> HypothesisTest:  # fmt: skip
    """Shi et al.'s independence test: HSIC between the circuit's per-prompt metric and its complement's
    (the circuit's edges corrupted, every other edge clean), p-value by permuting prompts; passed when p > alpha.

    Chapter 07: circuit discovery (validation).
    """
    scores = _per_prompt(model, clean, corrupted, metric, torch.stack([~circuit, circuit]))
    stat = hsic(scores[0], scores[1])
    gen = torch.Generator().manual_seed(seed)
    perms = [hsic(scores[0], scores[1][torch.randperm(scores.shape[1], generator=gen)]) for _ in range(n_perm)]
    p = (1 + sum(s >= stat - 1e-12 for s in perms)) / (1 + n_perm)
    return HypothesisTest(stat, p, p > alpha)
