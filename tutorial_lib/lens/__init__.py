"""Chapter 08: lenses. Reading the residual stream at every layer as a next-token distribution:
the logit lens (final norm and unembedding applied to an early layer) and the tuned lens
(Belrose et al. 2023: an affine translator per layer, trained to match the final distribution)."""

from .logit import lens_kl, logit_lens, read_out, residual_stack
from .tuned import TunedLens, fit_linear_lens, logit_lens_kl, train_tuned_lens, tuned_lens_kl

__all__ = [
    "TunedLens",
    "fit_linear_lens",
    "lens_kl",
    "logit_lens",
    "logit_lens_kl",
    "read_out",
    "residual_stack",
    "train_tuned_lens",
    "tuned_lens_kl",
]
