"""Chapter 05's asserted claims, re-run where the notebook did not run them, and shown able to fail.

Robust: the phase-transition claims hold on the shipped converged runs (tutorial_lib/data/runs/induction-phase,
6400 steps: 4x the notebook's live run) at three other seeds, whose first steps are re-trained here and
compared with the shipped curves; the organism claims hold on probe batches of three other seeds. Able to
fail: each claim is false on a control where it should not hold: an untrained model of the same
architecture, a run trained on shuffled repeats (the same tokens in another order, so only copying without
lookup can help), a run cut before its plateau, or the claim's check aimed at the wrong heads or the wrong path.
"""

from __future__ import annotations

import functools
from typing import Any

import pytest
import torch

from tutorial_lib import attention, organisms, patching, tasks

pytestmark = pytest.mark.slow

SEEDS = (0, 2, 3)  # the notebook's run is seed 1
PREFIX_STEPS = 200  # the shipped runs are re-trained this far and compared record by record


@functools.cache
def shipped(seed: int, shuffled: bool = False) -> tuple[Any, dict]:
    return attention.load_phase_run(seed, shuffled)


def claims_of(seed: int, shuffled: bool = False, records: int | None = None) -> dict[str, bool]:
    """The notebook's section-3 claims (attention.phase_claims: the one implementation) on a shipped run,
    optionally cut to its first `records` records."""
    model, hist = shipped(seed, shuffled)
    if records is not None:
        hist = {k: v[:records] for k, v in hist.items()}
    return attention.phase_claims(attention.phase_summary(model, hist))


@pytest.mark.parametrize("seed", SEEDS)
def test_converged_claims_hold_at_three_other_seeds(seed):
    """The shipped runs at three other seeds, trained as long as the notebook's (4x its live run)."""
    claims = claims_of(seed)
    assert all(claims.values()), claims


def test_claims_fail_on_shuffled_repeats():
    """Shuffled repeats: no lookup can work, so no induction head forms, the repeated half stays costly and
    only the bag-of-tokens copier is learned: every claim fails (the notebook asserts this too)."""
    claims = claims_of(1, shuffled=True)
    assert not any(claims.values()), [name for name, holds in claims.items() if holds]


def test_claims_fail_before_the_plateau():
    """The plateau claim fails on the first 1000 steps of the notebook's run, where the loss is still falling."""
    claims = claims_of(1, records=50)
    assert not next(holds for name, holds in claims.items() if name.startswith("plateau"))


@pytest.mark.parametrize("seed", [1, 0])
def test_shipped_runs_are_what_the_recipe_trains(seed):
    """Re-train the first PREFIX_STEPS steps: the records match the shipped history; and the shipped weights
    measured now give the shipped history's last record (the curves belong to the weights)."""
    model, hist = shipped(seed)
    _, prefix = attention.train_phase_run(seed, PREFIX_STEPS)
    assert attention.prefix_drift(prefix, hist) < 0.02
    probe = tasks.repeated_segments(batch=200, seed=1234, **attention.phase_run.phase_data())
    now = attention.probe_measures(model, probe)
    assert abs(now["loss_repeated"] - float(hist["loss_repeated"][-1])) < 0.02


