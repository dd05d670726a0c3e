"""Chapter 06's asserted claims, re-run at three other seeds (prompt batches, SAE seeds, resampling draws)
and, where training is involved, at four times the SAEs' training; each check is also shown to FAIL on a
control where the claim should not hold. The shipped organisms are fixed, so "seeds" for them are the data.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from tutorial_lib import attention, organisms, probing, tasks
from tutorial_lib import open_problems as op
from tutorial_lib import sae as S
from tutorial_lib.training import lm_loss

pytestmark = pytest.mark.slow
SEEDS = (1, 2, 3)
SAE_HOOK = "blocks.1.hook_resid_post"
SAE_STEPS = 1000  # the notebook's schedule


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
@pytest.fixture(scope="module")
def acts(toy):
    docs = tasks.corpus_tokens(256, 32, seed=21)
    with torch.no_grad():
        _, cache = toy.run_with_cache(docs, names_filter=SAE_HOOK)
    return cache[SAE_HOOK][docs != tasks.PAD_ID]


_TRAINED: dict = {}


def train(acts, seed: int, k: int = 8, steps: int = SAE_STEPS, arch: str = "topk", **kw):
    """Train (once per module: the claims share their SAEs to stay within the time budget)."""
    key = (id(acts), seed, k, steps, arch, tuple(sorted(kw.items())))
    if key not in _TRAINED:
        _TRAINED[key] = _train(acts, seed, k, steps, arch, **kw)
    return _TRAINED[key]


def _train(acts, seed: int, k: int, steps: int, arch: str, **kw):
    sae = S.make_sae(arch, acts.shape[1], 256, seed=seed, **({"k": k} if arch == "topk" else kw))
    S.train_sae(sae, acts, steps=steps, batch_size=512, lr=3e-3, seed=seed)
    return sae.eval()


def dictionary_claims(acts, a, b, shuffle: bool = False) -> tuple[bool, bool]:
    cos = op.max_cosines(a.W_dec.detach(), b.W_dec.detach())
    with torch.no_grad():
        freq = (a.encode(acts) > 0).float().mean(0)
    alive = freq > 0
    f = (
        freq[alive][torch.randperm(int(alive.sum()), generator=torch.Generator().manual_seed(0))]
        if shuffle
        else freq[alive]
    )
    return float((cos[alive] > 0.9).float().mean()) < 0.5, op.spearman(f, cos[alive]) > 0.2


@pytest.mark.parametrize(
    "seeds,steps", [((1, 2), SAE_STEPS), ((2, 3), SAE_STEPS), ((3, 1), SAE_STEPS), ((0, 1), 4 * SAE_STEPS)]
)
def test_seeds_disagree_and_agree_on_frequent_latents(acts, seeds, steps):
    a, b = (train(acts, s, steps=steps) for s in seeds)
    assert dictionary_claims(acts, a, b) == (True, True)


def test_dictionary_claims_fail_on_controls(acts):
    a = train(acts, 0, steps=300)
    assert not dictionary_claims(acts, a, a)[0]  # the same dictionary twice: everything is shared
    assert not dictionary_claims(acts, a, train(acts, 1, steps=300), shuffle=True)[1]  # frequencies shuffled


def compute_claims(toy, saes: dict) -> tuple[bool, bool, bool]:
    """Section 7: every spliced SAE is worse than the organism (equivalent in (0, 1)); the k = 2 SAE costs more
    compute than the k = 8 one; and more than half of the organism's training."""
    corpus = tasks.corpus_tokens(128, 32, seed=2024)
    mask = corpus[:, 1:] != tasks.PAD_ID
    steps = organisms.card("toy-lm")["recipe"]["steps"]
    eq = {}
    for name, sae in saes.items():
        with torch.no_grad():
            hook_fn = lambda a, hook, s=sae: s(a)  # noqa: ARG005, E731 - TransformerLens passes hook=
            logits = toy.run_with_hooks(corpus, fwd_hooks=[(SAE_HOOK, hook_fn)])
        eq[name] = (
            op.steps_to_reach(op.TOY_LM_CURVE_STEPS, op.TOY_LM_CURVE_LOSS, float(lm_loss(logits, corpus, mask))) / steps
        )
    return all(0 < v < 1 for v in eq.values()), eq["topk2"] < eq["topk8"], eq["topk2"] < 0.5


@pytest.mark.parametrize("seed", SEEDS)
def test_spliced_saes_cost_training_compute(toy, acts, seed):
    saes = {"topk2": train(acts, seed, k=2), "topk8": train(acts, seed)}
    assert compute_claims(toy, saes) == (True, True, True)
    assert all(S.evaluate(sae, acts).explained_variance >= 0.97 for sae in saes.values())


def test_compute_claims_fail_on_controls(toy, acts):
    topk2, topk8 = train(acts, 1, k=2), train(acts, 1)
    assert not compute_claims(toy, {"topk2": topk2, "topk8": lambda a: a})[0]  # a perfect reconstruction costs nothing
    assert compute_claims(toy, {"topk2": topk8, "topk8": topk2})[1:] == (False, False)  # the two SAEs swapped


def probes_beat_baseline(toy, acts, saes, seed: int, shuffle: bool = False) -> bool:
    """Section 8's assertion: every SAE's best single latent predicts bracket depth >= 2 better than the
    majority class, by at least 0.05, on held-out tokens."""
    br = tasks.brackets(128, n_words=24, seed=5 + seed)
    with torch.no_grad():
        _, c_br = toy.run_with_cache(br.tokens, names_filter=SAE_HOOK)
    x, y = c_br[SAE_HOOK].reshape(-1, acts.shape[1]), (br.depth.reshape(-1) >= 2).long()
    if shuffle:
        y = y[torch.randperm(y.shape[0], generator=torch.Generator().manual_seed(seed))]
    half = x.shape[0] // 2
    baseline = max(float(y[half:].float().mean()), 1 - float(y[half:].float().mean()))
    for sae in saes:
        with torch.no_grad():
            z = sae.encode(x)
        keep = (z[:half][y[:half] == 1].mean(0) - z[:half][y[:half] == 0].mean(0)).abs().topk(1).indices
        if not probing.train_logistic(z[:half][:, keep], y[:half]).score(z[half:][:, keep], y[half:]) > baseline + 0.05:
            return False
    return True


@pytest.mark.parametrize("seed", SEEDS)
def test_every_sae_has_a_latent_for_bracket_depth(toy, acts, seed):
    """Section 8 at other SAE seeds and another bracket batch (TopK k = 2, 8, 16 and a ReLU SAE). The rank
    correlation of explained variance with probing is printed, not asserted: it moves with the seed."""
    saes = [train(acts, seed, k=k) for k in (2, 8, 16)] + [train(acts, seed, arch="relu", l1_coeff=0.3)]
    assert probes_beat_baseline(toy, acts, saes, seed)


def test_probe_check_fails_on_shuffled_labels(toy, acts):
    assert not probes_beat_baseline(toy, acts, [train(acts, 1, k=8)], 1, shuffle=True)
