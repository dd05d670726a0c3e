"""tutorial_lib.organisms.recipes: builds follow the recipe, seeded; data distributions as documented."""

from __future__ import annotations

import torch

from tutorial_lib import organisms


def test_build_follows_the_recipe_and_its_seed():
    a, b = organisms.build("induction-2l"), organisms.build("induction-2l")
    cfg = organisms.RECIPES["induction-2l"].config
    assert a.cfg.n_layers == cfg["n_layers"] and a.cfg.n_heads == cfg["n_heads"] and not a.training
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(x, y), name


def test_every_recipe_names_a_report():
    for name, recipe in organisms.RECIPES.items():
        assert recipe.measure in organisms.MEASURES, name


def test_induction_batch_follows_the_training_distribution():
    d = organisms.INDUCTION_DATA
    data = organisms.induction_batch(64, 101, seed=0)
    assert data.tokens.shape == (64, d["seq_len"])
    assert ((data.period >= d["period"][0]) & (data.period <= d["period"][1])).all()
    assert torch.equal(data.tokens, organisms.induction_batch(64, 101, seed=0).tokens)
