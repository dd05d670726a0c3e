"""Checks for chapter 07, circuit discovery: `from tutorial_lib.checks import circuit_discovery as checks`.

The student writes each method plainly (one patched forward per tried edge, one gradient per run); each check
compares it with the batched kernel in `tutorial_lib.discovery` on a tiny random model or the planted organism.
The references live in the kernel, each with its exercise id in its docstring."""

from __future__ import annotations

import functools

import torch
from torch import Tensor

from .. import discovery as D
from .activation_patching import logit_diff_metric, prompt_pair
from .core import Mismatch, call_student, compare, exercise, random_model

OPEN_MAX_EDGES, OPEN_TARGET = 40, 0.6


@functools.cache
def _model(attn_only: bool = True):
    """A tiny random model in double precision (ACDC's decisions must not hang on float rounding)."""
    return random_model(0, attn_only=attn_only).double()


def _pair(seed: int, batch: int = 3, pos: int = 6) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    return prompt_pair(seed, batch, pos, base=700)


def _as_tensor(got, what: str) -> Tensor:
    if not isinstance(got, Tensor):
        raise Mismatch(f"{what} must be a tensor, got {type(got).__name__}.")
    return got


def _edge_sets(g, seed: int, n: int = 3) -> Tensor:
    gen = torch.Generator().manual_seed(seed)
    return (torch.rand(n, g.n_senders, g.n_receivers, generator=gen) < 0.3) & g.valid


# ---- 07.1 edge patching


@exercise("07.1", "Edge patching: the metric with a set of edges corrupted", reference=D.edge_patch)
def check_edge_patch(fn):
    model = _model(False)
    g = D.build_graph(model)
    for seed in range(2):
        clean, corrupted, correct, wrong = _pair(seed)
        ablate = _edge_sets(g, seed)
        got = _as_tensor(
            call_student(fn, model, clean, corrupted, ablate, logit_diff_metric(correct, wrong)), "edge_patch's result"
        )
        want = D.edge_patch(model, clean, corrupted, ablate, logit_diff_metric(correct, wrong))
        if got.shape != want.shape:
            raise Mismatch(f"return one metric value per edge set: shape {tuple(want.shape)}, got {tuple(got.shape)}.")
        logits, _ = D.run_edges(model, clean, corrupted, ~ablate & g.valid)
        flipped = torch.stack([logit_diff_metric(correct, wrong)(lg) for lg in logits])
        if torch.allclose(got.double(), flipped.double(), atol=1e-5) and not torch.allclose(
            got.double(), want.double()
        ):
            raise Mismatch("you corrupted every edge *outside* each set: `ablate[v]` marks the edges to corrupt.")
        compare(got.double(), want.double(), "the metric of each edge set", atol=1e-5,
                hint="run D.run_edges(model, tokens, replacement, ablate) once and apply the metric to each "
                "variant's logits (logits[v] is [batch, pos, d_vocab]).")  # fmt: skip


# ---- 07.2 the ACDC loop


@exercise("07.2", "The ACDC loop", reference=D.acdc)
def check_acdc(fn):
    model = _model(True)
    g = D.build_graph(model)
    clean, corrupted, _, _ = _pair(0, batch=3, pos=5)
    logits, _ = D.run_edges(model, clean, corrupted, torch.stack([~g.valid, g.valid]))
    scale = float(D.kl_to(logits[0])(logits[1]))
    threshold = 0.02 * scale
    got = call_student(fn, model, clean, corrupted, threshold)
    if not isinstance(got, D.ACDCResult):
        raise Mismatch(
            f"return a D.ACDCResult(kept, scores, distance, threshold, n_forwards), got {type(got).__name__}."
        )
    want = D.acdc(model, clean, corrupted, threshold)
    kept = _as_tensor(got.kept, "kept")
    if kept.shape != want.kept.shape or kept.dtype != torch.bool:
        raise Mismatch(f"kept must be a bool mask [sender, receiver] = {tuple(want.kept.shape)}.")
    if int(kept.sum()) == 0 and want.n_edges > 0:
        raise Mismatch(
            "you removed every edge: remove an edge only when the distance rises by LESS than the threshold."
        )
    if torch.equal(kept, g.valid) and want.n_edges < g.n_edges:
        raise Mismatch("you kept every edge: compare the distance *increase* (new - current) with the threshold, and "
                       "keep the edge removed (update the current ablation) when it is below.")  # fmt: skip
    if not torch.equal(kept, want.kept):
        wrong = g.edge_names(kept ^ want.kept)[:3]
        raise Mismatch(
            f"your circuit differs from ACDC's on {wrong}. Visit the receivers from the logits backwards "
            "(reversed stage order, each stage's receivers reversed) and each receiver's senders latest first, "
            "and measure each trial with the edges removed so far still removed."
        )
    compare(float(got.distance), float(want.distance), "the final distance", atol=1e-6)


