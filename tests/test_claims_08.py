"""Chapter 08's claims about transcoders and attribution graphs, each with the control it must fail on, and
(slow) again with transcoders trained at three other seeds (their own corpus and prompts) and four times
longer. The lens claims (tuned lens below the logit lens at every layer but the last; the shuffled-target
control) are tested the same way in tests/test_lens_tuned.py.

Measured at seed 0 with the shipped transcoders: loss recovered 0.98 (untrained control -0.4); the top
layer-0 latent correlates with depth at r 0.76 (shuffled control 0.04); error share 0.02 (control 0.6);
predicted against measured ablation effects r 0.70 live (permuted control -0.18), 0.98 with the norms
frozen, 1.00 with norms and attention frozen; predictions 4.4x the live effects."""

from __future__ import annotations

import pytest
import torch

from tutorial_lib import attribution_graph as AG
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
    return {
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


def _holds(c: dict[str, float], r_live: float = 0.5) -> None:
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
