"""tutorial_lib.patching.metrics and the input checks every patching kernel shares (grids)."""

from __future__ import annotations

import pytest
import torch
from patching_support import make_data, make_model, metric_for

from tutorial_lib import patching
from tutorial_lib.validation import TutorialInputError


def test_logit_diff_and_normalise(device):
    logits = torch.zeros(2, 3, 5, device=device)
    logits[0, -1, 1], logits[0, -1, 2] = 3.0, 1.0
    logits[1, 0, 4] = 2.0
    right, wrong = torch.tensor([1, 4], device=device), torch.tensor([2, 0], device=device)
    assert patching.logit_diff(logits, right, wrong).item() == pytest.approx(1.0)
    per = patching.logit_diff(logits, right, wrong, positions=torch.tensor([2, 0]), per_prompt=True)
    assert per.tolist() == [2.0, 2.0]
    assert patching.normalise(torch.tensor(1.5), 2.0, 1.0).item() == pytest.approx(0.5)
    with pytest.raises(TutorialInputError, match="differ"):
        patching.normalise(1.0, 2.0, 2.0)


def test_input_validation(device):
    model = make_model(device, attn_only=True, n_layers=1)
    clean, corrupted, right, wrong = make_data(device)
    metric = metric_for(right, wrong)
    with pytest.raises(TutorialInputError, match="same shape"):
        patching.patch_resid_pre(model, clean, corrupted[:, :-1], metric)
    with pytest.raises(TutorialInputError, match="valid grids: resid_pre, attn_out"):
        patching.activation_patch(model, clean, corrupted, metric, "resid_post")
    with pytest.raises(TutorialInputError, match="attention-only"):
        patching.activation_patch(model, clean, corrupted, metric, "mlp_out")
    with pytest.raises(TutorialInputError, match="scalar"):
        patching.patch_resid_pre(model, clean, corrupted, lambda lg: lg[:, -1, 0])
    with pytest.raises(TutorialInputError, match="int"):
        patching.patch_resid_pre(model, clean.float(), corrupted.float(), metric)
    with pytest.raises(TutorialInputError, match="method"):
        patching.ablate(model, clean, metric, "head", "median")
    with pytest.raises(TutorialInputError, match="component"):
        patching.ablate(model, clean, metric, "mlp_out")
    with pytest.raises(TutorialInputError, match="receiver"):
        patching.path_patch(model, clean, corrupted, metric, receivers=[(5, 0)])
    with pytest.raises(TutorialInputError, match="valid grids"):
        patching.attribution_patch(model, clean, corrupted, metric, ["head_out"])
    model.train()
    with pytest.raises(TutorialInputError, match="eval"):
        patching.patch_resid_pre(model, clean, corrupted, metric)
