"""attribution_graph/attention_effects.py: the per-latent attention gap ("norms frozen" minus "both frozen"),
the intervention scale, the fact prompts and the attention shift, on toy-lm with its shipped transcoders. The
chapter's claims (facts against brackets, steering) are tested in tests/test_claims_08.py."""

from __future__ import annotations

import pytest
import torch

from tutorial_lib import attribution_graph as AG
from tutorial_lib import organisms
from tutorial_lib import transcoders as T
from tutorial_lib.tasks.words import FACTS, VOCAB
from tutorial_lib.validation import TutorialInputError


@pytest.fixture(scope="module")
def setup():
    return organisms.load("toy-lm"), T.load_transcoders()[0]


def test_fact_prompts_hold_every_entity_with_the_subject_before_the_last_position():
    prompts, answers = AG.fact_prompts("language")
    template, table = FACTS["language"]
    assert len(prompts) == len(answers) == len(table)
    for p, a, entity in zip(prompts, answers, sorted(table), strict=True):
        assert p.shape[0] == 1 and VOCAB[p[0, -2]] == entity and VOCAB[a] == table[entity]


def test_scale_one_changes_nothing_and_scale_zero_is_the_ablation(setup):
    model, tcs = setup
    prompt = AG.fact_prompts("capital")[0][0]
    graph = AG.attribution_graph(model, tcs, prompt, int(AG.fact_prompts("capital")[1][0]))
    nodes = torch.arange(min(6, graph.n_latents))
    for freeze in AG.MODES.values():
        same = AG.measured_ablation_effects(model, tcs, prompt, graph, nodes, freeze=freeze, scale=1.0)
        assert same.abs().max() < 1e-4
    default = AG.measured_ablation_effects(model, tcs, prompt, graph, nodes)
    assert torch.equal(default, AG.measured_ablation_effects(model, tcs, prompt, graph, nodes, scale=0.0))


def test_effects_by_mode_a_small_steer_frozen_as_the_graph_matches_its_linear_prediction(setup):
    model, tcs = setup
    prompts, answers = AG.fact_prompts("capital")
    eff = AG.effects_by_mode(model, tcs, prompts[:2], answers[:2], scale=1.05)
    ablated = AG.effects_by_mode(model, tcs, prompts[:2], answers[:2])
    assert torch.allclose(eff["predicted"], -0.05 * ablated["predicted"], atol=1e-5)  # linear in the scale
    both = eff["both frozen (as the graph)"]
    assert (both - eff["predicted"]).abs().sum() < 0.05 * eff["predicted"].abs().sum()
    gap = AG.attention_gap(ablated)
    assert gap[ablated["layer"] == 1].abs().max() < 1e-4  # nothing attends after the last layer
    assert set(ablated["from_end"][ablated["layer"] == 1].tolist()) == {0}  # its latents elsewhere cannot reach
    summary = AG.gap_by_group(ablated)
    assert summary["below the last layer"]["n"] == summary["earlier positions"]["n"] + summary["last position"]["n"]
    assert summary["last layer"]["share"] == 0.0


def test_attention_shift_moves_nothing_at_scale_one_and_returns_distributions(setup):
    model, tcs = setup
    prompts, answers = AG.fact_prompts("language")
    eff = AG.effects_by_mode(model, tcs, prompts[:1], answers[:1], modes={})
    latent = tuple(int(eff[k][0]) for k in ("layer", "pos", "index"))
    clean, same = AG.attention_shift(model, tcs, prompts[0], latent, scale=1.0)  # type: ignore[arg-type]
    assert clean.shape == (model.cfg.n_heads, prompts[0].shape[1])
    assert torch.allclose(clean, same) and torch.allclose(clean.sum(-1), torch.ones(model.cfg.n_heads))


def test_bad_inputs_name_what_was_expected(setup):
    model, tcs = setup
    prompts, answers = AG.fact_prompts("capital")
    with pytest.raises(TutorialInputError, match="one answer token per prompt"):
        AG.effects_by_mode(model, tcs, prompts[:2], answers[:1])
    with pytest.raises(TutorialInputError, match="modes"):
        AG.attention_gap({"live": torch.zeros(2)})
    with pytest.raises(TutorialInputError, match="latent must be"):
        AG.attention_shift(model, tcs, prompts[0], (0, 99, 0))
    graph = AG.attribution_graph(model, tcs, prompts[0], int(answers[0]))
    with pytest.raises(TutorialInputError, match="scale must be a number"):
        AG.measured_ablation_effects(model, tcs, prompts[0], graph, torch.tensor([0]), scale="2")  # pyright: ignore[reportArgumentType]
