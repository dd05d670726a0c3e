"""tutorial_lib.organisms.planted: the planted-2l organism is its hand-set construction, solves its task, its
card names the true edges, edges outside them carry nothing, and ACDC, EAP and EAP-IG recover them (AUC >= 0.95)
while controls (an untrained organism of the same architecture, a shuffled ranking) do not."""

from __future__ import annotations

import pytest
import torch

from tutorial_lib import discovery as D
from tutorial_lib import organisms
from tutorial_lib.organisms.planted import POSITION_EDGES, TRUE_EDGES, planted_pairs, set_planted_weights


@pytest.fixture(scope="module")
def planted():
    return organisms.load("planted-2l")


def _metric(a, b):
    rows = torch.arange(a.shape[0])
    return lambda lg: (lg[rows, -1, a] - lg[rows, -1, b]).mean()


def test_shipped_weights_are_the_construction_and_the_card_names_the_circuit(planted):
    fresh = organisms.build("planted-2l")
    set_planted_weights(fresh, organisms.RECIPES["planted-2l"].train["seed"])
    for (name, x), (_, y) in zip(planted.state_dict().items(), fresh.state_dict().items()):
        assert torch.equal(x, y), name
    notes = organisms.card("planted-2l")["notes"]
    assert notes["true_edges"] == [f"{s}->{r}" for s, r in TRUE_EDGES]
    assert notes["position_edges"] == [f"{s}->{r}" for s, r in POSITION_EDGES]
    props = organisms.MEASURES["planted-2l"](planted)
    assert props["task_acc"] == 1.0 and props["max_effect_outside_circuit"] < 1e-5
    assert props["min_effect_inside_circuit"] > 1.0


def test_edges_outside_the_circuit_carry_nothing(planted):
    clean, corrupted, a, _ = planted_pairs(64, seed=7)
    g = D.build_graph(planted)
    truth = g.mask(TRUE_EDGES)
    outside = g.valid & ~truth
    # all of them at once, and each alone: the logits do not move
    logits, _ = D.run_edges(planted, clean, corrupted, torch.stack([outside, torch.zeros_like(outside)]))
    torch.testing.assert_close(logits[0], logits[1], atol=1e-5, rtol=0)
    singles = torch.zeros(int(outside.sum()), g.n_senders, g.n_receivers, dtype=torch.bool)
    for v, (s, r) in enumerate(outside.nonzero().tolist()):
        singles[v, s, r] = True
    last = D.run_edges(planted, clean, corrupted, singles)[0][:, :, -1]
    assert (last - logits[1][None, :, -1]).abs().max() < 1e-5
    # while each true edge alone moves the answer's logit difference
    b = planted_pairs(64, seed=7)[3]
    for s, r in TRUE_EDGES:
        alone = torch.zeros_like(outside)
        alone[g.edge(s, r)] = True
        ld = D.edge_patch(planted, clean, corrupted, alone, _metric(a, b))
        assert abs(float(ld[0]) - float(_metric(a, b)(logits[1]))) > 1.0, (s, r)


def test_methods_recover_the_planted_circuit_and_controls_do_not(planted):
    clean, corrupted, a, b = planted_pairs(32, seed=3)
    metric = _metric(a, b)
    g = D.build_graph(planted)
    truth, valid = g.mask(TRUE_EDGES), g.valid
    found = D.acdc(planted, clean, corrupted, threshold=1e-3)
    assert torch.equal(found.kept, truth)
    rankings = {
        "eap": D.eap_scores(planted, clean, corrupted, metric).abs(),
        "eap-ig": D.eap_scores(planted, clean, corrupted, metric, ig_steps=8).abs(),
        "acdc": torch.nan_to_num(found.scores.float(), 0.0).abs(),
    }
    for name, score in rankings.items():
        assert D.auc(score[valid], truth[valid]) >= 0.95, name
    # controls: a shuffled ranking, and the same methods on an untrained organism of the same architecture
    shuffled = rankings["eap"][valid][torch.randperm(int(valid.sum()), generator=torch.Generator().manual_seed(0))]
    assert D.auc(shuffled, truth[valid]) < 0.95
    random_model = organisms.build("planted-2l")
    control = D.eap_scores(random_model, clean, corrupted, metric).abs()
    assert D.auc(control[valid], truth[valid]) < 0.95
    control_acdc = D.acdc(random_model, clean, corrupted, threshold=1e-3)
    assert not torch.equal(control_acdc.kept, truth)