# ---- 07.3 EAP


@exercise("07.3", "Edge attribution patching", reference=D.eap_scores)
def check_eap_scores(fn):
    model = _model(False)
    for seed in range(2):
        clean, corrupted, correct, wrong = _pair(seed)
        metric = logit_diff_metric(correct, wrong)
        got = _as_tensor(call_student(fn, model, clean, corrupted, metric), "eap_scores' result")
        want = D.eap_scores(model, clean, corrupted, metric)
        if got.shape != want.shape:
            raise Mismatch(
                f"return one score per (sender, receiver): shape {tuple(want.shape)}, got {tuple(got.shape)}."
            )
        if torch.allclose(got.double(), -want.double(), atol=1e-5) and want.abs().max() > 1e-6:
            raise Mismatch("your scores have the wrong sign: the difference is clean minus corrupted sender outputs.")
        compare(got.double(), want.double(), "the EAP scores", atol=1e-5,
                hint="take the gradient on the CORRUPTED run (D.receiver_gradients(model, corrupted, metric)[0]), sum the "
                "dot product with (clean - corrupted) sender outputs over batch, positions and d_model, and zero "
                "the entries off the graph (g.valid).")  # fmt: skip


# ---- 07.4 faithfulness


@exercise("07.4", "Faithfulness of a circuit", reference=D.faithfulness)
def check_faithfulness(fn):
    model = _model(False)
    g = D.build_graph(model)
    clean, corrupted, correct, wrong = _pair(1)
    metric = logit_diff_metric(correct, wrong)
    circuits = _edge_sets(g, 3)
    got = _as_tensor(call_student(fn, model, clean, corrupted, metric, circuits), "faithfulness' result")
    want = D.faithfulness(model, clean, corrupted, metric, circuits)
    if got.shape != want.shape:
        raise Mismatch(f"return one number per circuit: shape {tuple(want.shape)}, got {tuple(got.shape)}.")
    inverted = D.faithfulness(model, clean, corrupted, metric, g.valid & ~circuits)
    if torch.allclose(got.double(), inverted.double(), atol=1e-4):
        raise Mismatch(
            "you ablated the circuit itself: ablate every valid edge OUTSIDE the circuit (g.valid & ~circuit)."
        )
    if torch.allclose(got.double(), 1 - want.double(), atol=1e-4):
        raise Mismatch("you returned 1 - faithfulness: normalise as (circuit - corrupted) / (clean - corrupted).")
    compare(got.double(), want.double(), "the faithfulness of each circuit", atol=1e-4,
            hint="the clean run has no edge ablated, the corrupted run every valid edge; the circuit's run ablates "
            "g.valid & ~circuit.")  # fmt: skip
    single = _as_tensor(call_student(fn, model, clean, corrupted, metric, circuits[0]), "faithfulness of one circuit")
    compare(single.double().reshape(()), want[0].double(), "the faithfulness of one [sender, receiver] circuit",
            atol=1e-4, hint="a single circuit [S, R] gives a single number (add a variant axis, then remove it).")  # fmt: skip


# ---- 07.5 ROC


