"""tutorial_lib.sae.sparse: the sparse TopK path against the dense reference, gradcheck, the rule."""

from __future__ import annotations

import pytest
import torch
from sae_helpers import randomize_biases

from tutorial_lib import sae as S


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
def test_sparse_topk_matches_dense_outputs_and_grads(device, dtype, tol):
    gen = torch.Generator().manual_seed(1)
    m = S.TopKSAE(24, 384, k=6, dtype=dtype, device=device)
    randomize_biases(m, gen)
    x = torch.randn(257, 24, generator=gen, dtype=dtype).to(device).requires_grad_()
    dead = (torch.rand(384, generator=gen) < 0.3).to(device)
    results = []
    for sparse in (True, False):
        m.sparse = sparse
        m.zero_grad()
        x.grad = None
        out = m.loss(x, dead=dead, aux_coeff=0.25, k_aux=12)
        out.loss.backward()
        assert out.aux.item() > 0  # AuxK is exercised
        results.append(
            [out.loss, out.mse, out.aux, out.l0, m(x.detach()), x.grad]
            + [p.grad for p in (m.W_enc, m.b_enc, m.W_dec, m.b_dec)]
        )
        results[-1].append(out.fired)
    for got, want in zip(*results):
        if want.dtype == torch.bool:
            assert torch.equal(got, want)
        else:
            scale = max(1.0, float(want.detach().abs().max()))
            assert float((got - want).detach().abs().max()) <= tol * scale


def test_sparse_kernels_pass_gradcheck():
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(9, 5, generator=gen, dtype=torch.float64, requires_grad=True)
    W_enc = torch.randn(5, 40, generator=gen, dtype=torch.float64, requires_grad=True)
    b_enc = torch.randn(40, generator=gen, dtype=torch.float64, requires_grad=True)
    W_dec = torch.randn(40, 5, generator=gen, dtype=torch.float64, requires_grad=True)

    def f(x, W_enc, b_enc, W_dec):
        vals, idx, _ = S.topk_encode_sparse(x, W_enc, b_enc, 3)
        return S.topk_decode_sparse(vals, idx, W_dec)

    assert torch.autograd.gradcheck(f, (x, W_enc, b_enc, W_dec))


def test_sparse_rule_follows_ratio():
    assert S.use_sparse_topk(8, 512) and S.use_sparse_topk(32, 16384)
    assert not S.use_sparse_topk(64, 256)  # k/n = 1/4: dense wins
    assert not S.use_sparse_topk(8, 64)  # too small to matter
    assert S.TopKSAE(8, 512, k=8).uses_sparse(4096)
    assert not S.TopKSAE(8, 512, k=8, sparse=False).uses_sparse(4096)
