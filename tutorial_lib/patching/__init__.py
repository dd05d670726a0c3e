"""Activation patching, ablations, path patching and attribution patching on TransformerLens 4 bridges.

Chapter 04: activation patching. Every grid here gives the same numbers as the matching
``transformer_lens.patching`` function (to float tolerance), but runs many patched variants in one
batched forward and starts each forward at the patched layer from cached activations instead of
re-running the layers before it.

Conventions (the same as ``transformer_lens.patching``):

* Activation patching is *denoising*: run the **corrupted** tokens, patch in one activation from the
  **clean** run, and record ``metric(patched_logits)``. Normalise with ``normalise(value, clean,
  corrupted)`` so that 0 means "as corrupted" and 1 means "as clean".
* ``metric`` maps logits ``[batch, pos, d_vocab]`` to a scalar tensor (e.g. ``logit_diff``).
* Grids are laid out like TransformerLens': ``resid_pre`` / ``attn_out`` / ``mlp_out`` ->
  ``[layer, pos]``; ``head_out_all_pos`` -> ``[layer, head]``; ``head_out_by_pos`` ->
  ``[layer, pos, head]``; ``head_pattern_all_pos`` -> ``[layer, head]``; ``head_pattern_by_pos`` ->
  ``[layer, head, dest_pos]``. "head out" patches ``blocks.{l}.attn.hook_z`` as TransformerLens does.

How it is fast, and why it stays exact:

1. A patch at layer ``l`` cannot change anything before block ``l``, so the patched forward starts
   at the patched site of layer ``l`` from cached activations of the unpatched run.
2. All variants of one layer (every position, head, ...) go through one forward with a batch of
   ``n_variants * batch`` rows (chunked to bound memory: ``chunk_elements``).
3. A variant whose source equals the unpatched activation bit for bit wherever it patches cannot
   change the forward: its value is the unpatched run's metric and it is not run.
4. The model is causal: positions before the first one a patch changes keep their unpatched values
   in every later layer. Only the positions from there on are recomputed.
5. When the metric reads only the final position (checked once per grid: it must give the same
   finite value with every other position's logits set to NaN), the last block computes its query,
   MLP and unembedding at that position alone.

Engines (``engine``): "native" (points 1-5 on a native bridge's own torch modules, ``native``),
"blocks" (``model.blocks[l:]`` with the patch as a normal hook) and "hooks"
(``run_with_hooks(start_at_layer=l)``, TransformerLens' own). Each kernel uses the fastest engine whose
self-check the model passes; the check runs once per model and is remembered with the model.

Turning the fast paths off: every kernel takes ``engine=`` ("native", "blocks" or "hooks"): the fastest
engine it may use. Without it, the environment variable ``TUTORIAL_PATCHING_ENGINE`` decides (e.g.
``TUTORIAL_PATCHING_ENGINE=hooks`` runs everything through ``run_with_hooks``); without that, "native".
``engine_for(model, engine)`` says which engine will run.

Modules: ``metrics`` (logit_diff, normalise), ``grids`` (GRIDS, masks, input checks), ``engine`` (the
engines, their self-checks, forward_from_layer, caches), ``native`` (the re-implemented forward),
``runner`` (every variant of a grid), ``activation``, ``ablation``, ``paths``, ``attribution``, ``noise``
(causal tracing: Gaussian noise on token embeddings), ``search`` (patching head sets together, a greedy search).
"""

from __future__ import annotations

from .ablation import ABLATION_COMPONENTS, ablate, mean_ablate_head
from .activation import (
    activation_patch,
    patch_attn_out,
    patch_head_out_all_pos,
    patch_head_out_by_pos,
    patch_head_pattern_all_pos,
    patch_head_pattern_by_pos,
    patch_heads,
    patch_mlp_out,
    patch_position_hook,
    patch_resid_pre,
)
from .attribution import attribution_patch, attribution_patch_resid
from .engine import ENGINE_ENV, ENGINES, engine_for, forward_from_layer
from .grids import GRIDS, TRANSFORMERLENS, get_act_name
from .metrics import Metric, logit_diff, normalise
from .noise import embedding_noise, noise_patch
from .paths import path_patch, path_patch_group, path_patch_groups, path_patch_to_receiver
from .runner import DEFAULT_CHUNK_ELEMENTS
from .search import greedy_head_set, patch_head_group

__all__ = [
    "ABLATION_COMPONENTS",
    "DEFAULT_CHUNK_ELEMENTS",
    "ENGINES",
    "ENGINE_ENV",
    "GRIDS",
    "TRANSFORMERLENS",
    "Metric",
    "ablate",
    "activation_patch",
    "attribution_patch",
    "attribution_patch_resid",
    "embedding_noise",
    "engine_for",
    "forward_from_layer",
    "get_act_name",
    "greedy_head_set",
    "logit_diff",
    "mean_ablate_head",
    "noise_patch",
    "normalise",
    "patch_head_group",
    "patch_attn_out",
    "patch_head_out_all_pos",
    "patch_head_out_by_pos",
    "patch_head_pattern_all_pos",
    "patch_head_pattern_by_pos",
    "patch_heads",
    "patch_mlp_out",
    "patch_position_hook",
    "patch_resid_pre",
    "path_patch",
    "path_patch_group",
    "path_patch_groups",
    "path_patch_to_receiver",
]
