"""Chapter 02's asserted claims (solutions/02_sparse_autoencoders.ipynb), re-run at three other seeds and at
4x the training, and shown to fail on controls where they should not hold.

`frontier(seed, steps, ...)` re-runs sections 2-3's sweep with the library's kernel (`S.sweep_frontier`) on
synthetic data drawn at `seed`, on the shipped recipe (`S.FRONTIER_RECIPE`: 4,800 steps);
`frontier_claims` applies the notebook's thresholds. Robust: the shipped SAEs pass and retraining them
from the recipe reproduces them; the claims hold at seeds 1, 2 and 3; twice the training changes
nothing (the plateau). The sweeps at other seeds and at twice the training come from the record the
library ships beside the SAEs (`S.load_robustness`); one SAE of each record is retrained here to check it. Able to fail, each claim on its control:

* "short schedule": the comparison the issue called a strawman (about 120 steps, l1 in [0.6, 2]); the
  gap is far above 0.25 there, so "TopK is ahead by a modest margin" fails;
* "untrained": every SAE trained for one step; MCC stays near the random-direction baseline (0.33).
  (Before the data got its own random stream, an SAE with the data's seed started AT the true features,
  so this control passed: that was the defect behind the old strict xfail.)
* "quarter schedule": at 1,200 steps TopK k=8 reaches MCC about 0.8, so "k=8 recovers" fails.

`depth(seed, steps)` re-runs section 4's depth-latent measurements (mean activation per bracket depth on
held-out sequences, steering at depth 0) on an SAE trained on toy-lm at SAE seed `seed` for the notebook's
2,400 steps (the loss plateau) at seeds 1-3, and for twice that at seed 0:

* "shuffled depths": the per-depth means with the depth labels permuted are not increasing;
* "control latent": steering with a latent unrelated to depth (|r| < 0.1) of closest firing frequency does
  not raise P(')') 3x.

Section 5 (seed agreement of converged pairs) at seed pairs (2, 3), (4, 5) and at twice the training; it
fails on the control pair (a toy-lm SAE against an SAE of other data). Section 6 (children divide their
parent's contexts by token) at other seeds and twice the training; it fails with the tokens shuffled.
"""

from __future__ import annotations

import functools

import pytest
import torch

from tutorial_lib import organisms, tasks
from tutorial_lib import sae as S
from tutorial_lib.validation import TutorialInputError

SEEDS = (1, 2, 3)
NOTEBOOK = S.FRONTIER_RECIPE["sweep"]  # the shipped SAEs' schedule: 4,800 steps of 256 rows, lr 2e-3
pytestmark = pytest.mark.slow


@functools.cache
def frontier(
    seed: int,
    steps: int = NOTEBOOK["steps"],
    ks=tuple(NOTEBOOK["ks"]),
    l1_coeffs=tuple(NOTEBOOK["l1_coeffs"]),
    batch_size=256,
):
    recipe = {**S.FRONTIER_RECIPE, "data": {**S.FRONTIER_RECIPE["data"], "seed": seed}}
    x_train, x_test, true = S.frontier_data(recipe)
    return S.sweep_frontier(
        x_train, x_test, true, ks=ks, l1_coeffs=l1_coeffs, steps=steps, batch_size=batch_size, seed=seed
    )


def untrained_mcc(seed: int) -> float:
    _, _, true = S.frontier_data({**S.FRONTIER_RECIPE, "data": {**S.FRONTIER_RECIPE["data"], "seed": seed}})
    return S.feature_recovery(S.TopKSAE(64, 256, k=8, seed=seed), true)["mcc"]


