"""Chapter 04's asserted claims (solutions/04_activation_patching.ipynb), re-run at three other seeds and
shown to fail on controls where they should not hold.

`measure_ioi` and `measure_toy` recompute every quantity the notebook asserts on, with the library's kernels,
for one seed of the prompt sampling (the noise draw and the resample draws follow the same seed);
`ioi_claims` and `toy_claims` apply the notebook's thresholds. Robust: every claim holds at seeds 1, 2 and 3
(the notebook uses 0). Able to fail: each claim is named with the control on which it must fail:

* "untrained": ioi-3l's (or toy-lm's) architecture, freshly initialised by its recipe, with its vocabulary;
* "toy-lm" / "ioi-3l": the other organism, which solves the same prompts with another mechanism;
* "wrong corruption": Gaussian noise on tokens that are not names (the claim is about noising the names);
* "swapped answers": the metric with IO and S exchanged (a wrong labelling of the task).

The SmolLM2 claims (the notebook's real-model branches: sections 1-3, 5 and 8) are checked at prompt seeds 1, 2
and 3, and each fails on its control (swapped answers, the residual grid read one position off, a shuffled
ranking, the 'abc' corruption, the bottom three heads); marked `real`: they need the offline SmolLM2 wheel.

Training: the claims rest on the shipped organisms. Re-training ioi-3l (3000 steps) or toy-lm at other
training seeds, or at 4x the steps, takes minutes per run on one core, beyond the ~90 s budget of this file;
robustness to the organisms' training seed is therefore not tested here.
"""

from __future__ import annotations

import functools

import pytest
import torch
from transformer_lens.utilities import get_act_name  # pyright: ignore[reportPrivateImportUsage]

from tutorial_lib import hooks, organisms, tasks
from tutorial_lib import patching as P
from tutorial_lib.organisms import recipes
from tutorial_lib.tasks.words import NAMES

SEEDS = (1, 2, 3)
pytestmark = pytest.mark.slow


def pair(lm, corruption: str, seed: int, third: str | None = None, swap: bool = False, template: int | None = None):
    """An IOI batch, clean and corrupted tokens and the logit-difference metric (IO - S, or S - IO if swap)."""
    b = tasks.ioi(batch=40, seed=seed, corruption=corruption, third=third, template=template)
    clean, corrupted = lm.to_tokens(b.prompts), lm.to_tokens(b.corrupt_prompts)
    io = torch.tensor([lm.to_single_token(a) for a in b.answers])
    s = torch.tensor([lm.to_single_token(a) for a in b.wrong_answers])
    io, s = (s, io) if swap else (io, s)
    return b, clean, corrupted, io, s, functools.partial(P.logit_diff, correct_tokens=io, wrong_tokens=s)


def ends(lm, metric, clean, corrupted) -> tuple[float, float]:
    with torch.no_grad():
        return metric(lm(clean)).item(), metric(lm(corrupted)).item()


def grids(lm, b, clean, corrupted, metric) -> dict:
    """Sections 2-3: residual, attention and head grids, normalised, and L1H1's attention from END."""
    cv, kv = ends(lm, metric, clean, corrupted)
    rec = functools.partial(P.normalise, clean_value=cv, corrupted_value=kv)
    with torch.no_grad():
        _, cache = lm.run_with_cache(clean, names_filter=lambda n: n == get_act_name("pattern", 1))
    rows = torch.arange(clean.shape[0])
    return dict(
        clean=cv, corrupted=kv, resid=rec(P.patch_resid_pre(lm, clean, corrupted, metric)),
        attn=rec(P.patch_attn_out(lm, clean, corrupted, metric)),
        heads=rec(P.patch_head_out_all_pos(lm, clean, corrupted, metric)),
        by_pos=rec(P.patch_head_out_by_pos(lm, clean, corrupted, metric)),
        to_s2=cache[get_act_name("pattern", 1)][rows, 1, -1, b.s2_pos].mean().item(),
    )  # fmt: skip


def noise(lm, b, clean, metric, seed: int, positions=None) -> dict:
    """Section 2's causal tracing: noise on the names' embeddings (or on `positions`)."""
    at = torch.stack([b.io_pos, b.s1_pos, b.s2_pos], 1) if positions is None else positions
    grid, cv, nv = P.noise_patch(lm, clean, metric, at, seed=seed)
    heads, _, _ = P.noise_patch(lm, clean, metric, at, grid="head_out_all_pos", seed=seed)
    return dict(clean=cv.item(), noised=nv.item(), resid=P.normalise(grid, cv, nv), heads=P.normalise(heads, cv, nv))


