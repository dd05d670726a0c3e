"""Checks for chapter 08, lenses and attribution graphs:
`from tutorial_lib.checks import lenses_and_attribution as checks`.

Each check compares the student's function with the reference in `tutorial_lib.lens`,
`tutorial_lib.transcoders` or `tutorial_lib.attribution_graph` on a tiny random model or on toy-lm with its
shipped transcoders, and names the step that is wrong where it can (the read-out without the final norm, the
KL's direction, a lens that does not start at the logit lens, decoder rows off unit norm, an edge without its
source's value, influence without normalising, an explainer without base rates, plain accuracy for
balanced, a silent latent counted as absorbed). The open exercise is checked by a measured property."""

from __future__ import annotations

import functools

import torch
from torch import Tensor

from .. import attribution_graph as AG
from .. import explain as E
from .. import lens
from .. import transcoders as T
from .core import Mismatch, call_student, compare, exercise, random_model

CLOSE = 6  # ")" in the organisms' vocabulary
OPEN_MAX_LATENTS, OPEN_TARGET = 4, -2.0


@functools.cache
def _toy():
    from ..organisms import load

    return load("toy-lm"), T.load_transcoders()[0]


def _tokens(seed: int, batch: int = 3, pos: int = 8, vocab: int = 23) -> Tensor:
    return torch.randint(0, vocab, (batch, pos), generator=torch.Generator().manual_seed(seed))


def _tensor(got, what: str) -> Tensor:
    if not isinstance(got, Tensor):
        raise Mismatch(f"{what} must be a torch tensor, got {type(got).__name__}.")
    return got


# ---- 08.1 the logit lens


@exercise("08.1", "The logit lens", reference=lens.logit_lens)
def check_logit_lens(fn):
    model = random_model(0)
    for seed in range(2):
        with torch.no_grad():
            logits, cache = model.run_with_cache(_tokens(seed))
            want = lens.logit_lens(model, cache)
            got = _tensor(call_student(fn, model, cache), "logit_lens's result")
        if got.shape != want.shape:
            raise Mismatch(
                f"return [n_layers + 1, batch, pos, d_vocab] = {tuple(want.shape)}, got {tuple(got.shape)}: one entry "
                "per block input (blocks.L.hook_resid_pre) and the last block's output (hook_resid_post)."
            )
        unnormed = model.unembed(lens.residual_stack(model, cache))
        if torch.allclose(got, unnormed, atol=1e-4):
            raise Mismatch("apply the final norm (model.ln_final) before the unembedding, as the model does.")
        compare(got[-1], logits, "the last entry (it must equal the model's logits)", atol=1e-4,
                hint="the last entry reads the last block's output, blocks.{n-1}.hook_resid_post.")  # fmt: skip
        compare(got, want, "the logit lens", atol=1e-4, hint="entry l reads blocks.l.hook_resid_pre.")


# ---- 08.2 KL to the final distribution


@exercise("08.2", "KL from the final distribution, per layer", reference=lens.lens_kl)
def check_lens_kl(fn):
    gen = torch.Generator().manual_seed(0)
    for masked in (False, True):
        lens_logits, final = torch.randn(3, 2, 5, 11, generator=gen), torch.randn(2, 5, 11, generator=gen)
        mask = torch.rand(2, 5, generator=gen) < 0.5 if masked else None
        if mask is not None:
            mask[0, 0] = True
        got = _tensor(call_student(fn, lens_logits, final, mask), "lens_kl's result")
        want = lens.lens_kl(lens_logits, final, mask)
        p, q = torch.log_softmax(lens_logits, -1), torch.log_softmax(final, -1)
        reverse = (p.exp() * (p - q)).sum(-1).mean((1, 2)) if mask is None else None
        if reverse is not None and got.shape == want.shape and torch.allclose(got, reverse, atol=1e-5):
            raise Mismatch(
                "KL(lens || final) is the wrong direction: weight by the FINAL distribution's probabilities."
            )
        compare(got, want, f"the KL per layer ({'with' if masked else 'without'} a mask)", atol=1e-5,
                hint="average over the masked positions only: (kl * mask).sum() / mask.sum().")  # fmt: skip


# ---- 08.3 the tuned lens


