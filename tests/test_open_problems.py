"""tutorial_lib.open_problems against analytic answers and independent implementations; the slow
test times the head detectors on SmolLM2 (the figure chapter 06 records)."""

from __future__ import annotations

import math

import pytest
import torch

from tutorial_lib import attention, tasks
from tutorial_lib import open_problems as op
from tutorial_lib.checks.core import random_model
from tutorial_lib.validation import TutorialInputError


def test_unit_counts_and_published_configs():
    assert op.unit_counts(op.PUBLISHED_CONFIGS["gpt2-small"]) == {"heads": 144, "neurons": 12 * 3072}
    assert op.unit_counts({"n_layers": 2, "n_heads": 4, "d_mlp": 99, "attn_only": True}) == {"heads": 8, "neurons": 0}
    model = random_model(0)
    assert op.unit_counts(model.cfg) == {"heads": 8, "neurons": 128}


def test_log_log_slope_recovers_a_power_law():
    x = torch.tensor([1.0, 10.0, 100.0, 1000.0])
    assert op.log_log_slope(x, 3 * x**0.5) == pytest.approx(0.5, abs=1e-9)


def test_fraction_recovered_for_losses_and_logit_diffs():
    assert float(op.fraction_recovered(10.0, 7.5, 0.0)) == pytest.approx(0.75)
    assert float(op.fraction_recovered(1.0, 2.0, 5.0)) == pytest.approx(0.75)  # losses: lower is better


def test_circuit_coverage_is_one_for_the_whole_model_and_zero_for_nothing():
    model = random_model(1, attn_only=True)
    tokens = torch.randint(0, 23, (6, 9), generator=torch.Generator().manual_seed(0))
    means = op.component_means(model, tokens)
    metric = lambda logits: logits[:, -1, 3].mean()  # noqa: E731
    every = {(layer, h) for layer in range(2) for h in range(4)}
    assert op.circuit_coverage(model, tokens, metric, every, means)["recovered"] == pytest.approx(1.0, abs=1e-4)
    assert op.circuit_coverage(model, tokens, metric, set(), means)["recovered"] == pytest.approx(0.0, abs=1e-4)


def test_direct_and_total_effects_agree_for_last_layer_heads_of_an_attention_only_model():
    model = random_model(2, attn_only=True)
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, 23, (8, 7), generator=g)
    means = op.component_means(model, torch.randint(0, 23, (8, 7), generator=g))
    answer, wrong = torch.randint(0, 23, (8,), generator=g), torch.randint(0, 23, (8,), generator=g)
    end = torch.full((8,), 6)
    e = op.direct_and_total_effects(model, tokens, answer, wrong, end, means)
    # in the last layer only the final LayerNorm sits between a head and the logits: with its scale frozen
    # at the clean value, the total effect of a last-layer head is exactly its direct effect
    _, cache = model.run_with_cache(tokens, names_filter="ln_final.hook_scale")
    scale = cache["ln_final.hook_scale"]
    rows = torch.arange(8)

    def ld(logits):
        last = logits[rows, end]
        return (last.gather(1, answer[:, None]) - last.gather(1, wrong[:, None]))[:, 0]

    with torch.no_grad():
        clean = ld(model(tokens))
        for head in range(4):

            def ablate(z, hook, head=head):  # noqa: ARG001 - TransformerLens passes hook=
                z = z.clone()
                z[:, :, head] = means["blocks.1.attn.hook_z"][:, :, head].expand_as(z[:, :, head])
                return z

            frozen = model.run_with_hooks(
                tokens,
                fwd_hooks=[("blocks.1.attn.hook_z", ablate), ("ln_final.hook_scale", lambda *_args, **_kwargs: scale)],
            )
            assert float((clean - ld(frozen)).mean()) == pytest.approx(float(e["direct"][1, head]), abs=1e-4)


def test_self_repair_fraction():
    assert float(op.self_repair_fraction(2.0, 0.5)) == pytest.approx(0.75)
    assert float(op.self_repair_fraction(2.0, 2.0)) == 0.0


def test_mahalanobis_matches_the_whitened_norm():
    g = torch.Generator().manual_seed(0)
    A = torch.randn(3, 3, generator=g)
    cov, mean = A @ A.T + torch.eye(3), torch.randn(3, generator=g)
    x = torch.randn(5, 3, generator=g)
    L = torch.linalg.cholesky(cov)
    want = torch.linalg.solve_triangular(L, (x - mean).T, upper=False).norm(dim=0)
    assert torch.allclose(op.mahalanobis(x, mean, cov), want, atol=1e-5)
    assert op.mahalanobis(mean[None], mean, cov).item() == pytest.approx(0.0, abs=1e-6)


def test_gaussian_stats_match_torch_cov():
    x = torch.randn(50, 4, generator=torch.Generator().manual_seed(1))
    mean, cov = op.gaussian_stats(x)
    assert torch.allclose(cov, torch.cov(x.T), atol=1e-5) and torch.allclose(mean, x.mean(0))


def test_patch_subspace_moves_only_the_subspace():
    g = torch.Generator().manual_seed(0)
    h, src = torch.randn(4, 5, generator=g), torch.randn(4, 5, generator=g)
    basis = torch.tensor([[2.0, 0, 0, 0, 0], [1.0, 1.0, 0, 0, 0]])  # spans e0, e1; not orthonormal
    out = op.patch_subspace(h, src, basis)
    assert torch.allclose(out[:, :2], src[:, :2], atol=1e-5) and torch.allclose(out[:, 2:], h[:, 2:], atol=1e-5)