def dla(lm, clean, io, s) -> dict:
    """Section 3: each head's direct effect on logit(IO) and logit(S) minus its mean over the other names."""
    with torch.no_grad():
        _, cache = lm.run_with_cache(clean)
    d = {k: hooks.direct_logit_attribution(lm, cache, t).mean(0) for k, t in [("IO", io), ("S", s)]}
    others = [t for t in (lm.to_single_token(" " + n) for n in NAMES) if t not in set(io.tolist()) | set(s.tolist())]
    base = torch.stack([hooks.direct_logit_attribution(lm, cache, torch.full_like(io, t)).mean(0) for t in others])
    return {k: v - base.mean(0) for k, v in d.items()}


def metric_choice(lm, clean, corrupted, io, metric) -> dict:
    """Section 3: head grids under P(IO) and -KL, and the residual END cell of the last layer under each."""
    with torch.no_grad():
        clean_lp = lm(clean)[:, -1].log_softmax(-1)
    rows = torch.arange(clean.shape[0])
    fns = {"ld": metric, "p": lambda lg: lg[:, -1].softmax(-1)[rows, io].mean(),
           "kl": lambda lg: -(clean_lp.exp() * (clean_lp - lg[:, -1].log_softmax(-1))).sum(-1).mean()}  # fmt: skip
    out = {}
    for k, fn in fns.items():
        cv, kv = ends(lm, fn, clean, corrupted)
        out[k] = (P.normalise(P.patch_head_out_all_pos(lm, clean, corrupted, fn), cv, kv),
                  P.normalise(P.patch_resid_pre(lm, clean, corrupted, fn), cv, kv)[-1, -1].item())  # fmt: skip
    return out


def paths(lm, clean, corrupted, metric) -> dict:
    """Section 4: noising and denoising path patching into L1H1 and to the logits; section 8's head set."""
    cv, kv = ends(lm, metric, clean, corrupted)
    rec = functools.partial(P.normalise, clean_value=cv, corrupted_value=kv)
    earlier = [(0, h) for h in range(lm.cfg.n_heads)]
    inputs = {"q": "q", "k": "k", "v": "v", "qkv": ("q", "k", "v")}
    head_set = [(int(a), int(b)) for a, b in P.greedy_head_set(lm, clean, corrupted, metric).tolist()]
    return dict(
        head_set=rec(P.patch_head_group(lm, clean, corrupted, metric, head_set)).item(), head_set_heads=head_set,
        direct=1 - rec(P.path_patch(lm, clean, corrupted, metric)),
        q_each=1 - rec(P.path_patch(lm, clean, corrupted, metric, receivers=[(1, 1)], receiver_input="q")),
        noised={k: 1 - rec(P.path_patch_group(lm, clean, corrupted, metric, earlier, receivers=[(1, 1)],
                                              receiver_input=i)).item() for k, i in inputs.items()},
        denoised={k: rec(P.path_patch_group(lm, corrupted, clean, metric, earlier, receivers=[(1, 1)],
                                            receiver_input=i)).item() for k, i in inputs.items()},
        dn_direct=rec(P.path_patch(lm, corrupted, clean, metric)),
        copy_direct=1 - rec(P.path_patch_group(lm, clean, corrupted, metric, [(0, 0), (0, 1), (0, 2)])).item(),
    )  # fmt: skip


def ablations(lm, b, clean, metric, seed: int) -> dict:
    """Section 6: zero, mean and resample (8 draws) ablation of every head; changes from the clean value."""
    ref = lm.to_tokens(tasks.ioi(batch=40, seed=seed + 100, template=b.template).prompts)
    cv = ends(lm, metric, clean, clean)[0]
    draws = torch.stack([P.ablate(lm, clean, metric, "head", "resample", reference_tokens=ref, seed=seed * 10 + i)
                         for i in range(8)])  # fmt: skip
    return dict(clean=cv, zero=P.ablate(lm, clean, metric, "head", "zero") - cv,
                mean=P.ablate(lm, clean, metric, "head", "mean", reference_tokens=ref) - cv,
                resample=draws.mean(0) - cv, spread=draws.std(0))  # fmt: skip


def attribution(lm, clean, corrupted, metric, flip) -> dict:
    """Section 5: correlation of attribution patching with real patching ('abc'), and the 'flip' S2 cell."""
    out = {}
    for name, (c, k, m) in {"abc": (clean, corrupted, metric), "flip": flip}.items():
        cv, kv = ends(lm, m, c, k)
        real = P.normalise(P.patch_resid_pre(lm, c, k, m), cv, kv)
        est = P.attribution_patch(lm, c, k, m, grids=["resid_pre"])["resid_pre"] / (cv - kv)
        out[name] = (torch.corrcoef(torch.stack([real.flatten(), est.flatten()]))[0, 1].item(), real, est)
    return out


def third_table(lm, seed: int, swap: bool = False) -> torch.Tensor:
    """Section 3: IO - S on the clean prompts of every template [template, (classic, S and C, C and S)]."""
    return torch.tensor([[ends(lm, v[5], v[1], v[1])[0] for v in (pair(lm, "abc", seed, third=third, swap=swap,
                          template=t) for third in (None, "after", "before"))] for t in range(len(tasks.IOI_TEMPLATES))])  # fmt: skip


