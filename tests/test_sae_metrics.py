"""tutorial_lib.sae.metrics against analytic answers, and loss recovered in a TransformerBridge model."""

from __future__ import annotations

import sys

import pytest
import torch
import torch.nn.functional as F

from tutorial_lib import sae as S
from tutorial_lib.validation import TutorialInputError


def test_explained_variance_analytic(device):
    gen = torch.Generator().manual_seed(3)
    scales = torch.tensor([5.0, 3.0, 2.0, 1.0, 0.5, 0.25])
    x = (torch.randn(4000, 6, generator=gen, dtype=torch.float64) * scales + 7.0).to(device)
    assert S.explained_variance(x, x.clone()) == pytest.approx(1.0)
    assert S.explained_variance(x, x.mean(0).expand_as(x)) == pytest.approx(0.0, abs=1e-12)
    centered = x - x.mean(0)
    evals, evecs = torch.linalg.eigh(centered.T @ centered)
    top = evecs[:, -2:]  # rank-2 PCA
    x_hat = x.mean(0) + centered @ top @ top.T
    share = float(evals[-2:].sum() / evals.sum())
    assert S.explained_variance(x, x_hat) == pytest.approx(share, rel=1e-9)


def test_evaluate_counts_dead_dense_and_l0(device):
    m = S.TopKSAE(4, 8, k=1, device=device, sparse=False)
    with torch.no_grad():  # latent i reads coordinate i (i < 4); latents 4..7 never win
        m.W_enc.zero_()
        m.W_enc[:, :4] = torch.eye(4)
        m.b_enc.copy_(torch.tensor([0, 0, 0, 0, -9, -9, -9, -9.0]))
        m.W_dec.zero_()
        m.W_dec[:4] = torch.eye(4)
        m.b_dec.zero_()
    x = torch.zeros(100, 4, device=device)
    x[:50, 0] = 1.0
    x[50:, 1:] = torch.tensor([0.1, 0.2, 0.3], device=device) * torch.arange(1, 51, device=device)[:, None]
    ev = S.evaluate(m, x, batch_size=32, dense_threshold=0.4)
    with torch.no_grad():
        z = m.encode(x)
        x_hat = m.decode(z)
    assert ev.l0 == pytest.approx(S.l0_norm(z)) and ev.l0 == pytest.approx(1.0)
    assert ev.dead_fraction == pytest.approx(6 / 8)  # latents 1, 2 (never the max) and 4..7
    assert ev.dense_fraction == pytest.approx(2 / 8)  # latent 0 (50 %) and 3 (50 %)
    assert ev.explained_variance == pytest.approx(S.explained_variance(x, x_hat), rel=1e-6)
    assert ev.mse == pytest.approx(float((x - x_hat).pow(2).sum(1).mean()), rel=1e-6)


def test_feature_recovery_on_known_dictionaries(monkeypatch):
    gen = torch.Generator().manual_seed(4)
    true = F.normalize(torch.randn(30, 16, generator=gen), dim=1)
    learned = torch.cat([true[torch.randperm(30, generator=gen)] * 3.0, torch.randn(10, 16, generator=gen)])
    rec = S.feature_recovery(learned, true)
    assert rec["mcc"] == pytest.approx(1.0) and rec["mmcs"] == pytest.approx(1.0)
    # Two copies of one feature: max-cosine is fooled, the one-to-one matching is not.
    dup = true.clone()
    dup[1] = dup[0]
    rec = S.feature_recovery(dup, true)
    assert rec["mmcs"] > rec["mcc"]
    hungarian = rec["mcc"]
    monkeypatch.setitem(sys.modules, "scipy.optimize", None)  # import fails: greedy fallback
    assert S.feature_recovery(learned, true)["mcc"] == pytest.approx(1.0)
    greedy = S.feature_recovery(dup, true)["mcc"]
    assert greedy <= hungarian + 1e-6


