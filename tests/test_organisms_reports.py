"""tutorial_lib.organisms.reports: the cards' claims hold when re-measured."""

from __future__ import annotations

import pytest
import torch

from tutorial_lib import hooks, organisms, tasks


def _loss(logits, tokens):
    return -logits[:, :-1].log_softmax(-1).gather(-1, tokens[:, 1:, None])[..., 0]


def test_induction_circuit(induction):
    """Re-measure the card: loss gap, one previous-token head, one induction head, their ablations."""
    m, c = induction, organisms.card("induction-2l")["properties"]
    data = organisms.induction_batch(300, m.cfg.d_vocab, seed=99)
    x, rep, first = data.tokens, data.repeated[:, :-1], data.first[:, :-1]
    with torch.no_grad():
        logits, cache = m.run_with_cache(x)
    loss = _loss(logits, x)
    first_loss, rep_loss = loss[first].mean(), loss[rep].mean()
    assert rep_loss < 0.3 * first_loss
    assert (
        abs(float(first_loss) - c["loss_first_half"]) < 0.15 and abs(float(rep_loss) - c["loss_repeated_half"]) < 0.15
    )

    prev = cache["pattern", 0].diagonal(offset=-1, dim1=-2, dim2=-1).mean((0, 2))  # attention to p-1
    l0, h0 = c["previous_token_head"]
    assert l0 == 0 and int(prev.argmax()) == h0 and prev[h0] > 0.5
    assert (prev[torch.arange(len(prev)) != h0] < 0.5 * prev[h0]).all()  # exactly one clear one

    pat1 = cache["pattern", 1]
    ind = torch.zeros(m.cfg.n_heads)
    for b in range(x.shape[0]):
        p = int(data.period[b])
        for q in torch.nonzero(data.repeated[b])[:, 0].tolist():
            ind += pat1[b, :, q, q - p + 1]
    ind /= data.repeated.sum()
    induction_heads = [h for layer, h in c["induction_heads"]]
    assert induction_heads == [h for h in range(m.cfg.n_heads) if ind[h] > 0.5]
    assert c["induction_head"] == [1, int(ind.argmax())]

    def ablated(layer, heads):
        def hook(z, hook):  # noqa: ARG001 - TransformerLens passes hook= by name
            z = z.clone()
            z[:, :, heads] = 0
            return z

        out = m.run_with_hooks(x, fwd_hooks=[(f"blocks.{layer}.attn.hook_z", hook)])
        return _loss(out, x)[rep].mean()

    # The previous-token head is necessary: without it the copies are as unpredictable as the first half.
    assert ablated(0, [h0]) > 0.8 * first_loss
    for head in set(range(m.cfg.n_heads)) - {h0}:
        assert ablated(0, [head]) < rep_loss + 0.2 * (first_loss - rep_loss)
    # The layer-1 induction heads share the work: each alone helps, all of them together are necessary.
    assert ablated(1, induction_heads) > 0.8 * first_loss
    for head in induction_heads:
        assert rep_loss < ablated(1, [head]) < first_loss

    kc = organisms.k_composition(m)
    a, b = divmod(int(kc.argmax()), m.cfg.n_heads)
    assert a == h0 and b in induction_heads  # the previous-token head K-composes with an induction head
    for head in induction_heads:
        assert organisms.ov_copying(m, 1, head) > 0.8  # their OV circuits copy


@torch.no_grad()
def test_induction_follows_the_token_on_unseen_periods(induction):
    m = induction
    lo_train, hi_train = organisms.INDUCTION_DATA["period"]
    longer = [(p, n) for p, n in organisms.UNSEEN_PERIODS if p[0] > hi_train]
    assert longer
    for periods, length in longer:  # (periods shorter than any seen in training are not solved; see the card)
        data = organisms.unseen_period_batch(200, m.cfg.d_vocab, periods, length, seed=5)
        assert ((data.period < lo_train) | (data.period > hi_train)).all()
        loss = _loss(m(data.tokens), data.tokens)
        assert loss[data.repeated[:, :-1]].mean() < 0.5 * loss[data.first[:, :-1]].mean(), periods


