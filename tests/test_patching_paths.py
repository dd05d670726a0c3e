"""tutorial_lib.patching.paths against the three-step recipe with plain hooks, one sender at a time."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from patching_support import make_data, make_model, metric_for
from transformer_lens.utilities import get_act_name  # pyright: ignore[reportPrivateImportUsage]

from tutorial_lib import patching
from tutorial_lib.validation import TutorialInputError


def _naive_path_patch(model, clean, corrupted, metric, receivers, kinds, freeze_mlps=False):
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    _, cc = model.run_with_cache(clean)
    _, xc = model.run_with_cache(corrupted)
    out = torch.zeros(n_layers, n_heads, device=clean.device)
    for sl in range(n_layers):
        for sh in range(n_heads):

            def freeze(_z, hook, layer=None):
                layer = int(hook.name.split(".")[1]) if layer is None else layer
                new = cc[get_act_name("z", layer)].clone()
                if layer == sl:  # noqa: B023 (used within this iteration)
                    new[:, :, sh] = xc[get_act_name("z", layer)][:, :, sh]  # noqa: B023 (used within this iteration)
                return new

            hooks: list[tuple[str, Callable]] = [(get_act_name("z", layer), lambda z, hook, layer=layer: freeze(z, hook, layer))
                     for layer in range(n_layers)]  # fmt: skip
            if freeze_mlps:
                hooks += [(get_act_name("mlp_out", layer), lambda _a, hook, layer=layer: cc[get_act_name("mlp_out", layer)])  # noqa: ARG005
                          for layer in range(n_layers)]  # fmt: skip
            if receivers is None:
                out[sl, sh] = metric(model.run_with_hooks(clean, fwd_hooks=hooks))
                continue
            store = {}
            for layer, _ in receivers:
                for k in kinds:
                    hooks.append((get_act_name(k, layer),
                                  lambda a, hook, n=get_act_name(k, layer): store.__setitem__(n, a.clone())))  # fmt: skip  # noqa: ARG005, B008, B023 (used within this iteration)
            model.run_with_hooks(clean, fwd_hooks=hooks)
            patch = []
            for layer, head in receivers:
                for k in kinds:
                    name = get_act_name(k, layer)

                    def put(a, hook, name=name, head=head):  # noqa: ARG001 - TransformerLens calls hooks with hook=
                        a = a.clone()
                        a[:, :, head] = store[name][:, :, head]  # noqa: B023 (used within this iteration)
                        return a

                    patch.append((name, put))
            out[sl, sh] = metric(model.run_with_hooks(clean, fwd_hooks=patch))
    return out


@pytest.mark.parametrize(
    "receivers,kinds,freeze",
    [(None, ("q",), False), (None, ("q",), True), ([(1, 0), (2, 1)], ("k", "v"), False)],
)
def test_path_patching_matches_naive_recipe(device, receivers, kinds, freeze):
    model = make_model(device, n_layers=3, n_heads=2)
    clean, corrupted, right, wrong = make_data(device, n_pos=4, seed=2, diff_pos=1)
    metric = metric_for(right, wrong)
    got = patching.path_patch(model, clean, corrupted, metric, receivers, kinds, freeze_mlps=freeze)
    want = _naive_path_patch(model, clean, corrupted, metric, receivers, kinds, freeze_mlps=freeze)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    if receivers is not None:  # senders at or after the last receiver's layer have no path: clean metric
        torch.testing.assert_close(got[2], metric(model(clean)).expand(2), atol=1e-5, rtol=0)


@pytest.mark.parametrize("receivers,kinds,freeze", [(None, ("q",), True), ([(2, 0), (2, 1)], ("q",), False)])
def test_group_path_patching_of_one_head_is_path_patching(device, receivers, kinds, freeze):
    model = make_model(device, n_layers=3, n_heads=2)
    clean, corrupted, right, wrong = make_data(device, n_pos=4, seed=3, diff_pos=1)
    metric = metric_for(right, wrong)
    grid = patching.path_patch(model, clean, corrupted, metric, receivers, kinds, freeze_mlps=freeze)
    for sender in [(0, 0), (0, 1), (1, 1)]:
        got = patching.path_patch_group(model, clean, corrupted, metric, [sender], receivers, kinds, freeze_mlps=freeze)
        torch.testing.assert_close(got, grid[sender], atol=1e-5, rtol=0)


def test_group_path_patching_corrupts_the_senders_together(device):
    """Attention-only, 1 layer, receivers = logits: corrupting a group of heads along their direct paths is
    patching those heads' corrupted outputs into the clean run; a group differs from its members alone."""
    model = make_model(device, attn_only=True, n_layers=1, n_heads=4)
    clean, corrupted, right, wrong = make_data(device, seed=4)
    metric = metric_for(right, wrong)
    _, xc = model.run_with_cache(corrupted)

    def hook(z, hook):
        z = z.clone()
        z[:, :, [1, 3]] = xc[hook.name][:, :, [1, 3]]
        return z

    want = metric(model.run_with_hooks(clean, fwd_hooks=[("blocks.0.attn.hook_z", hook)]))
    got = patching.path_patch_group(model, clean, corrupted, metric, [(0, 1), (0, 3)])
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    alone = patching.path_patch(model, clean, corrupted, metric)
    assert not torch.isclose(got, alone[0, 1], atol=1e-4) and not torch.isclose(got, alone[0, 3], atol=1e-4)
    with pytest.raises(TutorialInputError, match="senders must be a non-empty list"):
        patching.path_patch_group(model, clean, corrupted, metric, [])


@pytest.mark.parametrize("kinds", ["q", "k", ("q", "k", "v")])
def test_several_groups_at_once_are_each_group_alone(device, kinds):
    """path_patch_groups (a sender group and its control groups in one batch) = path_patch_group of each."""
    model = make_model(device, n_layers=3, n_heads=2)
    clean, corrupted, right, wrong = make_data(device, n_pos=4, seed=3, diff_pos=1)
    metric = metric_for(right, wrong)
    groups = [[(0, 0), (1, 1)], [(0, 1)], [(1, 0), (0, 0)]]
    got = patching.path_patch_groups(model, clean, corrupted, metric, groups, receivers=[(2, 0)], receiver_input=kinds)
    want = torch.stack([patching.path_patch_group(model, clean, corrupted, metric, g, receivers=[(2, 0)],
                                                  receiver_input=kinds) for g in groups])  # fmt: skip
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


def test_path_patching_to_logits_with_everything_frozen_is_direct_effect(device):
    """Attention-only, 1 layer: sender -> logits path patching equals plain head patching (clean run)."""
    model = make_model(device, attn_only=True, n_layers=1)
    clean, corrupted, right, wrong = make_data(device)
    metric = metric_for(right, wrong)
    got = patching.path_patch(model, clean, corrupted, metric)
    want = patching.activation_patch(model, corrupted, clean, metric, "head_out_all_pos")  # corrupted into clean
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
