"""Tests for tutorial_lib.attention.phase_claims (what a phase run shows) and phase_run (the shipped runs)."""

from __future__ import annotations

import math

import pytest
import torch

from tutorial_lib import attention as A
from tutorial_lib.validation import TutorialInputError


@pytest.fixture(scope="module")
def seed1():
    return A.load_phase_run(1)


def test_summary_of_the_shipped_run(seed1):
    model, hist = seed1
    s = A.phase_summary(model, hist)
    tr = s.transition
    assert tr.loss_onset < tr.induction_onset < tr.induction_step  # the loss moves first
    assert s.onset_step >= tr.induction_onset and s.onset_step - tr.induction_onset < 20  # the next record
    assert s.loss_repeated == pytest.approx(float(hist["loss_repeated"][-1]))
    assert s.head_score == pytest.approx(float(hist["induction"][-1][tr.head]))
    assert 0 < s.phase_1 < 1 and s.plateau_range >= 0
    assert s.icl_start == pytest.approx(float(hist["icl"][0]))


def test_claims_follow_their_thresholds(seed1):
    s = A.phase_summary(*seed1)
    claims = A.phase_claims(s)
    assert len(claims) == 8 and all(claims.values())
    worse = A.phase_claims(A.PhaseSummary(**{**vars(s), "plateau_range": 0.2, "icl_bxx": -1.0}))
    failed = [name for name, holds in worse.items() if not holds]
    assert len(failed) == 2 and failed[0].startswith("plateau") and "ICL" in failed[1]


def test_prefix_drift(seed1):
    _, hist = seed1
    short = {k: v[:10].clone() for k, v in hist.items()}
    assert A.prefix_drift(short, hist) == 0.0
    short["loss_repeated"][3] += 0.5
    assert A.prefix_drift(short, hist) == pytest.approx(0.5, abs=1e-5)
    short["steps"] = short["steps"] + 1  # other recorded steps: not a prefix
    assert math.isinf(A.prefix_drift(short, hist))


def test_bad_inputs_name_what_was_expected(seed1):
    model, hist = seed1
    with pytest.raises(TutorialInputError, match="lacks"):
        A.phase_summary(model, {"steps": hist["steps"]})
    with pytest.raises(TutorialInputError, match="PhaseSummary"):
        A.phase_claims({"plateau_range": 0.0})  # pyright: ignore[reportArgumentType]
    with pytest.raises(TutorialInputError, match="short"):
        A.prefix_drift({"steps": torch.arange(3)}, hist)
