"""tutorial_lib.discovery.scrubbing: the per-edge replacement is the engine's plain replacement when every
edge takes the same values; resampled prompts agree with the clean ones exactly where the hypothesis claims;
a hypothesis that claims the whole prompt recovers everything; and on induction-2l the textbook induction
hypothesis survives scrubbing while the "current token" hypothesis is rejected (the chapter's claim; its
robustness over seeds is in tests/test_claims_07.py)."""

from __future__ import annotations

import functools

import pytest
import torch
from patching_support import make_data, make_model

from tutorial_lib import attention, organisms
from tutorial_lib.discovery import build_graph, run_edges, sender_outputs
from tutorial_lib.discovery import forward as fw
from tutorial_lib.discovery import scrubbing as sc
from tutorial_lib.validation import TutorialInputError


def test_per_edge_replacement_equals_the_shared_one(device):
    model = make_model(device).double()
    clean, corrupted, _, _ = make_data(device, batch=3, n_pos=6)
    g = build_graph(model)
    repl = sender_outputs(model, corrupted)
    per_edge = repl[:, :, :, None, :].expand(-1, -1, -1, g.n_receivers, -1).contiguous()
    ablate = torch.rand(4, g.n_senders, g.n_receivers, generator=torch.Generator().manual_seed(0)) < 0.3
    want, _ = run_edges(model, clean, repl, ablate.to(device))
    got, _ = run_edges(model, clean, per_edge, ablate.to(device))
    torch.testing.assert_close(got, want, atol=1e-9, rtol=1e-9)


def test_resampled_prompts_agree_where_claimed_and_come_from_the_pool():
    tokens = torch.arange(1, 13).reshape(2, 6)
    pool = torch.full((5, 6), 50) + torch.arange(5)[:, None]
    drawn = sc.resample_matching(tokens, pool, (-1,), torch.Generator().manual_seed(0))  # [pos, batch, pos]
    assert drawn.shape == (6, 2, 6)
    for p in range(6):
        for q in range(6):
            if q == p - 1:
                assert torch.equal(drawn[p, :, q], tokens[:, q])
            else:
                assert bool((drawn[p, :, q] >= 50).all())


def test_embedding_shortcut_equals_the_forward():
    model = make_model("cpu").double()
    clean, _, _, _ = make_data("cpu", batch=3, n_pos=6)
    w, g = fw.check_model(model), build_graph(model)
    for offsets in ((0,), ()):
        full = sc.class_sender_outputs(w, g, clean, clean, offsets, torch.Generator().manual_seed(1))
        short = sc.class_sender_outputs(w, g, clean, clean, offsets, torch.Generator().manual_seed(1), embed_only=True)
        torch.testing.assert_close(short[:, :, 0], full[:, :, 0])


@functools.cache
def induction():
    model = organisms.load("induction-2l")
    data = organisms.induction_batch(24, model.cfg.d_vocab, seed=5)
    pool = organisms.induction_batch(128, model.cfg.d_vocab, seed=6).tokens
    return model, data, pool


def repeated_loss(data):
    def loss(logits):
        mask = data.repeated.float()
        return (attention.token_losses(logits, data.tokens) * mask).sum(1) / mask.sum(1)

    return loss


def test_claiming_the_whole_prompt_recovers_everything():
    model, data, pool = induction()
    everything = tuple(range(-data.tokens.shape[1], data.tokens.shape[1]))
    hyp = {"a1.1.k": {s: everything for s in ("embed", "a0.0", "a0.1")}}
    r = sc.scrub(model, data.tokens, pool, hyp, repeated_loss(data))
    assert abs(r.scrubbed - r.clean) < 1e-4 and abs(r.recovered - 1) < 1e-3 and r.random > r.clean + 0.5


def test_induction_hypothesis_survives_and_current_token_hypothesis_is_rejected():
    model, data, pool = induction()
    right = sc.scrub(model, data.tokens, pool, sc.induction_hypothesis("previous"), repeated_loss(data))
    wrong = sc.scrub(model, data.tokens, pool, sc.induction_hypothesis("current"), repeated_loss(data))
    assert right.recovered > 0.8 and right.ci[0] > 0.7
    assert wrong.recovered < 0.3 and wrong.ci[1] < right.ci[0]


@pytest.mark.parametrize(
    ("hyp", "match"),
    [
        ({}, "non-empty dict"),
        ({"a1.9.k": {"a0.1": (-1,)}}, "unknown node"),
        ({"a0.1.k": {"a1.0": (-1,)}}, "no such edge"),
        ({"a1.1.k": {"a0.1": -1}}, "tuple of ints"),
        ({"a1.1.k": ["a0.1"]}, "must be a dict"),
    ],
)
def test_bad_hypotheses_are_named(hyp, match):
    model, data, pool = induction()
    with pytest.raises(TutorialInputError, match=match):
        sc.scrub(model, data.tokens[:2], pool, hyp, repeated_loss(data))


def test_pool_of_another_length_is_refused():
    model, data, pool = induction()
    with pytest.raises(TutorialInputError, match="pool must have"):
        sc.scrub_replacement(model, data.tokens, pool[:, :10], sc.induction_hypothesis("previous"))
