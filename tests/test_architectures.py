"""Every chapter's language-model kernels on the real architectures, offline: a random Llama bridge
(grouped-query attention with 3 query heads per key head, RMSNorm, rotary embeddings: SmolLM2's
architecture) and a random GPT-2 bridge in compatibility mode (the `TUTORIAL_MODEL=gpt2` path). Each test
checks a kernel against an independent computation: the model's own hook_pattern, its logits, its
weights edited in place, or TransformerLens' patching."""

from __future__ import annotations

import functools
import math

import pytest
import torch
import transformer_lens.patching as tlp
from arch_models import ARCHITECTURES, N_HEADS, N_KV_HEADS, loss_with_head_output_zeroed
from transformer_lens.utilities import get_act_name  # pyright: ignore[reportPrivateImportUsage]

from tutorial_lib import attention, hooks, lens, open_problems, patching, probing, sae, tasks
from tutorial_lib.validation import TutorialInputError

_MODELS: dict[tuple[str, str], object] = {}


@pytest.fixture(params=sorted(ARCHITECTURES))
def model(request, device):
    """A random bridge of each architecture on each device (built once; the tests only read it)."""
    key = (request.param, str(device))
    if key not in _MODELS:
        _MODELS[key] = ARCHITECTURES[request.param](device)
    return _MODELS[key]


def _ioi(model, batch=4):
    b = tasks.ioi(batch, seed=0)
    dev = model.cfg.device
    clean, corrupted = model.to_tokens(b.prompts).to(dev), model.to_tokens(b.corrupt_prompts).to(dev)
    return (
        b,
        clean,
        corrupted,
        functools.partial(patching.logit_diff, correct_tokens=b.io_token.to(dev), wrong_tokens=b.s_token.to(dev)),
    )


def _b_o(model, layer):
    try:
        return model.blocks[layer].attn.b_O
    except AttributeError:  # bias-free projections (Llama)
        return None


# ---------------------------------------------------------------------------------------------
# Chapter 00: patterns from q and k, head ablation, direct logit attribution


@torch.no_grad()
def test_attention_pattern_from_q_and_k_is_the_models_pattern(model):
    tokens = model.to_tokens(tasks.ioi(3, seed=0).prompts).to(model.cfg.device)
    _, cache = model.run_with_cache(tokens)
    for layer in range(model.cfg.n_layers):
        q, k = hooks.attention_inputs(cache, layer)
        if model.cfg.positional_embedding_type == "rotary":  # the rotated q and k, and fewer key heads
            assert q.shape[2] == N_HEADS and k.shape[2] == N_KV_HEADS
            assert not torch.allclose(q, cache[get_act_name("q", layer)])
        got = hooks.attention_pattern(q, k)
        torch.testing.assert_close(got, cache[get_act_name("pattern", layer)], atol=2e-6, rtol=0)


def test_attention_pattern_rejects_key_heads_that_do_not_divide_the_query_heads():
    q, k = torch.randn(1, 5, 6, 8), torch.randn(1, 5, 4, 8)
    with pytest.raises(TutorialInputError, match="divides"):
        hooks.attention_pattern(q, k)
    assert hooks.repeat_kv(torch.arange(2.0).reshape(1, 1, 2, 1), 6)[0, 0, :, 0].tolist() == [0, 0, 0, 1, 1, 1]


