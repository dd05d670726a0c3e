"""Chapter 06's asserted claims, re-run at three other seeds (prompt batches, SAE seeds, resampling draws)
and, for the SAEs, on the shipped converged SAEs of seeds 1-3 (the notebook uses seed 0); each check is also
shown to FAIL on a control where the claim should not hold. The shipped organisms are fixed, so "seeds" for them are the data.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from tutorial_lib import attention, organisms, tasks
from tutorial_lib import open_problems as op
from tutorial_lib import sae as S
from tutorial_lib.training import lm_loss

pytestmark = pytest.mark.slow
SEEDS = (1, 2, 3)


# ---------------------------------------------------------------------------------------------- 1. cost model
def cost_model(seed: int, exponent: float = 1.0) -> tuple[bool, bool]:
    """Section 1: do FLOPs ~ params**exponent predict the family within 2x (above 3e6 parameters), and is
    heads x params off by more than 2x somewhere? FLOPs, not seconds: a timed assertion failed in CI under load."""
    fam = []
    for n_layers, d_model in [(4, 256), (8, 256), (8, 512)]:
        m = op.random_transformer(n_layers, d_model, seed=seed)
        rep = tasks.repeated_tokens(8, 15, m.cfg.d_vocab, seed=seed)
        t = op.count_flops(lambda m=m, rep=rep: attention.head_scores(m, rep))
        fam.append((sum(p.numel() for p in m.parameters()), op.unit_counts(m.cfg)["heads"], t))
    p_l, h_l, t_l = fam[-1]
    ok = all(0.5 < t / (t_l * (p / p_l) ** exponent) < 2 for p, _, t in fam)
    per_head_off = any(not 0.5 < t / (t_l * p * h / (p_l * h_l)) < 2 for p, h, t in fam)
    return ok, per_head_off


@pytest.mark.parametrize("seed", SEEDS)
def test_cost_grows_like_one_forward_pass(seed):
    assert cost_model(seed) == (True, True)


def test_cost_model_check_fails_on_a_wrong_model():
    assert not cost_model(0, exponent=2.0)[0]  # time ~ params^2 is rejected


# ---------------------------------------------------------------------------------------------- 2. coverage
def coverage(toy, ind, seed: int, ioi_circuit=frozenset({(0, 0), (1, 3)}), ind_circuit=None) -> dict:
    prev = tuple(organisms.card("induction-2l")["properties"]["previous_token_head"])
    ind_circuit = {prev, (1, 0), (1, 1)} if ind_circuit is None else ind_circuit
    d = organisms.induction_batch(64, ind.cfg.d_vocab, seed=10 * seed + 5)
    ind_means = op.component_means(ind, organisms.induction_batch(64, ind.cfg.d_vocab, seed=10 * seed + 6).tokens)
    ioi = tasks.ioi(64, seed=10 * seed + 1, template=0, split="test")
    ioi_means = op.component_means(toy, tasks.ioi(64, seed=10 * seed + 2, template=0, split="test").tokens)
    corpus = tasks.corpus_tokens(128, 32, seed=3000 + seed)
    corpus_means = op.component_means(toy, tasks.corpus_tokens(128, 32, seed=4000 + seed))
    mask = corpus[:, 1:] != tasks.PAD_ID

    def ld(logits):
        from tutorial_lib import patching

        return patching.logit_diff(logits, ioi.io_token, ioi.s_token, positions=ioi.end_pos)

    return {
        "induction": op.circuit_coverage(
            ind, d.tokens, lambda lg: attention.token_losses(lg, d.tokens)[d.repeated].mean(), ind_circuit, ind_means
        )["recovered"],
        "ioi": op.circuit_coverage(toy, ioi.tokens, ld, set(ioi_circuit), ioi_means)["recovered"],
        "lm": op.circuit_coverage(toy, corpus, lambda lg: lm_loss(lg, corpus, mask), set(ioi_circuit), corpus_means)[
            "recovered"
        ],
        "ioi_strict": op.circuit_coverage(toy, ioi.tokens, ld, set(ioi_circuit), ioi_means, ablate_mlps=True)[
            "recovered"
        ],
    }


def coverage_claims(rec: dict) -> tuple[bool, bool, bool]:
    return rec["induction"] > 0.9 and rec["ioi"] > 0.9, rec["lm"] < rec["ioi"] - 0.1, rec["ioi_strict"] < 0.5


@pytest.mark.parametrize("seed", SEEDS)
def test_coverage_and_the_section_10_prediction_hold_on_other_batches(toy, induction, seed):
    assert coverage_claims(coverage(toy, induction, seed)) == (True, True, True)


def test_coverage_claims_fail_on_wrong_circuits(toy, induction, ioi3):
    every = frozenset((layer, h) for layer in range(2) for h in range(4))
    wrong = coverage(toy, induction, 0, ioi_circuit=frozenset({(1, 0), (1, 1)}), ind_circuit={(1, 0), (1, 1)})
    assert not coverage_claims(wrong)[0]  # the induction heads without the previous-token head; two idle heads
    whole = coverage(toy, induction, 0, ioi_circuit=every)
    assert not coverage_claims(whole)[1]  # every head kept: the LM loss is covered as well as IOI
    ioi = tasks.ioi(64, seed=1, template=0, split="test")  # where heads alone carry IOI: ioi-3l has no MLPs
    means = op.component_means(ioi3, tasks.ioi(64, seed=2, template=0, split="test").tokens)

    def ld(logits):
        from tutorial_lib import patching

        return patching.logit_diff(logits, ioi.io_token, ioi.s_token, positions=ioi.end_pos)

    heads_only = op.circuit_coverage(ioi3, ioi.tokens, ld, {(1, 1)}, means, ablate_mlps=True)["recovered"]
    assert not coverage_claims({**whole, "ioi_strict": heads_only})[2]


# ---------------------------------------------------------------------------------------------- 4. self-repair
def effects(model, seed: int):
    ioi = tasks.ioi(64, seed=10 * seed + 1, template=0, split="test")
    means = op.component_means(model, tasks.ioi(64, seed=10 * seed + 2, template=0, split="test").tokens)
    return op.direct_and_total_effects(model, ioi.tokens, ioi.io_token, ioi.s_token, ioi.end_pos, means)


def no_self_repair(e, head) -> bool:
    return abs(float(op.self_repair_fraction(e["direct"][head], e["total"][head]))) < 0.2


@pytest.mark.parametrize("seed", SEEDS)
def test_ioi3_name_mover_is_not_repaired_and_toy_l0h0_acts_indirectly(toy, ioi3, seed):
    e3, e = effects(ioi3, seed), effects(toy, seed)
    mover = divmod(int(e3["direct"].argmax()), ioi3.cfg.n_heads)
    assert mover == (1, 1) and no_self_repair(e3, mover)
    assert e["total"][0, 0] > 5 * e["direct"][0, 0]


def test_self_repair_checks_fail_on_controls(toy, ioi3):
    e3, e = effects(ioi3, 0), effects(toy, 0)
    assert not no_self_repair(e, (0, 0))  # a head that acts through later components: total far from direct
    assert not e3["total"][1, 1] > 5 * e3["direct"][1, 1]  # a head that acts directly


def redundancy(ind, seed: int, pair) -> bool:
    d = organisms.induction_batch(64, ind.cfg.d_vocab, seed=10 * seed + 5)
    means = op.component_means(ind, organisms.induction_batch(64, ind.cfg.d_vocab, seed=10 * seed + 6).tokens)
    every = {(layer, h) for layer in range(2) for h in range(2)}

    def loss(heads):
        hooks = op.circuit_hooks(ind, every - set(heads), means)
        with torch.no_grad():
            logits = ind.run_with_hooks(d.tokens, fwd_hooks=hooks)
        return float(attention.token_losses(logits, d.tokens)[d.repeated].mean())

    base = loss([])
    return loss(pair) - base > 2 * sum(loss([h]) - base for h in pair)


@pytest.mark.parametrize("seed", SEEDS)
def test_induction_heads_back_each_other_up(induction, seed):
    assert redundancy(induction, seed, [(1, 0), (1, 1)])


def test_redundancy_check_fails_for_heads_in_series(induction):
    prev = tuple(organisms.card("induction-2l")["properties"]["previous_token_head"])
    assert not redundancy(induction, 0, [prev, (1, 0)])


# ---------------------------------------------------------------------------------------------- 5. off-distribution
def distances(toy, seed: int, ref=None) -> dict:
    fit = tasks.ioi(512, seed=10 * seed + 3, template=0, split="train")
    held = tasks.ioi(64, seed=10 * seed + 1, template=0, split="test")
    ref = tasks.ioi(64, seed=10 * seed + 2, template=0, split="test") if ref is None else ref
    pick = torch.randint(ref.tokens.shape[0], (64,), generator=torch.Generator().manual_seed(seed))
    return {
        (layer, h): v
        for layer in range(2)
        for h, v in op.replacement_distances(toy, fit, held, ref, layer, pick).items()
    }


@pytest.mark.parametrize("seed", SEEDS)
def test_replacements_sit_where_the_notebook_says(toy, seed):
    v = op.replacement_verdicts(distances(toy, seed))
    assert v["mean_far_inside"] and v["resample_typical"] and {(0, h) for h in range(4)} <= v["zero_atypical"]


def test_replacement_verdicts_fail_on_controls(toy):
    other = tasks.corpus_tokens(64, 15, seed=7)  # resampling from another distribution: text, not IOI prompts
    v = op.replacement_verdicts(distances(toy, 0, ref=SimpleNamespace(tokens=other, end_pos=torch.full((64,), 14))))
    assert not v["resample_typical"]
    assert (
        not {(layer, h) for layer in range(2) for h in range(4)}
        <= op.replacement_verdicts(distances(toy, 0))["zero_atypical"]
    )  # not every head: some layer-1 heads' zero is typical
    gen = torch.Generator().manual_seed(0)  # in one dimension the centre is not empty
    fit, held, ref = (torch.randn(n, 1, generator=gen) for n in (512, 64, 64))
    mu, cov = op.gaussian_stats(fit)
    one_d = {
        0: {
            k: op.mahalanobis(x, mu, cov)
            for k, x in {
                "held-out": held,
                "zero": torch.zeros(1, 1),
                "mean": ref.mean(0, keepdim=True),
                "resample": ref,
            }.items()
        }
    }
    assert not op.replacement_verdicts(one_d)["mean_far_inside"]


def ablation_spread(model, seed: int) -> float:
    from tutorial_lib import patching

    ioi = tasks.ioi(64, seed=10 * seed + 1, template=0, split="test")
    ref = tasks.ioi(64, seed=10 * seed + 2, template=0, split="test")

    def ld(logits):
        return patching.logit_diff(logits, ioi.io_token, ioi.s_token, positions=ioi.end_pos)

    effs = torch.stack(
        [
            patching.ablate(model, ioi.tokens, ld, component="head", method=m, reference_tokens=ref.tokens, seed=seed)
            for m in ("zero", "mean", "resample")
        ]
    )
    return float((effs.amax(0) - effs.amin(0)).max())


@pytest.mark.parametrize("seed", SEEDS)
def test_ablation_types_disagree_by_more_than_a_logit(toy, seed):
    assert ablation_spread(toy, seed) > 1.0


def test_ablation_disagreement_check_fails_on_an_untrained_model():
    assert not ablation_spread(organisms.build("toy-lm"), 0) > 1.0


# ---------------------------------------------------------------------------------------------- 6. illusion
def illusion(seed: int, direction) -> tuple[float, float]:
    g = torch.Generator().manual_seed(seed)
    f = torch.randint(0, 2, (200,), generator=g).float() * 2 - 1
    hidden = torch.stack([f, f, torch.zeros_like(f)], 1) + 0.05 * torch.randn(200, 3, generator=g) * torch.tensor(
        [1.0, 1.0, 0.0]
    )
    readout = torch.tensor([1.0, 0.0, 1.0])
    base, source = hidden[f > 0][:50], hidden[f < 0][:50]
    full = float(((source - base) @ readout).mean())
    space = torch.linalg.svd(hidden - hidden.mean(0), full_matrices=False).Vh[:2]

    def eff(basis):
        return float(((op.patch_subspace(base, source, basis) - base) @ readout).mean()) / full

    return eff(direction), eff(direction @ space.T @ space)


ILLUSORY = torch.tensor([[0, 1.0, 1.0]]) / 2**0.5


@pytest.mark.parametrize("seed", SEEDS)
def test_the_illusory_direction_works_only_through_the_dormant_one(seed):
    moved, restricted = illusion(seed, ILLUSORY)
    assert moved > 0.4 and abs(restricted) < 0.05 and illusion(seed, torch.tensor([[1.0, 0, 0]]))[1] > 0.95


def test_illusion_check_fails_for_a_disconnected_direction():
    assert not illusion(0, torch.tensor([[0, 1.0, 0]]))[0] > 0.4


# ---------------------------------------------------------------------------------------------- 3, 7, 8. SAEs
# The SAEs are the shipped converged ones (op.load_toy_saes: 16,000 steps each, seeds 0-3 of topk2 and topk8);
# the notebook uses seed 0 (and all seeds together in sections 7 and 8), the tests each of seeds 1-3 alone.
@pytest.fixture(scope="module")
def shipped():
    return op.load_toy_saes()


@pytest.fixture(scope="module")
def acts(toy, shipped):
    return op.toy_sae_activations(shipped.recipe, toy)


@pytest.fixture(scope="module")
def early(shipped, acts):
    """250-step runs of the recipe at seeds 1-3: seed 1's is shipped, seeds 2 and 3 are retrained (~1 s each)."""
    return {1: shipped.checkpoints["topk8 seed 1"][250]} | {
        s: op.train_toy_sae(f"topk8 seed {s}", acts, steps=250) for s in (2, 3)
    }


