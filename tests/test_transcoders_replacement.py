"""transcoders/replacement.py: on toy-lm the replacement model with error nodes reproduces the logits
exactly; with errors dropped it recovers >= 0.9 of the loss gap to zero-ablating every MLP, and
transcoders trained on shuffled pairs do not (recovered < 0.5, the control)."""

from __future__ import annotations

import pytest
import torch

from tutorial_lib import organisms
from tutorial_lib import transcoders as T
from tutorial_lib.tasks.corpus_text import PAD_ID, corpus_tokens
from tutorial_lib.validation import TutorialInputError


@pytest.fixture(scope="module")
def toy_lm():
    return organisms.load("toy-lm")


def _transcoders(model, shuffle: bool) -> list[T.Transcoder]:
    train = corpus_tokens(128, 32, seed=0)
    out = []
    for layer in range(model.cfg.n_layers):
        x, y = T.mlp_io(model, train, layer, train != PAD_ID)
        if shuffle:
            y = y[torch.randperm(len(y), generator=torch.Generator().manual_seed(layer))]
        out.append(T.train_transcoder(x, y, steps=600)[0])
    return out


def test_replacement_model_is_exact_with_errors_and_recovers_the_loss_without(toy_lm):
    tcs = _transcoders(toy_lm, shuffle=False)
    test = corpus_tokens(64, 32, seed=100)
    with torch.no_grad():
        exact = T.replacement_logits(toy_lm, tcs, test, T.mlp_errors(toy_lm, tcs, test))
        torch.testing.assert_close(exact, toy_lm(test), atol=1e-4, rtol=1e-4)
    assert T.replacement_loss_recovered(toy_lm, tcs, test, test[:, 1:] != PAD_ID)["recovered"] >= 0.9
    control = T.replacement_loss_recovered(toy_lm, _transcoders(toy_lm, shuffle=True), test, test[:, 1:] != PAD_ID)
    assert control["recovered"] < 0.5


def test_wrong_number_of_transcoders_is_named(toy_lm):
    with pytest.raises(TutorialInputError, match="one per layer"):
        T.replacement_logits(toy_lm, [T.Transcoder(64, 16)], corpus_tokens(2, 8, seed=0))


def test_latent_activations_are_the_codes_and_untrained_transcoders_predict_the_mean(toy_lm):
    tokens = corpus_tokens(4, 16, seed=2)
    tcs = T.untrained_transcoders(toy_lm, tokens, tokens != PAD_ID, d_latent=32, k=4)
    acts = T.latent_activations(toy_lm, tcs, tokens)
    for layer, tc in enumerate(tcs):
        x, y = T.mlp_io(toy_lm, tokens, layer, tokens != PAD_ID)
        torch.testing.assert_close(acts[layer][tokens != PAD_ID], tc.encode(x))
        torch.testing.assert_close(tc.b_dec, y.mean(0))
        assert ((acts[layer] > 0).sum(-1) <= 4).all()