@torch.no_grad()
def test_toy_lm_solves_ioi_on_held_out_names(toy):
    c = organisms.card("toy-lm")["properties"]
    r = organisms.ioi_report(toy, batch=60, seed=100)  # every template, held-out name pairs, fresh prompts
    assert r["ioi_acc"] >= 0.9 and r["ioi_logit_diff"] >= 2.0
    assert abs(r["ioi_acc"] - c["ioi_acc"]) < 0.07
    # the string interface gives the same answer: the most likely next word is the IO name
    prompt = "When Mary and John went to the store, John gave a drink to"
    assert toy.to_string(toy(prompt)[0, -1].argmax()).strip() == "Mary"


@torch.no_grad()
def test_ioi_3l_rejects_the_repeated_name_not_the_most_recent(ioi3, toy):
    """ioi-3l solves IOI on held-out names with or without a third name next to S2; toy-lm, which learned
    "reject the most recent name", fails when the third name comes last (the chapter's contrast)."""
    c = organisms.card("ioi-3l")["properties"]
    for third in [None, "after", "before"]:
        r = organisms.ioi_report(ioi3, batch=60, seed=200, third=third)
        assert r["ioi_acc"] > 0.95 and r["ioi_logit_diff"] > 4, third
        card_acc = c["ioi_acc"] if third is None else c["ioi_third_name"][third]["acc"]
        assert abs(r["ioi_acc"] - card_acc) < 0.05
    toy_before = organisms.ioi_report(toy, batch=60, seed=300, third="before")
    assert abs(toy_before["ioi_logit_diff"]) < 1.5 and toy_before["ioi_acc"] < 0.8


@torch.no_grad()
def _end_attention(model, layer: int, head: int, b, tokens) -> list[float]:
    """Mean attention from END to (S2's slot, IO's slot, S1's slot) of one head."""
    _, cache = model.run_with_cache(tokens)
    rows = torch.arange(len(tokens))
    p = cache["pattern", layer][rows, head, -1]
    return [float(p[rows, pos].mean()) for pos in (b.s2_pos, b.io_pos, b.s1_pos)]


def test_ioi_1l_solves_ioi_by_the_slot_not_the_repetition(ioi3):
    """ioi-1l (one layer, two heads: chapter 07's minimal-circuits problem) solves IOI on held-out names, with and
    without a third name. Its head 0 attends from END to the second clause's name slot whether or not that name
    repeats (also on 'abc' prompts, where no name repeats) and pushes that name down; head 1 splits END's
    attention over the first clause's two names. The control, ioi-3l's L1H1, attends to S2 only when it repeats."""
    m = organisms.load("ioi-1l")
    for third in [None, "after", "before"]:
        r = organisms.ioi_report(m, batch=60, seed=200, third=third)
        assert r["ioi_acc"] > 0.95 and r["ioi_logit_diff"] > 4, third
    b = tasks.ioi(60, seed=13, template=0, split="test")
    s2, io, s1 = _end_attention(m, 0, 0, b, b.tokens)
    assert s2 > 0.5 and io < 0.05 and s1 < 0.05 and _end_attention(m, 0, 0, b, b.corrupt_tokens)[0] > 0.5
    assert min(_end_attention(m, 0, 1, b, b.tokens)[1:]) > 0.3
    assert organisms.second_clause_report(m, batch=40)["second_clause_name_logit"] < -5
    assert _end_attention(ioi3, 1, 1, b, b.tokens)[0] > 0.8 and _end_attention(ioi3, 1, 1, b, b.corrupt_tokens)[0] < 0.4


