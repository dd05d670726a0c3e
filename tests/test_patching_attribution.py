"""tutorial_lib.patching.attribution: the exact linearisation, and how well it tracks activation patching."""

from __future__ import annotations

import torch
from patching_support import TL_GRIDS, make_data, make_model, metric_for
from transformer_lens.utilities import get_act_name  # pyright: ignore[reportPrivateImportUsage]

from tutorial_lib import patching


def test_attribution_is_the_exact_linearisation(device):
    """(metric(corr + eps * (clean - corr) at one cell) - metric(corr)) / eps -> the attribution as eps -> 0."""
    model = make_model(device, dtype=torch.float64)
    clean, corrupted, right, wrong = make_data(device, n_pos=4)
    metric = metric_for(right, wrong)
    attr = patching.attribution_patch(model, clean, corrupted, metric)
    assert set(attr) == set(TL_GRIDS)
    _, cc = model.run_with_cache(clean)
    _, xc = model.run_with_cache(corrupted)
    base = metric(model(corrupted))
    eps = 1e-6
    all_ = slice(None)
    cells = [  # grid, hook, layer, index into the activation, cell of the grid
        ("resid_pre", "resid_pre", 1, (all_, 2), (1, 2)),
        ("mlp_out", "mlp_out", 0, (all_, 3), (0, 3)),
        ("attn_out", "attn_out", 1, (all_, 2), (1, 2)),
        ("head_out_by_pos", "z", 0, (all_, 2, 1), (0, 2, 1)),
        ("head_out_all_pos", "z", 1, (all_, all_, 3), (1, 3)),
        ("head_pattern_all_pos", "pattern", 1, (all_, 2), (1, 2)),
        ("head_pattern_by_pos", "pattern", 1, (all_, 0, 3), (1, 0, 3)),
    ]
    for grid, kind, layer, index, cell in cells:
        name = get_act_name(kind, layer)

        def nudge(act, hook, name=name, index=index):  # noqa: ARG001 - TransformerLens calls hooks with hook=
            act = act.clone()
            act[index] = xc[name][index] + eps * (cc[name][index] - xc[name][index])
            return act

        fd = (metric(model.run_with_hooks(corrupted, fwd_hooks=[(name, nudge)])) - base) / eps
        torch.testing.assert_close(attr[grid][cell].double(), fd.double(), atol=1e-4, rtol=1e-3, msg=grid)
    assert all(p.grad is None for p in model.parameters())


def test_attribution_tracks_activation_patching_on_a_smooth_model(device):
    model = make_model(device, attn_only=True, seed=3)
    with torch.no_grad():
        for block in model.blocks:  # near-uniform attention: the model is close to linear in each activation
            block.attn.q.original_component.weight.mul_(0.1)
            block.attn.k.original_component.weight.mul_(0.1)
    clean, corrupted, right, wrong = make_data(device, batch=4, n_pos=6, diff_pos=1)
    metric = metric_for(right, wrong)
    base = metric(model(corrupted))
    attr = patching.attribution_patch(model, clean, corrupted, metric, ["head_out_by_pos"])["head_out_by_pos"]
    real = patching.activation_patch(model, clean, corrupted, metric, "head_out_by_pos") - base
    corr = torch.corrcoef(torch.stack([attr.flatten(), real.flatten()]))[0, 1]
    assert corr > 0.95, corr
