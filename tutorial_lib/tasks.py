"""Seeded synthetic tasks with labels: repeated segments (induction) and a small English-like corpus.

Every generator takes `seed` (an int or a torch.Generator); the same seed gives the same data.
The English-like tasks use real English words that are single GPT-2 tokens with a leading space
(" Mary", " Paris"), so the prompts also work with GPT-2. Under the organism tokenizer
(`tutorial_lib.tokenizer`) every word and punctuation mark is one token, and position 0 is BOS.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

import torch
from jaxtyping import Bool, Int
from torch import Tensor

from .validation import TutorialInputError, expect_choice

# ----------------------------------------------------------------------------------------------
# Seeds


def _generator(seed: int | torch.Generator) -> torch.Generator:
    if isinstance(seed, torch.Generator):
        return seed
    if not isinstance(seed, int):
        raise TutorialInputError(f"seed must be an int or a torch.Generator, got {type(seed).__name__}.")
    return torch.Generator().manual_seed(seed)


def _rng(seed: int | torch.Generator) -> random.Random:
    """A Python RNG for the text generators, derived from an int seed or a torch.Generator."""
    if isinstance(seed, torch.Generator):
        return random.Random(int(torch.randint(0, 2**31 - 1, (1,), generator=seed)))
    if not isinstance(seed, int):
        raise TutorialInputError(f"seed must be an int or a torch.Generator, got {type(seed).__name__}.")
    return random.Random(seed)


def _range(value: int | tuple[int, int], name: str) -> tuple[int, int]:
    lo, hi = (value, value) if isinstance(value, int) else tuple(value)
    if not (isinstance(lo, int) and isinstance(hi, int)) or lo > hi or lo < 0:
        raise TutorialInputError(f"{name} must be an int >= 0 or an inclusive range (low, high), got {value!r}.")
    return lo, hi


# ----------------------------------------------------------------------------------------------
# (a) Repeated segments for induction


@dataclass
class RepeatedSegments:
    """Random tokens with one segment repeated once: [BOS, filler, seg, seg, filler]."""

    tokens: Int[Tensor, "batch pos"]  # position 0 is BOS
    period: Int[Tensor, " batch"]  # distance between the two occurrences (= segment length unless `length` is set)
    start: Int[Tensor, " batch"]  # position where the first occurrence begins
    repeated: Bool[Tensor, "batch pos"]  # pos and pos+1 inside the second occurrence: tokens[pos+1] is a copy
    first: Bool[Tensor, "batch pos"]  # the matching positions inside the first occurrence (repeated shifted back)


def _random_tokens(shape: tuple[int, ...], d_vocab: int, bos: int, gen: torch.Generator) -> Tensor:
    """Uniform tokens in [0, d_vocab) that never equal `bos`."""
    x = torch.randint(0, d_vocab - 1, shape, generator=gen)
    return x + (x >= bos).long()


def repeated_segments(
    batch: int,
    seq_len: int,
    d_vocab: int,
    period: int | tuple[int, int],
    offset: int | tuple[int, int] = 0,
    bos: int = 0,
    seed: int | torch.Generator = 0,
    length: int | tuple[int, int] | None = None,
) -> RepeatedSegments:
    """Each row copies a random segment `period` positions later; the first copy starts at 1 + `offset`.

    `period`, `offset` and `length` (the segment's length; None: equal to the period, so the copy follows
    right after the original) are ints or inclusive ranges drawn per row, so no fixed position or fixed
    offset predicts the copies: only looking back to the earlier occurrence does. A length shorter than
    the period leaves random filler between the two occurrences.
    """
    p_lo, p_hi = _range(period, "period")
    o_lo, o_hi = _range(offset, "offset")
    l_lo, l_hi = (p_lo, p_hi) if length is None else _range(length, "length")
    if p_lo < 2 or l_lo < 2:
        raise TutorialInputError(f"period and length must be at least 2, got {period!r} and {length!r}.")
    if 1 + o_hi + p_hi + min(l_hi, p_hi) > seq_len:
        raise TutorialInputError(
            f"seq_len={seq_len} is too short: BOS + offset up to {o_hi} + period up to {p_hi} + a copy of up to "
            f"{min(l_hi, p_hi)} tokens need {1 + o_hi + p_hi + min(l_hi, p_hi)}."
        )
    if d_vocab < 3 or not 0 <= bos < d_vocab:
        raise TutorialInputError(f"need d_vocab >= 3 and 0 <= bos < d_vocab, got d_vocab={d_vocab}, bos={bos}.")
    gen = _generator(seed)
    p = torch.randint(p_lo, p_hi + 1, (batch,), generator=gen)
    start = 1 + torch.randint(o_lo, o_hi + 1, (batch,), generator=gen)
    n = p if length is None else torch.minimum(torch.randint(l_lo, l_hi + 1, (batch,), generator=gen), p)
    tokens = _random_tokens((batch, seq_len), d_vocab, bos, gen)
    tokens[:, 0] = bos
    pos = torch.arange(seq_len)[None, :]
    s2 = (start + p)[:, None]
    second = (pos >= s2) & (pos < s2 + n[:, None])
    source = (pos - p[:, None]).clamp(min=0)
    tokens = torch.where(second, tokens.gather(1, source), tokens)
    repeated = (pos >= s2) & (pos < s2 + n[:, None] - 1)
    first = (pos >= start[:, None]) & (pos < (start + n - 1)[:, None])
    return RepeatedSegments(tokens=tokens, period=p, start=start, repeated=repeated, first=first)


def repeated_tokens(
    batch: int, half_len: int, d_vocab: int, bos: int = 0, seed: int | torch.Generator = 0
) -> Int[Tensor, "batch 1+2*half_len"]:
    """The classic head-detector input [BOS, x, x] with x uniform random tokens of length `half_len`."""
    if half_len < 1:
        raise TutorialInputError(f"half_len must be at least 1, got {half_len}.")
    x = _random_tokens((batch, half_len), d_vocab, bos, _generator(seed))
    return torch.cat([torch.full((batch, 1), bos), x, x], dim=1)


# ----------------------------------------------------------------------------------------------
# (b) An English-like corpus. Word lists: every word is a single GPT-2 token with a leading space.

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
    """The organism tokenizer's split: words and single punctuation marks (no spaces kept)."""
    return _WORD_RE.findall(text)


