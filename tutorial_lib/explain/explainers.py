"""A rule-based explainer (no network, no language model): it knows the labels the synthetic tasks
define at every token of organism text (the word, its type, the word before, bracket depth, a name
repeated from earlier) and explains a latent by the label that covers the contexts it was shown best,
net of how common that label is in the corpus. An explanation is then a predicate a scorer can apply
to any context, which is what detection and fuzzing scoring (Paulo et al. 2024) need.

Chapter 08: explaining latents automatically.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from ..tasks.words import (
    ADJECTIVES,
    CLOSE,
    FACTS,
    FILLER_WORDS,
    NAMES,
    NOUNS,
    OBJECTS,
    OPEN,
    PLACES,
    SPECIAL,
    VERBS,
    VOCAB,
)
from ..validation import TutorialInputError, expect_dtype, expect_ndim, expect_same_shape

__all__ = [
    "WORD_TYPES",
    "Explanation",
    "LabelTable",
    "explain_latent",
    "label_from_text",
    "lm_explanation",
    "token_labels",
]

WORD_TYPES: dict[str, list[str]] = {
    "a name": NAMES,
    "a place": PLACES,
    "an object": OBJECTS,
    "an adjective": ADJECTIVES,
    "a noun": NOUNS,
    "a verb": VERBS,
    "a filler word": FILLER_WORDS,
    "a country": sorted(FACTS["capital"][1]),
    "a capital city": sorted(FACTS["capital"][1].values()),
    "a language": sorted(FACTS["language"][1].values()),
}


@dataclass
class LabelTable:
    """Every label's value at every token: values[i] is label i's [batch, pos] truth, texts[i] its words,
    base_rate[i] its share of the corpus's (unpadded) positions. Chapter 08: explaining latents automatically."""

    texts: list[str]
    values: Bool[Tensor, "label batch pos"]
    base_rate: Float[Tensor, " label"]

    def index(self, text: str) -> int:
        """The row of the label with these words. Chapter 08: explaining latents automatically."""
        if text not in self.texts:
            raise TutorialInputError(f"no label reads {text!r}; labels look like {self.texts[:3]}.")
        return self.texts.index(text)


@dataclass
class Explanation:
    """An explanation: its words and the label (a row of the LabelTable) that makes it a predicate.

    Chapter 08: explaining latents automatically."""

    text: str
    label: int


def _is(tokens: Tensor, words: list[str]) -> Tensor:
    return torch.isin(tokens, torch.tensor([VOCAB.index(w) for w in words], device=tokens.device))


def _after(values: Tensor) -> Tensor:
    out = torch.zeros_like(values)
    out[..., 1:] = values[..., :-1]
    return out


def token_labels(tokens: Int[Tensor, "batch pos"], mask: Bool[Tensor, "batch pos"] | None = None) -> LabelTable:
    """The labels the synthetic tasks know, at every token of organism-tokenised text: each word, each word
    type (WORD_TYPES), the same for the token before, bracket depth >= 1, 2, 3, and a name seen earlier in
    the row (IOI's repeated subject). Base rates count the positions `mask` keeps (default: all).
    Chapter 08: explaining latents automatically."""
    tokens = expect_dtype(expect_ndim(tokens, 2, "tokens", "[batch, pos]"), "int", "tokens")
    if mask is not None:
        expect_same_shape(tokens, expect_dtype(mask, "bool", "mask"), "tokens and mask")
    if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) >= len(VOCAB)):
        raise TutorialInputError(f"tokens must be organism token ids in [0, {len(VOCAB) - 1}] (tasks.VOCAB).")
    words = [w for w in VOCAB if w not in SPECIAL]
    texts, values = [], []
    for w in words:
        texts.append(f"the word '{w}'")
        values.append(tokens == VOCAB.index(w))
    for kind, members in WORD_TYPES.items():
        texts.append(f"{kind}")
        values.append(_is(tokens, members))
    for text, v in list(zip(texts, values)):
        texts.append(f"the word after {text}")
        values.append(_after(v))
    depth = ((tokens == VOCAB.index(OPEN)).long() - (tokens == VOCAB.index(CLOSE)).long()).cumsum(-1)
    for d in (1, 2, 3):
        texts.append(f"inside brackets at depth >= {d}")
        values.append(depth >= d)
    name = _is(tokens, NAMES)
    same = (tokens[:, :, None] == tokens[:, None, :]).tril(-1).any(-1)
    texts.append("a name seen earlier in the text")
    values.append(name & same)
    stacked = torch.stack(values)
    base = stacked.flatten(1).float().mean(1) if mask is None else stacked[:, mask].float().mean(1)
    return LabelTable(texts=texts, values=stacked, base_rate=base)