def measure_ioi(lm, seed: int, swap: bool = False, noise_positions: str = "names") -> dict:
    """Everything the notebook asserts about ioi-3l, at one seed."""
    b, clean, corrupted, io, s, metric = pair(lm, "abc", seed, swap=swap)
    fb, fc, fk, _, _, fm = pair(lm, "flip", seed, swap=swap)
    other = torch.stack([torch.ones_like(b.s2_pos), b.s2_pos + 1], 1)  # 'While' and the verb after S2
    before = pair(lm, "abc", seed, third="before", swap=swap)
    with torch.no_grad():
        _, cache = lm.run_with_cache(before[1], names_filter=lambda n: n == get_act_name("pattern", 1))
    cb = before[0]
    rows = torch.arange(len(cb.prompts))
    fv, fkv = ends(lm, fm, fc, fk)
    return dict(
        S2=int(b.s2_pos[0]), END=int(b.end_pos[0]), abc=grids(lm, b, clean, corrupted, metric),
        flip_heads=P.normalise(P.patch_head_out_all_pos(lm, fc, fk, fm), fv, fkv),
        noise=noise(lm, b, clean, metric, seed, None if noise_positions == "names" else other),
        dla=dla(lm, clean, io, s), metrics=metric_choice(lm, clean, corrupted, io, metric),
        paths=paths(lm, clean, corrupted, metric), ablation=ablations(lm, b, clean, metric, seed),
        attribution=attribution(lm, clean, corrupted, metric, (fc, fk, fm)), flip_S2=int(fb.s2_pos[0]),
        third=third_table(lm, seed, swap),
        third_to_s2=cache[get_act_name("pattern", 1)][rows, 1, -1, cb.s2_pos].mean().item(),
    )  # fmt: skip


def ioi_claims(m: dict) -> dict[str, bool]:
    """The notebook's assertions about ioi-3l, with its thresholds."""
    g, n, d, mc, p, ab, at = (m[k] for k in ("abc", "noise", "dla", "metrics", "paths", "ablation", "attribution"))
    S2, END, h = m["S2"], m["END"], g["heads"]
    resid, attn = g["resid"], g["attn"]
    peak = divmod(int(resid.argmax()), resid.shape[1])
    real_f, est_f = at["flip"][1], at["flip"][2]
    return {
        "solves IOI": g["clean"] > 3 and abs(g["corrupted"]) < 1,
        "resid: END entering layer 2": peak == (2, END) and resid[2, END] > 0.9,
        "resid: S2 entering layer 1": resid[1].argmax() == S2 and resid[1, S2] > 0.3,
        "resid: layer 0 adds at S2": resid[1, S2] > resid[0, S2] + 0.2,
        "resid: END empty before layer 1": resid[:2, END].abs().max() < 0.1 and resid[2, END] > 0.9,
        "attn: layer 1 at END": attn[1, END] > 0.75 and attn[0, END] < 0.1 and attn[2, END] < 0.2,
        "attn: nothing before END": attn[:, :END].abs().max() < 0.1,
        "noise: names' noise removes the answer": n["noised"] < 0.25 * n["clean"],
        "noise: S2 then END": n["resid"][1].argmax() == S2 and n["resid"][2].argmax() == END,
        "noise: cells restore much": n["resid"][2, END] > 0.6 and n["resid"][1, S2] > 0.3,
        "noise: L1H1": divmod(int(n["heads"].argmax()), 4) == (1, 1) and n["heads"][1, 1] > 0.5,
        "heads: L1H1 top": h.argmax() == 5 and m["flip_heads"].argmax() == 5,
        "heads: L1H1 carries most": m["flip_heads"][1, 1] > 0.8 and h[1, 1] > 0.6,
        "heads: no other head": m["flip_heads"].flatten().topk(2).values[1] < 0.2,
        "heads: L1H1 at END only": g["by_pos"][1, :, 1].argmax() == END and g["by_pos"][1, END, 1] > 0.5
        and g["by_pos"][1, :END, 1].abs().max() < 0.05,
        "L1H1 attends to S2": g["to_s2"] > 0.85,
        "dla: L1H1 lowers S, not IO": d["S"][1, 1] < -3 and abs(d["IO"][1, 1]) < 1,
        "dla: copy heads raise both alike": min(d["IO"][0, :3].min(), d["S"][0, :3].min()) > 0.8
        and abs((d["IO"] - d["S"])[0, :3].sum()) < 1,
        "third name: rejects the repeated name": m["third"].min() > 4,
        "third name: L1H1 finds S2": m["third_to_s2"] > 0.8,
        "metrics: END restores all": all(r > 0.8 for _, r in mc.values()),
        "metrics: P(IO) misses L1H1": mc["ld"][0][1, 1] > 0.6 and mc["p"][0][1, 1] < 0.1,
        "metrics: P(IO) no single head": mc["p"][0].max() < 0.2,
        "metrics: KL credits copy heads": mc["ld"][0][1, 1] > 0.6 and mc["kl"][0][1, 1] < 0.2
        and mc["kl"][0][0, :3].min() > 0.25,
        "paths: L1H1 direct": p["direct"][1, 1] > 0.7 and p["direct"].flatten().topk(2).values[1] < 0.2,
        "paths: mostly via the query": p["noised"]["q"] > 0.4 and p["noised"]["k"] < 0.5 * p["noised"]["q"]
        and p["noised"]["v"] < 0.2,
        "paths: q spread over copy heads": p["q_each"][0, :3].min() > 0.03 and p["q_each"][0, :3].max() < 0.3,
        "paths: copy heads act through L1H1's query": p["copy_direct"] < 0.2 < p["noised"]["q"],
        "denoise: L1H1 direct sufficient": p["dn_direct"][1, 1] > 0.5 and p["dn_direct"].flatten().topk(2).values[1] < 0.2,
        "denoise: q necessary not sufficient": p["noised"]["q"] > 0.4 and p["denoised"]["q"] < 0.1,
        "denoise: not even qkv": p["noised"]["qkv"] > 0.5 and p["denoised"]["qkv"] < 0.15,
        "head set: 3 heads recover 0.8": p["head_set"] >= 0.8 and (1, 1) in p["head_set_heads"],
        "attribution: tracks 'abc'": at["abc"][0] >= 0.8,
        "attribution: misses the token swap": real_f[0, m["flip_S2"]] > 0.9 and est_f[0, m["flip_S2"]] < 0.5,
        "ablation: L1H1 needed": max((ab[k][1, 1] + ab["clean"]).item() for k in ("zero", "mean", "resample")) < 0.2 * ab["clean"],
        "ablation: copy heads resample < mean": (ab["resample"][0, :3] - ab["mean"][0, :3]).max() < -0.5,
        "ablation: resample varies": ab["spread"][0, :3].mean() > 0.1,
        "ablation: zero exaggerates L0H3": ab["zero"][0, 3] < ab["mean"][0, 3] - 0.5,
    }  # fmt: skip


