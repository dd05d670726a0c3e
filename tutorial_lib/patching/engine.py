"""Chapter 04's patching engines: how a patched forward runs, from the patched layer onward.

Three engines, fastest first; each kernel uses the fastest one the model passes (``engine_for``):

* ``"native"``: on native bridges (``TransformerBridge.boot_native``, standard positional embeddings, no
  GQA / soft-caps / gated or parallel MLPs) the forward is re-implemented here on the bridge's own
  torch modules (``fast_cache``, ``fast_logits``). It starts at the patched site, computes only the
  positions at or after the first one the patch changes (earlier positions, and their keys and values
  in every later layer, are those of the unpatched run: the model is causal), and, for a metric that
  reads the final position alone, runs the last block's query, MLP and unembedding there alone.
* ``"blocks"``: calls ``model.blocks[l:]``, ``model.ln_final`` and ``model.unembed`` with the patch as a
  normal hook (rotary models get their position embeddings from the wrapped model's ``rotary_emb``).
* ``"hooks"``: ``model.run_with_hooks(..., start_at_layer=l)``, TransformerLens' own (it still executes and
  discards blocks ``0..l-1``): the reference every other engine must equal.

Each engine's self-check runs once per model and is memoised here, keyed by the model (a weak
reference: it goes with the model): "native" must reproduce the bridge's logits and cached activations
to 1e-5, "blocks" its logits to 1e-6; a model that fails one gets the next engine.

The switch: every kernel takes ``engine=`` ("native", "blocks" or "hooks"), the fastest engine it may
use; without it the environment variable ``TUTORIAL_PATCHING_ENGINE`` decides, and without that,
"native". ``engine="hooks"`` (or ``TUTORIAL_PATCHING_ENGINE=hooks``) turns every shortcut off.
"""

from __future__ import annotations

import os
import warnings
import weakref
from collections.abc import Callable, Sequence

import torch
from jaxtyping import Float
from torch import Tensor

from ..validation import (
    expect_choice,
    expect_dtype,
    expect_finite,
    expect_index,
    expect_last_dim,
    expect_model,
    expect_ndim,
    expect_range,
    model_device,
)
from . import native
from .grids import get_act_name

ENGINES = ("native", "blocks", "hooks")
ENGINE_ENV = "TUTORIAL_PATCHING_ENGINE"

__all__ = [
    "ENGINES",
    "ENGINE_ENV",
    "block_stack_ok",
    "cache",
    "cache_many",
    "engine_for",
    "forward_from_layer",
    "native_ok",
]

# model -> {"native": bool, "blocks": bool}: each self-check's verdict, computed once per model.
_VERDICTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


# --------------------------------------------------------------------------------------------
# Choosing the engine


def requested_engine(engine: str | None = None) -> str:
    """The fastest engine the caller allows: `engine`, else $TUTORIAL_PATCHING_ENGINE, else "native".

    Chapter 04: activation patching.
    """
    if engine is None:
        env = os.environ.get(ENGINE_ENV) or "native"
        return str(expect_choice(env, ENGINES, ENGINE_ENV))
    return str(expect_choice(engine, ENGINES, "engine"))


def engine_for(model, engine: str | None = None) -> str:
    """The engine a kernel runs on `model`: the requested one, or the next one down if the model fails its
    self-check ("native" -> "blocks" -> "hooks").

    Chapter 04: activation patching.
    """
    want = requested_engine(engine)
    if want == "native" and native_ok(model):
        return "native"
    return "blocks" if uses_block_stack(model, want) else "hooks"


def uses_block_stack(model, engine: str | None = None) -> bool:
    """Whether forward_from_layer calls the bare blocks (allowed, and the model passes the check).

    Chapter 04: activation patching.
    """
    return requested_engine(engine) in ("native", "blocks") and block_stack_ok(model)


def _verdict(model, key: str, check: Callable[[object], bool]) -> bool:
    """check(model), run once per model and remembered (a failing or raising check means False).

    Chapter 04: activation patching.
    """
    verdicts = _VERDICTS.setdefault(model, {})
    if key not in verdicts:
        try:
            verdicts[key] = bool(check(model))
        except Exception:  # noqa: BLE001 - any failure means "use the next engine"
            verdicts[key] = False
    return verdicts[key]