def dictionary_claims(converged, undertrained, acts, record: dict | None = None) -> tuple[bool, bool, bool]:
    """Section 3: at convergence most latents have no counterpart at cosine 0.9; the fraction shared at 0.7
    grew by > 0.15 over training; the frequency-cosine correlation fell by > 0.3. `record` gets the values."""
    late = op.dictionary_agreement(converged[0], converged[1], acts)
    early = op.dictionary_agreement(undertrained[0], undertrained[1], acts)
    (record if record is not None else {}).update(
        shared_09=late["shared"][0.9], shared_07=late["shared"][0.7], rise_07=late["shared"][0.7] - early["shared"][0.7],
        rho_freq=late["rho_freq"], rho_fall=early["rho_freq"] - late["rho_freq"],
    )  # fmt: skip
    return (
        late["shared"][0.9] < 0.5,
        late["shared"][0.7] - early["shared"][0.7] > 0.15,
        early["rho_freq"] - late["rho_freq"] > 0.3,
    )


def test_retraining_reproduces_the_shipped_checkpoint(shipped, acts):
    sae = op.train_toy_sae("topk8 seed 1", acts, steps=250)
    torch.testing.assert_close(sae.W_dec, shipped.checkpoints["topk8 seed 1"][250].W_dec, atol=1e-5, rtol=0)


