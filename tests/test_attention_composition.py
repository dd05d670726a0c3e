"""Tests for tutorial_lib.attention.composition: scores against direct norms and TransformerLens."""

from __future__ import annotations

import pytest
import torch
from attention_models import model_getter

from tutorial_lib import attention as A


@pytest.fixture(scope="module")
def models():
    """See attention_models.model_getter."""
    return model_getter()


def test_composition_score_matches_direct(device):
    gen = torch.Generator().manual_seed(0)
    left = torch.randn(3, 8, 8, generator=gen).to(device)
    right = torch.randn(4, 8, 8, generator=gen).to(device)
    got = A.composition_score(left, right)
    assert got.shape == (3, 4)
    for i in range(3):
        for j in range(4):
            want = torch.linalg.norm(left[i] @ right[j]) / (torch.linalg.norm(left[i]) * torch.linalg.norm(right[j]))
            assert torch.allclose(got[i, j], want, atol=1e-6)


def test_model_circuits_and_composition(device, models):
    model = models(device)
    w = A.circuit_weights(model, fold_ln=False)
    ov, qk = A.ov_circuit(model, fold_ln=False), A.qk_circuit(model, fold_ln=False)
    assert ov.shape == (2, 3, 24, 24) and qk.shape == (2, 3, 24, 24)
    assert torch.allclose(A.dense(ov[1, 2]), w["W_V"][1, 2] @ w["W_O"][1, 2], atol=1e-6)
    full = A.full_ov_circuit(model, 1, fold_ln=False)
    assert full.shape == (3, 20, 20)
    assert torch.allclose(A.dense(full[0]), w["W_E"] @ w["W_V"][1, 0] @ w["W_O"][1, 0] @ w["W_U"], atol=1e-5)
    for kind in A.COMPOSITION_KINDS:
        got = A.composition_scores(model, kind, fold_ln=False)
        assert got.shape == (3, 3)
        for a in range(3):
            for b in range(3):
                ov_a = w["W_V"][0, a] @ w["W_O"][0, a]
                qk_b = w["W_Q"][1, b] @ w["W_K"][1, b].T
                right = {"Q": qk_b, "K": qk_b.T, "V": w["W_V"][1, b] @ w["W_O"][1, b]}[kind]
                want = torch.linalg.norm(ov_a @ right) / (torch.linalg.norm(ov_a) * torch.linalg.norm(right))
                assert torch.allclose(got[a, b], want, atol=1e-5)
    # TransformerLens's own K-composition (upper block of its [layer, head, layer, head] tensor) agrees
    tl = model.all_composition_scores("K")[0, :, 1, :]
    assert torch.allclose(A.composition_scores(model, "K", fold_ln=False), tl, atol=1e-5)


def test_composition_baseline():
    base = A.composition_baseline(32, 8, n_samples=64, seed=0)
    assert base.shape == (64,) and ((base > 0) & (base < 1)).all()
    assert torch.equal(base, A.composition_baseline(32, 8, n_samples=64, seed=0))
    # random rank-8 maps in 32 dimensions compose weakly: below a projection composed with itself (1/sqrt(8))
    eye = torch.eye(32)[:, :8] @ torch.eye(32)[:8]
    assert base.mean() < A.composition_score(eye, eye).item()


def test_k_composition_score_reads_the_key_side(device, models):
    """Exercise 05.6's reference: K-composition of explicit OV and QK matrices is the model-level score."""
    model = models(device)
    ov, qk = A.dense(A.ov_circuit(model, 0)), A.dense(A.qk_circuit(model, 1))
    got = A.k_composition_score(ov, qk)
    torch.testing.assert_close(got, A.composition_scores(model, "K"))
    torch.testing.assert_close(got, A.composition_score(ov, qk.transpose(-2, -1)))
