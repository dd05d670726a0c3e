"""tutorial_lib.sae.frontier: equal-length TopK/ReLU sweeps and the matched-L0 comparison."""

import math

import pytest
import torch

from tutorial_lib import sae as S
from tutorial_lib.sae.training import TrainHistory
from tutorial_lib.validation import TutorialInputError


def _pt(arch, l0, ev):
    return S.FrontierPoint(arch, 0.0, l0, ev, math.nan, TrainHistory())


def test_sweep_frontier_trains_every_knob_equally_long():
    x, true = S.synthetic_activations(2000, 16, 32, 3.0, seed=0)
    pts = S.sweep_frontier(x[:1500], x[1500:], true, ks=(2, 4), l1_coeffs=(0.5,), steps=20, batch_size=64)
    assert [p.arch for p in pts] == ["topk", "topk", "relu"]
    assert {p.history.n_steps for p in pts} == {20}
    assert all(0 < p.mcc <= 1 for p in pts)
    assert S.sweep_frontier(x[:500], x[500:600], None, ks=(2,), l1_coeffs=(), steps=5)[0].mcc != 0  # NaN


def test_matched_gaps_interpolates_in_log_l0():
    pts = [_pt("topk", 4, 0.6), _pt("topk", 16, 0.8), _pt("relu", 4, 0.4), _pt("relu", 16, 0.8)]
    l0s, gaps = S.matched_gaps(pts, n=3)
    assert l0s == pytest.approx([4, 8, 16])
    assert gaps == pytest.approx([0.2, 0.1, 0.0])
    assert S.ev_at_l0(pts[:2], 8) == pytest.approx(0.7)


def test_matched_gaps_bad_input():
    with pytest.raises(TutorialInputError, match="both"):
        S.matched_gaps([_pt("topk", 4, 0.5)])
    with pytest.raises(TutorialInputError, match="overlap"):
        S.matched_gaps([_pt("topk", 4, 0.5), _pt("relu", 40, 0.5)])
    with pytest.raises(TutorialInputError, match="same d"):
        S.sweep_frontier(torch.zeros(4, 3), torch.zeros(4, 2), None, steps=1)


def test_smoothed():
    assert S.smoothed([1.0, 2.0, 3.0], width=2) == pytest.approx([1.5, 2.5])
    assert S.smoothed([1.0], width=5) == [1.0]


def test_seed_agreement_trains_two_seeds_and_counts_shared_latents():
    x = torch.randn(512, 8)
    fractions, saes, hists = S.seed_agreement(x, 3, d_sae=16, k=2, batch_size=64, thresholds=(-1.0, 0.999))
    assert fractions[0] == 1.0 and 0.0 <= fractions[1] <= 1.0
    assert len(saes) == 2 and all(h.n_steps == 3 for h in hists)
    assert not torch.equal(saes[0].W_dec, saes[1].W_dec)
