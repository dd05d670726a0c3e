"""Helpers shared by the tests of tutorial_lib.probing: random native models and planted data."""

from __future__ import annotations

import functools

import torch
from transformer_lens.config import TransformerBridgeConfig
from transformer_lens.model_bridge import TransformerBridge

D_MODEL, D_VOCAB, SEQ = 32, 20, 10


def native_model(device, n_layers: int = 2, seed: int = 0):
    cfg = TransformerBridgeConfig(
        n_layers=n_layers,
        d_model=D_MODEL,
        n_heads=4,
        d_head=8,
        d_mlp=64,
        d_vocab=D_VOCAB,
        n_ctx=16,
        normalization_type="LN",
        seed=seed,
        device=str(device),
    )
    model = TransformerBridge.boot_native(cfg)  # pyright: ignore[reportAttributeAccessIssue]
    model.eval()
    return model


@functools.cache
def _shared(device: str):
    return native_model(torch.device(device))


def shared_model(device):
    """One random 2-layer native model per device, shared by the tests (read-only)."""
    return _shared(str(device))


def planted_clusters(device, n=600, d=20, sep=3.0, seed=0):
    """Two isotropic Gaussian classes whose means differ only along a random unit direction u."""
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(d, generator=g)
    u = u / u.norm()
    y = torch.randint(0, 2, (n,), generator=g)
    X = torch.randn(n, d, generator=g) + (y.float() - 0.5)[:, None] * sep * u + 0.5 * torch.randn(d, generator=g)
    return X.to(device), y.to(device), u.to(device)
