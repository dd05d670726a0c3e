"""Transcoders (Chapter 08): sparse replacements of a model's MLPs, reading the MLP's input and
predicting its output (Dunefsky et al. 2024; Ameisen et al. 2025)."""

from .architecture import Transcoder, transcoder_loss
from .pretrained import TOY_LM_DIR, TOY_LM_RECIPE, build_transcoders, load_transcoders, train_from_recipe
from .replacement import (
    latent_activations,
    mlp_errors,
    replacement_logits,
    replacement_loss_recovered,
    untrained_transcoders,
)
from .training import mlp_io, normalised_mse, train_transcoder

__all__ = [
    "latent_activations",
    "TOY_LM_DIR",
    "TOY_LM_RECIPE",
    "build_transcoders",
    "load_transcoders",
    "train_from_recipe",
    "Transcoder",
    "mlp_errors",
    "replacement_logits",
    "replacement_loss_recovered",
    "mlp_io",
    "normalised_mse",
    "train_transcoder",
    "transcoder_loss",
    "untrained_transcoders",
]
