"""The batched toy-model kernel against a plain per-instance reference, and its measures against
geometry with known answers."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tutorial_lib import superposition as sp
from tutorial_lib.validation import TutorialInputError

ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- the per-instance reference


def ref_forward(W_i, b_i, x_i, output="relu", hidden_relu=False):
    """One instance, written as plainly as possible: x [batch, feat], W [feat, hidden], b [feat]."""
    h = x_i @ W_i
    if hidden_relu:
        h = torch.relu(h)
    out = h @ W_i.T + b_i
    return torch.relu(out) if output == "relu" else out


def ref_loss(out_i, x_i, imp_i):
    return (imp_i * (x_i - out_i) ** 2).mean()


def random_setup(device, n_inst=4, n_feat=6, n_hidden=3, batch=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(n_inst, n_feat, n_hidden, generator=g).to(device)
    b = (0.1 * torch.randn(n_inst, n_feat, generator=g)).to(device)
    x = torch.rand(batch, n_inst, n_feat, generator=g).to(device)
    imp = torch.rand(n_inst, n_feat, generator=g).to(device)
    return W, b, x, imp


# --------------------------------------------------------------------------- batched == per instance


@pytest.mark.parametrize("output", ["relu", "linear"])
@pytest.mark.parametrize("hidden_relu", [False, True])
def test_forward_matches_per_instance(device, output, hidden_relu):
    W, b, x, _ = random_setup(device)
    got = sp.toy_model_forward(W, b, x, output, hidden_relu)
    assert got.device.type == device.type
    for i in range(W.shape[0]):
        want = ref_forward(W[i], b[i], x[:, i], output, hidden_relu)
        torch.testing.assert_close(got[:, i], want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("hidden_relu", [False, True])
def test_loss_and_gradients_match_per_instance(device, hidden_relu):
    W, b, x, imp = random_setup(device)
    Wb, bb = W.clone().requires_grad_(), b.clone().requires_grad_()
    loss = sp.importance_weighted_loss(sp.toy_model_forward(Wb, bb, x, "relu", hidden_relu), x, imp)
    loss.sum().backward()
    for i in range(W.shape[0]):
        Wi, bi = W[i].clone().requires_grad_(), b[i].clone().requires_grad_()
        li = ref_loss(ref_forward(Wi, bi, x[:, i], "relu", hidden_relu), x[:, i], imp[i])
        li.backward()
        torch.testing.assert_close(loss[i], li, atol=1e-5, rtol=1e-5)
        assert Wb.grad is not None and bb.grad is not None
        torch.testing.assert_close(Wb.grad[i], Wi.grad, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(bb.grad[i], bi.grad, atol=1e-5, rtol=1e-5)


def test_training_steps_match_per_instance(device):
    """A few Adam steps of the batched loop equal separate runs on the same batches."""
    n_inst, steps, batch, lr = 3, 5, 64, 1e-2
    p = torch.tensor([1.0, 0.3, 0.05], device=device)
    imp = 0.9 ** torch.arange(5.0, device=device)
    model = sp.ToyModel(5, 2, n_inst, p, imp, seed=3, device=device)
    W0, b0 = model.W.detach().clone(), model.b_final.detach().clone()
    history = sp.train(model, steps=steps, batch_size=batch, lr=lr, seed=7, log_every=1)
    assert history.shape == (steps, n_inst)

    g = torch.Generator(device=device).manual_seed(7)
    batches = [sp.generate_batch(batch, p, 5, generator=g) for _ in range(steps)]
    for i in range(n_inst):
        Wi, bi = W0[i].clone().requires_grad_(), b0[i].clone().requires_grad_()
        opt = torch.optim.Adam([Wi, bi], lr=lr)
        for step, x in enumerate(batches):
            loss = ref_loss(ref_forward(Wi, bi, x[:, i]), x[:, i], imp)
            torch.testing.assert_close(history[step, i], loss.detach(), atol=1e-5, rtol=1e-5)
            opt.zero_grad()
            loss.backward()
            opt.step()
        torch.testing.assert_close(model.W.detach()[i], Wi.detach(), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(model.b_final.detach()[i], bi.detach(), atol=1e-5, rtol=1e-5)


def test_same_seed_same_model(device):
    runs = []
    for _ in range(2):
        m = sp.ToyModel(4, 2, 2, 0.2, seed=1, device=device)
        sp.train(m, steps=3, batch_size=16, seed=2)
        runs.append(m.W.detach().cpu())
    torch.testing.assert_close(runs[0], runs[1], atol=0, rtol=0)


# --------------------------------------------------------------------------- data


def test_generate_batch_statistics(device):
    p = torch.tensor([1.0, 0.5, 0.1, 0.0], device=device)
    g = torch.Generator(device=device).manual_seed(0)
    x = sp.generate_batch(20000, p, 8, generator=g)
    assert x.shape == (20000, 4, 8) and x.device.type == device.type
    assert x.min() >= 0 and x.max() <= 1
    present = (x > 0).float().mean(dim=(0, 2))
    torch.testing.assert_close(present, p, atol=0.01, rtol=0)
    nonzero = x[:, 1][x[:, 1] > 0]  # uniform on (0, 1]: mean 1/2, variance 1/12
    assert abs(nonzero.mean().item() - 0.5) < 0.01
    assert abs(nonzero.var().item() - 1 / 12) < 0.005
    # independent features: the co-occurrence of two features is the product of their rates
    both = ((x[:, 1, 0] > 0) & (x[:, 1, 1] > 0)).float().mean().item()
    assert abs(both - 0.25) < 0.015


def test_generate_batch_is_reproducible(device):
    a = sp.generate_batch(64, 0.3, 5, 2, generator=torch.Generator(device=device).manual_seed(4))
    b = sp.generate_batch(64, 0.3, 5, 2, generator=torch.Generator(device=device).manual_seed(4))
    assert torch.equal(a, b)


def test_correlated_and_anticorrelated_pairs(device):
    g = torch.Generator(device=device).manual_seed(0)
    x = sp.generate_batch(20000, 0.2, 7, 1, correlated_pairs=1, anticorrelated_pairs=2, generator=g)[:, 0]
    on = x > 0
    assert torch.equal(on[:, 0], on[:, 1])  # correlated: together
    assert not (on[:, 2] & on[:, 3]).any() and not (on[:, 4] & on[:, 5]).any()  # anti: never both
    rates = on.float().mean(0)
    torch.testing.assert_close(rates, torch.full_like(rates, 0.2), atol=0.015, rtol=0)
    assert x[on[:, 0], 0].ne(x[on[:, 0], 1]).float().mean() > 0.99  # present together, with their own values


# --------------------------------------------------------------------------- measures with known answers


def regular_polygon(k: int, radius: float = 1.0) -> torch.Tensor:
    angles = torch.arange(k) * 2 * math.pi / k
    return radius * torch.stack([angles.cos(), angles.sin()], -1)


def test_measures_on_known_geometry(device):
    pentagon = regular_polygon(5).to(device)
    antipodal = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0], [0.0, 0.0]], device=device)
    orthogonal = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0]], device=device)
    W = torch.stack([pentagon, antipodal, orthogonal])
    torch.testing.assert_close(sp.features_represented(W).cpu(), torch.tensor([5.0, 4.0, 2.0]))
    torch.testing.assert_close(sp.dimensions_per_feature(W).cpu(), torch.tensor([0.4, 0.5, 1.0]))
    D = sp.feature_dimensionality(W).cpu()
    torch.testing.assert_close(D[0], torch.full((5,), 0.4))  # sum_j cos^2 over a pentagon = 5/2
    torch.testing.assert_close(D[1], torch.tensor([0.5, 0.5, 0.5, 0.5, 0.0]))
    torch.testing.assert_close(D[2], torch.tensor([1.0, 1.0, 0.0, 0.0, 0.0]))
    leak = sp.interference(W).cpu()
    torch.testing.assert_close(leak[0], torch.full((5,), 1.5))
    torch.testing.assert_close(leak[2, :2], torch.zeros(2))
    torch.testing.assert_close(sp.gram(W)[1].diagonal().cpu(), torch.tensor([1.0, 1, 1, 1, 0]))
    gaps = sp.adjacent_angle_gaps(pentagon.roll(2, 0) * 1.2)
    torch.testing.assert_close(gaps.cpu(), torch.full((5,), 72.0), atol=1e-3, rtol=0)
    assert sp.adjacent_angle_gaps(orthogonal).cpu().tolist() == pytest.approx([90.0, 270.0])
    torch.testing.assert_close(sp.feature_angles(W)[0].cpu(), torch.arange(5.0) * 72, atol=1e-3, rtol=0)


def test_dimensionality_matches_loop(device):
    W = torch.randn(3, 7, 4, device=device)
    D = sp.feature_dimensionality(W)
    for k in range(3):
        for i in range(7):
            wi = W[k, i]
            denom = sum(float(torch.dot(wi / wi.norm(), W[k, j]) ** 2) for j in range(7))
            assert D[k, i].item() == pytest.approx(wi.norm().item() ** 2 / denom, rel=1e-4)


def test_neuron_feature_counts(device):
    W = torch.tensor([[[1.0, 0.0], [0.0, 0.9], [0.5, 0.1]]], device=device)  # neuron 0 reads two features
    assert sp.neuron_feature_counts(W, threshold=0.3).cpu().tolist() == [[2, 1]]
    # feature 2 (norm 0.51) is not represented at min_norm 0.6: neuron 0 then reads one feature
    assert sp.neuron_feature_counts(W, threshold=0.3, min_norm=0.6).cpu().tolist() == [[1, 1]]


def test_classify_two_feature_solution(device):
    W = torch.tensor([[[1.0], [0.0]], [[0.05], [1.0]], [[1.0], [-1.0]], [[0.1], [0.2]]], device=device)
    assert sp.classify_two_feature_solution(W).cpu().tolist() == [0, 1, 2, 0]
    assert sp.PHASES[2] == "superposition"


@pytest.mark.parametrize("importance,p", [(0.5, 0.1), (2.0, 0.6)])
def test_two_feature_losses_match_monte_carlo(importance, p):
    """The closed forms equal the kernel's loss (times 2 features) on a large sample."""
    candidates = {
        "not represented": [[1.0], [0.0]],
        "dedicated dimension": [[0.0], [1.0]],
        "superposition": [[1.0], [-1.0]],
    }
    W = torch.tensor(list(candidates.values()))
    x = sp.generate_batch(400_000, p, 2, 3, generator=torch.Generator().manual_seed(0))
    imp = torch.tensor([1.0, importance])
    loss = 2 * sp.importance_weighted_loss(sp.toy_model_forward(W, torch.zeros(3, 2), x), x, imp)
    want = sp.two_feature_losses(importance, p)
    for k, name in enumerate(candidates):
        assert loss[k].item() == pytest.approx(want[name], rel=0.03), name