# The control on which each claim must fail (see the module docstring).
IOI_CLAIM_NAMES = [
    "solves IOI", "resid: END entering layer 2", "resid: S2 entering layer 1", "resid: layer 0 adds at S2",
    "resid: END empty before layer 1", "attn: layer 1 at END", "attn: nothing before END",
    "noise: names' noise removes the answer", "noise: S2 then END", "noise: cells restore much", "noise: L1H1",
    "heads: L1H1 top", "heads: L1H1 carries most", "heads: no other head", "heads: L1H1 at END only",
    "L1H1 attends to S2", "dla: L1H1 lowers S, not IO", "dla: copy heads raise both alike",
    "third name: rejects the repeated name", "third name: L1H1 finds S2", "metrics: END restores all",
    "metrics: P(IO) misses L1H1", "metrics: P(IO) no single head", "metrics: KL credits copy heads",
    "paths: L1H1 direct", "paths: mostly via the query", "paths: q spread over copy heads",
    "paths: copy heads act through L1H1's query", "denoise: L1H1 direct sufficient",
    "denoise: q necessary not sufficient", "denoise: not even qkv", "head set: 3 heads recover 0.8",
    "attribution: tracks 'abc'", "attribution: misses the token swap", "ablation: L1H1 needed",
    "ablation: copy heads resample < mean", "ablation: resample varies", "ablation: zero exaggerates L0H3",
]  # fmt: skip
IOI_CONTROLS = {
    # every claim but the attribution one, which holds on a random model too (see its own test below)
    "untrained": [k for k in IOI_CLAIM_NAMES if k != "attribution: tracks 'abc'"],
    "wrong corruption": ["noise: names' noise removes the answer"],
    "swapped answers": ["solves IOI", "third name: rejects the repeated name", "dla: L1H1 lowers S, not IO",
                        "head set: 3 heads recover 0.8", "ablation: L1H1 needed"],
}  # fmt: skip


@functools.lru_cache(maxsize=1)
def ioi_model():
    return organisms.load("ioi-3l").eval()


@functools.lru_cache(maxsize=8)
def ioi_measured(seed: int, control: str = "") -> dict:
    trained = ioi_model()
    lm = recipes.build("ioi-3l", tokenizer=trained.tokenizer) if control == "untrained" else trained
    return measure_ioi(lm, seed, swap=control == "swapped answers",
                       noise_positions="other" if control == "wrong corruption" else "names")  # fmt: skip


