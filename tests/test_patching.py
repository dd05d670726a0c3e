"""tutorial_lib.patching against transformer_lens.patching, naive hook-based references and calculus."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import transformer_lens.patching as tlp
from transformer_lens.config import TransformerBridgeConfig
from transformer_lens.model_bridge import TransformerBridge
from transformer_lens.utilities import get_act_name

from tutorial_lib import patching
from tutorial_lib.validation import TutorialInputError

TL_GRIDS = {grid: getattr(tlp, name) for grid, name in patching.TRANSFORMERLENS.items()}
ORGANISMS = Path(patching.__file__).parent / "data" / "organisms"


def make_model(device, attn_only=False, n_layers=2, seed=0, dtype=torch.float32, d_vocab=40, n_heads=4):
    cfg = TransformerBridgeConfig(n_layers=n_layers, d_model=32, n_heads=n_heads, d_head=8, d_mlp=64, d_vocab=d_vocab,
                                  n_ctx=16, attn_only=attn_only, normalization_type="LN", seed=seed,
                                  device=str(device), dtype=dtype)  # fmt: skip
    torch.manual_seed(seed)
    model = TransformerBridge.boot_native(cfg).eval()
    return model.double() if dtype == torch.float64 else model


def make_data(device, batch=2, n_pos=5, d_vocab=40, seed=0, diff_pos=2):
    gen = torch.Generator().manual_seed(seed)
    clean = torch.randint(d_vocab, (batch, n_pos), generator=gen)
    corrupted = clean.clone()
    corrupted[:, diff_pos] = (clean[:, diff_pos] + 1 + torch.randint(d_vocab - 1, (batch,), generator=gen)) % d_vocab
    right, wrong = torch.randint(d_vocab, (2, batch), generator=gen)
    return [t.to(device) for t in (clean, corrupted, right, wrong)]


def metric_for(right, wrong):
    return lambda logits: patching.logit_diff(logits, right, wrong)


def force_path(model, path):
    """Pick the engine: 'fast' (native suffix path), 'blocks' (model.blocks[l:]) or 'start_at_layer'."""
    patching._FAST_OK.pop(model, None)
    patching._DIRECT_OK.pop(model, None)
    if path != "fast":
        patching._FAST_OK[model] = False
    if path == "start_at_layer":
        patching._DIRECT_OK[model] = False


# ---------------------------------------------------------------------------------------------
# Activation patching == TransformerLens


GRID_CASES = [
    (g, attn_only, "fast") for attn_only in (False, True) for g in TL_GRIDS if not (attn_only and g == "mlp_out")
]
GRID_CASES += [(g, False, path) for path in ("blocks", "start_at_layer") for g in ("resid_pre", "mlp_out")]


@pytest.mark.parametrize("grid,attn_only,path", GRID_CASES)
def test_grid_matches_transformerlens(device, grid, attn_only, path):
    model = make_model(device, attn_only=attn_only)
    clean, corrupted, right, wrong = make_data(device, n_pos=4, diff_pos=1)
    metric = metric_for(right, wrong)
    force_path(model, path)
    got = patching.activation_patch(model, clean, corrupted, metric, grid)
    assert patching._FAST_OK[model] == (path == "fast")
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

    assert not patching._reads_last_position_only(everywhere, model(corrupted))
    assert patching._reads_last_position_only(metric_for(right, wrong), model(corrupted))
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


@pytest.mark.parametrize("attn_only", [False, True])
def test_forward_from_layer_reproduces_the_model(device, attn_only):
    model = make_model(device, attn_only=attn_only, n_layers=3)
    tokens, *_ = make_data(device, batch=3, n_pos=6)
    logits, cache = model.run_with_cache(tokens)
    assert patching._block_stack_ok(model, tokens)
    for layer in range(3):
        resid = cache[get_act_name("resid_pre", layer)]
        torch.testing.assert_close(patching.forward_from_layer(model, resid, layer), logits, atol=1e-5, rtol=0)
        stop = patching.forward_from_layer(model, resid, layer, stop_at_layer=layer + 1)
        torch.testing.assert_close(stop, cache[get_act_name("resid_post", layer)], atol=1e-5, rtol=0)
    fast_logits, fast_cache = patching._fast_cache(model, tokens)
    torch.testing.assert_close(fast_logits, logits, atol=1e-5, rtol=0)
    for name, act in fast_cache.items():
        torch.testing.assert_close(act, cache[name], atol=1e-5, rtol=0)


def test_chunking_does_not_change_results(device):
    model = make_model(device)
    clean, corrupted, right, wrong = make_data(device, n_pos=4, diff_pos=1)
    metric = metric_for(right, wrong)
    whole = patching.activation_patch(model, clean, corrupted, metric, "head_out_all_pos")
    tiny = patching.activation_patch(model, clean, corrupted, metric, "head_out_all_pos", chunk_elements=1)
    torch.testing.assert_close(tiny, whole, atol=1e-5, rtol=0)


# ---------------------------------------------------------------------------------------------
# Ablations == naive hooks


def _naive_ablation(model, tokens, metric, hook_kind, layer, index, value_fn):
    def hook(act, hook):
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


# ---------------------------------------------------------------------------------------------
# Path patching == the three-step recipe with plain hooks, one sender at a time


def _naive_path_patch(model, clean, corrupted, metric, receivers, kinds, freeze_mlps=False):
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    _, cc = model.run_with_cache(clean)
    _, xc = model.run_with_cache(corrupted)
    out = torch.zeros(n_layers, n_heads, device=clean.device)
    for sl in range(n_layers):
        for sh in range(n_heads):

            def freeze(z, hook, layer=None):
                layer = int(hook.name.split(".")[1]) if layer is None else layer
                new = cc[get_act_name("z", layer)].clone()
                if layer == sl:  # noqa: B023, B008 (used within this iteration)
                    new[:, :, sh] = xc[get_act_name("z", layer)][:, :, sh]  # noqa: B023, B008 (used within this iteration)
                return new

            hooks = [(get_act_name("z", layer), lambda z, hook, layer=layer: freeze(z, hook, layer))
                     for layer in range(n_layers)]  # fmt: skip
            if freeze_mlps:
                hooks += [(get_act_name("mlp_out", layer), lambda a, hook, layer=layer: cc[get_act_name("mlp_out", layer)])
                          for layer in range(n_layers)]  # fmt: skip
            if receivers is None:
                out[sl, sh] = metric(model.run_with_hooks(clean, fwd_hooks=hooks))
                continue
            store = {}
            for layer, _ in receivers:
                for k in kinds:
                    hooks.append((get_act_name(k, layer),
                                  lambda a, hook, n=get_act_name(k, layer): store.__setitem__(n, a.clone())))  # fmt: skip  # noqa: B023, B008 (used within this iteration)
            model.run_with_hooks(clean, fwd_hooks=hooks)
            patch = []
            for layer, head in receivers:
                for k in kinds:
                    name = get_act_name(k, layer)

                    def put(a, hook, name=name, head=head):
                        a = a.clone()
                        a[:, :, head] = store[name][:, :, head]  # noqa: B023, B008 (used within this iteration)
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


def test_path_patching_to_logits_with_everything_frozen_is_direct_effect(device):
    """Attention-only, 1 layer: sender -> logits path patching equals plain head patching (clean run)."""
    model = make_model(device, attn_only=True, n_layers=1)
    clean, corrupted, right, wrong = make_data(device)
    metric = metric_for(right, wrong)
    got = patching.path_patch(model, clean, corrupted, metric)
    want = patching.activation_patch(model, corrupted, clean, metric, "head_out_all_pos")  # corrupted into clean
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


# ---------------------------------------------------------------------------------------------
# Attribution patching


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

        def nudge(act, hook, name=name, index=index):
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


# ---------------------------------------------------------------------------------------------
# Metrics and validation


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


# ---------------------------------------------------------------------------------------------
# Shipped organisms (skipped until they exist)


@pytest.mark.parametrize("name", ["toy-lm", "ioi-3l"])
def test_ioi_organism_grids_match_transformerlens(device, name):
    from tutorial_lib import organisms, tasks

    model = organisms.load(name, device=device)
    assert patching._fast_ok(model), "a shipped organism must get the fast engine (its self-check passes)"
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

    model = organisms.load("induction-2l", device=device)
    assert patching._fast_ok(model)
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
    assert not patching._fast_ok(model)  # not a native bridge: the block-stack engine
    b = tasks.ioi(3, seed=0)
    clean, corrupted = model.to_tokens(b.prompts), model.to_tokens(b.corrupt_prompts)
    assert torch.equal(clean.cpu(), b.tokens)
    metric = metric_for(b.io_token.to(device), b.s_token.to(device))
    _, clean_cache = model.run_with_cache(clean)
    for grid in ["resid_pre", "mlp_out", "head_out_all_pos", "head_pattern_by_pos"]:
        got = patching.activation_patch(model, clean, corrupted, metric, grid)
        want = TL_GRIDS[grid](model, corrupted, clean_cache, metric)
        torch.testing.assert_close(got, want.to(got.device), atol=1e-5, rtol=0)
    assert patching._block_stack_ok(model, clean)
    paths = patching.path_patch(model, clean, corrupted, metric, receivers=[(1, 0)], receiver_input="q")
    group = patching.path_patch_group(model, clean, corrupted, metric, [(0, 2)], receivers=[(1, 0)], receiver_input="q")
    torch.testing.assert_close(group, paths[0, 2], atol=1e-5, rtol=0)


def test_benchmark_quick_mode_runs():
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "patching_vs_transformerlens.py"
    spec = importlib.util.spec_from_file_location("patching_benchmark", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--quick", "--threads", str(torch.get_num_threads())]) == 0
