"""tutorial_lib.sae.pretrained: the shipped frontier SAEs load with their hashes checked, match their card,
and `build_frontier` writes what `load_frontier` reads."""

from __future__ import annotations

import json
import shutil

import pytest

from tutorial_lib import sae as S
from tutorial_lib.validation import TutorialInputError


def test_the_shipped_frontier_loads_and_matches_its_card():
    points = S.load_frontier()
    card = json.loads((S.FRONTIER_DIR / "card.json").read_text())
    assert [(p.arch, p.knob) for p in points] == [(e["arch"], e["knob"]) for e in card["saes"]]
    for p, e in zip(points, card["saes"]):
        assert p.sae is not None and p.history.n_steps == card["recipe"]["sweep"]["steps"]
        assert abs(p.ev - e["held_out"]["ev"]) < 1e-3 and abs(p.mcc - e["held_out"]["mcc"]) < 1e-3
    assert card["recipe"] == S.FRONTIER_RECIPE


def test_a_changed_weights_file_is_refused(tmp_path):
    copy = shutil.copytree(S.FRONTIER_DIR, tmp_path / "frontier")
    weights = copy / "topk-8" / S.WEIGHTS_FILE
    weights.write_bytes(weights.read_bytes()[:-4] + b"\0\0\0\0")
    with pytest.raises(TutorialInputError, match="sha256"):
        S.load_frontier(copy)


def test_a_missing_card_is_a_clear_error(tmp_path):
    with pytest.raises(TutorialInputError, match="card.json"):
        S.load_frontier(tmp_path)


def test_build_then_load_round_trips(tmp_path):
    recipe = {
        "data": {"n_samples": 600, "d_in": 8, "n_features": 16, "l0": 2.0, "seed": 3},
        "train_rows": [0, 400],
        "test_rows": [400, 600],
        "sweep": {"ks": [2], "l1_coeffs": [0.5], "steps": 5, "batch_size": 64, "lr": 2e-3, "seed": 3},
    }
    out = S.build_frontier(tmp_path / "f", recipe)
    points = S.load_frontier(out)
    assert [(p.arch, p.knob) for p in points] == [("topk", 2.0), ("relu", 0.5)]
    assert all(p.history.n_steps == 5 and len(p.history.loss) == len(p.history.steps) for p in points)


def test_the_robustness_record_matches_the_recipe_at_other_seeds():
    runs = S.load_robustness()
    assert set(runs) == {"seed 1", "seed 2", "seed 3", "twice"}
    for s in (1, 2, 3):
        run = runs[f"seed {s}"]
        assert run["recipe"] == S.seed_recipe(s) and run["override"] == {}
        assert [(p.arch, p.knob) for p in run["points"]] == [(p.arch, p.knob) for p in S.load_frontier()]
    assert runs["twice"]["override"]["steps"] == 2 * S.FRONTIER_RECIPE["sweep"]["steps"]


def test_build_robustness_then_retrain_reproduces_a_point(tmp_path):
    recipe = {
        "data": {"n_samples": 600, "d_in": 8, "n_features": 16, "l0": 2.0, "seed": 3},
        "train_rows": [0, 400],
        "test_rows": [400, 600],
        "sweep": {"ks": [2, 8], "l1_coeffs": [0.6], "steps": 5, "batch_size": 64, "lr": 2e-3, "seed": 3},
    }
    S.build_robustness(tmp_path, recipe, seeds=(4,))
    runs = S.load_robustness(tmp_path)
    assert runs["seed 4"]["recipe"]["data"]["seed"] == 4 and len(runs["seed 4"]["points"]) == 3
    recorded = runs["seed 4"]["points"][1]
    again = S.retrain_point(runs["seed 4"], recorded.arch, recorded.knob)
    assert (again.arch, again.knob) == ("topk", 8.0)
    assert abs(again.ev - recorded.ev) < 1e-3 and abs(again.l0 - recorded.l0) < 1e-2