def test_ioi_claim_names_are_current():
    assert sorted(IOI_CLAIM_NAMES) == sorted(ioi_claims(ioi_measured(1)))


@pytest.mark.parametrize("seed", SEEDS)
def test_ioi_claims_hold_at_other_seeds(seed):
    failed = [k for k, ok in ioi_claims(ioi_measured(seed)).items() if not ok]
    assert not failed, f"seed {seed}: {failed}"


@pytest.mark.parametrize("control", list(IOI_CONTROLS))
def test_ioi_claims_fail_on_their_control(control):
    held = [k for k in IOI_CONTROLS[control] if ioi_claims(ioi_measured(1, control))[k]]
    assert not held, f"on the {control!r} control these claims still hold: {held}"


def slot_attention(lm, seed: int) -> torch.Tensor:
    """Section 7: L0H0's attention from END, per template: classic -> S2; 'C and S' -> C, -> S2."""
    out = torch.zeros(len(tasks.IOI_TEMPLATES), 3)
    for t in range(len(tasks.IOI_TEMPLATES)):
        for third in (None, "before"):
            b, tokens = pair(lm, "abc", seed, third=third, template=t)[:2]
            with torch.no_grad():
                _, cache = lm.run_with_cache(tokens, names_filter=lambda n: n == get_act_name("pattern", 0))
            row = cache[get_act_name("pattern", 0)][torch.arange(tokens.shape[0]), 0, -1]
            at = lambda pos, row=row: row[torch.arange(row.shape[0]), pos].mean()  # noqa: E731
            if third is None:
                out[t, 0] = at(b.s2_pos)
            else:
                out[t, 1], out[t, 2] = at(b.c_pos), at(b.s2_pos)
    return out


def measure_toy(lm, seed: int) -> dict:
    """Section 7 (and section 3's third-name test) on toy-lm, at one seed."""
    b, clean, corrupted, _, _, metric = pair(lm, "abc", seed)
    cv, kv = ends(lm, metric, clean, corrupted)
    rec = functools.partial(P.normalise, clean_value=cv, corrupted_value=kv)
    n_heads = lm.cfg.n_heads
    return dict(
        end=int(b.end_pos[0]), attn=rec(P.patch_attn_out(lm, clean, corrupted, metric)),
        mlp=rec(P.patch_mlp_out(lm, clean, corrupted, metric)) if not lm.cfg.attn_only else None,
        heads=rec(P.patch_head_out_all_pos(lm, clean, corrupted, metric)),
        via_mlps=rec(P.path_patch(lm, clean, corrupted, metric)),
        direct=rec(P.path_patch(lm, clean, corrupted, metric, freeze_mlps=not lm.cfg.attn_only)),
        into_l1=rec(P.path_patch(lm, clean, corrupted, metric, receivers=[(1, h) for h in range(n_heads)])),
        third=third_table(lm, seed), slot=slot_attention(lm, seed),
    )  # fmt: skip


def toy_claims(m: dict) -> dict[str, bool]:
    end, third, slot = m["end"], m["third"], m["slot"]
    collapsed = third[:, 2] < 1
    mlp = m["mlp"][0, end] > 0.6 if m["mlp"] is not None else False
    return {
        "toy: needs the subject slot": third[:, 0].min() > 4 and int(collapsed.sum()) >= 3
        and (third[:, 0] - third[:, 2]).min() > 1.5,
        "toy: not a recency rule": bool(collapsed.any()) and third[collapsed, 1].min() > 3,
        "toy: L0H0 and the layer-0 MLP at END": m["heads"].argmax() == 0 and m["attn"][0, end] > 0.7 and mlp,
        "toy: L0H0 acts through the MLPs": m["via_mlps"][0, 0] < 0.2 and m["direct"][0, 0] > 0.9,
        "toy: no layer-1 head depends on layer 0": (m["into_l1"][0] - 1).abs().max() < 0.1,
        "toy: L0H0 reads the subject slot": slot[:, 0].min() > 0.5 and bool(collapsed.any())
        and slot[collapsed, 1].min() > 0.5,
    }  # fmt: skip


TOY_CONTROLS = {
    "untrained": ["toy: needs the subject slot", "toy: not a recency rule", "toy: L0H0 and the layer-0 MLP at END",
                  "toy: L0H0 acts through the MLPs", "toy: L0H0 reads the subject slot"],
    "ioi-3l": ["toy: needs the subject slot", "toy: not a recency rule", "toy: L0H0 and the layer-0 MLP at END",
               "toy: no layer-1 head depends on layer 0", "toy: L0H0 reads the subject slot"],
}  # fmt: skip


@functools.lru_cache(maxsize=8)
def toy_measured(seed: int, control: str = "") -> dict:
    if control == "ioi-3l":
        return measure_toy(ioi_model(), seed)
    trained = organisms.load("toy-lm").eval()
    lm = recipes.build("toy-lm", tokenizer=trained.tokenizer) if control == "untrained" else trained
    return measure_toy(lm, seed)


