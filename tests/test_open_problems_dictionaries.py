"""tutorial_lib.open_problems.dictionaries (chapter 06 sections 3, 7, 8) and the compute equivalent, against
analytic answers: identical and orthogonal dictionaries, an identity splice, a separable label."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from tutorial_lib import open_problems as op
from tutorial_lib.checks.core import random_model
from tutorial_lib.training import lm_loss


def test_dictionary_agreement_of_a_dictionary_with_itself_and_with_an_orthogonal_one():
    w = torch.eye(4)
    same = op.dictionary_agreement(w, 3 * w)
    assert same["shared"] == {0.9: 1.0, 0.7: 1.0, 0.5: 1.0} and same["rho_freq"] is None
    other = op.dictionary_agreement(w[:2], w[2:])
    assert other["shared"][0.5] == 0.0


def test_dictionary_agreement_counts_only_live_latents():
    # latent 1 never fires (its encoder reads a direction the data lacks); latent 0 is shared, latent 2 is not
    w_dec = torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]])
    sae = SimpleNamespace(W_dec=w_dec, encode=lambda x: torch.stack([x[:, 0], x[:, 0] * 0, x[:, 2]], 1).relu())
    acts = torch.tensor([[1.0, 0, 1.0], [2.0, 0, 0.0]])
    out = op.dictionary_agreement(sae, torch.tensor([[1.0, 0, 0], [0, 1.0, 0]]), acts)
    assert out["live"] == pytest.approx(2 / 3) and out["shared"][0.9] == 0.5


def test_spliced_loss_of_the_identity_is_the_model_loss():
    model = random_model(0)
    tokens = torch.randint(1, model.cfg.d_vocab, (4, 7), generator=torch.Generator().manual_seed(0))
    tokens[0, -2:] = 0
    with torch.no_grad():
        plain = float(lm_loss(model(tokens), tokens, tokens[:, 1:] != 0))
    assert op.spliced_loss(model, lambda a: a, tokens, "blocks.0.hook_resid_post", pad_id=0) == pytest.approx(plain)
    assert op.spliced_loss(model, torch.zeros_like, tokens, "blocks.0.hook_resid_post", pad_id=0) != pytest.approx(
        plain
    )


def test_latent_probe_finds_the_one_informative_latent():
    gen = torch.Generator().manual_seed(0)
    y = torch.randint(0, 2, (200,), generator=gen)
    codes = torch.rand(200, 6, generator=gen)
    codes[:, 4] += 3 * y
    assert float(op.latent_probe_correct(codes, y, 1).mean()) == 1.0
    assert op.latent_probe_correct(codes, y, None).shape == (100,)
    assert float(op.latent_probe_correct(codes[:, :4], y, 1).mean()) < 0.8  # without it: near chance


def test_compute_equivalent_reads_the_curve_only_up_to_the_run():
    steps, losses = [0, 10, 20, 30], [4.0, 2.0, 1.0, 0.5]
    assert op.compute_equivalent(steps, losses, 3.0, 20) == pytest.approx(0.25)
    assert op.compute_equivalent(steps, losses, 5.0, 20) == 0.0
    assert op.compute_equivalent(steps, losses, 0.75, 20) == math.inf  # reached at 25, after the run's end
    assert op.compute_equivalent(steps, losses, 0.75, 30) == pytest.approx(25 / 30)


def test_train_toy_sae_follows_the_recipe_and_is_deterministic():
    acts = torch.randn(600, 64, generator=torch.Generator().manual_seed(0))
    a, b = (op.train_toy_sae("topk8 seed 2", acts, steps=2) for _ in range(2))
    assert a.W_dec.shape == (256, 64) and a.k == 8
    torch.testing.assert_close(a.W_dec, b.W_dec)
    c = op.train_toy_sae("topk8 seed 2", acts, steps=2, seed=3)
    assert not torch.equal(a.W_dec, c.W_dec)
