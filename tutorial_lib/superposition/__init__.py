"""Chapter 01: toy models of superposition (Elhage et al. 2022), trained as many instances at once.

One `ToyModel` holds `n_instances` independent models: weights W [instances, features, hidden]
and biases b [instances, features]. Each instance sees its own feature probability and
per-feature importance, so a single batched training run sweeps a whole grid of settings.
The measures (features represented, dimensionality, interference, 2-D angles) read
the geometry the models learn.
"""

from __future__ import annotations

from .data import generate_batch
from .measures import (
    PHASES,
    adjacent_angle_gaps,
    classify_two_feature_solution,
    dimensions_per_feature,
    feature_angles,
    feature_dimensionality,
    features_represented,
    gram,
    interference,
    neuron_feature_counts,
    two_feature_losses,
)
from .model import OUTPUTS, ToyModel, importance_weighted_loss, toy_model_forward, train
from .phase import dense_baseline_loss, pack_features, packing_score, trained_phase_diagram

__all__ = [
    "OUTPUTS",
    "PHASES",
    "ToyModel",
    "adjacent_angle_gaps",
    "classify_two_feature_solution",
    "dense_baseline_loss",
    "dimensions_per_feature",
    "feature_angles",
    "feature_dimensionality",
    "features_represented",
    "generate_batch",
    "gram",
    "importance_weighted_loss",
    "interference",
    "neuron_feature_counts",
    "pack_features",
    "packing_score",
    "toy_model_forward",
    "train",
    "trained_phase_diagram",
    "two_feature_losses",
]