@torch.no_grad()
def test_ioi_3l_circuit(ioi3):
    """The mechanism chapter 04 teaches: one layer-1 head attends from END to S2 (wherever S2 stands) and
    pushes S down; its query is built by the layer-0 heads that copy the first-clause names to END."""
    from functools import partial

    from tutorial_lib import patching

    for third in [None, "before"]:
        b = tasks.ioi(40, seed=11, template=0, split="test", third=third)
        _, cache = ioi3.run_with_cache(b.tokens)
        rows = torch.arange(40)
        to_s2 = cache["pattern", 1][rows, :, -1, b.s2_pos].mean(0)
        assert int(to_s2.argmax()) == 1 and to_s2[1] > 0.85
        copy = cache["pattern", 0][rows, :, -1]  # layer-0 heads split END's attention over IO and S1
        assert (copy[rows, :3, b.io_pos].mean(0) > 0.3).all() and (copy[rows, :3, b.s1_pos].mean(0) > 0.3).all()

    b = tasks.ioi(40, seed=12, template=3, corruption="abc")
    m = partial(patching.logit_diff, correct_tokens=b.io_token, wrong_tokens=b.s_token)
    clean, corrupted = float(m(ioi3(b.tokens))), float(m(ioi3(b.corrupt_tokens)))
    heads = patching.normalise(patching.patch_head_out_all_pos(ioi3, b.tokens, b.corrupt_tokens, m), clean, corrupted)
    assert int(heads.argmax()) == 1 * 4 + 1 and heads[1, 1] > 0.6 and heads.flatten().topk(2).values[1] < 0.2
    layer0 = [(0, h) for h in range(4)]
    effect = {k: 1 - float(patching.normalise(patching.path_patch_group(
        ioi3, b.tokens, b.corrupt_tokens, m, layer0, receivers=[(1, 1)], receiver_input=k), clean, corrupted))
        for k in "qkv"}  # fmt: skip
    assert effect["q"] > 0.4 and effect["k"] < 0.5 * effect["q"] and effect["v"] < 0.2


@torch.no_grad()
def test_toy_lm_knows_when_a_bracket_may_close(toy):
    b = tasks.brackets(200, n_words=24, seed=31)
    p_close = toy(b.tokens)[:, :-1].softmax(-1)[..., tasks.WORD_TO_ID[")"]]
    open_, closed = p_close[b.depth[:, :-1] > 0], p_close[b.depth[:, :-1] == 0]
    assert closed.mean() < 0.05 and open_.mean() > 0.2
    acc = ((p_close > 0.1) == (b.depth[:, :-1] > 0)).float().mean()
    assert acc > 0.9 and abs(float(acc) - organisms.card("toy-lm")["properties"]["bracket_close_acc"]) < 0.05


def _assert_close_to_card(got, want, path=""):
    """Same keys and structure; numbers within one unit of the card's printed precision (rounded to 3 or 4 digits)."""
    if isinstance(want, dict):
        assert set(got) == set(want), path
        for k in want:
            _assert_close_to_card(got[k], want[k], f"{path}/{k}")
    elif isinstance(want, list):
        assert len(got) == len(want), path
        for i, (g, w) in enumerate(zip(got, want)):
            _assert_close_to_card(g, w, f"{path}[{i}]")
    elif isinstance(want, float):
        assert got == pytest.approx(want, abs=1.5e-3), path
    else:
        assert got == want, path


def test_induction_report_reproduces_the_card(induction):
    """The report (head scores from attention, ablations through hooks.head_ablation_hook) gives the card."""
    _assert_close_to_card(organisms.MEASURES["induction-2l"](induction), organisms.card("induction-2l")["properties"])


@pytest.mark.slow
def test_ioi_reports_reproduce_the_cards(toy, ioi3):
    """The IOI reports (DLA through hooks.direct_logit_attribution) give the toy-lm and ioi-3l cards."""
    _assert_close_to_card(organisms.MEASURES["ioi-3l"](ioi3), organisms.card("ioi-3l")["properties"])
    _assert_close_to_card(organisms.MEASURES["toy-lm"](toy), organisms.card("toy-lm")["properties"])


def test_reports_use_the_base_layer_hook():
    assert organisms.head_ablation_hook is hooks.head_ablation_hook
