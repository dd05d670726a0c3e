"""tutorial_lib.patching.ablation against naive hooks and against the head ablation of tutorial_lib.hooks."""

from __future__ import annotations

import pytest
import torch
from patching_support import make_data, make_model, metric_for
from transformer_lens.utilities import get_act_name  # pyright: ignore[reportPrivateImportUsage]

from tutorial_lib import hooks, patching


def _naive_ablation(model, tokens, metric, hook_kind, layer, index, value_fn):
    def hook(act, hook):  # noqa: ARG001 - TransformerLens calls hooks with hook=
        act = act.clone()
        act[index] = value_fn(layer)[index]
        return act

    return metric(model.run_with_hooks(tokens, fwd_hooks=[(get_act_name(hook_kind, layer), hook)]))


@pytest.mark.parametrize("method", ["zero", "mean", "resample"])
def test_ablations_match_naive_hooks(device, method):
    model = make_model(device)
    tokens, reference, right, wrong = make_data(device, batch=3, n_pos=4, seed=1)
    metric = metric_for(right, wrong)
    _, ref_cache = model.run_with_cache(reference)
    _, cache = model.run_with_cache(tokens)
    pick = torch.randint(3, (3,), generator=torch.Generator().manual_seed(7)).to(device)

    def values(kind):
        def fn(layer):
            act, ref = cache[get_act_name(kind, layer)], ref_cache[get_act_name(kind, layer)]
            return {"zero": torch.zeros_like(act), "mean": ref.mean(0, keepdim=True).expand_as(act),
                    "resample": ref[pick]}[method]  # fmt: skip

        return fn

    all_ = slice(None)
    heads = patching.ablate(model, tokens, metric, "head", method, reference_tokens=reference, seed=7)
    heads_pos = patching.ablate(model, tokens, metric, "head", method, by_pos=True, reference_tokens=reference, seed=7)
    mlp_layers = patching.ablate(model, tokens, metric, "mlp_out", method, reference_tokens=reference, seed=7)
    resid_pos = patching.ablate(model, tokens, metric, "resid_pre", method, True, reference, seed=7)
    assert heads.shape == (2, 4) and heads_pos.shape == (2, 4, 4) and mlp_layers.shape == (2,)
    for layer in range(2):
        for h in (0, 3):
            want = _naive_ablation(model, tokens, metric, "z", layer, (all_, all_, h), values("z"))
            torch.testing.assert_close(heads[layer, h], want, atol=1e-5, rtol=0)
        want = _naive_ablation(model, tokens, metric, "z", layer, (all_, 2, 1), values("z"))
        torch.testing.assert_close(heads_pos[layer, 2, 1], want, atol=1e-5, rtol=0)
        want = _naive_ablation(model, tokens, metric, "mlp_out", layer, (all_,), values("mlp_out"))
        torch.testing.assert_close(mlp_layers[layer], want, atol=1e-5, rtol=0)
        want = _naive_ablation(model, tokens, metric, "resid_pre", layer, (all_, 3), values("resid_pre"))
        torch.testing.assert_close(resid_pos[layer, 3], want, atol=1e-5, rtol=0)


def test_zero_ablating_heads_with_the_loss_as_metric_is_hooks_ablate_head_loss(device):
    """One head ablation: the grid of zero-ablated heads, with the next-token loss as the metric, equals
    tutorial_lib.hooks.ablate_head_loss head by head."""
    model = make_model(device)
    tokens, *_ = make_data(device, batch=3, n_pos=6, seed=4)
    grid = patching.ablate(model, tokens, lambda logits: hooks.per_token_loss(logits, tokens).mean(), "head", "zero")
    for layer in range(model.cfg.n_layers):
        for head in range(model.cfg.n_heads):
            assert grid[layer, head].item() == pytest.approx(
                hooks.ablate_head_loss(model, tokens, layer, head), abs=1e-5
            )


def test_mean_ablate_head_is_one_cell_of_the_grid(device):
    model = make_model(device)
    tokens, reference, right, wrong = make_data(device, batch=3, n_pos=4, seed=1)
    metric = metric_for(right, wrong)
    grid = patching.ablate(model, tokens, metric, "head", "mean", reference_tokens=reference)
    assert patching.mean_ablate_head(model, tokens, metric, 1, 2, reference) == grid[1, 2].item()