def explain_latent(labels: LabelTable, where: Int[Tensor, "k 2"]) -> Explanation:
    """Exercise 08.9. The label true at the largest share of the shown contexts `where` (row, position),
    minus its share of the whole corpus (`labels.base_rate`): a label true everywhere explains nothing.
    Ties go to the first label. Chapter 08: explaining latents automatically."""
    if not isinstance(labels, LabelTable):
        raise TutorialInputError(
            f"labels must be a LabelTable (explain.token_labels(tokens)), got {type(labels).__name__}."
        )
    where = expect_dtype(expect_ndim(where, 2, "where", "[k, 2]: (row, position) pairs"), "int", "where")
    if len(where) == 0:
        raise TutorialInputError("where is empty: a latent that never fires has nothing to explain.")
    batch, pos = labels.values.shape[1:]
    if not (bool((where[:, 0] < batch).all()) and bool((where[:, 1] < pos).all()) and bool((where >= 0).all())):
        raise TutorialInputError(
            f"where's (row, position) pairs must lie inside the labels' [batch, pos] = {[batch, pos]}."
        )
    shown = labels.values[:, where[:, 0], where[:, 1]].float().mean(1)
    best = int((shown - labels.base_rate).argmax())
    return Explanation(text=labels.texts[best], label=best)


_PROMPT = (
    "Each line is a text snippet with one word marked [[like this]]. In at most eight words, what do the marked "
    "words have in common?\n"
)


@torch.no_grad()
def lm_explanation(model, contexts: list[str], max_new_tokens: int = 16) -> str:
    """An explanation written by an instruction-tuned language model (SmolLM2-135M-Instruct, offline, with
    TUTORIAL_MODEL=smollm2-135m) from context texts (contexts.context_text), greedy decoding. The model's
    tokenizer must have a chat template. Chapter 08: explaining latents automatically."""
    tokenizer = getattr(model, "tokenizer", None)
    if tokenizer is None or not getattr(tokenizer, "chat_template", None):
        raise TutorialInputError("model must be an instruction-tuned language model with a chat template "
                                 "(organisms.load('smollm2-135m')), not an organism.")  # fmt: skip
    if not contexts or not all(isinstance(c, str) for c in contexts):
        raise TutorialInputError(f"contexts must be a non-empty list of str (context_text(...)), got {contexts!r:.80}.")
    message = [{"role": "user", "content": _PROMPT + "\n".join(contexts)}]
    ids = tokenizer.apply_chat_template(message, add_generation_prompt=True, return_tensors="pt")
    ids = (ids if isinstance(ids, Tensor) else ids["input_ids"]).to(model.cfg.device)
    out = ids
    for _ in range(max_new_tokens):
        token = model(out)[0, -1].argmax()
        if int(token) == tokenizer.eos_token_id:
            break
        out = torch.cat([out, token.view(1, 1)], 1)
    return tokenizer.decode(out[0, ids.shape[1] :]).strip()


_KEYWORDS = {
    "a name": ("name", "names"), "a place": ("place", "places"), "an object": ("object", "objects"),
    "an adjective": ("adjective", "adjectives"), "a noun": ("noun", "nouns"), "a verb": ("verb", "verbs"),
    "a country": ("country", "countries"), "a capital city": ("capital", "capitals"),
    "a language": ("language", "languages"),
    "inside brackets at depth >= 1": ("bracket", "brackets", "parenthesis", "parentheses"),
}  # fmt: skip
_COMMON = {w.lower() for w in FILLER_WORDS} | {"to", "is", "at", "were", "the"}


def label_from_text(labels: LabelTable, text: str) -> int | None:
    """The label a free-text explanation names, for the rule-based scorer: the first word label whose
    (non-filler) word it contains, else the first word type or bracket it names ("names" -> "a name"), else
    None (the scorer then predicts "silent" everywhere). Chapter 08: explaining latents automatically."""
    if not isinstance(labels, LabelTable) or not isinstance(text, str):
        raise TutorialInputError("label_from_text takes a LabelTable and the explanation's text (str).")
    words = set(re.findall(r"\w+", text.lower()))
    for i, t in enumerate(labels.texts):
        word = re.fullmatch(r"the word '(\w+)'", t)
        if word and word.group(1).lower() not in _COMMON and word.group(1).lower() in words:
            return i
    for i, t in enumerate(labels.texts):
        if any(k in words for k in _KEYWORDS.get(t, ())):
            return i
    return None