def frontier_claims(points, baseline: float) -> dict[str, bool]:
    """The notebook's section-2 and section-3 assertions, by name (`baseline`: an untrained SAE's MCC)."""
    try:
        _, gaps = S.matched_gaps(points)
    except TutorialInputError:  # no shared L0 range (untrained SAEs): no gap claim can hold
        gaps = [float("inf")] * 3
    near = [p.mcc for p in points if 4 <= p.l0 <= 16] or [0.0]
    k8 = next(p for p in points if p.arch == "topk" and p.knob == 8)
    far = [p.mcc for p in points if p.arch == "topk" and p.knob == 32]
    return {
        "topk ahead by < 0.25": all(0 < g < 0.25 for g in gaps),
        "gap < 0.1 above true L0": max(gaps[1:]) < 0.1,
        "k=8 recovers (section 2)": k8.mcc >= 0.9 and k8.mcc >= baseline + 0.4 and k8.ev >= 0.75,
        "mcc >= 0.9 near the true L0": min(near) >= 0.9 and min(near) >= baseline + 0.4,
        "k=32 does not": all(m < 0.6 for m in far),
    }


def test_the_shipped_frontier_is_the_recipe_at_seed_0():
    """The notebook's SAEs (loaded from the artefact) pass the claims, and retraining from the recipe
    reproduces the held-out figures of one SAE per architecture (k = 8, l1 = 0.6: each SAE of the sweep
    trains on its own from the same seed and code path, so two stand for the eight, at a quarter of the
    CPU; `python -m tutorial_lib.sae.pretrained` rebuilds all eight)."""
    shipped = S.load_frontier()
    claims = frontier_claims(shipped, untrained_mcc(0))
    assert all(claims.values()), claims
    again = {(p.arch, p.knob): p for p in frontier(0, ks=(8,), l1_coeffs=(0.6,))}
    assert len(again) == 2
    for p in shipped:
        if (p.arch, p.knob) not in again:
            continue
        q = again[p.arch, p.knob]
        assert abs(p.ev - q.ev) < 0.01 and abs(p.mcc - q.mcc) < 0.02, (p, q)


ROBUSTNESS = S.load_robustness()
CHECKED = {"seed 1": ("topk", 16.0), "seed 2": ("relu", 0.15), "seed 3": ("relu", 1.0), "twice": ("relu", 0.6)}


def test_the_robustness_record_is_what_the_recipe_gives():
    """The record behind the two tests below (`python -m tutorial_lib.sae.pretrained --robustness`, about 5
    minutes of CPU) holds every run's whole sweep; one SAE per run, each of another kind, is retrained here
    from the run's recipe and must reproduce its recorded held-out figures (each SAE of a sweep trains on
    its own from the same seed and code path, so any one alone reproduces its record)."""
    assert set(ROBUSTNESS) == {"seed 1", "seed 2", "seed 3", "twice"}
    assert all(len(ROBUSTNESS[f"seed {s}"]["points"]) == 8 for s in SEEDS)
    for name, (arch, knob) in CHECKED.items():
        run = ROBUSTNESS[name]
        recorded = next(p for p in run["points"] if (p.arch, p.knob) == (arch, knob))
        again = S.retrain_point(run, arch, knob)
        assert abs(again.ev - recorded.ev) < 0.01 and abs(again.mcc - recorded.mcc) < 0.02, (name, again, recorded)
        assert abs(again.l0 - recorded.l0) < 0.05 * recorded.l0, (name, again, recorded)


@pytest.mark.parametrize("seed", SEEDS)
def test_frontier_claims_hold_at_other_seeds(seed):
    """The whole sweep at another seed of data and SAEs (from the record, checked above) passes every claim."""
    claims = frontier_claims(ROBUSTNESS[f"seed {seed}"]["points"], untrained_mcc(seed))
    assert all(claims.values()), claims


def test_the_shipped_schedule_is_at_its_plateau():
    """Twice the shipped training (9,600 steps, from the record; 4x would be 19,200) for the SAEs near the
    true L0 changes EV by < 0.02 and MCC by < 0.03: the schedule is on the plateau."""
    shipped = {(p.arch, p.knob): p for p in S.load_frontier()}
    longer = ROBUSTNESS["twice"]["points"]
    assert {(p.arch, p.knob) for p in longer} == {("topk", 8.0), ("relu", 0.6)}
    for p in longer:
        q = shipped[p.arch, p.knob]
        assert abs(p.ev - q.ev) < 0.02 and abs(p.mcc - q.mcc) < 0.03, (p, q)


