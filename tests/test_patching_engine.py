"""tutorial_lib.patching.engine and .native: the engines reproduce the model, their self-checks run once per
model, and the switch (engine=, TUTORIAL_PATCHING_ENGINE) picks the engine without any state to reset."""

from __future__ import annotations

import pytest
import torch
from patching_support import TL_GRIDS, make_data, make_model, metric_for
from transformer_lens.utilities import get_act_name  # pyright: ignore[reportPrivateImportUsage]

from tutorial_lib import patching
from tutorial_lib.patching import engine, native
from tutorial_lib.validation import TutorialInputError


@pytest.mark.parametrize("attn_only", [False, True])
def test_forward_from_layer_reproduces_the_model(device, attn_only):
    model = make_model(device, attn_only=attn_only, n_layers=3)
    tokens, *_ = make_data(device, batch=3, n_pos=6)
    logits, cache = model.run_with_cache(tokens)
    for layer in range(3):
        resid = cache[get_act_name("resid_pre", layer)]
        for name in engine.ENGINES:
            got = patching.forward_from_layer(model, resid, layer, engine=name)
            torch.testing.assert_close(got, logits, atol=1e-5, rtol=0)
            if layer + 1 < 3:  # (run_with_hooks ignores stop_at_layer=n_layers and returns logits)
                stop = patching.forward_from_layer(model, resid, layer, stop_at_layer=layer + 1, engine=name)
                torch.testing.assert_close(stop, cache[get_act_name("resid_post", layer)], atol=1e-5, rtol=0)
    assert engine.block_stack_ok(model) and patching.engine_for(model) == "native"
    fast_logits, fast_cache = native.fast_cache(model, tokens)
    torch.testing.assert_close(fast_logits, logits, atol=1e-5, rtol=0)
    for name, act in fast_cache.items():
        torch.testing.assert_close(act, cache[name], atol=1e-5, rtol=0)


def test_forward_from_layer_runs_the_bare_blocks_without_an_earlier_check(device, monkeypatch):
    """A fresh model: forward_from_layer runs its own (memoised) check and then the bare blocks; nothing has
    to be called first."""
    model = make_model(device)
    tokens, *_ = make_data(device)
    logits, cache = model.run_with_cache(tokens)
    monkeypatch.setattr(model, "run_with_hooks", lambda *_a, **_k: pytest.fail("start_at_layer was used"))
    got = patching.forward_from_layer(model, cache[get_act_name("resid_pre", 1)], 1)
    torch.testing.assert_close(got, logits, atol=1e-5, rtol=0)


def test_last_position_logits_on_the_bare_blocks(device):
    """last=True (a metric that reads the final position alone): the bare blocks unembed only that position and
    every position holds its logits; the hooks engine ignores it and returns every position's."""
    model = make_model(device)
    tokens, *_ = make_data(device)
    logits, cache = model.run_with_cache(tokens)
    resid = cache[get_act_name("resid_pre", 1)]
    got = patching.forward_from_layer(model, resid, 1, engine="blocks", last=True)
    assert got.shape == logits.shape
    torch.testing.assert_close(got, logits[:, -1:].expand_as(logits), atol=1e-5, rtol=0)
    torch.testing.assert_close(patching.forward_from_layer(model, resid, 1, engine="hooks", last=True), logits,
                               atol=1e-5, rtol=0)  # fmt: skip


def test_self_checks_run_once_per_model(device, monkeypatch):
    calls = []
    real = native.matches_bridge
    monkeypatch.setattr(native, "matches_bridge", lambda m, *a: calls.append(m) or real(m, *a))
    first, second = make_model(device), make_model(device, seed=1)
    clean, corrupted, right, wrong = make_data(device, n_pos=4, diff_pos=1)
    for model in (first, first, second, first):
        patching.patch_resid_pre(model, clean, corrupted, metric_for(right, wrong))
    assert calls == [first, second]


def test_a_failed_self_check_falls_back_to_the_next_engine(device, monkeypatch):
    monkeypatch.setattr(native, "matches_bridge", lambda *_a: False)
    model = make_model(device)
    assert patching.engine_for(model) == "blocks"
    clean, corrupted, right, wrong = make_data(device, n_pos=4, diff_pos=1)
    metric = metric_for(right, wrong)
    got = patching.activation_patch(model, clean, corrupted, metric, "head_out_by_pos")
    want = TL_GRIDS["head_out_by_pos"](model, corrupted, model.run_with_cache(clean)[1], metric)
    torch.testing.assert_close(got, want.to(got.device), atol=1e-5, rtol=0)


def test_the_switch(device, monkeypatch):
    """engine= caps the engine; without it TUTORIAL_PATCHING_ENGINE does; a bad name is refused."""
    model = make_model(device)
    assert [patching.engine_for(model, e) for e in ("native", "blocks", "hooks")] == ["native", "blocks", "hooks"]
    monkeypatch.setenv(engine.ENGINE_ENV, "hooks")
    assert patching.engine_for(model) == "hooks"
    assert patching.engine_for(model, "native") == "native"  # the keyword wins
    clean, corrupted, right, wrong = make_data(device, n_pos=4, diff_pos=1)
    metric = metric_for(right, wrong)
    monkeypatch.setattr(native, "fast_logits", lambda *_a, **_k: pytest.fail("the native engine ran"))
    via_hooks = patching.patch_head_out_all_pos(model, clean, corrupted, metric)
    monkeypatch.setenv(engine.ENGINE_ENV, "fast")
    with pytest.raises(TutorialInputError, match="TUTORIAL_PATCHING_ENGINE"):
        patching.engine_for(model)
    with pytest.raises(TutorialInputError, match="engine"):
        patching.activation_patch(model, clean, corrupted, metric, "resid_pre", engine="turbo")
    monkeypatch.undo()
    torch.testing.assert_close(patching.patch_head_out_all_pos(model, clean, corrupted, metric), via_hooks, atol=1e-5,
                               rtol=0)  # fmt: skip