@exercise("07.5", "ROC curve of an edge ranking", reference=D.roc_curve)
def check_roc_curve(fn):
    cases = [
        (torch.tensor([0.9, 0.1, 0.8, 0.3, 0.2]), torch.tensor([True, False, True, False, False])),
        (torch.tensor([0.5, 0.7, 0.2, 0.9, 0.4, 0.6]), torch.tensor([False, True, True, False, False, True])),
        (torch.tensor([1.0, 1.0, 0.0, 0.5]), torch.tensor([True, False, False, True])),  # a tie
    ]
    for scores, truth in cases:
        got = call_student(fn, scores, truth)
        if not (isinstance(got, tuple) and len(got) == 2):
            raise Mismatch("return a pair (false positive rates, true positive rates).")
        fpr, tpr = _as_tensor(got[0], "fpr"), _as_tensor(got[1], "tpr")
        want_f, want_t = D.roc_curve(scores, truth)
        if fpr.numel() and (float(fpr[0]) != 0 or float(tpr[0]) != 0):
            raise Mismatch("start the curve at (0, 0): nothing ranked above the first threshold.")
        if (
            fpr.numel() == want_f.numel()
            and torch.allclose(fpr.double(), want_t, atol=1e-6)
            and not torch.allclose(tpr.double(), want_t, atol=1e-6)
        ):
            raise Mismatch("you swapped the axes: return (false positive rate, true positive rate).")
        compare((fpr.double(), tpr.double()), (want_f, want_t), "the ROC curve", atol=1e-6,
                hint="sort by score, highest first; the cumulative count of true edges over their total is the TPR, of "
                "other edges over theirs the FPR; tied scores form one step (keep the last point of each tie).")  # fmt: skip


# ---- 07.6 EAP-IG


@exercise("07.6", "EAP with integrated gradients", reference=D.eap_ig_scores)
def check_eap_ig_scores(fn):
    model = _model(False)
    clean, corrupted, correct, wrong = _pair(2)
    metric = logit_diff_metric(correct, wrong)
    for steps in (1, 3):
        got = _as_tensor(call_student(fn, model, clean, corrupted, metric, steps), "eap_ig_scores' result")
        want = D.eap_scores(model, clean, corrupted, metric, ig_steps=steps)
        if got.shape != want.shape:
            raise Mismatch(
                f"return one score per (sender, receiver): shape {tuple(want.shape)}, got {tuple(got.shape)}."
            )
        if steps > 1 and torch.allclose(
            got.double(), D.eap_scores(model, clean, corrupted, metric).double(), atol=1e-6
        ):
            raise Mismatch(
                "your scores equal plain EAP's: average the gradients over the ig_steps interpolated inputs."
            )
        compare(got.double(), want.double(), f"the EAP-IG scores with {steps} steps", atol=1e-5,
                hint="interpolate the embedding (sender 0) at alpha = k / ig_steps for k = 0 .. ig_steps - 1 (alpha = 0 "
                "is the corrupted input), average D.receiver_gradients over those points, then score as in EAP.")  # fmt: skip


# ---- 07.7 bootstrap interval


@exercise("07.7", "A bootstrap confidence interval", reference=D.bootstrap_ci)
def check_bootstrap_ci(fn):
    g = torch.Generator().manual_seed(7)
    for values in (torch.randn(30, generator=g) + 2.0, torch.rand(12, generator=g)):
        got = call_student(fn, values, 500, 0.9, 3)
        if not (isinstance(got, tuple) and len(got) == 3):
            raise Mismatch("return a tuple (estimate, low, high) of floats.")
        want = D.bootstrap_ci(values, 500, 0.9, 3)
        est, low, high = (float(x) for x in got)
        if abs(est - want[0]) > 1e-6:
            raise Mismatch(
                f"the estimate is the statistic of the original values (their mean, {want[0]:.3f}), got {est:.3f}."
            )
        if not low <= est <= high:
            raise Mismatch("the interval must contain the estimate: low <= estimate <= high.")
        compare((low, high), (want[1], want[2]), "the interval", atol=1e-6,
                hint="resample prompt indices with torch.randint(n, (n_boot, n), generator=torch.Generator()."
                "manual_seed(seed)), take each resample's mean, then torch.quantile at (1 - level) / 2 and "
                "1 - (1 - level) / 2.")  # fmt: skip


# ---- 07.8 (open) a small faithful circuit on ioi-3l


def _ioi_case(seed: int):
    from .. import organisms, tasks

    model = organisms.load("ioi-3l")
    batch = tasks.ioi(batch=40, seed=seed, corruption="abc")
    clean, corrupted = batch.tokens, model.to_tokens(batch.corrupt_prompts)
    io = torch.tensor([model.to_single_token(a) for a in batch.answers])
    s = torch.tensor([model.to_single_token(a) for a in batch.wrong_answers])
    return model, clean, corrupted, logit_diff_metric(io, s)