@pytest.mark.parametrize("a,b", [(1, 2), (2, 3), (3, 1)])
def test_converged_seeds_share_a_fifth_of_their_latents(shipped, acts, early, a, b):
    pair = (shipped.saes[f"topk8 seed {a}"], shipped.saes[f"topk8 seed {b}"])
    assert dictionary_claims(pair, (early[a], early[b]), acts) == (True, True, True)


def test_dictionary_claims_fail_on_controls(shipped, acts):
    assert not op.dictionary_agreement(*shipped.control)["shared"][0.9] < 0.5  # planted features: a unique dictionary
    untrained = [S.make_sae("topk", acts.shape[1], 256, seed=s, k=8).eval() for s in (0, 1)]
    assert dictionary_claims(untrained, untrained, acts)[1:] == (False, False)  # no training, nothing changes


def compute_claims(toy, k2: list, others: list, control, record: dict | None = None) -> tuple[bool, bool, bool]:
    """Section 7: k = 2 SAEs cost loss (> 0.005 nats) and a share of training below 1; the other SAEs cost
    less than 0.003 nats; the control costs more than 0.1. `record` gets (delta, equivalent) per SAE."""
    corpus = tasks.corpus_tokens(128, 32, seed=2024)
    hook, steps = op.TOY_SAE_RECIPE["hook"], organisms.card("toy-lm")["recipe"]["steps"]
    clean = op.spliced_loss(toy, lambda a: a, corpus, hook)

    def cost(sae) -> tuple[float, float]:
        loss = op.spliced_loss(toy, sae, corpus, hook)
        return loss - clean, op.compute_equivalent(op.TOY_LM_CURVE_STEPS, op.TOY_LM_CURVE_LOSS, loss, steps)

    k2_costs, other_costs = [cost(s) for s in k2], [cost(s) for s in others]
    (record if record is not None else {}).update(k2=k2_costs, others=other_costs)
    return (
        all(d > 0.005 and eq < 1 for d, eq in k2_costs),
        all(abs(d) < 0.003 for d, _ in other_costs),
        cost(control)[0] > 0.1,
    )


