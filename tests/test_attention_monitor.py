"""Tests for tutorial_lib.attention.monitor: halfway steps, transitions, the training callback."""

from __future__ import annotations

import pytest
import torch
from attention_models import model_getter

from tutorial_lib import attention as A
from tutorial_lib.validation import TutorialInputError


@pytest.fixture(scope="module")
def models():
    """See attention_models.model_getter."""
    return model_getter()


def test_halfway_step():
    steps = [0, 10, 20, 30, 40]
    assert A.halfway_step(steps, [0.0, 0.0, 1.0, 1.0, 1.0]) == pytest.approx(15.0)
    assert A.halfway_step(steps, [4.0, 4.0, 3.0, 0.0, 0.0]) == pytest.approx(
        20 + 10 / 3
    )  # halfway = 2, a third of the way from 3 to 0
    with pytest.raises(TutorialInputError, match="transition"):
        A.halfway_step(steps, [1.0] * 5)


def test_transition_on_synthetic_history():
    steps = torch.arange(0, 200, 10)
    sig = torch.sigmoid((steps.float() - 100) / 5)
    ind = torch.zeros(len(steps), 2, 2)
    ind[:, 1, 0] = 0.9 * sig
    hist = {"steps": steps, "loss_first": torch.full((len(steps),), 4.0), "loss_repeated": 4.0 - 3.0 * sig,
            "induction": ind}  # fmt: skip
    tr = A.transition_steps(hist)
    assert tr.head == (1, 0)
    assert tr.loss_step == pytest.approx(100, abs=1) and tr.induction_step == pytest.approx(100, abs=1)
    assert tr.gap_fraction < 0.01


def test_monitor_records_and_restores_mode(device, models):
    model = models(device)
    toks = torch.randint(1, 20, (4, 5), generator=torch.Generator().manual_seed(0))
    toks = torch.cat([torch.zeros(4, 1, dtype=torch.long), toks, toks], dim=1).to(device)
    mon = A.InductionMonitor(every=2, probe=toks)
    model.train()
    for step in range(5):
        mon(step, model, 1.0)
    assert model.training
    model.eval()
    hist = mon.history()
    assert hist["steps"].tolist() == [0, 2, 4]
    assert hist["induction"].shape == (3, 2, 3)
    assert torch.allclose(hist["induction"][-1], A.head_scores(model, toks)["induction"].cpu())
