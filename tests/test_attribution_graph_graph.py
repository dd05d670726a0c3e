"""attribution_graph/graph.py: the batched graph's edges equal the naive one-backward-per-node
reference; the frozen-linear model reproduces the true logit exactly (error nodes included) and the
logit's incoming edges plus the bias sum to it; dropping the error nodes' edges breaks that sum (the
control). Transcoders need not be trained for these identities: untrained ones are used."""

from __future__ import annotations

import copy

import pytest
import torch

from tutorial_lib import organisms
from tutorial_lib.attribution_graph import attribution_graph, logit_edges
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