@exercise("07.8", "A small faithful circuit on ioi-3l (open)", reference=D.eap_circuit, function_name="find_circuit")
def check_find_circuit(fn):
    """A measured property, not equality: on ioi-3l (prompts of a seed the notebook does not use) the student's
    circuit has at most OPEN_MAX_EDGES edges and a faithfulness of at least OPEN_TARGET."""
    model, clean, corrupted, metric = _ioi_case(seed=11)
    g = D.build_graph(model)
    got = _as_tensor(call_student(fn, model, clean, corrupted, metric, OPEN_MAX_EDGES), "the circuit")
    if got.shape != g.valid.shape or got.dtype != torch.bool:
        raise Mismatch(
            f"return a bool mask [sender, receiver] = {tuple(g.valid.shape)}, got {got.dtype} {tuple(got.shape)}."
        )
    circuit = got & g.valid
    if int(circuit.sum()) > OPEN_MAX_EDGES:
        raise Mismatch(f"your circuit has {int(circuit.sum())} edges; the budget is {OPEN_MAX_EDGES}.")
    value = float(D.faithfulness(model, clean, corrupted, metric, circuit))
    if not value >= OPEN_TARGET:
        raise Mismatch(
            f"your {int(circuit.sum())}-edge circuit recovers {value:.2f} of the logit difference; the target is "
            f"{OPEN_TARGET}. Rank edges by a method that sees through saturated attention (EAP-IG, or ACDC), and "
            "keep the edges INTO the heads you keep as well as out of them: a head with no inputs carries nothing."
        )


# ---- 07.9 a causal-scrubbing step

SCRUB_HYPOTHESES = [
    {"a1.0.k": {"a0.1": (-1,)}, "a1.0.q": {"embed": (0,)}},
    {"a1.2.v": {"embed": (0,), "a0.3": (-2, 0)}, "logits": {"a1.2": ()}},
]


def _scrub_answer(got, want_repl: Tensor) -> tuple[Tensor, Tensor]:
    if not (isinstance(got, tuple) and len(got) == 2):
        raise Mismatch(
            "return a pair (replacement [batch, pos, sender, receiver, d_model], ablate [sender, receiver])."
        )
    repl, ablate = _as_tensor(got[0], "the replacement"), _as_tensor(got[1], "ablate")
    if ablate.dtype != torch.bool or ablate.shape != want_repl.shape[2:4]:
        raise Mismatch(f"ablate must be a bool mask [sender, receiver] = {tuple(want_repl.shape[2:4])}, "
                       f"got {ablate.dtype} {tuple(ablate.shape)}.")  # fmt: skip
    if repl.shape != want_repl.shape:
        raise Mismatch(f"the replacement must be [batch, pos, sender, receiver, d_model] = {tuple(want_repl.shape)}, "
                       f"got {tuple(repl.shape)}: one sender output per edge, position and prompt.")  # fmt: skip
    if not bool(torch.isfinite(repl).all()):
        raise Mismatch("the replacement holds NaN or inf; fill the entries of edges you do not scrub with zeros.")
    return repl.double(), ablate


def _check_scrub_ablate(g, hyp, ablate: Tensor, want: Tensor) -> None:
    """Names the edges scrubbed that should stay clean, or left clean that should be scrubbed."""
    extra, missing = ablate & ~want, want & ~ablate
    if bool(extra.any()):
        outside = [e for e in g.edge_names(extra) if e.split("->")[1] not in hyp]
        if outside:
            raise Mismatch(f"you scrubbed {outside[:2]}: leave every receiver the hypothesis does not name clean "
                           f"(here only {list(hyp)} are scrubbed).")  # fmt: skip
        raise Mismatch(f"you scrubbed {g.edge_names(extra)[:2]}, which are not edges of the graph (graph.valid).")
    if bool(missing.any()):
        claimed = torch.zeros_like(want)
        for r, claims in hyp.items():
            for s in claims:
                claimed[g.edge(s, r)] = True
        if not bool((missing & claimed).any()):
            raise Mismatch(f"you left {g.edge_names(missing)[:2]} clean: every OTHER edge into a receiver the "
                           "hypothesis names is scrubbed too, from a random prompt (the hypothesis says that part of "
                           f"the input does not matter). Named receivers: {list(hyp)}.")  # fmt: skip
        raise Mismatch(f"you left the claimed edges {g.edge_names(missing & claimed)[:2]} clean: a claimed edge "
                       "takes its sender's output from a prompt of its equivalence class, not the clean one.")  # fmt: skip


