"""attribution_graph/pruning.py: influence on a hand-made chain graph equals the path products, and
pruning keeps the fewest nodes reaching the threshold."""

from __future__ import annotations

import pytest
import torch

from tutorial_lib import attribution_graph as AG
from tutorial_lib.attribution_graph import AttributionGraph, influence, prune
from tutorial_lib.validation import TutorialInputError


def _chain() -> AttributionGraph:
    """Nodes: latent 0 -> latent 1 -> logit, and an embedding-like node 2 -> logit."""
    adj = torch.zeros(4, 4)
    adj[1, 0] = 2.0  # latent 1's only input is latent 0
    adj[3, 1] = 3.0  # the logit gets 3 from latent 1 and 1 from node 2
    adj[3, 2] = -1.0
    return AttributionGraph([(0, 0, 0), (1, 0, 0)], 1, 1, 0, 2.0, 0.0, adj, torch.zeros(4, 4), torch.ones(2))


def test_influence_is_the_sum_over_paths_of_normalised_edges():
    torch.testing.assert_close(influence(_chain()), torch.tensor([0.75, 0.75, 0.25, 0.0]))


def test_prune_keeps_the_most_influential_nodes():
    assert prune(_chain(), 0.4).tolist() in ([0], [1])
    assert sorted(prune(_chain(), 1.0).tolist()) == [0, 1, 2]
    with pytest.raises(TutorialInputError, match="threshold"):
        prune(_chain(), 1.5)


def test_strongest_path_follows_the_chain_and_top_latents_sum_influence():
    chain = _chain()
    assert AG.strongest_path(chain, 0) == [0, 1, 3]
    assert AG.strongest_path(chain, 0, via_layer=1) == [0, 1, 3]
    assert AG.strongest_path(chain, 1) == [1, 3]
    assert sorted(AG.top_latents([chain, chain], 2)) == [(0, 0), (1, 0)]
    with pytest.raises(TutorialInputError, match="start must be"):
        AG.strongest_path(chain, 2)  # an embedding-like node, not a latent
    with pytest.raises(TutorialInputError, match="no latent of layer 0"):
        AG.strongest_path(chain, 1, via_layer=0)
    with pytest.raises(TutorialInputError, match="non-empty list"):
        AG.top_latents([], 1)
