"""Chapter 07: automated circuit discovery and validation, after chapter 04's patching.

Modules: ``graph`` (senders, receivers, valid edges), ``forward`` (the per-edge forward on the model's own
weights, checked once per model against its logits), ``edges`` (edge patching, many edge sets per forward),
``eap`` (edge attribution patching and EAP-IG), ``acdc`` (ACDC and its threshold sweep), ``metrics``
(faithfulness, Wang et al.'s incompleteness and minimality, ROC/AUC, bootstrap intervals), ``nodes`` (node
attribution patching, the node-level baseline), ``scrubbing`` (causal scrubbing of a circuit hypothesis),
``hypothesis`` (Shi et al.'s equivalence, minimality and independence tests with p-values).
"""

from __future__ import annotations

from .acdc import ACDCResult, acdc, acdc_sweep, kl_to
from .eap import eap_circuit, eap_ig_scores, eap_scores, receiver_gradients
from .edges import edge_patch, mean_sender_outputs, run_edges, sender_outputs
from .graph import Graph, build_graph
from .hypothesis import HypothesisTest, equivalence_test, independence_test, minimality_test
from .metrics import auc, bootstrap_ci, circuit_subsets, faithfulness, incompleteness, minimality, roc_curve, top_k_mask
from .nodes import edge_scores_from_nodes, node_attribution
from .scrubbing import ScrubResult, induction_hypothesis, scrub, scrub_replacement

__all__ = [
    "ACDCResult",
    "ScrubResult",
    "Graph",
    "HypothesisTest",
    "acdc",
    "acdc_sweep",
    "auc",
    "bootstrap_ci",
    "build_graph",
    "circuit_subsets",
    "eap_circuit",
    "eap_ig_scores",
    "eap_scores",
    "edge_patch",
    "edge_scores_from_nodes",
    "equivalence_test",
    "faithfulness",
    "incompleteness",
    "independence_test",
    "induction_hypothesis",
    "kl_to",
    "mean_sender_outputs",
    "minimality",
    "minimality_test",
    "node_attribution",
    "receiver_gradients",
    "roc_curve",
    "run_edges",
    "scrub",
    "scrub_replacement",
    "sender_outputs",
    "top_k_mask",
]
