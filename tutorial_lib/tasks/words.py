"""The English-like vocabulary: word lists (every word a single GPT-2 token with a leading space), the
IOI templates and fact tables, and the organism tokenizer's split and encoding (one token per word or
punctuation mark, BOS at position 0)."""

from __future__ import annotations

import re

import torch
from torch import Tensor

from ..validation import TutorialInputError

NAMES = [
    "Mary", "John", "James", "Jane", "Kate", "Mark", "Paul", "Peter", "Rose", "Ryan", "Sarah", "Scott",
    "Simon", "Thomas", "Tyler", "William", "Alice", "Amy", "Anna", "Adam", "Alex", "Daniel", "David",
    "Eric", "Frank", "George", "Henry", "Jack", "Laura", "Lisa", "Max", "Michael",
]  # fmt: skip
PLACES = ["store", "park", "school", "office", "garden", "station", "house", "market"]
OBJECTS = ["drink", "book", "ball", "gift", "key", "flower", "letter", "bag"]

# {A} {B}: the two names in the first clause; {S}: the subject of the second clause; {P}, {O}: place, object.
IOI_TEMPLATES = [
    "When {A} and {B} went to the {P}, {S} gave a {O} to",
    "After {A} and {B} went to the {P}, {S} gave a {O} to",
    "Then, {A} and {B} went to the {P}. {S} gave a {O} to",
    "While {A} and {B} were working at the {P}, {S} gave a {O} to",
    "When {A} and {B} got a {O} at the {P}, {S} decided to give it to",
]

FACTS = {
    "capital": ("The capital of {E} is", {
        "France": "Paris", "Italy": "Rome", "Spain": "Madrid", "Germany": "Berlin", "Japan": "Tokyo",
        "England": "London", "Russia": "Moscow", "Egypt": "Cairo", "Greece": "Athens", "China": "Beijing",
    }),
    "language": ("The language of {E} is", {
        "France": "French", "Italy": "Italian", "Spain": "Spanish", "Germany": "German", "Japan": "Japanese",
        "England": "English", "Russia": "Russian", "Egypt": "Arabic", "Greece": "Greek", "China": "Chinese",
    }),
}  # fmt: skip

ADJECTIVES = ["big", "small", "old", "new", "red", "blue", "happy", "quiet"]
NOUNS = ["cat", "dog", "bird", "man", "woman", "child", "car", "tree", "river", "city", "door", "table"]
VERBS = ["saw", "liked", "found", "took", "made", "wanted", "had", "moved"]
FILLER_WORDS = ["the", "a", "and", "of", "in", "it", "was", "very", "then", "we", "they"]

OPEN, CLOSE = "(", ")"
PUNCTUATION = [",", ".", OPEN, CLOSE]
SPECIAL = ["<bos>", "<pad>", "<unk>"]
BOS_ID, PAD_ID, UNK_ID = 0, 1, 2

_WORD_RE = re.compile(r"\w+|[^\w\s]")


def split_words(text: str) -> list[str]:
    """The organism tokenizer's split: words and single punctuation marks (no spaces kept).

    Chapters 02-06: the organism tokenizer."""
    if not isinstance(text, str):
        raise TutorialInputError(f"text must be a str, got {type(text).__name__}.")
    return _WORD_RE.findall(text)


def _template_words() -> set[str]:
    """Every word of the IOI templates and fact tables. Chapters 02-06: the organism tokenizer."""
    words: set[str] = set()
    for t in IOI_TEMPLATES:
        words.update(w for w in split_words(re.sub(r"\{\w\}", "", t)))
    for t, table in FACTS.values():
        words.update(split_words(t.replace("{E}", "")))
        words.update(table)
        words.update(table.values())
    return words


VOCAB: list[str] = SPECIAL + PUNCTUATION + sorted(
    (_template_words() | set(NAMES) | set(PLACES) | set(OBJECTS) | set(ADJECTIVES) | set(NOUNS) | set(VERBS)
     | set(FILLER_WORDS) | {"likes", "to", "gave", "is", "The"}) - set(PUNCTUATION)
)  # fmt: skip
WORD_TO_ID: dict[str, int] = {w: i for i, w in enumerate(VOCAB)}
assert VOCAB[BOS_ID] == "<bos>" and VOCAB[PAD_ID] == "<pad>"


def encode(text: str, bos: bool = True) -> list[int]:
    """Token ids of `text` under the organism tokenizer (pure Python; tests check it equals the HF tokenizer).

    Chapters 02-06: the organism tokenizer."""
    ids = [WORD_TO_ID.get(w, UNK_ID) for w in split_words(text)]
    return [BOS_ID] + ids if bos else ids


def stack_rows(rows: list[list[int]]) -> Tensor:
    """Token rows of equal length as a long tensor [batch, pos]. Chapters 02-06: the organism tokenizer."""
    lengths = {len(r) for r in rows}
    if len(lengths) != 1:
        raise AssertionError(f"rows of unequal length {sorted(lengths)}")
    return torch.tensor(rows, dtype=torch.long)
