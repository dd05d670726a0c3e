"""Chapter 04's ablations: zero, mean and resample ablation of every head or layer, one at a time.

Each ablated cell is a grid variant (see ``runner``): its source is zero, the reference prompts' mean at
the same position, or another reference prompt's activation.
"""

from __future__ import annotations

import torch
from jaxtyping import Float, Int
from torch import Tensor

from ..validation import TutorialInputError, expect_choice, expect_index, expect_model, expect_tokens
from .engine import cache, needed
from .grids import GRIDS, check_model, get_act_name
from .metrics import Metric
from .runner import DEFAULT_CHUNK_ELEMENTS, cached_names, run_grid

__all__ = ["ABLATION_COMPONENTS", "ablate", "mean_ablate_head"]

ABLATION_COMPONENTS = {
    # component: (grid when by_pos=False, grid when by_pos=True)
    "head": ("head_out_all_pos", "head_out_by_pos"),
    "attn_out": ("attn_out_layer", "attn_out"),
    "mlp_out": ("mlp_out_layer", "mlp_out"),
    "resid_pre": ("resid_pre_layer", "resid_pre"),
}


def ablate(
    model,
    tokens: Int[Tensor, "batch pos"],
    metric: Metric,
    component: str = "head",
    method: str = "zero",
    by_pos: bool = False,
    reference_tokens: Int[Tensor, "ref_batch pos"] | None = None,
    seed: int = 0,
    chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
    engine: str | None = None,
) -> Float[Tensor, "layer ..."]:
    """metric on `tokens` with each head / layer (/ position, if by_pos) ablated in turn.

    Shapes: head -> [layer, head] or [layer, pos, head]; attn_out, mlp_out, resid_pre -> [layer]
    (the whole layer, every position) or [layer, pos].
    method: "zero" (replace by 0), "mean" (by its mean over `reference_tokens` at the same position;
    `tokens` itself when None) or "resample" (prompt i gets the activation of reference prompt j,
    j drawn uniformly with `seed`; the same draw for every cell).

    Chapter 04: activation patching.
    """
    tokens, reference = _check_ablation(model, tokens, component, method, reference_tokens)
    spec = GRIDS[ABLATION_COMPONENTS[component][int(bool(by_pos))]]
    n_layers = model.cfg.n_layers
    logits, acts = cache(model, tokens, needed(cached_names(model, spec)), engine)
    ref_names = needed([get_act_name(spec.hook, layer) for layer in range(n_layers)])
    ref_acts = acts if reference is tokens else cache(model, reference, ref_names, engine)[1]
    gen = torch.Generator().manual_seed(seed)
    pick = torch.randint(reference.shape[0], (tokens.shape[0],), generator=gen).to(tokens.device)

    def source(layer: int) -> Tensor:
        act = acts[get_act_name(spec.hook, layer)]
        ref = ref_acts[get_act_name(spec.hook, layer)]
        if method == "zero":
            return torch.zeros_like(act)
        if method == "mean":
            return ref.mean(dim=0, keepdim=True).expand_as(act)
        return ref[pick]

    return run_grid(model, spec, acts, logits, metric, source, chunk_elements, engine)


def _check_ablation(model, tokens, component, method, reference_tokens) -> tuple[Tensor, Tensor]:
    """The checked tokens and reference tokens (tokens itself when None) of an ablate call.

    Chapter 04: activation patching.
    """
    check_model(model)
    tokens = expect_tokens(tokens, "tokens", model)
    valid = [c for c in ABLATION_COMPONENTS if not (model.cfg.attn_only and c == "mlp_out")]
    expect_choice(component, valid, "component")
    expect_choice(method, ("zero", "mean", "resample"), "method")
    reference = tokens if reference_tokens is None else expect_tokens(reference_tokens, "reference_tokens", model)
    if reference.shape[1] != tokens.shape[1]:
        raise TutorialInputError(
            "reference_tokens must have as many positions as tokens (mean and resample ablation work "
            f"position by position): got {reference.shape[1]} and {tokens.shape[1]}."
        )
    return tokens, reference


def mean_ablate_head(model, tokens, metric, layer: int, head: int, reference_tokens) -> float:
    """metric(model(tokens)) with head (layer, head)'s output replaced by its mean over reference_tokens.

    Chapter 04: activation patching. Exercise 04.7 (the reference).
    """
    expect_index(layer, "layer", expect_model(model).cfg.n_layers)
    expect_index(head, "head", model.cfg.n_heads)
    return ablate(model, tokens, metric, "head", "mean", reference_tokens=reference_tokens)[layer, head].item()
