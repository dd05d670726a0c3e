"""Probing kernel: synthetic activations with a planted answer, random native models, and a
hand-set model whose output provably depends on one direction."""

from __future__ import annotations

import math

import pytest
import torch
from transformer_lens.config import TransformerBridgeConfig
from transformer_lens.model_bridge import TransformerBridge

from tutorial_lib import probing
from tutorial_lib.validation import TutorialInputError

D_MODEL, D_VOCAB, SEQ = 32, 20, 10


def native_model(device, n_layers: int = 2, seed: int = 0):
    cfg = TransformerBridgeConfig(
        n_layers=n_layers,
        d_model=D_MODEL,
        n_heads=4,
        d_head=8,
        d_mlp=64,
        d_vocab=D_VOCAB,
        n_ctx=16,
        normalization_type="LN",
        seed=seed,
        device=str(device),
    )
    model = TransformerBridge.boot_native(cfg)
    model.eval()
    return model


@pytest.fixture(scope="module")
def _models():
    return {}


@pytest.fixture
def model(device, _models):
    """One random 2-layer native model per device, shared by the tests of this module (read-only)."""
    key = str(device)
    if key not in _models:
        _models[key] = native_model(device)
    return _models[key]


def planted_clusters(device, n=600, d=20, sep=3.0, seed=0):
    """Two isotropic Gaussian classes whose means differ only along a random unit direction u."""
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(d, generator=g)
    u = u / u.norm()
    y = torch.randint(0, 2, (n,), generator=g)
    X = torch.randn(n, d, generator=g) + (y.float() - 0.5)[:, None] * sep * u + 0.5 * torch.randn(d, generator=g)
    return X.to(device), y.to(device), u.to(device)


# ---------------------------------------------------------------------------------------------
# Datasets and splits
# ---------------------------------------------------------------------------------------------


def test_split_keeps_prompts_apart_and_is_seeded(device):
    prompt_ids = torch.arange(40, device=device).repeat_interleave(5)
    X = torch.randn(200, 4, device=device)
    ds = probing.make_dataset(X, torch.zeros(200, dtype=torch.long, device=device), prompt_ids, test_frac=0.25, seed=3)
    train_p, test_p = set(ds.prompt_ids[ds.train_idx].tolist()), set(ds.prompt_ids[ds.test_idx].tolist())
    assert not train_p & test_p
    assert len(test_p) == 10 and len(train_p) == 30
    assert sorted(ds.train_idx.tolist() + ds.test_idx.tolist()) == list(range(200))
    again = probing.make_dataset(X, ds.labels, prompt_ids, test_frac=0.25, seed=3)
    other = probing.make_dataset(X, ds.labels, prompt_ids, test_frac=0.25, seed=4)
    assert torch.equal(again.test_idx, ds.test_idx)
    assert not torch.equal(other.test_idx, ds.test_idx)


@pytest.mark.parametrize("kind", ["all", "int", "index", "mask"])
def test_collect_activations_matches_the_cache(model, device, kind):
    tokens = torch.randint(0, D_VOCAB, (12, SEQ), device=device)
    per_token = torch.randint(0, 3, (12, SEQ), device=device)
    hook = "blocks.1.hook_resid_mid"
    if kind == "all":
        positions, mask = "all", torch.ones(12, SEQ, dtype=torch.bool)
    elif kind == "int":
        positions = -1
        mask = torch.zeros(12, SEQ, dtype=torch.bool)
        mask[:, -1] = True
    elif kind == "index":
        positions = torch.randint(0, SEQ, (12,), device=device)
        mask = torch.zeros(12, SEQ, dtype=torch.bool)
        mask[torch.arange(12), positions.cpu()] = True
    else:
        mask = torch.rand(12, SEQ) < 0.4
        positions = mask.to(device)
    ds = probing.collect_activations(model, tokens, per_token, hook, positions, seed=1)
    _, cache = model.run_with_cache(tokens)
    mask = mask.to(device)
    torch.testing.assert_close(ds.acts, cache[hook][mask])
    assert torch.equal(ds.labels, per_token[mask])
    assert torch.equal(ds.token_ids, tokens[mask])
    rows, cols = mask.nonzero(as_tuple=True)
    assert torch.equal(ds.prompt_ids, rows) and torch.equal(ds.positions, cols)
    assert not set(ds.prompt_ids[ds.train_idx].tolist()) & set(ds.prompt_ids[ds.test_idx].tolist())
    # [batch] labels repeat over each prompt's chosen positions
    per_prompt = torch.arange(12, device=device)
    ds2 = probing.collect_activations(model, tokens, per_prompt, hook, positions, seed=1)
    assert torch.equal(ds2.labels, rows)


