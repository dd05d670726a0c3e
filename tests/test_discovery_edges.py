"""tutorial_lib.discovery.edges: batched edge patching equals a plain one-forward-per-edge-set reference
that ablates edges through the bridge's own forward and hooks."""

from __future__ import annotations

import pytest
import torch
from arch_models import random_llama
from discovery_support import gpt2_bridge, llama_edge_logits, plain_edge_logits
from patching_support import make_data, make_model

from tutorial_lib.discovery import build_graph, edge_patch, mean_sender_outputs, run_edges, sender_outputs
from tutorial_lib.validation import TutorialInputError


def _edge_sets(g, n_sets, seed):
    gen = torch.Generator().manual_seed(seed)
    edges = g.valid.nonzero().tolist()
    sets = [[tuple(edges[i]) for i in torch.randperm(len(edges), generator=gen)[:k].tolist()] for k in (1, 3, 9)]
    return sets[:n_sets]


@pytest.mark.parametrize("kind", ["native", "native_attn_only", "gpt2"])
def test_batched_edge_patching_equals_plain_reference(kind, device):
    model = gpt2_bridge(device=device) if kind == "gpt2" else make_model(device, attn_only=kind.endswith("only"))
    clean, corrupted, _, _ = make_data(device, d_vocab=40)
    g = build_graph(model)
    sets = _edge_sets(g, 3, 0) + [[(s, r) for s, r in g.valid.nonzero().tolist() if r == g.logits_receiver]]
    ablate = torch.zeros(len(sets), g.n_senders, g.n_receivers, dtype=torch.bool, device=device)
    for v, edges in enumerate(sets):
        for s, r in edges:
            ablate[v, s, r] = True
    got, _ = run_edges(model, clean, corrupted, ablate)
    for v, edges in enumerate(sets):
        want = plain_edge_logits(model, clean, corrupted, edges)
        torch.testing.assert_close(got[v], want, atol=1e-4, rtol=1e-4)


def test_grouped_query_rotary_edge_patching_equals_patching_the_llama_modules():
    """SmolLM2's architecture (grouped-query attention, rotary, RMSNorm, gated MLP) on random weights: each
    edge set through run_edges equals the same edges patched in the Hugging Face modules (k and v edges
    ablated for every query head of a group, as the model shares them)."""
    model = random_llama(n_layers=3).double()
    clean, corrupted, _, _ = make_data("cpu", d_vocab=40, batch=2, n_pos=6)
    g = build_graph(model)
    group = [f"a2.{h}.k" for h in range(3)]  # query heads 0-2 share key/value head 0
    sets = [[g.edge("embed", "a0.2.q")], [g.edge("a0.1", "a1.3.q")], [g.edge("a0.4", r) for r in group],
            [g.edge("m0", f"a1.{h}.v") for h in range(3, 6)], [g.edge("a1.2", "m1")],
            [g.edge("m2", "logits"), g.edge("a2.5", "logits")],
            [(s, r) for s, r in g.valid.nonzero().tolist() if g.receivers[r][-1] not in "kv"]]  # fmt: skip
    ablate = torch.zeros(len(sets), g.n_senders, g.n_receivers, dtype=torch.bool)
    for v, edges in enumerate(sets):
        for s, r in edges:
            ablate[v, s, r] = True
    got, _ = run_edges(model, clean, corrupted, ablate)
    torch.testing.assert_close(
        run_edges(model, clean, corrupted, None)[0][0], model(clean), atol=1e-6, rtol=1e-6
    )  # HF RMSNorm rounds to float32
    for v, edges in enumerate(sets):
        want = llama_edge_logits(model, clean, corrupted, edges)
        torch.testing.assert_close(got[v], want, atol=1e-6, rtol=1e-6)
        assert (want - model(clean)).abs().max() > 1e-5  # every set moves the logits


def test_no_edges_ablated_is_the_model_and_all_ablated_is_the_corrupted_run(device):
    model = make_model(device)
    clean, corrupted, _, _ = make_data(device)
    g = build_graph(model)
    logits, outs = run_edges(model, clean, corrupted, torch.stack([~g.valid, g.valid]).to(device))
    torch.testing.assert_close(logits[0], model(clean), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(logits[1], model(corrupted), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(outs[0], sender_outputs(model, clean))


def test_per_position_masks_and_mean_ablation(device):
    model = make_model(device)
    clean, corrupted, right, wrong = make_data(device)
    g = build_graph(model)
    s, r = g.edge("a0.1", "m1")
    per_pos = torch.zeros(1, clean.shape[1], g.n_senders, g.n_receivers, dtype=torch.bool, device=device)
    per_pos[0, :, s, r] = True
    whole = per_pos[:, 0]
    torch.testing.assert_close(
        run_edges(model, clean, corrupted, per_pos)[0], run_edges(model, clean, corrupted, whole)[0]
    )
    mean = mean_sender_outputs(model, corrupted)
    assert mean.shape == (1, clean.shape[1], g.n_senders, 32)
    metric = lambda lg: (lg[:, -1, right[0]] - lg[:, -1, wrong[0]]).mean()  # noqa: E731
    values = edge_patch(model, clean, mean, torch.stack([~g.valid, g.valid]).to(device), metric)
    assert values.shape == (2,) and torch.isclose(values[0], metric(model(clean)), atol=1e-5)


def test_bad_masks_are_refused():
    model = make_model("cpu")
    clean, corrupted, _, _ = make_data("cpu")
    with pytest.raises(TutorialInputError, match="bool mask"):
        run_edges(model, clean, corrupted, torch.zeros(3, 3, dtype=torch.bool))
    with pytest.raises(TutorialInputError, match="bool"):
        run_edges(model, clean, corrupted, torch.zeros(11, 27))
    with pytest.raises(TutorialInputError, match="shape"):
        run_edges(model, clean, corrupted[:, :3], None)
