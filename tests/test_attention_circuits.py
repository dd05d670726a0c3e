"""Tests for tutorial_lib.attention.circuits: weight circuits against direct products, folding, copying."""

from __future__ import annotations

import pytest
import torch
from attention_models import model_getter
from transformer_lens import FactoredMatrix

from tutorial_lib import attention as A
from tutorial_lib.validation import TutorialInputError


@pytest.fixture(scope="module")
def models():
    """See attention_models.model_getter."""
    return model_getter()


def test_copying_score_identity(device):
    eye = torch.eye(6, device=device)
    assert A.copying_score(eye).item() == pytest.approx(1.0)
    assert A.copying_score(-eye).item() == pytest.approx(0.0)
    assert A.copying_score(FactoredMatrix(eye[:, :3], eye[:3])).item() == pytest.approx(1.0)
    assert A.copying_score(-eye, signed=True).item() == pytest.approx(-1.0)
    # a 90-degree rotation has eigenvalues +-i: no positive real mass
    rot = torch.tensor([[0.0, -1.0], [1.0, 0.0]], device=device)
    assert A.copying_score(rot).item() == pytest.approx(0.0, abs=1e-6)
    # diag(2, -1): 2 / 3
    assert A.copying_score(torch.diag(torch.tensor([2.0, -1.0], device=device))).item() == pytest.approx(2 / 3)


def test_fold_ln(device, models):
    """Folded circuits: LN gains multiply the reading side, writes are centred."""
    model = models(device)
    raw, folded = A.circuit_weights(model, fold_ln=False), A.circuit_weights(model)
    g = model.blocks[1].ln1.w.detach()
    assert torch.allclose(folded["W_Q"][1], g[None, :, None] * raw["W_Q"][1])
    assert torch.allclose(folded["W_O"].sum(-1), torch.zeros_like(folded["W_O"].sum(-1)), atol=1e-5)
    assert torch.allclose(folded["W_E"].mean(-1), torch.zeros(20, device=device), atol=1e-6)


def test_ov_copying_counts_rows_whose_top_logit_is_the_token(device, models):
    model = models(device)
    full = A.dense(A.full_ov_circuit(model, 1, fold_ln=False))[2]
    want = sum(int(full[t, 1:].argmax()) + 1 == t for t in range(1, full.shape[0])) / (full.shape[0] - 1)
    assert A.ov_copying(model, 1, 2) == pytest.approx(want)
    with pytest.raises(TutorialInputError, match="head"):
        A.ov_copying(model, 1, 3)
