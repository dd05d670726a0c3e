"""Explaining latents automatically (Chapter 08): contexts where a latent fires, a rule-based explainer
over the labels the synthetic tasks know, scoring by detection and fuzzing (Paulo et al. 2024), and
feature absorption on a known hierarchy (Chanin et al. 2024).

Modules: contexts (max-activating, random-activating and non-activating contexts, the shuffled control),
explainers (token_labels, explain_latent; lm_explanation, SmolLM2-Instruct's, and label_from_text), scoring (balanced accuracy, detection, fuzzing, score_latents),
absorption (a planted hierarchy, its SAE, the absorption rate).
"""

from .absorption import Hierarchy, absorption_rate, hierarchical_features, main_latent, train_hierarchy_sae
from .contexts import context_text, max_activating, non_activating, random_activating, shuffled_activations
from .explainers import (
    WORD_TYPES,
    Explanation,
    LabelTable,
    explain_latent,
    label_from_text,
    lm_explanation,
    token_labels,
)
from .scoring import balanced_accuracy, detection_accuracy, fuzzing_accuracy, score_latents

__all__ = [
    "WORD_TYPES",
    "Explanation",
    "Hierarchy",
    "LabelTable",
    "absorption_rate",
    "balanced_accuracy",
    "context_text",
    "detection_accuracy",
    "explain_latent",
    "fuzzing_accuracy",
    "hierarchical_features",
    "label_from_text",
    "lm_explanation",
    "main_latent",
    "max_activating",
    "non_activating",
    "random_activating",
    "score_latents",
    "shuffled_activations",
    "token_labels",
    "train_hierarchy_sae",
]
