"""Sparse autoencoders (chapter 02): ReLU (L1), TopK, BatchTopK and JumpReLU; one training loop;
metrics; synthetic ground truth; SAELens I/O. `from tutorial_lib import sae as S` gives all of it.

Every SAE here computes  pre = x @ W_enc + b_enc,  z = activation(pre),  x_hat = z @ W_dec + b_dec
with W_enc [d_in, d_sae] and W_dec [d_sae, d_in] (SAELens's layout and key names). The input is not
shifted by b_dec before encoding (SAELens's `apply_b_dec_to_input=False`); SAEs saved with the shift
are folded into b_enc on load.

The TopK SAE has a sparse path (`TopKSAE.sparse`) that never builds the dense [batch, d_sae] code:
the encoder matmul stays dense, but top-k selection, the encoder backward and the whole decoder run on
the k selected latents per row (gathers, `F.embedding_bag`, `torch.sparse.mm`). `use_sparse_topk`
says when it pays.

Modules, after SAELens's split:
    sparse         the sparse TopK autograd kernels and the rule for when they pay
    base           the SAE base class: encode/decode, the loss with AuxK, decoder norms
    architectures  ReLUSAE, TopKSAE, BatchTopKSAE, JumpReLUSAE, make_sae
    training       train_sae, TrainHistory, default_dead_window
    frontier       sweep_frontier, matched_gaps: TopK vs ReLU trained equally long, at matched L0
    metrics        explained_variance, l0_norm, evaluate, loss_recovered, feature_recovery, ...
    synthetic      synthetic_activations, feature_frequencies
    io             save_sae, load_sae (SAELens 6.x format)
    splitting      feature_splits: do a bigger dictionary's children divide a latent's contexts?
    pretrained     load_frontier: the chapter's frontier SAEs trained to their plateau, shipped with a card
    residual       an SAE on a language model's residual stream, organism or real: packed_tokens,
                   residual_activations, latent_for_label (held-out AUROC beside a shuffled-label control)
    shipped        load_sae_set: sets of organism SAEs trained from a recipe (chapter 02's seeds), with a card
"""

from __future__ import annotations

from .architectures import (
    ARCHITECTURES,
    BatchTopKSAE,
    JumpReLUSAE,
    ReLUSAE,
    TopKSAE,
    decoder_weighted_l1,
    make_sae,
    sae_forward,
    sae_loss,
    topk_activation,
)
from .base import SAE, LossOutput
from .frontier import FrontierPoint, ev_at_l0, matched_gaps, score_point, seed_agreement, smoothed, sweep_frontier
from .io import CFG_FILE, WEIGHTS_FILE, load_sae, save_sae
from .metrics import (
    SAEEval,
    auroc,
    evaluate,
    explained_variance,
    feature_recovery,
    l0_norm,
    latent_label_correlation,
    loss_recovered,
    match_features,
    recovered_vs_mean,
    shared_latent_fraction,
    steer_with_latent,
)
from .pretrained import (
    FRONTIER_DIR,
    FRONTIER_RECIPE,
    build_frontier,
    build_robustness,
    frontier_data,
    load_frontier,
    load_robustness,
    retrain_point,
    seed_recipe,
)
from .residual import LabelLatent, latent_for_label, packed_tokens, residual_activations
from .shipped import SEEDS_DIR, SEEDS_RECIPE, build_sae_set, load_sae_set, sae_set_activations, train_spec
from .sparse import gather_latents, topk_decode_sparse, topk_encode_sparse, use_sparse_topk
from .splitting import Split, feature_splits
from .synthetic import feature_frequencies, synthetic_activations
from .training import TrainHistory, default_dead_window, train_sae, train_sparse_sae, train_topk, training_step

__all__ = [
    "ARCHITECTURES",
    "CFG_FILE",
    "SAE",
    "WEIGHTS_FILE",
    "BatchTopKSAE",
    "FrontierPoint",
    "JumpReLUSAE",
    "LabelLatent",
    "LossOutput",
    "ReLUSAE",
    "SAEEval",
    "TopKSAE",
    "TrainHistory",
    "auroc",
    "decoder_weighted_l1",
    "default_dead_window",
    "ev_at_l0",
    "evaluate",
    "explained_variance",
    "feature_frequencies",
    "feature_recovery",
    "gather_latents",
    "l0_norm",
    "latent_for_label",
    "latent_label_correlation",
    "load_sae",
    "loss_recovered",
    "make_sae",
    "matched_gaps",
    "sae_forward",
    "sae_loss",
    "save_sae",
    "shared_latent_fraction",
    "smoothed",
    "steer_with_latent",
    "sweep_frontier",
    "score_point",
    "seed_agreement",
    "match_features",
    "recovered_vs_mean",
    "train_topk",
    "train_sparse_sae",
    "Split",
    "feature_splits",
    "FRONTIER_DIR",
    "FRONTIER_RECIPE",
    "build_frontier",
    "frontier_data",
    "load_frontier",
    "packed_tokens",
    "residual_activations",
    "SEEDS_DIR",
    "SEEDS_RECIPE",
    "build_sae_set",
    "load_sae_set",
    "sae_set_activations",
    "train_spec",
    "build_robustness",
    "load_robustness",
    "retrain_point",
    "seed_recipe",
    "synthetic_activations",
    "topk_activation",
    "topk_decode_sparse",
    "topk_encode_sparse",
    "train_sae",
    "training_step",
    "use_sparse_topk",
]
