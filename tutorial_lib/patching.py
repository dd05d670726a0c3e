"""Activation patching, ablations, path patching and attribution patching on TransformerLens 4 bridges.

Every grid here gives the same numbers as the matching ``transformer_lens.patching`` function (to
float tolerance), but runs many patched variants in one batched forward and starts each forward at
the patched layer from cached activations instead of re-running the layers before it.

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
   at the patched site of layer ``l`` from cached activations of the unpatched run. (TransformerLens
   4.3's ``run_with_hooks(..., start_at_layer=l)`` is *not* a shortcut: it still executes and
   discards blocks ``0..l-1``; we use it only as the last fallback.)
2. All variants of one layer (every position, head, ...) go through one forward with a batch of
   ``n_variants * batch`` rows (chunked to bound memory: ``chunk_elements``).
3. A variant whose source equals the unpatched activation bit for bit wherever it patches (e.g.
   positions before the first token where clean and corrupted prompts differ) cannot change the
   forward: its value is the unpatched run's metric and it is not run.
4. The model is causal: positions before the first one a patch changes keep their unpatched
   values in every later layer. Only the positions from there on are recomputed; their attention
   reads the earlier positions' keys and values from the cache.
5. When the metric reads only the final position (checked once per grid: it must give the same
   finite value with every other position's logits set to NaN), the last block computes its query,
   MLP and unembedding at that position alone.

Engines, picked per model: on native bridges (``TransformerBridge.boot_native``, standard positional
embeddings, no GQA / soft-caps / gated or parallel MLPs) points 1-5 run on the bridge's own torch
modules (``_fast_cache`` / ``_fast_logits``), after a one-time check that this reproduces the
bridge's logits and cached activations to 1e-5. Otherwise the patched forward calls
``model.blocks[l:]``, ``model.ln_final`` and ``model.unembed`` with the patch as a normal hook
(rotary models get their position embeddings from the wrapped model's ``rotary_emb``; checked once
against ``model(tokens)``), or else ``run_with_hooks(start_at_layer=l)``.
"""

from __future__ import annotations

import functools
import warnings
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens.utilities import get_act_name as _get_act_name

from .validation import TutorialInputError, expect_choice, expect_dtype, expect_ndim, expect_range

get_act_name = functools.lru_cache(maxsize=4096)(_get_act_name)  # hook names, built thousands of times per grid
Metric = Callable[[Float[Tensor, "batch pos d_vocab"]], Float[Tensor, ""]]

__all__ = [
    "GRIDS",
    "TRANSFORMERLENS",
    "ABLATION_COMPONENTS",
    "logit_diff",
    "normalise",
    "activation_patch",
    "patch_resid_pre",
    "patch_attn_out",
    "patch_mlp_out",
    "patch_head_out_all_pos",
    "patch_head_out_by_pos",
    "patch_head_pattern_all_pos",
    "patch_head_pattern_by_pos",
    "ablate",
    "path_patch",
    "path_patch_group",
    "attribution_patch",
    "forward_from_layer",
]

# Rows (variants x batch) per batched forward are capped so that the largest per-row activation
# (logits, MLP hidden, attention pattern) stays under this many elements per chunk.
DEFAULT_CHUNK_ELEMENTS = 2**23


# --------------------------------------------------------------------------------------------
# Metrics


def logit_diff(
    logits: Float[Tensor, "batch pos d_vocab"],
    correct_tokens: Int[Tensor, " batch"],
    wrong_tokens: Int[Tensor, " batch"],
    positions: Int[Tensor, " batch"] | None = None,
    per_prompt: bool = False,
) -> Float[Tensor, ""] | Float[Tensor, " batch"]:
    """logit[correct] - logit[wrong] at the final position (or `positions`), averaged over the batch."""
    expect_ndim(logits, 3, "logits", "[batch, pos, d_vocab]")
    batch = logits.shape[0]
    correct = _expect_index_vector(correct_tokens, batch, "correct_tokens").to(logits.device)
    wrong = _expect_index_vector(wrong_tokens, batch, "wrong_tokens").to(logits.device)
    rows = torch.arange(batch, device=logits.device)
    if positions is None:
        at = logits[:, -1, :]
    else:
        pos = _expect_index_vector(positions, batch, "positions").to(logits.device)
        at = logits[rows, pos, :]
    diff = at[rows, correct] - at[rows, wrong]
    return diff if per_prompt else diff.mean()


def normalise(metric_value: Tensor | float, clean_value: Tensor | float, corrupted_value: Tensor | float) -> Tensor:
    """(value - corrupted) / (clean - corrupted): 0 for the corrupted run, 1 for the clean run."""
    clean_value, corrupted_value = torch.as_tensor(clean_value), torch.as_tensor(corrupted_value)
    gap = clean_value - corrupted_value
    if torch.any(gap == 0):
        raise TutorialInputError(
            f"clean_value and corrupted_value must differ to normalise; both are {clean_value.tolist()}."
        )
    return (torch.as_tensor(metric_value) - corrupted_value) / gap


def _expect_index_vector(x: object, batch: int, name: str) -> Tensor:
    x = expect_ndim(x, 1, name, "[batch]")
    expect_dtype(x, "int", name)
    if x.shape[0] != batch:
        raise TutorialInputError(f"{name} must have one entry per prompt ({batch}), got {x.shape[0]}.")
    return x


# --------------------------------------------------------------------------------------------
# Grid definitions: which hook, which axes, and one boolean mask per patched variant.


@dataclass(frozen=True)
class _Grid:
    hook: str  # short name for get_act_name
    axes: tuple[str, ...]  # axes after "layer", in TransformerLens' order
    doc: str