def native_ok(model) -> bool:
    """Native pre-LN bridge with plain causal attention whose re-implemented forward matches the model.

    Chapter 04: activation patching.
    """
    return _verdict(model, "native", lambda m: native.architecture_ok(m) and _native_self_check(m))


def block_stack_ok(model) -> bool:
    """Whether model.blocks[l:], ln_final, unembed reproduce model(tokens) (checked once per model).

    Chapter 04: activation patching.
    """
    return _verdict(model, "blocks", _block_stack_self_check)


def _native_self_check(model) -> bool:
    """native.matches_bridge on seeded random tokens, against the bridge's own forward.

    Chapter 04: activation patching.
    """
    tokens = _probe_tokens(model, 2)
    names = [get_act_name(k, layer) for layer in range(model.cfg.n_layers) for k in native.fast_names(model)]
    logits, cache = bridge_cache_many(model, [tokens], needed(names))[0]
    return native.matches_bridge(model, tokens, logits, cache)


def _probe_tokens(model, batch: int) -> Tensor:
    """Seeded random tokens [batch, min(8, n_ctx)] for the self-checks. Chapter 04: activation patching."""
    gen = torch.Generator().manual_seed(0)
    n_pos = min(8, model.cfg.n_ctx)
    return torch.randint(model.cfg.d_vocab, (batch, n_pos), generator=gen).to(model_device(model))


# --------------------------------------------------------------------------------------------
# The "blocks" and "hooks" engines


def _block_stack_self_check(model) -> bool:
    """The bare blocks reproduce model(tokens) to 1e-6. Chapter 04: activation patching."""
    if not all(hasattr(model, n) for n in ("blocks", "ln_final", "unembed")) or len(model.blocks) != model.cfg.n_layers:
        return False
    # (a model whose blocks need more than _block_kwargs gives may warn here; the check catches it)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        probe = _probe_tokens(model, 1)
        want, cache = model.run_with_cache(probe, names_filter=lambda n: n == "blocks.0.hook_resid_pre")
        got = _direct_forward(model, cache["blocks.0.hook_resid_pre"], 0, None)
    return got.shape == want.shape and torch.allclose(got, want, atol=1e-6, rtol=1e-6)


def _block_kwargs(model, resid: Tensor) -> dict:
    """What a bare block needs besides the residual stream: a rotary model's (cos, sin) for positions
    0..n-1, from the wrapped Hugging Face model's own rotary embedding (the bridge's forward does the same).

    Chapter 04: activation patching.
    """
    rotary = getattr(getattr(getattr(model, "original_model", None), "model", None), "rotary_emb", None)
    if rotary is None:
        return {}
    positions = torch.arange(resid.shape[1], device=resid.device)[None].expand(resid.shape[0], -1)
    return {"position_embeddings": rotary(resid, positions)}


def _direct_forward(model, resid: Tensor, start: int, stop: int | None, last: bool = False) -> Tensor:
    """Blocks start..stop-1 on `resid`; logits if stop is None (same modules, same hook points). last=True: the
    unembedding runs at the final position alone and every position's logits are that position's (a view).

    Chapter 04: activation patching.
    """
    blocks = model.blocks[start:stop] if stop is not None else model.blocks[start:]
    kwargs = _block_kwargs(model, resid)
    for block in blocks:
        out = block(resid, **kwargs)
        resid = out[0] if isinstance(out, tuple) else out
    if stop is not None:
        return resid
    logits = model.unembed(model.ln_final(resid[:, -1:] if last else resid))
    cap = float(getattr(model.cfg, "output_logits_soft_cap", -1.0) or -1.0)
    if cap > 0:
        logits = cap * torch.tanh(logits / cap)
    return logits.expand(-1, resid.shape[1], -1) if last else logits