@pytest.mark.parametrize("seed", SEEDS)
def test_only_k2_costs_training_compute(toy, shipped, acts, seed):
    k2, k8 = shipped.saes[f"topk2 seed {seed}"], shipped.saes[f"topk8 seed {seed}"]
    control = S.make_sae("topk", k8.d_in, 256, seed=seed, k=8).eval()
    assert compute_claims(toy, [k2], [k8], control) == (True, True, True)
    assert all(S.evaluate(sae, acts).explained_variance > 0.98 for sae in (k2, k8))


def test_compute_claims_fail_on_controls(toy, shipped, acts):
    k2, k8 = shipped.saes["topk2 seed 1"], shipped.saes["topk8 seed 1"]
    assert compute_claims(toy, [k8], [k2], lambda a: a) == (False, False, False)  # swapped; a perfect "SAE"
    untrained = S.make_sae("topk", k8.d_in, 256, seed=1, k=8).eval()
    assert not S.evaluate(untrained, acts).explained_variance > 0.98


def probe_claims(toy, k2: list, k8: list, seed: int, shuffle: bool = False,
                 record: dict | None = None) -> tuple[bool, bool, bool]:  # fmt: skip
    """Section 8: a probe on the residual stream finds bracket depth >= 2 (> majority + 0.2); probes on all
    of a k = 2 SAE's latents fall > 0.05 below it; on a k = 8 SAE's, within 0.03. `record` gets the values."""
    hook = op.TOY_SAE_RECIPE["hook"]
    br = tasks.brackets(128, n_words=24, seed=5 + seed)
    with torch.no_grad():
        _, cache = toy.run_with_cache(br.tokens, names_filter=hook)
    x, y = cache[hook].reshape(-1, toy.cfg.d_model), (br.depth.reshape(-1) >= 2).long()
    if shuffle:
        y = y[torch.randperm(y.shape[0], generator=torch.Generator().manual_seed(seed))]
    half = x.shape[0] // 2
    baseline = max(float(y[half:].float().mean()), 1 - float(y[half:].float().mean()))

    def acc(sae) -> float:
        with torch.no_grad():
            return float(op.latent_probe_correct(sae.encode(x), y, None).mean())

    raw = float(op.latent_probe_correct(x, y, None).mean())
    k2_acc, k8_acc = [acc(s) for s in k2], [acc(s) for s in k8]
    (record if record is not None else {}).update(baseline=baseline, raw=raw, k2=k2_acc, k8=k8_acc)
    return raw > baseline + 0.2, all(a < raw - 0.05 for a in k2_acc), all(a > raw - 0.03 for a in k8_acc)