GRIDS: dict[str, _Grid] = {
    "resid_pre": _Grid("resid_pre", ("pos",), "[layer, pos]: residual stream entering each block"),
    "attn_out": _Grid("attn_out", ("pos",), "[layer, pos]: output of each attention layer"),
    "mlp_out": _Grid("mlp_out", ("pos",), "[layer, pos]: output of each MLP layer"),
    "head_out_all_pos": _Grid("z", ("head",), "[layer, head]: each head's output (hook_z), all positions"),
    "head_out_by_pos": _Grid("z", ("pos", "head"), "[layer, pos, head]: each head's output at one position"),
    "head_pattern_all_pos": _Grid("pattern", ("head",), "[layer, head]: each head's whole attention pattern"),
    "head_pattern_by_pos": _Grid(
        "pattern", ("head", "dest_pos"), "[layer, head, dest_pos]: one head's pattern row for one query"
    ),
    # Whole-layer grids, used by ablations: one variant per layer.
    "resid_pre_layer": _Grid("resid_pre", (), "[layer]: the whole residual stream entering each block"),
    "attn_out_layer": _Grid("attn_out", (), "[layer]: the whole output of each attention layer"),
    "mlp_out_layer": _Grid("mlp_out", (), "[layer]: the whole output of each MLP layer"),
}
_PATCH_GRIDS = tuple(g for g in GRIDS if not g.endswith("_layer"))
# The transformer_lens.patching function each patching grid equals (the tests and the benchmark compare them).
TRANSFORMERLENS = {
    "resid_pre": "get_act_patch_resid_pre",
    "attn_out": "get_act_patch_attn_out",
    "mlp_out": "get_act_patch_mlp_out",
    "head_out_all_pos": "get_act_patch_attn_head_out_all_pos",
    "head_out_by_pos": "get_act_patch_attn_head_out_by_pos",
    "head_pattern_all_pos": "get_act_patch_attn_head_pattern_all_pos",
    "head_pattern_by_pos": "get_act_patch_attn_head_pattern_by_pos",
}


def _masks(grid: _Grid, act_shape: Sequence[int]) -> tuple[Tensor, tuple[int, ...]]:
    """Boolean masks [n_variants, *act_shape (broadcastable)] in TL's row-major order, and the axis sizes."""
    if grid.hook in ("resid_pre", "attn_out", "mlp_out"):  # act [pos, d_model]
        n_pos = act_shape[0]
        if grid.axes == ("pos",):
            return torch.eye(n_pos, dtype=torch.bool)[:, :, None], (n_pos,)
        return torch.ones(1, n_pos, 1, dtype=torch.bool), ()
    if grid.hook == "z":  # act [pos, head, d_head]
        n_pos, n_heads = act_shape[0], act_shape[1]
        eye_h = torch.eye(n_heads, dtype=torch.bool)
        if grid.axes == ("head",):
            return eye_h[:, None, :, None], (n_heads,)
        eye_p = torch.eye(n_pos, dtype=torch.bool)
        mask = eye_p[:, None, :, None] & eye_h[None, :, None, :]  # [p, h, pos, head]
        return mask.reshape(n_pos * n_heads, n_pos, n_heads, 1), (n_pos, n_heads)
    if grid.hook == "pattern":  # act [head, dest, src]
        n_heads, n_dest = act_shape[0], act_shape[1]
        eye_h = torch.eye(n_heads, dtype=torch.bool)
        if grid.axes == ("head",):
            return eye_h[:, :, None, None], (n_heads,)
        eye_q = torch.eye(n_dest, dtype=torch.bool)
        mask = eye_h[:, None, :, None] & eye_q[None, :, None, :]  # [h, q, head, dest]
        return mask.reshape(n_heads * n_dest, n_heads, n_dest, 1), (n_heads, n_dest)
    raise AssertionError(grid)


# --------------------------------------------------------------------------------------------
# Running the model from a layer onward


_DIRECT_OK: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _block_stack_ok(model, tokens: Tensor) -> bool:
    """Whether calling model.blocks[l:], ln_final, unembed reproduces model(tokens) (checked once per model)."""
    if model in _DIRECT_OK:
        return _DIRECT_OK[model]
    ok = False
    needed = ("blocks", "ln_final", "unembed")
    if all(hasattr(model, n) for n in needed) and len(model.blocks) == model.cfg.n_layers:
        try:  # (a model whose blocks need more than _block_kwargs gives may warn here; the check catches it)
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                probe = tokens[:1]
                want, cache = model.run_with_cache(probe, names_filter=lambda n: n == "blocks.0.hook_resid_pre")
                got = _direct_forward(model, cache["blocks.0.hook_resid_pre"], 0, None)
            ok = got.shape == want.shape and torch.allclose(got, want, atol=1e-6, rtol=1e-6)
        except Exception:  # noqa: BLE001 - any failure means "use the bridge's own forward"
            ok = False
    _DIRECT_OK[model] = ok
    return ok


def _block_kwargs(model, resid: Tensor) -> dict:
    """What a bare block needs besides the residual stream: a rotary model's (cos, sin) for positions
    0..n-1, from the wrapped Hugging Face model's own rotary embedding (the bridge's forward does the same)."""
    rotary = getattr(getattr(getattr(model, "original_model", None), "model", None), "rotary_emb", None)
    if rotary is None:
        return {}
    positions = torch.arange(resid.shape[1], device=resid.device)[None].expand(resid.shape[0], -1)
    return {"position_embeddings": rotary(resid, positions)}


def _direct_forward(model, resid: Tensor, start: int, stop: int | None) -> Tensor:
    """Blocks start..stop-1 on `resid`; logits if stop is None (same modules, same hook points)."""
    blocks = model.blocks[start:stop] if stop is not None else model.blocks[start:]
    kwargs = _block_kwargs(model, resid)
    for block in blocks:
        out = block(resid, **kwargs)
        resid = out[0] if isinstance(out, tuple) else out
    if stop is not None:
        return resid
    logits = model.unembed(model.ln_final(resid))
    cap = float(getattr(model.cfg, "output_logits_soft_cap", -1.0) or -1.0)
    if cap > 0:
        logits = cap * torch.tanh(logits / cap)
    return logits


def forward_from_layer(
    model,
    resid: Float[Tensor, "batch pos d_model"],
    layer: int,
    fwd_hooks: Sequence[tuple[str, Callable]] = (),
    stop_at_layer: int | None = None,
) -> Float[Tensor, "batch pos d_vocab"]:
    """Run `model` from block `layer` onward, `resid` being the residual entering that block.

    Returns logits, or the residual entering block `stop_at_layer` when given. On native bridges
    only blocks `layer..` run; otherwise `run_with_hooks(start_at_layer=layer)` is used.
    """
    if _DIRECT_OK.get(model, False):
        with model.hooks(fwd_hooks=list(fwd_hooks)):
            return _direct_forward(model, resid, layer, stop_at_layer)
    return model.run_with_hooks(resid, fwd_hooks=list(fwd_hooks), start_at_layer=layer, stop_at_layer=stop_at_layer)


# --------------------------------------------------------------------------------------------
# Validation helpers


