"""Validating an attribution graph by intervention: the graph's predicted effect on the logit of
ablating a latent against the effect measured in the replacement model (errors kept fixed, attention
and later transcoders live)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from jaxtyping import Int
from torch import Tensor

from ..tasks.bracket_text import brackets
from ..tasks.words import CLOSE, VOCAB
from ..transcoders import Transcoder, mlp_errors, replacement_logits
from ..validation import TutorialInputError
from .graph import AttributionGraph, attribution_graph
from .pruning import prune

__all__ = [
    "FREEZABLE",
    "MODES",
    "ablate_latents",
    "closing_prompts",
    "measured_ablation_effects",
    "predicted_ablation_effects",
    "validate_ablations",
]


def predicted_ablation_effects(graph: AttributionGraph, nodes: Tensor) -> Tensor:
    """Change of the logit predicted by the frozen-linear graph when latent node i is set to 0:
    -a_i times its total per-unit effect through every path of latents, (e (I - M)^-1)_i with M the
    per-unit latent-to-latent edges and e the per-unit latent-to-logit edges.

    Exercise 08.7. Chapter 08: transcoders and attribution graphs.
    """
    n = graph.n_latents
    m = graph.per_unit[:n, :n]
    total = torch.linalg.solve((torch.eye(n) - m).T, graph.per_unit[-1, :n])
    return -(graph.activations * total)[nodes]


FREEZABLE = ("attention", "norms")
MODES = {"live": (), "attention frozen": ("attention",), "norms frozen": ("norms",),
         "both frozen (as the graph)": ("attention", "norms")}  # fmt: skip


def _freeze_hooks(model, tokens: Tensor, freeze: Sequence[str], batch: int) -> list:
    """Hooks that hold the attention patterns and/or every LayerNorm scale at their clean values."""
    bad = [f for f in freeze if f not in FREEZABLE]
    if bad or isinstance(freeze, str):
        raise TutorialInputError(f"freeze must be a tuple of names from {FREEZABLE}, got {freeze!r}.")
    n = model.cfg.n_layers
    names = [f"blocks.{i}.attn.hook_pattern" for i in range(n)] if "attention" in freeze else []
    if "norms" in freeze:
        names += [f"blocks.{i}.{ln}.hook_scale" for i in range(n) for ln in ("ln1", "ln2")] + ["ln_final.hook_scale"]
    if not names:
        return []
    _, cache = model.run_with_cache(tokens, names_filter=lambda name: name in names)

    def hold(name: str):
        return lambda act, hook: cache[name].expand(batch, *act.shape[1:]).to(act.dtype)  # noqa: ARG005

    return [(name, hold(name)) for name in names]


@torch.no_grad()
def measured_ablation_effects(
    model,
    transcoders: Sequence[Transcoder],
    tokens: Int[Tensor, "1 pos"],
    graph: AttributionGraph,
    nodes: Tensor,
    freeze: Sequence[str] = (),
    scale: float = 0.0,
) -> Tensor:
    """Change of the logit when latent node i is set to 0 in the replacement model (error nodes fixed
    at their clean values; attention patterns, norms and later latents recomputed). One batched run.
    `freeze` holds "attention" (the patterns) and/or "norms" (every LayerNorm scale) at their clean
    values, as the graph does: what remains between prediction and measurement is the rest.
    `scale` sets the latent to `scale` times its clean activation instead (0: ablation; 2 or 5: steering).

    Chapter 08: transcoders and attribution graphs.
    """
    if isinstance(scale, bool) or not isinstance(scale, int | float):
        raise TutorialInputError(f"scale must be a number (0 ablates, 2 doubles the latent), got {scale!r}.")
    errors = [e.expand(len(nodes), -1, -1) for e in mlp_errors(model, transcoders, tokens)]
    where = [graph.latents[int(i)] for i in nodes]

    def ablate(layer: int, z: Tensor) -> Tensor:
        z = z.clone()
        for b, (lay, pos, j) in enumerate(where):
            if lay == layer:
                z[b, pos, j] = z[b, pos, j] * scale if scale else 0.0
        return z

    hooks = _freeze_hooks(model, tokens, tuple(freeze), len(nodes))
    batch = tokens.expand(len(nodes), -1)
    logits = replacement_logits(model, transcoders, batch, errors, edit_latents=ablate, fwd_hooks=hooks)
    return logits[:, -1, graph.token] - graph.logit


@torch.no_grad()
def ablate_latents(
    model,
    transcoders: Sequence[Transcoder],
    tokens: Int[Tensor, "batch pos"],
    latents: Sequence[tuple[int, int]],
    token: int,
) -> Tensor:
    """Per prompt, the change of the last position's `token` logit when the listed (layer, latent index)
    latents are zeroed at every position of the replacement model (error nodes fixed at their clean
    values, everything else live).

    Chapter 08: transcoders and attribution graphs.
    """
    bad = [lat for lat in latents if not (isinstance(lat, tuple | list) and len(lat) == 2)]
    n = model.cfg.n_layers
    if bad or any(not 0 <= lay < n or not 0 <= j < transcoders[lay].d_sae for lay, j in latents):
        raise TutorialInputError(f"latents must be (layer, index) pairs within the transcoders, got {list(latents)!r}.")
    errors = mlp_errors(model, transcoders, tokens)
    clean = replacement_logits(model, transcoders, tokens, errors)[:, -1, token]

    def ablate(layer: int, z: Tensor) -> Tensor:
        idx = [j for lay, j in latents if lay == layer]
        if not idx:
            return z
        z = z.clone()
        z[..., idx] = 0.0
        return z

    return replacement_logits(model, transcoders, tokens, errors, edit_latents=ablate)[:, -1, token] - clean


def closing_prompts(n: int, seed: int = 0, n_words: int = 16) -> list[Int[Tensor, "1 pos"]]:
    """`n` bracket sequences (tasks.brackets), each cut just before its last ")" so that ")" is a
    correct next token: the prompts of chapter 08's attribution graphs.

    Chapter 08: transcoders and attribution graphs.
    """
    close = VOCAB.index(CLOSE)
    batch = brackets(n, n_words, seed=seed)
    out = []
    for row in batch.tokens:
        ends = [p for p in range(1, len(row) - 1) if row[p + 1] == close]
        out.append(row[None, : ends[-1] + 1])
    return out


def validate_ablations(
    model, transcoders: Sequence[Transcoder], prompts: list[Tensor], token: int, top: int = 8, modes: dict | None = None
) -> tuple[Tensor, dict[str, Tensor]]:
    """For each prompt, the `top` most influential latents of its graph pruned to 0.8: their predicted
    ablation effects (concatenated over prompts) and the measured ones in each of `modes` (name -> what
    `measured_ablation_effects` freezes; by default live, attention frozen, norms frozen, both).

    Chapter 08: transcoders and attribution graphs.
    """
    pred, meas = [], {mode: [] for mode in (MODES if modes is None else modes)}
    for p in prompts:
        g = attribution_graph(model, transcoders, p, token)
        pruned = prune(g, 0.8)
        predicted, measured = _predicted_and_measured(
            model, transcoders, p, g, pruned[pruned < g.n_latents][:top], modes
        )
        pred.append(predicted)
        for mode, m in measured.items():
            meas[mode].append(m)
    return torch.cat(pred), {mode: torch.cat(v) for mode, v in meas.items()}


def _predicted_and_measured(
    model,
    transcoders: Sequence[Transcoder],
    tokens: Tensor,
    graph: AttributionGraph,
    nodes: Tensor,
    modes: dict | None = None,
    scale: float = 0.0,
) -> tuple[Tensor, dict[str, Tensor]]:
    """For the latents `nodes` of `graph`: the change of its logit the graph predicts when each is set to
    `scale` times its activation ((1 - scale) times the predicted ablation effect: the graph is linear), and
    the measured change in each of `modes` (name -> what `measured_ablation_effects` freezes; default MODES).

    Chapter 08: transcoders and attribution graphs.
    """
    modes = MODES if modes is None else modes
    predicted = predicted_ablation_effects(graph, nodes)
    measured = {mode: measured_ablation_effects(model, transcoders, tokens, graph, nodes, freeze=freeze, scale=scale)
                for mode, freeze in modes.items()}  # fmt: skip
    return (1.0 - scale) * predicted, measured
