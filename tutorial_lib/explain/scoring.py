"""Scoring explanations by simulation (Paulo et al. 2024): a scorer that reads only the explanation
decides, for each context, whether the latent fires there (detection) or whether the highlighted token
is the one it fires on (fuzzing); the score is the balanced accuracy of those decisions on held-out
contexts. Here the scorer applies the explanation's label exactly, so the score measures the
explanation, not a language model's reading of it.

Chapter 08: explaining latents automatically.
"""

from __future__ import annotations

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from ..validation import TutorialInputError, expect_choice, expect_dtype, expect_ndim, expect_same_shape, expect_shape
from .contexts import max_activating, non_activating, random_activating
from .explainers import LabelTable, explain_latent

__all__ = ["balanced_accuracy", "detection_accuracy", "fuzzing_accuracy", "score_latents"]


def balanced_accuracy(predicted: Bool[Tensor, " n"], truth: Bool[Tensor, " n"]) -> float:
    """(true-positive rate + true-negative rate) / 2: 0.5 for any guess that ignores the truth, whatever
    the share of positives. Chapter 08: explaining latents automatically."""
    predicted = expect_dtype(expect_ndim(predicted, 1, "predicted", "[n]"), "bool", "predicted")
    truth = expect_dtype(expect_ndim(truth, 1, "truth", "[n]"), "bool", "truth")
    expect_same_shape(predicted, truth, "predicted and truth")
    if truth.all() or not truth.any():
        raise TutorialInputError("truth needs both positives and negatives for a balanced accuracy.")
    tpr = predicted[truth].float().mean()
    tnr = (~predicted[~truth]).float().mean()
    return float((tpr + tnr) / 2)


def _pairs(where: object, name: str, shape: tuple[int, ...]) -> Tensor:
    """(row, position) pairs inside a [batch, pos] grid of `shape`. Chapter 08: explaining latents automatically."""
    where = expect_dtype(expect_shape(where, (None, 2), name, "[k, 2]: (row, position) pairs"), "int", name)
    if len(where) and not (
        bool((where >= 0).all()) and int(where[:, 0].max()) < shape[0] and int(where[:, 1].max()) < shape[1]
    ):
        raise TutorialInputError(f"{name} must hold (row, position) pairs inside [batch, pos] = {list(shape)}.")
    return where


def detection_accuracy(
    predicate: Bool[Tensor, "batch pos"], positives: Int[Tensor, "k 2"], negatives: Int[Tensor, "m 2"]
) -> float:
    """Exercise 08.10. Detection: the scorer says "fires" where the explanation's predicate holds; the
    balanced accuracy of that over contexts where the latent fires (`positives`) and where it does not.
    Chapter 08: explaining latents automatically."""
    predicate = expect_dtype(expect_ndim(predicate, 2, "predicate", "[batch, pos]"), "bool", "predicate")
    positives = _pairs(positives, "positives", tuple(predicate.shape))
    negatives = _pairs(negatives, "negatives", tuple(predicate.shape))
    where = torch.cat([positives, negatives])
    truth = torch.cat([torch.ones(len(positives)), torch.zeros(len(negatives))]).bool().to(predicate.device)
    return balanced_accuracy(predicate[where[:, 0], where[:, 1]], truth)


def fuzzing_accuracy(
    predicate: Bool[Tensor, "batch pos"],
    acts: Float[Tensor, "batch pos"],
    positives: Int[Tensor, "k 2"],
    seed: int = 0,
    mask: Bool[Tensor, "batch pos"] | None = None,
) -> float:
    """Fuzzing: in each activating context (row, p) the scorer sees the true token p highlighted, and
    once a token of the same row where the latent is zero; it accepts a highlight where the predicate
    holds. Balanced accuracy over both. Chapter 08: explaining latents automatically."""
    predicate = expect_dtype(expect_ndim(predicate, 2, "predicate", "[batch, pos]"), "bool", "predicate")
    expect_same_shape(predicate, expect_dtype(acts, "float", "acts"), "predicate and acts")
    if mask is not None:
        expect_same_shape(acts, expect_dtype(mask, "bool", "mask"), "acts and mask")
    positives = _pairs(positives, "positives", tuple(predicate.shape))
    quiet = (acts <= 0) if mask is None else (acts <= 0) & mask
    rows = positives[:, 0]
    weights = quiet[rows].float()
    keep = weights.sum(1) > 0
    if not keep.any():
        raise TutorialInputError("no activating context has a quiet token in its row to highlight instead.")
    gen = torch.Generator().manual_seed(seed)
    decoy = torch.multinomial(weights[keep].cpu(), 1, generator=gen)[:, 0].to(rows.device)
    true_hi = predicate[rows[keep], positives[keep, 1]]
    fake_hi = predicate[rows[keep], decoy]
    truth = torch.cat([torch.ones_like(true_hi), torch.zeros_like(fake_hi)])
    return balanced_accuracy(torch.cat([true_hi, fake_hi]), truth)


def score_latents(
    labels: LabelTable,
    acts: Float[Tensor, "batch pos latent"],
    seed: int = 0,
    mask: Bool[Tensor, "batch pos"] | None = None,
    n_shown: int = 20,
    n_scored: int = 50,
    min_fires: int = 60,
    score_acts: Float[Tensor, "batch pos latent"] | None = None,
    explain_from: str = "max",
) -> dict[str, Tensor]:
    """Explain every latent that fires on at least `min_fires` tokens from its `n_shown` max-activating
    contexts, then score it by detection on its own contexts (the self-consistency trap), and by detection
    and fuzzing on `n_scored` held-out random-activating contexts against as many non-activating ones.
    `explain_from="random"` shows the explainer random-activating contexts instead (no selection of the
    strongest). `score_acts` (default `acts`) are the activations the scored contexts come from: shuffled ones
    (contexts.shuffled_activations) make the control. Returns per scored latent: "latent", "label",
    "own", "detection", "fuzzing".
    Chapter 08: explaining latents automatically."""
    acts = expect_dtype(expect_ndim(acts, 3, "acts", "[batch, pos, latent]"), "float", "acts")
    expect_choice(explain_from, ["max", "random"], "explain_from")
    expect_same_shape(labels.values[0], acts[..., 0], "labels' [batch, pos] and acts[..., 0]")
    mask = torch.ones_like(acts[..., 0], dtype=torch.bool) if mask is None else mask
    score_acts = acts if score_acts is None else expect_same_shape(score_acts, acts, "score_acts and acts")
    fires = ((acts > 0) & mask[..., None]).sum((0, 1))
    out: dict[str, list] = {"latent": [], "label": [], "own": [], "detection": [], "fuzzing": []}
    for j in (fires >= min_fires).nonzero()[:, 0].tolist():
        a = score_acts[..., j]
        shown = (max_activating(acts[..., j], n_shown, mask) if explain_from == "max"
                 else random_activating(acts[..., j], n_shown, seed + 7919 * (j + 1), mask))  # fmt: skip
        exp = explain_latent(labels, shown)
        pred = labels.values[exp.label]
        held = random_activating(a, n_scored, seed + j, mask, exclude=shown)
        negatives = non_activating(a, n_scored, seed + j, mask)
        out["latent"].append(j)
        out["label"].append(exp.label)
        out["own"].append(detection_accuracy(pred, shown, negatives))
        out["detection"].append(detection_accuracy(pred, held, negatives))
        out["fuzzing"].append(fuzzing_accuracy(pred, a, held, seed + j, mask))
    return {k: torch.tensor(v) for k, v in out.items()}
