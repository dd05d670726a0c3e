"""tutorial_lib.sae.shipped: a recipe's SAEs are built, written with a card and loaded back, each file
checked against its sha256; bad recipes, specs and tampered files get clear errors."""

from __future__ import annotations

import pytest
import torch

from tutorial_lib import sae as S
from tutorial_lib.validation import TutorialInputError

TINY = {
    **S.SEEDS_RECIPE,
    "name": "tiny",
    "data": {"n_docs": 8, "seq_len": 32, "seed": 0},
    "saes": [
        {"name": "a", "arch": "topk", "d_sae": 16, "seed": 0, "kw": {"k": 2}, "steps": 3},
        {"name": "b", "arch": "relu", "d_sae": 8, "seed": 1, "kw": {"l1_coeff": 0.1}, "steps": 2, "lr": 1e-3},
    ],
}


def test_build_then_load_round_trips(tmp_path):
    S.build_sae_set(tmp_path, TINY)
    saes, card = S.load_sae_set(tmp_path)
    assert set(saes) == {"a", "b"} and card["recipe"]["name"] == "tiny"
    acts = S.sae_set_activations(TINY)
    assert acts.shape[1] == 64 and acts.shape[0] > 8  # every non-pad token of 8 documents
    again, _ = S.train_spec(TINY["saes"][0], acts, TINY["train"])  # same seed, same data: the same SAE
    torch.testing.assert_close(again.W_dec, saes["a"].W_dec)
    assert [len(e["history"]["steps"]) > 0 for e in card["saes"]] == [True, True]


def test_a_tampered_file_is_refused(tmp_path):
    S.build_sae_set(tmp_path, {**TINY, "saes": TINY["saes"][:1]})
    weights = tmp_path / "a" / "sae_weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:-4] + b"\0\0\0\0")
    with pytest.raises(TutorialInputError, match="sha256"):
        S.load_sae_set(tmp_path)


def test_the_shipped_set_loads():
    saes, card = S.load_sae_set()
    assert len(saes) == len(S.SEEDS_RECIPE["saes"]) and card["recipe"] == S.SEEDS_RECIPE


def test_bad_input_is_named(tmp_path):
    with pytest.raises(TutorialInputError, match="recipe"):
        S.sae_set_activations({"hook": "x"})
    with pytest.raises(TutorialInputError, match="spec"):
        S.train_spec({"arch": "topk"}, torch.zeros(4, 64), TINY["train"])
    with pytest.raises(TutorialInputError, match="card.json"):
        S.load_sae_set(tmp_path)
