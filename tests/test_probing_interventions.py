"""tutorial_lib.probing.interventions on a hand-set model whose output provably depends on one direction."""

from __future__ import annotations

import pytest
import torch
from probing_support import D_MODEL, D_VOCAB, SEQ, native_model, shared_model

from tutorial_lib import probing


@pytest.fixture
def model(device):
    return shared_model(device)


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
    fn = probing.direction_hook(r, "project_out", 1.0, "all")
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
    assert out.metric is not None
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
        fn = probing.direction_hook(v, "add", s, -1)
        p = model.run_with_hooks(base, fwd_hooks=[("blocks.1.hook_resid_post", fn)])[:, -1].softmax(-1).mean(0)
        return 0.5 * (p - target).abs().sum().item()

    assert tv_at(1.0) < tv_at(0.0)
    assert out.metric is None and out.probs.shape == (3, 12, 1)


def test_is_monotonic():
    assert probing.is_monotonic([1, 2, 2, 3])
    assert not probing.is_monotonic([1, 3, 2])
    assert probing.is_monotonic([1, 3, 2.99], tol=0.02)
    assert probing.is_monotonic([3, 2, 1], increasing=False)
