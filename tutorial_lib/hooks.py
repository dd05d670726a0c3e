"""Hooks and caches, the basic moves of TransformerLens (chapter 00): next-token loss, attention
recomputed from queries and keys, reading patterns by offset, ablating a head, and splitting a logit
into what each component of the residual stream (or each head) wrote.

This is the base layer: the kernels (`attention`, `patching`, ...) and the organisms' reports build
their head ablations and direct logit attributions on `head_ablation_hook`, `apply_final_norm` and
`logit_directions` here; this module imports no other kernel."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import einops
import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens.ActivationCache import ActivationCache
from transformer_lens.utilities import get_act_name  # pyright: ignore[reportPrivateImportUsage]

from .validation import (
    TutorialInputError,
    expect_choice,
    expect_dtype,
    expect_finite,
    expect_heads,
    expect_ids,
    expect_index,
    expect_int_at_least,
    expect_last_dim,
    expect_model,
    expect_ndim,
    expect_range,
    expect_shape,
    expect_tokens,
)


def per_token_loss(
    logits: Float[Tensor, "batch pos vocab"], tokens: Int[Tensor, "batch pos"]
) -> Float[Tensor, "batch pos_minus_1"]:
    """Cross-entropy of predicting tokens[:, i+1] from logits[:, i] (the last position predicts nothing).

    Exercise 00.1. Chapter 00: foundations."""
    expect_finite(expect_dtype(expect_ndim(logits, 3, "logits", "[batch, pos, vocab]"), "float", "logits"), "logits")
    expect_ids(tokens, "tokens", logits.shape[-1], ndim=2)
    if logits.shape[:2] != tokens.shape:
        raise TutorialInputError(
            f"logits {tuple(logits.shape)} and tokens {tuple(tokens.shape)} must share [batch, pos]."
        )
    log_probs = logits[:, :-1].log_softmax(dim=-1)
    return -log_probs.gather(-1, tokens[:, 1:, None])[..., 0]


def repeat_kv(x: Float[Tensor, "batch pos kv_head d_head"], n_heads: int) -> Float[Tensor, "batch pos head d_head"]:
    """Keys or values of a grouped-query attention layer, one per query head: kv head g serves query heads
    g * group .. (g + 1) * group - 1, group = n_heads / kv_heads (as Llama's `repeat_kv`). Unchanged when
    x already has n_heads heads. Chapter 00: foundations."""
    expect_ndim(x, 4, "x", "[batch, pos, kv_head, d_head]")
    kv = x.shape[2]
    if n_heads == kv:
        return x
    if kv < 1 or n_heads % kv:
        raise TutorialInputError(f"{n_heads} query heads cannot share {kv} key/value heads evenly (grouped-query "
                                 "attention needs n_heads to be a multiple of the number of key heads).")  # fmt: skip
    return x.repeat_interleave(n_heads // kv, dim=2)


def kv_head(model, head: int) -> int:
    """The key/value head that query head `head` reads (itself unless the model uses grouped-query attention).

    Chapter 00: foundations."""
    n_heads = expect_model(model).cfg.n_heads
    expect_index(head, "head", n_heads)
    n_kv = getattr(model.cfg, "n_key_value_heads", None) or n_heads
    return head // (n_heads // n_kv)


def attention_inputs(cache, layer: int) -> tuple[Float[Tensor, "batch pos head d_head"], Tensor]:
    """The query and key a layer's attention scores read, as the model computed them: on a rotary model
    (Llama, SmolLM2) the rotated ones (hook_rot_q, hook_rot_k), else hook_q and hook_k. On a grouped-query
    model k has fewer heads than q; `attention_pattern` repeats them. Chapter 00: foundations."""
    if not (hasattr(cache, "keys") or hasattr(cache, "__contains__")) or isinstance(cache, Tensor):
        raise TutorialInputError(f"cache must be an ActivationCache or a dict, got {type(cache).__name__}.")
    expect_int_at_least(layer, "layer", 0)
    names = [f"blocks.{layer}.attn.hook_rot_q", f"blocks.{layer}.attn.hook_rot_k"]
    if not all(n in cache for n in names):
        names = [get_act_name("q", layer), get_act_name("k", layer)]
    missing = [n for n in names if n not in cache]
    if missing:
        raise TutorialInputError(f"the cache holds no {missing[0]}: run the model without a names_filter (or keep it).")
    return cache[names[0]], cache[names[1]]


def attention_pattern(
    q: Float[Tensor, "batch pos head d_head"], k: Float[Tensor, "batch pos kv_head d_head"]
) -> Float[Tensor, "batch head q_pos k_pos"]:
    """softmax(q k^T / sqrt(d_head)) with the causal mask: what `hook_pattern` holds.

    k may have fewer heads than q (grouped-query attention, e.g. SmolLM2: 3 key heads for 9 query heads):
    each key head serves a group of consecutive query heads (`repeat_kv`). On a rotary model pass the
    rotated q and k (`attention_inputs`). Exercise 00.2. Chapter 00: foundations."""
    expect_finite(expect_dtype(expect_ndim(q, 4, "q", "[batch, pos, head, d_head]"), "float", "q"), "q")
    expect_finite(expect_dtype(expect_ndim(k, 4, "k", "[batch, pos, kv_head, d_head]"), "float", "k"), "k")
    if q.shape[:2] != k.shape[:2] or q.shape[-1] != k.shape[-1] or q.shape[2] % k.shape[2]:
        raise TutorialInputError(
            f"q {tuple(q.shape)} and k {tuple(k.shape)} must have the same shape, except that k may have fewer "
            "heads, a number that divides q's (grouped-query attention)."
        )
    k = repeat_kv(k, q.shape[2])
    scores = einops.einsum(q, k, "b q h d, b k h d -> b h q k") / math.sqrt(q.shape[-1])
    n = q.shape[1]
    future = torch.triu(torch.ones(n, n, dtype=torch.bool, device=q.device), diagonal=1)
    return scores.masked_fill(future, float("-inf")).softmax(dim=-1)


def attention_by_offset(pattern: Float[Tensor, "batch head q_pos k_pos"], offset: int) -> Float[Tensor, " head"]:
    """Mean attention from each position to the position `offset` before it (1: the previous token).

    Exercise 00.3. Chapter 00: foundations."""
    expect_ndim(pattern, 4, "pattern", "[batch, head, q_pos, k_pos]")
    if pattern.shape[-1] != pattern.shape[-2]:
        raise TutorialInputError(f"pattern must be square in [q_pos, k_pos], got shape {tuple(pattern.shape)}.")
    expect_index(offset, "offset", pattern.shape[-1])
    diagonal = pattern.diagonal(offset=-offset, dim1=-2, dim2=-1)  # [batch, head, q_pos - offset]
    return diagonal.mean(dim=(0, -1))


# --------------------------------------------------------------------------- ablating heads

ABLATIONS = ("zero", "mean")


def head_ablation_hook(heads: int | Sequence[int], replacement: str | Tensor = "zero"):
    """The one head-ablation hook: for `blocks.{l}.attn.hook_z`, replace the listed heads' outputs.

    replacement "zero" sets them to 0; "mean" to their mean over the batch at each position (of the z
    the hook receives); a tensor [1 or batch, pos, head, d_head] (e.g. means from a clean run) is copied
    in, its first z.shape[1] positions in z's dtype (so means of a longer run serve shorter prompts).
    The hook edits a copy of z, so the cache of an earlier run is left alone.
    Chapter 00: foundations (used again in chapters 04 and 05 and by the organisms' reports).
    """
    if isinstance(replacement, str):
        expect_choice(replacement, ABLATIONS, "replacement")
    else:
        expect_finite(expect_ndim(replacement, 4, "replacement", "[1 or batch, pos, head, d_head]"), "replacement")
    for h in [heads] if isinstance(heads, int) or not isinstance(heads, Sequence) else heads:
        expect_int_at_least(h, "heads", 0)

    def hook(z: Float[Tensor, "batch pos head d_head"], hook) -> Float[Tensor, "batch pos head d_head"]:  # noqa: ARG001 - TransformerLens passes the hook point
        z = z.clone()
        if isinstance(replacement, Tensor):
            z[:, :, heads] = replacement[:, : z.shape[1], heads].to(z.dtype).expand_as(z[:, :, heads])
        elif replacement == "zero":
            z[:, :, heads] = 0.0
        else:
            z[:, :, heads] = z[:, :, heads].mean(dim=0, keepdim=True)
        return z

    return hook


def ablate_head_loss(model, tokens: Int[Tensor, "batch pos"], layer: int, head: int) -> float:
    """The model's mean next-token loss with one head's output (its hook_z) set to zero.

    Exercise 00.4. Chapter 00: foundations."""
    expect_tokens(tokens, "tokens", expect_model(model))
    expect_index(layer, "layer", model.cfg.n_layers)
    expect_index(head, "head", model.cfg.n_heads)
    with torch.no_grad():
        loss = model.run_with_hooks(
            tokens, return_type="loss", fwd_hooks=[(get_act_name("z", layer), head_ablation_hook(head))]
        )
    return loss.item()


# --------------------------------------------------------------------------- direct logit attribution


def norm_gain(norm_module) -> Tensor | None:
    """A norm module's gain `w` (LayerNorm, RMSNorm), or None: no module, or a norm without a gain (LNPre).

    Chapter 00: foundations."""
    if norm_module is not None and not isinstance(norm_module, torch.nn.Module):
        raise TutorialInputError(f"norm_module must be a norm module or None, got {type(norm_module).__name__}.")
    w = getattr(norm_module, "w", None) if norm_module is not None else None
    return w if isinstance(w, Tensor) else None


def apply_final_norm(model, cache, x: Float[Tensor, "*index extra d_model"], index: tuple) -> Tensor:
    """The final norm as the linear map it is once its scale is frozen at the cached value.

    x holds residual-stream pieces read at the cache positions `index` (leading dims of x match
    cache["ln_final.hook_scale"][index] without its last axis; more axes may follow before d_model).
    LayerNorm ("LN", "LNPre") centres each piece, every norm ("LN", "LNPre", "RMS", "RMSPre") divides
    by the cached scale; no norm leaves x as it is. The gain is left to `logit_directions`.
    Chapter 00: foundations (the basis of direct logit attribution in chapters 04 and 05)."""
    kind = getattr(expect_model(model).cfg, "normalization_type", None)
    x = expect_finite(expect_last_dim(x, model.cfg.d_model, "x"), "x")
    if kind in ("LN", "LNPre"):
        x = x - x.mean(dim=-1, keepdim=True)
    if kind is None:
        return x
    name = "ln_final.hook_scale"
    if name not in cache:
        raise TutorialInputError(f"the cache holds no {name}: run the model without a names_filter (or keep it).")
    scale = cache[name][index]  # [*index, 1]
    while scale.ndim < x.ndim:
        scale = scale.unsqueeze(-2)
    return x / scale


def logit_directions(
    model, answer: Int[Tensor, "..."], wrong: Int[Tensor, "..."] | None = None
) -> Float[Tensor, "... d_model"]:
    """The residual-stream direction each answer's logit reads after the final norm: gain * W_U[:, answer]
    (minus the wrong answer's, for a logit difference). Chapter 00: foundations."""
    w_u = expect_model(model).W_U
    expect_ids(answer, "answer", w_u.shape[1])
    if wrong is not None:
        expect_ids(wrong, "wrong", w_u.shape[1])
        if wrong.shape != answer.shape:
            raise TutorialInputError(f"wrong {tuple(wrong.shape)} must have answer's shape {tuple(answer.shape)}.")
    directions = w_u[:, answer] if wrong is None else w_u[:, answer] - w_u[:, wrong]
    gain = norm_gain(getattr(model, "ln_final", None))
    if gain is not None:
        directions = gain.reshape(-1, *([1] * (directions.ndim - 1))) * directions
    return einops.rearrange(directions, "d_model ... -> ... d_model")


def component_logit_attribution(
    model, cache: ActivationCache, answer_tokens: Int[Tensor, " batch"]
) -> Float[Tensor, "component batch"]:
    """Each residual-stream component's direct contribution to the answer's logit at the last position.

    Components follow `cache.decompose_resid` (embed, pos_embed, 0_attn_out, 0_mlp_out, ...). The final
    norm is linear once its scale is frozen: centre (LayerNorm) and divide by the cached scale, multiply
    by its gain, project onto the answer's unembedding. The terms sum to the logit minus two
    input-independent constants (`logit_constant`).
    Exercise 00.5. Chapter 00: foundations."""
    expect_ids(answer_tokens, "answer_tokens", expect_model(model).cfg.d_vocab, ndim=1)
    stack = cache.decompose_resid(layer=-1, pos_slice=-1, return_labels=False)  # [component, batch, d_model]
    if not isinstance(stack, Tensor):
        raise TutorialInputError("cache.decompose_resid returned labels: pass an ActivationCache.")
    stack = einops.rearrange(stack, "comp batch d -> batch comp d")
    if answer_tokens.shape[0] != stack.shape[0]:
        raise TutorialInputError(
            f"answer_tokens must have one entry per prompt ({stack.shape[0]}), got {answer_tokens.shape[0]}."
        )
    scaled = apply_final_norm(model, cache, stack, (slice(None), -1))
    directions = logit_directions(model, answer_tokens)  # [batch, d_model]
    return einops.einsum(scaled, directions, "batch comp d, batch d -> comp batch")


def _dla_index(answer, pos, batch: int, n_pos: int, device) -> tuple[tuple, Tensor]:
    """Validate (answer, pos) and return the cache index and the answers at it. Chapter 05: induction heads."""
    if isinstance(answer, Tensor) and answer.ndim == 2:
        expect_dtype(answer, "int", "answer")
        expect_shape(answer, (batch, n_pos), "answer", "[batch, pos]")
        return (slice(None), slice(None)), answer.to(device)
    if isinstance(answer, int):
        answer = torch.full((batch,), answer)
    expect_dtype(answer, "int", "answer")
    expect_shape(answer, (batch,), "answer", "[batch]")
    if isinstance(pos, int):
        expect_range(pos, "pos", -n_pos, n_pos - 1)
        pos = torch.full((batch,), pos % n_pos)
    expect_shape(expect_dtype(pos, "int", "pos"), (batch,), "pos", "[batch]")
    return (torch.arange(batch, device=device), pos.to(device) % n_pos), answer.to(device)


def direct_logit_attribution(
    model,
    cache,
    answer: int | Int[Tensor, " batch"] | Int[Tensor, "batch pos"],
    pos: int | Int[Tensor, " batch"] = -1,
    wrong: int | Int[Tensor, " batch"] | Int[Tensor, "batch pos"] | None = None,
) -> Float[Tensor, "batch ... layer head"]:
    """Each head's direct contribution to the answer's logit: result_h through the final norm (frozen
    scale, `apply_final_norm`) onto gain * W_U[:, answer]; with `wrong`, to logit(answer) - logit(wrong).

    answer int or [batch] with pos int or [batch] -> [batch, layer, head]; answer [batch, pos] (every position,
    e.g. tokens[:, 1:] padded) -> [batch, pos, layer, head]. Summed with the embeddings, b_O and the biases
    of the final norm and the unembedding it gives the logit exactly.
    Chapter 05: induction heads (also chapter 04's name movers and the organisms' reports)."""
    z = torch.stack([cache[get_act_name("z", layer)] for layer in range(expect_model(model).cfg.n_layers)], dim=2)
    index, ans = _dla_index(answer, pos, z.shape[0], z.shape[1], z.device)
    wrong_at = None if wrong is None else _dla_index(wrong, pos, z.shape[0], z.shape[1], z.device)[1]
    expect_ids(ans, "answer", model.cfg.d_vocab)
    if wrong_at is not None:
        expect_ids(wrong_at, "wrong", model.cfg.d_vocab)
    z_at = z if isinstance(index[0], slice) else z[index]
    results = einops.einsum(
        z_at, model.W_O, "... layer head d_head, layer head d_head d_model -> ... layer head d_model"
    )
    results = apply_final_norm(model, cache, results, index)
    directions = logit_directions(model, ans, wrong_at)  # [*answer_shape, d_model]
    return einops.einsum(results, directions, "... layer head d_model, ... d_model -> ... layer head")


def logit_constant(model, answer_tokens: Int[Tensor, " batch"]) -> Float[Tensor, " batch"]:
    """The part of each answer's logit that no component writes: final-norm bias (LayerNorm only) plus
    unembedding bias. Chapter 00: foundations."""
    expect_ids(answer_tokens, "answer_tokens", expect_model(model).cfg.d_vocab)
    out = model.b_U[answer_tokens]
    bias = getattr(getattr(model, "ln_final", None), "b", None)
    return out + bias @ model.W_U[:, answer_tokens] if isinstance(bias, Tensor) else out


# --------------------------------------------------------------------------- ablation grids and searches


def mean_ablation_grid(model, tokens: Int[Tensor, "batch pos"]) -> Float[Tensor, "layer head"]:
    """Rise of the mean next-token loss when each head's output (hook_z) is replaced by its mean over the
    batch at each position, one head at a time: [n_layers, n_heads]. Mean ablation keeps the head's typical
    output, so the rise measures what the head adds for these particular inputs.

    Exercise 00.8. Chapter 00: foundations."""
    tokens = expect_tokens(tokens, "tokens", expect_model(model))
    grid = torch.zeros(model.cfg.n_layers, model.cfg.n_heads)
    with torch.no_grad():
        clean = model(tokens, return_type="loss").item()
        for layer in range(model.cfg.n_layers):
            for head in range(model.cfg.n_heads):
                hook = (get_act_name("z", layer), head_ablation_hook(head, "mean"))
                grid[layer, head] = model.run_with_hooks(tokens, return_type="loss", fwd_hooks=[hook]).item() - clean
    return grid


def heads_carrying_logit_diff(
    model,
    tokens: Int[Tensor, "batch pos"],
    correct: Int[Tensor, " batch"],
    wrong: Int[Tensor, " batch"],
    max_heads: int = 2,
    keep: float = 0.5,
) -> list[tuple[int, int]]:
    """The first set of at most `max_heads` heads (single heads first, then pairs, ...) whose joint mean
    ablation leaves at most `keep` of the mean logit difference logit[correct] - logit[wrong] at the last
    position; [] if none does.

    Exercise 00.9 (an open exercise: any set with the property passes). Chapter 00: foundations."""
    tokens = expect_tokens(tokens, "tokens", expect_model(model))
    correct = expect_ids(correct, "correct", model.cfg.d_vocab, ndim=1)
    wrong = expect_ids(expect_shape(wrong, tuple(correct.shape), "wrong", "[batch]"), "wrong", model.cfg.d_vocab)
    expect_shape(correct, (tokens.shape[0],), "correct", "[batch]")
    max_heads, keep = expect_int_at_least(max_heads, "max_heads", 1), expect_range(keep, "keep", 0.0, 1.0)
    clean = mean_logit_diff_ablated(model, tokens, correct, wrong, [])
    heads = [(layer, head) for layer in range(model.cfg.n_layers) for head in range(model.cfg.n_heads)]
    for size in range(1, max_heads + 1):
        for group in itertools.combinations(heads, size):
            if mean_logit_diff_ablated(model, tokens, correct, wrong, list(group)) <= keep * clean:
                return list(group)
    return []


def mean_logit_diff_ablated(
    model, tokens: Int[Tensor, "batch pos"], correct: Tensor, wrong: Tensor, heads: Sequence[tuple[int, int]]
) -> float:
    """Mean logit[correct] - logit[wrong] at the last position with the listed (layer, head)s mean-ablated
    (each head's hook_z replaced by its batch mean at each position).

    Chapter 00: foundations (measures Exercise 00.9)."""
    tokens = expect_tokens(tokens, "tokens", expect_model(model))
    correct = expect_shape(
        expect_ids(correct, "correct", model.cfg.d_vocab, 1), (tokens.shape[0],), "correct", "[batch]"
    )
    wrong = expect_shape(expect_ids(wrong, "wrong", model.cfg.d_vocab, 1), (tokens.shape[0],), "wrong", "[batch]")
    heads = expect_heads(list(heads), model, "heads") if heads else []
    by_layer: dict[int, list[int]] = {}
    for layer, head in heads:
        by_layer.setdefault(layer, []).append(head)
    fwd = [(get_act_name("z", layer), head_ablation_hook(hs, "mean")) for layer, hs in by_layer.items()]
    with torch.no_grad():
        last = model.run_with_hooks(tokens, fwd_hooks=fwd)[:, -1]
    rows = torch.arange(tokens.shape[0], device=last.device)
    return (last[rows, correct.to(last.device)] - last[rows, wrong.to(last.device)]).mean().item()
