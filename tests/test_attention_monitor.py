"""Tests for tutorial_lib.attention.monitor: halfway steps, transitions, the training callback."""

from __future__ import annotations

import pytest
import torch
from attention_models import model_getter

from tutorial_lib import attention as A
from tutorial_lib import tasks
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


def test_crossing_step_dates_onset_and_midpoint():
    steps = [0, 10, 20, 30, 40]
    values = [0.0, 0.0, 0.5, 1.0, 1.0]
    assert A.crossing_step(steps, values, 0.1) == pytest.approx(12.0)
    assert A.crossing_step(steps, values, 0.5) == pytest.approx(A.halfway_step(steps, values)) == pytest.approx(20.0)
    with pytest.raises(TutorialInputError, match="fraction"):
        A.crossing_step(steps, values, 1.5)


def test_transition_onsets_and_early_share():
    steps = torch.arange(0, 200, 10)
    ind = torch.zeros(len(steps), 2, 2)
    ind[:, 1, 0] = (steps >= 100).float()  # the head appears at once at step 100
    gap = torch.where(steps < 100, 0.4 * (steps >= 50).float(), torch.ones(len(steps)))  # 40 % of the gap earlier
    hist = {"steps": steps, "loss_first": torch.full((len(steps),), 4.0), "loss_repeated": 4.0 - gap, "induction": ind}
    tr = A.transition_steps(hist)
    assert tr.loss_onset == pytest.approx(42.5) and tr.induction_onset == pytest.approx(91)
    assert tr.early_share == pytest.approx(0.4 + 0.1 * 0.6)  # interpolated between steps 90 and 100


def test_seen_distance_by_hand():
    tokens = torch.tensor([[0, 5, 6, 5, 7, 6, 5]])
    assert A.seen_distance(tokens).tolist() == [[-1, -1, 1, -1, 2, 2, -1]]
    with pytest.raises(TutorialInputError):
        A.seen_distance(tokens.float())


def test_icl_score_is_late_minus_early():
    loss = torch.zeros(2, 10)  # predictions at 0..8, quarter = 2: early 1-2, late 7-8
    loss[:, 1:3] = 3.0
    loss[:, 7:9] = 1.0
    assert A.icl_score(loss) == pytest.approx(-2.0)


def test_probe_measures_split_the_positions(device, models):
    model = models(device)
    batch = tasks.repeated_segments(batch=16, seq_len=16, d_vocab=20, period=(3, 6), offset=(0, 3), seed=0)
    got = A.probe_measures(model, batch)
    loss = A.token_losses(model(batch.tokens.to(device)), batch.tokens.to(device)).cpu()
    dist = A.seen_distance(batch.tokens)
    other = ~batch.repeated & ~batch.first
    other[:, 0] = other[:, -1] = False
    near = other & (dist >= 0) & (dist < batch.period[:, None])
    assert got["loss_near"] == pytest.approx(loss[near].mean().item(), abs=1e-5)
    assert got["loss_repeated"] == pytest.approx(loss[batch.repeated].mean().item(), abs=1e-5)
    n_other = (other & (dist < 0)).sum() + (other & (dist >= batch.period[:, None])).sum() + near.sum()
    assert int(n_other) == int(other.sum()), "near, far and unseen split the other positions"
    assert torch.allclose(got["induction"], A.head_scores(model, batch)["induction"].cpu(), atol=1e-6)


def test_monitor_takes_a_custom_measure(device, models):
    model = models(device)
    toks = torch.randint(1, 20, (2, 9), generator=torch.Generator().manual_seed(0)).to(device)
    mon = A.InductionMonitor(every=1, probe=toks, measure=lambda _m, _p: {"x": 1.0, "y": torch.ones(2)})
    mon(0, model, 0.5)
    mon(1, model, 0.4)
    hist = mon.history()
    assert hist["x"].tolist() == [1.0, 1.0] and hist["y"].shape == (2, 2)
    with pytest.raises(TutorialInputError, match="measure"):
        A.InductionMonitor(every=1, probe=toks, measure=3)  # pyright: ignore[reportArgumentType]