def test_kv_head_names_the_shared_key_head(model):
    group = model.cfg.n_heads // (getattr(model.cfg, "n_key_value_heads", None) or model.cfg.n_heads)
    assert [hooks.kv_head(model, h) for h in range(model.cfg.n_heads)] == [h // group for h in range(model.cfg.n_heads)]


@torch.no_grad()
def test_head_ablation_equals_zeroing_the_heads_output_weights(model):
    tokens = tasks.repeated_tokens(2, 6, model.cfg.d_vocab, seed=0).to(model.cfg.device)
    layer, head = model.cfg.n_layers - 1, 1
    got = hooks.ablate_head_loss(model, tokens, layer, head)
    want = loss_with_head_output_zeroed(model, tokens, layer, head)
    assert got == pytest.approx(want, abs=1e-5)
    assert abs(got - model(tokens, return_type="loss").item()) > 1e-4  # the ablation changed something


@torch.no_grad()
def test_logit_attribution_sums_to_the_logits_through_the_right_final_norm(model):
    b, clean, _, _ = _ioi(model)
    logits, cache = model.run_with_cache(clean)
    answer = b.io_token.to(clean.device)
    parts = hooks.component_logit_attribution(model, cache, answer)
    want = logits[torch.arange(len(answer)), -1, answer]
    torch.testing.assert_close(parts.sum(0) + hooks.logit_constant(model, answer), want, atol=1e-4, rtol=1e-4)
    # the heads of each layer add up to that layer's attention output (plus b_O where the model has one)
    heads = hooks.direct_logit_attribution(model, cache, answer)  # [batch, layer, head]
    labels = cache.decompose_resid(layer=-1, pos_slice=-1, return_labels=True)[1]
    for layer in range(model.cfg.n_layers):
        b_o = _b_o(model, layer)
        bias = 0.0
        if b_o is not None:
            x = b_o.expand(len(answer), 1, -1)
            bias = hooks.apply_final_norm(model, cache, x, (slice(None), -1))[:, 0]
            bias = (bias * hooks.logit_directions(model, answer)).sum(-1)
        attn = parts[labels.index(f"{layer}_attn_out")]
        torch.testing.assert_close(heads[:, layer].sum(-1) + bias, attn, atol=1e-4, rtol=1e-4)


# ---------------------------------------------------------------------------------------------
# Chapter 05: head scores, weight circuits, composition, ablations


@torch.no_grad()
def test_head_scores_read_the_models_patterns(model):
    tokens = tasks.repeated_tokens(3, 8, model.cfg.d_vocab, seed=0).to(model.cfg.device)
    scores = attention.head_scores(model, tokens)
    _, cache = model.run_with_cache(tokens)
    want = attention.induction_score(attention.stack_patterns(cache), 8)
    assert scores["induction"].shape == (model.cfg.n_layers, model.cfg.n_heads)
    torch.testing.assert_close(scores["induction"], want)


@torch.no_grad()
def test_qk_circuit_gives_the_score_of_a_token_with_itself_on_a_rotary_gqa_model(device):
    model = ARCHITECTURES["llama"](device)
    tokens = model.to_tokens(tasks.ioi(2, seed=0).prompts).to(device)
    _, cache = model.run_with_cache(tokens)
    layer = 1
    qk = attention.qk_circuit(model, layer).AB  # [head, d_model, d_model], RMSNorm gains folded, keys repeated
    x = cache[f"blocks.{layer}.ln1.hook_normalized"]  # [batch, pos, d_model] before the gain
    want = cache[get_act_name("attn_scores", layer)].diagonal(dim1=-2, dim2=-1)  # a rotation cancels at offset 0
    got = torch.einsum("bpd,hde,bpe->bhp", x, qk, x) / math.sqrt(model.cfg.d_head)
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


def test_composition_scores_use_each_query_heads_shared_key_and_value(device):
    model = ARCHITECTURES["llama"](device)
    got = attention.composition_scores(model, "K", 0, 1, fold_ln=False)
    assert got.shape == (N_HEADS, N_HEADS)
    group = N_HEADS // N_KV_HEADS
    ov = torch.stack([model.W_V[0, h // group] @ model.W_O[0, h] for h in range(N_HEADS)]).detach()
    qk = torch.stack([model.W_Q[1, h] @ model.W_K[1, h // group].T for h in range(N_HEADS)]).detach()
    torch.testing.assert_close(got, attention.k_composition_score(ov, qk))


@torch.no_grad()
def test_ablation_kernels(model):
    tokens = tasks.repeated_tokens(3, 8, model.cfg.d_vocab, seed=0).to(model.cfg.device)
    grid = attention.ablation_losses(model, tokens)
    assert grid["repeated"].shape == (model.cfg.n_layers, model.cfg.n_heads)
    one = attention.ablated_loss(model, tokens, [(1, 2)])
    assert one["repeated"] == pytest.approx(float(grid["repeated"][1, 2]), abs=1e-5)
    assert math.isfinite(attention.circuit_coverage(model, tokens, [(1, 2), (2, 0)]))


# ---------------------------------------------------------------------------------------------
# Chapter 04: patching on the block-stack engine (not native), equal to TransformerLens' hooks


@torch.no_grad()
def test_patching_grids_and_paths_match_transformerlens(device):
    model = ARCHITECTURES["llama"](device)  # GPT-2: tests/test_patching_activation.py
    assert patching.engine_for(model) == "blocks"
    _, clean, corrupted, metric = _ioi(model, 3)
    _, clean_cache = model.run_with_cache(clean)
    for grid in ["resid_pre", "mlp_out", "head_out_all_pos", "head_pattern_all_pos"]:
        got = patching.activation_patch(model, clean, corrupted, metric, grid)
        want = getattr(tlp, patching.TRANSFORMERLENS[grid])(model, corrupted, clean_cache, metric)
        torch.testing.assert_close(got, want.to(got.device), atol=1e-5, rtol=0)
    for inputs in ["q", "k", "v"]:  # k and v: the receiver's shared key/value head
        paths = patching.path_patch(model, clean, corrupted, metric, receivers=[(2, 4)], receiver_input=inputs)
        group = patching.path_patch_group(model, clean, corrupted, metric, [(1, 3)], receivers=[(2, 4)],
                                          receiver_input=inputs)  # fmt: skip
        torch.testing.assert_close(group, paths[1, 3], atol=1e-5, rtol=0)
        assert paths[:2].std() > 0, inputs  # the senders reach the receiver


@torch.no_grad()
def test_a_layer_subset_of_a_grid_is_its_rows(model):
    """Chapter 04 on a real model patches a few layers (`layers=`): the same numbers as the full grid's rows."""
    _, clean, corrupted, metric = _ioi(model, 3)
    full = patching.activation_patch(model, clean, corrupted, metric, "resid_pre")
    part = patching.activation_patch(model, clean, corrupted, metric, "resid_pre", layers=[2, 0])
    torch.testing.assert_close(part, full[[2, 0]], atol=1e-5, rtol=0)


@torch.no_grad()
def test_key_path_test_is_path_patching_into_each_input(model):
    """Chapter 05's K-composition test on both architectures (on Llama a query head's key is its shared key
    head's): each of its numbers is the repeated-half loss with the senders patched into that input only."""
    batch = tasks.repeated_segments(
        batch=3, seq_len=12, d_vocab=model.cfg.d_vocab, period=(5, 5), offset=(1, 1), seed=0
    )
    other = tasks.repeated_segments(
        batch=3, seq_len=12, d_vocab=model.cfg.d_vocab, period=(5, 5), offset=(1, 1), seed=1
    )
    got = attention.key_path_test(model, batch, other.tokens, [(0, 1)], [(2, 3)], controls=[[(1, 0)]])
    assert set(got) >= {"clean", "q", "k", "v", "controls"} and len(got["controls"]) == 1
    values = [got["clean"], got["q"], got["k"], got["v"], *got["controls"]]
    assert all(math.isfinite(v) for v in values)
    assert len({round(v, 6) for v in values[1:4]}) == 3, "patching q, k and v are three different experiments"


@torch.no_grad()
def test_ablation_grid_on_both_architectures(model):
    _, clean, _, metric = _ioi(model, 3)
    grid = patching.ablate(model, clean, metric, component="head", method="mean")
    assert grid.shape == (model.cfg.n_layers, model.cfg.n_heads) and bool(torch.isfinite(grid).all())


# ---------------------------------------------------------------------------------------------
# Chapters 02, 03 and 06: activations for SAEs and probes, interventions, self-repair


@torch.no_grad()
def test_probe_and_sae_activation_collection(model):
    b, clean, _, _ = _ioi(model, 8)
    labels = (b.io_token > b.s_token).long()
    hook = get_act_name("resid_post", 1)
    data = probing.collect_activations(model, clean, labels, hook, positions=-1)
    assert data.acts.shape[1] == model.cfg.d_model
    sweep = probing.layer_sweep(model, clean, labels, positions=-1)
    assert len(sweep.scores) == model.cfg.n_layers and bool(torch.isfinite(sweep.scores).all())
    direction = torch.randn(model.cfg.d_model, device=clean.device)
    metric = lambda logits: logits[:, -1].logsumexp(-1).mean()  # noqa: E731
    result = probing.intervene(model, clean, hook, direction, metric)
    assert math.isfinite(result.patched)
    _, cache = model.run_with_cache(clean, names_filter=[hook])
    acts = cache[hook].reshape(-1, model.cfg.d_model)
    s = sae.make_sae("relu", model.cfg.d_model, 64).to(clean.device)
    with torch.enable_grad():
        sae.train_sae(s, acts, steps=5, batch_size=32, log_every=5)
    rec = sae.loss_recovered(model, s, clean, hook)
    assert all(math.isfinite(v) for v in rec.values())


@torch.no_grad()
def test_direct_effects_use_the_models_final_norm(model):
    b, clean, _, _ = _ioi(model, 6)
    dev = clean.device
    end = torch.full((6,), clean.shape[1] - 1, device=dev)
    io, s = b.io_token.to(dev), b.s_token.to(dev)
    means = open_problems.component_means(model, clean)
    effects = open_problems.direct_and_total_effects(model, clean, io, s, end, means)
    _, cache = model.run_with_cache(clean)
    dla = hooks.direct_logit_attribution(model, cache, io, -1, wrong=s)  # [batch, layer, head]
    mean_cache = {k: v.expand(6, *v.shape[1:]) for k, v in means.items() if k.endswith("hook_z")}
    mean_dla = hooks.direct_logit_attribution(model, {**dict(cache.items()), **mean_cache}, io, -1, wrong=s)
    torch.testing.assert_close(effects["direct"], (dla - mean_dla).mean(0).cpu(), atol=1e-4, rtol=1e-4)


@torch.no_grad()
def test_weight_circuits_attribution_steering_and_coverage_run_on_both(model):
    L, H, V = model.cfg.n_layers, model.cfg.n_heads, model.cfg.d_vocab
    assert attention.full_ov_circuit(model, 1).shape == (H, V, V)
    assert 0.0 <= attention.ov_copying(model, 1, 0) <= 1.0
    assert attention.composition_scores(model, "V", 0, 2).shape == (H, H)
    b, clean, corrupted, metric = _ioi(model, 3)
    with torch.enable_grad():
        grads = patching.attribution_patch(model, clean, corrupted, metric, grids=["resid_pre", "head_out_all_pos"])
    assert grads["head_out_all_pos"].shape == (L, H)
    # attribution patching is the first-order estimate of activation patching: on a random model at least the
    # same sign for the largest resid_pre effect
    exact = patching.activation_patch(model, clean, corrupted, metric, "resid_pre")
    idx = (exact - metric(model(corrupted))).abs().argmax()
    assert torch.sign(grads["resid_pre"].flatten()[idx]) == torch.sign(
        (exact - metric(model(corrupted))).flatten()[idx]
    )
    hook = get_act_name("resid_post", 1)
    steered = probing.steer(model, clean, hook, torch.randn(model.cfg.d_model, device=clean.device), [0.0, 4.0],
                            b.io_token[:1].tolist())  # fmt: skip
    assert len(steered.strengths) == 2
    means = open_problems.component_means(model, clean)
    cover = open_problems.circuit_coverage(model, clean, metric, {(1, 0), (2, 1)}, means)
    assert all(math.isfinite(float(v)) for v in cover.values())


# ---------------------------------------------------------------------------------------------
# Chapter 08: the logit lens through the model's own final norm (RMSNorm on Llama)


@torch.no_grad()
def test_logit_lens_reads_the_last_entry_as_the_models_logits(model):
    _, clean, _, _ = _ioi(model, 2)
    logits, cache = model.run_with_cache(clean)
    got = lens.logit_lens(model, cache)
    assert got.shape[0] == model.cfg.n_layers + 1
    torch.testing.assert_close(got[-1], logits, atol=1e-4, rtol=1e-4)
    assert (got[0] - logits).abs().max() > 1e-2, "the embedding read out is not the model's answer"
