"""Chapter 04's "native" engine: a native bridge's forward re-implemented on its own torch modules.

Patching at layer ``l`` cannot change anything before block ``l``, and the model is causal: positions
before the first one a patch changes keep their unpatched values in every later layer. So a patched
forward here starts at the patched site from cached activations, recomputes only the positions from the
first changed one on (their attention reads the earlier positions' keys and values from the cache), and
runs many variants as one batch. ``engine.native_ok`` decides, once per model, whether this reproduces
the bridge (``architecture_ok`` and ``matches_bridge``).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..validation import model_device
from .grids import get_act_name

__all__ = ["architecture_ok", "fast_cache", "fast_logits", "fast_names", "matches_bridge", "repeat_rows"]


def architecture_ok(model) -> bool:
    """Native pre-LN bridge, standard positions, plain causal attention, no GQA / soft-caps / gated or
    parallel MLPs: what this module re-implements.

    Chapter 04: activation patching.
    """
    cfg = model.cfg
    return (
        type(getattr(model, "original_model", None)).__name__ == "NativeModel"
        and (getattr(cfg, "positional_embedding_type", "standard") or "standard") == "standard"
        and (cfg.n_key_value_heads in (None, cfg.n_heads))
        and float(cfg.attn_scores_soft_cap) <= 0
        and float(cfg.output_logits_soft_cap) <= 0
        and getattr(cfg, "attention_dir", "causal") == "causal"
        and not getattr(cfg, "parallel_attn_mlp", False)
        and not getattr(cfg, "gated_mlp", False)
    )


def fast_names(model) -> tuple[str, ...]:
    """The activations fast_cache keeps and fast_logits reads, per layer. Chapter 04: activation patching."""
    names = ("resid_pre", "resid_mid", "attn_out", "z", "pattern", "k", "v")
    return names if model.cfg.attn_only else (*names, "mlp_out")


def _close(got: Tensor, want: Tensor) -> bool:
    """Equal up to float32 rounding: 1e-5, relative to the tensor's largest entry (a trained model's logits
    reach 10-20, where a reordered matmul legitimately differs in the 6th digit).

    Chapter 04: activation patching.
    """
    return got.shape == want.shape and torch.allclose(
        got, want, atol=1e-5 * max(1.0, want.abs().max().item()), rtol=1e-5
    )


def matches_bridge(model, tokens: Tensor, logits: Tensor, cache: dict[str, Tensor]) -> bool:
    """The self-check: fast_cache reproduces the bridge's `logits` and `cache` on `tokens`, and patching
    each layer's resid_pre or z with its own value from the middle position on changes nothing.

    Chapter 04: activation patching.
    """
    n_pos = tokens.shape[1]
    fast, fast_acts = fast_cache(model, tokens)
    if not _close(fast, logits) or any(not _close(fast_acts[n], cache[n]) for n in cache):
        return False
    device = model_device(model)
    for layer in range(model.cfg.n_layers):
        for site in ("resid_pre", "z"):
            act = cache[get_act_name(site, layer)]
            mask = torch.ones((1, *act.shape[1:]), dtype=torch.bool, device=device)
            if not _close(fast_logits(model, cache, logits, site, layer, act, mask, n_pos // 2)[0], logits):
                return False
    return True


def _raw(module):
    """The wrapped torch module of a bridge component (skips the bridge's per-call hook machinery).

    Chapter 04: activation patching.
    """
    inner = getattr(module, "original_component", None)
    return module if inner is None else inner


def repeat_rows(x: Tensor, n_var: int) -> Tensor:
    """[batch, ...] -> [n_var * batch, ...], the batch repeated once per variant. Chapter 04: activation patching."""
    return x.repeat(n_var, *([1] * (x.ndim - 1)))


def _attention(
    block, x: Tensor, k_prefix: Tensor, v_prefix: Tensor, store: dict | None = None, last: bool = False
) -> Tensor:
    """Attention of the suffix queries over prefix + suffix keys; returns attn_out [rows, S, d_model]
    (last=True: only the final position's query, attn_out [rows, 1, d_model]).

    Chapter 04: activation patching.
    """
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


def _mlp(model, block, resid: Tensor) -> Tensor:
    """resid + the block's MLP output (resid itself for attention-only models). Chapter 04: activation patching."""
    return resid if model.cfg.attn_only else resid + _mlp_out(block, resid)


def _mlp_out(block, resid: Tensor) -> Tensor:
    """The block's MLP output on `resid`. Chapter 04: activation patching."""
    native = _raw(block.mlp)  # NativeMLP
    mid = native.act(_raw(native.fc_in)(_raw(block.ln2)(resid)))
    if getattr(native, "ln", None) is not None:
        mid = native.ln(mid)
    return _raw(native.fc_out)(mid)


def fast_cache(model, tokens: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
    """The forward of a native bridge from its raw modules, keeping the activations the grids need.

    Chapter 04: activation patching.
    """
    cache: dict[str, Tensor] = {}
    n_pos = tokens.shape[1]
    positions = torch.arange(n_pos, device=tokens.device)
    resid = _raw(model.embed)(tokens) + _raw(model.pos_embed)(positions)[None]
    empty = resid.new_zeros(resid.shape[0], 0, model.cfg.n_heads, model.cfg.d_head)
    with torch.no_grad():
        for layer, block in enumerate(model.blocks):
            cache[get_act_name("resid_pre", layer)] = resid
            parts: dict[str, Tensor] = {}
            attn_out = _attention(block, _raw(block.ln1)(resid), empty, empty, store=parts)
            for kind, act in parts.items():
                cache[get_act_name(kind, layer)] = act
            cache[get_act_name("attn_out", layer)] = attn_out
            resid = resid + attn_out
            if not model.cfg.attn_only:
                cache[get_act_name("resid_mid", layer)] = resid
                cache[get_act_name("mlp_out", layer)] = _mlp_out(block, resid)
                resid = resid + cache[get_act_name("mlp_out", layer)]
        logits = _raw(model.unembed)(_raw(model.ln_final)(resid))
    return logits, cache


# --------------------------------------------------------------------------------------------
# One patched forward for many variants, from the patched site and the first changed position


def fast_logits(
    model, cache, base_logits, site: str, layer: int, src: Tensor, masks: Tensor, start: int, last: bool = False
) -> Tensor:
    """Logits [var, batch, pos, vocab] of the base run with `src` patched at `site` of `layer` under each mask.

    Positions before `start` hold the base run's logits. last=True: only the final position's logits are
    computed (the last block runs its query, MLP and unembed at that position alone); use it only for a
    metric that reads the final position alone (see runner.reads_last_position_only).

    Chapter 04: activation patching.
    """
    n_var, batch = masks.shape[0], src.shape[0]
    resid, next_layer = _resid_after_site(model, cache, site, layer, src, masks, start, last)
    logits = _suffix_logits(model, cache, resid, next_layer, start, n_var, last)
    n_before = base_logits.shape[1] - logits.shape[1]  # positions taken from the base run
    logits = torch.cat([repeat_rows(base_logits[:, :n_before], n_var), logits], dim=1)
    return logits.reshape(n_var, batch, *logits.shape[1:])


def _patched(base: Tensor, src: Tensor, masks: Tensor, start: int, pos_axis: int) -> Tensor:
    """The patched site at positions `start`.. for every variant: [n_var * batch, ...].

    Chapter 04: activation patching.
    """
    sl = [slice(None)] * base.ndim
    sl[pos_axis] = slice(start, None)
    m_sl = list(sl) if masks.shape[pos_axis] > 1 else [slice(None)] * base.ndim
    m = masks[tuple(m_sl)][:, None]  # [var, 1, ...]
    s_sl = list(sl) if src.shape[pos_axis] > 1 else [slice(None)] * base.ndim
    out = torch.where(m, src[tuple(s_sl)][None], base[tuple(sl)][None])
    return out.reshape(masks.shape[0] * src.shape[0], *out.shape[2:])


def _patched_attn_out(model, cache, site: str, layer: int, src: Tensor, masks: Tensor, start: int) -> Tensor:
    """attn_out of `layer` at positions `start`.. with attn_out, z or the pattern patched.

    Chapter 04: activation patching.
    """
    if site == "attn_out":
        return _patched(cache[get_act_name("attn_out", layer)], src, masks, start, 1)
    native = model.blocks[layer].original_component.attn.original_component
    if site == "z":
        z = _patched(cache[get_act_name("z", layer)], src, masks, start, 1)
        return native.o.original_component(z.reshape(z.shape[0], z.shape[1], -1))
    # pattern [batch, head, dest, src]: z from the patched pattern and the cached values
    pattern = _patched(cache[get_act_name("pattern", layer)], src, masks, start, 2)
    v = repeat_rows(cache[get_act_name("v", layer)], masks.shape[0]).transpose(1, 2)
    z = torch.matmul(pattern, v).transpose(1, 2).reshape(pattern.shape[0], pattern.shape[2], -1)
    return native.o.original_component(z)


def _resid_after_site(
    model, cache, site: str, layer: int, src: Tensor, masks: Tensor, start: int, last: bool
) -> tuple[Tensor, int]:
    """The residual stream [n_var * batch, suffix, d_model] after the patched site, and the next block to run.

    Chapter 04: activation patching.
    """
    n_var = masks.shape[0]
    final = last and layer == model.cfg.n_layers - 1  # only the final position from here on
    if site == "resid_pre":
        return _patched(cache[get_act_name("resid_pre", layer)], src, masks, start, 1), layer
    if site == "mlp_out":
        resid_mid = repeat_rows(cache[get_act_name("resid_mid", layer)][:, start:], n_var)
        resid = resid_mid + _patched(cache[get_act_name("mlp_out", layer)], src, masks, start, 1)
        return (resid[:, -1:] if final else resid), layer + 1
    attn_out = _patched_attn_out(model, cache, site, layer, src, masks, start)
    resid = repeat_rows(cache[get_act_name("resid_pre", layer)][:, start:], n_var) + attn_out
    if final:
        resid = resid[:, -1:]
    return _mlp(model, model.blocks[layer], resid), layer + 1


def _suffix_logits(model, cache, resid: Tensor, next_layer: int, start: int, n_var: int, last: bool) -> Tensor:
    """Blocks next_layer.. on the suffix positions (keys and values of the earlier ones from the cache),
    then the unembedding.

    Chapter 04: activation patching.
    """
    n_layers = model.cfg.n_layers
    for j in range(next_layer, n_layers):
        blk = model.blocks[j]
        final = last and j == n_layers - 1
        k_prefix = repeat_rows(cache[get_act_name("k", j)][:, :start], n_var)
        v_prefix = repeat_rows(cache[get_act_name("v", j)][:, :start], n_var)
        attn_out = _attention(blk, _raw(blk.ln1)(resid), k_prefix, v_prefix, last=final)
        resid = _mlp(model, blk, (resid[:, -1:] if final else resid) + attn_out)
    return _raw(model.unembed)(_raw(model.ln_final)(resid))
