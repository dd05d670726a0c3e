"""Watching training: an `InductionMonitor` callback records the in-context loss gap and every
head's scores, and `transition_steps` dates when each crosses halfway (chapter 05)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from ..validation import TutorialInputError, expect_finite, expect_ndim, model_device
from .ablation import token_losses
from .masks import is_segments, resolve_batch
from .scores import SCORE_KINDS, attention_scores, stack_patterns


@dataclass
class Transition:
    """When the in-context loss gap and the induction score each cross halfway from start to end.

    Chapter 05: induction heads."""

    loss_step: float
    induction_step: float
    head: tuple[int, int]
    total_steps: int

    @property
    def gap_fraction(self) -> float:
        """|loss_step - induction_step| as a fraction of the whole run."""
        return abs(self.loss_step - self.induction_step) / max(self.total_steps, 1)


def halfway_step(steps: Sequence[int] | Tensor, values: Sequence[float] | Tensor, window: int = 1) -> float:
    """First step where `values` crosses halfway between its start and end (means of `window` records),
    linearly interpolated between records.
    Chapter 05: induction heads."""
    v = torch.as_tensor(values, dtype=torch.float64).flatten()
    s = torch.as_tensor(steps, dtype=torch.float64).flatten()
    expect_finite(v, "values")
    expect_finite(s, "steps")
    if v.numel() != s.numel() or v.numel() < 2:
        raise TutorialInputError(
            f"need matching steps and values with at least 2 records, got {s.numel()} and {v.numel()}."
        )
    if not isinstance(window, int) or not 1 <= window <= v.numel() // 2:
        raise TutorialInputError(f"window must be an int in [1, {v.numel() // 2}], got {window!r}.")
    start, end = v[:window].mean(), v[-window:].mean()
    mid, sign = (start + end) / 2, torch.sign(end - start)
    if sign == 0:
        raise TutorialInputError("the curve ends where it starts: there is no transition to locate.")
    crossed = (sign * (v - mid) >= 0).nonzero()
    i = int(crossed[0])
    if i == 0:
        return float(s[0])
    frac = (mid - v[i - 1]) / (v[i] - v[i - 1])
    return float(s[i - 1] + frac * (s[i] - s[i - 1]))


@dataclass
class InductionMonitor:
    """A `train_lm` callback: every `every` steps, the loss on first vs repeated occurrences of a fixed probe
    batch and every head's scores. Probe: a RepeatedSegments batch or [BOS, x, x] tokens.
    Chapter 05: induction heads."""

    every: int
    probe: Any
    period: int | Tensor | None = None
    steps: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    loss_first: list[float] = field(default_factory=list)
    loss_repeated: list[float] = field(default_factory=list)
    scores: dict[str, list[Tensor]] = field(default_factory=lambda: {k: [] for k in SCORE_KINDS})

    def __post_init__(self):
        if not isinstance(self.every, int) or self.every < 1:
            raise TutorialInputError(f"every must be a positive int, got {self.every!r}.")
        self._batch = resolve_batch(self.probe, self.period)

    @torch.no_grad()
    def __call__(self, step: int, model, loss: float) -> None:
        if step % self.every != 0:
            return
        modules = list(model.modules())
        core = getattr(model, "original_model", None)  # train_lm steps a bridge's native core
        if isinstance(core, torch.nn.Module):
            modules += list(core.modules())
        modes = [mod.training for mod in modules]
        model.eval()
        toks, p, first, repeated = (t.to(model_device(model)) for t in self._batch)
        logits, cache = model.run_with_cache(toks, names_filter=lambda name: name.endswith("hook_pattern"))
        loss_tok = token_losses(logits, toks)
        scores = attention_scores(stack_patterns(cache), p, repeated if is_segments(self.probe) else None)
        for mod, mode in zip(modules, modes):
            mod.training = mode
        self.steps.append(int(step))
        self.train_loss.append(float(loss))
        self.loss_first.append(loss_tok[first].mean().item())
        self.loss_repeated.append(loss_tok[repeated].mean().item())
        for k in SCORE_KINDS:
            self.scores[k].append(scores[k].cpu())

    def history(self) -> dict[str, Tensor]:
        """Recorded curves as tensors: steps [n], losses [n], each score kind [n, layer, head]."""
        if not self.steps:
            raise TutorialInputError("the monitor has recorded nothing yet: pass it to train_lm(callback=...).")
        out = {
            "steps": torch.tensor(self.steps),
            "train_loss": torch.tensor(self.train_loss),
            "loss_first": torch.tensor(self.loss_first),
            "loss_repeated": torch.tensor(self.loss_repeated),
        }
        out.update({k: torch.stack(v) for k, v in self.scores.items()})
        return out

    def transition(self, head: tuple[int, int] | None = None, window: int = 1) -> Transition:
        """See `transition_steps`."""
        return transition_steps(self.history(), head=head, window=window)


def transition_steps(history: dict[str, Tensor], head: tuple[int, int] | None = None, window: int = 1) -> Transition:
    """Halfway steps of the in-context gap (loss_first - loss_repeated) and of `head`'s induction score
    (default: the head with the highest final induction score).
    Chapter 05: induction heads."""
    for key in ("steps", "loss_first", "loss_repeated", "induction"):
        if key not in history:
            raise TutorialInputError(f"history must hold {key!r} (use InductionMonitor.history()).")
    ind = history["induction"]
    expect_ndim(ind, 3, "history['induction']", "[records, layer, head]")
    if head is None:
        flat = int(ind[-window:].mean(0).argmax())
        head = divmod(flat, ind.shape[2])
    layer, h = head
    steps = history["steps"]
    gap = history["loss_first"] - history["loss_repeated"]
    return Transition(
        loss_step=halfway_step(steps, gap, window),
        induction_step=halfway_step(steps, ind[:, layer, h], window),
        head=(int(layer), int(h)),
        total_steps=int(steps[-1]),
    )
