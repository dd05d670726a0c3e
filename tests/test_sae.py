"""Tests for tutorial_lib.sae: sparse path against the dense reference, metrics against analytic
answers, training on synthetic ground truth, SAELens format, and the benchmark's smoke run."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from tutorial_lib import sae as S
from tutorial_lib.validation import TutorialInputError

ROOT = Path(__file__).resolve().parents[1]
SAELENS_PY = ROOT / ".venv-saelens" / "bin" / "python"


def _randomize_biases(m: S.SAE, gen: torch.Generator) -> None:
    with torch.no_grad():
        m.b_enc.copy_(0.3 * torch.randn(m.d_sae, generator=gen))
        m.b_dec.copy_(torch.randn(m.d_in, generator=gen))


# ---------------------------------------------------------------------------------------------
# Sparse TopK path == dense reference
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
def test_sparse_topk_matches_dense_outputs_and_grads(device, dtype, tol):
    gen = torch.Generator().manual_seed(1)
    m = S.TopKSAE(24, 384, k=6, dtype=dtype, device=device)
    _randomize_biases(m, gen)
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


# ---------------------------------------------------------------------------------------------
# Metrics
# ---------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------
# Synthetic data
# ---------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_topk_recovers_ground_truth_features(device):
    x, true = S.synthetic_activations(60_000, 32, 64, 4.0, seed=0, device=device)
    m = S.TopKSAE(32, 64, k=4, device=device, seed=0)
    hist = S.train_sae(m, x, epochs=6, batch_size=1024, lr=3e-3, seed=0)
    rec = S.feature_recovery(m, true)
    ev = S.evaluate(m, x[:8192])
    assert rec["mcc"] > 0.9, rec
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
    if arch == "batchtopk":
        assert float(m.threshold) > 0
    if arch == "jumprelu":
        assert not torch.allclose(m.threshold, torch.full_like(m.threshold, 0.1))  # the STE moved it


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


# ---------------------------------------------------------------------------------------------
# SAELens format
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("arch,kwargs", [("relu", {}), ("topk", {"k": 3}), ("batchtopk", {"k": 3}), ("jumprelu", {})])
def test_save_load_roundtrip(tmp_path, device, arch, kwargs):
    gen = torch.Generator().manual_seed(6)
    m = S.make_sae(arch, 8, 32, device=device, **kwargs)
    _randomize_biases(m, gen)
    if arch == "batchtopk":
        m.threshold.fill_(0.2)
    m.eval()
    S.save_sae(m, tmp_path / "sae", hook_name="blocks.0.hook_resid_post")
    cfg = (tmp_path / "sae" / "cfg.json").read_text()
    assert '"d_sae": 32' in cfg and '"hook_name": "blocks.0.hook_resid_post"' in cfg
    back = S.load_sae(tmp_path / "sae", device=device)
    x = torch.randn(50, 8, generator=gen).to(device)
    assert torch.allclose(back(x), m(x), atol=1e-6)
    assert back.hook_name == "blocks.0.hook_resid_post"


def test_load_folds_saelens_conventions(tmp_path):
    """A SAELens-trained TopK file (b_dec subtracted from the input, acts rescaled by decoder norms)."""
    from safetensors.torch import save_file

    gen = torch.Generator().manual_seed(8)
    W_enc, b_enc = torch.randn(6, 20, generator=gen), torch.randn(20, generator=gen)
    W_dec, b_dec = torch.randn(20, 6, generator=gen), torch.randn(6, generator=gen)
    (tmp_path / "s").mkdir()
    save_file(
        {"W_enc": W_enc, "b_enc": b_enc, "W_dec": W_dec, "b_dec": b_dec},
        str(tmp_path / "s" / "sae_weights.safetensors"),
    )
    (tmp_path / "s" / "cfg.json").write_text(
        '{"architecture": "topk", "d_in": 6, "d_sae": 20, "k": 4, '
        '"apply_b_dec_to_input": true, "rescale_acts_by_decoder_norm": true}'
    )
    x = torch.randn(30, 6, generator=gen)
    norms = W_dec.norm(dim=1)
    pre = ((x - b_dec) @ W_enc + b_enc) * norms  # SAELens TopKTrainingSAE.encode
    vals, idx = pre.topk(4)
    z = torch.zeros_like(pre).scatter(1, idx, vals.relu())
    want = (z / norms) @ W_dec + b_dec
    got = S.load_sae(tmp_path / "s")(x)
    assert torch.allclose(got, want, atol=1e-5)


@pytest.mark.slow
@pytest.mark.skipif(not SAELENS_PY.exists(), reason="SAELens venv .venv-saelens absent")
def test_saelens_reads_our_format(tmp_path):
    """SAELens's SAE.load_from_disk reads what save_sae writes and computes the same codes."""
    from safetensors.torch import load_file, save_file

    gen = torch.Generator().manual_seed(9)
    x = torch.randn(64, 16, generator=gen)
    save_file({"acts": x}, str(tmp_path / "x.safetensors"))
    saes = {}
    for arch, kwargs in [("topk", {"k": 4}), ("jumprelu", {}), ("relu", {}), ("batchtopk", {"k": 4})]:
        m = S.make_sae(arch, 16, 64, **kwargs)
        _randomize_biases(m, gen)
        if arch == "batchtopk":
            m.threshold.fill_(0.3)
        m.eval()
        S.save_sae(m, tmp_path / arch)
        saes[arch] = m
    proc = subprocess.run(
        [
            str(SAELENS_PY),
            str(ROOT / "benchmarks" / "_saelens_worker.py"),
            "load",
            str(tmp_path / "x.safetensors"),
            str(tmp_path / "out"),
            *(str(tmp_path / a) for a in saes),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    for arch, m in saes.items():
        got = load_file(str(tmp_path / "out" / f"{arch}.safetensors"))
        with torch.no_grad():
            assert torch.allclose(got["x_hat"], m(x), atol=1e-5), arch
            assert torch.allclose(got["z"], m.encode(x), atol=1e-5), arch


# ---------------------------------------------------------------------------------------------
# Loss recovered in a TransformerBridge model
# ---------------------------------------------------------------------------------------------


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
    model = TransformerBridge.boot_native(cfg)
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


# ---------------------------------------------------------------------------------------------
# Benchmark smoke test (our side only)
# ---------------------------------------------------------------------------------------------


def test_benchmark_quick_ours_only(capsys):
    spec = importlib.util.spec_from_file_location("sae_vs_saelens", ROOT / "benchmarks" / "sae_vs_saelens.py")
    bench = importlib.util.module_from_spec(spec)
    sys.modules["sae_vs_saelens"] = bench  # dataclasses look their module up there
    try:
        spec.loader.exec_module(bench)
    finally:
        sys.modules.pop("sae_vs_saelens", None)
    threads = torch.get_num_threads()
    try:
        results = bench.main(["--quick", "--ours-only"])
    finally:
        torch.set_num_threads(threads)
    assert len(results) == len(bench.QUICK)
    for r in results:
        assert r["ours_samples_per_s"] > 0 and 0.0 < r["ours_ev"] <= 1.0
    assert "samples/s" in capsys.readouterr().out
