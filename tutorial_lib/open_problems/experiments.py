"""Chapter 06's whole experiments as functions, so the notebook and its claim tests run the same code:
the values a head ablation writes and their distances from the data, verdicts on them, error bars for a
rank correlation, and a greedy search for a small circuit (the open exercise's reference).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens.utilities import get_act_name  # pyright: ignore[reportPrivateImportUsage]

from ..validation import (
    TutorialInputError,
    expect_finite,
    expect_ids,
    expect_index,
    expect_int_at_least,
    expect_model,
    expect_ndim,
    expect_number,
    expect_shape,
    expect_tokens,
)
from .measures import circuit_coverage, circuit_hooks, gaussian_stats, mahalanobis, spearman


def head_z_at(model, tokens: Int[Tensor, "batch pos"], positions: Int[Tensor, " batch"], layer: int) -> Tensor:
    """Every head's hook_z of `layer` at one position per prompt, [batch, n_heads, d_head]: the values
    a head ablation replaces, so distances and ablation effects are measured at the same site.

    Chapter 06: open problems as experiments (distance from the activation distribution).
    """
    tokens = expect_tokens(tokens, "tokens", expect_model(model))
    positions = expect_shape(torch.as_tensor(positions), (tokens.shape[0],), "positions", "[batch]")
    expect_ids(positions, "positions", tokens.shape[1])
    layer = expect_index(layer, "layer", model.cfg.n_layers)
    name = get_act_name("z", layer)
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, names_filter=name)
    return cache[name][torch.arange(tokens.shape[0], device=tokens.device), positions.to(tokens.device)]


def replacement_distances(model, fit, held, ref, layer: int, pick: Tensor, ridge: float = 1e-4) -> dict:
    """Per head of `layer`, Mahalanobis distances at each prompt batch's end position (`fit`, `held`, `ref`
    have .tokens and .end_pos) from a Gaussian fitted on `fit`: the held-out activations, zero, the mean
    over `ref` (mean-ablation's value) and `ref[pick]` (resample-ablation's values). {head: {name: [n]}}.

    Chapter 06: open problems as experiments (interventions go off-distribution). Reference for Exercise 06.8.
    """
    for what, d in (("fit", fit), ("held", held), ("ref", ref)):
        if not (hasattr(d, "tokens") and hasattr(d, "end_pos")):
            raise TutorialInputError(
                f"{what} must be a prompt batch with .tokens and .end_pos (tasks.ioi), got {type(d).__name__}."
            )
    expect_number(ridge, "ridge", 0.0)
    z_fit, z_held, z_ref = (head_z_at(model, d.tokens, d.end_pos, layer) for d in (fit, held, ref))
    out = {}
    for h in range(z_fit.shape[1]):
        mu, cov = gaussian_stats(z_fit[:, h])
        values = {
            "held-out": z_held[:, h],
            "zero": torch.zeros_like(mu)[None],
            "mean": z_ref[:, h].mean(0, keepdim=True),
            "resample": z_ref[pick.to(z_ref.device), h],
        }
        out[h] = {k: mahalanobis(v, mu, cov, ridge=ridge) for k, v in values.items()}
    return out


def replacement_verdicts(dist: dict, resample_tolerance: float = 0.15) -> dict:
    """Section 5's three readings of `replacement_distances` (over any heads' entries): is the mean value
    nearer the centre than half the closest real activation, for every head; are resampled activations as
    far as held-out ones (medians within `resample_tolerance`); which heads' zero lies outside the central
    90 % of real distances.

    Chapter 06: open problems as experiments (interventions go off-distribution).
    """
    expect_number(resample_tolerance, "resample_tolerance", 0.0)
    keys = {"held-out", "mean", "resample", "zero"}
    if (
        not isinstance(dist, dict)
        or not dist
        or any(not isinstance(v, dict) or not keys <= set(v) for v in dist.values())
    ):
        raise TutorialInputError(
            f"dist must be replacement_distances' non-empty {{head: {{{', '.join(sorted(keys))}}}}} dict."
        )
    held = {k: v["held-out"] for k, v in dist.items()}
    return {
        "mean_far_inside": all(float(v["mean"].max()) < 0.5 * float(held[k].min()) for k, v in dist.items()),
        "resample_typical": all(
            abs(float(v["resample"].median() / held[k].median()) - 1) < resample_tolerance for k, v in dist.items()
        ),
        "zero_atypical": {
            k for k, v in dist.items() if not 0.05 < float((held[k] <= v["zero"].max()).float().mean()) < 0.95
        },
    }


def bootstrap_rank_correlation(
    x: Float[Tensor, " n_items"], correct: Float[Tensor, "n_items n_examples"], n_boot: int = 1000, seed: int = 0
) -> Float[Tensor, " n_boot"]:
    """Spearman's correlation of x with each item's accuracy (mean of its row of `correct`), recomputed on
    `n_boot` resamples of the examples (with replacement): the spread of rho that test noise alone allows.

    Chapter 06: open problems as experiments (rank agreement, with error bars). Reference for Exercise 06.12.
    """
    x = expect_finite(expect_ndim(torch.as_tensor(x), 1, "x", "[n_items]"), "x")
    correct = expect_finite(
        expect_ndim(torch.as_tensor(correct).double(), 2, "correct", "[n_items, n_examples]"), "correct"
    )
    if correct.shape[0] != x.shape[0]:
        raise TutorialInputError(f"correct must have one row per item of x ({x.shape[0]}), got {correct.shape[0]}.")
    n_boot = expect_int_at_least(n_boot, "n_boot", 1)
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randint(correct.shape[1], (n_boot, correct.shape[1]), generator=gen)
    acc = correct[:, idx].mean(-1)  # [n_items, n_boot]
    return torch.tensor([spearman(x, acc[:, b]) for b in range(n_boot)])


def find_circuit(
    model, tokens, metric: Callable[[Tensor], Tensor], means: dict[str, Tensor], max_heads: int = 2
) -> tuple[set, float]:
    """A small circuit by greedy search: add, one at a time, the head whose addition brings `metric` (every
    other head mean-ablated with `means`, MLPs kept) closest to the clean model's, up to `max_heads` heads.
    Returns the heads and the fraction of `metric` they recover on `tokens` (`circuit_coverage`).

    Chapter 06: open problems as experiments. Reference for Exercise 06.13 (open).
    """
    cfg = expect_model(model).cfg
    expect_int_at_least(max_heads, "max_heads")
    tokens = expect_tokens(tokens, "tokens", model)
    with torch.no_grad():
        clean = float(metric(model(tokens)))

        def gap(keep: set) -> float:
            return abs(float(metric(model.run_with_hooks(tokens, fwd_hooks=circuit_hooks(model, keep, means)))) - clean)

        heads = [(layer, h) for layer in range(cfg.n_layers) for h in range(cfg.n_heads)]
        chosen: set[tuple[int, int]] = set()
        for _ in range(min(max_heads, len(heads))):
            chosen.add(min((h for h in heads if h not in chosen), key=lambda h: gap(chosen | {h})))
    return chosen, circuit_coverage(model, tokens, metric, chosen, means)["recovered"]


__all__ = ["bootstrap_rank_correlation", "find_circuit", "head_z_at", "replacement_distances", "replacement_verdicts"]
