"""tutorial_lib.sae.synthetic: seeded, shaped, with the frequencies and energy it promises."""

from __future__ import annotations

import pytest
import torch

from tutorial_lib import sae as S


def test_synthetic_activations_seeded_and_shaped():
    x1, f1 = S.synthetic_activations(3000, 32, 96, 6.0, seed=7)
    x2, f2 = S.synthetic_activations(3000, 32, 96, 6.0, seed=7)
    x3, _ = S.synthetic_activations(3000, 32, 96, 6.0, seed=7, correlation=0.5)
    assert x1.shape == (3000, 32) and f1.shape == (96, 32)
    assert torch.equal(x1, x2) and torch.equal(f1, f2) and not torch.equal(x1, x3)
    assert torch.allclose(f1.norm(dim=1), torch.ones(96))
    # Energy: E||x||^2 = sum_i p_i E[m^2] plus small cross terms between random unit features.
    p = S.feature_frequencies(96, 6.0)
    assert float(p.sum()) == pytest.approx(6.0, rel=1e-5) and bool((p[:-1] >= p[1:]).all())
    m2 = 1 + 0.25**2  # E[m^2] for m = |1 + 0.25 N(0,1)|
    assert float(x1.pow(2).sum(1).mean()) == pytest.approx(6.0 * m2, rel=0.15)


def test_feature_frequencies_cap():
    p = S.feature_frequencies(10, 8.0, decay=2.0)
    assert float(p.max()) <= 0.9 + 1e-6 and float(p.sum()) == pytest.approx(8.0, rel=1e-5)


def test_an_sae_with_the_datas_seed_does_not_start_at_the_true_features():
    """The data's generator is seeded apart from the SAEs': before it was, TopKSAE(seed=0) started AT the
    features of synthetic_activations(seed=0) (MCC 1.0 untrained)."""
    for seed in (0, 1):
        _, true = S.synthetic_activations(10, 64, 256, 8.0, seed=seed)
        assert S.feature_recovery(S.TopKSAE(64, 256, seed=seed), true)["mcc"] < 0.5
