"""tutorial_lib.patching.activation against transformer_lens.patching, on every engine, tiny models, the
shipped organisms and a GPT-2-architecture bridge."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import transformer_lens.patching as tlp
from patching_support import ORGANISMS, TL_GRIDS, make_data, make_model, metric_for
from transformer_lens.model_bridge import TransformerBridge

from tutorial_lib import patching
from tutorial_lib.patching import runner

GRID_CASES = [
    (g, attn_only, "native") for attn_only in (False, True) for g in TL_GRIDS if not (attn_only and g == "mlp_out")
]
GRID_CASES += [(g, False, engine) for engine in ("blocks", "hooks") for g in ("resid_pre", "mlp_out")]


@pytest.mark.parametrize("grid,attn_only,engine", GRID_CASES)
def test_grid_matches_transformerlens(device, grid, attn_only, engine):
    model = make_model(device, attn_only=attn_only)
    clean, corrupted, right, wrong = make_data(device, n_pos=4, diff_pos=1)
    metric = metric_for(right, wrong)
    got = patching.activation_patch(model, clean, corrupted, metric, grid, engine=engine)
    assert patching.engine_for(model, engine) == engine
    _, clean_cache = model.run_with_cache(clean)
    want = TL_GRIDS[grid](model, corrupted, clean_cache, metric)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want.to(got.device), atol=1e-5, rtol=0)
    assert got.device == clean.device


@pytest.mark.parametrize("grid", ["resid_pre", "head_out_all_pos", "mlp_out"])
def test_a_metric_that_reads_every_position(device, grid):
    """The engine computes only the final position when the metric reads nothing else; a metric that reads
    every position must still get every position's patched logits."""
    model = make_model(device, n_layers=3)
    clean, corrupted, right, wrong = make_data(device, n_pos=6, seed=5, diff_pos=1)

    def everywhere(logits):
        return logits[:, :, right].mean() - logits[:, :, wrong].mean()

    assert not runner.reads_last_position_only(everywhere, model(corrupted))
    assert runner.reads_last_position_only(metric_for(right, wrong), model(corrupted))
    _, clean_cache = model.run_with_cache(clean)
    for metric in (everywhere, metric_for(right, wrong)):
        got = patching.activation_patch(model, clean, corrupted, metric, grid)
        want = TL_GRIDS[grid](model, corrupted, clean_cache, metric)
        torch.testing.assert_close(got, want.to(got.device), atol=1e-5, rtol=0)


def test_named_wrappers_match_grid(device):
    model = make_model(device, n_layers=1)
    clean, corrupted, right, wrong = make_data(device, n_pos=4)
    metric = metric_for(right, wrong)
    torch.testing.assert_close(patching.patch_mlp_out(model, clean, corrupted, metric),
                               patching.activation_patch(model, clean, corrupted, metric, "mlp_out"))  # fmt: skip
    assert patching.patch_head_pattern_by_pos(model, clean, corrupted, metric).shape == (1, 4, 4)


def test_no_op_cells_equal_the_corrupted_metric(device):
    """Before the first differing token nothing differs: those cells are the corrupted run's metric."""
    model = make_model(device)
    clean, corrupted, right, wrong = make_data(device, n_pos=6, diff_pos=3)
    metric = metric_for(right, wrong)
    grid = patching.patch_resid_pre(model, clean, corrupted, metric)
    base = metric(model(corrupted))
    torch.testing.assert_close(grid[:, :3], base.expand(2, 3), atol=1e-6, rtol=0)
    torch.testing.assert_close(grid[0, 3], metric(model(clean)), atol=1e-5, rtol=0)  # layer 0 at the diff = clean


@pytest.mark.parametrize("grid", ["resid_pre", "head_out_all_pos"])
def test_a_subset_of_layers_gives_those_rows_of_the_full_grid(device, grid):
    """layers=[...] (a real model's grid at a few depths) patches only those layers, rows in the order asked."""
    model = make_model(device)
    clean, corrupted, right, wrong = make_data(device, n_pos=4, diff_pos=1)
    metric = metric_for(right, wrong)
    full = patching.activation_patch(model, clean, corrupted, metric, grid)
    torch.testing.assert_close(patching.activation_patch(model, clean, corrupted, metric, grid, layers=[1, 0]),
                               full[[1, 0]], atol=1e-5, rtol=0)  # fmt: skip
    torch.testing.assert_close(patching.patch_resid_pre(model, clean, corrupted, metric, layers=[1]),
                               patching.patch_resid_pre(model, clean, corrupted, metric)[[1]], atol=1e-5, rtol=0)  # fmt: skip


def test_patch_heads_gives_those_cells_of_the_head_grid(device):
    """patch_heads (a few heads, as a first pass picks them) = their cells of the full head grid, in the order
    asked, and = patch_head_group of each head alone."""
    model = make_model(device)
    clean, corrupted, right, wrong = make_data(device, n_pos=4, diff_pos=1)
    metric = metric_for(right, wrong)
    full = patching.patch_head_out_all_pos(model, clean, corrupted, metric)
    heads = [(1, 2), (0, 3), (1, 0)]
    got = patching.patch_heads(model, clean, corrupted, metric, heads)
    torch.testing.assert_close(got, torch.stack([full[h] for h in heads]), atol=1e-5, rtol=0)
    alone = torch.stack([patching.patch_head_group(model, clean, corrupted, metric, [h]) for h in heads])
    torch.testing.assert_close(got, alone, atol=1e-5, rtol=0)


