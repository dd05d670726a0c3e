"""Tests for tutorial_lib.attention: scores on hand-built patterns, circuits against direct
computations, DLA summing to the logit, ablations against weight surgery, the training monitor."""

from __future__ import annotations

import copy

import pytest
import torch
from transformer_lens import FactoredMatrix
from transformer_lens.config import TransformerBridgeConfig
from transformer_lens.model_bridge import TransformerBridge

from tutorial_lib import attention as A
from tutorial_lib import hooks
from tutorial_lib.validation import TutorialInputError


def offset_pattern(batch: int, heads: int, n: int, back: int | torch.Tensor, device) -> torch.Tensor:
    """Each query q attends fully to q - back (to itself where q - back < 0): [batch, heads, n, n]."""
    back = back if isinstance(back, torch.Tensor) else torch.full((batch,), back)
    q = torch.arange(n)[None, :]
    k = (q - back[:, None]).clamp(min=0)
    pat = torch.nn.functional.one_hot(k, n).float()[:, None].expand(batch, heads, n, n)
    return pat.clone().to(device)


def causal_uniform(batch: int, heads: int, n: int, device) -> torch.Tensor:
    pat = torch.tril(torch.ones(n, n, device=device))
    pat = pat / pat.sum(-1, keepdim=True)
    return pat.expand(batch, heads, n, n).clone()


def tiny_model(device, seed=0, n_layers=2, n_heads=3, d_model=24, d_vocab=20, n_ctx=16, ln="LN"):
    cfg = TransformerBridgeConfig(n_layers=n_layers, d_model=d_model, n_heads=n_heads, d_head=d_model // n_heads,
                                  d_vocab=d_vocab, n_ctx=n_ctx, attn_only=True, normalization_type=ln, seed=seed,
                                  device=str(device))  # fmt: skip
    model = TransformerBridge.boot_native(cfg)
    model.eval()
    return model


@pytest.fixture(scope="module")
def models():
    """One model per (device, ln); booting is slow, the tests only read the models."""
    cache = {}

    def get(device, ln="LN"):
        key = (str(device), ln)
        if key not in cache:
            model = tiny_model(device, ln=ln)
            # Non-trivial LayerNorm weights and biases, so folding and DLA are really exercised.
            with torch.no_grad():
                for name, p in model.named_parameters():
                    if "ln" in name or name.endswith("bias"):
                        p.add_(0.3 * torch.randn_like(p))
            cache[key] = model
        return cache[key]

    return get


# --------------------------------------------------------------------------- masks


def test_repeat_masks_classic_and_per_row():
    first, rep = A.repeat_masks(9, 4, start=1, batch=2)  # [BOS, x1..x4, x1..x4]
    assert rep[0].nonzero().flatten().tolist() == [5, 6, 7]
    assert first[0].nonzero().flatten().tolist() == [1, 2, 3]
    first, rep = A.repeat_masks(12, torch.tensor([2, 3]), start=torch.tensor([1, 4]))
    assert rep[0].nonzero().flatten().tolist() == [3]
    assert rep[1].nonzero().flatten().tolist() == [7, 8]
    assert first[1].nonzero().flatten().tolist() == [4, 5]
    with pytest.raises(TutorialInputError):
        A.repeat_masks(8, 4, start=1)  # the second copy runs past the end


def test_masks_agree_with_tasks():
    tasks = pytest.importorskip("tutorial_lib.tasks")
    seg = tasks.repeated_segments(16, 40, 30, (3, 9), (0, 10), seed=3)
    first, rep = A.repeat_masks(40, seg.period, seg.start)
    assert torch.equal(rep, seg.repeated) and torch.equal(first, seg.first)
    # and the tokens really repeat where the masks say so
    b, q = rep.nonzero(as_tuple=True)
    assert torch.equal(seg.tokens[b, q + 1], seg.tokens[b, q + 1 - seg.period[b]])
    assert torch.equal(seg.tokens[b, q], seg.tokens[b, q - seg.period[b]])


# --------------------------------------------------------------------------- pattern scores


