"""tutorial_lib.discovery.metrics: faithfulness's two ends, ROC/AUC against a pairwise count, bootstrap intervals."""

from __future__ import annotations

import pytest
import torch
from patching_support import make_data, make_model

from tutorial_lib.discovery import build_graph
from tutorial_lib.discovery.edges import edge_patch
from tutorial_lib.discovery.metrics import (
    auc,
    bootstrap_ci,
    circuit_subsets,
    faithfulness,
    incompleteness,
    minimality,
    roc_curve,
    top_k_mask,
)
from tutorial_lib.validation import TutorialInputError


def test_faithfulness_ends_and_batching(device):
    model = make_model(device)
    clean, corrupted, right, wrong = make_data(device)
    metric = lambda lg: (lg[:, -1, right] - lg[:, -1, wrong]).mean()  # noqa: E731
    g = build_graph(model)
    none, full = torch.zeros_like(g.valid), g.valid.clone()
    values = faithfulness(model, clean, corrupted, metric, torch.stack([none, full]).to(device))
    torch.testing.assert_close(values, torch.tensor([0.0, 1.0], device=values.device), atol=1e-4, rtol=0)
    one = faithfulness(model, clean, corrupted, metric, top_k_mask(torch.randn(g.valid.shape), 7, g.valid).to(device))
    assert one.ndim == 0
    with pytest.raises(TutorialInputError, match="same metric"):
        faithfulness(model, clean, clean, metric, full.to(device))


def test_auc_is_the_pairwise_ranking_probability():
    gen = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 6, (60,), generator=gen).float()  # many ties
    truth = torch.rand(60, generator=gen) < 0.3
    pos, neg = scores[truth], scores[~truth]
    pairwise = ((pos[:, None] > neg[None]).double() + 0.5 * (pos[:, None] == neg[None]).double()).mean()
    assert abs(auc(scores, truth) - float(pairwise)) < 1e-12
    assert auc(truth.float(), truth) == 1.0 and auc(-truth.float(), truth) == 0.0
    fpr, tpr = roc_curve(scores, truth)
    assert fpr[0] == 0 and tpr[0] == 0 and fpr[-1] == 1 and tpr[-1] == 1
    assert (fpr.diff() >= 0).all() and (tpr.diff() >= 0).all()
    with pytest.raises(TutorialInputError, match="both"):
        auc(scores, torch.ones(60, dtype=torch.bool))


def test_top_k_mask_respects_the_graph():
    valid = torch.tensor([[True, False], [True, True]])
    mask = top_k_mask(torch.tensor([[1.0, 9.0], [-3.0, 2.0]]), 2, valid)
    assert mask.tolist() == [[False, False], [True, True]]


def test_bootstrap_interval():
    x = torch.randn(400, generator=torch.Generator().manual_seed(1)) + 2.0
    est, low, high = bootstrap_ci(x)
    assert low < est < high and abs(est - float(x.double().mean())) < 1e-12
    half_width = 1.96 * float(x.std()) / 20  # the normal approximation of a 95 % interval of the mean
    assert abs((high - low) / 2 - half_width) < 0.2 * half_width
    assert bootstrap_ci(x) == (est, low, high)  # seeded
    _, low4, high4 = bootstrap_ci(x[:25])
    assert high4 - low4 > 2 * (high - low)  # 16x fewer prompts: about 4x wider
    ratio = bootstrap_ci(torch.stack([x, 2 * x], 1), stat=lambda v: v[..., 1].mean(-1) / v[..., 0].mean(-1))
    assert abs(ratio[0] - 2) < 1e-12 and abs(ratio[1] - 2) < 1e-9


def test_incompleteness_and_minimality_match_one_edge_set_at_a_time(device):
    model = make_model(device)
    clean, corrupted, right, wrong = make_data(device)
    metric = lambda lg: (lg[:, -1, right] - lg[:, -1, wrong]).mean()  # noqa: E731
    g = build_graph(model)
    valid = g.valid.to(device)
    circuit = top_k_mask(torch.randn(g.valid.shape, generator=torch.Generator().manual_seed(1)), 6, g.valid).to(device)
    edges = circuit.nonzero()
    removals = torch.zeros(2, *circuit.shape, dtype=torch.bool, device=device)
    removals[0, edges[0, 0], edges[0, 1]] = True
    removals[1, edges[1:3, 0], edges[1:3, 1]] = True

    def f(ablate):  # the oracle: one plain edge-patched run per edge set
        return float(edge_patch(model, clean, corrupted, (ablate & valid)[None], metric)[0])

    want = [abs(f(~circuit | k) - f(k)) for k in removals]
    torch.testing.assert_close(incompleteness(model, clean, corrupted, metric, circuit, removals).cpu(),
                               torch.tensor(want), atol=1e-4, rtol=0)  # fmt: skip
    # the whole model is complete for every K
    assert incompleteness(model, clean, corrupted, metric, valid, removals).abs().max() < 1e-4
    want = []
    for s, r in edges:
        one = torch.zeros_like(circuit)
        one[s, r] = True
        want.append(abs(f(~circuit | one) - f(~circuit)))
    torch.testing.assert_close(minimality(model, clean, corrupted, metric, circuit).cpu(), torch.tensor(want),
                               atol=1e-4, rtol=0)  # fmt: skip
    assert len(minimality(model, clean, corrupted, metric, circuit, removals[1])) == len(edges) - 2
    with pytest.raises(TutorialInputError, match="inside the circuit"):
        incompleteness(model, clean, corrupted, metric, circuit, (~circuit)[None])


def test_per_prompt_scores_average_to_the_scores_and_subsets_stay_inside():
    model = make_model("cpu")
    clean, corrupted, right, wrong = make_data("cpu")
    rows = torch.arange(len(right))
    per = lambda lg: lg[rows, -1, right] - lg[rows, -1, wrong]  # noqa: E731
    g = build_graph(model)
    circuit = top_k_mask(torch.randn(g.valid.shape, generator=torch.Generator().manual_seed(2)), 6, g.valid)
    subsets = circuit_subsets(circuit, 3, seed=1)
    assert subsets.shape == (5, *circuit.shape) and not bool((subsets & ~circuit).any())
    assert not bool(subsets[0].any()) and torch.equal(subsets[1], circuit)
    args = (model, clean, corrupted)
    signed = incompleteness(*args, per, circuit, subsets, per_prompt=True)
    assert signed.shape == (5, len(right))
    torch.testing.assert_close(signed.mean(1).abs(), incompleteness(*args, lambda lg: per(lg).mean(), circuit, subsets),
                               atol=1e-5, rtol=0)  # fmt: skip
    changes = minimality(*args, per, circuit, per_prompt=True)
    torch.testing.assert_close(changes.mean(1).abs(), minimality(*args, lambda lg: per(lg).mean(), circuit),
                               atol=1e-5, rtol=0)  # fmt: skip
    with pytest.raises(TutorialInputError, match="one value per prompt"):
        minimality(*args, lambda lg: per(lg).mean(), circuit, per_prompt=True)
