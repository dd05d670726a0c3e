"""tutorial_lib.discovery.graph: the edge graph's nodes, indices and which edges exist."""

from __future__ import annotations

import pytest
import torch
from patching_support import make_model

from tutorial_lib.discovery import build_graph
from tutorial_lib.validation import TutorialInputError


@pytest.mark.parametrize("attn_only", [False, True])
def test_graph_counts_and_order(attn_only):
    g = build_graph(make_model("cpu", attn_only=attn_only, n_layers=2))
    n_mlp = 0 if attn_only else 1
    assert g.n_senders == 1 + 2 * (4 + n_mlp)
    assert g.n_receivers == 2 * (12 + n_mlp) + 1
    assert g.senders[g.head_sender(1, 2)] == "a1.2"
    assert g.receivers[g.head_receiver(1, 3, "k")] == "a1.3.k"
    assert g.receivers[g.logits_receiver] == "logits"
    # count edges by hand: every sender feeds every receiver that reads after it writes
    expected = 0
    for s in g.senders:
        for r in g.receivers:
            s_at = -1 if s == "embed" else int(s[1]) + (0.5 if s.startswith("m") else 0)
            r_at = 2 if r == "logits" else int(r[1]) + (0.25 if r.startswith("m") else 0)
            expected += s_at < r_at
    assert g.n_edges == expected


def test_graph_edges_by_name():
    g = build_graph(make_model("cpu", n_layers=2))
    assert g.valid[g.edge("a0.1", "a1.0.q")]
    assert g.valid[g.edge("a0.1", "m0")]  # a head feeds its own layer's MLP
    with pytest.raises(TutorialInputError, match="no such edge"):
        g.edge("m0", "m0")
    with pytest.raises(TutorialInputError, match="unknown node"):
        g.edge("a9.9", "logits")
    mask = g.mask([("embed", "logits"), ("m1", "logits")])
    assert g.edge_names(mask) == ["embed->logits", "m1->logits"]
    assert torch.equal(g.mask(), g.valid)
    with pytest.raises(TutorialInputError, match="attention-only"):
        build_graph(make_model("cpu", attn_only=True)).mlp_sender(0)


def test_reader_names_the_node_that_reads_each_receiver():
    g = build_graph(make_model("cpu"))
    for r, name in enumerate(g.receivers):
        rd = g.reader(r)
        assert (rd is None) == (name == "logits")
        if rd is not None:
            assert name.startswith(g.senders[rd] + ".") or name == g.senders[rd]  # a1.2.k -> a1.2, m0 -> m0