# --------------------------------------------------------------------------- validation


def test_input_errors():
    W, b, x, imp = random_setup("cpu")
    with pytest.raises(TutorialInputError, match=r"\[batch, instances, features\]"):
        sp.toy_model_forward(W, b, x[:, :2])
    with pytest.raises(TutorialInputError, match="b must have shape"):
        sp.toy_model_forward(W, b[:, :2], x)
    with pytest.raises(TutorialInputError, match="output"):
        sp.toy_model_forward(W, b, x, output="gelu")
    with pytest.raises(TutorialInputError, match=r"\[0, 1\]"):
        sp.generate_batch(8, 1.5, 3)
    with pytest.raises(TutorialInputError, match=r"\[0, 1\]"):
        sp.ToyModel(3, 2, 2, feature_probability=torch.tensor([0.5, -0.1]))
    with pytest.raises(TutorialInputError, match="non-negative"):
        sp.ToyModel(3, 2, importance=torch.tensor([1.0, -1.0, 1.0]))
    with pytest.raises(TutorialInputError, match=r"\[features\]"):
        sp.ToyModel(3, 2, importance=torch.ones(4))
    with pytest.raises(TutorialInputError, match="pairs"):
        sp.generate_batch(8, 0.5, 3, correlated_pairs=2)
    with pytest.raises(TutorialInputError, match="positive int"):
        sp.ToyModel(0, 2)
    with pytest.raises(TutorialInputError, match="2-D hidden"):
        sp.feature_angles(torch.randn(1, 3, 3))
    with pytest.raises(TutorialInputError, match="out must have shape"):
        sp.importance_weighted_loss(x[:3], x, imp)
    with pytest.raises(TutorialInputError, match="ToyModel"):
        sp.train(torch.nn.Linear(2, 2))  # pyright: ignore[reportArgumentType] - the wrong type on purpose