def test_chunking_does_not_change_results(device):
    model = make_model(device)
    clean, corrupted, right, wrong = make_data(device, n_pos=4, diff_pos=1)
    metric = metric_for(right, wrong)
    whole = patching.activation_patch(model, clean, corrupted, metric, "head_out_all_pos")
    tiny = patching.activation_patch(model, clean, corrupted, metric, "head_out_all_pos", chunk_elements=1)
    torch.testing.assert_close(tiny, whole, atol=1e-5, rtol=0)


# ---------------------------------------------------------------------------------------------
# Shipped organisms (skipped until they exist)


@pytest.mark.parametrize("name", ["toy-lm", "ioi-3l"])
def test_ioi_organism_grids_match_transformerlens(device, name):
    from tutorial_lib import organisms, tasks

    model: Any = organisms.load(name, device=device)
    assert patching.engine_for(model) == "native", "a shipped organism must get the fast engine (its self-check passes)"
    batch = tasks.ioi(batch=3, seed=0)
    clean, corrupted = batch.tokens.to(device), batch.corrupt_tokens.to(device)
    metric = metric_for(batch.io_token.to(device), batch.s_token.to(device))
    _, clean_cache = model.run_with_cache(clean)
    for grid in ("resid_pre", "head_out_all_pos", "head_pattern_by_pos") + (
        () if model.cfg.attn_only else ("mlp_out",)
    ):
        got = patching.activation_patch(model, clean, corrupted, metric, grid)
        want = TL_GRIDS[grid](model, corrupted, clean_cache, metric)
        torch.testing.assert_close(got, want.to(got.device), atol=1e-5, rtol=0)
    clean_value, corrupted_value = metric(model(clean)), metric(model(corrupted))
    assert clean_value > corrupted_value  # the organism solves IOI better on clean prompts
    paths = patching.path_patch(model, clean, corrupted, metric)
    assert paths.shape == (model.cfg.n_layers, model.cfg.n_heads)


@pytest.mark.skipif(not (ORGANISMS / "induction-2l").exists(), reason="induction-2l organism not shipped yet")
def test_induction_organism_grid_matches_transformerlens(device):
    from tutorial_lib import organisms

    model: Any = organisms.load("induction-2l", device=device)
    assert patching.engine_for(model) == "native"
    gen = torch.Generator().manual_seed(0)
    first = torch.randint(1, model.cfg.d_vocab, (2, 4), generator=gen)
    clean = torch.cat([first, first], dim=1).to(device)
    corrupted = clean.clone()
    corrupted[:, 1] = (corrupted[:, 1] % (model.cfg.d_vocab - 1)) + 1
    metric = metric_for(clean[:, 2], corrupted[:, 2])  # does the last token predict what followed it before?
    _, clean_cache = model.run_with_cache(clean)
    got = patching.patch_head_out_by_pos(model, clean, corrupted, metric)
    want = tlp.get_act_patch_attn_head_out_by_pos(model, corrupted, clean_cache, metric)
    torch.testing.assert_close(got, want.to(got.device), atol=1e-5, rtol=0)


# ---------------------------------------------------------------------------------------------
# The benchmark script cannot rot


def test_gpt2_architecture_bridge_matches_transformerlens(device, monkeypatch):
    """`TUTORIAL_MODEL=gpt2` loads GPT-2 with boot_transformers + compatibility mode. The same code path, offline:
    a randomly initialised GPT-2-architecture Hugging Face model with the organism tokenizer; the grids equal
    TransformerLens', and group path patching of one head equals path patching."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from tutorial_lib import tasks
    from tutorial_lib.tokenizer import load_tokenizer

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    torch.manual_seed(0)
    config = GPT2Config(n_layer=2, n_head=4, n_embd=32, vocab_size=len(tasks.VOCAB), n_positions=32)
    hf = GPT2LMHeadModel(config).eval()
    model = TransformerBridge.boot_transformers("gpt2", hf_model=hf, tokenizer=load_tokenizer(ORGANISMS / "toy-lm"),
                                                device=str(device))  # fmt: skip
    model.enable_compatibility_mode()
    model.eval()
    assert patching.engine_for(model) == "blocks"  # not a native bridge: the block-stack engine
    b = tasks.ioi(3, seed=0)
    clean, corrupted = model.to_tokens(b.prompts), model.to_tokens(b.corrupt_prompts)
    assert torch.equal(clean.cpu(), b.tokens)
    metric = metric_for(b.io_token.to(device), b.s_token.to(device))
    _, clean_cache = model.run_with_cache(clean)
    for grid in ["resid_pre", "mlp_out", "head_out_all_pos", "head_pattern_by_pos"]:
        got = patching.activation_patch(model, clean, corrupted, metric, grid)
        want = TL_GRIDS[grid](model, corrupted, clean_cache, metric)
        torch.testing.assert_close(got, want.to(got.device), atol=1e-5, rtol=0)
    paths = patching.path_patch(model, clean, corrupted, metric, receivers=[(1, 0)], receiver_input="q")
    group = patching.path_patch_group(model, clean, corrupted, metric, [(0, 2)], receivers=[(1, 0)], receiver_input="q")
    torch.testing.assert_close(group, paths[0, 2], atol=1e-5, rtol=0)


def test_benchmark_quick_mode_runs():
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "patching_vs_transformerlens.py"
    spec = importlib.util.spec_from_file_location("patching_benchmark", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--quick", "--threads", str(torch.get_num_threads())]) == 0
