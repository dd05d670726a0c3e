"""tutorial_lib.sae.residual: packing text into rows, the residual stream before a block at chosen positions,
and a latent chosen for a label on one half of the rows and scored on the other, beside its shuffled control."""

from __future__ import annotations

import pytest
import torch

from tutorial_lib import organisms, tasks
from tutorial_lib import sae as S
from tutorial_lib.validation import TutorialInputError


@pytest.fixture(scope="module")
def toy_lm():
    return organisms.load("toy-lm")


def test_packed_tokens_are_the_texts_in_rows_after_bos(toy_lm):
    texts = tasks.corpus(40, seed=3)
    rows = S.packed_tokens(toy_lm, texts, 16)
    assert rows.shape[1] == 16 and rows.shape[0] >= 2
    assert (rows[:, 0] == toy_lm.tokenizer.bos_token_id).all()
    words = [i for t in texts for i in tasks.encode(t, bos=False)]  # toy-lm's tokenizer is the task's word list
    assert rows[:, 1:].reshape(-1).tolist() == words[: rows.shape[0] * 15]
    assert len(words) - rows.shape[0] * 15 < 15  # only the last partial row is dropped
    with pytest.raises(TutorialInputError, match="list of str"):
        S.packed_tokens(toy_lm, "one text", 16)  # pyright: ignore[reportArgumentType]
    with pytest.raises(TutorialInputError, match="fewer than one row"):
        S.packed_tokens(toy_lm, ["a"], 16)


def test_residual_activations_are_the_hook_at_the_kept_positions(toy_lm):
    tokens = tasks.corpus_tokens(5, toy_lm.cfg.n_ctx, seed=4)
    hook = "blocks.1.hook_resid_pre"
    with torch.no_grad():
        _, cache = toy_lm.run_with_cache(tokens, names_filter=[hook])
    got = S.residual_activations(toy_lm, tokens, 1, from_pos=2, batch_size=2)
    torch.testing.assert_close(got, cache[hook][:, 2:].reshape(-1, toy_lm.cfg.d_model))
    with pytest.raises(TutorialInputError, match="layer"):
        S.residual_activations(toy_lm, tokens, toy_lm.cfg.n_layers)
    with pytest.raises(TutorialInputError, match="from_pos"):
        S.residual_activations(toy_lm, tokens, 1, from_pos=tokens.shape[1])


def test_latent_for_label_finds_a_planted_latent_and_its_control_does_not():
    gen = torch.Generator().manual_seed(5)
    labels = torch.rand(400, generator=gen) < 0.3
    z = torch.rand(400, 20, generator=gen)
    z[:, 7] += 2.0 * labels  # latent 7 fires more on the positives
    found = S.latent_for_label(z, labels, split=200)
    assert found.latent == 7
    assert found.auroc == pytest.approx(S.auroc(z[200:, 7], labels[200:]))
    assert found.auroc > 0.99 and found.r_select > 0.8
    assert 0.3 < found.auroc_shuffled < 0.7  # shuffled labels: choosing among 20 latents gives nothing held out


def test_latent_for_label_rejects_bad_input():
    z = torch.rand(10, 3)
    with pytest.raises(TutorialInputError, match="both labels"):
        S.latent_for_label(z, torch.zeros(10, dtype=torch.bool), split=5)
    with pytest.raises(TutorialInputError, match="labels"):
        S.latent_for_label(z, torch.zeros(9, dtype=torch.bool), split=5)
    with pytest.raises(TutorialInputError, match="split"):
        S.latent_for_label(z, torch.arange(10) % 2 == 0, split=9)
