"""tutorial_lib.tasks.words: the vocabulary covers the corpus and encode matches the HF tokenizer."""

from __future__ import annotations

import json
from pathlib import Path

from tutorial_lib import tasks

GOLDEN = json.loads((Path(__file__).parent / "data" / "tasks_golden.json").read_text())


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
