"""transcoders/architecture.py: a TopK transcoder maps [batch, d_model] to [batch, d_model] with at most
k active latents, its loss is against the target (not the input), and bad inputs are named."""

from __future__ import annotations

import pytest
import torch

from tutorial_lib.transcoders import Transcoder, transcoder_loss
from tutorial_lib.validation import TutorialInputError


def test_codes_are_topk_and_loss_is_against_the_target():
    tc = Transcoder(8, 32, k=3, seed=0)
    x = torch.randn(5, 8)
    loss, z = transcoder_loss(tc, x, torch.zeros(5, 8))
    assert ((z > 0).sum(1) <= 3).all()
    torch.testing.assert_close(loss, tc(x).pow(2).sum(-1).mean())
    loss_x, _ = transcoder_loss(tc, x, x)
    assert not torch.isclose(loss, loss_x)


def test_bad_target_shape_is_named():
    tc = Transcoder(8, 32, k=3)
    with pytest.raises(TutorialInputError, match="y \\(the MLP output\\)"):
        transcoder_loss(tc, torch.randn(5, 8), torch.randn(4, 8))
