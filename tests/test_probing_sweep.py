"""tutorial_lib.probing.sweep: one probe per layer (and position) from one cached forward."""

from __future__ import annotations

import pytest
import torch
from probing_support import D_VOCAB, SEQ, shared_model

from tutorial_lib import probing


@pytest.fixture
def model(device):
    return shared_model(device)


def test_layer_sweep_matches_per_layer_probes(model, device):
    tokens = torch.randint(0, D_VOCAB, (40, SEQ), device=device)
    labels = (tokens >= D_VOCAB // 2).long()  # token identity: linearly readable at every layer
    sweep = probing.layer_sweep(model, tokens, labels, hook="resid_post", control=True)
    assert sweep.hook_names == ["blocks.0.hook_resid_post", "blocks.1.hook_resid_post"]
    assert sweep.control_scores is not None
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
