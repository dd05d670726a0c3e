"""tutorial_lib.patching.search: a group of heads patched together, and the greedy head-set search."""

from __future__ import annotations

import pytest
import torch
from patching_support import make_data, make_model, metric_for

from tutorial_lib import patching
from tutorial_lib.validation import TutorialInputError


def test_one_head_group_is_head_patching(device):
    model = make_model(device)
    clean, corrupted, right, wrong = make_data(device, batch=3, n_pos=6)
    metric = metric_for(right, wrong)
    grid = patching.patch_head_out_all_pos(model, clean, corrupted, metric)
    for layer, head in [(0, 1), (1, 3)]:
        got = patching.patch_head_group(model, clean, corrupted, metric, [(layer, head)])
        assert abs(got.item() - grid[layer, head].item()) < 1e-4


def test_patch_head_group_rejects_bad_heads(device):
    model = make_model(device)
    clean, corrupted, right, wrong = make_data(device, batch=2, n_pos=5)
    with pytest.raises(TutorialInputError):
        patching.patch_head_group(model, clean, corrupted, metric_for(right, wrong), [(5, 0)])


def test_greedy_head_set_takes_the_best_head_first(device):
    model = make_model(device)
    clean, corrupted, right, wrong = make_data(device, batch=3, n_pos=6)
    metric = metric_for(right, wrong)
    found = patching.greedy_head_set(model, clean, corrupted, metric, max_heads=2)
    assert found.shape == (2, 2) and found.dtype == torch.long
    chosen = [(int(a), int(b)) for a, b in found.tolist()]
    grid = patching.patch_head_out_all_pos(model, clean, corrupted, metric)
    best = divmod(int(grid.argmax()), model.cfg.n_heads)
    assert chosen[0] == best and len(chosen) == 2 and chosen[1] != chosen[0]
    pair = patching.patch_head_group(model, clean, corrupted, metric, chosen).item()
    for h in [(layer, h) for layer in range(2) for h in range(4) if (layer, h) != best]:
        assert pair >= patching.patch_head_group(model, clean, corrupted, metric, [best, h]).item() - 1e-6
