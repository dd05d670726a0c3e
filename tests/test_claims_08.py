"""Chapter 08's claims about transcoders and attribution graphs, each with the control it must fail on, and
(slow) again with transcoders trained at three other seeds (their own corpus and prompts) and four times
longer. The lens claims (tuned lens below the logit lens at every layer but the last; the shuffled-target
control) are tested the same way in tests/test_lens_tuned.py.

Measured at seed 0 with the shipped transcoders: loss recovered 0.98 (untrained control -0.4); the top
layer-0 latent correlates with depth at r 0.76 (shuffled control 0.04); error share 0.02 (control 0.6);
predicted against measured ablation effects r 0.70 live (permuted control -0.18), 0.98 with the norms
frozen, 1.00 with norms and attention frozen; predictions 4.4x the live effects.

Where the frozen attention misleads (section 5, measured over every layer-0 latent that reaches the logit): share
with an attention gap (norms frozen minus both frozen) above 0.25 logits on the 20 fact prompts 0.22 (subject
position 0.21, last position 0.50; the graph's error for them 0.56 attention live, 0.33 frozen), on the six bracket
prompts 0.00 (the control); steered to 5x on the bracket prompts 0.30, error 1.35 live, 0.02 frozen. Seeds 1-3:
facts 0.18-0.22, brackets 0.00-0.01, steered 0.18-0.32 (frozen/live error 0.01-0.02); layer 1 trained 4x longer:
0.22, 0.00, 0.32. On IOI prompts (10, the IO logit; not in the notebook) ablation gives 0.03 of the layer-0 latents
(earlier positions 0.03, last position 0.11), steering x5 0.19: IOI's answer is mostly written by the MLPs at the last
position (the card). Over the facts' layer-0 latents the largest change of a layer-1 head's pattern at the last
position when the latent is ablated (total variation) correlates with |gap| (Spearman 0.65); median 0.09 for the
latents with |gap| > 0.25 against 0.03 for the rest.

Section 6 (explaining latents), measured at seed 0 with the shipped transcoders (210 latents scored): held-out
detection best 1.00, median 0.60 (fuzzing median 0.61); against shuffled activations median 0.50 (fuzzing 0.50);
own-context detection 0.89 against held-out 0.64 (gap 0.25), gap 0.03 when the explainer is shown
random-activating contexts. Absorption on the planted hierarchy: rate 0.47 (independent-children control 0.00),
the parent latent's recall 0.39 with a child against 0.75 alone. With transcoders and contexts at seeds 1-3:
detection best 0.99-1.00, median 0.61-0.62, gap 0.24-0.25 (0.03 shown random contexts), shuffled controls 0.50
(best 0.54-0.56); layer 1 trained 4x longer: median 0.59, gap 0.26. Absorption at seeds 1-3: 0.42-0.50, at 4x
the training 0.44; the control 0.00 at every one of them.
Before planting a hierarchy we measured toy-lm's own word types (a name, a place, an object, a verb, a
country, ...) in both transcoders and the residual SAEs: each type's main latent either fires on all of its
words (places, verbs, countries: recall 0.9-1.0) or no latent stands for the type (names: best F1 0.47), so
no type shows a parent latent silent on some words with a child latent taking over."""

from __future__ import annotations

import pytest
import torch

from tutorial_lib import attribution_graph as AG
from tutorial_lib import explain as E
from tutorial_lib import organisms, tasks
from tutorial_lib import transcoders as T
from tutorial_lib.tasks.corpus_text import PAD_ID, corpus_tokens

CLOSE = 6


@pytest.fixture(scope="module")
def toy_lm():
    return organisms.load("toy-lm")


def _r(a: torch.Tensor, b: torch.Tensor) -> float:
    return torch.corrcoef(torch.stack([a.flatten().float(), b.flatten().float()]))[0, 1].item()


