"""A per-MLP transcoder: a TopK sparse code of the MLP input that decodes to the MLP output.

The encoder, TopK activation and decoder are `tutorial_lib.sae.TopKSAE`'s (one implementation);
only the loss differs: the target is the MLP's output, not the input.
"""

from __future__ import annotations

from jaxtyping import Float
from torch import Tensor

from ..sae import TopKSAE
from ..validation import expect_shape

__all__ = ["Transcoder", "transcoder_loss"]


class Transcoder(TopKSAE):
    """TopK transcoder from the (ln2-normalised) MLP input [d_model] to the MLP output [d_model].

    Chapter 08: transcoders and attribution graphs.

    Dense TopK path (toy-lm's widths are small). `hook_in`/`hook_out` name the hooks it reads and
    predicts.
    """

    architecture = "transcoder-topk"

    def __init__(self, d_model: int, d_latent: int, *, k: int = 8, seed: int = 0, **kwargs):
        super().__init__(d_model, d_latent, k=k, sparse=False, seed=seed, **kwargs)
        self.hook_in: str | None = None
        self.hook_out: str | None = None


def transcoder_loss(
    tc: Transcoder, x: Float[Tensor, "batch d_model"], y: Float[Tensor, "batch d_model"]
) -> tuple[Tensor, Tensor]:
    """(squared error of the predicted MLP output, summed over d_model and averaged over rows; the
    latent codes).

    Chapter 08: transcoders and attribution graphs.
    """
    x = tc.check_input(x)
    expect_shape(y, (x.shape[0], tc.d_in), "y (the MLP output)", "[batch, d_model], one row per row of x")
    z = tc.activation(tc.pre_acts(x))
    y_hat = tc.decode(z)
    return (y_hat - y).pow(2).sum(-1).mean(), z
