"""The planted-circuit organism of chapter 07 (circuit discovery): a two-layer attention-only model (no LayerNorm) whose weights are
set by hand, so that its circuit is known by construction, not by anyone's analysis.

The task is induction on sequences of distinct tokens whose last token repeats an earlier one: predict the
token that followed it. The residual stream is split into orthogonal blocks: positions (one-hot), the
token (one-hot), the previous token, the answer, and a junk block.

* a0.0, a previous-token head: its query and key read positions only (key j scores for the query at j + 1),
  its value reads the token; it writes the previous token's one-hot into the "previous" block.
* a1.0, an induction head: its query reads the token, its key reads the "previous" block, its value reads
  the token; it writes into the "answer" block, which is all the unembedding reads.
* every other head is a distractor with random query, key and value weights over the whole stream, and
  writes only into the junk block, which no circuit head and no logit reads.

So with clean and corrupted prompts at the same positions, exactly these edges can change the logits:
embed -> a0.0.v, a0.0 -> a1.0.k, embed -> a1.0.q, embed -> a1.0.v, a1.0 -> logits (TRUE_EDGES). The
positional edges embed -> a0.0.q and embed -> a0.0.k are part of the mechanism but carry the same value in
both runs (POSITION_EDGES). Every other edge carries nothing.
"""

from __future__ import annotations

import math

import torch
from jaxtyping import Int
from torch import Tensor

from ..tasks.seeding import torch_generator
from ..validation import expect_int_at_least

__all__ = ["PLANTED_CONFIG", "POSITION_EDGES", "TRUE_EDGES", "planted_pairs", "set_planted_weights"]

N_POS, D_VOCAB, D_JUNK, N_HEADS = 16, 20, 8, 4
D_MODEL = N_POS + 3 * D_VOCAB + D_JUNK
PLANTED_CONFIG: dict = dict(
    n_layers=2,
    d_model=D_MODEL,
    n_heads=N_HEADS,
    d_head=D_VOCAB,
    d_vocab=D_VOCAB,
    n_ctx=N_POS,
    attn_only=True,
    normalization_type=None,
    act_fn="relu",
    seed=0,
)
TRUE_EDGES = [("embed", "a0.0.v"), ("a0.0", "a1.0.k"), ("embed", "a1.0.q"), ("embed", "a1.0.v"), ("a1.0", "logits")]
POSITION_EDGES = [("embed", "a0.0.q"), ("embed", "a0.0.k")]
SHARPNESS, LOGIT_SCALE = 12.0, 10.0


def _blocks() -> dict[str, slice]:
    """The residual stream's orthogonal blocks. Chapter 07: circuit discovery (the planted-2l organism)."""
    starts = [0, N_POS, N_POS + D_VOCAB, N_POS + 2 * D_VOCAB, N_POS + 3 * D_VOCAB, N_POS + 3 * D_VOCAB + D_JUNK]
    names = ["pos", "tok", "prev", "out", "junk"]
    return {n: slice(a, b) for n, a, b in zip(names, starts[:-1], starts[1:])}


def _raw(module):
    """The wrapped torch module of a bridge component. Chapter 07: circuit discovery (the planted-2l organism)."""
    return getattr(module, "original_component", module)


def _head_weights(seed: int) -> dict[str, Tensor]:
    """W_Q, W_K, W_V [layer, head, d_model, d_head] and W_O [layer, head, d_head, d_model] of the planted model.

    Chapter 07: circuit discovery (the planted-2l organism).
    """
    b, d, dh = _blocks(), D_MODEL, D_VOCAB
    gen = torch.Generator().manual_seed(seed)
    w = {k: torch.randn(2, N_HEADS, d, dh, generator=gen) / math.sqrt(d) for k in ("W_Q", "W_K", "W_V")}
    w["W_O"] = torch.zeros(2, N_HEADS, dh, d)
    w["W_O"][:, :, :, b["junk"]] = torch.randn(2, N_HEADS, dh, D_JUNK, generator=gen) / math.sqrt(dh)
    scale = SHARPNESS * math.sqrt(dh)  # the model divides scores by sqrt(d_head)
    eye_pos, eye_tok = torch.eye(N_POS), torch.eye(D_VOCAB)
    for k in ("W_Q", "W_K", "W_V", "W_O"):
        w[k][:, 0] = 0.0
    w["W_Q"][0, 0, b["pos"], :N_POS] = eye_pos * scale  # query at p ...
    w["W_K"][0, 0, b["pos"], :N_POS] = torch.roll(eye_pos, 1, dims=1)  # ... matches the key at p - 1
    w["W_V"][0, 0, b["tok"]] = eye_tok
    w["W_O"][0, 0, :, b["prev"]] = eye_tok
    w["W_Q"][1, 0, b["tok"]] = eye_tok * scale  # the current token ...
    w["W_K"][1, 0, b["prev"]] = eye_tok  # ... matches a key whose previous token it is
    w["W_V"][1, 0, b["tok"]] = eye_tok
    w["W_O"][1, 0, :, b["out"]] = eye_tok * LOGIT_SCALE
    w["W_K"][0, 0, b["pos"].start, :] = 0.0  # position 0 has no predecessor (roll wrapped it)
    return w


def set_planted_weights(model, seed: int = 0) -> dict:
    """Write the planted weights into a native bridge built from PLANTED_CONFIG; returns the card's notes.

    Chapter 07: circuit discovery (the planted-2l organism).
    """
    b, w = _blocks(), _head_weights(seed)
    d, dh = D_MODEL, D_VOCAB
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        _raw(model.embed).weight[:, b["tok"]] = torch.eye(D_VOCAB)
        _raw(model.pos_embed).weight[:, b["pos"]] = torch.eye(N_POS)
        _raw(model.unembed).weight[:, b["out"]] = torch.eye(D_VOCAB)
        for layer, block in enumerate(model.blocks):
            attn = _raw(_raw(block).attn)
            for name, key in (("q", "W_Q"), ("k", "W_K"), ("v", "W_V")):
                _raw(getattr(attn, name)).weight.copy_(w[key][layer].permute(0, 2, 1).reshape(N_HEADS * dh, d))
            _raw(attn.o).weight.copy_(w["W_O"][layer].reshape(N_HEADS * dh, d).T)
    return {
        "construction": "weights set by hand (tutorial_lib.organisms.planted), no training",
        "true_edges": [f"{s}->{r}" for s, r in TRUE_EDGES],
        "position_edges": [f"{s}->{r}" for s, r in POSITION_EDGES],
    }


def planted_pairs(batch: int, seed=0) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(clean, corrupted, clean_answer, corrupted_answer): sequences of N_POS distinct tokens but the last,
    which repeats the token at a random position i in [1, N_POS - 3] (the answer is the token at i + 1); the
    corrupted sequence is an independent one of the same kind.

    Chapter 07: circuit discovery (the planted-2l organism).
    """
    gen = torch_generator(seed)
    n = expect_int_at_least(batch, "batch", 1)
    seqs, answers = [], []
    for _ in range(2 * n):
        toks = torch.randperm(D_VOCAB, generator=gen)[: N_POS - 1]
        i = int(torch.randint(1, N_POS - 2, (1,), generator=gen))
        seqs.append(torch.cat([toks, toks[i : i + 1]]))
        answers.append(toks[i + 1])
    tokens: Int[Tensor, "two_batch pos"] = torch.stack(seqs)
    ans = torch.stack(answers)
    return tokens[:n], tokens[n:], ans[:n], ans[n:]
