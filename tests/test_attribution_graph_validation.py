"""attribution_graph/validation.py: on toy-lm bracket-closing prompts, the graph's predicted effect on
the ")" logit of ablating each of its top latents (pruned by influence) correlates (r >= 0.5) with the
effect measured in the replacement model; pairing the predictions with the wrong latents' measurements
(a permuted hypothesis, the control) does not (r < 0.3). The predictions are 2-4x too large: the graph
freezes attention and norms (see the report)."""

from __future__ import annotations

import pytest
import torch

from tutorial_lib import organisms
from tutorial_lib import transcoders as T
from tutorial_lib.attribution_graph import (
    ablate_latents,
    attribution_graph,
    closing_prompts,
    measured_ablation_effects,
    predicted_ablation_effects,
    prune,
)
from tutorial_lib.tasks.bracket_text import brackets
from tutorial_lib.tasks.corpus_text import PAD_ID, corpus_tokens
from tutorial_lib.validation import TutorialInputError

CLOSE = 6


@pytest.fixture(scope="module")
def toy_lm():
    return organisms.load("toy-lm")


def _effects(model, seed: int, n_prompts: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    train = corpus_tokens(128, 32, seed=seed)
    tcs = [T.train_transcoder(*T.mlp_io(model, train, i, train != PAD_ID), steps=600, seed=seed)[0] for i in range(2)]
    batch = brackets(n_prompts, 16, seed=seed)
    pred, meas = [], []
    for row in range(n_prompts):
        ends = [p for p in range(1, 16) if batch.tokens[row, p + 1] == CLOSE]
        tokens = batch.tokens[row : row + 1, : ends[-1] + 1]
        graph = attribution_graph(model, tcs, tokens, CLOSE)
        kept = prune(graph, 0.8)
        top = kept[kept < graph.n_latents][:8]
        pred.append(predicted_ablation_effects(graph, top))
        meas.append(measured_ablation_effects(model, tcs, tokens, graph, top))
    return torch.cat(pred), torch.cat(meas)


def _r(a: torch.Tensor, b: torch.Tensor) -> float:
    return torch.corrcoef(torch.stack([a, b]))[0, 1].item()


def test_predicted_ablation_effects_track_measured_ones_and_a_wrong_pairing_does_not(toy_lm):
    pred, meas = _effects(toy_lm, seed=0)
    assert _r(pred, meas) >= 0.5
    perm = torch.randperm(len(meas), generator=torch.Generator().manual_seed(0))
    assert _r(pred, meas[perm]) < 0.3


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_validation_claim_is_robust(toy_lm, seed):
    """Measured r at seeds 1, 2, 3: 0.70, 0.50, 0.55 (seed 0: 0.70), so the bar here is 0.4."""
    pred, meas = _effects(toy_lm, seed=seed)
    assert _r(pred, meas) >= 0.4


def test_closing_prompts_end_where_a_close_comes_next():
    prompts = closing_prompts(4, seed=3)
    batch = brackets(4, 16, seed=3)
    for row, p in enumerate(prompts):
        n = p.shape[1]
        assert p.shape[0] == 1 and batch.tokens[row, n] == CLOSE and batch.depth[row, n - 1] > 0


def test_bad_freeze_and_latents_are_named(toy_lm):
    tcs = [T.Transcoder(toy_lm.cfg.d_model, 16, k=2, seed=i) for i in range(2)]
    prompt = closing_prompts(1, seed=0)[0]
    graph = attribution_graph(toy_lm, tcs, prompt, CLOSE)
    with pytest.raises(TutorialInputError, match="freeze must be"):
        measured_ablation_effects(toy_lm, tcs, prompt, graph, torch.tensor([0]), freeze=("mlp",))
    with pytest.raises(TutorialInputError, match="latents must be"):
        ablate_latents(toy_lm, tcs, prompt, [(5, 0)], CLOSE)
    assert ablate_latents(toy_lm, tcs, prompt, [], CLOSE).abs().max() < 1e-5  # nothing zeroed: no change
