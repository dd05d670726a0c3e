"""tutorial_lib.probing.controls: control labels keyed by token type, and selectivity."""

from __future__ import annotations

import pytest
import torch

from tutorial_lib import probing


def test_control_labels_are_a_function_of_token_type(device):
    tok = torch.randint(0, 30, (500,), device=device)
    labels = torch.randint(0, 3, (500,), device=device)
    ctrl = probing.control_labels(tok, labels, seed=0)
    for t in tok.unique():
        assert ctrl[tok == t].unique().numel() == 1
    assert torch.equal(ctrl, probing.control_labels(tok, labels, seed=0))
    assert not torch.equal(ctrl, probing.control_labels(tok, labels, seed=1))
    assert set(ctrl.unique().tolist()) <= set(labels.unique().tolist())


def test_selectivity_separates_property_from_token_identity(device):
    """Hewitt-Liang: control labels are a fixed random label per token type.

    Activations carrying only a planted property direction: real accuracy high, control at chance.
    The same plus distinct token embeddings: the probe memorises token identity, so control is high
    and selectivity drops although real accuracy does not.
    """
    g = torch.Generator().manual_seed(4)
    n_types, d, n = 20, 64, 3000
    emb = 2 * torch.randn(n_types, d, generator=g)
    u = torch.randn(d, generator=g)
    u = u / u.norm()
    tok = torch.randint(0, n_types, (n,), generator=g)
    y = torch.randint(0, 2, (n,), generator=g)
    prop = 3 * (y.float() - 0.5)[:, None] * u + torch.randn(n, d, generator=g)
    ds = probing.make_dataset(
        prop.to(device),
        y.to(device),
        torch.arange(n).div(5, rounding_mode="floor").to(device),
        token_ids=tok.to(device),
    )
    only = probing.control_task(ds, "logistic")
    assert only.real > 0.85 and only.control < only.control_chance + 0.03
    ctrl = probing.control_labels(tok, y)[ds.test_idx.cpu()]
    assert only.control_chance == pytest.approx(max(ctrl.float().mean().item(), 1 - ctrl.float().mean().item()))
    both = probing.control_task(ds.with_acts((prop + emb[tok]).to(device)), "logistic")
    assert both.real > 0.85 and both.control > 0.95
    assert both.selectivity < only.selectivity - 0.1
    # the same seed gives the same control labels, hence the same numbers
    assert probing.control_task(ds, "logistic").control == only.control