def _check_model(model) -> None:
    if not hasattr(model, "cfg") or not hasattr(model, "run_with_cache"):
        raise TutorialInputError(f"model must be a TransformerLens TransformerBridge, got {type(model).__name__}.")
    if model.training:
        raise TutorialInputError("model is in training mode; call model.eval() before patching.")


def _check_tokens(tokens: object, name: str, model) -> Tensor:
    tokens = expect_ndim(tokens, 2, name, "[batch, pos]")
    expect_dtype(tokens, "int", name)
    if tokens.shape[1] > model.cfg.n_ctx:
        raise TutorialInputError(f"{name} has {tokens.shape[1]} positions; the model takes at most {model.cfg.n_ctx}.")
    return tokens


def _check_pair(model, clean_tokens: object, corrupted_tokens: object) -> tuple[Tensor, Tensor]:
    _check_model(model)
    clean = _check_tokens(clean_tokens, "clean_tokens", model)
    corrupted = _check_tokens(corrupted_tokens, "corrupted_tokens", model)
    if clean.shape != corrupted.shape:
        raise TutorialInputError(
            "clean_tokens and corrupted_tokens must have the same shape [batch, pos], got "
            f"{tuple(clean.shape)} and {tuple(corrupted.shape)}."
        )
    return clean, corrupted


def _valid_grids(model) -> list[str]:
    grids = [g for g in GRIDS if not (model.cfg.attn_only and GRIDS[g].hook == "mlp_out")]
    return grids


def _check_grid(model, grid: str, allowed: Sequence[str]) -> _Grid:
    valid = [g for g in allowed if g in _valid_grids(model)]
    if grid not in valid:
        note = " (the model is attention-only: it has no MLPs)" if grid in GRIDS else ""
        raise TutorialInputError(f"unknown grid {grid!r}{note}; valid grids: {', '.join(valid)}.")
    return GRIDS[grid]


def _scalar(value: object) -> Tensor:
    value = torch.as_tensor(value)
    if value.ndim != 0:
        raise TutorialInputError(
            f"metric must return a scalar (e.g. the mean over the batch), got shape {tuple(value.shape)}."
        )
    return value.detach().float()


# --------------------------------------------------------------------------------------------
# The engine


