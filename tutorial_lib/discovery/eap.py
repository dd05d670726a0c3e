"""Chapter 07's edge attribution patching: EAP (Syed et al. 2023) and EAP with integrated gradients
(EAP-IG, Hanna et al. 2024).

EAP scores every edge s -> r at once with the first-order term

    score(s, r) = sum over positions of (out_s(clean) - out_s(corrupted)) . d metric / d input_r

the gradient taken on the corrupted run (the denoising convention of TransformerLens'
`attribution_patch`: a positive score means restoring the edge's clean value raises the metric). It costs
two forwards and one backward. EAP-IG averages the gradient over `ig_steps` points on the straight line
from the corrupted to the clean input embeddings (alpha = 0, 1/m, ..., (m-1)/m: one step is EAP exactly),
all points in one batched forward and backward.
"""

from __future__ import annotations

import torch
from jaxtyping import Float, Int
from torch import Tensor

from ..validation import TutorialInputError, expect_int_at_least, expect_tokens
from . import forward as fw
from .edges import _empty_outs, _forward, _sender_outputs
from .graph import build_graph

__all__ = ["eap_circuit", "eap_ig_scores", "eap_scores", "receiver_gradients"]


def _metric_total(metric, logits: Tensor) -> Tensor:
    """Sum over variants of metric(logits[v]) (each must be one number). Chapter 07: circuit discovery."""
    total = logits.new_zeros(())
    for lg in logits:
        value = metric(lg)
        if not isinstance(value, Tensor) or value.numel() != 1:
            raise TutorialInputError("metric must map logits [batch, pos, d_vocab] to a scalar tensor.")
        total = total + value.reshape(())
    return total


def receiver_gradients(
    model, tokens: Int[Tensor, "batch pos"], metric, embed: Tensor | None = None
) -> Float[Tensor, "var batch pos receiver d_model"]:
    """d metric / d (each receiver's input) on `tokens`, for each variant's input embedding `embed`
    [var, batch, pos, d_model] (None: the tokens' own embedding, one variant).

    Chapter 07: circuit discovery.
    """
    tokens = expect_tokens(tokens, "tokens", model)
    w, g = fw.check_model(model), build_graph(model)
    n_var = 1 if embed is None else embed.shape[0]
    taps: list[Tensor] = []
    with torch.enable_grad():
        outs = _empty_outs(w, g, tokens, n_var, embed)
        logits = _forward(w, g, outs, outs[0].detach(), None, taps=taps)
        grads = torch.autograd.grad(_metric_total(metric, logits), taps)
    return torch.cat(grads, dim=3)


def eap_scores(
    model,
    clean_tokens: Int[Tensor, "batch pos"],
    corrupted_tokens: Int[Tensor, "batch pos"],
    metric,
    ig_steps: int = 1,
    per_position: bool = False,
) -> Float[Tensor, "sender receiver"] | Float[Tensor, "pos sender receiver"]:
    """EAP (ig_steps=1) or EAP-IG edge scores [sender, receiver] (or [pos, sender, receiver]); 0 off the graph.

    `metric` maps logits [batch, pos, d_vocab] to a scalar; averaged over the batch, the scores are the
    batch mean of each prompt pair's scores, as in TransformerLens.

    Chapter 07: circuit discovery. Exercise 07.3 (the reference).
    """
    clean = expect_tokens(clean_tokens, "clean_tokens", model)
    corrupted = expect_tokens(corrupted_tokens, "corrupted_tokens", model)
    if clean.shape != corrupted.shape:
        raise TutorialInputError(
            f"clean and corrupted tokens must have the same shape, got {tuple(clean.shape)} and {tuple(corrupted.shape)}."
        )
    steps = expect_int_at_least(ig_steps, "ig_steps", 1)
    w, g = fw.check_model(model), build_graph(model)
    clean_outs, corr_outs = _sender_outputs(w, g, clean), _sender_outputs(w, g, corrupted)
    alphas = torch.arange(steps, dtype=clean_outs.dtype, device=clean_outs.device) / steps
    e_clean, e_corr = clean_outs[..., 0, :], corr_outs[..., 0, :]
    embed = e_corr[None] + alphas[:, None, None, None] * (e_clean - e_corr)[None]
    grads = receiver_gradients(model, corrupted, metric, embed).mean(0)  # [B, P, R, D]
    scores = torch.einsum("bpsd,bprd->psr", clean_outs - corr_outs, grads) * g.valid.to(grads.device)
    return scores if per_position else scores.sum(0)


def eap_circuit(
    model,
    clean_tokens: Int[Tensor, "batch pos"],
    corrupted_tokens: Int[Tensor, "batch pos"],
    metric,
    max_edges: int,
    ig_steps: int = 5,
) -> Tensor:
    """A circuit of at most `max_edges` edges: the edges with the largest |EAP-IG score| (bool [sender, receiver]).

    Chapter 07: circuit discovery. Exercise 07.8 (a reference for the open exercise; any search that meets
    the measured target passes).
    """
    from .metrics import top_k_mask

    scores = eap_scores(model, clean_tokens, corrupted_tokens, metric, ig_steps=ig_steps)
    return top_k_mask(
        scores, expect_int_at_least(max_edges, "max_edges", 1), build_graph(model).valid.to(scores.device)
    )


def eap_ig_scores(
    model,
    clean_tokens: Int[Tensor, "batch pos"],
    corrupted_tokens: Int[Tensor, "batch pos"],
    metric,
    ig_steps: int = 5,
) -> Float[Tensor, "sender receiver"]:
    """EAP-IG edge scores [sender, receiver]: eap_scores with the gradient averaged over `ig_steps` points.

    Chapter 07: circuit discovery. Exercise 07.6 (the reference).
    """
    return eap_scores(model, clean_tokens, corrupted_tokens, metric, ig_steps=ig_steps)
