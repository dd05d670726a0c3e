"""Filler text and the organisms' training corpus: a mixture of IOI, bracket, fact and filler documents."""

from __future__ import annotations

import random

import torch
from jaxtyping import Int
from torch import Tensor

from ..validation import TutorialInputError, expect_choice, expect_int_at_least
from .bracket_text import brackets
from .fact_prompts import facts
from .ioi_prompts import ioi
from .seeding import python_rng
from .words import ADJECTIVES, FACTS, NAMES, NOUNS, OBJECTS, PAD_ID, PLACES, VERBS, encode


def filler(rng: random.Random, n_sentences: int = 2) -> str:
    """Simple sentences from a tiny grammar: "the old dog saw the river . Mary liked the book .".

    Chapter 02: sparse autoencoders (the organisms' training corpus)."""
    if not isinstance(rng, random.Random):
        raise TutorialInputError(f"rng must be a random.Random, got {type(rng).__name__}.")
    expect_int_at_least(n_sentences, "n_sentences", 0)
    out = []
    for _ in range(n_sentences):
        subj = rng.choice([f"the {rng.choice(ADJECTIVES)} {rng.choice(NOUNS)}", f"the {rng.choice(NOUNS)}",
                           rng.choice(NAMES)])  # fmt: skip
        obj = rng.choice([f"the {rng.choice(NOUNS)}", f"a {rng.choice(OBJECTS)}", rng.choice(NAMES),
                          f"the {rng.choice(PLACES)}"])  # fmt: skip
        out.append(f"{subj} {rng.choice(VERBS)} {obj} .")
    return " ".join(out)


CORPUS_MIX = {"ioi": 0.45, "brackets": 0.2, "facts": 0.1, "filler": 0.25}


def corpus(n_docs: int, seed: int | torch.Generator = 0, mix: dict[str, float] | None = None) -> list[str]:
    """A mixture of documents (default CORPUS_MIX): IOI sentences with their answer ("ioi"; "ioi_third":
    with a third name next to S2), bracket sequences, facts and filler. Training IOI documents use only
    the "train" name pairs.
    Chapter 02: sparse autoencoders (the organisms' training corpus)."""
    expect_int_at_least(n_docs, "n_docs", 0)
    rng = python_rng(seed)
    mix = mix or CORPUS_MIX
    for k in mix:
        expect_choice(k, ["ioi", "ioi_third", "brackets", "facts", "filler"], "corpus mix kind")
    kinds, weights = list(mix), list(mix.values())
    docs = []
    for _ in range(n_docs):
        kind = rng.choices(kinds, weights)[0]
        s = rng.randrange(2**31)
        if kind in ("ioi", "ioi_third"):
            third = rng.choice(["after", "before"]) if kind == "ioi_third" else None
            b = ioi(1, seed=s, split="train", third=third)
            docs.append(f"{b.prompts[0]}{b.answers[0]} .")
        elif kind == "brackets":
            docs.append(brackets(1, n_words=rng.randint(8, 24), seed=s).texts[0])
        elif kind == "facts":
            f = facts(1, relation=rng.choice(sorted(FACTS)), seed=s)
            docs.append(f"{f.prompts[0]}{f.answers[0]} .")
        else:
            docs.append(filler(rng, rng.randint(1, 3)))
    return docs


def corpus_tokens(
    batch: int, n_ctx: int, seed: int | torch.Generator = 0, mix: dict[str, float] | None = None
) -> Int[Tensor, "batch n_ctx"]:
    """`batch` corpus documents as token rows [BOS, doc, <pad>...] of length n_ctx (truncated if longer).

    Chapter 02: sparse autoencoders (the organisms' training corpus)."""
    expect_int_at_least(batch, "batch")
    expect_int_at_least(n_ctx, "n_ctx")
    rows = []
    for doc in corpus(batch, seed, mix):
        ids = encode(doc)[:n_ctx]
        rows.append(ids + [PAD_ID] * (n_ctx - len(ids)))
    return torch.tensor(rows, dtype=torch.long)