def test_perfect_patterns_score_one(device):
    n, half = 11, 5
    prev = offset_pattern(3, 2, n, 1, device)
    assert torch.allclose(A.previous_token_score(prev), torch.ones(2, device=device))
    assert torch.allclose(A.current_token_score(prev), torch.zeros(2, device=device))
    ind = offset_pattern(3, 2, n, half - 1, device)
    assert torch.allclose(A.induction_score(ind, half), torch.ones(2, device=device))
    dup = offset_pattern(3, 2, n, half, device)
    assert torch.allclose(A.duplicate_token_score(dup, half), torch.ones(2, device=device))
    assert torch.allclose(A.induction_score(dup, half), torch.zeros(2, device=device))
    cur = offset_pattern(3, 2, n, 0, device)
    assert torch.allclose(A.current_token_score(cur), torch.ones(2, device=device))


def test_uniform_patterns(device):
    n = 7
    full = torch.full((2, 3, n, n), 1.0 / n, device=device)
    for score in (A.previous_token_score(full), A.current_token_score(full), A.induction_score(full, 3)):
        assert torch.allclose(score, torch.full((3,), 1.0 / n, device=device))
    # causal uniform: query q spreads over q + 1 keys; the previous-token score is the mean of 1/(q+1), q >= 1
    causal = causal_uniform(2, 3, n, device)
    want = torch.tensor([1.0 / (q + 1) for q in range(1, n)]).mean()
    assert torch.allclose(A.previous_token_score(causal).cpu(), want.expand(3))


def test_per_row_period_and_mask(device):
    """Rows with different periods: the induction score follows each row's own period and only its mask."""
    n, periods = 14, torch.tensor([3, 5])
    _, rep = A.repeat_masks(n, periods, start=torch.tensor([2, 1]))
    pat = offset_pattern(2, 1, n, periods - 1, device)
    assert torch.allclose(A.induction_score(pat, periods, rep.to(device)), torch.ones(1, device=device))
    # head 1 is an induction head only in row 0 (row 1 attends to the previous token): score = row 0's share
    mixed = torch.cat([pat, offset_pattern(2, 1, n, 1, device)], dim=1)
    mixed[0, 1] = pat[0, 0]
    want = rep[0].sum() / rep.sum()
    got = A.induction_score(mixed, periods, rep.to(device))
    assert torch.allclose(got.cpu(), torch.stack([torch.tensor(1.0), want]))


def test_layer_axis_and_cache(device):
    """[batch, layer, head, q, k] scores per layer, and a cache gives the same answer as the stacked tensor."""
    n, half = 9, 4
    stack = torch.stack([offset_pattern(2, 2, n, 1, device), offset_pattern(2, 2, n, half - 1, device)], dim=1)
    scores = A.attention_scores(stack, half)
    assert scores["induction"].shape == (2, 2)
    assert torch.allclose(scores["previous"][0], torch.ones(2, device=device))
    assert torch.allclose(scores["induction"][1], torch.ones(2, device=device))
    cache = {f"blocks.{layer}.attn.hook_pattern": stack[:, layer] for layer in range(2)}
    assert torch.equal(A.induction_score(cache, half), scores["induction"])


def test_score_reference_loop(device):
    """Random patterns: the vectorised score equals a plain Python loop over rows and queries."""
    gen = torch.Generator().manual_seed(1)
    b, h, n = 3, 2, 12
    pat = torch.rand(b, h, n, n, generator=gen).tril().to(device)
    pat = pat / pat.sum(-1, keepdim=True)
    periods = torch.tensor([3, 4, 5])
    _, rep = A.repeat_masks(n, periods, start=torch.tensor([1, 2, 1]))
    got = A.induction_score(pat, periods, rep.to(device))
    vals = [[pat[i, :, q, q - periods[i] + 1] for q in range(n) if rep[i, q]] for i in range(b)]
    want = torch.stack([v for row in vals for v in row]).mean(0)
    assert torch.allclose(got, want)


