"""Watching training: an `InductionMonitor` callback records, on a fixed probe batch, the losses that
tell copying apart from guessing (`probe_measures`) and every head's scores; `transition_steps` dates
when each curve starts to move (onset) and when it crosses halfway (chapter 05)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor

from ..validation import TutorialInputError, expect_dtype, expect_finite, expect_ndim, model_device
from .ablation import token_losses
from .masks import is_segments, resolve_batch
from .scores import attention_scores, stack_patterns


@dataclass
class Transition:
    """When the in-context loss gap and the induction score each cross halfway from start to end.

    Chapter 05: induction heads."""

    loss_step: float
    induction_step: float
    head: tuple[int, int]
    total_steps: int
    loss_onset: float = float("nan")
    induction_onset: float = float("nan")
    early_share: float = float("nan")  # the share of the final loss gap already there at the induction onset

    @property
    def gap_fraction(self) -> float:
        """|loss_step - induction_step| as a fraction of the whole run."""
        return abs(self.loss_step - self.induction_step) / max(self.total_steps, 1)


def halfway_step(steps: Sequence[int] | Tensor, values: Sequence[float] | Tensor, window: int = 1) -> float:
    """First step where `values` crosses halfway between its start and end (means of `window` records),
    linearly interpolated between records.
    Chapter 05: induction heads."""
    return crossing_step(steps, values, 0.5, window)


def crossing_step(
    steps: Sequence[int] | Tensor, values: Sequence[float] | Tensor, fraction: float = 0.5, window: int = 1
) -> float:
    """First step where `values` has moved `fraction` of the way from its start to its end (means of
    `window` records), linearly interpolated between records: 0.1 dates the onset, 0.5 the midpoint.
    Chapter 05: induction heads."""
    if not isinstance(fraction, (int, float)) or not 0.0 < fraction < 1.0:
        raise TutorialInputError(f"fraction must be a number strictly between 0 and 1, got {fraction!r}.")
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
    mid, sign = start + fraction * (end - start), torch.sign(end - start)
    if sign == 0:
        raise TutorialInputError("the curve ends where it starts: there is no transition to locate.")
    crossed = (sign * (v - mid) >= 0).nonzero()
    i = int(crossed[0])
    if i == 0:
        return float(s[0])
    frac = (mid - v[i - 1]) / (v[i] - v[i - 1])
    return float(s[i - 1] + frac * (s[i] - s[i - 1]))


LOSS_KEYS = ("loss_first", "loss_repeated", "loss_near", "loss_far", "loss_unseen", "icl")


def seen_distance(tokens: Int[Tensor, "batch pos"]) -> Int[Tensor, "batch pos"]:
    """d[b, q]: how far back the next token tokens[b, q + 1] last occurred, q - k for the latest k in 1..q with
    tokens[b, k] == tokens[b, q + 1]; -1 where it did not occur (and at the last position, which has no next
    token). Copying an earlier token can only help where d >= 0.
    Chapter 05: induction heads."""
    expect_dtype(expect_ndim(tokens, 2, "tokens", "[batch, pos]"), "int", "tokens")
    n = tokens.shape[1]
    q = torch.arange(n - 1, device=tokens.device)[:, None]
    k = torch.arange(1, n, device=tokens.device)[None, :]
    hit = (tokens[:, 1:, None] == tokens[:, None, 1:]) & (k <= q)[None]  # [batch, q, k]
    last = torch.where(hit, k[None], torch.zeros_like(k)[None]).amax(-1)  # latest matching k, 0 if none
    dist = torch.where(last > 0, q[None, :, 0] - last, torch.full_like(last, -1))
    return torch.nn.functional.pad(dist, (0, 1), value=-1)


def icl_score(loss: Float[Tensor, "batch pos"]) -> float:
    """Olsson et al.'s in-context-learning score: the mean loss at late token indices minus the mean loss at
    early ones (the last and the first quarter of the predictions, BOS and the target-less last position
    left out). Negative when later tokens are predicted better because of what came before.
    Chapter 05: induction heads."""
    loss = expect_ndim(loss, 2, "loss", "[batch, pos]")
    if loss.shape[1] < 4:
        raise TutorialInputError(
            f"loss needs at least 4 positions to compare early with late ones, got {loss.shape[1]}."
        )
    n = loss.shape[1] - 1  # predictions at positions 0 .. n - 1
    expect_finite(loss[:, :n], "loss")
    quarter = max(1, (n - 1) // 4)
    return (loss[:, n - quarter : n].mean() - loss[:, 1 : 1 + quarter].mean()).item()


@torch.no_grad()
def probe_measures(model, probe: Any, period: int | Tensor | None = None) -> dict[str, Any]:
    """What the training monitor records on a probe batch (a RepeatedSegments batch or [BOS, x, x] tokens):
    "loss_first", "loss_repeated" (the two occurrences); the other positions split by where their next
    token occurred before (`seen_distance`): "loss_near" (less than one period back), "loss_far" (further)
    and "loss_unseen" (nowhere); "icl" (`icl_score`); and every head's scores "previous", "induction", ...
    [layer, head]. A mask with no positions gives NaN.

    Exercise 05.5. Chapter 05: induction heads."""
    toks, p, first, repeated = (t.to(model_device(model)) for t in resolve_batch(probe, period))
    logits, cache = model.run_with_cache(toks, names_filter=lambda name: name.endswith("hook_pattern"))
    loss = token_losses(logits, toks)
    dist = seen_distance(toks)
    rows = torch.as_tensor(p, device=toks.device).reshape(-1, 1)
    other = ~repeated & ~first
    other[:, 0] = False  # BOS
    other[:, -1] = False  # no next token
    out: dict[str, Any] = {
        "loss_first": loss[first].mean().item(),
        "loss_repeated": loss[repeated].mean().item(),
        "loss_near": loss[other & (dist >= 0) & (dist < rows)].mean().item(),
        "loss_far": loss[other & (dist >= rows)].mean().item(),
        "loss_unseen": loss[other & (dist < 0)].mean().item(),
        "icl": icl_score(loss),
    }
    out.update(attention_scores(stack_patterns(cache), p, repeated if is_segments(probe) else None))
    return out


@dataclass
class InductionMonitor:
    """A `train_lm` callback: every `every` steps, `measure(model, probe)` on a fixed probe batch (default
    `probe_measures`: the losses on first vs repeated occurrences, the ICL score and every head's scores).
    Probe: a RepeatedSegments batch or [BOS, x, x] tokens. `history()` stacks what was recorded.
    Chapter 05: induction heads."""

    every: int
    probe: Any
    period: int | Tensor | None = None
    measure: Callable[..., dict[str, Any]] | None = None
    steps: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    records: dict[str, list[Any]] = field(default_factory=dict)

    def __post_init__(self):
        if not isinstance(self.every, int) or self.every < 1:
            raise TutorialInputError(f"every must be a positive int, got {self.every!r}.")
        if self.measure is not None and not callable(self.measure):
            raise TutorialInputError(f"measure must be a function (model, probe) -> dict, got {self.measure!r}.")
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
        if self.measure is None:
            measures = probe_measures(model, self.probe, self.period)
        else:
            measures = self.measure(model, self.probe)
        for mod, mode in zip(modules, modes):
            mod.training = mode
        if not isinstance(measures, dict):
            raise TutorialInputError(
                f"measure must return a dict of numbers and tensors, got {type(measures).__name__}."
            )
        self.steps.append(int(step))
        self.train_loss.append(float(loss))
        for key, value in measures.items():
            value = value.detach().cpu() if isinstance(value, Tensor) else torch.tensor(float(value))
            self.records.setdefault(key, []).append(value)

    def history(self) -> dict[str, Tensor]:
        """Recorded curves as tensors: "steps" [n], "train_loss" [n], each loss [n], each score kind
        [n, layer, head]."""
        if not self.steps:
            raise TutorialInputError("the monitor has recorded nothing yet: pass it to train_lm(callback=...).")
        out = {"steps": torch.tensor(self.steps), "train_loss": torch.tensor(self.train_loss)}
        out.update({k: torch.stack(v) for k, v in self.records.items()})
        return out

    def transition(self, head: tuple[int, int] | None = None, window: int = 1, onset: float = 0.1) -> Transition:
        """See `transition_steps`."""
        return transition_steps(self.history(), head=head, window=window, onset=onset)


def transition_steps(
    history: dict[str, Tensor], head: tuple[int, int] | None = None, window: int = 1, onset: float = 0.1
) -> Transition:
    """Halfway steps of the in-context gap (loss_first - loss_repeated) and of `head`'s induction score
    (default: the head with the highest final induction score), their onsets (the steps where each has
    moved `onset` of the way from start to end), and the share of the final gap reached by the induction onset.
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
    induction_onset = crossing_step(steps, ind[:, layer, h], onset, window)
    at_onset = _interpolate(steps, gap, induction_onset)
    start, end = gap[:window].mean(), gap[-window:].mean()
    return Transition(
        loss_step=crossing_step(steps, gap, 0.5, window),
        induction_step=crossing_step(steps, ind[:, layer, h], 0.5, window),
        head=(int(layer), int(h)),
        total_steps=int(steps[-1]),
        loss_onset=crossing_step(steps, gap, onset, window),
        induction_onset=induction_onset,
        early_share=float((at_onset - start) / (end - start)),
    )


def _interpolate(steps: Tensor, values: Tensor, at: float) -> float:
    """values linearly interpolated at step `at`. Chapter 05: induction heads."""
    s, v = steps.to(torch.float64), values.to(torch.float64)
    i = int(torch.searchsorted(s, torch.tensor([at], dtype=torch.float64)).clamp(1, len(s) - 1))
    frac = (at - s[i - 1]) / (s[i] - s[i - 1])
    return float(v[i - 1] + frac * (v[i] - v[i - 1]))
