"""tutorial_lib.explain.explainers: the labels agree with the task generators' own labels, and the
explainer picks the label that is special to the shown contexts, not the most common one."""

from __future__ import annotations

import pytest
import torch

from tutorial_lib import explain as E
from tutorial_lib import tasks
from tutorial_lib.validation import TutorialInputError


@pytest.fixture(scope="module")
def text():
    tokens = tasks.corpus_tokens(32, 24, seed=3)
    return tokens, tokens != tasks.PAD_ID


def test_labels_match_the_task_generators():
    batch = tasks.brackets(8, 12, seed=0)
    labels = E.token_labels(batch.tokens)
    assert torch.equal(labels.values[labels.index("inside brackets at depth >= 1")], batch.depth >= 1)
    assert torch.equal(labels.values[labels.index("inside brackets at depth >= 2")], batch.depth >= 2)
    ioi = tasks.ioi(6, seed=0)
    tokens = torch.tensor([tasks.encode(p) for p in ioi.prompts])
    labels = E.token_labels(tokens)
    names = labels.values[labels.index("a name")]
    repeated = labels.values[labels.index("a name seen earlier in the text")]
    assert int(names.sum(1).min()) >= 3 and int(repeated.sum(1).min()) >= 1  # A, B and the repeated S
    word = labels.values[labels.index("the word 'gave'")]
    after = labels.values[labels.index("the word after the word 'gave'")]
    assert torch.equal(after[:, 1:], word[:, :-1]) and not after[:, 0].any()


def test_base_rates_count_the_masked_positions(text):
    tokens, mask = text
    labels = E.token_labels(tokens, mask)
    i = labels.index("the word 'the'")
    assert labels.base_rate[i].item() == pytest.approx((tokens[mask] == tasks.WORD_TO_ID["the"]).float().mean().item())


def test_explainer_prefers_the_special_label_over_the_common_one(text):
    tokens, mask = text
    labels = E.token_labels(tokens, mask)
    gave = (tokens == tasks.WORD_TO_ID["gave"]).nonzero()
    assert E.explain_latent(labels, gave).text == "the word 'gave'"
    # every shown context is also "a verb or after something common"; the plain majority label would be
    # whichever is most frequent, the explainer's is the one with the largest excess over its base rate
    shown = labels.values[:, gave[:, 0], gave[:, 1]].float().mean(1)
    assert (shown == 1).sum() > 1


def test_explainer_rejects_empty_and_outside_contexts(text):
    labels = E.token_labels(text[0], text[1])
    with pytest.raises(TutorialInputError, match="never fires"):
        E.explain_latent(labels, torch.zeros(0, 2, dtype=torch.long))
    with pytest.raises(TutorialInputError, match="inside"):
        E.explain_latent(labels, torch.tensor([[99, 0]]))


def test_label_from_text_reads_the_label_an_explanation_names(text):
    labels = E.token_labels(text[0], text[1])
    for written, want in [("The word gave, always", "the word 'gave'"), ("They are all names of people", "a name"),
                          ("words inside parentheses", "inside brackets at depth >= 1")]:  # fmt: skip
        assert E.label_from_text(labels, written) == labels.index(want), written
    assert E.label_from_text(labels, "The marked words have the same prefix") is None  # filler words name nothing


@pytest.mark.slow
@pytest.mark.real
def test_smollm2_instruct_writes_an_explanation(smollm2):
    written = E.lm_explanation(smollm2, ["Mary [[gave]] a book", "John [[gave]] a key"], max_new_tokens=4)
    assert isinstance(written, str) and written
    with pytest.raises(TutorialInputError, match="non-empty list"):
        E.lm_explanation(smollm2, [])
