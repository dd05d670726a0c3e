"""A survey of induction heads in any model (chapter 05): the detector over every head, the in-context
loss drop, and whether mean-ablating the top induction heads hurts copying more than random heads do.
The measured figures of a real model are stored as data (`stored_survey`) so that the notebook can show
them without loading it, and a real-marked test re-measures them."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import torch
from torch import Tensor

from ..tasks import repeated_tokens
from ..validation import TutorialInputError, expect_int_at_least, expect_model
from .ablation import ablated_loss, repeat_losses
from .masks import resolve_batch
from .scores import head_scores

PROBE = {"batch": 4, "half_len": 40, "seed": 0}  # the stored surveys' probe: 4 rows of [BOS, x, x], |x| = 40
SURVEY = {"top": 3, "n_random": 3, "seed": 0}


def survey_probe(model) -> Tensor:
    """The stored surveys' probe for `model`: `PROBE` rows of [BOS, x, x] with the model's BOS token (0 if none).

    Chapter 05: induction heads."""
    expect_model(model)
    tokenizer = getattr(model, "tokenizer", None)
    bos = getattr(tokenizer, "bos_token_id", None)
    return repeated_tokens(PROBE["batch"], PROBE["half_len"], model.cfg.d_vocab, bos=0 if bos is None else bos,
                           seed=PROBE["seed"])  # fmt: skip


@torch.no_grad()
def induction_survey(model, tokens: Any, top: int = 3, n_random: int = 3, seed: int = 0) -> dict[str, Any]:
    """Score every head on repeated tokens and ablate the `top` induction heads together (mean ablation),
    against `n_random` sets of `top` random heads outside the ten best (fewer in a small model). Returns a JSON-ready dict:
    "top_heads" [[layer, head, score], ...] (the ten best), "loss_first", "loss_repeated" (clean),
    "ablate_top" and "ablate_random" ({"first", "repeated"}; the random ones averaged over the sets).

    Chapter 05: induction heads."""
    expect_int_at_least(top, "top")
    expect_int_at_least(n_random, "n_random")
    toks = resolve_batch(tokens, None)[0]
    ind = head_scores(model, tokens)["induction"].cpu()
    n_layers, n_heads = ind.shape
    order = ind.flatten().argsort(descending=True)
    best = [divmod(int(i), n_heads) for i in order[:10]]
    clean = repeat_losses(model(toks.to(next(model.parameters()).device)), tokens)
    top_heads = best[:top]
    gen = torch.Generator().manual_seed(seed)
    pool = [divmod(int(i), n_heads) for i in order[max(top, min(10, len(order) - top)) :]]
    if len(pool) < top:
        raise TutorialInputError(f"the model has too few heads ({n_layers * n_heads}) for random sets of {top}.")
    randoms = []
    for _ in range(n_random):
        pick = torch.randperm(len(pool), generator=gen)[:top]
        randoms.append(ablated_loss(model, tokens, [pool[int(i)] for i in pick], kind="mean"))
    return {
        "top_heads": [[layer, head, round(float(ind[layer, head]), 3)] for layer, head in best],
        "loss_first": round(clean["first"], 3),
        "loss_repeated": round(clean["repeated"], 3),
        "ablate_top": {k: round(v, 3) for k, v in ablated_loss(model, tokens, top_heads, kind="mean").items()},
        "ablate_random": {k: round(sum(r[k] for r in randoms) / n_random, 3) for k in ("first", "repeated")},
        "n_layers": n_layers,
        "n_heads": n_heads,
    }


def stored_survey(name: str) -> dict[str, Any]:
    """The `induction_survey` of a real model as measured offline and shipped with the library
    (tutorial_lib/data/measured/<name>-induction.json, with the command that measured it).

    Chapter 05: induction heads."""
    path = resources.files("tutorial_lib") / "data" / "measured" / f"{name}-induction.json"
    if not path.is_file():
        raise TutorialInputError(f"no stored induction survey for {name!r} (expected {path}).")
    return json.loads(path.read_text(encoding="utf-8"))
