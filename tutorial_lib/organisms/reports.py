"""Reports: what each organism's card says it does, measured by the chapters' kernels.

The top layer of the package: the only organisms module that imports kernels (`hooks`, `attention`, `discovery`).
Head ablation is `hooks.head_ablation_hook`, direct logit attribution `hooks.direct_logit_attribution`,
head scores and weight circuits come from `attention`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from .. import attention, discovery, tasks
from ..attention import ov_copying
from ..hooks import direct_logit_attribution, head_ablation_hook, per_token_loss
from .planted import TRUE_EDGES, planted_pairs
from .recipes import UNSEEN_PERIODS, induction_batch, unseen_period_batch


def _masked_mean(x: Tensor, mask: Tensor) -> float:
    """Mean of x over the positions where mask is True. Chapter 05: induction heads (the induction-2l card)."""
    return float((x * mask).sum() / mask.sum())


def _unseen_period_losses(model, batch: int, seed: int) -> dict:
    """Losses on the first and repeated half for periods never seen in training: an induction head must
    follow the token, not a learned offset. Chapter 05: induction heads (the induction-2l card)."""
    unseen = {}
    for (lo, hi), length in UNSEEN_PERIODS:
        u = unseen_period_batch(batch, model.cfg.d_vocab, (lo, hi), length, seed)
        lu = per_token_loss(model(u.tokens), u.tokens)
        unseen[f"{lo}-{hi}"] = {"loss_first_half": round(_masked_mean(lu, u.first[:, :-1]), 4),
                                "loss_repeated_half": round(_masked_mean(lu, u.repeated[:, :-1]), 4)}  # fmt: skip
    return unseen


def _ablated_repeated_loss(model, toks: Tensor, rep: Tensor, layer: int, heads: list[int]) -> float:
    """Repeated-half loss with the listed heads of `layer` zero-ablated together (`hooks.head_ablation_hook`).

    Chapter 05: induction heads (the induction-2l card)."""
    logits = model.run_with_hooks(toks, fwd_hooks=[(f"blocks.{layer}.attn.hook_z", head_ablation_hook(heads))])
    return round(_masked_mean(per_token_loss(logits, toks), rep), 4)


@torch.no_grad()
def induction_report(model, seed: int = 1234, batch: int = 200) -> dict:
    """Losses on the first vs repeated half, head scores, per-head ablations, K-composition, OV copying.

    Chapter 05: induction heads (the induction-2l card)."""
    cfg = model.cfg
    data = induction_batch(batch, cfg.d_vocab, seed)
    toks, rep, first = data.tokens, data.repeated[:, :-1], data.first[:, :-1]
    _, cache = model.run_with_cache(toks, names_filter=lambda n: n.endswith("hook_pattern"))
    loss = per_token_loss(model(toks), toks)
    out: dict[str, Any] = {"loss_first_half": _masked_mean(loss, first), "loss_repeated_half": _masked_mean(loss, rep)}
    # previous-token score: attention from p to p-1; induction score: attention from p to p - period + 1
    # at the repeated positions.
    prev = [attention.previous_token_score(cache["pattern", layer]) for layer in range(cfg.n_layers)]
    ind = [attention.induction_score(cache["pattern", layer], data.period, query_mask=data.repeated)
           for layer in range(cfg.n_layers)]  # fmt: skip
    out["prev_token_score"] = [[round(float(x), 4) for x in row] for row in prev]
    out["induction_score"] = [[round(float(x), 4) for x in row] for row in ind]
    # unseen periods: the induction head must follow the token, not a learned offset
    out["unseen_periods"] = _unseen_period_losses(model, batch, seed + 1)
    # ablate each head (zero its hook_z) and record the repeated-half loss
    out["ablated_repeated_loss"] = [
        [_ablated_repeated_loss(model, toks, rep, layer, [h]) for h in range(cfg.n_heads)]
        for layer in range(cfg.n_layers)
    ]
    ptl = max(range(cfg.n_heads), key=lambda h: out["prev_token_score"][0][h])
    ihl = max(range(cfg.n_heads), key=lambda h: out["induction_score"][1][h])
    out["previous_token_head"] = [0, ptl]
    out["induction_head"] = [1, ihl]
    out["induction_heads"] = [[1, h] for h in range(cfg.n_heads) if out["induction_score"][1][h] > 0.5]
    # ablating every layer-1 induction head together (they share the work)
    ind_heads = [h for _, h in out["induction_heads"]]
    out["ablated_all_induction_heads_repeated_loss"] = _ablated_repeated_loss(model, toks, rep, 1, ind_heads)
    kc = k_composition(model)
    out["k_composition"] = [[round(float(x), 4) for x in row] for row in kc]
    out["k_composition_argmax"] = [int(i) for i in divmod(int(kc.argmax()), cfg.n_heads)]
    out["ov_copying"] = round(ov_copying(model, 1, ihl), 4)
    for k in ("loss_first_half", "loss_repeated_half"):
        out[k] = round(out[k], 4)
    return out


def k_composition(model) -> Float[Tensor, "head0 head1"]:
    """K-composition from layer-0 heads into layer-1 heads, on the raw weights (no LayerNorm folding).

    Chapter 05: induction heads (the induction-2l card)."""
    return attention.composition_scores(model, "K", fold_ln=False).detach()


@torch.no_grad()
def ioi_report(model, batch: int = 100, seed: int = 4321, split: str = "test", third: str | None = None) -> dict:
    """Accuracy (IO logit > S logit) and mean logit difference on held-out IOI prompts, every template
    (third: None for the classic prompts, "after"/"before" for a third name next to S2).
    Chapter 04: activation patching (the toy-lm and ioi-3l cards)."""
    accs, diffs, per = [], [], {}
    for t in range(len(tasks.IOI_TEMPLATES)):
        b = tasks.ioi(batch, seed=seed + t, template=t, split=split, third=third)
        logits = model(b.tokens.to(model.cfg.device))[:, -1].cpu()
        diff = logits.gather(1, b.io_token[:, None])[:, 0] - logits.gather(1, b.s_token[:, None])[:, 0]
        top = logits.argmax(-1) == b.io_token
        accs.append((diff > 0).float())
        diffs.append(diff)
        per[str(t)] = {"acc": round(float((diff > 0).float().mean()), 4), "logit_diff": round(float(diff.mean()), 4),
                       "top1": round(float(top.float().mean()), 4)}  # fmt: skip
    return {"ioi_acc": round(float(torch.cat(accs).mean()), 4),
            "ioi_logit_diff": round(float(torch.cat(diffs).mean()), 4), "per_template": per}  # fmt: skip


@torch.no_grad()
def ioi_heads_report(model, batch: int = 100, seed: int = 4321) -> dict:
    """Per head at the END position: attention to IO and to S (both occurrences), and direct logit
    attribution to logit(IO) - logit(S) (`hooks.direct_logit_attribution`: head output through the final
    norm with its scale frozen, onto W_U).
    Chapter 04: activation patching (the toy-lm and ioi-3l cards)."""
    cfg = model.cfg
    att_io = torch.zeros(cfg.n_layers, cfg.n_heads)
    att_s = torch.zeros(cfg.n_layers, cfg.n_heads)
    dla = torch.zeros(cfg.n_layers, cfg.n_heads)
    n_t = len(tasks.IOI_TEMPLATES)
    for t in range(n_t):
        b = tasks.ioi(batch, seed=seed + t, template=t, split="test")
        _, cache = model.run_with_cache(b.tokens)
        rows, end = torch.arange(batch), b.end_pos
        for layer in range(cfg.n_layers):
            pat = cache["pattern", layer][rows, :, end]  # [batch, head, k]
            att_io[layer] += pat[rows, :, b.io_pos].mean(0) / n_t
            att_s[layer] += (pat[rows, :, b.s1_pos] + pat[rows, :, b.s2_pos]).mean(0) / n_t
        dla += direct_logit_attribution(model, cache, b.io_token, end, wrong=b.s_token).mean(0) / n_t
    r2 = lambda x: [[round(float(v), 3) for v in row] for row in x]  # noqa: E731
    best = divmod(int(dla.argmax()), cfg.n_heads)
    return {"end_attention_to_io": r2(att_io), "end_attention_to_s": r2(att_s), "head_logit_diff_dla": r2(dla),
            "top_name_mover": [int(best[0]), int(best[1])]}  # fmt: skip


@torch.no_grad()
def bracket_report(model, batch: int = 200, seed: int = 777, threshold: float = 0.1) -> dict:
    """Does the model know when a ")" may come? P(")" next) by depth, and the accuracy of the rule
    "P(')') > threshold exactly when depth > 0" over all positions before the final ".".
    Chapter 03: probing (the toy-lm card)."""
    b = tasks.brackets(batch, n_words=24, seed=seed)
    probs = model(b.tokens.to(model.cfg.device))[:, :-1].softmax(-1).cpu()
    p_close = probs[..., tasks.WORD_TO_ID[tasks.CLOSE]]
    depth = b.depth[:, :-1]
    by_depth = {str(k): round(float(p_close[depth == k].mean()), 4) for k in range(int(depth.max()) + 1)
                if (depth == k).any()}  # fmt: skip
    acc = float(((p_close > threshold) == (depth > 0)).float().mean())
    # argmax accuracy where the closing is forced (remaining tokens == depth): ")" must be predicted
    forced = []
    for i, text in enumerate(b.texts):
        words = text.split()
        d = tasks.bracket_depth(words)
        for p in range(len(words) - 1):  # predicting words[p+1] at token position p+1
            if d[p] > 0 and d[p] == len(words) - 2 - p:
                forced.append(int(probs[i, p + 1].argmax()) == tasks.WORD_TO_ID[tasks.CLOSE])
    return {"bracket_close_acc": round(acc, 4), "p_close_by_depth": by_depth,
            "forced_close_acc": round(sum(forced) / max(len(forced), 1), 4)}  # fmt: skip


@torch.no_grad()
def facts_report(model) -> dict:
    """Top-1 accuracy of the facts prompts, per relation (every entity three times).

    Chapter 06: open problems (the toy-lm card)."""
    out = {}
    for rel, (_, table) in tasks.FACTS.items():
        f = tasks.facts(len(table) * 3, relation=rel, seed=5)
        pred = model(f.tokens.to(model.cfg.device))[:, -1].argmax(-1).cpu()
        out[rel] = round(float((pred == f.answer_token).float().mean()), 4)
    return {"facts_acc": out}


def _measure_induction(model) -> dict:
    """The induction-2l card: induction_report. Chapter 05: induction heads."""
    return induction_report(model)


def _third_name_report(model) -> dict:
    """IOI with a third name next to S2, both orders: does the model reject the *repeated* name?

    Chapter 04: activation patching (the ioi-3l card)."""
    out = {}
    for third in ("after", "before"):
        r = ioi_report(model, seed=8765, third=third)
        out[third] = {"acc": r["ioi_acc"], "logit_diff": r["ioi_logit_diff"]}
    return {"ioi_third_name": out}


@torch.no_grad()
def second_clause_report(model, batch: int = 100, seed: int = 5150) -> dict:
    """On prompts without a repeated name (the 'abc' corruption: "When A and B went to the P, C gave a O
    to"), logit(C) minus the mean of logit(A) and logit(B) at END, averaged over templates. A model that
    rejects the *repeated* name has no reason to reject C here; a model that rejects the second clause's
    name by its slot does so anyway.

    Chapter 07: circuit discovery (the minimal-circuits problem; the ioi-1l card).
    """
    values = []
    for t in range(len(tasks.IOI_TEMPLATES)):
        b = tasks.ioi(batch, seed=seed + t, template=t, split="test")
        toks = b.corrupt_tokens.to(model.cfg.device)
        logits = model(toks)[:, -1].cpu()
        toks, rows = toks.cpu(), torch.arange(len(toks))
        first = (logits[rows, toks[rows, b.io_pos]] + logits[rows, toks[rows, b.s1_pos]]) / 2
        values.append((logits[rows, toks[rows, b.s2_pos]] - first).mean())
    return {"second_clause_name_logit": round(float(torch.stack(values).mean()), 3)}


def _measure_ioi(model) -> dict:
    """The ioi-3l card: IOI accuracy, third-name prompts, heads. Chapter 04: activation patching."""
    return {**ioi_report(model), **_third_name_report(model), **ioi_heads_report(model)}


def _measure_toy_lm(model) -> dict:
    """The toy-lm card: the ioi-3l measurements plus brackets and facts. Chapters 03, 04 and 06."""
    return {**_measure_ioi(model), **bracket_report(model), **facts_report(model)}


def planted_report(model, batch: int = 48, seed: int = 2024) -> dict:
    """The planted-2l card: accuracy and logit difference on the task, and, by edge patching, the largest
    change of the logit difference when any single edge outside TRUE_EDGES is ablated (0 by construction),
    next to the smallest one inside.

    Chapter 07: circuit discovery.
    """
    clean, corrupted, a, b = planted_pairs(batch, seed)
    rows = torch.arange(batch)

    def metric(lg: Tensor) -> Tensor:
        return (lg[rows, -1, a] - lg[rows, -1, b]).mean()

    g = discovery.build_graph(model)
    edges = g.valid.nonzero().tolist()
    ablate = torch.zeros(len(edges), g.n_senders, g.n_receivers, dtype=torch.bool)
    for v, (s, r) in enumerate(edges):
        ablate[v, s, r] = True
    with torch.no_grad():
        logits = model(clean)
        base = metric(logits)
        effects = torch.cat(
            [(discovery.edge_patch(model, clean, corrupted, part, metric) - base).abs() for part in ablate.split(32)]
        )
    truth = g.mask(TRUE_EDGES)
    inside = torch.tensor([bool(truth[s, r]) for s, r in edges])
    return {
        "task_acc": round(float((logits[:, -1].argmax(-1) == a).float().mean()), 4),
        "task_logit_diff": round(float(base), 3),
        "max_effect_outside_circuit": float(effects[~inside].max()),
        "min_effect_inside_circuit": round(float(effects[inside].min()), 3),
    }


def _measure_ioi_1l(model) -> dict:
    """The ioi-1l card: the ioi-3l measurements and the second-clause test. Chapter 07: circuit discovery."""
    return {**_measure_ioi(model), **second_clause_report(model)}


MEASURES: dict[str, Callable[..., dict]] = {
    "induction-2l": _measure_induction,
    "ioi-1l": _measure_ioi_1l,
    "toy-lm": _measure_toy_lm,
    "ioi-3l": _measure_ioi,
    "planted-2l": planted_report,
}
