"""transcoders/pretrained.py: the shipped toy-lm transcoders load with their sha256 checked, a damaged file
is refused by name, and the recipe reproduces them (layer 1 retrained: the same held-out score and curve)."""

from __future__ import annotations

import shutil

import pytest

from tutorial_lib import organisms
from tutorial_lib import transcoders as T
from tutorial_lib.tasks.corpus_text import PAD_ID, corpus_tokens
from tutorial_lib.validation import TutorialInputError


@pytest.fixture(scope="module")
def toy_lm():
    return organisms.load("toy-lm")


def test_the_recipe_reproduces_the_shipped_transcoders(toy_lm):
    shipped, card = T.load_transcoders()
    assert len(shipped) == toy_lm.cfg.n_layers and card["recipe"] == T.TOY_LM_RECIPE
    (tc,), (losses,) = T.train_from_recipe(toy_lm, layers=[1])
    test = corpus_tokens(**card["recipe"]["test"])
    x, y = T.mlp_io(toy_lm, test, 1, test != PAD_ID)
    assert T.normalised_mse(tc, x, y) == pytest.approx(card["layers"][1]["held_out"]["nmse"], abs=5e-3)
    assert T.normalised_mse(shipped[1], x, y) == pytest.approx(card["layers"][1]["held_out"]["nmse"], abs=1e-4)
    assert losses[::10][:20] == pytest.approx(card["layers"][1]["loss_every_10_steps"][:20], rel=1e-2)


def test_a_damaged_or_missing_artefact_is_refused(tmp_path):
    with pytest.raises(TutorialInputError, match="must hold"):
        T.load_transcoders(tmp_path)
    copy = tmp_path / "toy-lm"
    shutil.copytree(T.TOY_LM_DIR, copy)
    weights = copy / "transcoders.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    with pytest.raises(TutorialInputError, match="sha256"):
        T.load_transcoders(copy)
