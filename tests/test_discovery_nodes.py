"""tutorial_lib.discovery.nodes: node attribution patching is the derivative of explicit node patching
(every outgoing edge of one sender moved towards its clean value), and as a baseline it ranks planted-2l's
circuit nodes first, but not on an untrained model; turned into an edge ranking it cannot tell a head's
query edge from its key edge."""

from __future__ import annotations

import functools

import pytest
import torch
from arch_models import random_llama
from patching_support import make_data, make_model, metric_for

from tutorial_lib import organisms
from tutorial_lib import patching as P
from tutorial_lib.discovery import auc, build_graph, eap_scores, edge_patch, sender_outputs
from tutorial_lib.discovery.nodes import edge_scores_from_nodes, node_attribution
from tutorial_lib.organisms.planted import TRUE_EDGES, planted_pairs
from tutorial_lib.validation import TutorialInputError


@pytest.mark.parametrize("kind", ["native", "native_attn_only", "llama"])
def test_node_scores_are_the_derivative_of_patching_the_node(device, kind):
    if kind == "llama":  # grouped-query attention, rotary, RMSNorm, gated MLP
        model, device = random_llama(n_layers=2).double(), "cpu"
    else:
        model = make_model(device, attn_only=kind.endswith("only")).double()
    clean, corrupted, right, wrong = make_data(device, batch=3, n_pos=6)
    metric = metric_for(right, wrong)
    g = build_graph(model)
    got = node_attribution(model, clean, corrupted, metric)
    eps = 1e-3  # each variant moves one sender's output, as every receiver reads it, eps towards/away from clean
    corr_outs = sender_outputs(model, corrupted)
    step = eps * (sender_outputs(model, clean) - corr_outs)
    rows = torch.zeros(g.n_senders, g.n_senders, g.n_receivers, dtype=torch.bool, device=device)
    for s in range(g.n_senders):
        rows[s, s] = g.valid[s]
    up, down = (edge_patch(model, corrupted, corr_outs + sign * step, rows, metric).double() for sign in (1, -1))
    want = (up - down) / (2 * eps)  # a central difference (edge_patch returns float32 metrics)
    torch.testing.assert_close(got.double(), want, atol=1e-3 * float(want.abs().max()), rtol=1e-3)
    assert want.abs().max() > 1e-3


@pytest.fixture(scope="module")
def planted():
    return organisms.load("planted-2l")


def _task(seed):
    clean, corrupted, answer, other = planted_pairs(32, seed=seed)
    return clean, corrupted, functools.partial(P.logit_diff, correct_tokens=answer, wrong_tokens=other)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_nodes_rank_the_planted_circuit_first_and_an_untrained_model_fails(planted, seed):
    g = build_graph(planted)
    truth = torch.zeros(g.n_senders, dtype=torch.bool)
    truth[[g.senders.index(n) for n in ("a0.0", "a1.0")]] = True  # the heads of TRUE_EDGES
    clean, corrupted, metric = _task(seed)
    scores = node_attribution(planted, clean, corrupted, metric).abs()
    assert auc(scores[1:], truth[1:]) >= 0.95  # heads ranked (the embedding feeds everything)
    torch.manual_seed(seed)
    control = node_attribution(organisms.build("planted-2l"), clean, corrupted, metric).abs()
    assert auc(control[1:], truth[1:]) < 0.95  # random weights: the card's heads do not stand out


def test_a_node_ranking_cannot_tell_a_query_edge_from_a_key_edge(planted):
    g = build_graph(planted)
    clean, corrupted, metric = _task(0)
    nodes = node_attribution(planted, clean, corrupted, metric)
    edges = edge_scores_from_nodes(g, nodes)
    truth = g.mask(TRUE_EDGES)
    q, k = g.edge("embed", "a1.0.q"), g.edge("embed", "a1.0.k")  # the first is planted, the second is not
    assert truth[q] and not truth[k] and edges[q] == edges[k] > 0
    node_auc = auc(edges[g.valid], truth[g.valid])
    edge_auc = auc(eap_scores(planted, clean, corrupted, metric).abs()[g.valid], truth[g.valid])
    assert node_auc < edge_auc == 1.0
    with pytest.raises(TutorialInputError, match="one score per sender"):
        edge_scores_from_nodes(g, nodes[:-1])
