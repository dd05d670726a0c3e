"""Recipes for the shipped organisms: architecture, vocabulary, training data and settings, and the
report that measures each one (named, not imported: see the package docstring for the layering)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from .. import tasks
from ..tokenizer import english_vocab, syllable_vocab
from ..training import train_lm
from .planted import PLANTED_CONFIG, set_planted_weights


@dataclass
class Recipe:
    """How an organism is built and trained; `measure` names its report in `organisms.reports.MEASURES`."""

    config: dict  # TransformerBridgeConfig fields
    vocab: Callable[[], list[str]]
    train: dict  # train_lm arguments and data settings
    fit: Callable  # fit(model, recipe) -> dict of training notes
    measure: str  # the report that measures it: organisms.reports.MEASURES[measure](model) -> properties


# Segments of 6-14 tokens copied 8-36 positions later (random filler in between), starting anywhere in the
# first 13 positions: the distance to look back changes from row to row, so only matching tokens works.
INDUCTION_DATA = {"seq_len": 64, "period": (8, 36), "offset": (0, 13), "length": (6, 14)}
# (period range, length range or None for contiguous) never seen in training: shorter and longer periods.
UNSEEN_PERIODS = [((3, 5), None), ((40, 48), (6, 8))]


def induction_batch(batch: int, d_vocab: int, seed, **overrides) -> tasks.RepeatedSegments:
    """A batch of the induction organism's training distribution (keys of INDUCTION_DATA can be overridden)."""
    d = {**INDUCTION_DATA, **overrides}
    return tasks.repeated_segments(batch, d["seq_len"], d_vocab, d["period"], d["offset"], seed=seed,
                                   length=d["length"])  # fmt: skip


def unseen_period_batch(batch: int, d_vocab: int, periods, length, seed) -> tasks.RepeatedSegments:
    seq = INDUCTION_DATA["seq_len"]
    longest = periods[1] + (periods[1] if length is None else length[1])
    return tasks.repeated_segments(batch, seq, d_vocab, periods, (0, seq - 1 - longest), seed=seed, length=length)


def _fit_induction(model, r: Recipe) -> dict:
    t = r.train
    gen = torch.Generator().manual_seed(t["seed"])
    vocab = model.cfg.d_vocab

    masks = {}

    def batch_fn(_step: int) -> Tensor:
        data = induction_batch(t["batch"], vocab, gen)
        masks["mask"] = data.repeated | data.first
        return data.tokens

    # The loss counts the copies and, as a baseline the model must keep calibrated, the first occurrence;
    # the unpredictable filler elsewhere would only add gradient noise.
    losses = train_lm(model, batch_fn, t["steps"], lr=t["lr"], weight_decay=t["weight_decay"], warmup=t["warmup"],
                      loss_mask_fn=lambda _x: masks["mask"], seed=t["seed"], desc="induction-2l",
                      num_threads=t.get("num_threads"))  # fmt: skip
    return {"final_loss": round(sum(losses[-50:]) / 50, 4)}


def _fit_corpus(model, r: Recipe) -> dict:
    """Next-token loss on the English-like corpus (`r.train["mix"]`, default tasks.CORPUS_MIX)."""
    t = r.train
    gen = torch.Generator().manual_seed(t["seed"])

    def batch_fn(_step: int) -> Tensor:
        return tasks.corpus_tokens(t["batch"], model.cfg.n_ctx, seed=gen, mix=t.get("mix"))

    losses = train_lm(model, batch_fn, t["steps"], lr=t["lr"], weight_decay=t["weight_decay"], warmup=t["warmup"],
                      loss_mask_fn=lambda x: x[:, 1:] != tasks.PAD_ID, seed=t["seed"], desc="corpus",
                      num_threads=t.get("num_threads"))  # fmt: skip
    return {"final_loss": round(sum(losses[-50:]) / 50, 4)}


