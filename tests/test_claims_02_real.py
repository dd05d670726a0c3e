"""Chapter 02, section 6 (SAEs on a real model): its claims on SmolLM2-135M, at other seeds, and failing on controls.

The section asserts (1) loss recovered against mean ablation >= 0.8 with a loss increase at most half an
untrained SAE's, (2) at most 20% dead latents, (3) a latent for "word inside a bracket" with held-out AUROC
>= 0.7 where the shuffled-label choice stays below 0.6. Here: the same checks with other SAE seeds and other
bracket prompts (one seed, not three, and no 4x-training run: each SmolLM2 run costs about 15 s of CPU and CI
time is the binding constraint; by hand, seeds 1-3 gave loss recovered 1.05 and AUROC 0.74-0.87, the 4x run
loss recovered 1.04 and AUROC 0.73), and the checks
failing for an untrained SAE of the same shape (the control)."""

from __future__ import annotations

import pytest
import torch

from tutorial_lib import organisms, tasks
from tutorial_lib import sae as S

REAL = [pytest.mark.slow, pytest.mark.real]  # the smollm2 fixture (conftest.py) skips without the wheel

FROM_POS = 2  # the attention sinks, as in the notebook
TEST_ROWS = 4  # held-out rows for loss recovered (the notebook uses 8)


def _data(model, n_rows: int, d_sae: int, k: int):
    layer = model.cfg.n_layers // 2
    n_ctx = min(64, model.cfg.n_ctx)
    rows = S.packed_tokens(model, tasks.corpus(600, seed=0), n_ctx)
    test = S.packed_tokens(model, tasks.corpus(120, seed=1), n_ctx)[:n_rows]
    acts = S.residual_activations(model, rows, layer, from_pos=FROM_POS)
    return model, layer, acts, test, d_sae, k


@pytest.fixture(scope="module")
def data(smollm2):
    return _data(smollm2, TEST_ROWS, 512, 16)


@pytest.fixture(scope="module")
def toy_data():
    return _data(organisms.load("toy-lm"), 64, 256, 8)


def _sae(data, seed: int, steps: int) -> S.TopKSAE:
    model, _, acts, _, d_sae, k = data
    sae = S.TopKSAE(model.cfg.d_model, d_sae, k=k, seed=seed)
    S.train_sae(sae, acts, steps=steps, batch_size=256, lr=2e-3 if steps > 1 else 0.0, center_b_enc=True, seed=seed)
    return sae


def _bracket_latent(data, sae: S.SAE, seed: int) -> S.LabelLatent:
    model, layer = data[:2]
    br = tasks.brackets(64, seed=5 + seed)
    z = sae.encode(S.residual_activations(model, model.to_tokens(br.texts), layer, from_pos=FROM_POS))
    word_ids = torch.tensor([tasks.WORD_TO_ID[w] for w in tasks.NOUNS + tasks.ADJECTIVES])
    is_word = torch.isin(br.tokens, word_ids)[:, FROM_POS:].reshape(-1)
    inside = (br.depth > 0)[:, FROM_POS:].reshape(-1)
    return S.latent_for_label(z[is_word], inside[is_word], split=int(is_word[: is_word.numel() // 2].sum()))


def _losses(data, sae: S.SAE) -> dict[str, float]:
    model, layer, _, test = data[:4]
    return S.loss_recovered(model, sae, test, f"blocks.{layer}.hook_resid_pre", from_pos=FROM_POS)


def _claims_hold(data, seed: int, steps: int, untrained_losses: dict[str, float]) -> None:
    sae = _sae(data, seed, steps=steps)
    lr = _losses(data, sae)
    assert lr["recovered_vs_mean"] >= 0.8, lr
    increase_untrained = untrained_losses["sae_loss"] - lr["clean_loss"]
    assert lr["sae_loss"] - lr["clean_loss"] <= 0.5 * increase_untrained, (lr, untrained_losses)
    assert S.evaluate(sae, data[2]).dead_fraction <= 0.2
    found = _bracket_latent(data, sae, seed)
    assert found.auroc >= 0.7 and found.auroc_shuffled < 0.6, found


def _untrained(data) -> tuple[S.SAE, dict[str, float]]:
    sae = _sae(data, 0, steps=1)
    return sae, _losses(data, sae)


@pytest.fixture(scope="module")
def untrained(data):
    return _untrained(data)


@pytest.mark.parametrize("seed", [pytest.param(2, marks=REAL)])  # the weakest of seeds 1-3 by hand (AUROC 0.74)
def test_claims_hold_at_other_seeds(data, untrained, seed):
    _claims_hold(data, seed, 800, untrained[1])


@pytest.mark.slow
@pytest.mark.real
def test_claims_fail_for_an_untrained_sae(data, untrained):
    sae, lr = untrained
    assert lr["recovered_vs_mean"] < 0.8, lr  # claim (1) fails on the control
    assert _bracket_latent(data, sae, 0).auroc < 0.7  # so does claim (3)


@pytest.mark.slow
def test_on_the_organism_claims_hold_at_other_seeds_and_4x_training_and_fail_untrained(toy_data):
    sae, lr = _untrained(toy_data)
    for seed, steps in [(1, 800), (3, 800), (0, 3200)]:  # two seeds, not three: CI time
        _claims_hold(toy_data, seed, steps, lr)
    # On toy-lm an untrained SAE passes the lenient half of claim (1) (about 0.9) and its best latent reaches an
    # AUROC of about 0.88; the comparison with it is what an SAE barely trained fails.
    barely = _losses(toy_data, _sae(toy_data, 0, 20))
    assert barely["sae_loss"] - barely["clean_loss"] > 0.5 * (lr["sae_loss"] - barely["clean_loss"]), (barely, lr)
