"""Fact prompts: "The capital of France is" -> " Paris", one relation per batch."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Int
from torch import Tensor

from ..validation import expect_choice, expect_int_at_least
from .seeding import python_rng
from .words import FACTS, WORD_TO_ID, encode, split_words, stack_rows


@dataclass
class FactBatch:
    """ "The capital of France is" -> " Paris": entity, relation and attribute per prompt (one relation per batch).

    Chapter 06: open problems (the toy-lm organism's facts)."""

    relation: str
    prompts: list[str]
    entity: list[str]
    attribute: list[str]
    answers: list[str]  # " " + attribute
    tokens: Int[Tensor, "batch pos"]
    entity_pos: Int[Tensor, " batch"]
    answer_token: Int[Tensor, " batch"]


def facts(batch: int, relation: str = "capital", seed: int | torch.Generator = 0) -> FactBatch:
    """Entity -> attribute prompts for one relation ("capital" or "language"), entities drawn with replacement.

    Chapter 06: open problems (the toy-lm organism's facts)."""
    expect_int_at_least(batch, "batch")
    expect_choice(relation, list(FACTS), "relation")
    rng = python_rng(seed)
    template, table = FACTS[relation]
    ents = [rng.choice(sorted(table)) for _ in range(batch)]
    prompts = [template.format(E=e) for e in ents]
    attrs = [table[e] for e in ents]
    epos = 1 + split_words(template.format(E="@")).index("@")
    return FactBatch(
        relation=relation,
        prompts=prompts,
        entity=ents,
        attribute=attrs,
        answers=[" " + a for a in attrs],
        tokens=stack_rows([encode(p) for p in prompts]),
        entity_pos=torch.full((batch,), epos),
        answer_token=torch.tensor([WORD_TO_ID[a] for a in attrs]),
    )
