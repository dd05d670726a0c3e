"""Shared helpers for the tests of tutorial_lib.attention: hand-built patterns and tiny models."""

from __future__ import annotations

import torch
from transformer_lens.config import TransformerBridgeConfig
from transformer_lens.model_bridge import TransformerBridge


def offset_pattern(batch: int, heads: int, n: int, back: int | torch.Tensor, device) -> torch.Tensor:
    """Each query q attends fully to q - back (to itself where q - back < 0): [batch, heads, n, n]."""
    back = back if isinstance(back, torch.Tensor) else torch.full((batch,), back)
    q = torch.arange(n)[None, :]
    k = (q - back[:, None]).clamp(min=0)
    pat = torch.nn.functional.one_hot(k, n).float()[:, None].expand(batch, heads, n, n)
    return pat.clone().to(device)


def causal_uniform(batch: int, heads: int, n: int, device) -> torch.Tensor:
    pat = torch.tril(torch.ones(n, n, device=device))
    pat = pat / pat.sum(-1, keepdim=True)
    return pat.expand(batch, heads, n, n).clone()


def tiny_model(device, seed=0, n_layers=2, n_heads=3, d_model=24, d_vocab=20, n_ctx=16, ln="LN"):
    cfg = TransformerBridgeConfig(n_layers=n_layers, d_model=d_model, n_heads=n_heads, d_head=d_model // n_heads,
                                  d_vocab=d_vocab, n_ctx=n_ctx, attn_only=True, normalization_type=ln, seed=seed,
                                  device=str(device))  # fmt: skip
    model = TransformerBridge.boot_native(cfg)  # pyright: ignore[reportAttributeAccessIssue]
    model.eval()
    return model


def model_getter():
    """One model per (device, ln), built on first use; booting is slow, the tests only read the models."""
    cache = {}

    def get(device, ln="LN"):
        key = (str(device), ln)
        if key not in cache:
            model = tiny_model(device, ln=ln)
            # Non-trivial LayerNorm weights and biases, so folding and DLA are really exercised.
            with torch.no_grad():
                for name, p in model.named_parameters():
                    if "ln" in name or name.endswith("bias"):
                        p.add_(0.3 * torch.randn_like(p))
            cache[key] = model
        return cache[key]

    return get
