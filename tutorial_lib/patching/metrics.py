"""Chapter 04's metrics: the logit difference and its normalisation between the corrupted and clean runs."""

from __future__ import annotations

from collections.abc import Callable

import torch
from jaxtyping import Float, Int
from torch import Tensor

from ..validation import TutorialInputError, expect_finite, expect_ids, expect_ndim, expect_scalar

Metric = Callable[[Float[Tensor, "batch pos d_vocab"]], Float[Tensor, ""]]

__all__ = ["Metric", "logit_diff", "metric_scalar", "metric_values", "normalise"]


def logit_diff(
    logits: Float[Tensor, "batch pos d_vocab"],
    correct_tokens: Int[Tensor, " batch"],
    wrong_tokens: Int[Tensor, " batch"],
    positions: Int[Tensor, " batch"] | None = None,
    per_prompt: bool = False,
) -> Float[Tensor, ""] | Float[Tensor, " batch"]:
    """logit[correct] - logit[wrong] at the final position (or `positions`), averaged over the batch.

    Chapter 04: activation patching. Exercise 04.1 (the reference, as `logit_diff`).
    """
    expect_ndim(logits, 3, "logits", "[batch, pos, d_vocab]")
    batch = logits.shape[0]
    correct = _expect_index_vector(correct_tokens, batch, "correct_tokens", logits.shape[-1]).to(logits.device)
    wrong = _expect_index_vector(wrong_tokens, batch, "wrong_tokens", logits.shape[-1]).to(logits.device)
    rows = torch.arange(batch, device=logits.device)
    if positions is None:
        at = logits[:, -1, :]
    else:
        pos = _expect_index_vector(positions, batch, "positions", logits.shape[1]).to(logits.device)
        at = logits[rows, pos, :]
    diff = at[rows, correct] - at[rows, wrong]
    return diff if per_prompt else diff.mean()


def normalise(metric_value: Tensor | float, clean_value: Tensor | float, corrupted_value: Tensor | float) -> Tensor:
    """(value - corrupted) / (clean - corrupted): 0 for the corrupted run, 1 for the clean run.

    Chapter 04: activation patching.
    """
    clean_value, corrupted_value = (
        expect_finite(v, n) for v, n in ((clean_value, "clean_value"), (corrupted_value, "corrupted_value"))
    )
    expect_finite(metric_value, "metric_value")
    gap = clean_value - corrupted_value
    if torch.any(gap == 0):
        raise TutorialInputError(
            f"clean_value and corrupted_value must differ to normalise; both are {clean_value.tolist()}."
        )
    return (torch.as_tensor(metric_value) - corrupted_value) / gap


def _expect_index_vector(x: object, batch: int, name: str, size: int) -> Tensor:
    """An int vector with one entry per prompt, each in [0, size). Chapter 04: activation patching."""
    x = expect_ndim(x, 1, name, "[batch]")
    expect_ids(x, name, size)
    if x.shape[0] != batch:
        raise TutorialInputError(f"{name} must have one entry per prompt ({batch}), got {x.shape[0]}.")
    return x


def metric_scalar(value: object) -> Tensor:
    """A metric's value as a detached float32 0-dim tensor; refuses anything but one number.

    Chapter 04: activation patching.
    """
    return expect_scalar(value, "metric").float()


def metric_values(metric: Metric, logits: Float[Tensor, "var batch pos d_vocab"]) -> Float[Tensor, " var"]:
    """metric of each variant's logits (the first axis), stacked.

    Chapter 04: activation patching.
    """
    return torch.stack([metric_scalar(metric(logits[v])) for v in range(logits.shape[0])])
