"""Collecting (MLP input, MLP output) pairs from a model and training a transcoder on them."""

from __future__ import annotations

import torch
from jaxtyping import Float, Int
from torch import Tensor

from ..validation import TutorialInputError, expect_int_at_least
from .architecture import Transcoder, transcoder_loss

__all__ = ["mlp_io", "normalised_mse", "train_transcoder"]


def mlp_io(
    model, tokens: Int[Tensor, "batch pos"], layer: int, mask: Tensor | None = None
) -> tuple[Float[Tensor, "n d_model"], Float[Tensor, "n d_model"]]:
    """(the MLP's input after ln2, the MLP's output) at `layer`, one row per (unmasked) token.

    Chapter 08: transcoders and attribution graphs.
    """
    if not isinstance(layer, int) or not 0 <= layer < model.cfg.n_layers:
        raise TutorialInputError(f"layer must be an int in [0, {model.cfg.n_layers}), got {layer!r}.")
    names = (f"blocks.{layer}.ln2.hook_out", f"blocks.{layer}.hook_mlp_out")
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, names_filter=lambda n: n in names)
    x, y = cache[names[0]], cache[names[1]]
    if mask is None:
        return x.reshape(-1, x.shape[-1]), y.reshape(-1, y.shape[-1])
    return x[mask], y[mask]


def normalised_mse(tc: Transcoder, x: Tensor, y: Tensor) -> float:
    """Squared error of the transcoder's prediction divided by the variance of the MLP output
    (0 is perfect, 1 is no better than predicting the mean output).

    Chapter 08: transcoders and attribution graphs.
    """
    with torch.no_grad():
        mse, _ = transcoder_loss(tc, x, y)
        return (mse / (y - y.mean(0)).pow(2).sum(-1).mean()).item()


def train_transcoder(
    x: Float[Tensor, "n d_model"],
    y: Float[Tensor, "n d_model"],
    *,
    d_latent: int = 256,
    k: int = 8,
    steps: int = 600,
    batch_size: int = 512,
    lr: float = 3e-3,
    seed: int = 0,
) -> tuple[Transcoder, list[float]]:
    """A TopK transcoder trained with Adam on (x, y) pairs; returns it and the per-step loss (the
    curve to check for a plateau). The decoder rows stay at unit norm, as in `sae.train_sae`; the
    LR decays linearly over the last fifth of the run.

    Exercise 08.4. Chapter 08: transcoders and attribution graphs.
    """
    expect_int_at_least(steps, "steps")
    torch.manual_seed(seed)
    tc = Transcoder(x.shape[-1], d_latent, k=k, seed=seed)
    with torch.no_grad():
        tc.b_dec.copy_(y.mean(0))
    opt = torch.optim.Adam(tc.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    losses: list[float] = []
    decay = max(1, steps // 5)
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = lr * min(1.0, (steps - step) / decay)
        idx = torch.randint(0, x.shape[0], (min(batch_size, x.shape[0]),), generator=gen)
        loss, _ = transcoder_loss(tc, x[idx], y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        tc.remove_parallel_grad()
        opt.step()
        tc.normalize_decoder()
        losses.append(loss.item())
    tc.eval()
    return tc, losses
