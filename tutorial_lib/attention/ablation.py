"""Losses on the repeated segments with heads ablated: one at a time, several together, or all but a
circuit (its coverage) (chapter 05). The ablation itself is `hooks.head_ablation_hook`."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any, TypedDict

import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens.utilities import get_act_name  # pyright: ignore[reportPrivateImportUsage]

from ..hooks import ABLATIONS, head_ablation_hook, per_token_loss
from ..validation import (
    TutorialInputError,
    expect_choice,
    expect_int_at_least,
    expect_number,
    expect_tokens,
    model_device,
)
from .masks import resolve_batch


def token_losses(
    logits: Float[Tensor, "batch pos vocab"], tokens: Int[Tensor, "batch pos"]
) -> Float[Tensor, "batch pos"]:
    """Cross-entropy of predicting tokens[q + 1] at q; the last position (no target) gets 0.

    Chapter 05: induction heads."""
    return torch.nn.functional.pad(per_token_loss(logits, tokens), (0, 1))


def repeat_losses(
    logits: Float[Tensor, "batch pos vocab"], tokens: Any, period: int | Tensor | None = None
) -> dict[str, float]:
    """Mean loss on the first occurrence and on the repeated one: {"first", "repeated"}.

    Chapter 05: induction heads."""
    toks, _, first, repeated = resolve_batch(tokens, period)
    loss = token_losses(logits, toks.to(logits.device))
    return {
        "first": loss[first.to(loss.device)].mean().item(),
        "repeated": loss[repeated.to(loss.device)].mean().item(),
    }


class AblationLosses(TypedDict):
    """`ablation_losses`' result: per-head losses [n_layers, n_heads] and the clean model's. Chapter 05: induction heads."""

    first: Tensor
    repeated: Tensor
    clean_first: float
    clean_repeated: float


@torch.no_grad()
def ablation_losses(model, tokens: Any, kind: str = "zero", period: int | Tensor | None = None) -> AblationLosses:
    """Ablate one head at a time (hook_z set to zero, or to its mean over the batch at each position) and
    return the losses: {"first", "repeated"} [n_layers, n_heads], plus "clean_first", "clean_repeated".

    Chapter 05: induction heads."""
    expect_choice(kind, ABLATIONS, "kind")
    toks, p, first, repeated = resolve_batch(tokens, period)
    expect_tokens(toks, "tokens", model)
    device = model_device(model)
    toks, first, repeated = toks.to(device), first.to(device), repeated.to(device)
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    first_loss, repeated_loss = torch.zeros(n_layers, n_heads), torch.zeros(n_layers, n_heads)

    def losses(logits):
        loss = token_losses(logits, toks)
        return loss[first].mean().item(), loss[repeated].mean().item()

    clean_first, clean_repeated = losses(model(toks))
    for layer in range(n_layers):
        for head in range(n_heads):
            hook = head_ablation_hook(head, kind)
            logits = model.run_with_hooks(toks, fwd_hooks=[(get_act_name("z", layer), hook)])
            first_loss[layer, head], repeated_loss[layer, head] = map(torch.tensor, losses(logits))
    return {
        "first": first_loss,
        "repeated": repeated_loss,
        "clean_first": clean_first,
        "clean_repeated": clean_repeated,
    }


def _heads_list(model, heads: Any, name: str) -> list[tuple[int, int]]:
    """heads as a list of (layer, head) ints inside the model (may be empty).

    Chapter 05: induction heads."""
    try:
        out = [(int(layer), int(head)) for layer, head in heads]
    except (TypeError, ValueError):
        raise TutorialInputError(f"{name} must be a list of (layer, head) pairs, got {heads!r}.") from None
    for layer, head in out:
        if not (0 <= layer < model.cfg.n_layers and 0 <= head < model.cfg.n_heads):
            raise TutorialInputError(
                f"{name}: ({layer}, {head}) is not a head of a {model.cfg.n_layers}-layer, {model.cfg.n_heads}-head model."
            )
    return out


@torch.no_grad()
def ablated_loss(
    model,
    tokens: Any,
    heads: Sequence[tuple[int, int]],
    kind: str = "zero",
    keep: bool = False,
    period: int | Tensor | None = None,
) -> dict[str, float]:
    """Mean loss on the first and on the repeated occurrence ({"first", "repeated"}) with the listed heads'
    hook_z ablated together (keep=True: every head *except* the listed ones). kind "zero" sets z to 0;
    "mean" to its mean over the batch at each position, taken from the clean run.

    Exercise 05.7. Chapter 05: induction heads."""
    expect_choice(kind, ABLATIONS, "kind")
    listed = set(_heads_list(model, heads, "heads"))
    toks, _, first, repeated = resolve_batch(tokens, period)
    expect_tokens(toks, "tokens", model)
    device = model_device(model)
    toks, first, repeated = toks.to(device), first.to(device), repeated.to(device)
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    ablate = {(li, h) for li in range(n_layers) for h in range(n_heads) if ((li, h) in listed) != keep}
    means: dict[int, Tensor] = {}
    if kind == "mean" and ablate:
        _, cache = model.run_with_cache(toks, names_filter=lambda name: name.endswith("attn.hook_z"))
        means = {li: cache[get_act_name("z", li)].mean(dim=0, keepdim=True) for li in range(n_layers)}
    hooks = []
    for li in range(n_layers):
        idx = [h for h in range(n_heads) if (li, h) in ablate]
        if idx:
            hooks.append((get_act_name("z", li), head_ablation_hook(idx, "zero" if kind == "zero" else means[li])))
    loss = token_losses(model.run_with_hooks(toks, fwd_hooks=hooks), toks)
    return {"first": loss[first].mean().item(), "repeated": loss[repeated].mean().item()}


def find_copy_heads(
    model, tokens: Any, rise: float = 1.0, first_tolerance: float = 0.3, max_heads: int = 2
) -> list[tuple[int, int]]:
    """The first set of at most `max_heads` heads (single heads first, then pairs, ...) whose mean ablation raises
    the repeated-occurrence loss by more than `rise` nats while moving the first-occurrence loss by less than
    `first_tolerance`; [] if none does.

    Exercise 05.8 (an open exercise: any set with the property passes). Chapter 05: induction heads."""
    max_heads = expect_int_at_least(max_heads, "max_heads", 1)
    expect_number(rise, "rise")
    expect_number(first_tolerance, "first_tolerance", 0.0)
    clean = ablated_loss(model, tokens, [])
    heads = [(layer, head) for layer in range(model.cfg.n_layers) for head in range(model.cfg.n_heads)]
    for size in range(1, max_heads + 1):
        for group in itertools.combinations(heads, size):
            r = ablated_loss(model, tokens, list(group), kind="mean")
            if r["repeated"] - clean["repeated"] > rise and abs(r["first"] - clean["first"]) < first_tolerance:
                return list(group)
    return []


def circuit_coverage(
    model, tokens: Any, circuit: Sequence[tuple[int, int]], period: int | Tensor | None = None
) -> float:
    """How much of the in-context loss drop (first-occurrence loss minus repeated-occurrence loss) the
    `circuit` heads produce alone, every other head mean-ablated: drop(circuit only) / drop(clean model).

    Exercise 05.9. Chapter 05: induction heads."""
    clean = ablated_loss(model, tokens, [], period=period)
    alone = ablated_loss(model, tokens, circuit, kind="mean", keep=True, period=period)
    drop = clean["first"] - clean["repeated"]
    if abs(drop) < 1e-8:
        raise TutorialInputError("the clean model shows no in-context loss drop on these tokens: nothing to cover.")
    return (alone["first"] - alone["repeated"]) / drop
