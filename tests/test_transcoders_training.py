"""transcoders/training.py: per-MLP transcoders on toy-lm (ln2 output -> MLP output) train to a plateau,
predict held-out MLP outputs (normalised MSE < 0.15 at both layers), and a transcoder trained on
shuffled (input, output) pairs does not (the control)."""

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


@pytest.fixture(scope="module")
def pairs(toy_lm):
    train, test = corpus_tokens(128, 32, seed=0), corpus_tokens(64, 32, seed=100)
    return [(T.mlp_io(toy_lm, train, i, train != PAD_ID), T.mlp_io(toy_lm, test, i, test != PAD_ID)) for i in range(2)]


def _nmse(pairs, layer: int, seed: int, steps: int, shuffle: bool) -> tuple[float, list[float]]:
    (x, y), (xt, yt) = pairs[layer]
    if shuffle:
        y = y[torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))]
    tc, losses = T.train_transcoder(x, y, steps=steps, seed=seed)
    return T.normalised_mse(tc, xt, yt), losses


@pytest.mark.parametrize("layer", [0, 1])
def test_transcoder_predicts_held_out_mlp_output_and_the_control_does_not(pairs, layer):
    nmse, losses = _nmse(pairs, layer, seed=0, steps=600, shuffle=False)
    assert nmse < 0.15
    before_decay = sum(losses[420:480]) / 60  # plateau: < 15% change over the last fifth before decay
    assert sum(losses[360:420]) / 60 - before_decay < 0.15 * before_decay
    control, _ = _nmse(pairs, layer, seed=0, steps=600, shuffle=True)
    assert control > 0.5


@pytest.mark.slow
@pytest.mark.parametrize(("seed", "steps"), [(1, 600), (2, 600), (3, 600), (0, 2400)])
def test_transcoder_claim_is_robust(pairs, seed, steps):
    """Lighter than the fast test to fit CI: layer 1 only; the shuffled control runs once, above."""
    assert _nmse(pairs, 1, seed=seed, steps=steps, shuffle=False)[0] < 0.15


def test_bad_layer_is_named(toy_lm):
    with pytest.raises(TutorialInputError, match="layer must be an int"):
        T.mlp_io(toy_lm, corpus_tokens(2, 8, seed=0), 5)