@exercise("08.3", "Train a tuned lens", reference=lens.train_tuned_lens)
def check_train_tuned_lens(fn):
    model = random_model(0)
    for seed, steps in [(0, 25), (1, 15)]:
        tokens = _tokens(seed, batch=4)
        got = call_student(fn, model, tokens, steps=steps, lr=1e-2, seed=seed)
        if not (isinstance(got, tuple) and len(got) == 2 and isinstance(got[0], lens.TunedLens)):
            raise Mismatch("return (the TunedLens, the list of losses per step).")
        tuned, losses = got
        if len(losses) != steps:
            raise Mismatch(f"return one loss per step: {steps} steps, got {len(losses)} losses.")
        want_lens, want_losses = lens.train_tuned_lens(model, tokens, steps=steps, lr=1e-2, seed=seed)
        compare(float(losses[0]), want_losses[0], "the first loss (the logit lens's summed KL)", atol=1e-4, rtol=1e-3,
                hint="the translators start at zero (TunedLens does that) and the loss sums the per-layer KL over "
                "every layer but the last.")  # fmt: skip
        with torch.no_grad():
            kl_got, kl_want = lens.tuned_lens_kl(model, tuned, tokens), lens.tuned_lens_kl(model, want_lens, tokens)
        compare(kl_got, kl_want, "the trained lens's KL per layer", atol=2e-3, rtol=2e-2,
                hint="one full-batch Adam step per iteration at the given lr; the model's weights stay frozen.")  # fmt: skip


# ---- 08.4 a transcoder


