"""Attribution graphs (Chapter 08; Ameisen et al. 2025): graph construction on a transcoder
replacement model with attention and norms frozen, pruning by influence, validation by intervention."""

from .graph import AttributionGraph, attribution_graph, clean_state, frozen_forward
from .pruning import influence, prune
from .validation import measured_ablation_effects, predicted_ablation_effects

__all__ = [
    "AttributionGraph",
    "attribution_graph",
    "clean_state",
    "frozen_forward",
    "influence",
    "measured_ablation_effects",
    "predicted_ablation_effects",
    "prune",
]
