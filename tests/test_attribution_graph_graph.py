"""attribution_graph/graph.py: the batched graph's edges (the hand-written backward of the frozen model)
equal the naive one-backward-per-node reference, on a short prompt and at toy-lm's full context; the
frozen-linear model reproduces the true logit exactly (error nodes included) and the logit's incoming
edges plus the bias sum to it; dropping the error nodes' edges breaks that sum (the control). The hand-written
backward is what runs on toy-lm, and its self-check rejects a wrong one (then autograd gives the edges).
Transcoders need not be trained for these identities: untrained ones are used."""

from __future__ import annotations

import copy

import pytest
import torch

from tutorial_lib import organisms
from tutorial_lib.attribution_graph import attribution_graph, logit_edges
from tutorial_lib.attribution_graph import graph as graph_module
from tutorial_lib.tasks.bracket_text import brackets
from tutorial_lib.transcoders import Transcoder
from tutorial_lib.validation import TutorialInputError

CLOSE = 6


@pytest.fixture(scope="module")
def setup():
    model = organisms.load("toy-lm")
    tcs = [Transcoder(model.cfg.d_model, 128, k=4, seed=i) for i in range(model.cfg.n_layers)]
    return model, tcs, brackets(1, 12, seed=0).tokens[:, :6]


def test_edges_equal_the_naive_reference_and_the_logit_is_reproduced(setup):
    model, tcs, tokens = setup
    graph = attribution_graph(model, tcs, tokens, CLOSE)
    naive = attribution_graph(model, tcs, tokens, CLOSE, naive=True)
    torch.testing.assert_close(graph.adjacency, naive.adjacency, atol=1e-5, rtol=1e-5)
    with torch.no_grad():
        true_logit = model(tokens)[0, -1, CLOSE].item()
    assert graph.logit == pytest.approx(true_logit, abs=1e-4)
    assert graph.adjacency[-1].sum().item() + graph.bias == pytest.approx(true_logit, abs=1e-3)
    n_err = graph.n_layers * graph.n_pos
    errors = graph.adjacency[-1, graph.n_latents : graph.n_latents + n_err].sum().item()
    assert abs(errors) > 1e-2  # the control: without the error nodes the sum misses the logit
    assert graph.adjacency[-1].sum().item() - errors + graph.bias != pytest.approx(true_logit, abs=1e-3)
    assert len(graph.names()) == graph.adjacency.shape[0]


def test_edges_equal_the_naive_reference_at_the_full_context(setup):
    model, tcs, _ = setup
    tokens = brackets(1, model.cfg.n_ctx, seed=1).tokens[:, : model.cfg.n_ctx]
    graph = attribution_graph(model, tcs, tokens, CLOSE)
    naive = attribution_graph(model, tcs, tokens, CLOSE, naive=True)
    assert graph.n_pos == model.cfg.n_ctx
    torch.testing.assert_close(graph.adjacency, naive.adjacency, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(graph.per_unit, naive.per_unit, atol=1e-5, rtol=1e-5)


def test_the_hand_written_backward_runs_and_its_self_check_rejects_a_wrong_one(setup, monkeypatch):
    model, tcs, tokens = setup
    naive = attribution_graph(model, tcs, tokens, CLOSE, naive=True)

    def no_autograd(*_args, **_kwargs):
        raise AssertionError("the autograd fallback ran on toy-lm")

    with monkeypatch.context() as patch:
        patch.setattr(graph_module, "_autograd_rows", no_autograd)
        attribution_graph(model, tcs, tokens, CLOSE)  # toy-lm: the hand-written backward passes its self-check
    right = graph_module._frozen_vjp

    def wrong(*args):  # the control: the logit's strongest edge off by 10%
        rows, units = right(*args)
        rows = rows.clone()
        rows[-1, rows[-1].abs().argmax()] *= 1.1
        return rows, units

    monkeypatch.setattr(graph_module, "_frozen_vjp", wrong)
    graph = attribution_graph(model, tcs, tokens, CLOSE)  # rejected: the autograd edges instead
    torch.testing.assert_close(graph.adjacency, naive.adjacency, atol=1e-5, rtol=1e-5)


def test_bad_inputs_are_named(setup):
    model, tcs, tokens = setup
    with pytest.raises(TutorialInputError, match="token must be an int"):
        attribution_graph(model, tcs, tokens, -1)
    with pytest.raises(TutorialInputError, match="one prompt"):
        attribution_graph(model, tcs, tokens.expand(2, -1), CLOSE)


def test_logit_edges_are_the_graphs_logit_row(setup):
    model, tcs, tokens = setup
    graph = attribution_graph(model, tcs, tokens, CLOSE)
    torch.testing.assert_close(logit_edges(model, tcs, tokens, CLOSE), graph.adjacency[-1, :-1], atol=1e-5, rtol=1e-5)
    with pytest.raises(TutorialInputError, match="token must be"):
        logit_edges(model, tcs, tokens, 10_000)


def test_the_model_can_be_copied_after_a_graph(setup):
    """TransformerBridge keeps tensors of its last forward; after the gradient pass they must not hold a graph."""
    model, tcs, tokens = setup
    logit_edges(model, tcs, tokens, CLOSE)
    attribution_graph(model, tcs, tokens, CLOSE)
    copy.deepcopy(model)
