"""tutorial_lib.open_problems.toy_saes: the chapter 06 SAE artefact's 4x-training entry ("long"), built on a
tiny recipe (a few steps on a few documents) so that it runs in a few seconds."""

from __future__ import annotations

import json

import pytest
import torch

from tutorial_lib import open_problems as op
from tutorial_lib.validation import TutorialInputError


def tiny_recipe() -> dict:
    spec = {"name": "topk8", "arch": "topk", "d_sae": 32, "seed": 0, "kw": {"k": 8}}
    return {
        **op.TOY_SAE_RECIPE,
        "data": {"n_docs": 16, "seq_len": 32, "seed": 21},
        "train": {"steps": 3, "batch_size": 64, "lr": 1e-2},
        "saes": [spec, {**spec, "name": "topk8 seed 1", "seed": 1}],
        "checkpoints": {"names": [], "steps": []},
        "control": {**op.TOY_SAE_RECIPE["control"], "seeds": []},
        "long": {"names": ["topk8"], "steps": 12},
    }


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("toy-saes")
    op.build_toy_saes(out, tiny_recipe())
    return out


def test_the_full_build_adds_the_long_saes_and_the_loader_checks_them(built):
    shipped = op.load_toy_saes(built)
    assert set(shipped.long) == {"topk8"} and shipped.recipe["long"] == tiny_recipe()["long"]
    acts = op.toy_sae_activations(tiny_recipe())
    again = op.train_toy_sae("topk8", acts, steps=12, recipe=tiny_recipe())  # the recipe at 4x its steps
    torch.testing.assert_close(shipped.long["topk8"].W_dec, again.W_dec)
    assert not torch.equal(shipped.long["topk8"].W_dec, shipped.saes["topk8"].W_dec)
    assert shipped.long_histories["topk8"]["steps"][-1] == 11


def test_building_only_the_long_saes_leaves_the_others_untouched(built):
    before = {p.relative_to(built): p.read_bytes() for p in built.rglob("*.safetensors")}
    card = json.loads((built / "card.json").read_text())
    op.build_long_toy_saes(built, {**tiny_recipe(), "long": {"names": ["topk8 seed 1"], "steps": 6}})
    after = json.loads((built / "card.json").read_text())
    assert after["saes"] == card["saes"] and [e["name"] for e in after["long"]] == ["topk8 seed 1"]
    assert all((built / p).read_bytes() == b for p, b in before.items() if (built / p).exists())
    assert set(op.load_toy_saes(built).long) == {"topk8 seed 1"}
    op.build_long_toy_saes(built, tiny_recipe())  # back to the module's artefact


def test_adding_long_saes_by_name_only_inserts_into_the_card(built):
    import difflib

    recipe = {**tiny_recipe(), "long": {"names": ["topk8", "topk8 seed 1"], "steps": 12}}
    text, weights = (
        (built / "card.json").read_text(),
        (built / "topk8-12-steps" / "sae_weights.safetensors").read_bytes(),
    )
    op.build_long_toy_saes(built, recipe, names=["topk8 seed 1"])  # how relu ... topk8 seed 3 joined the artefact
    new = (built / "card.json").read_text()
    old_lines, new_lines = ([line.rstrip(",") for line in t.splitlines()] for t in (text, new))  # JSON's commas
    ops = difflib.SequenceMatcher(None, old_lines, new_lines, autojunk=False).get_opcodes()
    assert {tag for tag, *_ in ops} == {"equal", "insert"}  # the card gains lines, loses and changes none
    assert (built / "topk8-12-steps" / "sae_weights.safetensors").read_bytes() == weights
    assert list(op.load_toy_saes(built).long) == ["topk8", "topk8 seed 1"]
    with pytest.raises(TutorialInputError, match="names"):
        op.build_long_toy_saes(built, recipe, names=["topk3"])
    op.build_long_toy_saes(built, tiny_recipe())  # back to the module's artefact


def test_a_tampered_long_sae_is_refused(tmp_path, built):
    import shutil

    copy = shutil.copytree(built, tmp_path / "copy")
    weights = next(copy.glob("topk8-12-steps/*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:-4] + b"\0\0\0\0")
    with pytest.raises(TutorialInputError, match="sha256"):
        op.load_toy_saes(copy)


def test_build_long_refuses_a_recipe_without_long_saes_or_a_directory_without_a_card(tmp_path):
    with pytest.raises(TutorialInputError, match="'long'"):
        op.build_long_toy_saes(tmp_path, {**tiny_recipe(), "long": {"names": ["topk3"], "steps": 4}})
    with pytest.raises(TutorialInputError, match="card.json"):
        op.build_long_toy_saes(tmp_path, tiny_recipe())