RECIPES: dict[str, Recipe] = {
    "induction-2l": Recipe(
        config=dict(
            n_layers=2,
            d_model=64,
            n_heads=2,
            d_head=32,
            d_vocab=101,
            n_ctx=64,
            attn_only=True,
            normalization_type="LN",
            act_fn="gelu",
            seed=0,
        ),  # fmt: skip
        vocab=lambda: syllable_vocab(101),
        train=dict(steps=2000, batch=48, lr=2e-3, weight_decay=0.01, warmup=100, seed=0, num_threads=1),
        fit=_fit_induction,
        measure="induction-2l",
    ),
    "toy-lm": Recipe(
        config=dict(
            n_layers=2,
            d_model=64,
            n_heads=4,
            d_head=16,
            d_mlp=256,
            d_vocab=len(tasks.VOCAB),
            n_ctx=32,
            attn_only=False,
            normalization_type="LN",
            act_fn="gelu",
            seed=0,
        ),  # fmt: skip
        vocab=english_vocab,
        train=dict(steps=1200, batch=64, lr=2e-3, weight_decay=0.01, warmup=100, seed=0, num_threads=1),
        fit=_fit_corpus,
        measure="toy-lm",
    ),
    # IOI with a real head-to-head circuit. In toy-lm's classic prompts the repeated name is always the most
    # recent one, and toy-lm learned "reject the name just mentioned". Here most IOI documents put a third
    # name C before or after S2 ("..., Henry and Simon gave a bag to"), so only the repetition identifies S.
    "ioi-3l": Recipe(
        config=dict(
            n_layers=3,
            d_model=64,
            n_heads=4,
            d_head=16,
            d_vocab=len(tasks.VOCAB),
            n_ctx=32,
            attn_only=True,
            normalization_type="LN",
            act_fn="gelu",
            seed=0,
        ),  # fmt: skip
        vocab=english_vocab,
        train=dict(
            steps=3000,
            batch=64,
            lr=2e-3,
            weight_decay=0.01,
            warmup=100,
            seed=0,
            num_threads=1,
            mix={"ioi": 0.21, "ioi_third": 0.49, "filler": 0.3},
        ),  # fmt: skip
        fit=_fit_corpus,
        measure="ioi-3l",
    ),
}


# The minimal-circuits problem (chapter 07): the smallest attention-only model trained on ioi-3l's data
# that solves IOI. One layer with one head does not; one layer with two heads does, so no head can read
# another's output: whatever it does, it does without the duplicate-token -> S-inhibition chain.
RECIPES["ioi-1l"] = Recipe(
    config={**RECIPES["ioi-3l"].config, "n_layers": 1, "n_heads": 2, "d_head": 32},
    vocab=english_vocab,
    train=dict(RECIPES["ioi-3l"].train),
    fit=_fit_corpus,
    measure="ioi-1l",
)


def _fit_planted(model, r: Recipe) -> dict:
    """No training: the planted circuit's weights are set by hand (chapter 07, discovery.planted)."""
    return set_planted_weights(model, r.train["seed"])


RECIPES["planted-2l"] = Recipe(
    config=dict(PLANTED_CONFIG),
    vocab=lambda: syllable_vocab(PLANTED_CONFIG["d_vocab"]),
    train=dict(steps=0, seed=0, mix={"planted_induction": 1.0}),
    fit=_fit_planted,
    measure="planted-2l",
)


def bridge_config(config: dict, device):
    from transformer_lens.config import TransformerBridgeConfig

    return TransformerBridgeConfig(**config, device=str(device))


def build(name: str | Recipe, device=None, tokenizer=None):
    """A freshly initialised (untrained) model with `name`'s architecture (or a Recipe's), seeded by its recipe."""
    from transformer_lens.model_bridge import TransformerBridge

    r = name if isinstance(name, Recipe) else RECIPES[name]
    torch.manual_seed(r.config.get("seed", 0))
    model = TransformerBridge.boot_native(  # pyright: ignore[reportAttributeAccessIssue]
        bridge_config(r.config, device or "cpu"), tokenizer=tokenizer
    )
    return model.eval()
