"""tutorial_lib.tasks.corpus_text: the training corpus, padded rows and the same draws as before."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from tasks_golden import digest

from tutorial_lib import tasks

GOLDEN = json.loads((Path(__file__).parent / "data" / "tasks_golden.json").read_text())


def test_corpus_tokens():
    x = tasks.corpus_tokens(16, 32, seed=0)
    assert x.shape == (16, 32) and (x[:, 0] == tasks.BOS_ID).all()
    assert torch.equal(x, tasks.corpus_tokens(16, 32, seed=0))
    # padding only at the end of a row
    for row in x.tolist():
        if tasks.PAD_ID in row:
            k = row.index(tasks.PAD_ID)
            assert all(t == tasks.PAD_ID for t in row[k:])


def test_corpus_tokens_are_byte_identical_for_the_same_seed():
    assert digest(tasks.corpus_tokens(64, 32, seed=3)) == GOLDEN["corpus_tokens"]
    mix = {"ioi": 0.2, "ioi_third": 0.5, "filler": 0.3}
    assert digest(tasks.corpus_tokens(64, 32, seed=5, mix=mix)) == GOLDEN["corpus_tokens_mix"]