@pytest.mark.parametrize("seed", SEEDS)
def test_k2_loses_bracket_depth_and_k8_keeps_it(toy, shipped, seed):
    k2, k8 = shipped.saes[f"topk2 seed {seed}"], shipped.saes[f"topk8 seed {seed}"]
    assert probe_claims(toy, [k2], [k8], seed) == (True, True, True)


def test_probe_claims_fail_on_controls(toy, shipped):
    k2, k8 = shipped.saes["topk2 seed 1"], shipped.saes["topk8 seed 1"]
    assert not probe_claims(toy, [k2], [k8], 1, shuffle=True)[0]  # shuffled labels: nothing to find
    identity = SimpleNamespace(encode=lambda x: x)  # the residual stream itself loses nothing
    assert probe_claims(toy, [identity], [k2], 1)[1:] == (False, False)


# ---------------------------------------------------------------------------------------------- 3, 7, 8 at 4x the training
# The same claims on every SAE they rest on (section 7: k = 2 at seeds 0-3, k >= 4 and the ReLU SAEs; section 3:
# the four seed pairs of topk8; section 8: k = 2 and k = 8 at seeds 0-3), trained 64,000 steps instead of 16,000
# (shipped.long: the recipe's "long" entry, shipped so that CI never trains them; "topk8 x2 width" is not in it).
# Each test prints its values (pytest -s); the controls above apply unchanged, the checks being the same.
LONG_K2 = ("topk2", "topk2 seed 1", "topk2 seed 2", "topk2 seed 3")
LONG_K8 = ("topk8", "topk8 seed 1", "topk8 seed 2", "topk8 seed 3")
LONG_OTHERS = ("topk4", *LONG_K8, "topk16", "relu", "relu l1 1.0")


