"""tutorial_lib.explain.scoring: balanced accuracy against its definition, detection and fuzzing on
planted predicates (perfect, inverted, unrelated), and score_latents on a planted latent with its
shuffled control."""

from __future__ import annotations

import pytest
import torch

from tutorial_lib import explain as E
from tutorial_lib import tasks
from tutorial_lib.validation import TutorialInputError


def test_balanced_accuracy_is_the_mean_of_the_two_rates():
    truth = torch.tensor([True, True, True, False])
    assert E.balanced_accuracy(torch.ones(4, dtype=torch.bool), truth) == 0.5  # always "fires"
    assert E.balanced_accuracy(truth.clone(), truth) == 1.0
    assert E.balanced_accuracy(torch.tensor([True, False, False, False]), truth) == pytest.approx((1 / 3 + 1) / 2)
    with pytest.raises(TutorialInputError, match="both positives and negatives"):
        E.balanced_accuracy(truth, torch.ones(4, dtype=torch.bool))


def _planted(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    predicate = torch.rand(20, 16, generator=gen) < 0.2
    acts = predicate * (0.5 + torch.rand(20, 16, generator=gen))
    return predicate, acts


def test_detection_and_fuzzing_score_a_perfect_an_inverted_and_an_unrelated_predicate():
    predicate, acts = _planted()
    pos, neg = E.random_activating(acts, 30, seed=0), E.non_activating(acts, 30, seed=0)
    assert E.detection_accuracy(predicate, pos, neg) == 1.0
    assert E.detection_accuracy(~predicate, pos, neg) == 0.0
    assert E.fuzzing_accuracy(predicate, acts, pos) == 1.0
    unrelated = torch.rand(20, 16, generator=torch.Generator().manual_seed(9)) < 0.5
    assert abs(E.detection_accuracy(unrelated, pos, neg) - 0.5) < 0.2


def test_score_latents_explains_a_planted_latent_and_its_shuffled_control_scores_chance():
    tokens = tasks.corpus_tokens(64, 24, seed=5)
    mask = tokens != tasks.PAD_ID
    labels = E.token_labels(tokens, mask)
    name = labels.values[labels.index("a name")]
    acts = torch.stack([name.float(), (tokens == tasks.WORD_TO_ID["the"]).float()], -1)
    out = E.score_latents(labels, acts, mask=mask, min_fires=10)
    assert [labels.texts[i] for i in out["label"].tolist()] == ["a name", "the word 'the'"]
    assert out["detection"].min() == 1.0 and out["fuzzing"].min() == 1.0 and out["own"].min() == 1.0
    shuffled = torch.stack([E.shuffled_activations(acts[..., j], 0, mask) for j in range(2)], -1)
    control = E.score_latents(labels, acts, mask=mask, min_fires=10, score_acts=shuffled)
    assert (control["detection"] - 0.5).abs().max() < 0.15 and control["own"].min() > 0.85  # own contexts still flatter