def test_score_validation():
    with pytest.raises(TutorialInputError, match="pattern"):
        A.previous_token_score(torch.rand(3, 4, 4))
    with pytest.raises(TutorialInputError, match="period"):
        A.induction_score(torch.rand(1, 2, 5, 5), 0)
    with pytest.raises(TutorialInputError, match="query_mask"):
        A.induction_score(torch.rand(1, 2, 5, 5), 2, torch.ones(1, 4, dtype=torch.bool))
    with pytest.raises(TutorialInputError, match="hook_pattern"):
        A.stack_patterns({})


def test_head_scores_on_model(device, models):
    model = models(device)
    toks = torch.randint(1, model.cfg.d_vocab, (4, 5), generator=torch.Generator().manual_seed(0))
    toks = torch.cat([torch.zeros(4, 1, dtype=torch.long), toks, toks], dim=1).to(device)
    scores = A.head_scores(model, toks)
    assert set(scores) == set(A.SCORE_KINDS)
    _, cache = model.run_with_cache(toks)
    assert torch.allclose(scores["induction"], A.induction_score(cache, 5))
    for v in scores.values():
        assert v.shape == (model.cfg.n_layers, model.cfg.n_heads) and ((v >= 0) & (v <= 1)).all()
    with pytest.raises(TutorialInputError, match="odd"):
        A.head_scores(model, toks[:, :-1])


# --------------------------------------------------------------------------- circuits


def test_copying_score_identity(device):
    eye = torch.eye(6, device=device)
    assert A.copying_score(eye).item() == pytest.approx(1.0)
    assert A.copying_score(-eye).item() == pytest.approx(0.0)
    assert A.copying_score(FactoredMatrix(eye[:, :3], eye[:3])).item() == pytest.approx(1.0)
    assert A.copying_score(-eye, signed=True).item() == pytest.approx(-1.0)
    # a 90-degree rotation has eigenvalues +-i: no positive real mass
    rot = torch.tensor([[0.0, -1.0], [1.0, 0.0]], device=device)
    assert A.copying_score(rot).item() == pytest.approx(0.0, abs=1e-6)
    # diag(2, -1): 2 / 3
    assert A.copying_score(torch.diag(torch.tensor([2.0, -1.0], device=device))).item() == pytest.approx(2 / 3)


def test_composition_score_matches_direct(device):
    gen = torch.Generator().manual_seed(0)
    left = torch.randn(3, 8, 8, generator=gen).to(device)
    right = torch.randn(4, 8, 8, generator=gen).to(device)
    got = A.composition_score(left, right)
    assert got.shape == (3, 4)
    for i in range(3):
        for j in range(4):
            want = torch.linalg.norm(left[i] @ right[j]) / (torch.linalg.norm(left[i]) * torch.linalg.norm(right[j]))
            assert torch.allclose(got[i, j], want, atol=1e-6)


def test_model_circuits_and_composition(device, models):
    model = models(device)
    w = A.circuit_weights(model, fold_ln=False)
    ov, qk = A.ov_circuit(model, fold_ln=False), A.qk_circuit(model, fold_ln=False)
    assert ov.shape == (2, 3, 24, 24) and qk.shape == (2, 3, 24, 24)
    assert torch.allclose(ov[1, 2].AB, w["W_V"][1, 2] @ w["W_O"][1, 2], atol=1e-6)
    full = A.full_ov_circuit(model, 1, fold_ln=False)
    assert full.shape == (3, 20, 20)
    assert torch.allclose(full[0].AB, w["W_E"] @ w["W_V"][1, 0] @ w["W_O"][1, 0] @ w["W_U"], atol=1e-5)
    for kind in A.COMPOSITION_KINDS:
        got = A.composition_scores(model, kind, fold_ln=False)
        assert got.shape == (3, 3)
        for a in range(3):
            for b in range(3):
                ov_a = w["W_V"][0, a] @ w["W_O"][0, a]
                qk_b = w["W_Q"][1, b] @ w["W_K"][1, b].T
                right = {"Q": qk_b, "K": qk_b.T, "V": w["W_V"][1, b] @ w["W_O"][1, b]}[kind]
                want = torch.linalg.norm(ov_a @ right) / (torch.linalg.norm(ov_a) * torch.linalg.norm(right))
                assert torch.allclose(got[a, b], want, atol=1e-5)
    # TransformerLens's own K-composition (upper block of its [layer, head, layer, head] tensor) agrees
    tl = model.all_composition_scores("K")[0, :, 1, :]
    assert torch.allclose(A.composition_scores(model, "K", fold_ln=False), tl, atol=1e-5)