def test_collect_activations_flattens_head_dims(model, device):
    tokens = torch.randint(0, D_VOCAB, (4, SEQ), device=device)
    ds = probing.collect_activations(model, tokens, torch.zeros(4, dtype=torch.long), "blocks.0.attn.hook_z", -1)
    _, cache = model.run_with_cache(tokens)
    torch.testing.assert_close(ds.acts, cache["blocks.0.attn.hook_z"][:, -1].reshape(4, -1))


def test_input_validation(model, device):
    tokens = torch.randint(0, D_VOCAB, (4, SEQ), device=device)
    labels = torch.zeros(4, dtype=torch.long)
    with pytest.raises(TutorialInputError, match=r"Did you mean 'blocks.0.hook_resid_post'"):
        probing.collect_activations(model, tokens, labels, "blocks.0.hook_resid_postt")
    with pytest.raises(TutorialInputError, match=r"\[batch, pos\]"):
        probing.collect_activations(model, tokens[0], labels, "blocks.0.hook_resid_post")
    with pytest.raises(TutorialInputError, match="one per prompt"):
        probing.collect_activations(model, tokens, torch.zeros(5, dtype=torch.long), "blocks.0.hook_resid_post")
    with pytest.raises(TutorialInputError, match="positions"):
        probing.collect_activations(model, tokens, labels, "blocks.0.hook_resid_post", torch.zeros(3, dtype=torch.long))
    with pytest.raises(TutorialInputError, match="positions"):
        probing.collect_activations(model, tokens, labels, "blocks.0.hook_resid_post", torch.full((4,), SEQ))
    with pytest.raises(TutorialInputError, match="d_vocab"):
        probing.collect_activations(model, tokens + D_VOCAB, labels, "blocks.0.hook_resid_post")
    with pytest.raises(TutorialInputError, match="hook_z"):
        probing.collect_activations(model, tokens, labels, "blocks.0.attn.hook_pattern")
    with pytest.raises(TutorialInputError, match="one label per activation"):
        probing.make_dataset(torch.randn(10, 3), torch.zeros(9, dtype=torch.long))
    with pytest.raises(TutorialInputError, match="int"):
        probing.train_logistic(torch.randn(10, 3), torch.rand(10))
    with pytest.raises(TutorialInputError, match="probe"):
        probing.layer_sweep(model, tokens, labels, probe="svm")
    with pytest.raises(TutorialInputError, match="layers"):
        probing.layer_sweep(model, tokens, labels, layers=[2])
    with pytest.raises(TutorialInputError, match="direction has 5 entries"):
        probing.intervene(model, tokens, "blocks.0.hook_resid_post", torch.randn(5, device=device), lambda x: x.mean())
    with pytest.raises(TutorialInputError, match="mode"):
        probing.intervene(
            model, tokens, "blocks.0.hook_resid_post", torch.randn(D_MODEL), lambda x: x.mean(), mode="zero"
        )
    with pytest.raises(TutorialInputError, match="scalar"):
        probing.intervene(model, tokens, "blocks.0.hook_resid_post", torch.randn(D_MODEL), lambda x: x)


# ---------------------------------------------------------------------------------------------
# Probes on planted data
# ---------------------------------------------------------------------------------------------


def test_logistic_probe_on_planted_clusters(device):
    X, y, u = planted_clusters(device)
    ds = probing.make_dataset(X, y, seed=0)
    res = probing.logistic_probe(ds)
    # Bayes accuracy for means 3 apart and unit noise is Phi(1.5) = 0.933
    assert res.test_score > 0.88
    assert torch.nn.functional.cosine_similarity(res.probe.direction, u, dim=0) > 0.9
    # projecting out the planted direction leaves nothing to read: chance
    flat = probing.logistic_probe(ds.with_acts(probing.project_out(X, u)))
    assert abs(flat.test_score - 0.5) < 0.1


