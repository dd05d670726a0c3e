"""Measurements for chapter 06, open problems as experiments: scaling counts, circuit coverage,
direct versus total effects (self-repair), distance from the activation distribution, subspace
patching (the interpretability illusion), rank agreement of proxy metrics, and compute equivalents.

Each function is small and checked against an analytic answer in tests/test_open_problems.py.
"""

from .curves import TOY_LM_CURVE_LOSS, TOY_LM_CURVE_STEPS
from .dictionaries import dictionary_agreement, latent_probe_correct, spliced_loss
from .experiments import (
    bootstrap_rank_correlation,
    find_circuit,
    head_z_at,
    replacement_distances,
    replacement_verdicts,
)
from .measures import (
    circuit_coverage,
    circuit_hooks,
    component_means,
    direct_and_total_effects,
    direct_effect,
    fraction_recovered,
    gaussian_stats,
    mahalanobis,
    max_cosines,
    patch_subspace,
    ranks,
    self_repair_fraction,
    spearman,
)
from .scaling import (
    PUBLISHED_CONFIGS,
    compute_equivalent,
    count_flops,
    log_log_slope,
    median_seconds,
    random_transformer,
    steps_to_reach,
    transformer_flops,
    unit_counts,
)
from .toy_saes import (
    TOY_SAE_DIR,
    TOY_SAE_RECIPE,
    ToySAEs,
    build_long_toy_saes,
    build_toy_saes,
    load_toy_saes,
    toy_sae_activations,
    train_toy_sae,
)

__all__ = [
    "TOY_SAE_DIR",
    "TOY_SAE_RECIPE",
    "ToySAEs",
    "build_long_toy_saes",
    "build_toy_saes",
    "load_toy_saes",
    "toy_sae_activations",
    "train_toy_sae",
    "compute_equivalent",
    "dictionary_agreement",
    "latent_probe_correct",
    "spliced_loss",
    "TOY_LM_CURVE_LOSS",
    "TOY_LM_CURVE_STEPS",
    "PUBLISHED_CONFIGS",
    "bootstrap_rank_correlation",
    "circuit_coverage",
    "circuit_hooks",
    "component_means",
    "direct_and_total_effects",
    "direct_effect",
    "find_circuit",
    "fraction_recovered",
    "gaussian_stats",
    "head_z_at",
    "log_log_slope",
    "mahalanobis",
    "max_cosines",
    "count_flops",
    "median_seconds",
    "patch_subspace",
    "random_transformer",
    "ranks",
    "replacement_distances",
    "replacement_verdicts",
    "self_repair_fraction",
    "spearman",
    "steps_to_reach",
    "transformer_flops",
    "unit_counts",
]
