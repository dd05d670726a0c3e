"""tutorial_lib.tasks.ioi_prompts: labels and positions recomputed, and the same draws as before."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tasks_golden import CONFIGS, digest

from tutorial_lib import tasks
from tutorial_lib.validation import TutorialInputError

GOLDEN = json.loads((Path(__file__).parent / "data" / "tasks_golden.json").read_text())


@pytest.mark.parametrize("template", range(len(tasks.IOI_TEMPLATES)))
def test_ioi_labels(template):
    b = tasks.ioi(32, seed=template, template=template)
    again = tasks.ioi(32, seed=template, template=template)
    assert again.prompts == b.prompts and torch.equal(again.tokens, b.tokens)
    assert {"ABBA", "BABA"} == set(b.order)
    assert b.tokens.shape == b.corrupt_tokens.shape  # aligned clean/corrupt pair
    for i, prompt in enumerate(b.prompts):
        words = tasks.split_words(prompt)
        names = [w for w in words if w in tasks.NAMES]
        assert len(names) == 3
        # the answer is the name that occurs once; S occurs twice
        once = [n for n in set(names) if names.count(n) == 1]
        assert once == [b.io_name[i]] and names.count(b.s_name[i]) == 2
        toks = b.tokens[i].tolist()
        assert toks[0] == tasks.BOS_ID and len(toks) == len(words) + 1
        assert tasks.VOCAB[toks[int(b.io_pos[i])]] == b.io_name[i]
        assert tasks.VOCAB[toks[int(b.s1_pos[i])]] == b.s_name[i]
        assert tasks.VOCAB[toks[int(b.s2_pos[i])]] == b.s_name[i]
        assert b.s1_pos[i] < b.s2_pos[i] and int(b.end_pos[i]) == len(toks) - 1
        assert (b.io_pos[i] < b.s1_pos[i]) == (b.order[i] == "ABBA")
        assert b.answers[i] == " " + b.io_name[i]
        # the corrupt prompt differs only at the name slots, with three other names
        c = b.corrupt_tokens[i].tolist()
        diff = [p for p in range(len(toks)) if c[p] != toks[p]]
        assert set(diff) == {int(b.io_pos[i]), int(b.s1_pos[i]), int(b.s2_pos[i])}
        assert not {tasks.VOCAB[c[p]] for p in diff} & {b.io_name[i], b.s_name[i]}


@pytest.mark.parametrize("third", ["after", "before"])
def test_ioi_third_name(third):
    """A third name C next to S2: S is still the only repeated name, C stands where `third` says."""
    b = tasks.ioi(24, seed=5, template=1, third=third)
    classic = tasks.ioi(24, seed=5, template=1)
    assert b.third == third and classic.third is None and classic.c_pos is None and not classic.c_name
    assert b.tokens.shape[1] == classic.tokens.shape[1] + 2  # "and C" adds two tokens
    assert b.c_pos is not None and b.c_token is not None
    assert torch.equal(b.c_pos, b.s2_pos + 2) if third == "after" else torch.equal(b.c_pos, b.s2_pos - 2)
    for i, prompt in enumerate(b.prompts):
        names = [w for w in tasks.split_words(prompt) if w in tasks.NAMES]
        assert len(names) == 4 and names.count(b.s_name[i]) == 2 and names.count(b.io_name[i]) == 1
        assert names.count(b.c_name[i]) == 1 and b.c_name[i] not in (b.io_name[i], b.s_name[i])
        toks = b.tokens[i].tolist()
        assert tasks.VOCAB[toks[int(b.c_pos[i])]] == b.c_name[i] == tasks.VOCAB[int(b.c_token[i])]
        assert tasks.VOCAB[toks[int(b.s2_pos[i])]] == b.s_name[i] == tasks.VOCAB[toks[int(b.s1_pos[i])]]
        assert tasks.VOCAB[toks[int(b.io_pos[i])]] == b.io_name[i]
        # "abc" replaces all four names by four others
        c = b.corrupt_tokens[i].tolist()
        diff = [p for p in range(len(toks)) if c[p] != toks[p]]
        assert set(diff) == {int(b.io_pos[i]), int(b.s1_pos[i]), int(b.s2_pos[i]), int(b.c_pos[i])}
        assert len({c[p] for p in diff}) == 4
    flip = tasks.ioi(8, seed=6, template=2, third=third, corruption="flip")
    for i in range(8):
        changed = (flip.corrupt_tokens[i] != flip.tokens[i]).nonzero().flatten().tolist()
        assert (
            changed == [int(flip.s2_pos[i])] and tasks.VOCAB[int(flip.corrupt_tokens[i, changed[0]])] == flip.io_name[i]
        )
    with pytest.raises(TutorialInputError, match="third"):
        tasks.ioi(4, third="middle")


def test_ioi_flip_and_split():
    b = tasks.ioi(16, seed=1, template=0, corruption="flip", order="ABBA")
    assert set(b.order) == {"ABBA"}
    for i in range(16):
        s2 = int(b.s2_pos[i])
        assert tasks.VOCAB[int(b.corrupt_tokens[i, s2])] == b.io_name[i]
        assert torch.equal(b.corrupt_tokens[i, :s2], b.tokens[i, :s2])
    train = {frozenset(p) for p in zip(*(lambda x: (x.io_name, x.s_name))(tasks.ioi(300, seed=2, split="train")))}
    test = {frozenset(p) for p in zip(*(lambda x: (x.io_name, x.s_name))(tasks.ioi(300, seed=2, split="test")))}
    assert train and test and not train & test  # held-out name pairs never appear in training


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"seed{c['seed']}")
def test_ioi_is_byte_identical_for_the_same_seed(config):
    """Prompts, tokens and positions are exactly those of the generator before the package split
    (stored notebook outputs and the organisms' recipes depend on them)."""
    assert digest(tasks.ioi(**config)) == GOLDEN["ioi"][json.dumps(config, sort_keys=True)]