def test_gap_claim_fails_on_the_short_schedule():
    pts = frontier(0, steps=117, ks=(4, 8, 16, 32), l1_coeffs=(2.0, 1.5, 1.0, 0.6), batch_size=1024)
    assert not frontier_claims(pts, untrained_mcc(0))["topk ahead by < 0.25"]


def test_mcc_claims_fail_untrained():
    """Trained one step, no SAE recovers the features (MCC about 0.33, the untrained baseline)."""
    claims = frontier_claims(frontier(0, steps=1), untrained_mcc(0))
    assert not claims["mcc >= 0.9 near the true L0"], claims
    assert not claims["k=8 recovers (section 2)"], claims


def test_mcc_claims_fail_at_a_quarter_of_the_schedule():
    """At 1,200 steps (the previous notebook's schedule) the SAEs have not converged: recovery fails."""
    claims = frontier_claims(frontier(0, steps=1200, ks=(8,), l1_coeffs=(0.6,)), untrained_mcc(0))
    assert not claims["k=8 recovers (section 2)"], claims


HOOK = "blocks.1.hook_resid_pre"


@functools.cache
def lm_and_acts():
    model = organisms.load("toy-lm")
    return model, S.sae_set_activations(S.SEEDS_RECIPE, model)


LM_STEPS = 2400  # the notebook's toy-lm SAEs: 2,400 steps of 1,024 rows, to the loss plateau
assert S.SEEDS_RECIPE["hook"] == HOOK and S.SEEDS_RECIPE["train"] == {"batch_size": 1024, "lr": 5e-3}


@functools.cache
def seed_saes() -> dict:
    """The notebook's toy-lm SAE at the seeds and lengths below, shipped (tutorial_lib/data/saes/toy-lm-seeds,
    python -m tutorial_lib.sae.shipped): a dozen SAEs trained from the recipe, checked by sha256 on load and,
    one of them, by retraining below."""
    return S.load_sae_set()[0]


def lm_sae(seed: int, steps: int = LM_STEPS, d_sae: int = 256) -> S.TopKSAE:
    """A TopK SAE on toy-lm's residual stream as the notebook trains it (k 8, lr 5e-3, batch 1,024), at `seed`."""
    return seed_saes()[f"topk8-d{d_sae}-seed{seed}-steps{steps}"]  # type: ignore[return-value]


def test_the_shipped_seed_saes_are_the_recipe():
    """Retrained from the recipe, the seed-1 SAE reproduces the shipped one: the same held-out error and L0
    within 2 %, and most latents the same direction (training is not bitwise equal across CPUs)."""
    _, acts = lm_and_acts()
    spec = next(s for s in S.SEEDS_RECIPE["saes"] if s["name"] == "topk8-d256-seed1-steps2400")
    again, _ = S.train_spec(spec, acts, S.SEEDS_RECIPE["train"])
    shipped = lm_sae(1)
    held_out = S.sae_set_activations({**S.SEEDS_RECIPE, "data": {"n_docs": 300, "seq_len": 32, "seed": 2}})
    with torch.no_grad():
        a, b = S.evaluate(again, held_out), S.evaluate(shipped, held_out)
    assert abs(a.mse - b.mse) <= 0.02 * b.mse and abs(a.l0 - b.l0) <= 0.02 * b.l0, (a, b)
    assert S.shared_latent_fraction(again, shipped, 0.9) >= 0.8


