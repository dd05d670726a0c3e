"""Transcoders (Chapter 08): sparse replacements of a model's MLPs, reading the MLP's input and
predicting its output (Dunefsky et al. 2024; Ameisen et al. 2025)."""

from .architecture import Transcoder, transcoder_loss
from .replacement import mlp_errors, replacement_logits, replacement_loss_recovered
from .training import mlp_io, normalised_mse, train_transcoder

__all__ = [
    "Transcoder",
    "mlp_errors",
    "replacement_logits",
    "replacement_loss_recovered",
    "mlp_io",
    "normalised_mse",
    "train_transcoder",
    "transcoder_loss",
]
