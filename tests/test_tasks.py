"""The synthetic tasks: seeds reproduce, and every label agrees with an independent recomputation."""

from __future__ import annotations

import pytest
import torch

from tutorial_lib import tasks
from tutorial_lib.validation import TutorialInputError


def test_repeated_segments_seeded_and_labelled():
    a = tasks.repeated_segments(64, 64, 50, period=(4, 20), offset=(0, 20), bos=3, seed=7)
    b = tasks.repeated_segments(64, 64, 50, period=(4, 20), offset=(0, 20), bos=3, seed=7)
    c = tasks.repeated_segments(64, 64, 50, period=(4, 20), offset=(0, 20), bos=3, seed=8)
    assert torch.equal(a.tokens, b.tokens) and not torch.equal(a.tokens, c.tokens)
    assert (a.tokens[:, 0] == 3).all() and (a.tokens[:, 1:] != 3).all()
    assert a.tokens.min() >= 0 and a.tokens.max() < 50
    assert len(set(a.period.tolist())) > 5 and len(set(a.start.tolist())) > 5  # varies per row
    for row in range(64):
        toks, p, s = a.tokens[row].tolist(), int(a.period[row]), int(a.start[row])
        # the second occurrence copies the first
        assert toks[s + p : s + 2 * p] == toks[s : s + p]
        for pos in range(64):
            inside = s + p <= pos and pos + 1 < s + 2 * p
            assert bool(a.repeated[row, pos]) == inside
            if inside:  # the next token is a copy of the token after the earlier occurrence
                assert toks[pos + 1] == toks[pos + 1 - p]
            assert bool(a.first[row, pos]) == (s <= pos < s + p - 1)
    assert torch.equal(a.repeated.sum(1), a.first.sum(1))


def test_repeated_segments_with_gap():
    a = tasks.repeated_segments(64, 64, 40, period=(8, 30), offset=(0, 10), seed=3, length=(4, 12))
    assert torch.equal(a.tokens, tasks.repeated_segments(64, 64, 40, (8, 30), (0, 10), seed=3, length=(4, 12)).tokens)
    for row in range(64):
        toks, p, s = a.tokens[row].tolist(), int(a.period[row]), int(a.start[row])
        n = int(a.first[row].sum()) + 1  # segment length
        assert 4 <= n <= min(12, p)
        assert toks[s + p : s + p + n] == toks[s : s + n]
        rep = [pos for pos in range(64) if a.repeated[row, pos]]
        assert rep == list(range(s + p, s + p + n - 1))
        assert all(toks[pos + 1] == toks[pos + 1 - p] for pos in rep)
        assert [pos + p for pos in range(64) if a.first[row, pos]] == rep


def test_repeated_segments_fixed_period_and_generator():
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    a = tasks.repeated_segments(8, 30, 20, period=5, offset=2, seed=g1)
    b = tasks.repeated_segments(8, 30, 20, period=5, offset=2, seed=g2)
    assert torch.equal(a.tokens, b.tokens)
    assert (a.period == 5).all() and (a.start == 3).all()
    with pytest.raises(TutorialInputError, match="too short"):
        tasks.repeated_segments(2, 10, 20, period=5, offset=2)


def test_repeated_tokens():
    x = tasks.repeated_tokens(4, 10, 30, bos=0, seed=1)
    assert x.shape == (4, 21) and (x[:, 0] == 0).all()
    assert torch.equal(x[:, 1:11], x[:, 11:]) and (x[:, 1:] != 0).all()
    assert torch.equal(x, tasks.repeated_tokens(4, 10, 30, bos=0, seed=1))


def test_vocab_covers_everything_and_encode_matches_hf_tokenizer(tmp_path):
    from tutorial_lib.tokenizer import load_tokenizer, save_word_tokenizer

    docs = tasks.corpus(200, seed=3)
    ids = [tasks.encode(d) for d in docs]
    assert all(tasks.UNK_ID not in row for row in ids)  # every generated word is in the vocabulary
    save_word_tokenizer(tasks.VOCAB, tmp_path)
    tok = load_tokenizer(tmp_path)
    for d, row in zip(docs[:50], ids):
        assert [tasks.BOS_ID] + tok(d)["input_ids"] == row
    assert tasks.corpus(200, seed=3) == docs


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


def test_brackets_depth_recomputed():
    b = tasks.brackets(50, n_words=20, seed=4)
    assert torch.equal(b.tokens, tasks.brackets(50, n_words=20, seed=4).tokens)
    assert b.tokens.shape == (50, 21)
    open_id, close_id = tasks.WORD_TO_ID["("], tasks.WORD_TO_ID[")"]
    for i in range(50):
        depth = 0
        for pos in range(21):
            t = int(b.tokens[i, pos])
            depth += (t == open_id) - (t == close_id)
            assert depth >= 0 and int(b.depth[i, pos]) == depth
        assert depth == 0 and tasks.VOCAB[int(b.tokens[i, -1])] == "."
    assert b.depth.max() >= 2  # nesting happens
    assert torch.equal(b.can_close, b.depth > 0)


def test_facts():
    f = tasks.facts(30, relation="capital", seed=0)
    for i in range(30):
        assert f.prompts[i] == f"The capital of {f.entity[i]} is"
        assert f.attribute[i] == tasks.FACTS["capital"][1][f.entity[i]]
        assert tasks.VOCAB[int(f.tokens[i, int(f.entity_pos[i])])] == f.entity[i]
        assert tasks.VOCAB[int(f.answer_token[i])] == f.attribute[i]


def test_corpus_tokens():
    x = tasks.corpus_tokens(16, 32, seed=0)
    assert x.shape == (16, 32) and (x[:, 0] == tasks.BOS_ID).all()
    assert torch.equal(x, tasks.corpus_tokens(16, 32, seed=0))
    # padding only at the end of a row
    for row in x.tolist():
        if tasks.PAD_ID in row:
            k = row.index(tasks.PAD_ID)
            assert all(t == tasks.PAD_ID for t in row[k:])
