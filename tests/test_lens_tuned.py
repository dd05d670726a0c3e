"""lens/tuned.py: the tuned lens beats the logit lens at every layer but the last on toy-lm
(held-out corpus), and a lens trained on shuffled targets fails that check (the control)."""

from __future__ import annotations

import pytest
import torch

from tutorial_lib import lens, organisms
from tutorial_lib.tasks.corpus_text import PAD_ID, corpus_tokens
from tutorial_lib.validation import TutorialInputError


@pytest.fixture(scope="module")
def toy_lm():
    return organisms.load("toy-lm")


def _beats_logit_lens(model, seed: int, steps: int, shuffle: bool) -> tuple[bool, torch.Tensor, torch.Tensor]:
    train = corpus_tokens(64, 32, seed=seed)
    test = corpus_tokens(64, 32, seed=seed + 100)
    tuned, _ = lens.train_tuned_lens(
        model, train, steps=steps, seed=seed, mask=train != PAD_ID, shuffle_targets=shuffle
    )
    kl_tuned = lens.tuned_lens_kl(model, tuned, test, test != PAD_ID)
    kl_logit = lens.logit_lens_kl(model, test, test != PAD_ID)
    return bool((kl_tuned[:-1] < kl_logit[:-1]).all()), kl_tuned, kl_logit


def test_tuned_lens_starts_as_the_logit_lens(toy_lm):
    tokens = corpus_tokens(4, 16, seed=3)
    untrained = lens.TunedLens(toy_lm.cfg.n_layers, toy_lm.cfg.d_model)
    torch.testing.assert_close(lens.tuned_lens_kl(toy_lm, untrained, tokens), lens.logit_lens_kl(toy_lm, tokens))


def test_training_lowers_the_loss_and_plateaus(toy_lm):
    train = corpus_tokens(32, 32, seed=0)
    _, losses = lens.train_tuned_lens(toy_lm, train, steps=300, mask=train != PAD_ID)
    assert losses[-1] < 0.2 * losses[0]
    assert losses[-50] - losses[-1] < 0.05 * losses[-1]  # plateau: the last 50 steps move it < 5%


def test_tuned_lens_beats_logit_lens_and_the_shuffled_control_does_not(toy_lm):
    ok, kl_tuned, kl_logit = _beats_logit_lens(toy_lm, seed=0, steps=300, shuffle=False)
    assert ok, (kl_tuned, kl_logit)
    assert kl_tuned[-1].item() == pytest.approx(0.0, abs=1e-5)
    control, kl_ctrl, _ = _beats_logit_lens(toy_lm, seed=0, steps=300, shuffle=True)
    assert not control, (kl_ctrl, kl_logit)


@pytest.mark.slow
@pytest.mark.parametrize(("seed", "steps"), [(1, 300), (2, 300), (3, 300), (0, 1200)])
def test_tuned_lens_claim_is_robust(toy_lm, seed, steps):
    assert _beats_logit_lens(toy_lm, seed=seed, steps=steps, shuffle=False)[0]
    assert not _beats_logit_lens(toy_lm, seed=seed, steps=steps, shuffle=True)[0]


def test_bad_stack_shape_is_named(toy_lm):
    tuned = lens.TunedLens(toy_lm.cfg.n_layers, toy_lm.cfg.d_model)
    with pytest.raises(TutorialInputError, match="residual_stack's shape"):
        tuned(torch.zeros(2, 1, 4, toy_lm.cfg.d_model))


def test_least_squares_lens_beats_the_logit_lens_and_needs_enough_positions(toy_lm):
    train, test = corpus_tokens(64, 32, seed=0), corpus_tokens(64, 32, seed=100)
    linear = lens.fit_linear_lens(toy_lm, train, train != PAD_ID)
    kl_linear = lens.tuned_lens_kl(toy_lm, linear, test, test != PAD_ID)
    kl_logit = lens.logit_lens_kl(toy_lm, test, test != PAD_ID)
    assert (kl_linear[:-1] < kl_logit[:-1]).all(), (kl_linear, kl_logit)
    control = lens.fit_linear_lens(toy_lm, train, train != PAD_ID, shuffle_targets=True)
    assert not (lens.tuned_lens_kl(toy_lm, control, test, test != PAD_ID)[:-1] < kl_logit[:-1]).all()
    with pytest.raises(TutorialInputError, match="more than d_model"):
        lens.fit_linear_lens(toy_lm, train[:1, :8])
