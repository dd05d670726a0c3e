"""tutorial_lib.probing.probes: logistic, ridge and difference-of-means probes on planted data."""

from __future__ import annotations

import math

import torch
from probing_support import planted_clusters

from tutorial_lib import probing


def test_logistic_probe_on_planted_clusters(device):
    X, y, u = planted_clusters(device)
    ds = probing.make_dataset(X, y, seed=0)
    res = probing.logistic_probe(ds)
    # Bayes accuracy for means 3 apart and unit noise is Phi(1.5) = 0.933
    assert res.test_score > 0.88 and isinstance(res.probe, probing.LogisticProbe)
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
    assert W.grad is not None and b.grad is not None
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
    assert isinstance(res.probe, probing.RidgeProbe)
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