def _template_words() -> set[str]:
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
    """Token ids of `text` under the organism tokenizer (pure Python; tests check it equals the HF tokenizer)."""
    ids = [WORD_TO_ID.get(w, UNK_ID) for w in split_words(text)]
    return [BOS_ID] + ids if bos else ids


def _stack(rows: list[list[int]]) -> Tensor:
    lengths = {len(r) for r in rows}
    if len(lengths) != 1:
        raise AssertionError(f"rows of unequal length {sorted(lengths)}")
    return torch.tensor(rows, dtype=torch.long)


# ---- indirect object identification


@dataclass
class IOIBatch:
    """Indirect-object prompts sharing one template (so token positions align across the batch).

    Positions index `tokens` (organism tokenizer, BOS at 0). `answers` carry a leading space, as GPT-2
    tokens do (" Mary"). The corrupt prompts have the same template and token length.
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
    """Deterministic train/test split of unordered name pairs (about one pair in five is held out)."""
    i, j = sorted((NAMES.index(a), NAMES.index(b)))
    return "test" if (i * 7 + j * 3) % 5 == 0 else "train"


def _fill(template: str, a: str, b: str, s: str, place: str, obj: str, c: str = "") -> str:
    return template.format(A=a, B=b, S=s, P=place, O=obj, C=c)


def third_name_template(template: str, third: str) -> str:
    """The template with a third person C next to the repeated name: "{S} gave" -> "{S} and {C} gave"
    (third="after") or "{C} and {S} gave" (third="before"). The answer is still IO; C is a distractor
    that is neither repeated nor in the first clause, so neither "the most recent name" nor "the name
    after the comma" identifies S: only the repetition does."""
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
    """
    expect_choice(order, ["ABBA", "BABA", "mixed"], "order")
    expect_choice(split, ["train", "test", "all"], "split")
    expect_choice(corruption, ["abc", "flip"], "corruption")
    if third is not None:
        expect_choice(third, ["after", "before"], "third")
    rng = _rng(seed)
    t = rng.randrange(len(IOI_TEMPLATES)) if template is None else template
    expect_choice(t, range(len(IOI_TEMPLATES)), "template")
    text = IOI_TEMPLATES[t] if third is None else third_name_template(IOI_TEMPLATES[t], third)
    rows: dict[str, list] = {k: [] for k in ["prompts", "io", "s", "order", "corrupt", "c"]}
    while len(rows["prompts"]) < batch:
        io, s = rng.sample(NAMES, 2)
        if split != "all" and _name_pair_split(io, s) != split:
            continue
        o = rng.choice(["ABBA", "BABA"]) if order == "mixed" else order
        a, b = (io, s) if o == "ABBA" else (s, io)
        place, obj = rng.choice(PLACES), rng.choice(OBJECTS)
        c = rng.choice([n for n in NAMES if n not in (io, s)]) if third else ""
        rows["prompts"].append(_fill(text, a, b, s, place, obj, c))
        if corruption == "abc":
            fresh = rng.sample([n for n in NAMES if n not in (io, s, c)], 4 if third else 3)
            rows["corrupt"].append(_fill(text, *fresh[:3], place, obj, *fresh[3:]))
        else:
            rows["corrupt"].append(_fill(text, a, b, io, place, obj, c))
        rows["c"].append(c)
        rows["io"].append(io)
        rows["s"].append(s)
        rows["order"].append(o)
    tokens = _stack([encode(p) for p in rows["prompts"]])
    # Positions: the template's name slots, found by filling the template with markers.
    slots = split_words(text.format(A="@A", B="@B", S="@S", C="@C", P="place", O="obj"))
    marks = [i for i, w in enumerate(slots) if w == "@"]  # the "@" before each slot name
    slot_pos = {}
    for k, i in enumerate(marks):
        slot_pos[slots[i + 1]] = 1 + i - k  # +1 for BOS, -k for the k "@" tokens before this one
    a_pos, b_pos, s2 = slot_pos["A"], slot_pos["B"], slot_pos["S"]
    io_pos = torch.tensor([a_pos if o == "ABBA" else b_pos for o in rows["order"]])
    s1_pos = torch.tensor([b_pos if o == "ABBA" else a_pos for o in rows["order"]])
    n = tokens.shape[1]
    return IOIBatch(
        template=t,
        prompts=rows["prompts"],
        io_name=rows["io"],
        s_name=rows["s"],
        order=rows["order"],
        tokens=tokens,
        io_token=torch.tensor([WORD_TO_ID[x] for x in rows["io"]]),
        s_token=torch.tensor([WORD_TO_ID[x] for x in rows["s"]]),
        io_pos=io_pos,
        s1_pos=s1_pos,
        s2_pos=torch.full((batch,), s2),
        end_pos=torch.full((batch,), n - 1),
        corruption=corruption,
        corrupt_prompts=rows["corrupt"],
        corrupt_tokens=_stack([encode(p) for p in rows["corrupt"]]),
        answers=[" " + x for x in rows["io"]],
        wrong_answers=[" " + x for x in rows["s"]],
        third=third,
        c_name=rows["c"] if third else [],
        c_token=torch.tensor([WORD_TO_ID[x] for x in rows["c"]]) if third else None,
        c_pos=torch.full((batch,), slot_pos["C"]) if third else None,
    )


# ---- nested brackets


@dataclass
class BracketBatch:
    """Word sequences with nested round brackets; depth[b, pos] = brackets open after token pos."""

    texts: list[str]
    tokens: Int[Tensor, "batch pos"]
    depth: Int[Tensor, "batch pos"]  # 0 at BOS; "(" raises it at its own position, ")" lowers it
    can_close: Bool[Tensor, "batch pos"]  # depth > 0: a ")" may come next


def _bracket_words(rng: random.Random, n_words: int, max_depth: int) -> list[str]:
    """A balanced sequence of `n_words` tokens (ending in "."): brackets open/close at random, forced closed at the end."""
    out, depth = [], 0
    body = n_words - 1
    while len(out) < body:
        left = body - len(out)
        if depth >= left:  # only closes fit
            out.append(CLOSE)
            depth -= 1
            continue
        r = rng.random()
        if depth < max_depth and depth + 2 <= left and r < 0.25:
            out.append(OPEN)
            depth += 1
        elif depth > 0 and r < 0.55:
            out.append(CLOSE)
            depth -= 1
        else:
            out.append(rng.choice(NOUNS + ADJECTIVES))
    return out + ["."]


def bracket_depth(words: list[str]) -> list[int]:
    """Depth after each word (reference counter)."""
    d, out = 0, []
    for w in words:
        d += (w == OPEN) - (w == CLOSE)
        out.append(d)
    return out


def brackets(batch: int, n_words: int = 24, max_depth: int = 4, seed: int | torch.Generator = 0) -> BracketBatch:
    """Nested-bracket sequences of `n_words` tokens after BOS, e.g. "( cat ( red ) tree ) dog .", with depths."""
    if n_words < 3:
        raise TutorialInputError(f"n_words must be at least 3, got {n_words}.")
    rng = _rng(seed)
    words = [_bracket_words(rng, n_words, max_depth) for _ in range(batch)]
    texts = [" ".join(w) for w in words]
    tokens = _stack([encode(t) for t in texts])
    depth = torch.tensor([[0] + bracket_depth(w) for w in words])
    return BracketBatch(texts=texts, tokens=tokens, depth=depth, can_close=depth > 0)


# ---- facts


@dataclass
class FactBatch:
    """ "The capital of France is" -> " Paris": entity, relation and attribute per prompt (one relation per batch)."""

    relation: str
    prompts: list[str]
    entity: list[str]
    attribute: list[str]
    answers: list[str]  # " " + attribute
    tokens: Int[Tensor, "batch pos"]
    entity_pos: Int[Tensor, " batch"]
    answer_token: Int[Tensor, " batch"]


def facts(batch: int, relation: str = "capital", seed: int | torch.Generator = 0) -> FactBatch:
    """Entity -> attribute prompts for one relation ("capital" or "language"), entities drawn with replacement."""
    expect_choice(relation, list(FACTS), "relation")
    rng = _rng(seed)
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
        tokens=_stack([encode(p) for p in prompts]),
        entity_pos=torch.full((batch,), epos),
        answer_token=torch.tensor([WORD_TO_ID[a] for a in attrs]),
    )


# ---- filler text and the training corpus


def filler(rng: random.Random, n_sentences: int = 2) -> str:
    """Simple sentences from a tiny grammar: "the old dog saw the river . Mary liked the book ."."""
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
    the "train" name pairs."""
    rng = _rng(seed)
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
    """`batch` corpus documents as token rows [BOS, doc, <pad>...] of length n_ctx (truncated if longer)."""
    rows = []
    for doc in corpus(batch, seed, mix):
        ids = encode(doc)[:n_ctx]
        rows.append(ids + [PAD_ID] * (n_ctx - len(ids)))
    return torch.tensor(rows, dtype=torch.long)
