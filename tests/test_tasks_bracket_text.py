"""tutorial_lib.tasks.bracket_text: depths recomputed from the words."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from tutorial_lib import tasks

GOLDEN = json.loads((Path(__file__).parent / "data" / "tasks_golden.json").read_text())


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
