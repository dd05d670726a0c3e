"""Helpers shared by the tests of tutorial_lib.sae."""

from __future__ import annotations

import torch

from tutorial_lib import sae as S


def randomize_biases(m: S.SAE, gen: torch.Generator) -> None:
    """Non-zero biases, so that a test sees whether they are used (they start at zero)."""
    with torch.no_grad():
        m.b_enc.copy_(0.3 * torch.randn(m.d_sae, generator=gen))
        m.b_dec.copy_(torch.randn(m.d_in, generator=gen))
