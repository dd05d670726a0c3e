"""Where an attribution graph misleads because it freezes the attention patterns: per latent, the effect
of an intervention measured with the norms frozen but attention live, against the same with attention
frozen too (as the graph assumes). Their difference is the attention-mediated part of the effect, which
the graph cannot see: a latent at an earlier position changes the KEYS a later head matches (so which
position the head reads), a latent at the last position changes its QUERY."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from jaxtyping import Int
from torch import Tensor

from ..tasks.words import FACTS, WORD_TO_ID, encode
from ..transcoders import Transcoder, mlp_errors, replacement_logits
from ..validation import TutorialInputError, expect_choice
from .graph import attribution_graph
from .validation import MODES, _predicted_and_measured

__all__ = ["attention_gap", "attention_shift", "effects_by_mode", "fact_prompts", "gap_by_group"]


def fact_prompts(relation: str = "capital") -> tuple[list[Int[Tensor, "1 pos"]], list[int]]:
    """Every entity's prompt of one relation of toy-lm's facts task ("The capital of France is"), in sorted
    order of the entities, and each prompt's answer token (" Paris"). The subject sits one position before
    the last: only attention can carry it to the last position.

    Chapter 08: transcoders and attribution graphs.
    """
    expect_choice(relation, list(FACTS), "relation")
    template, table = FACTS[relation]
    entities = sorted(table)
    return [torch.tensor([encode(template.format(E=e))]) for e in entities], [WORD_TO_ID[table[e]] for e in entities]


def _reaching(graph) -> Tensor:
    """The latent nodes that can reach the last position's logit: every latent below the last layer, and the
    last layer's latents at the last position (the last layer's latents elsewhere have no path to it)."""
    last = graph.n_layers - 1
    return torch.tensor(
        [i for i, (lay, pos, _) in enumerate(graph.latents) if lay < last or pos == graph.n_pos - 1], dtype=torch.long
    )


def effects_by_mode(
    model,
    transcoders: Sequence[Transcoder],
    prompts: Sequence[Tensor],
    answers: Sequence[int],
    scale: float = 0.0,
    modes: dict | None = None,
) -> dict[str, Tensor]:
    """For every latent of every prompt's graph that can reach the logit (prompt i's logit of `answers[i]`),
    the graph's predicted change of the logit when the latent is set to `scale` times its activation
    ((1 - scale) times the predicted ablation effect, the graph being linear) and the measured one in each
    of `modes` (default: the four of `MODES`). Also each latent's "prompt", "layer", "pos", "index" and
    "from_end" (positions before the last; 0 at the last position), all concatenated over prompts.

    Chapter 08: transcoders and attribution graphs.
    """
    if len(prompts) != len(answers) or not prompts:
        raise TutorialInputError(
            f"need one answer token per prompt, got {len(prompts)} prompts, {len(answers)} answers."
        )
    if isinstance(scale, bool) or not isinstance(scale, int | float):
        raise TutorialInputError(f"scale must be a number (0 ablates, 5 steers to 5x the activation), got {scale!r}.")
    modes = MODES if modes is None else modes
    out: dict[str, list[Tensor]] = {k: [] for k in ["predicted", *modes, "prompt", "layer", "pos", "index", "from_end"]}
    for k, (p, tok) in enumerate(zip(prompts, answers, strict=True)):
        g = attribution_graph(model, transcoders, p, int(tok))
        nodes = _reaching(g)
        predicted, measured = _predicted_and_measured(model, transcoders, p, g, nodes, modes, scale)
        out["predicted"].append(predicted)
        for mode, m in measured.items():
            out[mode].append(m)
        where = torch.tensor([g.latents[int(i)] for i in nodes], dtype=torch.long).reshape(-1, 3)
        out["prompt"].append(torch.full((len(nodes),), k))
        out["layer"].append(where[:, 0])
        out["pos"].append(where[:, 1])
        out["index"].append(where[:, 2])
        out["from_end"].append(g.n_pos - 1 - where[:, 1])
    return {k: torch.cat(v) for k, v in out.items()}


def attention_gap(effects: dict[str, Tensor]) -> Tensor:
    """Per latent, the attention-mediated part of its measured effect: "norms frozen" minus "both frozen
    (as the graph)" (attention live minus attention frozen, the norms frozen in both).

    Chapter 08: transcoders and attribution graphs.
    """
    missing = [m for m in ("norms frozen", "both frozen (as the graph)") if m not in effects]
    if missing:
        raise TutorialInputError(f"effects must hold the modes {missing} (from effects_by_mode with MODES).")
    return effects["norms frozen"] - effects["both frozen (as the graph)"]


def gap_by_group(effects: dict[str, Tensor], threshold: float = 0.25) -> dict[str, dict[str, float]]:
    """The attention gap's distribution per group of latents: below the last layer at earlier positions (they
    move the keys), below the last layer at the last position (the query), all below the last layer, and the
    last layer (no attention after it: the gap must be 0). Per group: the count "n", the "median" and "p90"
    of |gap|, the "share" with |gap| > `threshold` logits, and over that share the graph's mean error with
    attention live ("error_live": |norms frozen - predicted|) and frozen ("error_frozen": |both - predicted|).

    Chapter 08: transcoders and attribution graphs.
    """
    gap = attention_gap(effects).abs()
    missing = [k for k in ("predicted", "layer", "from_end") if k not in effects]
    if missing:
        raise TutorialInputError(f"effects must hold {missing} (from effects_by_mode).")
    if not isinstance(threshold, int | float) or threshold < 0:
        raise TutorialInputError(f"threshold must be a number of logits >= 0, got {threshold!r}.")
    last = int(effects["layer"].max()) if len(gap) else 0
    below = effects["layer"] < last
    groups = {"earlier positions": below & (effects["from_end"] > 0), "last position": below & (effects["from_end"] == 0),
              "below the last layer": below, "last layer": ~below}  # fmt: skip
    errors = {
        "error_live": (effects["norms frozen"] - effects["predicted"]).abs(),
        "error_frozen": (effects["both frozen (as the graph)"] - effects["predicted"]).abs(),
    }
    out = {}
    for name, mask in groups.items():
        g, big = gap[mask], mask & (gap > threshold)
        out[name] = {"n": float(mask.sum()), "median": g.median().item() if len(g) else 0.0,
                     "p90": g.quantile(0.9).item() if len(g) else 0.0,
                     "share": (g > threshold).float().mean().item() if len(g) else 0.0}  # fmt: skip
        out[name] |= {k: e[big].mean().item() if big.any() else 0.0 for k, e in errors.items()}
    return out


@torch.no_grad()
def attention_shift(
    model,
    transcoders: Sequence[Transcoder],
    tokens: Int[Tensor, "1 pos"],
    latent: tuple[int, int, int],
    scale: float = 0.0,
    layer: int | None = None,
) -> tuple[Tensor, Tensor]:
    """The attention patterns of `layer` (default the last) at the last position, [n_heads, pos], in the
    replacement model (error nodes fixed, norms live) before and after setting `latent` (layer, pos, index)
    to `scale` times its activation: which positions the heads read, and how the latent moves them.

    Chapter 08: transcoders and attribution graphs.
    """
    n = model.cfg.n_layers
    layer = n - 1 if layer is None else layer
    lay, pos, j = latent
    if not (0 <= lay < n and 0 <= pos < tokens.shape[-1] and 0 <= j < transcoders[lay].d_sae and 0 <= layer < n):
        raise TutorialInputError(
            f"latent must be (layer, pos, index) within the prompt and transcoders, got {latent!r}."
        )
    errors = [e.expand(2, -1, -1) for e in mlp_errors(model, transcoders, tokens)]
    name = f"blocks.{layer}.attn.hook_pattern"
    seen: dict[str, Tensor] = {}

    def keep(act, hook):  # noqa: ARG001 - TransformerLens's hook interface
        seen["pattern"] = act.detach().clone()
        return act

    def edit(at: int, z: Tensor) -> Tensor:
        if at != lay:
            return z
        z = z.clone()
        z[1, pos, j] = z[1, pos, j] * scale
        return z

    replacement_logits(model, transcoders, tokens.expand(2, -1), errors, edit_latents=edit, fwd_hooks=[(name, keep)])
    clean, edited = seen["pattern"][:, :, -1]
    return clean, edited