def organism_claims(model, data, other) -> dict[str, bool]:
    """The notebook's assertions on induction-2l (sections 2 and 4-9), one boolean each, for any 2x2 model."""
    scores = attention.head_scores(model, data)
    with torch.no_grad():
        _, cache = model.run_with_cache(data.tokens)
        answers = torch.nn.functional.pad(data.tokens[:, 1:], (0, 1))
        dla = attention.direct_logit_attribution(model, cache, answers)
    dla_rep, dla_first = dla[data.repeated].mean(0), dla[data.first].mean(0)
    copy = attention.copying_score(attention.full_ov_circuit(model))
    comp = {kind: attention.composition_scores(model, kind) for kind in "QKV"}
    base = attention.composition_baseline(model.cfg.d_model, model.cfg.d_head)

    def repeated_loss(logits):
        return attention.token_losses(logits, data.tokens)[data.repeated].mean()

    path = {inp: patching.path_patch_group(model, data.tokens, other, repeated_loss, [(0, 1)],
                                           receivers=[(1, 0), (1, 1)], receiver_input=inp).item()
            for inp in "qkv"}  # fmt: skip
    mean = {name: attention.ablated_loss(model, data, heads, kind="mean")
            for name, heads in {"clean": [], "L0H1": [(0, 1)], "both": [(1, 0), (1, 1)]}.items()}  # fmt: skip
    first = mean["clean"]["first"]
    copies = mean["clean"]["repeated"] < 0.1 * first
    cover = attention.circuit_coverage(model, data, [(0, 1), (1, 0), (1, 1)])
    return {
        "previous-token head L0H1": bool(scores["previous"][0, 1] > 0.5 > scores["previous"][0, 0]),
        "two induction heads": bool((scores["induction"][1] > 0.5).all()),
        "induction heads write the answer": bool(dla_rep[1].min() > 2 * dla_rep[0].abs().max()),
        "only where it can be copied": bool(dla_rep[1].min() > 5 * dla_first[1].abs().max()),
        "induction heads copy": bool((copy[1] > 0.9).all()),
        "K-composition above chance": bool((comp["K"][1] > base.quantile(0.95)).all()),
        # the notebook asserts the next three next to "copying works" (a rise to the first-half loss only means
        # something where the clean repeated loss is far below it), so they are tested together with it
        "keys need L0H1": copies and path["k"] > 0.8 * first,
        "copying works": copies,
        "L0H1 necessary": copies and mean["L0H1"]["repeated"] > 0.8 * first,
        "induction pair necessary": copies and mean["both"]["repeated"] > 0.8 * first,
        "circuit covers": cover > 0.9,
    }


@pytest.fixture(scope="module")
def organism():
    return organisms.load("induction-2l")


@pytest.mark.parametrize("seed", [5, 6, 7])
def test_organism_claims_hold_on_other_batches(organism, seed):
    data = organisms.induction_batch(150, organism.cfg.d_vocab, seed)
    other = organisms.induction_batch(150, organism.cfg.d_vocab, seed + 100).tokens
    claims = organism_claims(organism, data, other)
    assert all(claims.values()), claims


def test_organism_claims_fail_on_an_untrained_model(organism):
    untrained = organisms.build("induction-2l")
    data = organisms.induction_batch(150, organism.cfg.d_vocab, 5)
    other = organisms.induction_batch(150, organism.cfg.d_vocab, 105).tokens
    claims = organism_claims(untrained, data, other)
    survived = [name for name, ok in claims.items() if ok and name != "circuit covers"]
    assert not survived, f"these claims hold on an untrained model too: {survived}"
    assert not claims["copying works"], "with no copying, coverage is undefined: the claim cannot hold"


def test_negative_claims_fail_when_aimed_at_the_wrong_heads(organism):
    """The notebook's "X is not needed" claims, aimed where they should fail: they do."""
    data = organisms.induction_batch(150, organism.cfg.d_vocab, 5)
    other = organisms.induction_batch(150, organism.cfg.d_vocab, 105).tokens
    first = attention.ablated_loss(organism, data, [])["first"]
    # "L0H0 / L1H0 / L1H1 alone are not necessary" (repeated < 0.25 first) fails for L0H1
    assert not attention.ablated_loss(organism, data, [(0, 1)], kind="mean")["repeated"] < 0.25 * first

    def repeated_loss(logits):
        return attention.token_losses(logits, data.tokens)[data.repeated].mean()

    # "queries and values do not need L0H1" (< 0.2 first) fails for the keys
    keys = patching.path_patch_group(organism, data.tokens, other, repeated_loss, [(0, 1)],
                                     receivers=[(1, 0), (1, 1)], receiver_input="k").item()  # fmt: skip
    assert not keys < 0.2 * first
    # "mean ablation leaves the first half alone" (< 0.15) fails for zero ablation
    zero = attention.ablated_loss(organism, data, [(1, 0), (1, 1)], kind="zero")
    assert not abs(zero["first"] - first) < 0.15
    # "no duplicate-token head" (< 0.1) fails on a hand-made duplicate-token pattern
    pattern = torch.zeros(1, 1, 9, 9)
    pattern[0, 0, torch.arange(9), (torch.arange(9) - 4).clamp(min=0)] = 1.0
    assert not attention.duplicate_token_score(pattern, 4).max() < 0.1