@pytest.fixture(scope="module")
def long(shipped):
    assert shipped.recipe["long"]["steps"] == 4 * shipped.recipe["train"]["steps"]
    assert set(shipped.long) == set(shipped.recipe["long"]["names"]) == {*LONG_K2, *LONG_OTHERS}
    return shipped.long


@pytest.mark.parametrize("a,b", [(0, 1), (1, 2), (2, 3), (3, 1)])
def test_at_4x_training_converged_seeds_still_share_a_minority_of_latents(shipped, acts, early, long, a, b):
    early = early | {0: shipped.checkpoints["topk8"][250]}
    rec: dict = {}
    verdict = dictionary_claims([long[LONG_K8[a]], long[LONG_K8[b]]], [early[a], early[b]], acts, rec)
    print(f"section 3 at 64,000 steps (topk8 seeds {a} vs {b}):", {k: round(v, 3) for k, v in rec.items()})
    assert verdict == (True, True, True)


def test_at_4x_training_only_k2_costs_training_compute(toy, acts, long):
    rec: dict = {}
    control = S.make_sae("topk", acts.shape[1], 256, seed=0, k=8).eval()
    verdict = compute_claims(toy, [long[n] for n in LONG_K2], [long[n] for n in LONG_OTHERS], control, rec)
    print("section 7 at 64,000 steps, (loss change, share of training):",
          {n: (round(d, 4), round(eq, 2)) for n, (d, eq) in zip(LONG_K2 + LONG_OTHERS, rec["k2"] + rec["others"])})  # fmt: skip
    assert verdict == (True, True, True)
    assert all(S.evaluate(sae, acts).explained_variance > 0.98 for sae in long.values())


def test_at_4x_training_k2_still_loses_bracket_depth_and_k8_keeps_it(toy, long):
    rec: dict = {}
    verdict = probe_claims(toy, [long[n] for n in LONG_K2], [long[n] for n in LONG_K8], 0, record=rec)
    print("section 8 at 64,000 steps:", {k: [round(x, 3) for x in v] if isinstance(v, list) else round(v, 3)
                                         for k, v in rec.items()})  # fmt: skip
    assert verdict == (True, True, True)