@functools.cache
def depth(seed: int, steps: int = LM_STEPS, shuffle: bool = False) -> dict:
    """The notebook's depth-latent numbers for an SAE trained at `seed` for `steps`."""
    model, _ = lm_and_acts()
    sae = lm_sae(seed, steps)
    br = tasks.brackets(200, seed=5)
    with torch.no_grad():
        _, c = model.run_with_cache(br.tokens, names_filter=[HOOK])
        z = sae.encode(c[HOOK].reshape(-1, 64))
    d = br.depth.reshape(-1)
    if shuffle:
        d = d[torch.randperm(len(d), generator=torch.Generator().manual_seed(seed))]
    half = z.shape[0] // 2
    r = S.latent_label_correlation(z[:half], d[:half])
    latent = int(r.abs().argmax())
    means = [float(z[half:, latent][d[half:] == v].mean()) for v in range(4)]
    freq = (z > 0).float().mean(0)
    gap = (freq - freq[latent]).abs()
    gap[r.abs() >= 0.1] = float("inf")  # a latent unrelated to depth
    control = int(gap.argmin())
    outside = br.depth == 0
    outside[:, 0] = False
    close = tasks.WORD_TO_ID[")"]
    p = {
        lat: [S.steer_with_latent(model, sae, br.tokens, HOOK, lat, a, outside, close) for a in (0.0, 6.0)]
        for lat in (latent, control)
    }
    return {"means": means, "latent": latent, "control": control, "p": p}


def rises(means) -> bool:
    return all(a < b for a, b in zip(means, means[1:]))


def steers(r, latent) -> bool:
    other = r["control"] if latent == r["latent"] else r["latent"]
    return r["p"][latent][-1] > 3 * max(r["p"][latent][0], r["p"][other][-1])


LM_RUNS = [(1, LM_STEPS), (2, LM_STEPS), (3, LM_STEPS), (0, 2 * LM_STEPS)]  # other seeds; twice the training


@pytest.mark.parametrize(("seed", "steps"), LM_RUNS)
def test_depth_latent_claims_hold(seed, steps):
    r = depth(seed, steps)
    assert rises(r["means"]), r
    assert steers(r, r["latent"]), r


def test_depth_claims_fail_on_controls():
    assert not rises(depth(0, shuffle=True)["means"])
    r = depth(0)
    assert not steers(r, r["control"])


@functools.cache
def name_slot(seed: int, steps: int = LM_STEPS) -> dict:
    """Section 4's name latent (selected for S2 on half the IOI prompts) and its AUROCs on the other half:
    S2 vs every other token, and at the S2 slot, a repeated name (clean) vs a new name ("abc" prompts);
    as the control, the S2 slot vs the IO slot (two different positions, both names)."""
    model, _ = lm_and_acts()
    sae = lm_sae(seed, steps)
    io = tasks.ioi(200, seed=6)
    with torch.no_grad():
        _, c = model.run_with_cache(io.tokens, names_filter=[HOOK])
        _, c_new = model.run_with_cache(io.corrupt_tokens, names_filter=[HOOK])
        z, z_new = sae.encode(c[HOOK].reshape(-1, 64)), sae.encode(c_new[HOOK].reshape(-1, 64))
    is_s2 = torch.zeros_like(io.tokens, dtype=torch.bool)
    is_s2[torch.arange(200), io.s2_pos] = True
    half = z.shape[0] // 2
    latent = int(S.latent_label_correlation(z[:half], is_s2.reshape(-1)[:half]).argmax())
    rows = torch.arange(100, 200)

    def at(zz, pos):
        return zz.reshape(*io.tokens.shape, -1)[rows, pos[100:], latent]

    def versus(a, b):
        return S.auroc(torch.cat([a, b]), torch.cat([torch.ones_like(a), torch.zeros_like(b)]).bool())

    return {
        "s2": S.auroc(z[half:, latent], is_s2.reshape(-1)[half:]),
        "repeated vs new": versus(at(z, io.s2_pos), at(z_new, io.s2_pos)),
        "s2 vs io slot": versus(at(z, io.s2_pos), at(z, io.io_pos)),
    }


@pytest.mark.parametrize(("seed", "steps"), LM_RUNS)
def test_name_latent_is_a_slot_latent(seed, steps):
    r = name_slot(seed, steps)
    assert r["s2"] >= 0.9, r
    assert r["repeated vs new"] < 0.7, r