@pytest.mark.real
def test_real_model_claims_fail_for_random_heads(smollm2):
    """The SmolLM2 claim (ablating the top induction heads raises the repeated loss > 1 nat) fails for the
    random heads it is compared with."""
    survey = attention.induction_survey(smollm2, attention.survey_probe(smollm2), **attention.survey.SURVEY)
    assert survey["ablate_top"]["repeated"] - survey["loss_repeated"] > 1.0
    assert not survey["ablate_random"]["repeated"] - survey["loss_repeated"] > 1.0


@pytest.mark.real
def test_real_model_circuit_claims_hold_at_another_probe(smollm2):
    """The notebook's SmolLM2 claims of sections 4, 7 and 8 on another probe (seed 3, corrupted by seed 4; the
    notebook's are 0 and 1), heads picked afresh: a late head, not the top induction heads, writes the copied
    token (DLA); K-composition from the top previous-token heads into the top
    induction heads' keys (not queries or values), zero ablation overstating mean ablation. Able to fail: the
    same claims aimed at random heads of the same layers (keys) and at random heads (ablation) do not hold.
    One other probe, not three: the real-model budget of this file is about 20 s of CPU."""
    bos = smollm2.tokenizer.bos_token_id
    probe = tasks.repeated_tokens(4, 40, smollm2.cfg.d_vocab, bos=0 if bos is None else bos, seed=3)
    other = tasks.repeated_tokens(4, 40, smollm2.cfg.d_vocab, bos=0 if bos is None else bos, seed=4)
    scores = attention.head_scores(smollm2, probe)
    n_heads = smollm2.cfg.n_heads
    top = [divmod(int(i), n_heads) for i in scores["induction"].flatten().argsort(descending=True)[:3]]
    senders = attention.previous_token_senders(scores["previous"], min(layer for layer, _ in top), n=4)
    controls = attention.random_senders(scores["previous"], senders, n_sets=2, seed=1)
    kpath = attention.key_path_test(smollm2, probe, other, senders, top, controls)
    rise = {key: kpath[key] - kpath["clean"] for key in ("q", "k", "v")}
    assert rise["k"] > 4 and rise["q"] < 0.5 and rise["v"] < 0.5, kpath
    assert max(kpath["controls"]) - kpath["clean"] < 0.5 * rise["k"], kpath
    assert not any(c - kpath["clean"] > 4 for c in kpath["controls"]), "random senders: the keys do not need them"
    toks, _, first, repeated = attention.masks.resolve_batch(probe, None)
    with torch.no_grad():
        _, cache = smollm2.run_with_cache(toks)
        dla = attention.direct_logit_attribution(smollm2, cache, torch.nn.functional.pad(toks[:, 1:], (0, 1)))
    dla_rep, dla_first = dla[repeated].mean(0), dla[first].mean(0)
    writer = divmod(int(dla_rep.argmax()), n_heads)
    assert dla_rep[writer] > 1 and dla_rep[writer] > 5 * dla_first[writer].abs() and writer[0] > max(top)[0]
    assert max(dla_rep[h].abs() for h in top) < 0.5 * dla_rep[writer], "the top induction heads write little"
    assert not dla_first.max() > 1, "on the first half, where nothing can be copied, no head writes the answer"
    clean = attention.ablated_loss(smollm2, probe, [])["repeated"]
    zero, mean = (
        attention.ablated_loss(smollm2, probe, top, kind=kind)["repeated"] - clean for kind in ("zero", "mean")
    )
    assert mean > 1 and zero > mean + 1, (zero, mean)
    pool = [divmod(int(i), n_heads) for i in scores["induction"].flatten().argsort(descending=True)[10:]]
    random_heads = [pool[int(i)] for i in torch.randperm(len(pool), generator=torch.Generator().manual_seed(1))[:3]]
    assert not attention.ablated_loss(smollm2, probe, random_heads, kind="mean")["repeated"] - clean > 1
