"""Measurements for chapter 06, open problems as experiments: scaling counts, circuit coverage,
direct versus total effects (self-repair), distance from the activation distribution, subspace
patching (the interpretability illusion), rank agreement of proxy metrics, and compute equivalents.

Each function is small and checked against an analytic answer in tests/test_open_problems.py.
"""

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
    log_log_slope,
    median_seconds,
    steps_to_reach,
    transformer_flops,
    unit_counts,
)

__all__ = [
    "PUBLISHED_CONFIGS",
    "circuit_coverage",
    "circuit_hooks",
    "component_means",
    "direct_and_total_effects",
    "direct_effect",
    "fraction_recovered",
    "gaussian_stats",
    "log_log_slope",
    "mahalanobis",
    "max_cosines",
    "median_seconds",
    "patch_subspace",
    "ranks",
    "self_repair_fraction",
    "spearman",
    "steps_to_reach",
    "transformer_flops",
    "unit_counts",
]