def test_fold_ln(device, models):
    """Folded circuits: LN gains multiply the reading side, writes are centred."""
    model = models(device)
    raw, folded = A.circuit_weights(model, fold_ln=False), A.circuit_weights(model)
    g = model.blocks[1].ln1.w.detach()
    assert torch.allclose(folded["W_Q"][1], g[None, :, None] * raw["W_Q"][1])
    assert torch.allclose(folded["W_O"].sum(-1), torch.zeros_like(folded["W_O"].sum(-1)), atol=1e-5)
    assert torch.allclose(folded["W_E"].mean(-1), torch.zeros(20, device=device), atol=1e-6)


def test_composition_baseline():
    base = A.composition_baseline(32, 8, n_samples=64, seed=0)
    assert base.shape == (64,) and ((base > 0) & (base < 1)).all()
    assert torch.equal(base, A.composition_baseline(32, 8, n_samples=64, seed=0))
    # random rank-8 maps in 32 dimensions compose weakly: below a projection composed with itself (1/sqrt(8))
    eye = torch.eye(32)[:, :8] @ torch.eye(32)[:8]
    assert base.mean() < A.composition_score(eye, eye).item()


# --------------------------------------------------------------------------- DLA and ablations


@pytest.mark.parametrize("ln", ["LN", "RMS"])
def test_dla_sums_to_logit(device, models, ln):
    model = models(device, ln)
    toks = torch.randint(0, 20, (3, 9), generator=torch.Generator().manual_seed(2)).to(device)
    logits, cache = model.run_with_cache(toks)
    answer = torch.tensor([4, 7, 11], device=device)
    pos = torch.tensor([8, 3, 5], device=device)
    dla = A.direct_logit_attribution(model, cache, answer, pos)
    assert dla.shape == (3, 2, 3)
    # the other components of the residual stream, through the same frozen LayerNorm
    rows = torch.arange(3, device=device)
    rest = cache["hook_embed"][rows, pos] + cache["hook_pos_embed"][rows, pos] + model.b_O.sum(0)
    rest = hooks.apply_final_norm(model, cache, rest, (rows, pos))
    rest = (rest * hooks.logit_directions(model, answer)).sum(-1)
    bias = model.W_U[:, answer].T @ model.ln_final.b if ln == "LN" else 0.0
    total = dla.sum((1, 2)) + rest + bias + model.b_U[answer]
    assert torch.allclose(total, logits[rows, pos, answer], atol=1e-4)
    # every position at once agrees with one position at a time
    every = A.direct_logit_attribution(model, cache, toks.roll(-1, dims=1))
    assert torch.allclose(every[rows, pos], A.direct_logit_attribution(model, cache, toks.roll(-1, 1)[rows, pos], pos))


def test_ablation_matches_weight_surgery(device, models):
    model = models(device)
    toks = torch.randint(1, 20, (4, 5), generator=torch.Generator().manual_seed(0))
    toks = torch.cat([torch.zeros(4, 1, dtype=torch.long), toks, toks], dim=1).to(device)
    out = A.ablation_losses(model, toks, "zero")
    assert out["first"].shape == (2, 3)
    # zeroing head (1, 2)'s z equals zeroing its slice of W_O
    surgery = copy.deepcopy(model)
    with torch.no_grad():
        d_head = model.cfg.d_head
        surgery.blocks[1].attn.o.weight[:, 2 * d_head : 3 * d_head] = 0.0
    losses = A.repeat_losses(surgery(toks), toks)
    assert out["repeated"][1, 2].item() == pytest.approx(losses["repeated"], abs=1e-5)
    assert out["first"][1, 2].item() == pytest.approx(losses["first"], abs=1e-5)
    clean = A.repeat_losses(model(toks), toks)
    assert out["clean_repeated"] == pytest.approx(clean["repeated"], abs=1e-6)
    # mean ablation over a batch of one changes nothing
    one = A.ablation_losses(model, toks[:1], "mean")
    assert torch.allclose(one["repeated"], torch.full((2, 3), one["clean_repeated"]), atol=1e-5)
    with pytest.raises(TutorialInputError, match="kind"):
        A.ablation_losses(model, toks, "resample")