def _claims(model, tcs, seed: int) -> dict[str, float]:
    """Every number the notebook asserts on, for these transcoders and prompts drawn at `seed`."""
    test = corpus_tokens(64, 32, seed=100 + seed)
    prompts = AG.closing_prompts(6, seed=seed)
    graph = AG.attribution_graph(model, tcs, prompts[0], CLOSE)
    kept = AG.prune(graph, 0.8)
    start = next(i for i in kept.tolist() if i < graph.n_latents and graph.latents[i][0] == 0)
    bracket = tasks.brackets(64, 16, seed=seed + 1)
    acts = T.latent_activations(model, tcs, bracket.tokens)[0][..., graph.latents[start][2]]
    shuffled = bracket.depth.flatten()[
        torch.randperm(bracket.depth.numel(), generator=torch.Generator().manual_seed(0))
    ]
    path = AG.strongest_path(graph, start, via_layer=1)
    latents = [(graph.latents[i][0], graph.latents[i][2]) for i in path[:-1]]
    pred, meas = AG.validate_ablations(model, tcs, prompts, CLOSE)
    perm = torch.randperm(len(pred), generator=torch.Generator().manual_seed(0))
    return _attention_claims(model, tcs, prompts) | {
        "recovered": T.replacement_loss_recovered(model, tcs, test, test[:, 1:] != PAD_ID)["recovered"],
        "r_depth": _r(acts, bracket.depth),
        "r_depth_shuffled": _r(acts, shuffled),
        "path_drop": AG.ablate_latents(model, tcs, prompts[0], latents, CLOSE).item(),
        "error_share": AG.error_share(model, tcs, prompts, CLOSE),
        "r_live": _r(pred, meas["live"]),
        "r_permuted": _r(pred, meas["live"][perm]),
        "r_norms_frozen": _r(pred, meas["norms frozen"]),
        "r_both_frozen": _r(pred, meas["both frozen (as the graph)"]),
        "ratio_live": (pred.abs().mean() / meas["live"].abs().mean()).item(),
    }


def _attention_claims(model, tcs, prompts: list[torch.Tensor]) -> dict[str, float]:
    """Section 5's attention gaps: ablation on the fact prompts and on `prompts` (brackets), steering x5 on those."""
    facts = [AG.fact_prompts(relation) for relation in ("capital", "language")]
    fact_eff = AG.effects_by_mode(model, tcs, facts[0][0] + facts[1][0], facts[0][1] + facts[1][1])
    found = {
        "facts": AG.gap_by_group(fact_eff)["below the last layer"],
        "brackets": AG.gap_by_group(AG.effects_by_mode(model, tcs, prompts, [CLOSE] * len(prompts)))["below the last layer"],
        "steered": AG.gap_by_group(AG.effects_by_mode(model, tcs, prompts, [CLOSE] * len(prompts), scale=5.0))["below the last layer"],
    }  # fmt: skip
    out = {f"{name}_share": v["share"] for name, v in found.items()}
    out |= {f"{name}_restored": v["error_frozen"] / v["error_live"] for name, v in found.items() if v["error_live"]}
    return out | {"layer1_gap": AG.attention_gap(fact_eff)[fact_eff["layer"] == 1].abs().max().item()}


def _attention_holds(c: dict[str, float]) -> None:
    assert c["facts_share"] >= 0.1 and c["brackets_share"] < 0.03 and c["layer1_gap"] < 1e-3, c
    assert c["steered_share"] >= 0.1 and c["steered_restored"] < 0.2, c


def _holds(c: dict[str, float], r_live: float = 0.5) -> None:
    _attention_holds(c)
    assert c["recovered"] >= 0.9, c
    assert c["r_depth"] >= 0.6 and c["path_drop"] < -0.5, c
    assert c["error_share"] < 0.1, c
    assert c["r_live"] >= r_live and c["r_both_frozen"] >= 0.95, c
    assert c["r_norms_frozen"] >= 0.9 and c["ratio_live"] >= 2, c


def test_claims_hold_with_the_shipped_transcoders_and_fail_on_their_controls(toy_lm):
    tcs, _ = T.load_transcoders()
    c = _claims(toy_lm, tcs, seed=0)
    _holds(c)
    assert abs(c["r_depth_shuffled"]) < 0.2 and c["r_permuted"] < 0.3, c  # shuffled depths, permuted pairing
    # the attention claims fail where they should not hold: an attention gap on the bracket prompts' ablations,
    # and freezing attention restoring the prediction on the fact prompts' ablations (TopK switching remains)
    assert c["brackets_share"] < 0.1 and c["facts_restored"] >= 0.2, c
    corpus = corpus_tokens(128, 32, seed=0)
    control = T.untrained_transcoders(toy_lm, corpus, corpus != PAD_ID)
    test = corpus_tokens(64, 32, seed=100)
    assert T.replacement_loss_recovered(toy_lm, control, test, test[:, 1:] != PAD_ID)["recovered"] < 0.5
    assert AG.error_share(toy_lm, control, AG.closing_prompts(6, seed=0), CLOSE) > 0.3


