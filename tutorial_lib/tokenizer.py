"""Word-level tokenizers for the organisms: one token per word or punctuation mark, BOS = id 0.

TransformerLens needs a tokenizer that went through save_pretrained/from_pretrained (a raw
`tokenizers` object fails with KeyError 'name_or_path'), so we build, save and reload.
"""

from __future__ import annotations

from pathlib import Path

from . import tasks


def save_word_tokenizer(vocab: list[str], out_dir: str | Path) -> None:
    """Write a word-level tokenizer for `vocab` (vocab[0] must be "<bos>") with save_pretrained."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    if vocab[0] != "<bos>" or len(set(vocab)) != len(vocab):
        raise ValueError("vocab must start with '<bos>' and have no duplicates")
    unk = "<unk>" if "<unk>" in vocab else "<bos>"
    tok = Tokenizer(models.WordLevel(vocab={w: i for i, w in enumerate(vocab)}, unk_token=unk))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()  # \w+|[^\w\s]+ ; tasks.split_words splits punctuation singly
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=True)  # joins words with spaces, tidies " ," and " ."
    kwargs = {"bos_token": "<bos>", "unk_token": unk}
    if "<pad>" in vocab:
        kwargs["pad_token"] = "<pad>"
    else:
        kwargs["pad_token"] = "<bos>"
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, **kwargs)
    fast.save_pretrained(str(out_dir))


def load_tokenizer(path: str | Path):
    """Reload a saved tokenizer offline (AutoTokenizer, as TransformerLens expects)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path), local_files_only=True)


def english_vocab() -> list[str]:
    """The toy-lm vocabulary: special tokens, punctuation, then the corpus words (tasks.VOCAB)."""
    return list(tasks.VOCAB)


def syllable_vocab(n: int) -> list[str]:
    """ "<bos>" plus n-1 pronounceable two-letter tokens ("ba", "be", ...): the induction organism's vocabulary."""
    syl = [c + v for c in "bdfgklmnprstvzhjwcxy" for v in "aeiou"]
    if n - 1 > len(syl):
        raise ValueError(f"at most {len(syl) + 1} syllable tokens")
    return ["<bos>"] + syl[: n - 1]
