"""tutorial_lib.discovery.acdc: the batched, speculative ACDC makes the decisions and scores of the plain
one-forward-per-edge loop; the circuit shrinks as the threshold grows."""

from __future__ import annotations

import pytest
import torch
from arch_models import random_llama
from discovery_support import acdc_one_by_one, gpt2_bridge
from patching_support import make_data, make_model

from tutorial_lib.discovery import build_graph, mean_sender_outputs, run_edges
from tutorial_lib.discovery.acdc import acdc, acdc_sweep, kl_to
from tutorial_lib.discovery.metrics import faithfulness


@pytest.mark.parametrize("kind", ["native", "native_attn_only", "gpt2", "llama"])
def test_acdc_equals_the_one_forward_per_edge_loop(kind, device):
    if kind == "llama":  # grouped-query attention, rotary, RMSNorm, gated MLP
        model, device = random_llama(n_layers=2), "cpu"
    else:
        model = gpt2_bridge(device=device) if kind == "gpt2" else make_model(device, attn_only=kind.endswith("only"))
    model = model.double()
    clean, corrupted, _, _ = make_data(device, batch=3, n_pos=6)
    g = build_graph(model)
    logits, _ = run_edges(model, clean, corrupted, torch.stack([~g.valid, g.valid]).to(device))
    scale = float(kl_to(logits[0])(logits[1]))  # the KL of the fully corrupted run: thresholds relative to it
    for threshold, chunk in [(1e-3 * scale, 64), (3e-2 * scale, 5)]:
        got = acdc(model, clean, corrupted, threshold, chunk=chunk)
        kept, scores, n_plain = acdc_one_by_one(model, clean, corrupted, threshold)
        assert torch.equal(got.kept, kept), threshold
        torch.testing.assert_close(got.scores, scores, atol=1e-10, rtol=1e-6, equal_nan=True)
        assert 0 < got.n_edges < g.n_edges  # neither nothing nor everything pruned
        assert not got.scores[g.valid].isnan().any()  # every edge decided (some without a forward: dead readers)


def test_acdc_with_a_distance_over_every_position_and_a_mean_replacement(device):
    """The fast paths: a distance that reads every position (no final-position shortcut), 3 layers (dead
    heads skipped), and a float replacement (mean ablation), against the plain loop."""
    model = make_model(device, n_layers=3).double()
    clean, corrupted, _, _ = make_data(device, batch=3, n_pos=6)
    distance = lambda lg: lg.log_softmax(-1)[..., 0].mean().neg()  # noqa: E731  every position counts
    mean = mean_sender_outputs(model, corrupted)
    base = float(distance(run_edges(model, clean, corrupted, None)[0][0]))
    for replacement in (corrupted, mean):
        got = acdc(model, clean, replacement, 1e-3 * abs(base), distance=distance, chunk=4)
        kept, scores, _ = acdc_one_by_one(model, clean, replacement, 1e-3 * abs(base), distance=distance)
        assert torch.equal(got.kept, kept)
        torch.testing.assert_close(got.scores, scores, atol=1e-10, rtol=1e-6, equal_nan=True)
        assert 0 < got.n_edges < build_graph(model).n_edges


def test_sweep_shrinks_and_keeps_what_matters(device):
    model = make_model(device)
    clean, corrupted, right, wrong = make_data(device, batch=4)
    results = acdc_sweep(model, clean, corrupted, [0.0, 1e-3, 1e-2, 1e10])
    sizes = [r.n_edges for r in results]
    assert sizes == sorted(sizes, reverse=True) and sizes[-1] == 0
    metric = lambda lg: (lg[:, -1, right] - lg[:, -1, wrong]).mean()  # noqa: E731
    small = results[1]
    assert small.distance < 1e-3 * small.n_edges + 1e-6
    assert float(faithfulness(model, clean, corrupted, metric, small.kept.to(device))) > 0.5


@pytest.mark.slow
def test_benchmark_quick_mode_runs():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "discovery_vs_transformerlens.py"
    spec = importlib.util.spec_from_file_location("discovery_benchmark", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--quick", "--threads", str(torch.get_num_threads())]) == 0