def test_shared_latent_fraction():
    gen = torch.Generator().manual_seed(5)
    a = F.normalize(torch.randn(40, 64, generator=gen), dim=1)
    b = torch.cat([a[:20].flip(0), F.normalize(torch.randn(30, 64, generator=gen), dim=1)])
    assert S.shared_latent_fraction(a, a) == 1.0
    assert S.shared_latent_fraction(a, b) == pytest.approx(0.5)
    assert S.shared_latent_fraction(b, a) == pytest.approx(20 / 50)
    with pytest.raises(TutorialInputError):
        S.shared_latent_fraction(a, torch.randn(3, 8))


def _tiny_model():
    from transformer_lens.config import TransformerBridgeConfig
    from transformer_lens.model_bridge import TransformerBridge

    cfg = TransformerBridgeConfig(
        n_layers=1,
        d_model=16,
        n_heads=2,
        d_head=8,
        d_vocab=30,
        n_ctx=12,
        attn_only=True,
        normalization_type="LN",
        seed=0,
        device="cpu",
    )
    model = TransformerBridge.boot_native(cfg)  # pyright: ignore[reportAttributeAccessIssue]  # added at import time
    model.eval()
    return model


def _identity_sae(d: int) -> S.TopKSAE:
    """relu(x) and relu(-x) as 2d latents with k = d: reconstructs x exactly (no zero coordinates)."""
    m = S.TopKSAE(d, 2 * d, k=d, sparse=False)
    eye = torch.eye(d)
    with torch.no_grad():
        m.W_enc.copy_(torch.cat([eye, -eye], 1))
        m.W_dec.copy_(torch.cat([eye, -eye], 0))
        m.b_enc.zero_()
        m.b_dec.zero_()
    return m


def test_loss_recovered():
    model = _tiny_model()
    tokens = torch.randint(0, 30, (4, 12), generator=torch.Generator().manual_seed(0))
    hook = "blocks.0.hook_resid_post"
    perfect = S.loss_recovered(model, _identity_sae(16), tokens, hook)
    assert perfect["sae_loss"] == pytest.approx(perfect["clean_loss"], abs=1e-5)
    assert perfect["recovered_vs_zero"] == pytest.approx(1.0, abs=1e-4)
    assert perfect["recovered_vs_mean"] == pytest.approx(1.0, abs=1e-3)
    zero = _identity_sae(16)
    with torch.no_grad():
        zero.W_dec.zero_()  # always outputs 0: exactly zero-ablation
    res = S.loss_recovered(model, zero, tokens, hook)
    assert res["sae_loss"] == pytest.approx(res["zero_ablation_loss"], abs=1e-5)
    assert res["recovered_vs_zero"] == pytest.approx(0.0, abs=1e-4)
    with pytest.raises(TutorialInputError):
        S.loss_recovered(model, S.TopKSAE(8, 32, k=2), tokens, hook)


def test_loss_recovered_mask_keeps_only_chosen_predictions():
    model = _tiny_model()
    tokens = torch.randint(0, 30, (4, 12), generator=torch.Generator().manual_seed(1))
    hook = "blocks.0.hook_resid_post"
    everything = S.loss_recovered(model, _identity_sae(16), tokens, hook, loss_mask=torch.ones(4, 11, dtype=torch.bool))
    assert everything["clean_loss"] == pytest.approx(
        S.loss_recovered(model, _identity_sae(16), tokens, hook)["clean_loss"], abs=1e-5
    )
    mask = torch.zeros(4, 11, dtype=torch.bool)
    mask[:, -1] = True  # only the last prediction of each row
    with torch.no_grad():
        logits = model(tokens)
    want = torch.nn.functional.cross_entropy(logits[:, -2], tokens[:, -1]).item()
    assert S.loss_recovered(model, _identity_sae(16), tokens, hook, loss_mask=mask)["clean_loss"] == pytest.approx(
        want, abs=1e-5
    )
    with pytest.raises(TutorialInputError):
        S.loss_recovered(model, _identity_sae(16), tokens, hook, loss_mask=torch.ones(4, 12, dtype=torch.bool))


