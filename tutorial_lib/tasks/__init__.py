"""Seeded synthetic tasks with labels: repeated segments (induction) and a small English-like corpus.

Every generator takes `seed` (an int or a torch.Generator); the same seed gives the same data.
The English-like tasks use real English words that are single GPT-2 tokens with a leading space
(" Mary", " Paris"), so the prompts also work with GPT-2. Under the organism tokenizer
(`tutorial_lib.tokenizer`) every word and punctuation mark is one token, and position 0 is BOS.

Modules, one task each: `repeats` (induction), `words` (vocabulary, templates, encoding),
`ioi_prompts`, `bracket_text`, `fact_prompts`, `corpus_text` (the organisms' training mixture);
`seeding` turns a seed into a generator.
"""

from __future__ import annotations

from .bracket_text import BracketBatch, bracket_depth, brackets
from .corpus_text import CORPUS_MIX, corpus, corpus_tokens, filler
from .fact_prompts import FactBatch, facts
from .ioi_prompts import IOIBatch, ioi, third_name_template
from .repeats import RepeatedSegments, repeated_segments, repeated_tokens
from .words import (
    ADJECTIVES,
    BOS_ID,
    CLOSE,
    FACTS,
    FILLER_WORDS,
    IOI_TEMPLATES,
    NAMES,
    NOUNS,
    OBJECTS,
    OPEN,
    PAD_ID,
    PLACES,
    PUNCTUATION,
    SPECIAL,
    UNK_ID,
    VERBS,
    VOCAB,
    WORD_TO_ID,
    encode,
    split_words,
)

__all__ = [
    "ADJECTIVES",
    "BOS_ID",
    "CLOSE",
    "CORPUS_MIX",
    "FACTS",
    "FILLER_WORDS",
    "IOI_TEMPLATES",
    "NAMES",
    "NOUNS",
    "OBJECTS",
    "OPEN",
    "PAD_ID",
    "PLACES",
    "PUNCTUATION",
    "SPECIAL",
    "UNK_ID",
    "VERBS",
    "VOCAB",
    "WORD_TO_ID",
    "BracketBatch",
    "FactBatch",
    "IOIBatch",
    "RepeatedSegments",
    "bracket_depth",
    "brackets",
    "corpus",
    "corpus_tokens",
    "encode",
    "facts",
    "filler",
    "ioi",
    "repeated_segments",
    "repeated_tokens",
    "split_words",
    "third_name_template",
]
