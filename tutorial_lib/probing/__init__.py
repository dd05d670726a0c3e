"""Probing, from correlation to causation: activation datasets, linear probes, control tasks,
layer sweeps, and interventions / steering along a direction through TransformerLens hooks.

Chapter 03: probing. Modules: ``datasets`` (ProbeDataset, collect_activations), ``probes`` (logistic,
ridge, difference of means), ``controls`` (Hewitt-Liang control tasks), ``sweep`` (layer_sweep),
``interventions`` (project_out, intervene, steer).

Shapes: `n` rows of a probe dataset (one per chosen token), `d` activation width (trailing dims of
the hook flattened), `C` classes, `S` steering strengths, `k` chosen output tokens.
"""

from __future__ import annotations

from .baselines import mlp_probe_accuracy, online_code_length, train_mlp_probe, variance_matched_directions
from .controls import ControlResult, control_labels, control_task
from .datasets import (
    Positions,
    ProbeDataset,
    collect_activations,
    labels_at,
    make_dataset,
    position_mask,
    probe_rows,
    rows_from_act,
    split_prompts,
    valid_hook_names,
)
from .interventions import (
    InterventionResult,
    Metric,
    SteeringResult,
    depth0_close_probability,
    direction_hook,
    find_steering_vector,
    intervene,
    is_monotonic,
    project_out,
    random_direction_control,
    steer,
    steered_logits,
    steering_vector,
)
from .probes import (
    PROBES,
    DiffMeansProbe,
    LogisticProbe,
    ProbeResult,
    RidgeProbe,
    diff_of_means,
    diff_of_means_probe,
    logistic_probe,
    r2_score,
    ridge_probe,
    run_probe,
    train_logistic,
    train_logistic_probe,
    train_ridge,
)
from .sweep import SweepResult, layer_sweep

__all__ = [
    "depth0_close_probability",
    "find_steering_vector",
    "mlp_probe_accuracy",
    "online_code_length",
    "train_mlp_probe",
    "variance_matched_directions",
    "PROBES",
    "ControlResult",
    "DiffMeansProbe",
    "InterventionResult",
    "LogisticProbe",
    "Metric",
    "Positions",
    "ProbeDataset",
    "ProbeResult",
    "RidgeProbe",
    "SteeringResult",
    "SweepResult",
    "collect_activations",
    "control_labels",
    "control_task",
    "diff_of_means",
    "diff_of_means_probe",
    "direction_hook",
    "intervene",
    "is_monotonic",
    "labels_at",
    "layer_sweep",
    "logistic_probe",
    "make_dataset",
    "position_mask",
    "probe_rows",
    "project_out",
    "r2_score",
    "random_direction_control",
    "ridge_probe",
    "rows_from_act",
    "run_probe",
    "split_prompts",
    "steer",
    "steered_logits",
    "steering_vector",
    "train_logistic",
    "train_logistic_probe",
    "train_ridge",
    "valid_hook_names",
]