def _run_grid(
    model,
    grid: _Grid,
    base_cache,
    base_logits: Tensor,
    base_value: Tensor,
    metric: Metric,
    source: Callable[[int], Tensor],
    chunk_elements: int,
) -> Tensor:
    """metric(patched run) for every variant of `grid`: the base run with `source(layer)` patched in."""
    fast = _fast_ok(model)
    last = fast and _reads_last_position_only(metric, base_logits)
    rows_out = []
    for layer in range(model.cfg.n_layers):
        name = get_act_name(grid.hook, layer)
        base_act = base_cache[name]  # [batch, *rest]
        batch, rest = base_act.shape[0], tuple(base_act.shape[1:])
        src = source(layer).to(base_act.dtype)
        masks, axis_sizes = _masks(grid, rest)
        masks = masks.to(base_act.device)
        hit = masks & (src != base_act).any(dim=0)  # [var, *rest]: where the patch changes something
        values = base_value.expand(masks.shape[0]).clone()
        # First position the patch changes, per variant (n_pos when none: the variant is a no-op).
        pos_axis = 2 if grid.hook == "pattern" else 1
        n_pos = base_act.shape[pos_axis]
        changed = hit.flatten(pos_axis + 1).any(-1) if hit.ndim > pos_axis + 1 else hit
        if grid.hook == "pattern":
            changed = changed.any(1)
        first = torch.where(
            changed.any(-1), changed.float().argmax(-1), torch.full_like(changed[:, 0], n_pos, dtype=torch.long)
        )
        per_row = base_cache[get_act_name("resid_pre", layer)].shape[1] * _widest(model, n_pos)
        max_var = max(1, chunk_elements // (per_row * batch))
        if fast:
            for idx, start in _groups(first, n_pos, max_var, batch):
                values[idx] = _fast_variants(
                    model, base_cache, base_logits, grid.hook, layer, src, masks[idx], start, metric, last
                )
        else:
            todo = (first < n_pos).nonzero().flatten().tolist()
            resid = base_cache[get_act_name("resid_pre", layer)]
            for i in range(0, len(todo), max_var):
                idx = todo[i : i + max_var]
                values[idx] = _run_variants(model, layer, name, resid, src, masks[idx], metric)
        rows_out.append(values.reshape(axis_sizes))
    return torch.stack(rows_out)


def _widest(model, n_pos: int) -> int:
    d_vocab = model.cfg.d_vocab_out if model.cfg.d_vocab_out > 0 else model.cfg.d_vocab
    return max(d_vocab, model.cfg.d_mlp or 0, model.cfg.n_heads * n_pos, model.cfg.d_model)


def _groups(first: Tensor, n_pos: int, max_var: int, batch: int, min_rows: int = 256):
    """Variants grouped by the first position they change (each group runs from its smallest one).

    Neighbouring start positions are merged until a group has `min_rows` rows, trading a little
    recomputation for fewer, larger forwards; groups never exceed `max_var` variants.
    """
    order = sorted((p, i) for i, p in enumerate(first.tolist()) if p < n_pos)
    group: list[int] = []
    start = None
    for p, i in order:
        if group and (len(group) >= max_var or (len(group) * batch >= min_rows and p != start)):
            yield group, start
            group, start = [], None
        if start is None:
            start = p
        group.append(i)
    if group:
        yield group, start


# --------------------------------------------------------------------------------------------
# The fast path for native bridges: start at the patched site, compute only the positions at or
# after the first one the patch changes (earlier positions, and their keys and values in every later
# layer, are those of the unpatched run: the model is causal).

_FAST_OK: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _fast_ok(model) -> bool:
    """Native pre-LN bridge with plain causal attention, checked once against the model itself."""
    if model in _FAST_OK:
        return _FAST_OK[model]
    cfg = model.cfg
    ok = (
        type(getattr(model, "original_model", None)).__name__ == "NativeModel"
        and (getattr(cfg, "positional_embedding_type", "standard") or "standard") == "standard"
        and (cfg.n_key_value_heads in (None, cfg.n_heads))
        and float(cfg.attn_scores_soft_cap) <= 0
        and float(cfg.output_logits_soft_cap) <= 0
        and getattr(cfg, "attention_dir", "causal") == "causal"
        and not getattr(cfg, "parallel_attn_mlp", False)
        and not getattr(cfg, "gated_mlp", False)
    )
    if ok:
        try:
            ok = _fast_self_check(model)
        except Exception:  # noqa: BLE001 - anything unexpected: use the general path
            ok = False
    _FAST_OK[model] = ok
    return ok


def _close(got: Tensor, want: Tensor) -> bool:
    """Equal up to float32 rounding: 1e-5, relative to the tensor's largest entry (a trained model's logits
    reach 10-20, where a reordered matmul legitimately differs in the 6th digit)."""
    return got.shape == want.shape and torch.allclose(
        got, want, atol=1e-5 * max(1.0, want.abs().max().item()), rtol=1e-5
    )


def _fast_self_check(model) -> bool:
    gen = torch.Generator().manual_seed(0)
    n_pos = min(8, model.cfg.n_ctx)
    device = next(model.parameters()).device
    tokens = torch.randint(model.cfg.d_vocab, (2, n_pos), generator=gen).to(device)
    names = [get_act_name(k, layer) for layer in range(model.cfg.n_layers) for k in _FAST_NAMES(model)]
    logits, cache = _bridge_cache_many(model, [tokens], _needed(names))[0]
    fast_logits, fast_cache = _fast_cache(model, tokens)
    if not _close(fast_logits, logits):
        return False
    if any(not _close(fast_cache[n], cache[n]) for n in cache):
        return False
    for layer in range(model.cfg.n_layers):
        for site in ("resid_pre", "z"):
            act = cache[get_act_name(site, layer)]
            mask = torch.ones((1,) + tuple(act.shape[1:]), dtype=torch.bool, device=device)
            got = _fast_logits(model, cache, logits, site, layer, act, mask, n_pos // 2)
            if not _close(got[0], logits):
                return False
    return True


def _FAST_NAMES(model) -> tuple[str, ...]:
    names = ("resid_pre", "resid_mid", "attn_out", "z", "pattern", "k", "v")
    return names if model.cfg.attn_only else names + ("mlp_out",)


def _attention(
    block, x: Tensor, k_prefix: Tensor, v_prefix: Tensor, start: int, store: dict | None = None, last: bool = False
) -> Tensor:
    """Attention of the suffix queries over prefix + suffix keys; returns attn_out [rows, S, d_model]
    (last=True: only the final position's query, attn_out [rows, 1, d_model])."""
    native = _raw(_raw(block).attn)  # NativeAttention
    rows, n_suf, _ = x.shape
    heads, d_head = native.n_heads, native.d_head
    n_q = 1 if last else n_suf
    q = _raw(native.q)(x[:, n_suf - n_q :]).view(rows, n_q, heads, d_head)
    k = torch.cat([k_prefix, _raw(native.k)(x).view(rows, n_suf, heads, d_head)], dim=1)
    v = torch.cat([v_prefix, _raw(native.v)(x).view(rows, n_suf, heads, d_head)], dim=1)
    scores = torch.matmul(q.transpose(1, 2), k.permute(0, 2, 3, 1)) / native.scale
    mask = native.causal_mask[k.shape[1] - n_q : k.shape[1], : k.shape[1]]
    pattern = torch.softmax(scores.masked_fill(mask, float("-inf")), dim=-1).masked_fill(mask, 0.0)
    z = torch.matmul(pattern, v.transpose(1, 2)).transpose(1, 2)
    if store is not None:
        store.update(q=q, k=k, v=v, pattern=pattern, z=z)
    return _raw(native.o)(z.reshape(rows, n_q, -1))


def _fast_cache(model, tokens: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
    """The forward of a native bridge from its raw modules, keeping the activations the grids need."""
    cache: dict[str, Tensor] = {}
    n_pos = tokens.shape[1]
    positions = torch.arange(n_pos, device=tokens.device)
    resid = _raw(model.embed)(tokens) + _raw(model.pos_embed)(positions)[None]
    empty = resid.new_zeros(resid.shape[0], 0, model.cfg.n_heads, model.cfg.d_head)
    with torch.no_grad():
        for layer, block in enumerate(model.blocks):
            cache[get_act_name("resid_pre", layer)] = resid
            parts: dict[str, Tensor] = {}
            attn_out = _attention(block, _raw(block.ln1)(resid), empty, empty, 0, store=parts)
            for kind, act in parts.items():
                cache[get_act_name(kind, layer)] = act
            cache[get_act_name("attn_out", layer)] = attn_out
            resid = resid + attn_out
            if not model.cfg.attn_only:
                cache[get_act_name("resid_mid", layer)] = resid
                cache[get_act_name("mlp_out", layer)] = _mlp_out(model, block, resid)
                resid = resid + cache[get_act_name("mlp_out", layer)]
        logits = _raw(model.unembed)(_raw(model.ln_final)(resid))
    return logits, cache


def _raw(module):
    """The wrapped torch module of a bridge component (skips the bridge's per-call hook machinery)."""
    inner = getattr(module, "original_component", None)
    return module if inner is None else inner


def _mlp(model, block, resid: Tensor) -> Tensor:
    """resid + the block's MLP output (resid itself for attention-only models)."""
    return resid if model.cfg.attn_only else resid + _mlp_out(model, block, resid)


def _mlp_out(model, block, resid: Tensor) -> Tensor:
    native = _raw(block.mlp)  # NativeMLP
    mid = native.act(_raw(native.fc_in)(_raw(block.ln2)(resid)))
    if getattr(native, "ln", None) is not None:
        mid = native.ln(mid)
    return _raw(native.fc_out)(mid)


def _fast_logits(
    model, cache, base_logits, site: str, layer: int, src: Tensor, masks: Tensor, start: int, last: bool = False
) -> Tensor:
    """Logits [var, batch, pos, vocab] of the base run with `src` patched at `site` of `layer` under each mask.

    last=True: only the final position's logits are computed (the last block runs its query, MLP and unembed
    at that position alone); the other positions hold the base run's logits. Use it only for a metric that
    reads the final position alone (see _reads_last_position_only)."""
    n_var, batch = masks.shape[0], src.shape[0]
    rows = n_var * batch

    def rep(x: Tensor) -> Tensor:  # [batch, ...] -> [var * batch, ...]
        return x.repeat(n_var, *([1] * (x.ndim - 1)))

    def patched(base: Tensor, pos_axis: int) -> Tensor:  # the patched site, suffix positions only
        sl = [slice(None)] * base.ndim
        sl[pos_axis] = slice(start, None)
        m_sl = list(sl) if masks.shape[pos_axis] > 1 else [slice(None)] * base.ndim
        m = masks[tuple(m_sl)][:, None]  # [var, 1, ...]
        s_sl = list(sl) if src.shape[pos_axis] > 1 else [slice(None)] * base.ndim
        out = torch.where(m, src[tuple(s_sl)][None], base[tuple(sl)][None])
        return out.reshape(rows, *out.shape[2:])

    def prefix(name: str) -> Tensor:
        return rep(cache[name][:, :start])

    block = model.blocks[layer]
    resid_pre = cache[get_act_name("resid_pre", layer)]
    if site == "resid_pre":
        resid, next_layer = patched(resid_pre, 1), layer
    elif site == "mlp_out":
        resid = rep(cache[get_act_name("resid_mid", layer)][:, start:]) + patched(
            cache[get_act_name("mlp_out", layer)], 1
        )
        next_layer = layer + 1
    else:
        if site == "attn_out":
            attn_out = patched(cache[get_act_name("attn_out", layer)], 1)
        elif site == "z":
            z = patched(cache[get_act_name("z", layer)], 1)
            native = block.original_component.attn.original_component
            attn_out = native.o.original_component(z.reshape(rows, z.shape[1], -1))
        else:  # pattern [batch, head, dest, src]: z from the patched pattern and the cached values
            native = block.original_component.attn.original_component
            pattern = patched(cache[get_act_name("pattern", layer)], 2)
            v = rep(cache[get_act_name("v", layer)]).transpose(1, 2)
            z = torch.matmul(pattern, v).transpose(1, 2).reshape(rows, pattern.shape[2], -1)
            attn_out = native.o.original_component(z)
        resid = rep(resid_pre[:, start:]) + attn_out
        if last and layer == model.cfg.n_layers - 1:
            resid = resid[:, -1:]
        resid = _mlp(model, block, resid)
        next_layer = layer + 1
    if last and site == "mlp_out" and layer == model.cfg.n_layers - 1:
        resid = resid[:, -1:]
    for j in range(next_layer, model.cfg.n_layers):
        blk = model.blocks[j]
        final = last and j == model.cfg.n_layers - 1
        attn_out = _attention(
            blk, _raw(blk.ln1)(resid), prefix(get_act_name("k", j)), prefix(get_act_name("v", j)), start, last=final
        )
        resid = _mlp(model, blk, (resid[:, -1:] if final else resid) + attn_out)
    logits = _raw(model.unembed)(_raw(model.ln_final)(resid))
    n_before = base_logits.shape[1] - logits.shape[1]  # positions taken from the base run
    logits = torch.cat([rep(base_logits[:, :n_before]), logits], dim=1)
    return logits.reshape(n_var, batch, *logits.shape[1:])


def _reads_last_position_only(metric: Metric, logits: Tensor) -> bool:
    """Whether `metric` ignores every position but the last: it gives the same finite value when the
    others are NaN. Then the patched forwards need only the final position's logits."""
    try:
        with torch.no_grad():
            want = _scalar(metric(logits))
            blind = logits.clone()
            blind[:, :-1] = float("nan")
            got = _scalar(metric(blind))
    except Exception:  # noqa: BLE001 - a metric that cannot take NaN: assume it reads everything
        return False
    return bool(torch.isfinite(got)) and bool(got == want)


def _fast_variants(model, cache, base_logits, site, layer, src, masks, start, metric, last=False) -> Tensor:
    with torch.no_grad():
        logits = _fast_logits(model, cache, base_logits, site, layer, src, masks, start, last=last)
    return torch.stack([_scalar(metric(logits[v])) for v in range(masks.shape[0])]).to(src.device)


def _run_variants(model, layer: int, name: str, resid: Tensor, src: Tensor, masks: Tensor, metric: Metric) -> Tensor:
    """One batched forward from `layer` for len(masks) variants; returns their metric values."""
    n_var, batch = masks.shape[0], resid.shape[0]
    sel = masks[:, None]  # [var, 1, *rest]

    def patch(act: Tensor, hook) -> Tensor:
        act = act.reshape(n_var, batch, *act.shape[1:])
        return torch.where(sel, src[None], act).reshape(n_var * batch, *act.shape[2:])

    with torch.no_grad():
        logits = forward_from_layer(model, resid.repeat(n_var, 1, 1), layer, [(name, patch)])
    logits = logits.reshape(n_var, batch, *logits.shape[1:])
    return torch.stack([_scalar(metric(logits[v])) for v in range(n_var)]).to(resid.device)


def _cache(model, tokens: Tensor, names: Callable[[str], bool]):
    """(logits, {name: activation}) of one forward; plain storing hooks (cheaper than run_with_cache)."""
    return _cache_many(model, [tokens], names)[0]


def _cache_many(model, token_list: Sequence[Tensor], names: Callable[[str], bool]):
    """Like _cache for several equally shaped token batches, in one forward of their concatenation."""
    if _fast_ok(model):
        sizes = [t.shape[0] for t in token_list]
        logits, cache = _fast_cache(model, torch.cat(list(token_list)))
        parts = {n: a.split(sizes) for n, a in cache.items() if names(n)}
        return [(lg, {n: p[i] for n, p in parts.items()}) for i, lg in enumerate(logits.split(sizes))]
    return _bridge_cache_many(model, token_list, names)


def _bridge_cache_many(model, token_list: Sequence[Tensor], names: Callable[[str], bool]):
    store: dict[str, Tensor] = {}
    wanted = [n for n in _ALL_NAMES(model) if names(n)]

    def keep(name: str) -> Callable:
        def hook(act: Tensor, hook) -> None:
            store[name] = act.detach()

        return hook

    sizes = [t.shape[0] for t in token_list]
    with torch.no_grad():
        logits = model.run_with_hooks(torch.cat(list(token_list)), fwd_hooks=[(n, keep(n)) for n in wanted])
    out = []
    for i, logit_part in enumerate(logits.split(sizes)):
        out.append((logit_part, {n: a.split(sizes)[i] for n, a in store.items()}))
    return out


def _ALL_NAMES(model) -> list[str]:
    kinds = ("resid_pre", "resid_mid", "attn_out", "mlp_out", "z", "pattern", "q", "k", "v")
    return [get_act_name(k, layer) for layer in range(model.cfg.n_layers) for k in kinds
            if not (model.cfg.attn_only and k in ("mlp_out", "resid_mid"))]  # fmt: skip


def _needed(hook_names: Sequence[str]) -> Callable[[str], bool]:
    wanted = set(hook_names)
    return lambda n: n in wanted


# --------------------------------------------------------------------------------------------
# Activation patching


def activation_patch(
    model,
    clean_tokens: Int[Tensor, "batch pos"],
    corrupted_tokens: Int[Tensor, "batch pos"],
    metric: Metric,
    grid: str,
    chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
) -> Float[Tensor, "layer ..."]:
    """metric after patching each clean activation of `grid` into the corrupted run (see GRIDS for shapes).

    Equal to ``transformer_lens.patching.<TRANSFORMERLENS[grid]>(model, corrupted_tokens, clean_cache, metric)``.
    """
    clean, corrupted = _check_pair(model, clean_tokens, corrupted_tokens)
    spec = _check_grid(model, grid, _PATCH_GRIDS)
    expect_range(chunk_elements, "chunk_elements", low=1)
    n_layers = model.cfg.n_layers
    names = [get_act_name(k, layer) for layer in range(n_layers) for k in (spec.hook, *_FAST_NAMES(model))]
    (_, clean_cache), (corrupted_logits, corrupted_cache) = _cache_many(model, [clean, corrupted], _needed(names))
    _block_stack_ok(model, corrupted)
    base_value = _scalar(metric(corrupted_logits)).to(corrupted.device)
    return _run_grid(
        model,
        spec,
        corrupted_cache,
        corrupted_logits,
        base_value,
        metric,
        lambda layer: clean_cache[get_act_name(spec.hook, layer)],
        chunk_elements,
    )


def patch_resid_pre(model, clean_tokens, corrupted_tokens, metric) -> Float[Tensor, "layer pos"]:
    """Patch the clean residual stream entering each block, one position at a time."""
    return activation_patch(model, clean_tokens, corrupted_tokens, metric, "resid_pre")


def patch_attn_out(model, clean_tokens, corrupted_tokens, metric) -> Float[Tensor, "layer pos"]:
    """Patch each attention layer's clean output, one position at a time."""
    return activation_patch(model, clean_tokens, corrupted_tokens, metric, "attn_out")


def patch_mlp_out(model, clean_tokens, corrupted_tokens, metric) -> Float[Tensor, "layer pos"]:
    """Patch each MLP layer's clean output, one position at a time."""
    return activation_patch(model, clean_tokens, corrupted_tokens, metric, "mlp_out")


def patch_head_out_all_pos(model, clean_tokens, corrupted_tokens, metric) -> Float[Tensor, "layer head"]:
    """Patch each head's clean output (hook_z) at every position."""
    return activation_patch(model, clean_tokens, corrupted_tokens, metric, "head_out_all_pos")


def patch_head_out_by_pos(model, clean_tokens, corrupted_tokens, metric) -> Float[Tensor, "layer pos head"]:
    """Patch each head's clean output (hook_z) at one position."""
    return activation_patch(model, clean_tokens, corrupted_tokens, metric, "head_out_by_pos")


def patch_head_pattern_all_pos(model, clean_tokens, corrupted_tokens, metric) -> Float[Tensor, "layer head"]:
    """Patch each head's whole clean attention pattern."""
    return activation_patch(model, clean_tokens, corrupted_tokens, metric, "head_pattern_all_pos")


def patch_head_pattern_by_pos(model, clean_tokens, corrupted_tokens, metric) -> Float[Tensor, "layer head dest_pos"]:
    """Patch one row (one destination position) of each head's clean attention pattern."""
    return activation_patch(model, clean_tokens, corrupted_tokens, metric, "head_pattern_by_pos")


# --------------------------------------------------------------------------------------------
# Ablations

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
) -> Float[Tensor, "layer ..."]:
    """metric on `tokens` with each head / layer (/ position, if by_pos) ablated in turn.

    Shapes: head -> [layer, head] or [layer, pos, head]; attn_out, mlp_out, resid_pre -> [layer]
    (the whole layer, every position) or [layer, pos].
    method: "zero" (replace by 0), "mean" (by its mean over `reference_tokens` at the same position;
    `tokens` itself when None) or "resample" (prompt i gets the activation of reference prompt j,
    j drawn uniformly with `seed`; the same draw for every cell).
    """
    _check_model(model)
    tokens = _check_tokens(tokens, "tokens", model)
    valid = [c for c in ABLATION_COMPONENTS if not (model.cfg.attn_only and c == "mlp_out")]
    expect_choice(component, valid, "component")
    expect_choice(method, ("zero", "mean", "resample"), "method")
    reference = tokens if reference_tokens is None else _check_tokens(reference_tokens, "reference_tokens", model)
    if reference.shape[1] != tokens.shape[1]:
        raise TutorialInputError(
            "reference_tokens must have as many positions as tokens (mean and resample ablation work "
            f"position by position): got {reference.shape[1]} and {tokens.shape[1]}."
        )
    spec = GRIDS[ABLATION_COMPONENTS[component][int(bool(by_pos))]]
    n_layers = model.cfg.n_layers
    names = [get_act_name(k, layer) for layer in range(n_layers) for k in (spec.hook, *_FAST_NAMES(model))]
    logits, cache = _cache(model, tokens, _needed(names))
    _block_stack_ok(model, tokens)
    ref_names = _needed([get_act_name(spec.hook, layer) for layer in range(n_layers)])
    ref_cache = cache if reference is tokens else _cache(model, reference, ref_names)[1]
    batch = tokens.shape[0]
    gen = torch.Generator().manual_seed(seed)
    pick = torch.randint(reference.shape[0], (batch,), generator=gen).to(tokens.device)

    def source(layer: int) -> Tensor:
        act = cache[get_act_name(spec.hook, layer)]
        ref = ref_cache[get_act_name(spec.hook, layer)]
        if method == "zero":
            return torch.zeros_like(act)
        if method == "mean":
            return ref.mean(dim=0, keepdim=True).expand_as(act)
        return ref[pick]

    base_value = _scalar(metric(logits)).to(tokens.device)
    return _run_grid(model, spec, cache, logits, base_value, metric, source, chunk_elements)


# --------------------------------------------------------------------------------------------
# Path patching


def _check_heads(model, heads: Sequence[tuple[int, int]], what: str) -> list[tuple[int, int]]:
    """A non-empty list of (layer, head) pairs inside the model, as ints."""
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    out = [tuple(int(x) for x in r) for r in heads]
    if not out or any(len(r) != 2 or not (0 <= r[0] < n_layers and 0 <= r[1] < n_heads) for r in out):
        raise TutorialInputError(
            f"{what} must be a non-empty list of (layer, head) with 0 <= layer < {n_layers} and "
            f"0 <= head < {n_heads}; got {out}."
        )
    return out


def _check_path(model, receivers, receiver_input, freeze_mlps: bool) -> tuple[list | None, tuple[str, ...]]:
    """The receivers (None: the logits) and receiver inputs of a path-patching call, checked."""
    inputs = (receiver_input,) if isinstance(receiver_input, str) else tuple(receiver_input)
    if not inputs:
        raise TutorialInputError("receiver_input must name at least one of 'q', 'k', 'v'.")
    for i in inputs:
        expect_choice(i, ("q", "k", "v"), "receiver_input")
    if freeze_mlps and model.cfg.attn_only:
        raise TutorialInputError("freeze_mlps=True needs MLPs; the model is attention-only.")
    return (None if receivers is None else _check_heads(model, receivers, "receivers")), inputs


def path_patch(
    model,
    clean_tokens: Int[Tensor, "batch pos"],
    corrupted_tokens: Int[Tensor, "batch pos"],
    metric: Metric,
    receivers: Sequence[tuple[int, int]] | None = None,
    receiver_input: str | Sequence[str] = ("q", "k", "v"),
    freeze_mlps: bool = False,
) -> Float[Tensor, "layer head"]:
    """metric after patching the path sender head -> receivers, for every sender head (Wang et al. 2022).

    For each sender head (layer, head), on the **clean** tokens:
      1. run with the sender's output (hook_z) taken from the corrupted run and every other head's
         output frozen at its clean value (MLPs recompute, unless `freeze_mlps`, which freezes
         hook_mlp_out from the sender's layer on); record the receivers' inputs: hook_q/k/v
         (chosen by `receiver_input`) of each receiver head (layer, head), or, when `receivers` is
         None, the logits;
      2. run the clean tokens again with only those receiver inputs replaced by the values from 1.
         (everything else, including later layers, recomputes) and evaluate `metric`.
    With `receivers=None` the metric of step 1's logits is returned (the path sender -> logits).
    A sender at or after the last receiver's layer has no path to it: its cell is the clean metric.
    Normalise with normalise(value, clean, corrupted): 1 = path not needed, 0 = the full corruption.
    """
    clean, corrupted = _check_pair(model, clean_tokens, corrupted_tokens)
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    receivers, inputs = _check_path(model, receivers, receiver_input, freeze_mlps)

    names = [
        get_act_name(k, layer)
        for layer in range(n_layers)
        for k in ("z", "resid_pre", "mlp_out", "q", "k", "v")
        if not (k == "mlp_out" and model.cfg.attn_only)
    ]
    (clean_logits, clean_cache), (_, corrupted_cache) = _cache_many(model, [clean, corrupted], _needed(names))
    _block_stack_ok(model, clean)
    clean_value = _scalar(metric(clean_logits)).to(clean.device)
    out = clean_value.expand(n_layers, n_heads).clone()
    last = n_layers if receivers is None else max(r[0] for r in receivers)
    batch = clean.shape[0]
    eye_h = torch.eye(n_heads, dtype=torch.bool, device=clean.device)

    for sender_layer in range(last):
        n_var = n_heads  # one variant per sender head in this layer

        def rep(x: Tensor) -> Tensor:
            return x.repeat(n_var, *([1] * (x.ndim - 1)))  # noqa: B023, B008 (used within this iteration)

        def freeze(layer: int) -> Callable:
            clean_z = clean_cache[get_act_name("z", layer)]

            def hook(z: Tensor, hook) -> Tensor:
                if layer != sender_layer:  # noqa: B023, B008 (used within this iteration)
                    return rep(clean_z)
                corr_z = corrupted_cache[get_act_name("z", layer)]
                mixed = torch.where(eye_h[:, None, None, :, None], corr_z[None], clean_z[None])
                return mixed.reshape(n_var * batch, *clean_z.shape[1:])  # noqa: B023, B008 (used within this iteration)

            return hook

        hooks = [(get_act_name("z", layer), freeze(layer)) for layer in range(sender_layer, n_layers)]
        if freeze_mlps:
            for layer in range(sender_layer, n_layers):
                clean_mlp = clean_cache[get_act_name("mlp_out", layer)]
                hooks.append((get_act_name("mlp_out", layer), lambda a, hook, m=clean_mlp: rep(m)))
        captured: dict[str, Tensor] = {}
        if receivers is not None:
            for layer in sorted({r[0] for r in receivers if r[0] > sender_layer}):
                for kind in inputs:
                    name = get_act_name(kind, layer)

                    def grab(a: Tensor, hook, name=name) -> None:
                        captured[name] = a.detach().clone()  # noqa: B023, B008 (used within this iteration)

                    hooks.append((name, grab))
        resid = rep(clean_cache[get_act_name("resid_pre", sender_layer)])
        with torch.no_grad():
            stop = None if receivers is None or last + 1 >= n_layers else last + 1
            result = forward_from_layer(model, resid, sender_layer, hooks, stop_at_layer=stop)
        if receivers is None:
            logits = result.reshape(n_var, batch, *result.shape[1:])
            out[sender_layer] = torch.stack([_scalar(metric(logits[v])) for v in range(n_var)])
            continue
        # Step 2: clean run with only the receivers' inputs patched.
        later = [r for r in receivers if r[0] > sender_layer]
        if not later:
            continue
        start = min(r[0] for r in later)
        patch_hooks = []
        for layer in sorted({r[0] for r in later}):
            heads = torch.zeros(n_heads, dtype=torch.bool, device=clean.device)
            heads[[r[1] for r in later if r[0] == layer]] = True
            for kind in inputs:
                name = get_act_name(kind, layer)
                new = captured[name]

                def put(a: Tensor, hook, new=new, heads=heads) -> Tensor:
                    return torch.where(heads[None, None, :, None], new, a)

                patch_hooks.append((name, put))
        with torch.no_grad():
            logits = forward_from_layer(model, rep(clean_cache[get_act_name("resid_pre", start)]), start, patch_hooks)
        logits = logits.reshape(n_var, batch, *logits.shape[1:])
        out[sender_layer] = torch.stack([_scalar(metric(logits[v])) for v in range(n_var)])
    return out


def path_patch_group(
    model,
    clean_tokens: Int[Tensor, "batch pos"],
    corrupted_tokens: Int[Tensor, "batch pos"],
    metric: Metric,
    senders: Sequence[tuple[int, int]],
    receivers: Sequence[tuple[int, int]] | None = None,
    receiver_input: str | Sequence[str] = ("q", "k", "v"),
    freeze_mlps: bool = False,
) -> Float[Tensor, ""]:
    """path_patch for a *group* of sender heads corrupted together: one metric value.

    Heads that share a job (several heads that each carry part of the same signal) can each look
    unimportant alone; corrupting the whole group along the path tests the job itself. Same recipe
    and normalisation as `path_patch`; the senders' paths to each other are frozen too.
    """
    clean, corrupted = _check_pair(model, clean_tokens, corrupted_tokens)
    n_layers = model.cfg.n_layers
    senders = _check_heads(model, senders, "senders")
    receivers, inputs = _check_path(model, receivers, receiver_input, freeze_mlps)
    kept = [get_act_name(k, layer) for layer in range(n_layers) for k in ("z", "mlp_out")
            if not (k == "mlp_out" and model.cfg.attn_only)]  # fmt: skip
    (_, cc), (_, xc) = _cache_many(model, [clean, corrupted], _needed(kept))

    def freeze(layer: int) -> Callable:  # (bridges report canonical hook names, so close over the layer)
        name = get_act_name("z", layer)

        def hook(z: Tensor, hook) -> Tensor:
            new = cc[name].clone()
            for sl, sh in senders:
                if sl == layer:
                    new[:, :, sh] = xc[name][:, :, sh]
            return new

        return hook

    def clean_mlp(layer: int) -> Callable:
        return lambda act, hook: cc[get_act_name("mlp_out", layer)]

    hooks = [(get_act_name("z", layer), freeze(layer)) for layer in range(n_layers)]
    if freeze_mlps:
        hooks += [(get_act_name("mlp_out", layer), clean_mlp(layer)) for layer in range(n_layers)]
    with torch.no_grad():
        if receivers is None:
            return _scalar(metric(model.run_with_hooks(clean, fwd_hooks=hooks)))
        store: dict[str, Tensor] = {}
        names = sorted({(get_act_name(k, layer), layer) for layer, _ in receivers for k in inputs})
        hooks += [(n, lambda a, hook, n=n: store.__setitem__(n, a.clone())) for n, _ in names]
        model.run_with_hooks(clean, fwd_hooks=hooks)

        def put(name: str, layer: int) -> Callable:
            def hook(a: Tensor, hook) -> Tensor:
                a = a.clone()
                for rl, rh in receivers:
                    if rl == layer:
                        a[:, :, rh] = store[name][:, :, rh]
                return a

            return hook

        return _scalar(metric(model.run_with_hooks(clean, fwd_hooks=[(n, put(n, layer)) for n, layer in names])))


# --------------------------------------------------------------------------------------------
# Attribution patching


def attribution_patch(
    model,
    clean_tokens: Int[Tensor, "batch pos"],
    corrupted_tokens: Int[Tensor, "batch pos"],
    metric: Metric,
    grids: Sequence[str] | None = None,
) -> dict[str, Float[Tensor, "layer ..."]]:
    """Linear estimate of metric(patched) - metric(corrupted) for every cell of each grid at once.

    Attribution patching (Nanda 2023, "Attribution Patching: Activation Patching At Industrial
    Scale"): with the corrupted run's activations a_corr, the clean run's a_clean, and the gradient
    g = d metric / d a taken on the corrupted run, patching a cell is estimated as the first-order
    Taylor term sum over the cell (and over the batch) of (a_clean - a_corr) * g. It costs one clean
    forward (cache), one corrupted forward and one backward, whatever the grid sizes.
    Compare with activation_patch(...) - metric(corrupted_logits). Shapes as in GRIDS.
    """
    clean, corrupted = _check_pair(model, clean_tokens, corrupted_tokens)
    valid = [g for g in _PATCH_GRIDS if g in _valid_grids(model)]
    grids = valid if grids is None else [grids] if isinstance(grids, str) else list(grids)
    for g in grids:
        _check_grid(model, g, _PATCH_GRIDS)
    hooks_needed = sorted({GRIDS[g].hook for g in grids})
    names = [get_act_name(h, layer) for h in hooks_needed for layer in range(model.cfg.n_layers)]
    _, clean_cache = _cache(model, clean, _needed(names))

    live: dict[str, Tensor] = {}

    def keep(name: str) -> Callable:
        def hook(act: Tensor, hook) -> Tensor:
            live[name] = act
            return act

        return hook

    def make_leaf(act: Tensor, hook) -> Tensor:
        return act.detach().requires_grad_(True)  # gradients exist even if the weights are frozen

    with torch.enable_grad():
        logits = model.run_with_hooks(corrupted, fwd_hooks=[("hook_embed", make_leaf)] + [(n, keep(n)) for n in names])
        value = metric(logits)
        _scalar(value)
        # autograd.grad, not backward(): leaves the model's .grad untouched.
        got = torch.autograd.grad(value, [live[n] for n in names], allow_unused=True)
    grads = {n: torch.zeros_like(live[n]) if g is None else g.detach() for n, g in zip(names, got)}
    acts = {n: live[n].detach() for n in names}

    out = {}
    for g in grids:
        spec = GRIDS[g]
        per_layer = []
        for layer in range(model.cfg.n_layers):
            name = get_act_name(spec.hook, layer)
            contrib = ((clean_cache[name] - acts[name]) * grads[name]).sum(dim=0)  # [*rest]
            per_layer.append(_reduce_cells(spec, contrib))
        out[g] = torch.stack(per_layer).detach()
    return out


def _reduce_cells(spec: _Grid, contrib: Tensor) -> Tensor:
    """Sum a per-element attribution [*rest] into the grid's cells."""
    if spec.hook in ("resid_pre", "attn_out", "mlp_out"):  # [pos, d]
        return contrib.sum(-1) if spec.axes else contrib.sum()
    if spec.hook == "z":  # [pos, head, d_head]
        per = contrib.sum(-1)
        return per.sum(0) if spec.axes == ("head",) else per
    # pattern [head, dest, src]
    per = contrib.sum(-1)
    return per.sum(-1) if spec.axes == ("head",) else per
