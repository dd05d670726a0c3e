"""tutorial_lib.tasks.repeats: seeds reproduce, and the labels agree with an independent recomputation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tutorial_lib import tasks
from tutorial_lib.validation import TutorialInputError

GOLDEN = json.loads((Path(__file__).parent / "data" / "tasks_golden.json").read_text())


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
