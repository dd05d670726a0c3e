"""Indirect-object identification prompts (chapter 04): "When Mary and John went to the store, John gave
a drink to" -> " Mary", with corrupted twins and the positions of every name."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import torch
from jaxtyping import Int
from torch import Tensor

from ..validation import expect_choice, expect_int_at_least
from .seeding import python_rng
from .words import IOI_TEMPLATES, NAMES, OBJECTS, PLACES, WORD_TO_ID, encode, split_words, stack_rows


@dataclass
class IOIBatch:
    """Indirect-object prompts sharing one template (so token positions align across the batch).

    Positions index `tokens` (organism tokenizer, BOS at 0). `answers` carry a leading space, as GPT-2
    tokens do (" Mary"). The corrupt prompts have the same template and token length.
    Chapter 04: activation patching.
    """

    template: int
    prompts: list[str]
    io_name: list[str]
    s_name: list[str]
    order: list[str]  # "ABBA" (IO first) or "BABA" (S first)
    tokens: Int[Tensor, "batch pos"]
    io_token: Int[Tensor, " batch"]
    s_token: Int[Tensor, " batch"]
    io_pos: Int[Tensor, " batch"]
    s1_pos: Int[Tensor, " batch"]
    s2_pos: Int[Tensor, " batch"]
    end_pos: Int[Tensor, " batch"]
    corruption: str
    corrupt_prompts: list[str]
    corrupt_tokens: Int[Tensor, "batch pos"]
    answers: list[str] = field(default_factory=list)  # " " + io_name
    wrong_answers: list[str] = field(default_factory=list)  # " " + s_name
    third: str | None = None  # None, or where the third name C stands next to S2: "after" (S and C) / "before"
    c_name: list[str] = field(default_factory=list)
    c_token: Int[Tensor, " batch"] | None = None
    c_pos: Int[Tensor, " batch"] | None = None


def _name_pair_split(a: str, b: str) -> str:
    """Deterministic train/test split of unordered name pairs (about one pair in five is held out).

    Chapter 04: activation patching."""
    i, j = sorted((NAMES.index(a), NAMES.index(b)))
    return "test" if (i * 7 + j * 3) % 5 == 0 else "train"


def _fill(template: str, a: str, b: str, s: str, place: str, obj: str, c: str = "") -> str:
    """The template with its slots filled. Chapter 04: activation patching."""
    return template.format(A=a, B=b, S=s, P=place, O=obj, C=c)


def third_name_template(template: str, third: str) -> str:
    """The template with a third person C next to the repeated name: "{S} gave" -> "{S} and {C} gave"
    (third="after") or "{C} and {S} gave" (third="before"). The answer is still IO; C is a distractor
    that is neither repeated nor in the first clause, so neither "the most recent name" nor "the name
    after the comma" identifies S: only the repetition does.
    Chapter 04: activation patching."""
    expect_choice(third, ["after", "before"], "third")
    return template.replace("{S} ", "{S} and {C} " if third == "after" else "{C} and {S} ", 1)


def ioi(
    batch: int,
    seed: int | torch.Generator = 0,
    template: int | None = None,
    order: str = "mixed",
    split: str = "all",
    corruption: str = "abc",
    third: str | None = None,
) -> IOIBatch:
    """Indirect-object prompts: "When Mary and John went to the store, John gave a drink to" -> " Mary".

    template: index into IOI_TEMPLATES (None: drawn from the seed; one template per batch).
    order: "ABBA" (IO named first), "BABA" (S named first) or "mixed" (per row).
    split: "train", "test" or "all": held-out name pairs ("test") never appear in the "train" split.
    corruption: "abc" replaces the three names with three other names (no IO information left);
    "flip" replaces S2 by the IO name (the right answer becomes S).
    third: None (the classic prompts), "after" or "before": a third name C stands after or before S2
    ("..., James and Tom gave a letter to"); see third_name_template. "abc" replaces C too.
    Chapter 04: activation patching.
    """
    expect_int_at_least(batch, "batch")
    expect_choice(order, ["ABBA", "BABA", "mixed"], "order")
    expect_choice(split, ["train", "test", "all"], "split")
    expect_choice(corruption, ["abc", "flip"], "corruption")
    if third is not None:
        expect_choice(third, ["after", "before"], "third")
    rng = python_rng(seed)
    t = rng.randrange(len(IOI_TEMPLATES)) if template is None else template
    expect_choice(t, range(len(IOI_TEMPLATES)), "template")
    text = IOI_TEMPLATES[t] if third is None else third_name_template(IOI_TEMPLATES[t], third)
    rows: list[_IOIRow] = []
    while len(rows) < batch:
        row = _draw_row(rng, text, order, split, corruption, third)
        if row is not None:
            rows.append(row)
    return _ioi_batch(t, text, rows, corruption, third)


@dataclass
class _IOIRow:
    """One drawn prompt and its corrupted twin.

    Chapter 04: activation patching."""

    prompt: str
    corrupt: str
    io: str
    s: str
    order: str
    c: str


def _draw_row(
    rng: random.Random, text: str, order: str, split: str, corruption: str, third: str | None
) -> _IOIRow | None:
    """Draw one row from `rng` (None when the name pair belongs to the other split). The order of the
    draws is part of the data: the same seed must keep giving the same prompts.
    Chapter 04: activation patching."""
    io, s = rng.sample(NAMES, 2)
    if split != "all" and _name_pair_split(io, s) != split:
        return None
    o = rng.choice(["ABBA", "BABA"]) if order == "mixed" else order
    a, b = (io, s) if o == "ABBA" else (s, io)
    place, obj = rng.choice(PLACES), rng.choice(OBJECTS)
    c = rng.choice([n for n in NAMES if n not in (io, s)]) if third else ""
    prompt = _fill(text, a, b, s, place, obj, c)
    if corruption == "abc":
        fresh = rng.sample([n for n in NAMES if n not in (io, s, c)], 4 if third else 3)
        corrupt = _fill(text, fresh[0], fresh[1], fresh[2], place, obj, fresh[3] if third else "")
    else:
        corrupt = _fill(text, a, b, io, place, obj, c)
    return _IOIRow(prompt=prompt, corrupt=corrupt, io=io, s=s, order=o, c=c)


def _slot_positions(text: str) -> dict[str, int]:
    """Token position (BOS at 0) of each name slot ("A", "B", "S", "C") of a template, found by filling
    the template with markers. Chapter 04: activation patching."""
    slots = split_words(text.format(A="@A", B="@B", S="@S", C="@C", P="place", O="obj"))
    marks = [i for i, w in enumerate(slots) if w == "@"]  # the "@" before each slot name
    # +1 for BOS, -k for the k "@" tokens before this one
    return {slots[i + 1]: 1 + i - k for k, i in enumerate(marks)}


def _ioi_batch(t: int, text: str, rows: list[_IOIRow], corruption: str, third: str | None) -> IOIBatch:
    """Tokens, answer tokens and name positions of the drawn rows. Chapter 04: activation patching."""
    batch = len(rows)
    tokens = stack_rows([encode(r.prompt) for r in rows])
    slot_pos = _slot_positions(text)
    a_pos, b_pos = slot_pos["A"], slot_pos["B"]
    c_names = [r.c for r in rows]
    return IOIBatch(
        template=t,
        prompts=[r.prompt for r in rows],
        io_name=[r.io for r in rows],
        s_name=[r.s for r in rows],
        order=[r.order for r in rows],
        tokens=tokens,
        io_token=torch.tensor([WORD_TO_ID[r.io] for r in rows]),
        s_token=torch.tensor([WORD_TO_ID[r.s] for r in rows]),
        io_pos=torch.tensor([a_pos if r.order == "ABBA" else b_pos for r in rows]),
        s1_pos=torch.tensor([b_pos if r.order == "ABBA" else a_pos for r in rows]),
        s2_pos=torch.full((batch,), slot_pos["S"]),
        end_pos=torch.full((batch,), tokens.shape[1] - 1),
        corruption=corruption,
        corrupt_prompts=[r.corrupt for r in rows],
        corrupt_tokens=stack_rows([encode(r.corrupt) for r in rows]),
        answers=[" " + r.io for r in rows],
        wrong_answers=[" " + r.s for r in rows],
        third=third,
        c_name=c_names if third else [],
        c_token=torch.tensor([WORD_TO_ID[x] for x in c_names]) if third else None,
        c_pos=torch.full((batch,), slot_pos["C"]) if third else None,
    )
