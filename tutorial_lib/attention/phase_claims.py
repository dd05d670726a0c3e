"""What chapter 05's phase-transition run shows, measured once: `phase_summary` reads a trained run (its model
and its monitor history) into the figures the notebook prints, `phase_claims` turns them into the notebook's
asserted claims (one boolean each, its threshold in its name), and `prefix_drift` checks that a shorter run
is the first part of a longer one. The notebook and tests/test_claims_05.py both call these, so a claim is
checked the same way on the notebook's run, at the other seeds and on the controls.

Chapter 05: induction heads.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..tasks import repeated_tokens
from ..validation import TutorialInputError, model_device
from .ablation import token_losses
from .monitor import Transition, icl_score, transition_steps

__all__ = ["PLATEAU_STEPS", "PhaseSummary", "phase_claims", "phase_summary", "prefix_drift"]

PLATEAU_STEPS = 1000  # the plateau is judged over the run's last 1000 steps
ICL_HALF = 10  # |x| of the [BOS, x, x] batch the ICL score is measured on (within the training periods 2-12)
_HISTORY_KEYS = ("steps", "loss_first", "loss_repeated", "loss_far", "icl", "induction", "previous")


@dataclass(frozen=True)
class PhaseSummary:
    """The figures a phase-transition run is judged by (all at the run's end unless named otherwise).

    Chapter 05: induction heads."""

    transition: Transition  # onsets, midpoints, the induction head, the early share (`transition_steps`)
    plateau_range: float  # max - min of the repeated-half loss over the last PLATEAU_STEPS steps
    loss_first: float
    loss_repeated: float
    head_score: float  # the induction head's final induction score
    previous: float  # the best final previous-token score in layer 0
    phase_1: float  # how far from the loss onset to its midpoint the induction onset comes (0: at once, 1: at it)
    onset_step: int  # the first recorded step at or after the induction onset
    first_at_onset: float  # first-occurrence loss there
    far_at_onset: float  # loss on filler whose next token was seen more than a period back, there
    far_end: float  # the same at the end
    icl_start: float  # ICL score on the probe at the first and at the last record
    icl_end: float
    icl_bxx: float  # ICL score on 50 rows of [BOS, x, x], |x| = ICL_HALF, measured on the model now


def _check_history(history: dict) -> None:
    if not isinstance(history, dict):
        raise TutorialInputError(
            f"history must be a monitor history (a dict of tensors), got {type(history).__name__}."
        )
    missing = [k for k in _HISTORY_KEYS if k not in history]
    if missing:
        raise TutorialInputError(f"history lacks {missing}: pass InductionMonitor.history() or load_phase_run()[1].")


def phase_summary(model, history: dict[str, Tensor]) -> PhaseSummary:
    """Measure a trained phase run: `model` after training, `history` its monitor's records (every key of
    `probe_measures`). The model is run once, on [BOS, x, x], for the ICL score.

    Chapter 05: induction heads."""
    _check_history(history)
    tr = transition_steps(history)
    steps = history["steps"]
    rep = history["loss_repeated"]
    last = steps >= steps[-1] - PLATEAU_STEPS
    on = int((steps >= tr.induction_onset).nonzero()[0])
    bxx = repeated_tokens(50, ICL_HALF, model.cfg.d_vocab, seed=3).to(model_device(model))
    with torch.no_grad():
        icl_bxx = icl_score(token_losses(model(bxx), bxx))
    return PhaseSummary(
        transition=tr,
        plateau_range=float(rep[last].max() - rep[last].min()),
        loss_first=float(history["loss_first"][-1]),
        loss_repeated=float(rep[-1]),
        head_score=float(history["induction"][-1][tr.head]),
        previous=float(history["previous"][-1][0].max()),
        phase_1=(tr.induction_onset - tr.loss_onset) / (tr.loss_step - tr.loss_onset),
        onset_step=int(steps[on]),
        first_at_onset=float(history["loss_first"][on]),
        far_at_onset=float(history["loss_far"][on]),
        far_end=float(history["loss_far"][-1]),
        icl_start=float(history["icl"][0]),
        icl_end=float(history["icl"][-1]),
        icl_bxx=icl_bxx,
    )


def phase_claims(s: PhaseSummary) -> dict[str, bool]:
    """Chapter 05 section 3's claims about a converged phase run, each a boolean under a name that states it
    with its threshold. They hold at the four shipped seeds and fail on the shuffled-repeats control.

    Chapter 05: induction heads."""
    if not isinstance(s, PhaseSummary):
        raise TutorialInputError(f"pass the PhaseSummary that phase_summary returns, got {type(s).__name__}.")
    tr = s.transition
    return {
        f"plateau: the repeated-half loss moves < 0.1 over the last {PLATEAU_STEPS} steps": s.plateau_range < 0.1,
        "in-context learning: repeated-half loss < 0.25 x first-half loss": s.loss_repeated < 0.25 * s.loss_first,
        "an induction head in layer 1, score > 0.5": tr.head[0] == 1 and s.head_score > 0.5,
        "two phases: the induction onset comes > 0.4 of the way from the loss onset to its midpoint, "
        "with > 20 % of the final gap already there": s.phase_1 > 0.4 and tr.early_share > 0.2,
        "phase 1 copies any token seen before: at the induction onset, filler seen far back costs "
        "> 0.15 less than a first occurrence": s.far_at_onset < s.first_at_onset - 0.15,
        "the induction head replaces that copier: by the end, filler seen far back costs > 0.1 more "
        "than at the onset": s.far_at_onset < s.far_end - 0.1,
        "the second phase is the induction head: loss and induction midpoints < 150 steps apart": abs(
            tr.loss_step - tr.induction_step
        )
        < 150,
        f"ICL score on [BOS, x, x] (|x| = {ICL_HALF}) < -2 nats": s.icl_bxx < -2.0,
    }


def prefix_drift(
    short: dict[str, Tensor],
    long: dict[str, Tensor],
    keys: tuple[str, ...] = ("loss_first", "loss_repeated", "loss_far", "induction", "previous"),
) -> float:
    """The largest difference, over `keys` and records, between a shorter run's history and the same number of
    first records of a longer one (inf if their recorded steps differ): ~0 when the short run is a prefix.

    Chapter 05: induction heads."""
    for name, h in (("short", short), ("long", long)):
        if not isinstance(h, dict) or "steps" not in h or any(k not in h for k in keys):
            raise TutorialInputError(f"{name} must be a monitor history holding 'steps' and {list(keys)}.")
    n = len(short["steps"])
    if n > len(long["steps"]) or not torch.equal(short["steps"], long["steps"][:n]):
        return math.inf
    return max(float((short[k] - long[k][:n]).abs().max()) for k in keys)