@pytest.mark.slow
@pytest.mark.parametrize(("seed", "steps"), [(1, 600), (2, 600), (3, 600), (0, 2400)])
def test_claims_are_robust(toy_lm, seed, steps):
    """Transcoders from the recipe at another seed (its corpus and prompts too), or trained 4x longer (to fit CI
    time, only layer 1's is retrained 4x longer; layer 0's is the shipped one). The live correlation's bar is
    0.4 here: it measured 0.50-0.70 over seeds (tests/test_attribution_graph_validation.py)."""
    if steps == 600:
        tcs, _ = T.train_from_recipe(toy_lm, seed=seed, steps=steps)
    else:
        tcs = [T.load_transcoders()[0][0], *T.train_from_recipe(toy_lm, layers=[1], seed=seed, steps=steps)[0]]
    _holds(_claims(toy_lm, tcs, seed=seed), r_live=0.4)
    _explanations_hold(_explanations(toy_lm, tcs, seed=seed))  # section 6 on these transcoders and contexts


# ---- section 6: explaining latents


def _explanations(model, tcs, seed: int) -> dict[str, float]:
    """The section's numbers for these transcoders with contexts drawn at `seed` (the notebook: seed 0)."""
    text = corpus_tokens(256, 32, seed=200 + seed)
    mask = text != PAD_ID
    labels = E.token_labels(text, mask)
    acts = torch.cat(T.latent_activations(model, tcs, text), -1)
    shuffled = torch.stack([E.shuffled_activations(acts[..., j], seed, mask) for j in range(acts.shape[-1])], -1)
    real = E.score_latents(labels, acts, seed=seed, mask=mask)
    control = E.score_latents(labels, acts, seed=seed, mask=mask, score_acts=shuffled)
    random_shown = E.score_latents(labels, acts, seed=seed, mask=mask, explain_from="random")
    return {
        "best": real["detection"].max().item(),
        "median": real["detection"].median().item(),
        "fuzzing": real["fuzzing"].median().item(),
        "control_best": control["detection"].max().item(),
        "control_median": control["detection"].median().item(),
        "control_fuzzing": control["fuzzing"].median().item(),
        "gap": (real["own"] - real["detection"]).mean().item(),
        "gap_random": (random_shown["own"] - random_shown["detection"]).mean().item(),
    }


def _explanations_hold(c: dict[str, float]) -> None:
    assert c["best"] >= 0.95 and c["median"] >= 0.55 and c["fuzzing"] >= 0.55, c
    assert c["gap"] >= 0.1, c
    assert abs(c["control_median"] - 0.5) < 0.05 and abs(c["control_fuzzing"] - 0.5) < 0.05, c  # shuffled: chance
    assert c["control_median"] < 0.55 and c["control_best"] < 0.95, c  # the claim fails on its control
    assert c["gap_random"] < 0.08, c  # no trap when shown contexts drawn like the held-out ones


def test_explanation_claims_hold_and_fail_on_their_controls(toy_lm):
    _explanations_hold(_explanations(toy_lm, T.load_transcoders()[0], seed=0))


def _absorption(seed: int, hierarchy: bool, steps: int = 800) -> dict[str, float]:
    data = E.hierarchical_features(8000, hierarchy=hierarchy, seed=seed)
    sae = E.train_hierarchy_sae(data, steps=steps, seed=seed)
    with torch.no_grad():
        codes = sae.encode(data.x)
    out = E.absorption_rate(codes, sae.W_dec.detach(), data.parent, data.directions[0])
    fires = codes[:, int(out["main"])] > 0
    out["with_child"] = fires[data.parent & data.child].float().mean().item()
    out["alone"] = fires[data.parent & ~data.child].float().mean().item()
    return out


def _absorbed(c: dict[str, float]) -> bool:
    return c["rate"] >= 0.3 and c["alone"] - c["with_child"] >= 0.2


def test_absorption_claim_holds_and_fails_on_independent_children():
    planted, control = _absorption(0, True), _absorption(0, False)
    assert _absorbed(planted), planted
    assert control["rate"] < 0.05 and not _absorbed(control), control


@pytest.mark.slow
@pytest.mark.parametrize(("seed", "steps"), [(1, 800), (2, 800), (3, 800), (0, 3200)])
def test_absorption_claim_is_robust(seed, steps):
    """Other seeds of the hierarchy and the SAE, and 4x the training; the control at the same seeds (at 4x the
    training only the planted hierarchy is retrained, to fit CI time: the control's rate was 0.00 there too)."""
    planted = _absorption(seed, True, steps)
    assert _absorbed(planted), planted
    if steps == 800:
        control = _absorption(seed, False, steps)
        assert control["rate"] < 0.05 and not _absorbed(control), control
