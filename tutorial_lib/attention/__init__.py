"""Induction heads (chapter 05): what attention heads attend to, what their weights compute,
what they contribute to the logits, and when the circuit forms during training.

Conventions. A "pattern" is [batch, head, q, k] (one layer, as in `blocks.{l}.attn.hook_pattern`)
or [batch, layer, head, q, k] (all layers); scores come back as [head] or [layer, head].
Sequences repeat a segment: the token at position q occurred before at q - period. The
`repeated` mask marks the query positions q where both tokens[q] and tokens[q + 1] are repeats,
so tokens[q + 1] is predictable by copying; `first` marks the matching positions q - period.
The classic [BOS, x, x] batch (x of length L) is the case period = L, repeated = L+1 .. 2L-1.

Weight circuits follow TransformerLens's row-vector convention (x @ W): OV = W_V W_O and
QK = W_Q W_K^T, both `FactoredMatrix` [(layer,) head, d_model, d_model]. With `fold_ln=True`
(default) LayerNorm weights are folded in and writing weights centred, as
`HookedTransformer.from_pretrained` did by default; the per-token LayerNorm scale is ignored.

Modules, one idea each: `masks` (which queries are repeats), `scores` (pattern detectors),
`circuits` (QK/OV weight circuits), `composition` (Q/K/V-composition), `ablation` (losses with
heads ablated), `monitor` (watching the circuit form in training), `phase_run` and `phase_claims` (the shipped
converged training runs and what they show), `survey` (a real model's induction heads), `key_paths`
(the causal K-composition test on any model). Head ablation and direct logit
attribution are the base layer's (`tutorial_lib.hooks`); `direct_logit_attribution` is re-exported.
"""

from __future__ import annotations

from ..hooks import ABLATIONS, direct_logit_attribution
from .ablation import (
    AblationLosses,
    ablated_loss,
    ablation_losses,
    circuit_coverage,
    find_copy_heads,
    repeat_losses,
    token_losses,
)
from .circuits import (
    circuit_weights,
    copying_score,
    dense,
    full_ov_circuit,
    full_qk_circuit,
    ov_circuit,
    ov_copying,
    qk_circuit,
)
from .composition import (
    COMPOSITION_KINDS,
    composition_baseline,
    composition_score,
    composition_scores,
    k_composition_score,
)
from .key_paths import key_path_test, previous_token_senders, random_senders
from .masks import repeat_masks
from .monitor import (
    LOSS_KEYS,
    InductionMonitor,
    Transition,
    crossing_step,
    halfway_step,
    icl_score,
    probe_measures,
    seen_distance,
    transition_steps,
)
from .phase_claims import PLATEAU_STEPS, PhaseSummary, phase_claims, phase_summary, prefix_drift
from .phase_run import (
    PHASE_DIR,
    PHASE_RECIPE,
    build_phase_runs,
    load_phase_run,
    phase_card,
    phase_data,
    phase_model,
    shuffle_repeats,
    train_phase_run,
)
from .scores import (
    SCORE_KINDS,
    attention_scores,
    current_token_score,
    duplicate_token_score,
    head_scores,
    induction_score,
    previous_token_score,
    stack_patterns,
    target_score,
)
from .survey import induction_survey, stored_survey, survey_probe

__all__ = [
    "PLATEAU_STEPS",
    "PhaseSummary",
    "phase_claims",
    "phase_summary",
    "prefix_drift",
    "PHASE_DIR",
    "PHASE_RECIPE",
    "build_phase_runs",
    "load_phase_run",
    "phase_card",
    "phase_data",
    "phase_model",
    "shuffle_repeats",
    "train_phase_run",
    "ABLATIONS",
    "COMPOSITION_KINDS",
    "AblationLosses",
    "SCORE_KINDS",
    "LOSS_KEYS",
    "InductionMonitor",
    "Transition",
    "ablated_loss",
    "ablation_losses",
    "attention_scores",
    "circuit_coverage",
    "circuit_weights",
    "composition_baseline",
    "composition_score",
    "composition_scores",
    "copying_score",
    "crossing_step",
    "current_token_score",
    "dense",
    "direct_logit_attribution",
    "duplicate_token_score",
    "find_copy_heads",
    "full_ov_circuit",
    "full_qk_circuit",
    "halfway_step",
    "head_scores",
    "icl_score",
    "induction_score",
    "induction_survey",
    "k_composition_score",
    "key_path_test",
    "previous_token_senders",
    "random_senders",
    "ov_circuit",
    "ov_copying",
    "previous_token_score",
    "probe_measures",
    "qk_circuit",
    "repeat_losses",
    "repeat_masks",
    "seen_distance",
    "stack_patterns",
    "stored_survey",
    "survey_probe",
    "target_score",
    "token_losses",
    "transition_steps",
]
