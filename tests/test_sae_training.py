"""tutorial_lib.sae.training: training on synthetic ground truth, seeding, every architecture,
dead latents and AuxK, iterators."""

from __future__ import annotations

import pytest
import torch

from tutorial_lib import sae as S
from tutorial_lib.validation import TutorialInputError


@pytest.mark.slow
def test_topk_recovers_ground_truth_features(device):
    x, true = S.synthetic_activations(60_000, 32, 64, 4.0, seed=0, device=device)
    m = S.TopKSAE(32, 64, k=4, device=device, seed=0)
    untrained = S.feature_recovery(m, true)["mcc"]
    hist = S.train_sae(m, x, epochs=12, batch_size=1024, lr=3e-3, seed=0)
    rec = S.feature_recovery(m, true)
    ev = S.evaluate(m, x[:8192])
    # since the data has its own random stream, an untrained SAE no longer starts at the true features
    assert untrained < 0.5 and rec["mcc"] > 0.85, (untrained, rec)
    assert ev.explained_variance > 0.75
    assert hist.mse[-1] < hist.mse[0]


def test_training_is_seeded():
    x, _ = S.synthetic_activations(4096, 16, 32, 3.0, seed=1)
    weights = []
    for _ in range(2):
        m = S.TopKSAE(16, 64, k=3, seed=3)
        S.train_sae(m, x, steps=10, batch_size=512, seed=5)
        weights.append(m.W_dec.detach().clone())
    assert torch.equal(*weights)


@pytest.mark.parametrize(
    "arch,kwargs",
    [("relu", {"l1_coeff": 0.05}), ("topk", {"k": 4}), ("batchtopk", {"k": 4}), ("jumprelu", {"l0_coeff": 0.01})],
)
def test_every_architecture_trains(device, arch, kwargs):
    x, _ = S.synthetic_activations(16_384, 32, 64, 4.0, seed=2, device=device)
    m = S.make_sae(arch, 32, 128, device=device, **kwargs)
    before = S.evaluate(m, x).explained_variance
    hist = S.train_sae(m, x, epochs=3, batch_size=512, lr=2e-3, seed=0)
    after = S.evaluate(m, x)
    assert after.explained_variance > max(before, 0.5), (before, after)
    assert hist.n_steps == 3 * (16_384 // 512)
    if m.unit_norm_decoder:
        assert torch.allclose(m.W_dec.norm(dim=1), torch.ones(128, device=device), atol=1e-5)
    if isinstance(m, S.BatchTopKSAE):
        assert float(m.threshold) > 0
    if isinstance(m, S.JumpReLUSAE):
        assert not torch.allclose(m.threshold, torch.full_like(m.threshold, 0.1))  # the STE moved it


def test_dead_window_scales_with_run_length():
    assert S.default_dead_window(100) == 5
    assert S.default_dead_window(10_000) == 500
    assert S.default_dead_window(10**7) == 1000
    x, _ = S.synthetic_activations(2048, 8, 16, 2.0, seed=0)
    hist = S.train_sae(S.TopKSAE(8, 32, k=2), x, steps=40, batch_size=256)
    assert hist.dead_window == 5


def test_train_on_iterator_and_auxk_revives():
    x, _ = S.synthetic_activations(8192, 16, 32, 3.0, seed=0)
    m = S.TopKSAE(16, 64, k=3)
    with torch.no_grad():
        m.b_enc[32:] = -100.0  # half the latents start dead
    batches = (x[i : i + 512] for i in range(0, 8192, 512))
    with pytest.raises(TutorialInputError):
        S.train_sae(m, (b for b in batches))
    hist = S.train_sae(m, iter([x[i : i + 512] for i in range(0, 8192, 512)] * 4), steps=64, lr=1e-2)
    assert hist.n_steps == 64 and max(hist.aux) > 0


def test_training_step_is_one_step_of_train_sae():
    """train_sae without schedule, AuxK and b_dec init is training_step repeated."""
    x, _ = S.synthetic_activations(256, 8, 16, 2.0, seed=3)
    a, b = S.TopKSAE(8, 32, k=2, sparse=False, seed=1), S.TopKSAE(8, 32, k=2, sparse=False, seed=1)
    hist = S.train_sae(
        a, iter([x] * 3), steps=3, lr=1e-2, warmup_frac=0, decay_frac=0, aux_coeff=0, init_b_dec=False, log_every=1
    )
    b.train()
    b.normalize_decoder()
    opt = torch.optim.Adam(b.parameters(), lr=1e-2)
    losses = [S.training_step(b, x, opt) for _ in range(3)]
    assert hist.loss == pytest.approx(losses, rel=1e-6)
    for name in ("W_enc", "b_enc", "W_dec", "b_dec"):
        assert torch.allclose(getattr(a, name), getattr(b, name), atol=1e-6), name


def test_train_topk_keeps_unit_rows_and_lowers_the_loss():
    x, _ = S.synthetic_activations(2000, 8, 16, 2.0, seed=0)
    sae = S.TopKSAE(8, 16, k=2, seed=1)
    losses = S.train_topk(sae, x, 200, batch_size=64, lr=1e-2, dead_window=10, seed=0)
    assert len(losses) == 200 and losses[-1] < 0.7 * losses[0]
    assert torch.allclose(sae.W_dec.norm(dim=1), torch.ones(16), atol=1e-4)


def test_center_b_enc_starts_the_encoder_at_x_minus_the_mean():
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(512, 8, generator=gen) + 40.0  # a large mean, as in a real model's residual stream
    sae = S.TopKSAE(8, 32, k=2, seed=0)
    S.train_sae(sae, x, steps=1, lr=0.0, batch_size=64, center_b_enc=True)
    assert torch.allclose(sae.b_dec, x.mean(0), atol=1e-5)
    plain = S.TopKSAE(8, 32, k=2, seed=0)
    S.train_sae(plain, x, steps=1, lr=0.0, batch_size=64)
    with torch.no_grad():
        torch.testing.assert_close(sae.encode(x), sae.activation((x - x.mean(0)) @ sae.W_enc), atol=1e-4, rtol=1e-4)
        # without it, the mean picks the same latents for (nearly) every row
        assert (plain.encode(x) != 0).any(0).sum() < (sae.encode(x) != 0).any(0).sum()