# --------------------------------------------------------------------------- the benchmark cannot rot


def test_benchmark_smoke():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "superposition_batched.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert "speedup" in result.stdout and "same result" in result.stdout


# --------------------------------------------------------------------------- phase.py


def test_dense_baseline_equals_the_measured_loss_of_the_dense_solution():
    """The closed form against a Monte Carlo measurement of the solution it describes."""
    importance = 0.7 ** torch.arange(20.0)
    W = torch.zeros(20, 5)
    W[torch.arange(5), torch.arange(5)] = 1.0
    for p in (0.01, 0.3):
        score = sp.packing_score(W, torch.zeros(20), p, importance, n_samples=200000)
        assert score["represented"] == 5
        assert score["loss"] == pytest.approx(score["baseline"], rel=0.05)
        assert score["baseline"] == pytest.approx(sp.dense_baseline_loss(importance, 5, p))


def test_pack_features_packs_and_pays():
    W, b, p = sp.pack_features()
    score = sp.packing_score(W, b, p, 0.7 ** torch.arange(20.0))
    assert score["represented"] >= 10 and score["loss"] <= 0.5 * score["baseline"]


def test_trained_phase_diagram_keeps_each_cells_lowest_loss_run():
    rel, prb = torch.tensor([0.1, 1.0, 10.0]), torch.tensor([0.01, 1.0])
    best, codes = sp.trained_phase_diagram(rel, prb, runs=3, steps=400)
    assert best.shape == (3, 2) and codes.shape == (3, 2, 3)
    assert ((codes == best[..., None]).any(-1)).all(), "each cell's answer is one of its runs"
    assert best[0, 1] == 0 and best[2, 1] == 1, "dense: drop the unimportant extra feature, isolate the important one"
    assert best[1, 0] == 2, "sparse, equal importance: superposition"
    again, _ = sp.trained_phase_diagram(rel, prb, runs=3, steps=400)
    assert torch.equal(best, again), "seeded: the same diagram twice"