def test_logistic_matches_a_reference_optimum(device):
    """L-BFGS reaches the regularised optimum: its gradient vanishes and its loss beats a long Adam run."""
    g = torch.Generator().manual_seed(1)
    X = torch.randn(300, 6, generator=g).to(device)
    y = (X @ torch.randn(6, 3, generator=g).to(device) + torch.randn(300, 3, generator=g).to(device)).argmax(-1)
    l2 = 1e-2
    probe = probing.train_logistic(X, y, l2=l2)
    Z = (X - probe.mean) / probe.std

    def loss(W, b):
        return torch.nn.functional.cross_entropy(Z @ W + b, y) + 0.5 * l2 * W.pow(2).sum()

    W, b = probe.W.clone().requires_grad_(), probe.b.clone().requires_grad_()
    loss(W, b).backward()
    assert W.grad.abs().max() < 1e-4 and b.grad.abs().max() < 1e-4
    W2 = torch.zeros_like(W, requires_grad=True)
    b2 = torch.zeros_like(b, requires_grad=True)
    opt = torch.optim.Adam([W2, b2], lr=0.1)
    for _ in range(250):
        opt.zero_grad()
        loss(W2, b2).backward()
        opt.step()
    assert loss(probe.W, probe.b).item() <= loss(W2, b2).item() + 1e-5


def test_multiclass_logistic_and_diff_means(device):
    g = torch.Generator().manual_seed(2)
    centers = 4 * torch.randn(4, 16, generator=g)
    y = torch.randint(0, 4, (400,), generator=g)
    X = (centers[y] + torch.randn(400, 16, generator=g)).to(device)
    ds = probing.make_dataset(X, y.to(device), seed=0)
    assert probing.logistic_probe(ds).test_score > 0.97
    assert probing.diff_of_means_probe(ds).test_score > 0.97


def test_diff_of_means_recovers_planted_direction(device):
    X, y, u = planted_clusters(device, n=2000, d=32)
    v = probing.diff_of_means(X, y)
    assert torch.dot(v, u) > 0.95 and math.isclose(v.norm().item(), 1.0, rel_tol=1e-5)
    raw = probing.diff_of_means(X, y, normalize=False)
    torch.testing.assert_close(raw, X[y == 1].mean(0) - X[y == 0].mean(0))
    res = probing.diff_of_means_probe(probing.make_dataset(X, y))
    assert res.test_score > 0.88


def test_ridge_recovers_a_planted_linear_map(device):
    g = torch.Generator().manual_seed(3)
    W = torch.randn(12, 3, generator=g)
    X = torch.randn(500, 12, generator=g)
    Y = X @ W + 2.0 + 0.01 * torch.randn(500, 3, generator=g)
    ds = probing.make_dataset(X.to(device), Y.to(device))
    res = probing.ridge_probe(ds, alpha=1e-6)
    torch.testing.assert_close(res.probe.W.cpu(), W, atol=5e-3, rtol=0)
    torch.testing.assert_close(res.probe.b.cpu(), torch.full((3,), 2.0), atol=5e-3, rtol=0)
    assert res.test_score > 0.999
    # scalar labels, and agreement with the normal equations at a large penalty
    ds1 = probing.make_dataset(X.to(device), Y[:, 0].to(device))
    alpha = 0.5
    got = probing.train_ridge(ds1.X_train, ds1.y_train, alpha)
    Xc = ds1.X_train - ds1.X_train.mean(0)
    yc = ds1.y_train - ds1.y_train.mean()
    ref = torch.linalg.inv(Xc.T @ Xc + alpha * len(Xc) * torch.eye(12, device=device)) @ Xc.T @ yc
    torch.testing.assert_close(got.W[:, 0], ref, atol=1e-4, rtol=1e-4)
    assert got.predict(ds1.X_test).shape == (len(ds1.test_idx),)
    # pure noise targets: R^2 near or below zero on the test split
    noise = probing.make_dataset(X.to(device), torch.randn(500, generator=g).to(device))
    assert probing.ridge_probe(noise, alpha=1e-3).test_score < 0.05


# ---------------------------------------------------------------------------------------------
# Control tasks
# ---------------------------------------------------------------------------------------------


