"""Attribution graphs (Chapter 08; Ameisen et al. 2025): graph construction on a transcoder
replacement model with attention and norms frozen, pruning by influence, validation by intervention."""

from .attention_effects import attention_gap, attention_shift, effects_by_mode, fact_prompts, gap_by_group
from .graph import AttributionGraph, attribution_graph, clean_state, frozen_forward, logit_edges
from .pruning import circuit_latents, error_share, influence, prune, strongest_path, top_latents
from .validation import (
    FREEZABLE,
    MODES,
    ablate_latents,
    closing_prompts,
    measured_ablation_effects,
    predicted_ablation_effects,
    validate_ablations,
)

__all__ = [
    "FREEZABLE",
    "MODES",
    "AttributionGraph",
    "ablate_latents",
    "attention_gap",
    "attention_shift",
    "attribution_graph",
    "circuit_latents",
    "clean_state",
    "closing_prompts",
    "effects_by_mode",
    "error_share",
    "fact_prompts",
    "frozen_forward",
    "gap_by_group",
    "influence",
    "logit_edges",
    "measured_ablation_effects",
    "predicted_ablation_effects",
    "prune",
    "strongest_path",
    "top_latents",
    "validate_ablations",
]