def test_spearman_against_known_values():
    a = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert op.spearman(a, a.exp()) == pytest.approx(1.0)
    assert op.spearman(a, -a) == pytest.approx(-1.0)
    assert op.spearman(a, torch.tensor([2.0, 1.0, 4.0, 3.0])) == pytest.approx(0.6)  # 1 - 6*4/(4*15)


def test_max_cosines_finds_scaled_copies():
    W = torch.randn(6, 4, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(op.max_cosines(W, 3 * W[[5, 4, 3, 2, 1, 0]]), torch.ones(6), atol=1e-5)


def test_steps_to_reach_interpolates():
    assert op.steps_to_reach([0, 10, 20], [4.0, 2.0, 1.0], 3.0) == pytest.approx(5.0)
    assert op.steps_to_reach([0, 10], [4.0, 2.0], 5.0) == 0.0
    assert op.steps_to_reach([0, 10], [4.0, 2.0], 1.0) == math.inf


def test_transformer_flops():
    assert op.transformer_flops(1e6, 1e3) == 6e9 and op.transformer_flops(1e6, 1e3, training=False) == 2e9


@pytest.mark.slow
@pytest.mark.real
def test_smollm2_head_detector_timing(smollm2):
    """The recorded figure of chapter 06, section 1, re-measured: SmolLM2's head detectors take about the
    recorded 10 heads with an induction score above 0.4. (The recorded 3.54 s is a timing: it is printed, not
    asserted, since speed is measured by benchmarks, never by a timed test.)"""
    smol = smollm2
    toks = tasks.repeated_tokens(8, 15, smol.cfg.d_vocab, seed=0)
    t_smol = op.median_seconds(lambda: attention.head_scores(smol, toks))
    print(f"SmolLM2 head detectors: {t_smol:.2f} s here (recorded 3.54 s)")
    assert op.unit_counts(smol.cfg)["heads"] == 270
    assert 5 <= int((attention.head_scores(smol, toks)["induction"] > 0.4).sum()) <= 20  # recorded: 10
    assert attention.head_scores(smol, toks)["induction"].max() > 0.5


def test_head_z_at_picks_one_position_per_prompt():
    model = random_model(2)
    tokens = torch.randint(0, 23, (5, 9), generator=torch.Generator().manual_seed(1))
    pos = torch.tensor([8, 3, 0, 5, 8])
    _, cache = model.run_with_cache(tokens, names_filter="blocks.1.attn.hook_z")
    z = op.head_z_at(model, tokens, pos, 1)
    assert z.shape == (5, 4, 8)
    for i, p in enumerate(pos.tolist()):
        torch.testing.assert_close(z[i], cache["blocks.1.attn.hook_z"][i, p])


def test_bootstrap_rank_correlation_spreads_around_the_full_sample_value():
    gen = torch.Generator().manual_seed(0)
    x = torch.tensor([0.1, 0.2, 0.3, 0.4, 0.5])
    p = torch.tensor([0.5, 0.6, 0.7, 0.8, 0.9])  # accuracies that rank exactly like x
    correct = (torch.rand(5, 4000, generator=gen) < p[:, None]).double()
    boot = op.bootstrap_rank_correlation(x, correct, n_boot=200, seed=0)
    assert boot.shape == (200,)
    assert op.spearman(x, correct.mean(1)) == pytest.approx(1.0)
    assert float(boot.quantile(0.05)) > 0.8  # items 0.1 apart, 4000 examples: the ranking is stable
    noisy = op.bootstrap_rank_correlation(x, correct[:, :20], n_boot=200, seed=0)
    assert float(noisy.quantile(0.95) - noisy.quantile(0.05)) > 0.5  # 20 examples: the ranking is not
    with pytest.raises(TutorialInputError, match="one row"):
        op.bootstrap_rank_correlation(x, correct[:3])


def test_random_transformer_has_the_asked_size_and_one_forward_pass_scores_every_head():
    model = op.random_transformer(2, 128, d_vocab=100)
    assert (model.cfg.n_layers, model.cfg.n_heads, model.cfg.d_head, model.cfg.d_mlp) == (2, 2, 64, 512)
    scores = attention.head_scores(model, tasks.repeated_tokens(2, 5, 100, seed=0))
    assert all(v.shape == (2, 2) for v in scores.values())


def test_median_seconds_statistics():
    calls = []

    def fn():
        calls.append(1)

    assert op.median_seconds(fn, repeats=3, warmup=2, statistic="min") >= 0 and len(calls) == 5
    with pytest.raises(TutorialInputError, match="statistic"):
        op.median_seconds(fn, statistic="mean")


def test_count_flops_counts_matrix_products_exactly():
    a, b = torch.randn(3, 4), torch.randn(4, 5)
    assert op.count_flops(lambda: a @ b) == 2 * 3 * 4 * 5
    assert op.count_flops(lambda: a + 1) == 0  # elementwise work is not counted
    with pytest.raises(TutorialInputError, match="callable"):
        op.count_flops(3)  # pyright: ignore[reportArgumentType]