def forward_from_layer(
    model,
    resid: Float[Tensor, "batch pos d_model"],
    layer: int,
    fwd_hooks: Sequence[tuple[str, Callable]] = (),
    stop_at_layer: int | None = None,
    engine: str | None = None,
    last: bool = False,
) -> Float[Tensor, "batch pos d_vocab"]:
    """Run `model` from block `layer` onward, `resid` being the residual entering that block.

    Returns logits, or the residual entering block `stop_at_layer` when given. Only blocks `layer..` run
    when the model passes the block-stack check (and `engine` allows it); otherwise
    `run_with_hooks(start_at_layer=layer)` is used. last=True (for a metric that reads the final position
    alone): on the bare blocks, only the final position is unembedded and every position holds its logits.

    Chapter 04: activation patching.
    """
    n_layers = expect_model(model).cfg.n_layers
    resid = expect_finite(
        expect_dtype(expect_ndim(resid, 3, "resid", "[batch, pos, d_model]"), "float", "resid"), "resid"
    )
    expect_last_dim(resid, model.cfg.d_model, "resid")
    expect_index(layer, "layer", n_layers)
    if stop_at_layer is not None:
        expect_range(expect_index(stop_at_layer, "stop_at_layer", n_layers + 1), "stop_at_layer", layer + 1)
    if uses_block_stack(model, engine):
        with model.hooks(fwd_hooks=list(fwd_hooks)):
            return _direct_forward(model, resid, layer, stop_at_layer, last=last)
    return model.run_with_hooks(resid, fwd_hooks=list(fwd_hooks), start_at_layer=layer, stop_at_layer=stop_at_layer)


# --------------------------------------------------------------------------------------------
# Caching the unpatched runs


def cache(model, tokens: Tensor, names: Callable[[str], bool], engine: str | None = None):
    """(logits, {name: activation}) of one forward; plain storing hooks (cheaper than run_with_cache).

    Chapter 04: activation patching.
    """
    return cache_many(model, [tokens], names, engine)[0]


def cache_many(model, token_list: Sequence[Tensor], names: Callable[[str], bool], engine: str | None = None):
    """Like cache for several equally shaped token batches, in one forward of their concatenation (the
    native engine's own forward when it runs).

    Chapter 04: activation patching.
    """
    if engine_for(model, engine) == "native":
        sizes = [t.shape[0] for t in token_list]
        logits, acts = native.fast_cache(model, torch.cat(list(token_list)))
        parts = {n: a.split(sizes) for n, a in acts.items() if names(n)}
        return [(lg, {n: p[i] for n, p in parts.items()}) for i, lg in enumerate(logits.split(sizes))]
    return bridge_cache_many(model, token_list, names)


def bridge_cache_many(model, token_list: Sequence[Tensor], names: Callable[[str], bool]):
    """cache_many through the bridge's own forward (run_with_hooks). Chapter 04: activation patching."""
    store: dict[str, Tensor] = {}
    wanted = [n for n in _all_names(model) if names(n)]

    def keep(name: str) -> Callable:
        def hook(act: Tensor, hook) -> None:  # noqa: ARG001 - TransformerLens passes the hook point
            store[name] = act.detach()

        return hook

    sizes = [t.shape[0] for t in token_list]
    with torch.no_grad():
        logits = model.run_with_hooks(torch.cat(list(token_list)), fwd_hooks=[(n, keep(n)) for n in wanted])
    out = []
    for i, logit_part in enumerate(logits.split(sizes)):
        out.append((logit_part, {n: a.split(sizes)[i] for n, a in store.items()}))
    return out


def _all_names(model) -> list[str]:
    """Every hook name a patching kernel may cache. Chapter 04: activation patching."""
    kinds = ("resid_pre", "resid_mid", "attn_out", "mlp_out", "z", "pattern", "q", "k", "v")
    return [get_act_name(k, layer) for layer in range(model.cfg.n_layers) for k in kinds
            if not (model.cfg.attn_only and k in ("mlp_out", "resid_mid"))]  # fmt: skip


def needed(hook_names: Sequence[str]) -> Callable[[str], bool]:
    """A names filter: membership in `hook_names`. Chapter 04: activation patching."""
    wanted = set(hook_names)
    return lambda n: n in wanted