def test_latent_label_correlation_is_pearson():
    gen = torch.Generator().manual_seed(12)
    labels = torch.randint(0, 4, (60,), generator=gen)
    z = torch.randn(60, 5, generator=gen).relu() + labels[:, None] * torch.randn(5, generator=gen)
    z[:, 3] = 0.0  # a latent that never fires
    got = S.latent_label_correlation(z, labels)
    for i in (0, 1, 2, 4):
        want = torch.corrcoef(torch.stack([z[:, i].double(), labels.double()]))[0, 1]
        assert float(got[i]) == pytest.approx(float(want), abs=1e-6)
    assert float(got[3]) == 0.0


def test_steer_with_latent_moves_only_the_chosen_positions():
    model = _tiny_model()
    tokens = torch.randint(0, 30, (3, 12), generator=torch.Generator().manual_seed(1))
    hook = "blocks.0.hook_resid_post"
    sae = _identity_sae(16)
    where = torch.zeros(3, 12, dtype=torch.bool)
    where[:, 4] = True
    with torch.no_grad():
        base = model(tokens).softmax(-1)[:, 4, 7].mean()
    assert S.steer_with_latent(model, sae, tokens, hook, 0, 0.0, where, 7) == pytest.approx(float(base), abs=1e-5)
    assert S.steer_with_latent(model, sae, tokens, hook, 0, 50.0, where, 7) != pytest.approx(float(base), abs=1e-4)
    with pytest.raises(TutorialInputError, match="latent"):
        S.steer_with_latent(model, sae, tokens, hook, 99, 1.0, where, 7)
    with pytest.raises(TutorialInputError):
        S.steer_with_latent(model, sae, tokens, hook, 0, 1.0, where[:, :5], 7)


def test_auroc():
    labels = torch.tensor([True, True, False, False])
    assert S.auroc(torch.tensor([3.0, 2.0, 1.0, 0.0]), labels) == 1.0
    assert S.auroc(torch.tensor([0.0, 1.0, 2.0, 3.0]), labels) == 0.0
    assert S.auroc(torch.ones(4), labels) == 0.5
    with pytest.raises(TutorialInputError, match="positive"):
        S.auroc(torch.ones(4), torch.ones(4, dtype=torch.bool))


def test_match_features_is_one_to_one_and_at_most_the_hungarian_matching():
    g = torch.Generator().manual_seed(0)
    true = torch.randn(6, 5, generator=g)
    learned = torch.cat([true[:1], true[:1], torch.randn(4, 5, generator=g)])  # one feature learned twice
    got = S.match_features(learned, true)
    assert got["mcc"] < got["mmcs"]
    assert got["mcc"] <= S.feature_recovery(learned, true)["mcc"] + 1e-6
    assert S.match_features(true * 3, true)["mcc"] == pytest.approx(1.0)


def test_loss_recovered_from_pos_leaves_the_first_positions_clean():
    model = _tiny_model()
    tokens = torch.randint(0, 30, (4, 12), generator=torch.Generator().manual_seed(2))
    hook = "blocks.0.hook_resid_post"
    zero = _identity_sae(16)
    with torch.no_grad():
        zero.W_dec.zero_()  # outputs 0: the splice equals the zero ablation wherever it applies
    res = S.loss_recovered(model, zero, tokens, hook, from_pos=5)
    assert res["sae_loss"] == pytest.approx(res["zero_ablation_loss"], abs=1e-5)

    def zero_from_5(act, hook):  # noqa: ARG001 - TransformerLens passes hook=
        act = act.clone()
        act[:, 5:] = 0.0
        return act

    with torch.no_grad():
        want = model.run_with_hooks(tokens, return_type="loss", fwd_hooks=[(hook, zero_from_5)]).item()
    assert res["zero_ablation_loss"] == pytest.approx(want, abs=1e-5)
    assert res["zero_ablation_loss"] != pytest.approx(S.loss_recovered(model, zero, tokens, hook)["zero_ablation_loss"])
    with pytest.raises(TutorialInputError, match="from_pos"):
        S.loss_recovered(model, zero, tokens, hook, from_pos=12)
