"""tutorial_lib.sae.architectures (and base): activations, penalties, input validation, and the
chapter's exercise references against the classes they stand for."""

from __future__ import annotations

import pytest
import torch

from tutorial_lib import sae as S
from tutorial_lib.validation import TutorialInputError


def test_batchtopk_keeps_k_per_row_on_average():
    m = S.BatchTopKSAE(8, 64, k=3)
    m.train()
    z = m.encode(torch.randn(100, 8))
    assert (z != 0).sum().item() <= 300 and (z != 0).sum(1).float().mean() > 2.0


def test_jumprelu_threshold_gets_ste_gradient():
    m = S.JumpReLUSAE(4, 6, l0_coeff=1.0, bandwidth=0.5, init_threshold=0.2, l0_warmup=0.0)
    pre = torch.tensor([[0.1, 0.25, 0.5, -1.0, 0.3, 0.21]])
    pen = m.penalty(m.activation(pre), pre, 1.0)
    (g,) = torch.autograd.grad(pen, m.log_threshold)
    # d/dtheta of H(pre - theta) ~ -(1/eps) [|pre - theta| < eps/2]; chain rule through exp: * theta
    inside = ((pre - 0.2).abs() < 0.25).float()[0]
    assert torch.allclose(g, -(1 / 0.5) * inside * 0.2)
    assert pen.item() == pytest.approx(4.0)  # 0.25, 0.5, 0.3 and 0.21 exceed 0.2


def test_l1_warmup_ramps():
    m = S.ReLUSAE(4, 8, l1_coeff=2.0, l1_warmup=0.5)
    z, pre = torch.ones(3, 8), torch.ones(3, 8)
    full = m.penalty(z, pre, 1.0)
    assert m.penalty(z, pre, 0.25).item() == pytest.approx(full.item() / 2)
    assert m.penalty(z, pre, 0.0).item() == 0.0


def test_input_validation():
    m = S.TopKSAE(8, 32, k=2)
    with pytest.raises(TutorialInputError):
        m.encode(torch.randn(4, 9))
    with pytest.raises(TutorialInputError):
        m.encode(torch.randint(0, 3, (4, 8)))
    with pytest.raises(TutorialInputError):
        S.TopKSAE(8, 32, k=40)
    with pytest.raises(TutorialInputError):
        S.make_sae("gated", 8, 32)
    with pytest.raises(TutorialInputError):
        S.train_sae(m, torch.randn(100, 7))
    with pytest.raises(TutorialInputError):
        S.explained_variance(torch.randn(5, 3), torch.randn(5, 4))


def test_decoder_weighted_l1_is_the_relu_penalty():
    gen = torch.Generator().manual_seed(10)
    m = S.ReLUSAE(6, 12, l1_coeff=1.0, l1_warmup=0.0)
    with torch.no_grad():
        m.W_dec.mul_(torch.linspace(0.2, 3.0, 12)[:, None])  # unequal decoder norms
    z = torch.randn(5, 12, generator=gen).relu()
    norms = m.W_dec.detach().norm(dim=1)
    want = sum(float(z[b, i]) * float(norms[i]) for b in range(5) for i in range(12)) / 5
    assert float(S.decoder_weighted_l1(z, m.W_dec.detach())) == pytest.approx(want, rel=1e-5)
    # The ReLU penalty reads the codes only: any pre-activations give the same value.
    assert torch.equal(m.penalty(z, torch.randn(5, 12, generator=gen), 1.0), S.decoder_weighted_l1(z, m.W_dec))


def test_exercise_references_agree_with_the_classes():
    gen = torch.Generator().manual_seed(11)
    m = S.ReLUSAE(6, 10, l1_coeff=0.7, l1_warmup=0.0)
    with torch.no_grad():
        for p in (m.W_enc, m.b_enc, m.W_dec, m.b_dec):
            p.copy_(torch.randn(p.shape, generator=gen))
    x = torch.randn(8, 6, generator=gen)
    z, x_hat = S.sae_forward(x, m.W_enc, m.b_enc, m.W_dec, m.b_dec)
    with torch.no_grad():
        assert torch.allclose(z, m.encode(x)) and torch.allclose(x_hat, m(x))
        assert float(S.sae_loss(x, x_hat, z, m.W_dec, 0.7)) == pytest.approx(float(m.loss(x).loss), rel=1e-6)
    pre = torch.randn(7, 9, generator=gen)
    vals, idx = pre.topk(3, dim=-1)
    want = torch.zeros_like(pre).scatter(-1, idx, vals.relu())
    assert torch.equal(S.topk_activation(pre, 3), want)
    assert torch.equal(S.TopKSAE(9, 9, k=3).activation(pre), want)
