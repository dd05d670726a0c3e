"""tutorial_lib.discovery.eap: EAP equals TransformerLens 4.3's attribution_patch (edge granularity) on a
GPT-2-architecture bridge, and an autograd reference of the same first-order term on native organisms;
EAP-IG with one step is EAP and with m steps the mean of m single-point gradients."""

from __future__ import annotations

import pytest
import torch
import transformer_lens.tools.analysis as tla
from arch_models import random_llama
from discovery_support import gpt2_bridge, tl_index
from patching_support import make_data, make_model

from tutorial_lib import tasks
from tutorial_lib.discovery import build_graph, run_edges, sender_outputs
from tutorial_lib.discovery.eap import eap_scores, receiver_gradients
from tutorial_lib.discovery.metrics import faithfulness


def _metric(lg):
    return lg[:, -1, 5].mean() - lg[:, -1, 7].mean()  # the same for every prompt: TransformerLens scores one at a time


def _tl_dense(g, result, n_pos):
    dense = torch.zeros(n_pos, g.n_senders, g.n_receivers, dtype=torch.float64)
    for (writer, reader), value in result.edge_scores.items():
        dense[writer.position, tl_index(g, writer, False), tl_index(g, reader, True)] = value
    return dense


def test_eap_and_faithfulness_equal_transformerlens_on_a_gpt2_bridge():
    model = gpt2_bridge(n_layer=2, n_head=4)
    b = tasks.ioi(3, seed=0)
    clean, corrupted = b.tokens, model.to_tokens(b.corrupt_prompts)
    g = build_graph(model)
    result = tla.attribution_patch(model, clean, corrupted, _metric, tla.EdgeAttributionConfig(granularity="edge"))
    assert len(result.edge_scores) == g.n_edges * clean.shape[1]  # the same graph, position by position
    ours = eap_scores(model, clean, corrupted, _metric, per_position=True)
    theirs = _tl_dense(g, result, clean.shape[1])
    torch.testing.assert_close(ours.double(), theirs, atol=1e-5, rtol=0)
    assert theirs.abs().max() > 1e-3  # not vacuous
    for k in (5, 40, 200):
        top = result.top_edges(k)
        circuit = torch.zeros(1, clean.shape[1], g.n_senders, g.n_receivers, dtype=torch.bool)
        for writer, reader, _ in top:
            circuit[0, writer.position, tl_index(g, writer, False), tl_index(g, reader, True)] = True
        want = tla.faithfulness(model, clean[:1], corrupted[:1], _metric, top).recovered
        got = faithfulness(model, clean[:1], corrupted[:1], _metric, circuit)
        assert abs(float(got[0]) - want) < 1e-5, (k, float(got[0]), want)


@pytest.mark.parametrize("kind", ["native", "native_attn_only", "llama"])
def test_eap_equals_an_autograd_reference_on_native_organisms_and_grouped_query_models(kind, device):
    if kind == "llama":  # SmolLM2's architecture: grouped-query attention, rotary, RMSNorm, gated MLP
        model, device = random_llama(n_layers=2).double(), "cpu"
    else:
        model = make_model(device, attn_only=kind.endswith("only"), n_layers=2).double()
    clean, corrupted, right, wrong = make_data(device, batch=3)
    metric = lambda lg: (lg[:, -1, right] - lg[:, -1, wrong]).mean()  # noqa: E731
    g = build_graph(model)
    scores = eap_scores(model, clean, corrupted, metric)
    delta = sender_outputs(model, clean) - sender_outputs(model, corrupted)
    corr = sender_outputs(model, corrupted)
    edges = g.valid.nonzero().tolist()
    for i in torch.randperm(len(edges))[:12].tolist() + [len(edges) - 1]:
        s, r = edges[i]
        eps = torch.zeros((), dtype=torch.float64, device=device, requires_grad=True)
        replacement = corr.clone()
        replacement[:, :, s] = corr[:, :, s] + eps * delta[:, :, s]  # receiver r reads corr_s + eps * delta_s
        ablate = torch.zeros(g.n_senders, g.n_receivers, dtype=torch.bool, device=device)
        ablate[s, r] = True
        logits, _ = run_edges(model, corrupted, replacement, ablate)
        (want,) = torch.autograd.grad(metric(logits[0]), eps)
        torch.testing.assert_close(scores[s, r], want, atol=1e-9, rtol=1e-6)
    assert scores.abs().max() > 1e-4
    assert (scores[~g.valid.to(device)] == 0).all()


def test_eap_ig_steps(device):
    model = make_model(device).double()
    clean, corrupted, right, wrong = make_data(device, batch=2)
    metric = lambda lg: (lg[:, -1, right] - lg[:, -1, wrong]).mean()  # noqa: E731
    torch.testing.assert_close(eap_scores(model, clean, corrupted, metric, ig_steps=1),
                               eap_scores(model, clean, corrupted, metric))  # fmt: skip
    e_clean, e_corr = sender_outputs(model, clean)[:, :, 0], sender_outputs(model, corrupted)[:, :, 0]
    grads = [receiver_gradients(model, corrupted, metric, (e_corr + a * (e_clean - e_corr))[None])[0]
             for a in (0.0, 0.25, 0.5, 0.75)]  # fmt: skip
    delta = sender_outputs(model, clean) - sender_outputs(model, corrupted)
    want = torch.einsum("bpsd,bprd->sr", delta, torch.stack(grads).mean(0)) * build_graph(model).valid.to(device)
    got = eap_scores(model, clean, corrupted, metric, ig_steps=4)
    torch.testing.assert_close(got, want, atol=1e-9, rtol=1e-6)
    assert not torch.allclose(got, eap_scores(model, clean, corrupted, metric), atol=1e-6)