def test_slot_check_fails_on_a_distinction_the_latent_makes():
    r = name_slot(0)
    assert not r["s2 vs io slot"] < 0.7, r


# ---- section 5: seed agreement at convergence; section 6: feature splitting


def agreement_claims(shared, controls) -> dict[str, bool]:
    """The notebook's section-5 assertions on converged pairs: `shared` and each control's fractions at
    cosine 0.5 / 0.7 / 0.9."""
    return {
        "few twins at 0.9": shared[2] < 0.3,
        "most have a loose twin, unlike the controls": shared[0] >= 0.7
        and all(shared[0] > c[0] + 0.4 for c in controls),
    }


def other_data_control(sae) -> list[float]:
    """The agreement of `sae` with the notebook's SAE of other data (the synthetic k=8 SAE)."""
    syn = next(p.sae for p in S.load_frontier() if p.arch == "topk" and p.knob == 8)
    assert syn is not None
    return [S.shared_latent_fraction(sae, syn, t) for t in (0.5, 0.7, 0.9)]


@pytest.mark.parametrize(("seeds", "steps"), [((2, 3), LM_STEPS), ((4, 5), LM_STEPS), ((0, 1), 2 * LM_STEPS)])
def test_seed_agreement_at_convergence(seeds, steps):
    """At other seed pairs and at twice the training: few twins at 0.9, most at 0.5, controls far below."""
    a, b = lm_sae(seeds[0], steps), lm_sae(seeds[1], steps)
    shared = [S.shared_latent_fraction(a, b, t) for t in (0.5, 0.7, 0.9)]
    rand = [
        S.shared_latent_fraction(S.TopKSAE(64, 256, seed=10), S.TopKSAE(64, 256, seed=11), t) for t in (0.5, 0.7, 0.9)
    ]
    claims = agreement_claims(shared, [rand, other_data_control(a)])
    assert all(claims.values()), (shared, claims)


def test_agreement_claim_fails_against_an_sae_of_other_data():
    """The control pair (toy-lm SAE vs the synthetic data's SAE) does not pass the agreement claim."""
    a = lm_sae(0)
    shared = other_data_control(a)
    assert not agreement_claims(shared, [])["most have a loose twin, unlike the controls"], shared


def split_claims(splits) -> dict[str, bool]:
    return {
        "some splits": len(splits) >= 3,
        "most divide by token": sum(s.tv >= 0.5 for s in splits) >= len(splits) / 2,
    }


def splits_at(big_seed: int, small_seed: int, steps: int = LM_STEPS, shuffle_tokens: bool = False):
    model, acts = lm_and_acts()
    tokens = corpus_tokens_flat()
    if shuffle_tokens:
        tokens = tokens[torch.randperm(len(tokens), generator=torch.Generator().manual_seed(0))]
    return S.feature_splits(lm_sae(small_seed, steps, 64), lm_sae(big_seed, steps), acts, tokens, model.cfg.d_vocab)


@functools.cache
def corpus_tokens_flat():
    model = organisms.load("toy-lm")
    tokens = tasks.corpus_tokens(1200, model.cfg.n_ctx, seed=1)
    return tokens[tokens != tasks.PAD_ID]


@pytest.mark.parametrize(("big", "small", "steps"), [(1, 3, LM_STEPS), (2, 4, LM_STEPS), (0, 2, 2 * LM_STEPS)])
def test_split_claims_hold(big, small, steps):
    splits = splits_at(big, small, steps)
    claims = split_claims(splits)
    assert all(claims.values()), (claims, splits)
    assert sum(s.tv_random >= 0.5 for s in splits) < len(splits) / 2, splits  # the notebook's in-cell control


def test_split_claim_fails_with_shuffled_tokens():
    """With each activation's token shuffled, the children no longer divide the contexts by token."""
    assert not split_claims(splits_at(0, 2, shuffle_tokens=True))["most divide by token"]
