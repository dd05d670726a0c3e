"""Chapter 00's asserted claims about the shipped organisms, re-run on three other data seeds, and each
shown to fail on a control where it should not hold (an untrained model of the same architecture, or a
wrong hypothesis).

Chapter 00 trains nothing (it reads the shipped toy-lm and induction-2l), so there is no 4x-training
re-run here: the organisms' own training is checked by tests/test_organisms_*.py. The experiments use
the notebook's sizes and thresholds; only the seed of the data changes.
"""

from __future__ import annotations

import pytest
import torch

from tutorial_lib import hooks, tasks
from tutorial_lib.organisms import recipes

SEEDS = [1, 2, 3]
HALF = 10
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def untrained_induction(induction):
    return recipes.build("induction-2l", tokenizer=induction.tokenizer)


@pytest.fixture(scope="module")
def untrained_toy(toy):
    return recipes.build("toy-lm", tokenizer=toy.tokenizer)


# --------------------------------------------------------------------------- section 1: toy-lm answers the IO


def _answers_io(model, seed: int) -> float:
    batch = tasks.ioi(16, seed=seed)
    with torch.no_grad():
        logits = model(batch.tokens)
    last = logits[torch.arange(len(batch.tokens)), batch.end_pos]
    return (last.argmax(-1) == batch.io_token).float().mean().item()


@pytest.mark.parametrize("seed", SEEDS)
def test_toy_lm_completes_with_the_indirect_object(toy, seed):
    assert _answers_io(toy, seed) >= 0.9


def test_io_check_fails_untrained(untrained_toy):
    assert _answers_io(untrained_toy, 1) < 0.5


# --------------------------------------------------------------------------- section 4: the heads, by pattern


def _scores(model, seed: int):
    toks = tasks.repeated_tokens(batch=16, half_len=HALF, d_vocab=model.cfg.d_vocab, seed=seed)
    with torch.no_grad():
        _, cache = model.run_with_cache(toks)
    layers = range(model.cfg.n_layers)
    queries = torch.arange(HALF + 1, 2 * HALF + 1)
    prev = torch.stack([hooks.attention_by_offset(cache["pattern", layer], 1) for layer in layers])
    ind = torch.stack(
        [cache["pattern", layer][:, :, queries, queries - HALF + 1].mean(dim=(0, -1)) for layer in layers]
    )
    return toks, prev, ind


def _heads_claim(model, seed: int) -> bool:
    _, prev, ind = _scores(model, seed)
    n = model.cfg.n_heads
    return bool(prev.max() > 0.7 and ind.max() > 0.7 and prev.argmax().item() // n < ind.argmax().item() // n)


@pytest.mark.parametrize("seed", SEEDS)
def test_previous_token_head_precedes_induction_head(induction, seed):
    assert _heads_claim(induction, seed)


def test_head_check_fails_untrained(untrained_induction):
    assert not _heads_claim(untrained_induction, 1)


# --------------------------------------------------------------------------- section 5: ablations


def _ablation_claim(model, seed: int) -> bool:
    toks, prev, ind = _scores(model, seed)
    n = model.cfg.n_heads
    with torch.no_grad():
        clean = model(toks, return_type="loss").item()
    increase = torch.tensor(
        [
            [hooks.ablate_head_loss(model, toks, layer, h) - clean for h in range(n)]
            for layer in range(model.cfg.n_layers)
        ]
    )
    prev_head = divmod(int(prev.argmax()), n)
    top = divmod(int(increase.flatten().argmax()), n)
    heads = [h for h in range(n) if ind[1, h] > 0.5]

    def zero(z, hook):  # noqa: ARG001 (TransformerLens passes the hook point)
        z[:, :, heads] = 0.0
        return z

    with torch.no_grad():
        both = model.run_with_hooks(toks, return_type="loss", fwd_hooks=[("blocks.1.attn.hook_z", zero)]).item()
    return bool(
        top == prev_head and increase[prev_head] > 1.0 and len(heads) >= 1 and both - clean > increase[1].max() + 0.5
    )


@pytest.mark.parametrize("seed", SEEDS)
def test_previous_token_head_costs_most_and_induction_heads_are_redundant(induction, seed):
    assert _ablation_claim(induction, seed)


def test_ablation_check_fails_untrained(untrained_induction):
    assert not _ablation_claim(untrained_induction, 1)


# --------------------------------------------------------------------------- section 6: direct logit attribution


def _direct_share(model, seed: int, part: str) -> bool:
    """Whether components whose label contains `part` write > 0.8 of the mean IO - S logit difference."""
    batch = tasks.ioi(8, template=0, seed=seed)  # one template: every prompt ends at the same position
    with torch.no_grad():
        logits, cache = model.run_with_cache(batch.tokens)
    labels = cache.decompose_resid(layer=-1, pos_slice=-1, return_labels=True)[1]
    diff = hooks.component_logit_attribution(model, cache, batch.io_token) - hooks.component_logit_attribution(
        model, cache, batch.s_token
    )
    rows = torch.arange(len(batch.tokens))
    total = (logits[rows, -1, batch.io_token] - logits[rows, -1, batch.s_token]).mean().item()
    share = sum(diff[i].mean().item() for i, label in enumerate(labels) if part in label)
    return total > 1.0 and share > 0.8 * total


@pytest.mark.parametrize("seed", SEEDS)
def test_mlps_write_most_of_the_answer(toy, seed):
    assert _direct_share(toy, seed, "mlp")


def test_direct_share_check_fails_on_attention_and_untrained(toy, untrained_toy):
    assert not _direct_share(toy, 1, "attn"), "wrong hypothesis: attention writes the answer directly"
    assert not _direct_share(untrained_toy, 1, "mlp")


# --------------------------------------------------------------------------- section 8: mean ablation, the IOI head


def _mean_grid_claim(model, seed: int) -> bool:
    toks, prev, _ = _scores(model, seed)
    grid = hooks.mean_ablation_grid(model, toks)
    n = model.cfg.n_heads
    return bool(divmod(int(grid.argmax()), n) == divmod(int(prev.argmax()), n) and grid.max() > 1.0)


@pytest.mark.parametrize("seed", SEEDS)
def test_previous_token_head_costs_most_under_mean_ablation(induction, seed):
    assert _mean_grid_claim(induction, seed)


def test_mean_grid_check_fails_untrained(untrained_induction):
    assert not _mean_grid_claim(untrained_induction, 1)


def _ioi_head_claim(model, seed: int) -> bool:
    batch = tasks.ioi(40, seed=seed)
    args = (model, batch.tokens, batch.io_token, batch.s_token)
    found = hooks.heads_carrying_logit_diff(*args)
    clean = hooks.mean_logit_diff_ablated(*args, [])
    others = [
        hooks.mean_logit_diff_ablated(*args, [(layer, h)]) / clean
        for layer in range(model.cfg.n_layers)
        for h in range(model.cfg.n_heads)
        if (layer, h) != (0, 0)
    ]
    return bool(clean > 1.0 and found == [(0, 0)] and min(others) > 0.5)


@pytest.mark.parametrize("seed", SEEDS)
def test_one_layer0_head_carries_the_ioi_answer(toy, seed):
    assert _ioi_head_claim(toy, seed)


def test_ioi_head_check_fails_untrained(untrained_toy):
    assert not _ioi_head_claim(untrained_toy, 1)