def test_ablated_loss_groups_heads_and_coverage_is_a_ratio_of_drops(device, models):
    model = models(device)
    toks = torch.randint(1, 20, (4, 5), generator=torch.Generator().manual_seed(0))
    toks = torch.cat([torch.zeros(4, 1, dtype=torch.long), toks, toks], dim=1).to(device)
    single = A.ablation_losses(model, toks, "zero")
    one = A.ablated_loss(model, toks, [(1, 2)])  # a group of one head is the per-head ablation
    assert one["repeated"] == pytest.approx(single["repeated"][1, 2].item(), abs=1e-5)
    # two heads at once equals zeroing both W_O slices
    surgery = copy.deepcopy(model)
    d_head = model.cfg.d_head
    with torch.no_grad():
        surgery.blocks[0].attn.o.weight[:, 0:d_head] = 0.0
        surgery.blocks[1].attn.o.weight[:, d_head : 2 * d_head] = 0.0
    both = A.ablated_loss(model, toks, [(0, 0), (1, 1)])
    assert both["first"] == pytest.approx(A.repeat_losses(surgery(toks), toks)["first"], abs=1e-5)
    # keep=True with every head listed ablates nothing; with none listed it ablates everything
    every = [(layer, h) for layer in range(2) for h in range(3)]
    clean = A.repeat_losses(model(toks), toks)
    assert A.ablated_loss(model, toks, every, keep=True)["repeated"] == pytest.approx(clean["repeated"], abs=1e-5)
    assert A.ablated_loss(model, toks, [], kind="zero", keep=True) == pytest.approx(A.ablated_loss(model, toks, every))
    # coverage of the whole model is 1 by definition
    assert A.circuit_coverage(model, toks, every) == pytest.approx(1.0, abs=1e-4)


# --------------------------------------------------------------------------- training monitor


def test_halfway_step():
    steps = [0, 10, 20, 30, 40]
    assert A.halfway_step(steps, [0.0, 0.0, 1.0, 1.0, 1.0]) == pytest.approx(15.0)
    assert A.halfway_step(steps, [4.0, 4.0, 3.0, 0.0, 0.0]) == pytest.approx(
        20 + 10 / 3
    )  # halfway = 2, a third of the way from 3 to 0
    with pytest.raises(TutorialInputError, match="transition"):
        A.halfway_step(steps, [1.0] * 5)


def test_transition_on_synthetic_history():
    steps = torch.arange(0, 200, 10)
    sig = torch.sigmoid((steps.float() - 100) / 5)
    ind = torch.zeros(len(steps), 2, 2)
    ind[:, 1, 0] = 0.9 * sig
    hist = {"steps": steps, "loss_first": torch.full((len(steps),), 4.0), "loss_repeated": 4.0 - 3.0 * sig,
            "induction": ind}  # fmt: skip
    tr = A.transition_steps(hist)
    assert tr.head == (1, 0)
    assert tr.loss_step == pytest.approx(100, abs=1) and tr.induction_step == pytest.approx(100, abs=1)
    assert tr.gap_fraction < 0.01


def test_monitor_records_and_restores_mode(device, models):
    model = models(device)
    toks = torch.randint(1, 20, (4, 5), generator=torch.Generator().manual_seed(0))
    toks = torch.cat([torch.zeros(4, 1, dtype=torch.long), toks, toks], dim=1).to(device)
    mon = A.InductionMonitor(every=2, probe=toks)
    model.train()
    for step in range(5):
        mon(step, model, 1.0)
    assert model.training
    model.eval()
    hist = mon.history()
    assert hist["steps"].tolist() == [0, 2, 4]
    assert hist["induction"].shape == (3, 2, 3)
    assert torch.allclose(hist["induction"][-1], A.head_scores(model, toks)["induction"].cpu())
    assert hist["loss_repeated"][-1].item() == pytest.approx(A.repeat_losses(model(toks), toks)["repeated"], abs=1e-5)
