"""tutorial_lib.organisms.minimal: the minimal-circuits sweep's recipes are ioi-3l's with the size changed,
the shipped ioi-1l is its one layer x two heads run at seed 0, and the record says which sizes solve IOI:
one layer with one head at no seed (nor at four times the training), one layer with two heads and two
layers with one head at most seeds (chapter 07 asserts the same on the record)."""

from __future__ import annotations

import pytest

from tutorial_lib import organisms
from tutorial_lib.organisms.minimal import (
    MINIMAL_SEEDS,
    MINIMAL_SIZES,
    load_minimal_sweep,
    minimal_recipe,
    minimal_sweep,
)
from tutorial_lib.validation import TutorialInputError


def test_recipes_are_ioi_3l_with_the_size_changed():
    base, r = organisms.RECIPES["ioi-3l"], minimal_recipe(2, 1, seed=5, steps=10)
    assert r.config == {**base.config, "n_layers": 2, "n_heads": 1, "d_head": 64, "seed": 5}
    assert r.train == {**base.train, "seed": 5, "steps": 10}
    shipped = organisms.RECIPES["ioi-1l"]
    assert minimal_recipe(1, 2, seed=0).config == shipped.config and minimal_recipe(1, 2, 0).train == shipped.train


@pytest.mark.parametrize("bad", [0, 5, 1.5, True])
def test_bad_sizes_are_clear_errors(bad):
    with pytest.raises(TutorialInputError, match="n_heads must be an int"):
        minimal_recipe(1, bad, seed=0)


def test_a_missing_record_is_a_clear_error(tmp_path):
    with pytest.raises(TutorialInputError, match="python -m tutorial_lib.organisms.minimal"):
        load_minimal_sweep(tmp_path / "none.json")


def test_the_record_holds_every_run_and_the_shipped_organism():
    runs = load_minimal_sweep()
    first = {(r["layers"], r["heads"], r["seed"]) for r in runs if r["steps"] == 3000}
    assert first == {(n, h, s) for n, h in MINIMAL_SIZES for s in MINIMAL_SEEDS}
    shipped = organisms.card("ioi-1l")["properties"]
    run = next(r for r in runs if (r["layers"], r["heads"], r["seed"], r["steps"]) == (1, 2, 0, 3000))
    assert abs(run["ioi_acc"] - shipped["ioi_acc"]) < 0.02
    assert abs(run["ioi_logit_diff"] - shipped["ioi_logit_diff"]) < 0.2


def test_one_head_never_solves_ioi_two_heads_do_at_most_seeds():
    runs = load_minimal_sweep()
    solved = {}
    for r in runs:
        solved.setdefault((r["layers"], r["heads"]), []).append(r["ioi_acc"] >= 0.95)
    assert not any(solved[1, 1])
    assert sum(solved[1, 2]) >= 2 and sum(solved[2, 1]) >= 2


def test_the_sweep_writes_what_the_loader_reads(tmp_path, monkeypatch):
    from tutorial_lib.organisms import minimal

    fake = {"ioi_acc": 0.5, "ioi_logit_diff": 0.0, "ioi_third_name": {}, "second_clause_name_logit": 0.0}
    monkeypatch.setattr(minimal, "_run", lambda n, h, s, steps=None: {"layers": n, "heads": h, "seed": s,
                                                                      "steps": steps or 3000, **fake})  # fmt: skip
    runs = load_minimal_sweep(minimal_sweep(tmp_path / "r.json", sizes=((1, 1),), seeds=(0, 1)))
    assert [(r["seed"], r["steps"]) for r in runs] == [(0, 3000), (1, 3000), (0, 12000)]