@pytest.mark.parametrize("seed", SEEDS)
def test_toy_claims_hold_at_other_seeds(seed):
    failed = [k for k, ok in toy_claims(toy_measured(seed)).items() if not ok]
    assert not failed, f"seed {seed}: {failed}"


@pytest.mark.parametrize("control", list(TOY_CONTROLS))
def test_toy_claims_fail_on_their_control(control):
    held = [k for k in TOY_CONTROLS[control] if toy_claims(toy_measured(1, control))[k]]
    assert not held, f"on the {control!r} control these claims still hold: {held}"


def test_attribution_claim_fails_on_a_permuted_estimate():
    """The attribution claim holds on an untrained model too (a random model is nearly linear, so the estimate
    is good there): its control is the estimate with its positions permuted, which must not track patching."""
    corr, real, est = ioi_measured(1)["attribution"]["abc"]
    perm = torch.randperm(real.shape[1], generator=torch.Generator().manual_seed(0))
    shuffled = torch.corrcoef(torch.stack([real.flatten(), est[:, perm].flatten()]))[0, 1].item()
    assert corr >= 0.8 > shuffled


# ---------------------------------------------------------------------------------------------
# SmolLM2-135M (the notebook's real-model branches, TUTORIAL_MODEL=smollm2-135m), at prompt seeds 1, 2 and 3.
# Every threshold below is the notebook's own, in the `else:` (real-model) branch of the cell named beside it
# (solutions/04_activation_patching.ipynb, cells counted from 0: section 1 = cell 7, residual stream = cells 14
# and 16, heads = cells 27 and 30, direct logit attribution = cell 32, third name = cell 34, attribution = cells
# 52 and 53, head set = cell 68). The notebook patches its 12 first-pass heads with P.patch_head_group one at a time; here
# P.patch_heads gives the same cells (bit for bit) from one pair of cached runs. Cost: about 20 s of CPU per
# seed (1 thread; the 8-depth residual grid is 9 s of it); every control re-reads seed 1's measurement.

REAL_SEEDS = (1, 2, 3)  # the notebook's prompts are seed 0
REAL_PROMPTS = 8  # session.pick(organism=40, real=8)
RESID_FRACTIONS = (0, 0.25, 0.5, 0.6, 0.7, 0.8, 0.9, 1)  # cell 14: the depths of the residual grid
FIRST_PASS_K = 12  # cell 27: the first pass's top heads, activation-patched


def real_pair(lm, seed: int, corruption: str, third: str | None = None, template: int | None = None):
    """The notebook's prompt_pair on a real model: batch, clean and corrupted tokens, IO and S ids."""
    b = tasks.ioi(batch=REAL_PROMPTS, seed=seed, corruption=corruption, third=third, template=template)
    clean, corrupted = lm.to_tokens(b.prompts), lm.to_tokens(b.corrupt_prompts)
    io = torch.tensor([lm.to_single_token(a) for a in b.answers])
    s = torch.tensor([lm.to_single_token(a) for a in b.wrong_answers])
    return b, clean, corrupted, io, s


def first_pass(lm, clean, corrupted, metric, values, estimate) -> tuple[list, torch.Tensor, torch.Tensor]:
    """Cell 27's first_pass_then_patch: the k heads attribution ranks highest, patched one at a time, sorted."""
    est = (estimate / (values[0] - values[1])).flatten()
    picked = est.abs().topk(FIRST_PASS_K).indices
    heads = [divmod(int(i), lm.cfg.n_heads) for i in picked]
    real = P.normalise(P.patch_heads(lm, clean, corrupted, metric, heads), *values)
    order = real.argsort(descending=True).tolist()
    return [heads[i] for i in order], real[order], est[picked][order]


def values_of(lm, metric, clean, corrupted) -> tuple[float, float]:
    with torch.no_grad():
        return metric(lm(clean)).item(), metric(lm(corrupted)).item()


@functools.cache
def resid_layers(n_layers: int) -> list[int]:
    return sorted({round(f * (n_layers - 1)) for f in RESID_FRACTIONS})


