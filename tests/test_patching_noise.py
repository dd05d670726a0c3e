"""tutorial_lib.patching.noise (causal tracing) against a plain-hooks loop: noise on the embeddings,
then each clean activation restored with run_with_hooks."""

from __future__ import annotations

import pytest
import torch
from patching_support import make_data, make_model, metric_for
from transformer_lens.utilities import get_act_name  # pyright: ignore[reportPrivateImportUsage]

from tutorial_lib import patching
from tutorial_lib.validation import TutorialInputError


def _naive(model, tokens, metric, noise, grid):
    hook = {"resid_pre": "resid_pre", "head_out_all_pos": "z"}[grid]
    _, clean_cache = model.run_with_cache(tokens)
    add = ("hook_embed", lambda e, hook: e + noise)  # noqa: ARG005
    rows = []
    for layer in range(model.cfg.n_layers):
        name = get_act_name(hook, layer)
        n = tokens.shape[1] if grid == "resid_pre" else model.cfg.n_heads
        row = []
        for i in range(n):

            def put(a, hook, i=i, name=name):  # noqa: ARG001
                a = a.clone()
                if grid == "resid_pre":
                    a[:, i] = clean_cache[name][:, i]
                else:
                    a[:, :, i] = clean_cache[name][:, :, i]
                return a

            row.append(metric(model.run_with_hooks(tokens, fwd_hooks=[add, (name, put)])).item())
        rows.append(row)
    return torch.tensor(rows)


@pytest.mark.parametrize("grid", ["resid_pre", "head_out_all_pos"])
def test_noise_patch_matches_hooks(device, grid):
    model = make_model(device)
    tokens, _, right, wrong = make_data(device, batch=3, n_pos=6)
    metric = metric_for(right, wrong)
    positions = torch.tensor([[1, 2], [0, 2], [2, 3]])
    values, clean, noised = patching.noise_patch(model, tokens, metric, positions, grid=grid, seed=3)
    noise = patching.embedding_noise(model, tokens, positions, seed=3)
    torch.testing.assert_close(values.cpu(), _naive(model, tokens, metric, noise, grid), atol=1e-4, rtol=1e-4)
    with torch.no_grad():
        assert abs(clean.item() - metric(model(tokens)).item()) < 1e-4
        noised_run = model.run_with_hooks(tokens, fwd_hooks=[("hook_embed", lambda e, hook: e + noise)])  # noqa: ARG005
    assert abs(noised.item() - metric(noised_run).item()) < 1e-4


def test_embedding_noise_only_at_positions(device):
    model = make_model(device)
    tokens = make_data(device, batch=2, n_pos=5)[0]
    noise = patching.embedding_noise(model, tokens, torch.tensor([[1], [3]]), scale=3.0, seed=0)
    touched = noise.abs().sum(-1) > 0
    assert touched.tolist() == [[False, True, False, False, False], [False, False, False, True, False]]
    want = 3.0 * model.W_E.std().item()
    assert abs(noise[touched].std().item() - want) < 0.35 * want
    assert torch.equal(noise, patching.embedding_noise(model, tokens, torch.tensor([[1], [3]]), seed=0))


def test_embedding_noise_rejects_bad_positions(device):
    model = make_model(device)
    tokens = make_data(device, batch=2, n_pos=5)[0]
    with pytest.raises(TutorialInputError, match="one row per prompt"):
        patching.embedding_noise(model, tokens, torch.tensor([[1]]))
    with pytest.raises(TutorialInputError, match="positions must lie"):
        patching.embedding_noise(model, tokens, torch.tensor([[1], [9]]))