@functools.cache
def _pairs(layer: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    from ..tasks.corpus_text import PAD_ID, corpus_tokens

    model = _toy()[0]
    train, test = corpus_tokens(24, 32, seed=3), corpus_tokens(16, 32, seed=4)
    return (*T.mlp_io(model, train, layer, train != PAD_ID), *T.mlp_io(model, test, layer, test != PAD_ID))


@exercise("08.4", "Train a transcoder", reference=T.train_transcoder)
def check_train_transcoder(fn):
    for layer, seed in [(1, 0), (0, 1)]:
        x, y, xt, yt = _pairs(layer)
        kwargs = {"d_latent": 64, "k": 4, "steps": 150, "batch_size": 128, "lr": 3e-3, "seed": seed}
        got = call_student(fn, x, y, **kwargs)
        if not (isinstance(got, tuple) and len(got) == 2 and isinstance(got[0], T.Transcoder)):
            raise Mismatch("return (the Transcoder, the list of losses per step).")
        tc, losses = got
        if len(losses) != kwargs["steps"] or tc.d_sae != 64:
            raise Mismatch(f"train a Transcoder(d_model, d_latent) for `steps` steps and return one loss per step; "
                           f"got d_latent {tc.d_sae} and {len(losses)} losses.")  # fmt: skip
        norms = tc.W_dec.detach().norm(dim=-1)
        if not torch.allclose(norms, torch.ones_like(norms), atol=1e-3):
            raise Mismatch("the decoder rows must end at unit norm: call tc.normalize_decoder() after each step.")
        if not float(losses[-1]) < 0.6 * float(losses[0]):
            raise Mismatch(f"the loss fell from {losses[0]:.3g} to {losses[-1]:.3g} only: train on the MLP output y "
                           "(not the input x), with b_dec started at y's mean.")  # fmt: skip
        want = T.normalised_mse(T.train_transcoder(x, y, **kwargs)[0], xt, yt)
        got_nmse = T.normalised_mse(tc, xt, yt)
        if not got_nmse <= 1.25 * want + 0.02:
            raise Mismatch(f"held-out normalised MSE {got_nmse:.3f} against the reference's {want:.3f}: follow "
                           "the recipe (Adam, random batches, parallel gradient removed, linear decay at the end).")  # fmt: skip


# ---- 08.5 the logit's incoming edges


@exercise("08.5", "The logit's incoming edges in the frozen model", reference=AG.logit_edges)
def check_logit_edges(fn):
    model, tcs = _toy()
    for prompt in AG.closing_prompts(2, seed=9):
        got = _tensor(call_student(fn, model, tcs, prompt, CLOSE), "logit_edges's result")
        want = AG.logit_edges(model, tcs, prompt, CLOSE)
        if got.shape != want.shape:
            raise Mismatch(f"one edge per source node (active latents, then an error node per (layer, pos), then an "
                           f"embedding node per position): {tuple(want.shape)}, got {tuple(got.shape)}.")  # fmt: skip
        state = AG.clean_state(model, tcs, prompt)
        z = state["z"][state["z"] > 0]
        n = len(z)
        if torch.allclose(got[:n] * z, want[:n], atol=1e-4, rtol=1e-3) and not torch.allclose(got, want, atol=1e-4):
            raise Mismatch(
                "an edge is the gradient TIMES the source's value (the latent's activation), not the gradient."
            )
        compare(got, want, "the logit's incoming edges", atol=1e-4, rtol=1e-3,
                hint="error and embedding edges are (gradient * value) summed over d_model; the gradient runs "
                "through AG.frozen_forward, with patterns and norm scales frozen.")  # fmt: skip


# ---- 08.6 influence


@functools.cache
def _graphs() -> tuple:
    model, tcs = _toy()
    return tuple(AG.attribution_graph(model, tcs, p, CLOSE) for p in AG.closing_prompts(2, seed=8))


@exercise("08.6", "Influence on the logit", reference=AG.influence)
def check_influence(fn):
    for graph in _graphs():
        got = _tensor(call_student(fn, graph), "influence's result")
        want = AG.influence(graph)
        a = graph.adjacency.abs()
        eye = torch.eye(len(a))
        raw = (torch.linalg.solve(eye - a, eye) - eye)[-1] if torch.linalg.matrix_rank(eye - a) == len(a) else None
        if raw is not None and got.shape == want.shape and torch.allclose(got, raw, atol=1e-5):
            raise Mismatch("normalise |A| so that each target's incoming edges sum to 1 before summing paths.")
        compare(got, want, "the influence of every node", atol=1e-5, rtol=1e-4,
                hint="use |adjacency|, normalise its rows, then the logit's (last) row of (I - A)^-1 - I.")  # fmt: skip


# ---- 08.7 predicted ablation effects


@exercise("08.7", "The graph's predicted effect of ablating a latent", reference=AG.predicted_ablation_effects)
def check_predicted_ablation_effects(fn):
    for graph in _graphs():
        nodes = torch.arange(min(6, graph.n_latents))
        got = _tensor(call_student(fn, graph, nodes), "the predicted effects")
        want = AG.predicted_ablation_effects(graph, nodes)
        direct = -(graph.activations * graph.per_unit[-1, : graph.n_latents])[nodes]
        if got.shape == want.shape and torch.allclose(got, -want, atol=1e-4):
            raise Mismatch(
                "ablating a latent REMOVES its contribution: the effect is minus activation times total effect."
            )
        if got.shape == want.shape and torch.allclose(got, direct, atol=1e-4) and not torch.allclose(want, direct):
            raise Mismatch("count every path through later latents, (I - M)^-1, not only the direct edge to the logit.")
        compare(got, want, "the predicted effects", atol=1e-4, rtol=1e-3)


# ---- 08.8 (open) a latent circuit for ")"


@exercise("08.8", "A small latent circuit for ')' (open)", reference=AG.circuit_latents, function_name="find_latents")
def check_find_latents(fn):
    """A measured property, not equality: the student's at most OPEN_MAX_LATENTS latents, zeroed at every
    position, lower the ")" logit by at least |OPEN_TARGET| on average over held-out closing prompts."""
    model, tcs = _toy()
    got = call_student(fn, model, tcs, AG.closing_prompts(4, seed=21), CLOSE, OPEN_MAX_LATENTS)
    if not isinstance(got, list | tuple) or not all(isinstance(p, tuple | list) and len(p) == 2 for p in got):
        raise Mismatch("return a list of (layer, latent index) pairs.")
    pairs = [(int(a), int(b)) for a, b in got]
    if len(pairs) > OPEN_MAX_LATENTS:
        raise Mismatch(f"the budget is {OPEN_MAX_LATENTS} latents, you returned {len(pairs)}.")
    if any(not 0 <= a < len(tcs) or not 0 <= b < tcs[0].d_sae for a, b in pairs):
        raise Mismatch(f"each pair is (layer in [0, {len(tcs)}), index in [0, {tcs[0].d_sae})), got {pairs}.")
    held_out = AG.closing_prompts(8, seed=22)
    effect = torch.cat([AG.ablate_latents(model, tcs, p, pairs, CLOSE) for p in held_out]).mean().item()
    if not effect <= OPEN_TARGET:
        raise Mismatch(f"zeroing your latents moves the ')' logit by {effect:.2f} on held-out prompts; the target "
                       f"is {OPEN_TARGET}. Rank latents by their influence over several prompts' graphs, and keep "
                       "those that recur at the last position.")  # fmt: skip


# ---- 08.9 a rule-based explainer


@functools.cache
def _labelled() -> tuple:
    from ..tasks.corpus_text import PAD_ID, corpus_tokens

    model, tcs = _toy()
    text = corpus_tokens(48, 24, seed=31)
    mask = text != PAD_ID
    acts = torch.cat(T.latent_activations(model, tcs, text), -1)
    return E.token_labels(text, mask), acts, mask


@exercise("08.9", "A rule-based explainer", reference=E.explain_latent)
def check_explain_latent(fn):
    labels, acts, mask = _labelled()
    for j in (95, 10, 51, 256 + 76):  # 10 and 51: the majority label ("a filler word", "a name") is wrong
        where = E.max_activating(acts[..., j], 20, mask)
        got = call_student(fn, labels, where)
        if not isinstance(got, E.Explanation):
            raise Mismatch(f"return an E.Explanation(text=..., label=...), got {type(got).__name__}.")
        want = E.explain_latent(labels, where)
        shown = labels.values[:, where[:, 0], where[:, 1]].float().mean(1)
        if got.label == int(shown.argmax()) and got.label != want.label:
            raise Mismatch(f"you chose '{labels.texts[got.label]}', true at most shown contexts but common everywhere: "
                           "subtract each label's base rate (labels.base_rate) before the argmax.")  # fmt: skip
        if got.label != want.label or got.text != labels.texts[want.label]:
            raise Mismatch(f"for latent {j} the explanation is '{want.text}' (label {want.label}), got "
                           f"'{got.text}' (label {got.label}): label and text must be the same row of the table.")  # fmt: skip


# ---- 08.10 detection scoring


@exercise("08.10", "Detection scoring by balanced accuracy", reference=E.detection_accuracy)
def check_detection_accuracy(fn):
    gen = torch.Generator().manual_seed(0)
    for n_pos, n_neg in [(30, 30), (10, 40)]:
        predicate = torch.rand(6, 12, generator=gen) < 0.5
        where = torch.stack(torch.meshgrid(torch.arange(6), torch.arange(12), indexing="ij"), -1).reshape(-1, 2)
        pick = where[torch.randperm(len(where), generator=gen)]
        positives, negatives = pick[:n_pos], pick[n_pos : n_pos + n_neg]
        got = call_student(fn, predicate, positives, negatives)
        if isinstance(got, Tensor) and got.numel() == 1:
            got = got.item()
        if not isinstance(got, float | int):
            raise Mismatch(f"return a Python float, got {type(got).__name__}.")
        want = E.detection_accuracy(predicate, positives, negatives)
        hits = torch.cat([predicate[positives[:, 0], positives[:, 1]], ~predicate[negatives[:, 0], negatives[:, 1]]])
        if n_pos != n_neg and abs(float(got) - hits.float().mean().item()) < 1e-6 and abs(want - float(got)) > 1e-6:
            raise Mismatch("that is the plain accuracy over all contexts: average the true-positive rate and the "
                           "true-negative rate instead, so that the share of positives does not matter.")  # fmt: skip
        compare(float(got), want, f"the balanced accuracy ({n_pos} positives, {n_neg} negatives)", atol=1e-6,
                hint="the true-negative rate counts the negatives where the predicate does NOT hold.")  # fmt: skip


# ---- 08.11 the absorption rate


@functools.cache
def _absorbed():
    data = E.hierarchical_features(3000, seed=5)
    sae = E.train_hierarchy_sae(data, steps=300, seed=5)
    with torch.no_grad():
        return sae.encode(data.x), sae.W_dec.detach().clone(), data.parent, data.directions[0]


@exercise("08.11", "The absorption rate", reference=E.absorption_rate)
def check_absorption_rate(fn):
    codes, decoder, parent, direction = _absorbed()
    for min_cosine in (0.3, 0.5):
        got = call_student(fn, codes, decoder, parent, direction, min_cosine)
        if not isinstance(got, dict) or not {"main", "rate", "recall"} <= set(got):
            raise Mismatch('return a dict with the keys "main", "rate" and "recall".')
        want = E.absorption_rate(codes, decoder, parent, direction, min_cosine)
        compare(float(got["main"]), want["main"], "the main latent", atol=0,
                hint="the main latent has the highest F1 between its firing (codes > 0) and the parent label.")  # fmt: skip
        compare(float(got["recall"]), want["recall"], "the main latent's recall", atol=1e-6,
                hint="recall: the share of the parent's rows where the main latent fires.")  # fmt: skip
        fires = codes > 0
        main = int(want["main"])
        silent = (parent & ~fires[:, main]).float().mean() / parent.float().mean()
        if abs(float(got["rate"]) - silent.item()) < 1e-6 and abs(want["rate"] - silent.item()) > 1e-6:
            raise Mismatch("a silent main latent is not yet absorption: another ACTIVE latent whose decoder row "
                           "points along the parent (cosine >= min_cosine) must fire on that row.")  # fmt: skip
        compare(float(got["rate"]), want["rate"], f"the absorption rate (min_cosine {min_cosine})", atol=1e-6,
                hint="exclude the main latent itself from the absorbing latents, and divide by the parent's rows.")  # fmt: skip
