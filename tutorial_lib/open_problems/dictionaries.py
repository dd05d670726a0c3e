"""Chapter 06's measurements on SAEs, shared by the notebook (sections 3, 7 and 8) and its claim tests:
how much two dictionaries agree, what splicing an SAE into a model costs, and how well a few latents
predict a label. They work on any SAE with `encode`, `W_dec` and a forward pass (the shipped toy-lm SAEs,
`load_toy_saes`), and the controls of tests/test_claims_06.py pass plain tensors or callables.

Chapter 06: open problems.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from jaxtyping import Float, Int
from torch import Tensor

from ..validation import TutorialInputError, expect_int_at_least, expect_model, expect_ndim, expect_tokens
from .measures import max_cosines, spearman

__all__ = ["dictionary_agreement", "latent_probe_correct", "spliced_loss"]


def _decoder(x, what: str) -> Tensor:
    w = x.W_dec if hasattr(x, "W_dec") else x
    if not isinstance(w, Tensor):
        raise TutorialInputError(
            f"{what} must be an SAE (with .W_dec) or a decoder [d_sae, d_in], got {type(x).__name__}."
        )
    return expect_ndim(w.detach(), 2, what, "[d_sae, d_in]")


def dictionary_agreement(
    a, b, acts: Float[Tensor, "n d_in"] | None = None, thresholds: Sequence[float] = (0.9, 0.7, 0.5)
) -> dict:
    """How much of dictionary `a` reappears in `b` (SAEs or decoders [d_sae, d_in]): `shared[t]`, the fraction
    of a's latents whose best cosine with any of b's decoder rows exceeds t; with `acts` (a must then be an
    SAE), only a's live latents count, and `rho_freq` is Spearman's correlation of a latent's firing
    frequency on `acts` with its best cosine; `live` is the fraction of a's latents that fire.

    Chapter 06: open problems as experiments (SAEs trained on the same data disagree).
    """
    cos = max_cosines(_decoder(a, "a"), _decoder(b, "b"))
    if not all(isinstance(t, (int, float)) and -1 <= t <= 1 for t in thresholds):
        raise TutorialInputError(f"thresholds must be cosines in [-1, 1], got {thresholds!r}.")
    out: dict = {"rho_freq": None, "live": 1.0}
    alive = torch.ones_like(cos, dtype=torch.bool)
    if acts is not None:
        if not hasattr(a, "encode"):
            raise TutorialInputError(f"with acts, a must be an SAE with .encode, got {type(a).__name__}.")
        with torch.no_grad():
            freq = (a.encode(expect_ndim(acts, 2, "acts", "[n, d_in]")) > 0).float().mean(0)
        alive = freq > 0
        out["live"] = float(alive.float().mean())
        out["rho_freq"] = spearman(freq[alive], cos[alive])
    out["shared"] = {t: float((cos[alive] > t).float().mean()) for t in thresholds}
    return out


def spliced_loss(model, reconstruct: Callable[[Tensor], Tensor], tokens: Int[Tensor, "batch pos"], hook: str,
                 pad_id: int | None = None) -> float:  # fmt: skip
    """The model's mean next-token loss on `tokens` (targets equal to `pad_id` masked; tasks.PAD_ID by
    default) with the activation at `hook` replaced by `reconstruct(activation)` (an SAE's forward pass).

    Chapter 06: open problems as experiments (what does an SAE's error cost?).
    """
    from ..tasks import PAD_ID
    from ..training import lm_loss

    tokens = expect_tokens(tokens, "tokens", expect_model(model))
    if not callable(reconstruct):
        raise TutorialInputError(f"reconstruct must be callable (an SAE), got {type(reconstruct).__name__}.")
    if not isinstance(hook, str) or hook not in model.hook_dict:
        raise TutorialInputError(
            f"hook must name one of the model's hook points, e.g. 'blocks.1.hook_resid_post', got {hook!r}."
        )
    mask = tokens[:, 1:] != (PAD_ID if pad_id is None else pad_id)

    def splice(act, hook):  # noqa: ARG001 - TransformerLens passes hook=
        return reconstruct(act)

    with torch.no_grad():
        return float(lm_loss(model.run_with_hooks(tokens, fwd_hooks=[(hook, splice)]), tokens, mask))


def latent_probe_correct(codes: Float[Tensor, "n d"], labels: Int[Tensor, " n"], n_latents: int | None = 1) -> Tensor:
    """Sparse probing (Gao et al. 2024; SAEBench): on the first half of the examples, pick the `n_latents`
    columns of `codes` whose class means differ most (None: every column) and fit a logistic probe on them;
    return, for each example of the second half, 1.0 where the probe classifies it correctly.

    Chapter 06: open problems as experiments (proxy metrics: reconstruction against a downstream use).
    """
    from ..probing import train_logistic

    codes = expect_ndim(torch.as_tensor(codes).float(), 2, "codes", "[n, d]")
    labels = expect_ndim(torch.as_tensor(labels).long(), 1, "labels", "[n]")
    if labels.shape[0] != codes.shape[0] or set(labels.unique().tolist()) - {0, 1}:
        raise TutorialInputError(f"labels must be {codes.shape[0]} zeros and ones (one per row of codes).")
    half = codes.shape[0] // 2
    x_train, x_test, y_train, y_test = codes[:half], codes[half:], labels[:half], labels[half:]
    if y_train.unique().numel() < 2:
        raise TutorialInputError("the first half of labels must hold both classes to fit a probe.")
    if n_latents is not None:
        n_latents = min(expect_int_at_least(n_latents, "n_latents"), codes.shape[1])
        gap = (x_train[y_train == 1].mean(0) - x_train[y_train == 0].mean(0)).abs()
        keep = gap.topk(n_latents).indices
        x_train, x_test = x_train[:, keep], x_test[:, keep]
    return (train_logistic(x_train, y_train).predict(x_test) == y_test).double()
