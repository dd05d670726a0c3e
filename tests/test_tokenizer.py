"""Word-level tokenizers: one token per word or punctuation mark, saved and reloaded offline."""

from __future__ import annotations

import pytest

from tutorial_lib import tasks, tokenizer


def test_saved_tokenizer_round_trips_words_and_punctuation(tmp_path):
    vocab = ["<bos>", "Mary", "went", "home", ".", ","]
    tokenizer.save_word_tokenizer(vocab, tmp_path)
    tok = tokenizer.load_tokenizer(tmp_path)
    text = "Mary went home, Mary."
    ids = tok(text)["input_ids"]
    assert ids == [vocab.index(w) for w in ["Mary", "went", "home", ",", "Mary", "."]]
    assert tok.decode(ids) == text
    assert tok.bos_token_id == 0 and tok.pad_token == "<bos>"


def test_unknown_words_map_to_unk_or_bos(tmp_path):
    tokenizer.save_word_tokenizer(["<bos>", "went"], tmp_path / "no_unk")
    assert tokenizer.load_tokenizer(tmp_path / "no_unk")("Bob went")["input_ids"] == [0, 1]
    tokenizer.save_word_tokenizer(["<bos>", "<unk>", "<pad>", "went"], tmp_path / "unk")
    tok = tokenizer.load_tokenizer(tmp_path / "unk")
    assert tok("Bob went")["input_ids"] == [1, 3] and tok.pad_token == "<pad>"


def test_vocabularies_are_checked(tmp_path):
    with pytest.raises(ValueError, match="<bos>"):
        tokenizer.save_word_tokenizer(["went", "<bos>"], tmp_path)
    with pytest.raises(ValueError, match="duplicates"):
        tokenizer.save_word_tokenizer(["<bos>", "went", "went"], tmp_path)


def test_vocabularies_of_the_organisms():
    assert tokenizer.english_vocab() == list(tasks.VOCAB)
    assert tokenizer.syllable_vocab(4) == ["<bos>", "ba", "be", "bi"]
    assert len(set(tokenizer.syllable_vocab(101))) == 101
    with pytest.raises(ValueError, match="at most 101"):
        tokenizer.syllable_vocab(102)