def measure_real(lm, seed: int) -> dict:
    """Everything the notebook's real-model branches assert on, at one prompt seed. Patching fractions do not
    depend on which name is called the answer (normalise((-v) - (-k), ...) is the same number), so the
    "swapped answers" control re-labels this measurement (real_claims(..., swap=True)) instead of re-running it."""
    _, clean, corrupted, io, s = real_pair(lm, seed, "abc")
    metric = functools.partial(P.logit_diff, correct_tokens=io, wrong_tokens=s)
    values = values_of(lm, metric, clean, corrupted)
    est = P.attribution_patch(lm, clean, corrupted, metric, grids=["head_out_all_pos", "resid_pre"])
    heads, patched, estimated = first_pass(lm, clean, corrupted, metric, values, est["head_out_all_pos"])
    layers = resid_layers(lm.cfg.n_layers)
    resid = P.normalise(P.patch_resid_pre(lm, clean, corrupted, metric, layers=layers), *values)
    _, fc, fk, fio, fs = real_pair(lm, seed, "flip")
    fm = functools.partial(P.logit_diff, correct_tokens=fio, wrong_tokens=fs)
    fv = values_of(lm, fm, fc, fk)
    flip = first_pass(
        lm, fc, fk, fm, fv, P.attribution_patch(lm, fc, fk, fm, grids=["head_out_all_pos"])["head_out_all_pos"]
    )
    shown = set(heads) | set(flip[0])
    with torch.no_grad():
        logits, cache = lm.run_with_cache(clean)
        third = torch.tensor([[P.logit_diff(lm(p[1]), p[3], p[4]).item() for p in
                               (real_pair(lm, seed, "abc", third=c, template=t) for c in (None, "after", "before"))]
                              for t in range(len(tasks.IOI_TEMPLATES))])  # fmt: skip
    return dict(
        n_layers=lm.cfg.n_layers, layers=layers, clean_tokens=clean, io=io, s=s, values=values, last=logits[:, -1],
        heads=heads, patched=patched, estimated=estimated, resid=resid,
        resid_estimate=est["resid_pre"][layers] / (values[0] - values[1]),
        flip=flip, flip_values=fv, third=third,
        end_attention={lh: cache[get_act_name("pattern", lh[0])][:, lh[1], -1] for lh in shown},  # [batch, key]
        dla={"IO": hooks.direct_logit_attribution(lm, cache, io).mean(0), "S": hooks.direct_logit_attribution(lm, cache, s).mean(0)},
        together=P.normalise(P.patch_head_group(lm, clean, corrupted, metric, heads[:3]), *values).item(),
    )  # fmt: skip