def _check_scrub_values(g, hyp, repl: Tensor, want: Tensor, unclaimed: Tensor, ablate: Tensor) -> None:
    """Compares the replacement edge by edge, naming claimed and unclaimed edges apart."""
    for s, r in ablate.nonzero().tolist():
        if torch.allclose(repl[:, :, s, r], want[:, :, s, r], atol=1e-6):
            continue
        edge = f"{g.senders[s]}->{g.receivers[r]}"
        offsets = hyp.get(g.receivers[r], {}).get(g.senders[s])
        if offsets is None:
            raise Mismatch(f"{edge} is not claimed: it takes {g.senders[s]}'s output on a random pool prompt "
                           "(with this check's pool of ONE prompt, on that prompt), at every position.")  # fmt: skip
        if torch.allclose(repl[:, :, s, r], unclaimed[:, :, s, r], atol=1e-6):
            raise Mismatch(f"{edge} is claimed to read the tokens at offsets {offsets}, but you drew its prompt "
                           "unconstrained: the prompt drawn for position p must hold the clean prompt's tokens at "
                           "p + o for each offset o (where inside the prompt; o = -1 is the token BEFORE p, and a token after p "
                           "is one position p cannot see).")  # fmt: skip
        raise Mismatch(f"{edge}'s replacement is wrong (offsets {offsets}). For each position p: draw a pool prompt, "
                       "set its tokens at p + o to the clean prompt's (o = -1 is the token before p), run the senders "
                       "on it, and keep THEIR output at position p only.")  # fmt: skip


@exercise("07.9", "A causal-scrubbing step: the replacement a hypothesis allows", reference=D.scrub_replacement)
def check_scrub_replacement(fn):
    """With a pool of ONE prompt every draw is that prompt, so the replacement is fixed whatever order the student
    draws in: compared exactly, edge by edge. Then a larger pool: claiming every token must give the clean outputs."""
    model = _model(True)
    g = D.build_graph(model)
    for seed, hyp in enumerate(SCRUB_HYPOTHESES):
        gen = torch.Generator().manual_seed(40 + seed)
        tokens, pool = (
            torch.randint(model.cfg.d_vocab, (3, 6), generator=gen),
            torch.randint(model.cfg.d_vocab, (1, 6), generator=gen),
        )
        want, want_ablate = D.scrub_replacement(model, tokens, pool, hyp, seed=seed)
        repl, ablate = _scrub_answer(call_student(fn, model, tokens, pool, hyp, seed), want)
        _check_scrub_ablate(g, hyp, ablate, want_ablate)
        unclaimed, _ = D.scrub_replacement(model, tokens, pool, hyp, seed=seed, claimed=False)
        _check_scrub_values(g, hyp, repl, want.double(), unclaimed.double(), want_ablate)
    gen = torch.Generator().manual_seed(50)
    tokens, pool = (
        torch.randint(model.cfg.d_vocab, (2, 6), generator=gen),
        torch.randint(model.cfg.d_vocab, (8, 6), generator=gen),
    )
    everything = tuple(range(-6, 6))
    hyp = {"a1.1.k": {"embed": everything, "a0.2": everything}}
    want, _ = D.scrub_replacement(model, tokens, pool, hyp, seed=3)
    repl, _ = _scrub_answer(call_student(fn, model, tokens, pool, hyp, 3), want)
    clean = D.sender_outputs(model, tokens).double()
    r = g.receivers.index("a1.1.k")
    for s in (0, g.senders.index("a0.2")):
        if not torch.allclose(repl[:, :, s, r], clean[:, :, s], atol=1e-6):
            raise Mismatch(f"a hypothesis claiming EVERY token of {g.senders[s]}->a1.1.k must leave that edge's clean "
                           "output: set the drawn prompt's tokens at every claimed position to the clean prompt's, "
                           "and draw one prompt per position from the pool (8 prompts here).")  # fmt: skip
