"""Tests for tutorial_lib.attention.survey: the induction survey of a model and the stored surveys."""

from __future__ import annotations

import pytest
import torch

from tutorial_lib import attention as A
from tutorial_lib.validation import TutorialInputError


def test_survey_of_the_organism_names_its_induction_heads(induction):
    assert A.survey_probe(induction).shape == (A.survey.PROBE["batch"], 1 + 2 * A.survey.PROBE["half_len"])
    tokens = A.survey_probe(induction)[:, :41]  # the organism's context is 64: [BOS, x, x] with |x| = 20
    tokens[:, 21:] = tokens[:, 1:21]
    got = A.induction_survey(induction, tokens, top=2, n_random=1)
    assert sorted(tuple(h[:2]) for h in got["top_heads"][:2]) == [(1, 0), (1, 1)]
    scores = A.head_scores(induction, tokens)["induction"]
    assert got["top_heads"][0][2] == pytest.approx(float(scores.max()), abs=1e-3)
    clean = A.repeat_losses(induction(tokens), tokens)
    assert got["loss_repeated"] == pytest.approx(clean["repeated"], abs=1e-3)
    both = A.ablated_loss(induction, tokens, [(1, 0), (1, 1)], kind="mean")
    assert got["ablate_top"]["repeated"] == pytest.approx(both["repeated"], abs=1e-3)
    assert got["ablate_top"]["repeated"] > got["loss_repeated"] + 1.0


def test_survey_rejects_bad_sizes_and_unknown_models(induction):
    tokens = A.survey_probe(induction)[:, :41]
    with pytest.raises(TutorialInputError, match="top"):
        A.induction_survey(induction, tokens, top=0)
    with pytest.raises(TutorialInputError, match="too few heads"):
        A.induction_survey(induction, tokens, top=3)
    with pytest.raises(TutorialInputError, match="no stored induction survey"):
        A.stored_survey("no-such-model")


def test_stored_smollm2_survey_is_complete():
    stored = A.stored_survey("smollm2-135m")
    assert len(stored["top_heads"]) == 10 and stored["n_layers"] == 30 and stored["n_heads"] == 9
    assert stored["loss_repeated"] < stored["loss_first"]
    assert torch.tensor([h[2] for h in stored["top_heads"]]).diff().le(0).all(), "sorted by score"