def name_positions(clean: torch.Tensor, io: torch.Tensor, s: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Cell 7's position_of: IO's first, S's first (S1) and S's last (S2) occurrence in each prompt."""
    at = torch.arange(clean.shape[1])
    first = lambda ids: torch.where(clean == ids[:, None], at, clean.shape[1]).amin(1)  # noqa: E731
    return first(io), first(s), torch.where(clean == s[:, None], at, -1).amax(1)


def resid_claims(resid: torch.Tensor, estimate: torch.Tensor, layers: list[int], n_layers: int, names, S2: int,
                 END: int) -> dict[str, bool]:  # fmt: skip
    """Cells 16 and 53: the residual-stream claims at the 8 depths (and attribution's failure at S2)."""
    depth = torch.tensor(layers) / n_layers
    moved = layers[int((resid[:, END] > 0.5).float().argmax())]  # first depth where END carries the answer
    before = torch.tensor(layers) < moved
    others = [p for p in range(resid.shape[1]) if p not in names]
    s2_middle = resid[before & (depth >= 0.5), S2]
    best = int(resid[:, S2].argmax())
    claims = {
        "resid: END knows the answer only late": resid[-1, END] > 0.8 and resid[depth < 0.5, END].abs().max() < 0.1,
        "resid: it moves to END in the late-middle layers": 0.5 <= moved / n_layers <= 0.9,
        "resid: before that, only at the names": bool(before.any()) and resid[before][:, others].abs().max() < 0.15,
        "resid: S2 gains its share in the middle": s2_middle.numel() > 0
        and s2_middle.max() > 0.15 and s2_middle.max() > resid[0, S2] + 0.3,
        "attribution: fails on the S2 residual": estimate[best, S2] < resid[best, S2] - 0.3,
    }  # fmt: skip
    return {name: bool(holds) for name, holds in claims.items()}


def real_claims(m: dict, swap: bool = False, shift: int = 0, shuffle: bool = False) -> dict[str, bool]:
    """The notebook's SmolLM2 assertions with its thresholds. Controls: `swap` calls S the answer (IO and S
    exchanged); `shift` reads every residual-grid position as its neighbour's (the names' positions wrong by
    one); `shuffle` pairs each patched head with another head's first-pass estimate (a shuffled ranking)."""
    n, io, s = m["n_layers"], *((m["s"], m["io"]) if swap else (m["io"], m["s"]))
    sign = -1 if swap else 1
    io_at, s1_at, s2_at = name_positions(m["clean_tokens"], io, s)
    rows = torch.arange(len(io))
    clean_v, corrupted_v = (sign * v for v in m["values"])
    top, patched, estimated = m["heads"][0], m["patched"], m["estimated"]
    if shuffle:
        estimated = estimated[torch.randperm(len(estimated), generator=torch.Generator().manual_seed(0))]
    to = {lh: [a[rows, p].mean().item() for p in (io_at, s1_at, s2_at)] for lh, a in m["end_attention"].items()}
    movers = [lh for lh in m["heads"][:6] if to[lh][0] > 0.3 and to[lh][0] > to[lh][1] + to[lh][2]]
    io_minus_s = sign * (m["dla"]["IO"] - m["dla"]["S"])
    flip_heads, flip_patched, flip_estimated = m["flip"]
    gap = flip_patched - flip_estimated
    missed = flip_heads[int(gap.argmax())]
    S2, END = int(s2_at[0]), m["clean_tokens"].shape[1] - 1
    names = sorted(set(io_at.tolist()) | set(s1_at.tolist()) | {S2})
    resid, est = (g.roll(shift, dims=1) for g in (m["resid"], m["resid_estimate"]))
    return {
        "solves IOI": clean_v > 1.5 and (m["last"][rows, io] > m["last"][rows, s]).float().mean() >= 0.75
        and clean_v - corrupted_v > 2,
        "a late-middle top head": patched[0] > 0.4 and 0.5 <= top[0] / n <= 0.9,
        "it attends to S2": to[top][2] > 0.4,
        "name movers": len(movers) >= 1 and all(0.5 <= layer / n <= 0.9 for layer, _ in movers),
        "top head favours IO": io_minus_s[top] > 1,
        "name movers favour IO": bool(movers) and all(io_minus_s[lh] > 0 for lh in movers),
        "first pass agrees": torch.corrcoef(torch.stack([patched, estimated]))[0, 1].item() > 0.9,
        "top 3 restore": m["together"] >= 0.8,
        "third name: IO above S everywhere": (sign * m["third"]).min() > 0.5,
        "flip: the first pass misses an earlier head": gap.max() > 0.25 and missed[0] < top[0],
        "flip: that head attends to S2": to[missed][2] > 0.4,
        **resid_claims(resid, est, m["layers"], n, names, S2, END),
    }  # fmt: skip


REAL_CONTROLS = {
    # the task mislabelled (S called the answer): patching fractions do not change, what the heads attend to
    # and write does
    "swapped answers": ["solves IOI", "it attends to S2", "name movers", "top head favours IO", "name movers favour IO",
                        "third name: IO above S everywhere", "flip: that head attends to S2"],
    # the residual grid read one position off: END, S2 and the names are not where the claims look
    "positions shifted": ["resid: END knows the answer only late", "resid: it moves to END in the late-middle layers",
                          "resid: before that, only at the names", "resid: S2 gains its share in the middle",
                          "attribution: fails on the S2 residual"],
    "shuffled ranking": ["first pass agrees"],
}  # fmt: skip
_REAL: dict[int, dict] = {}


def real_measured(lm, seed: int) -> dict:
    if seed not in _REAL:
        _REAL[seed] = measure_real(lm.eval(), seed)
    return _REAL[seed]


@pytest.mark.real
@pytest.mark.parametrize("seed", REAL_SEEDS)
def test_smollm2_claims_hold_at_other_seeds(smollm2, seed):
    failed = [k for k, ok in real_claims(real_measured(smollm2, seed)).items() if not ok]
    assert not failed, f"SmolLM2, prompt seed {seed}: {failed}"


@pytest.mark.real
@pytest.mark.parametrize("control", list(REAL_CONTROLS))
def test_smollm2_claims_fail_on_their_control(smollm2, control):
    m = real_measured(smollm2, REAL_SEEDS[0])
    claims = real_claims(m, swap=control == "swapped answers", shift=int(control == "positions shifted"),
                         shuffle=control == "shuffled ranking")  # fmt: skip
    held = [k for k in REAL_CONTROLS[control] if claims[k]]
    assert not held, f"on the {control!r} control these SmolLM2 claims still hold: {held}"


@pytest.mark.real
def test_smollm2_flip_and_head_set_claims_fail_where_they_should_not_hold(smollm2):
    """'flip': the first pass underestimates an earlier head by > 0.25; on 'abc' (a change the estimate follows,
    correlation > 0.9) it does not. 'Top 3 restore' and 'a late-middle top head' (> 0.4 alone): aimed at the
    first pass's lowest-ranked heads, they do not hold."""
    m = real_measured(smollm2, REAL_SEEDS[0])
    assert not m["patched"][-1] > 0.4, m["patched"]
    gap = m["patched"] - m["estimated"]
    assert not (gap.max() > 0.25 and m["heads"][int(gap.argmax())][0] < m["heads"][0][0]), gap
    _, clean, corrupted, io, s = real_pair(smollm2, REAL_SEEDS[0], "abc")
    metric = functools.partial(P.logit_diff, correct_tokens=io, wrong_tokens=s)
    bottom = P.normalise(P.patch_head_group(smollm2, clean, corrupted, metric, m["heads"][-3:]), *m["values"])
    assert not bottom >= 0.8, bottom
