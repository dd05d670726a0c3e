"""Chapter 04's causal tracing (Meng et al. 2022): corrupt a prompt by adding Gaussian noise to the
embeddings of chosen tokens, then restore each clean activation of a grid into the noised run.

The noised run replaces the corrupted prompt of ``activation_patch``: the same grids, the same runner
(each variant starts at its patched layer from the noised run's cached activations), the same
normalisation (0 = as noised, 1 = as clean).
"""

from __future__ import annotations

import torch
from jaxtyping import Float, Int
from torch import Tensor

from ..validation import TutorialInputError, expect_dtype, expect_ndim, expect_range, expect_tokens
from .engine import bridge_cache_many, cache, needed
from .grids import PATCH_GRIDS, check_grid, get_act_name
from .metrics import Metric, metric_scalar
from .runner import DEFAULT_CHUNK_ELEMENTS, cached_names, run_grid

__all__ = ["embedding_noise", "noise_patch"]


def embedding_noise(
    model, tokens: Int[Tensor, "batch pos"], positions: Int[Tensor, "batch k"], scale: float = 3.0, seed: int = 0
) -> Float[Tensor, "batch pos d_model"]:
    """Gaussian noise to add to the token embeddings: std `scale` times the std of the embedding matrix
    (Meng et al. 2022 use 3 times the embeddings' std) at `positions` of each prompt, zero elsewhere.

    Chapter 04: activation patching.
    """
    tokens = expect_tokens(tokens, "tokens", model)
    positions = expect_dtype(expect_ndim(positions, 2, "positions", "[batch, k]"), "int", "positions")
    if positions.shape[0] != tokens.shape[0]:
        raise TutorialInputError(
            f"positions must have one row per prompt ({tokens.shape[0]}), got {positions.shape[0]}."
        )
    if positions.numel() and (positions.min() < 0 or positions.max() >= tokens.shape[1]):
        raise TutorialInputError(f"positions must lie in [0, {tokens.shape[1] - 1}], got {positions.tolist()}.")
    expect_range(scale, "scale", low=0)
    w_e = model.W_E
    g = torch.Generator().manual_seed(seed)
    draw = torch.randn(*tokens.shape, w_e.shape[1], generator=g).to(device=w_e.device, dtype=w_e.dtype)
    where = torch.zeros(tokens.shape, dtype=torch.bool, device=w_e.device)
    where[torch.arange(tokens.shape[0], device=w_e.device)[:, None], positions.to(w_e.device)] = True
    return torch.where(where[..., None], draw * scale * w_e.std(), torch.zeros_like(draw))


def noise_patch(
    model,
    tokens: Int[Tensor, "batch pos"],
    metric: Metric,
    positions: Int[Tensor, "batch k"],
    grid: str = "resid_pre",
    scale: float = 3.0,
    seed: int = 0,
    engine: str | None = None,
) -> tuple[Float[Tensor, "layer ..."], Float[Tensor, ""], Float[Tensor, ""]]:
    """Causal tracing: (grid of metric values, clean metric, noised metric). The noised run is `tokens` with
    `embedding_noise(model, tokens, positions, scale, seed)` added at ``hook_embed``; cell [l, ...] restores
    the clean activation of `grid` there (as ``activation_patch`` does with a corrupted prompt).

    Chapter 04: activation patching.
    """
    spec = check_grid(model, grid, PATCH_GRIDS)
    noise = embedding_noise(model, tokens, positions, scale, seed)
    names = needed(cached_names(model, spec))
    clean_logits, clean_cache = cache(model, tokens, names, engine)

    def add_noise(embed: Tensor, hook) -> Tensor:  # noqa: ARG001 - TransformerLens passes the hook point
        return embed + noise

    with model.hooks(fwd_hooks=[("hook_embed", add_noise)]):
        ((noised_logits, noised_cache),) = bridge_cache_many(model, [tokens.to(noise.device)], names)
    values = run_grid(model, spec, noised_cache, noised_logits, metric,
                      lambda layer: clean_cache[get_act_name(spec.hook, layer)], DEFAULT_CHUNK_ELEMENTS, engine)  # fmt: skip
    return values, metric_scalar(metric(clean_logits)), metric_scalar(metric(noised_logits))