def test_control_labels_are_a_function_of_token_type(device):
    tok = torch.randint(0, 30, (500,), device=device)
    labels = torch.randint(0, 3, (500,), device=device)
    ctrl = probing.control_labels(tok, labels, seed=0)
    for t in tok.unique():
        assert ctrl[tok == t].unique().numel() == 1
    assert torch.equal(ctrl, probing.control_labels(tok, labels, seed=0))
    assert not torch.equal(ctrl, probing.control_labels(tok, labels, seed=1))
    assert set(ctrl.unique().tolist()) <= set(labels.unique().tolist())


def test_selectivity_separates_property_from_token_identity(device):
    """Hewitt-Liang: control labels are a fixed random label per token type.

    Activations carrying only a planted property direction: real accuracy high, control at chance.
    The same plus distinct token embeddings: the probe memorises token identity, so control is high
    and selectivity drops although real accuracy does not.
    """
    g = torch.Generator().manual_seed(4)
    n_types, d, n = 20, 64, 3000
    emb = 2 * torch.randn(n_types, d, generator=g)
    u = torch.randn(d, generator=g)
    u = u / u.norm()
    tok = torch.randint(0, n_types, (n,), generator=g)
    y = torch.randint(0, 2, (n,), generator=g)
    prop = 3 * (y.float() - 0.5)[:, None] * u + torch.randn(n, d, generator=g)
    ds = probing.make_dataset(
        prop.to(device),
        y.to(device),
        torch.arange(n).div(5, rounding_mode="floor").to(device),
        token_ids=tok.to(device),
    )
    only = probing.control_task(ds, "logistic")
    assert only.real > 0.85 and only.control < only.control_chance + 0.03
    ctrl = probing.control_labels(tok, y)[ds.test_idx.cpu()]
    assert only.control_chance == pytest.approx(max(ctrl.float().mean().item(), 1 - ctrl.float().mean().item()))
    both = probing.control_task(ds.with_acts((prop + emb[tok]).to(device)), "logistic")
    assert both.real > 0.85 and both.control > 0.95
    assert both.selectivity < only.selectivity - 0.1
    # the same seed gives the same control labels, hence the same numbers
    assert probing.control_task(ds, "logistic").control == only.control


# ---------------------------------------------------------------------------------------------
# Layer sweep
# ---------------------------------------------------------------------------------------------


