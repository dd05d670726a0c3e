"""Chapter 07: automated circuit discovery and validation on the patching ideas of chapter 04.

Modules: ``graph`` (senders, receivers, valid edges), ``forward`` (the per-edge forward on the model's own
weights), ``edges`` (edge patching, many edge sets per forward), ``eap`` (edge attribution patching and
EAP-IG), ``acdc`` (ACDC and its threshold sweep), ``metrics`` (faithfulness, ROC/AUC, bootstrap intervals).
"""

from __future__ import annotations

from .edges import edge_patch, mean_sender_outputs, run_edges, sender_outputs
from .graph import Graph, build_graph

__all__ = ["Graph", "build_graph", "edge_patch", "mean_sender_outputs", "run_edges", "sender_outputs"]
