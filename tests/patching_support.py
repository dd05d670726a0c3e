"""Helpers shared by the tests of tutorial_lib.patching: tiny native bridges, clean/corrupted pairs, metrics."""

from __future__ import annotations

from pathlib import Path

import torch
import transformer_lens.patching as tlp
from transformer_lens.config import TransformerBridgeConfig
from transformer_lens.model_bridge import TransformerBridge

from tutorial_lib import patching

TL_GRIDS = {grid: getattr(tlp, name) for grid, name in patching.TRANSFORMERLENS.items()}
ORGANISMS = Path(patching.__file__).parents[1] / "data" / "organisms"


def make_model(device, attn_only=False, n_layers=2, seed=0, dtype=torch.float32, d_vocab=40, n_heads=4):
    cfg = TransformerBridgeConfig(n_layers=n_layers, d_model=32, n_heads=n_heads, d_head=8, d_mlp=64, d_vocab=d_vocab,
                                  n_ctx=16, attn_only=attn_only, normalization_type="LN", seed=seed,
                                  device=str(device), dtype=dtype)  # fmt: skip
    torch.manual_seed(seed)
    model = TransformerBridge.boot_native(cfg).eval()  # pyright: ignore[reportAttributeAccessIssue]
    return model.double() if dtype == torch.float64 else model


def make_data(device, batch=2, n_pos=5, d_vocab=40, seed=0, diff_pos=2):
    gen = torch.Generator().manual_seed(seed)
    clean = torch.randint(d_vocab, (batch, n_pos), generator=gen)
    corrupted = clean.clone()
    corrupted[:, diff_pos] = (clean[:, diff_pos] + 1 + torch.randint(d_vocab - 1, (batch,), generator=gen)) % d_vocab
    right, wrong = torch.randint(d_vocab, (2, batch), generator=gen)
    return [t.to(device) for t in (clean, corrupted, right, wrong)]


def metric_for(right, wrong):
    return lambda logits: patching.logit_diff(logits, right, wrong)
