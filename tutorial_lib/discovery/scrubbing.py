"""Chapter 07's causal scrubbing (Chan et al. 2022): test a circuit hypothesis by resampling every input
the hypothesis says does not matter, and see how much of the model's behaviour survives.

A hypothesis here names, for some receivers (a head's q, k or v input, an MLP, the logits), the senders
whose outputs carry what the receiver needs, and the **feature** each such output is claimed to depend on:
the tokens at given offsets from the receiving position. Scrubbing then runs the model with

- each claimed edge sender -> receiver taking the sender's output, at each position p, from another prompt
  that agrees with the clean one on the claimed tokens (the equivalence class of inputs the hypothesis says
  the sender cannot tell apart), drawn per position from a pool;
- every other edge into a hypothesis receiver taking its sender's output from an unconstrained random
  prompt of the pool (the hypothesis says it does not matter);
- every receiver the hypothesis does not name left clean.

Each edge gets its own draws (the paper's treeification, one level deep: the sender's own inputs are drawn
with it). The hypothesis is judged by the loss it recovers,
(L_random - L_scrubbed) / (L_random - L_clean), where L_random scrubs the same receivers with nothing
claimed: 1 when the claimed features carry everything the model uses, 0 when they carry nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor

from ..validation import TutorialInputError, expect_tokens
from . import forward as fw
from .edges import _sender_outputs, embed_output, run_edges
from .graph import Graph, build_graph
from .metrics import bootstrap_ci

__all__ = [
    "Hypothesis",
    "ScrubResult",
    "class_sender_outputs",
    "induction_hypothesis",
    "resample_matching",
    "scrub",
    "scrub_replacement",
]

Hypothesis = dict[str, dict[str, tuple[int, ...]]]  # receiver -> {sender: token offsets its output depends on}


@dataclass(frozen=True)
class ScrubResult:
    """Losses (mean over prompts) of the clean, scrubbed and unconstrained runs, the loss recovered and its
    95% bootstrap interval over prompts.

    Chapter 07: circuit discovery (validation).
    """

    clean: float
    scrubbed: float
    random: float
    recovered: float
    ci: tuple[float, float]


def resample_matching(
    tokens: Int[Tensor, "batch pos"], pool: Int[Tensor, "n pos"], offsets: tuple[int, ...], generator: torch.Generator
) -> Int[Tensor, "pos batch pos"]:
    """For each position p and each clean prompt, a prompt drawn from `pool` with the tokens at p + o (o in
    `offsets`, where inside the prompt) set to the clean prompt's: a member of the equivalence class "agrees
    on those tokens". offsets () draws unconstrained prompts.

    Chapter 07: circuit discovery (validation).
    """
    b, n_pos = tokens.shape
    rows = torch.randint(len(pool), (n_pos, b), generator=generator)
    out = pool[rows].clone()  # [P, B, P]
    for p in range(n_pos):
        for o in offsets:
            if 0 <= p + o < n_pos:
                out[p, :, p + o] = tokens[:, p + o]
    return out


def class_sender_outputs(
    w: fw.Weights,
    g: Graph,
    tokens: Tensor,
    pool: Tensor,
    offsets: tuple[int, ...],
    generator: torch.Generator,
    embed_only: bool = False,
) -> Float[Tensor, "batch pos sender d_model"]:
    """Every sender's output at each position p, computed on that position's resampled prompt (offsets ():
    one unconstrained prompt per clean prompt, for every position). With `embed_only`, only the embedding
    sender is filled in: it reads the token at p alone, so no forward pass is needed.

    Chapter 07: circuit discovery (validation).
    """
    b, n_pos = tokens.shape
    if not offsets:
        drawn = pool[torch.randint(len(pool), (b,), generator=generator)]
        if embed_only:
            out = w.W_E.new_zeros(b, n_pos, g.n_senders, w.W_E.shape[1])
            out[:, :, 0] = embed_output(w, drawn)
            return out
        return _sender_outputs(w, g, drawn)
    drawn = resample_matching(tokens, pool, offsets, generator)  # [P, B, P]
    at = torch.arange(n_pos)
    if embed_only:
        out = w.W_E.new_zeros(b, n_pos, g.n_senders, w.W_E.shape[1])
        out[:, :, 0] = embed_output(w, drawn[at, :, at].T)  # the token each position's prompt holds there
        return out
    outs = _sender_outputs(w, g, drawn.reshape(n_pos * b, n_pos)).reshape(n_pos, b, n_pos, g.n_senders, -1)
    return outs[at, :, at].transpose(0, 1)  # [B, P, S, D]: position p from its own prompts


def induction_hypothesis(
    key_reads: str = "previous", previous_head: str = "a0.1", induction_heads: tuple[str, ...] = ("a1.0", "a1.1")
) -> Hypothesis:
    """The induction hypothesis for an attention-only 2-layer model (induction-2l's heads by default, from its
    card): each induction head's query reads the current token (the embedding), its value the token to copy
    (the embedding), and its key the token before its position through the previous-token head
    (key_reads="previous"); key_reads="current" is the plausible wrong variant, the key reading the
    current token's identity from the embedding.

    Chapter 07: circuit discovery (validation).
    """
    keys = {"previous": {previous_head: (-1,)}, "current": {"embed": (0,)}}
    if key_reads not in keys:
        raise TutorialInputError(f"key_reads must be 'previous' or 'current', got {key_reads!r}.")
    hyp: Hypothesis = {}
    for head in induction_heads:
        hyp[f"{head}.q"] = {"embed": (0,)}
        hyp[f"{head}.k"] = dict(keys[key_reads])
        hyp[f"{head}.v"] = {"embed": (0,)}
    return hyp


def _check_hypothesis(g: Graph, hypothesis: object) -> Hypothesis:
    if not isinstance(hypothesis, dict) or not hypothesis:
        raise TutorialInputError(
            "hypothesis must be a non-empty dict {receiver: {sender: offsets}}, e.g. "
            "{'a1.0.k': {'a0.1': (-1,)}}: the induction head's key reads the previous token through a0.1."
        )
    for receiver, claims in hypothesis.items():
        if not isinstance(claims, dict):
            raise TutorialInputError(f"hypothesis[{receiver!r}] must be a dict {{sender: offsets}}, got {claims!r}.")
        for sender, offsets in claims.items():
            g.edge(sender, receiver)  # names the unknown node or the impossible edge
            if not isinstance(offsets, tuple) or not all(isinstance(o, int) for o in offsets):
                raise TutorialInputError(f"offsets of {sender}->{receiver} must be a tuple of ints, got {offsets!r}.")
    return hypothesis


def scrub_replacement(model, tokens, pool, hypothesis: Hypothesis, seed: int = 0, claimed: bool = True):
    """(per-edge replacement [B, P, S, R, D], ablate mask [S, R]) of a hypothesis: claimed edges from their
    class's prompts, the other edges into its receivers from random ones (with claimed=False, every edge
    into them from random ones: the baseline). Senders of one receiver claimed to read the same tokens share
    one draw (position by position); the unclaimed rest of its input is one random prompt per clean prompt.

    Chapter 07: circuit discovery (validation). Exercise 07.9 (the reference).
    """
    w, g = fw.check_model(model), build_graph(model)
    tokens, pool = expect_tokens(tokens, "tokens", model), expect_tokens(pool, "pool", model)
    if pool.shape[1] != tokens.shape[1]:
        raise TutorialInputError(f"pool must have the tokens' length {tokens.shape[1]}, got {pool.shape[1]}.")
    hypothesis = _check_hypothesis(g, hypothesis)
    gen = torch.Generator().manual_seed(seed)
    ablate = torch.zeros_like(g.valid)
    repl = w.W_E.new_zeros(*tokens.shape, g.n_senders, g.n_receivers, w.W_E.shape[1])
    with torch.no_grad():
        for receiver, claims in hypothesis.items():
            r = g.receivers.index(receiver)
            groups: dict[tuple[int, ...], list[int]] = {}  # one draw per receiver and claimed feature
            for s in g.valid[:, r].nonzero().flatten().tolist():
                groups.setdefault(claims.get(g.senders[s], ()) if claimed else (), []).append(s)
            for offsets, senders in groups.items():
                drawn = class_sender_outputs(w, g, tokens, pool, offsets, gen, embed_only=senders == [0])
                repl[:, :, senders, r] = drawn[:, :, senders]
                ablate[senders, r] = True
    return repl, ablate


def scrub(
    model,
    tokens: Int[Tensor, "batch pos"],
    pool: Int[Tensor, "n pos"],
    hypothesis: Hypothesis,
    loss: Callable[[Tensor], Tensor],
    seed: int = 0,
) -> ScrubResult:
    """Causal scrubbing of `hypothesis` on `tokens`, resampling from `pool`; loss(logits) -> per-prompt [batch].

    Chapter 07: circuit discovery (validation).
    """
    _check_hypothesis(build_graph(model), hypothesis)  # before any forward pass, so that its error comes first
    runs = {}
    with torch.no_grad():
        clean, _ = run_edges(model, tokens, tokens, None)
        runs["clean"] = torch.as_tensor(loss(clean[0])).float()
        for name, claimed in (("scrubbed", True), ("random", False)):
            repl, ablate = scrub_replacement(model, tokens, pool, hypothesis, seed=seed, claimed=claimed)
            logits, _ = run_edges(model, tokens, repl, ablate)
            runs[name] = torch.as_tensor(loss(logits[0])).float()
    if runs["clean"].shape != (tokens.shape[0],):
        raise TutorialInputError(f"loss must return one value per prompt, shape [{tokens.shape[0]}].")

    cols = torch.stack([runs["clean"], runs["scrubbed"], runs["random"]], dim=-1)  # [prompt, 3]

    def recovered(v: Tensor) -> Tensor:  # [..., prompt, 3] -> [...]: a ratio of means over prompts
        c, s, r = v.mean(-2).unbind(-1)
        return (r - s) / (r - c)

    point, low, high = bootstrap_ci(cols, seed=seed, stat=recovered)
    means = {k: float(v.mean()) for k, v in runs.items()}
    return ScrubResult(means["clean"], means["scrubbed"], means["random"], point, (low, high))