def test_layer_sweep_matches_per_layer_probes(model, device):
    tokens = torch.randint(0, D_VOCAB, (40, SEQ), device=device)
    labels = (tokens >= D_VOCAB // 2).long()  # token identity: linearly readable at every layer
    sweep = probing.layer_sweep(model, tokens, labels, hook="resid_post", control=True)
    assert sweep.hook_names == ["blocks.0.hook_resid_post", "blocks.1.hook_resid_post"]
    assert sweep.scores.shape == (2,) and sweep.control_scores.shape == (2,)
    for i, name in enumerate(sweep.hook_names):
        ds = probing.collect_activations(model, tokens, labels, name)
        assert sweep.scores[i].item() == pytest.approx(probing.logistic_probe(ds).test_score, abs=1e-6)
    assert sweep.scores.min() > 0.65  # chance is about 0.5
    assert sweep.best_layer in (0, 1)
    # template hook names and a per-position sweep, [layer, pos]
    per_pos = probing.layer_sweep(
        model,
        tokens,
        labels,
        hook="blocks.{layer}.hook_resid_pre",
        layers=[1],
        probe="diff_of_means",
        per_position=True,
    )
    assert per_pos.hook_names == ["blocks.1.hook_resid_pre"] and per_pos.scores.shape == (1, SEQ)
    ds = probing.collect_activations(model, tokens, labels, "blocks.1.hook_resid_pre", positions=3)
    assert per_pos.scores[0, 3].item() == pytest.approx(probing.diff_of_means_probe(ds).test_score, abs=1e-6)


def test_layer_sweep_runs_one_forward_pass(model, device, monkeypatch):
    calls = []
    original = model.run_with_cache

    def counting(*args, **kwargs):
        calls.append(kwargs.get("names_filter"))
        return original(*args, **kwargs)

    monkeypatch.setattr(model, "run_with_cache", counting)
    tokens = torch.randint(0, D_VOCAB, (16, SEQ), device=device)
    probing.layer_sweep(model, tokens, torch.randint(0, 2, (16,)), hook="mlp_out", positions=-1)
    assert calls == [["blocks.0.hook_mlp_out", "blocks.1.hook_mlp_out"]]


# ---------------------------------------------------------------------------------------------
# Interventions and steering on a model whose readout is known
# ---------------------------------------------------------------------------------------------

A, B = 3, 7  # the two answer tokens of the logit-difference metric


def planted_readout_model(device, seed=0):
    """A 1-layer native model whose logit difference A - B reads one direction u of the final residual.

    W_U[:, A] - W_U[:, B] = 5 u / ln_w with u orthogonal to the all-ones vector and the final
    LayerNorm's bias zeroed, so LN(x) . (W_U[:, A] - W_U[:, B]) = 5 (x - mean x) . u / std(x):
    with u projected out of the residual the difference is exactly zero.
    """
    model = native_model(device, n_layers=1, seed=seed)
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(D_MODEL, generator=g)
    u = u - u.mean()
    u = (u / u.norm()).to(device)
    params = dict(model.named_parameters())
    ln_w = params["ln_out._original_component.weight"]
    head = params["head._original_component.weight"]  # [vocab, d_model] = W_U^T
    with torch.no_grad():
        params["ln_out._original_component.bias"].zero_()
        ln_w.copy_(1.0 + 0.2 * torch.rand(D_MODEL, generator=g).to(device))
        head[B] = head[A] - 5 * u / ln_w
    torch.testing.assert_close(model.W_U[:, A] - model.W_U[:, B], 5 * u / ln_w)
    return model, u


def logit_diff(logits):
    return (logits[:, -1, A] - logits[:, -1, B]).mean()


def test_project_out_single_direction_and_subspace(device):
    x = torch.randn(50, 16, device=device)
    v = torch.randn(16, device=device)
    p = probing.project_out(x, v)
    assert (p @ v).abs().max() < 1e-4
    torch.testing.assert_close(p, x - torch.outer(x @ v, v) / (v @ v))
    torch.testing.assert_close(probing.project_out(x, 2 * v[None]), p, atol=1e-5, rtol=1e-5)
    V = torch.randn(3, 16, device=device)
    q = probing.project_out(x, V)
    assert (q @ V.T).abs().max() < 1e-4
    Q, _ = torch.linalg.qr(V.T)
    torch.testing.assert_close(q, x - x @ Q @ Q.T, atol=1e-5, rtol=1e-5)
    # a rank-deficient stack removes only its span
    torch.testing.assert_close(probing.project_out(x, torch.stack([v, -v, 3 * v])), p, atol=1e-5, rtol=1e-5)


def test_projecting_out_the_read_direction_kills_the_metric(device):
    model, u = planted_readout_model(device)
    tokens = torch.randint(0, D_VOCAB, (8, SEQ), device=device)
    hook = "blocks.0.hook_resid_post"
    res = probing.intervene(model, tokens, hook, u, logit_diff)
    assert abs(res.clean) > 0.1
    assert res.patched == pytest.approx(0.0, abs=1e-4)
    assert res.change == pytest.approx(-res.clean, abs=1e-4)
    # the norm of the direction does not matter for projection
    assert probing.intervene(model, tokens, hook, 3 * u, logit_diff).patched == pytest.approx(0.0, abs=1e-4)
    # a direction orthogonal to u (and to the ones vector) leaves the centred component along u alone,
    # so the sign of the logit difference survives for every prompt
    r = torch.randn(D_MODEL, device=device)
    r = r - r.mean()
    r = r - (r @ u) * u

    def signs(logits):
        return torch.sign(logits[:, -1, A] - logits[:, -1, B])

    clean_signs = signs(model(tokens))
    fn = probing._direction_hook(r, "project_out", 1.0, "all")
    assert torch.equal(signs(model.run_with_hooks(tokens, fwd_hooks=[(hook, fn)])), clean_signs)
    # only the final position feeds the metric at the final residual: editing other positions changes nothing
    early = torch.zeros(8, SEQ, dtype=torch.bool, device=device)
    early[:, :-1] = True
    assert probing.intervene(model, tokens, hook, u, logit_diff, positions=early).change == pytest.approx(0.0, abs=1e-5)
    last = probing.intervene(model, tokens, hook, u, logit_diff, positions=-1)
    assert last.change == pytest.approx(res.change, abs=1e-4)


def test_random_direction_control_is_smaller(device):
    model, u = planted_readout_model(device)
    tokens = torch.randint(0, D_VOCAB, (8, SEQ), device=device)
    hook = "blocks.0.hook_resid_post"
    planted = probing.intervene(model, tokens, hook, u, logit_diff).change
    rand = probing.random_direction_control(model, tokens, hook, u, logit_diff, n_samples=6, seed=0)
    assert rand.shape == (6,)
    assert rand.abs().mean() < 0.5 * abs(planted)
    assert torch.equal(rand, probing.random_direction_control(model, tokens, hook, u, logit_diff, n_samples=6, seed=0))


def test_adding_a_direction_is_linear_after_the_final_norm(device):
    """At ln_final.hook_out, logits = x @ W_U + b_U: adding alpha v shifts the logit difference by alpha v.(W_U[A]-W_U[B])."""
    model = native_model(device, n_layers=1, seed=1)
    tokens = torch.randint(0, D_VOCAB, (5, SEQ), device=device)
    v = torch.randn(D_MODEL, device=device)
    delta = (model.W_U[:, A] - model.W_U[:, B]).detach()
    for alpha in (-2.0, 0.5, 3.0):
        res = probing.intervene(model, tokens, "ln_final.hook_out", v, logit_diff, mode="add", alpha=alpha)
        assert res.change == pytest.approx(alpha * (v @ delta).item(), rel=1e-4, abs=1e-4)


def test_steering_is_monotone_along_the_read_direction(device):
    model = native_model(device, n_layers=1, seed=2)
    tokens = torch.randint(0, D_VOCAB, (6, SEQ), device=device)
    delta = (model.W_U[:, A] - model.W_U[:, B]).detach()
    strengths = torch.linspace(-3, 3, 7)
    out = probing.steer(model, tokens, "ln_final.hook_out", delta, strengths, [A, B], metric=logit_diff, positions=-1)
    assert out.probs.shape == (7, 6, 2) and out.mean_probs.shape == (7, 2) and out.metric.shape == (7,)
    clean = logit_diff(model(tokens)).item()
    expected = clean + strengths * delta.pow(2).sum().item()
    torch.testing.assert_close(out.metric, expected, rtol=1e-4, atol=1e-3)
    assert probing.is_monotonic(out.metric) and probing.is_monotonic(out.mean_probs[:, 0])
    assert probing.is_monotonic(out.mean_probs[:, 1], increasing=False)
    # strength 0 is the clean model
    clean_probs = model(tokens)[:, -1].softmax(-1)[:, [A, B]]
    torch.testing.assert_close(out.probs[3], clean_probs.cpu(), atol=1e-5, rtol=1e-4)


def test_steering_with_a_diff_of_means_vector(model, device):
    """End to end on a random model: steer the final residual along the mean difference of two prompt groups."""
    tokens = torch.randint(0, D_VOCAB, (24, SEQ), device=device)
    group = torch.arange(24, device=device) % 2
    tokens[group == 1, -1] = A  # the groups differ in their last token
    tokens[group == 0, -1] = B
    ds = probing.collect_activations(model, tokens, group, "blocks.1.hook_resid_post", positions=-1)
    v = probing.diff_of_means(ds.acts, ds.labels, normalize=False)
    base = tokens[group == 0]
    out = probing.steer(model, base, "blocks.1.hook_resid_post", v, [0.0, 0.5, 1.0], [A], positions=-1)
    # strength 1 moves group 0's final residual by the full mean difference: the output distribution
    # moves toward group 1's (measured by the total-variation distance of the final-position distributions)
    target = model(tokens[group == 1])[:, -1].softmax(-1).mean(0)

    def tv_at(s):
        fn = probing._direction_hook(v, "add", s, -1)
        p = model.run_with_hooks(base, fwd_hooks=[("blocks.1.hook_resid_post", fn)])[:, -1].softmax(-1).mean(0)
        return 0.5 * (p - target).abs().sum().item()

    assert tv_at(1.0) < tv_at(0.0)
    assert out.metric is None and out.probs.shape == (3, 12, 1)


def test_is_monotonic():
    assert probing.is_monotonic([1, 2, 2, 3])
    assert not probing.is_monotonic([1, 3, 2])
    assert probing.is_monotonic([1, 3, 2.99], tol=0.02)
    assert probing.is_monotonic([3, 2, 1], increasing=False)
