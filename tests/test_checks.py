"""Every registered check passes the reference, reports a stub as not attempted, and answers a
broken function with a hint instead of a traceback."""

from __future__ import annotations

import math
import signal
import time

import numpy as np
import pytest
import torch

from tutorial_lib import attribution_graph as AG
from tutorial_lib import hooks
from tutorial_lib.checks import TIME_LIMIT_S, Mutable, all_exercises
from tutorial_lib.checks.core import Mismatch, call_student, compare

EXERCISES = all_exercises()


@pytest.mark.parametrize("ex_id", list(EXERCISES))
def test_reference_passes(ex_id, capsys):
    ex = EXERCISES[ex_id]
    result = ex.check(ex.reference)
    assert result.status == "passed", f"{ex_id}: {result.hint}"
    assert "passed" in capsys.readouterr().out


@pytest.mark.parametrize("ex_id", list(EXERCISES))
def test_stub_is_not_attempted(ex_id, capsys):
    def stub(*_args, **_kwargs):
        raise NotImplementedError("Exercise: write it")

    result = EXERCISES[ex_id].check(stub)
    assert result.status == "not attempted"
    assert "NotImplementedError" in capsys.readouterr().out


@pytest.mark.parametrize("ex_id", list(EXERCISES))
@pytest.mark.parametrize("broken", ["raises", "wrong_shape", "none"])
def test_broken_function_gets_a_hint(ex_id, broken, capsys):
    def fn(*_args, **_kwargs):
        if broken == "raises":
            raise ValueError("oops")
        if broken == "wrong_shape":
            return torch.zeros(3, 1, 7)
        return None

    result = EXERCISES[ex_id].check(fn)  # must not raise
    out = capsys.readouterr().out
    assert result.status == "failed"
    assert "Hint:" in out and "Traceback" not in out
    if broken == "raises":
        assert "ValueError" in result.hint


def test_exercise_ids_are_unique_and_well_formed():
    for ex_id, ex in EXERCISES.items():
        chapter, number = ex_id.split(".")
        assert len(chapter) == 2 and number.isdigit(), ex_id
        assert ex.title and ex.function_name


def test_compare_explains_common_mistakes():
    want = torch.arange(6.0).reshape(2, 3)
    with pytest.raises(Mismatch, match="another order"):
        compare(want.T, want, "x")
    with pytest.raises(Mismatch, match="sign"):
        compare(-want, want, "x")
    with pytest.raises(Mismatch, match="times 2"):
        compare(2 * want, want, "x")
    with pytest.raises(Mismatch, match="NaN"):
        compare(torch.full((2, 3), float("nan")), want, "x")
    with pytest.raises(Mismatch, match="expected a tensor|expected shape"):
        compare([1, 2], want, "x")
    compare(want + 1e-7, want, "x")  # within tolerance: no error


def test_call_student_reports_the_line_that_failed():
    def fn(x):
        return x.nonexistent

    with pytest.raises(Mismatch, match="AttributeError.*line"):
        call_student(fn, torch.zeros(1))
    with pytest.raises(Mismatch, match="without calling it"):
        call_student(42)  # pyright: ignore[reportArgumentType] - the check must answer a non-callable


@pytest.mark.usefixtures("capsys")  # keeps the checks' printed results out of the test log
def _student_path_patch(mistake=None):
    """A student's path patching written with plain hooks, correct or with one of the usual slips."""
    from transformer_lens.utilities import get_act_name  # pyright: ignore[reportPrivateImportUsage]

    def fn(model, clean_tokens, corrupted_tokens, metric, senders, receiver, receiver_input):
        layer, head = receiver
        _, cc = model.run_with_cache(clean_tokens)
        _, xc = model.run_with_cache(corrupted_tokens)

        def freeze(sender_layer):
            def hook(z, hook):  # noqa: ARG001 - TransformerLens calls hooks with hook=
                z = z.clone() if mistake == "unfrozen" else cc[get_act_name("z", sender_layer)].clone()
                for sl, sh in senders:
                    if sl == sender_layer:
                        z[:, :, sh] = xc[get_act_name("z", sl)][:, :, sh]
                return z

            return hook

        name = get_act_name(receiver_input, layer)
        store = {}

        def grab(z, hook):  # noqa: ARG001 - TransformerLens calls hooks with hook=
            store["x"] = z.clone()

        hooks = [(get_act_name("z", sl), freeze(sl)) for sl in range(model.cfg.n_layers)]
        hooks.append((name, grab))
        logits = model.run_with_hooks(clean_tokens, fwd_hooks=hooks)
        if mistake == "first_run":
            return metric(logits).item()

        def put(a, hook):  # noqa: ARG001 - TransformerLens calls hooks with hook=
            a = a.clone()
            if mistake == "whole_layer":
                return store["x"]
            a[:, :, head] = store["x"][:, :, head]
            return a

        return metric(model.run_with_hooks(clean_tokens, fwd_hooks=[(name, put)])).item()

    return fn


@pytest.mark.parametrize(
    "mistake,hint",
    [
        (None, None),
        ("first_run", "path to the logits"),
        ("whole_layer", "every head in layer"),
        ("unfrozen", "freeze every head"),
    ],
)
@pytest.mark.usefixtures("capsys")
def test_path_patching_check_names_the_slip(mistake, hint):
    result = EXERCISES["04.5"].check(_student_path_patch(mistake))
    if mistake is None:
        assert result.status == "passed", result.hint
    else:
        assert result.status == "failed" and hint in result.hint, result.hint


# ---- issue 17: checks that wrongly passed


def test_compare_never_passes_nan_or_inf_unless_the_reference_has_it():
    for bad in (math.nan, math.inf, -math.inf):
        with pytest.raises(Mismatch, match="expected about 0.5"):
            compare(bad, 0.5, "x")
        with pytest.raises(Mismatch, match="NaN or inf"):
            compare(torch.tensor([1.0, bad]), torch.tensor([1.0, 2.0]), "x")
        with pytest.raises(Mismatch, match="NaN or inf"):
            compare(torch.tensor([1.0, bad]), torch.tensor([1, 2]), "x")  # an integer reference too
        with pytest.raises(Mismatch):
            compare((torch.ones(2), bad), (torch.ones(2), 1.0), "x")
        with pytest.raises(Mismatch):
            compare({"first": bad}, {"first": 1.0}, "x")
    compare(math.inf, math.inf, "a documented inf")
    compare(
        torch.tensor([1.0, math.inf, 3.0]), torch.tensor([1.0, math.inf, 3.0 + 1e-7]), "inf where the reference has it"
    )
    with pytest.raises(Mismatch, match="expected inf"):
        compare(1e9, math.inf, "x")
    with pytest.raises(Mismatch, match="NaN or inf"):
        compare(torch.tensor([1.0, -math.inf]), torch.tensor([1.0, math.inf]), "x")
    with pytest.raises(Mismatch, match="whole numbers"):
        compare(torch.tensor([0.5, 1.0]), torch.tensor([0, 1]), "x")
    with pytest.raises(Mismatch, match="expected a number"):
        compare("0.5", 0.5, "x")
    with pytest.raises(Mismatch, match="NumPy"):
        compare(np.ones(3), torch.ones(3), "x")
    compare((torch.ones(2), {"a": 1.0}), (torch.ones(2), {"a": 1.0 + 1e-9}), "containers")


@pytest.mark.usefixtures("capsys")
@pytest.mark.parametrize("ex_id", ["00.4", "02.4", "04.5", "04.7", "05.7", "06.11"])
def test_a_nan_answer_fails(ex_id):
    answer = {"first": math.nan, "repeated": math.nan} if ex_id == "05.7" else math.nan
    assert EXERCISES[ex_id].check(lambda *_a, **_k: answer).status == "failed"


def _loss(model) -> float:
    tokens = torch.randint(0, 23, (3, 9), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return model(tokens, return_type="loss").item()


@pytest.mark.usefixtures("capsys")
def test_a_function_that_changes_its_input_is_named_and_the_shared_model_restored():
    from tutorial_lib.checks.core import random_model
    from tutorial_lib.sae import explained_variance

    def centres_in_place(x, x_hat):
        x -= x.mean(0)  # the caller's x changes: the reference would then agree, and the check used to pass
        return explained_variance(x, x_hat - x_hat.mean(0))

    result = EXERCISES["02.4"].check(centres_in_place)
    assert result.status == "failed" and "changed its input `x` in place" in result.hint, result.hint

    model = random_model(0)
    before = _loss(model)

    def scales_the_embedding(model, tokens, layer, head):
        with torch.no_grad():
            model.W_E.mul_(1.1)
        return hooks.ablate_head_loss(model, tokens, layer, head)

    result = EXERCISES["00.4"].check(scales_the_embedding)
    assert result.status == "failed" and "changed its input `model`" in result.hint, result.hint
    assert _loss(model) == before  # the cached model every check shares is back as it was


def test_call_student_gives_copies_and_mutable_inputs_as_they_are():
    x, y = torch.zeros(3), torch.zeros(3)

    def fill(a, b):
        b.add_(1.0)
        return a

    assert call_student(fill, x, Mutable(y)) is not x  # a copy of x, y itself
    assert torch.equal(y, torch.ones(3)) and torch.equal(x, torch.zeros(3))
    with pytest.raises(Mismatch, match="changed its input `b`"):
        call_student(fill, x, y)
    assert torch.equal(y, torch.ones(3))  # the check's own tensors are never touched


@pytest.mark.usefixtures("capsys")
def test_only_the_stub_is_not_attempted():
    def torch_cannot(logits, _tokens):
        return logits.to_sparse().view(-1)  # torch raises NotImplementedError for sparse views

    def helper_says_not_done(_logits, _tokens):
        def helper():
            raise NotImplementedError("the mask")

        return helper()

    def bare_placeholder(_logits, _tokens):
        raise NotImplementedError

    check = EXERCISES["00.1"].check
    for fn in (torch_cannot, helper_says_not_done):
        result = check(fn)
        assert result.status == "failed" and "NotImplementedError" in result.hint, result.hint
        assert "not from the exercise's stub" in result.hint
    assert check(bare_placeholder).status == "not attempted"


@pytest.mark.usefixtures("capsys")
def test_a_slow_function_is_stopped_at_the_time_limit(monkeypatch):
    assert TIME_LIMIT_S == 20.0  # the stated default, per call
    monkeypatch.setenv("TUTORIAL_CHECK_TIME_LIMIT", "0.2")
    previous = signal.getsignal(signal.SIGALRM)

    def slow(logits, tokens):
        time.sleep(3)
        return hooks.per_token_loss(logits, tokens)

    def stubborn(logits, tokens):  # catches the alarm and carries on
        try:
            time.sleep(3)
        except BaseException:  # noqa: BLE001 - the student's code swallowing everything
            time.sleep(0.1)
        return hooks.per_token_loss(logits, tokens)

    for fn in (slow, stubborn):
        start = time.perf_counter()
        result = EXERCISES["00.1"].check(fn)
        assert time.perf_counter() - start < 2.5
        assert result.status == "failed" and "time limit of 0.2 s" in result.hint, result.hint
    assert signal.getsignal(signal.SIGALRM) == previous
    monkeypatch.setenv("TUTORIAL_CHECK_TIME_LIMIT", "0")  # 0 turns the limit off
    assert EXERCISES["00.1"].check(hooks.per_token_loss).status == "passed"


@pytest.mark.usefixtures("capsys")
def test_a_hook_may_still_edit_its_activation_in_place():
    def in_place(activation, hook, clean_activation, pos):  # noqa: ARG001 - the hook's signature
        activation[:, pos] = clean_activation[:, pos]

    assert EXERCISES["04.2"].check(in_place).status == "passed"


@pytest.mark.parametrize("ex_id", list(EXERCISES)[:3])
def test_or_reference_falls_back_visibly(ex_id, capsys):
    ex = EXERCISES[ex_id]
    assert ex.check(ex.reference).or_reference() is ex.reference

    def stub(*_args, **_kwargs):
        raise NotImplementedError("stub")

    capsys.readouterr()
    chosen = ex.check(stub).or_reference()
    assert chosen is ex.reference
    assert "use the library's reference" in capsys.readouterr().out

    def wrong(*_args, **_kwargs):
        return 12345

    assert ex.check(wrong).or_reference() is ex.reference


def _attention_without_output_bias(model, x, layer):
    from tutorial_lib import forward_pass

    return forward_pass.attention_layer(model, x, layer) - model.blocks[layer].attn.b_O


def _block_without_residual(model, resid_pre, layer):
    from tutorial_lib import forward_pass

    return forward_pass.transformer_block(model, resid_pre, layer) - resid_pre


def _grid_with_flipped_sign(model, tokens):
    from tutorial_lib import hooks

    return -hooks.mean_ablation_grid(model, tokens)


def _grid_of_zero_ablation(model, tokens):
    from tutorial_lib import hooks

    clean = model(tokens, return_type="loss").item()
    return torch.tensor(
        [[hooks.ablate_head_loss(model, tokens, layer, head) - clean for head in range(model.cfg.n_heads)]
         for layer in range(model.cfg.n_layers)]
    )  # fmt: skip


@pytest.mark.usefixtures("capsys")
@pytest.mark.parametrize(
    "ex_id,broken,hint",
    [
        ("00.6", _attention_without_output_bias, "output bias"),
        ("00.7", _block_without_residual, "residual stream is missing"),
        ("00.8", _grid_with_flipped_sign, "sign is flipped"),
        ("00.8", _grid_of_zero_ablation, "zero-ablation"),
        ("00.9", lambda *_: [(1, 1)], "leaves"),
    ],
)
def test_chapter_00_checks_name_the_mistake(ex_id, broken, hint):
    result = EXERCISES[ex_id].check(broken)
    assert result.status == "failed" and hint in result.hint, result.hint


def _train_without_seeded_generator(model, steps, batch_size, lr, seed=0, log_every=0):  # noqa: ARG001
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    history = []
    for step in range(steps):
        loss = model.loss(model.generate_batch(batch_size))
        opt.zero_grad()
        loss.sum().backward()
        opt.step()
        if log_every and (step % log_every == 0 or step == steps - 1):
            history.append(loss.detach())
    return torch.stack(history) if history else loss.detach()[None]


def _train_on_a_copy(model, steps, batch_size, lr, seed=0, log_every=0):
    import copy

    from tutorial_lib import superposition as sp

    return sp.train(copy.deepcopy(model), steps, batch_size, lr, seed, log_every)


def _unpacked(*_):
    W = torch.zeros(20, 5)
    W[torch.arange(5), torch.arange(5)] = 1.0
    return W, torch.zeros(20), 0.01


@pytest.mark.usefixtures("capsys")
@pytest.mark.parametrize(
    "ex_id,broken,hint",
    [
        ("01.4", _train_without_seeded_generator, "generate_batch(batch_size, g)"),
        ("01.4", _train_on_a_copy, "weights did not change"),
        ("01.5", _unpacked, "at least 10"),
        ("01.5", lambda: (torch.randn(20, 5), torch.zeros(20), 0.5), "between 0.001 and 0.1"),
    ],
)
def test_chapter_01_checks_name_the_mistake(ex_id, broken, hint):
    result = EXERCISES[ex_id].check(broken)
    assert result.status == "failed" and hint in result.hint, result.hint


def _directions_not_orthogonal(X, direction, n=8, k=8, seed=0):
    centred = X - X.mean(0)
    basis = torch.linalg.svd(centred, full_matrices=False).Vh[:k]
    cand = torch.randn(64 * n, basis.shape[0], generator=torch.Generator().manual_seed(seed)) @ basis
    cand = cand / cand.norm(dim=-1, keepdim=True)
    target = (centred @ (direction / direction.norm())).var()
    return cand[((centred @ cand.T).var(0) - target).abs().argsort()[:n]]


def _code_length_in_nats(X, y, n_classes, fractions=(0.05, 0.1, 0.2, 0.4, 0.7, 1.0), seed=0):
    import math

    from tutorial_lib import probing

    out = probing.online_code_length(X, y, n_classes, fractions, seed)
    return {**out, "online": out["online"] * math.log(2)}


# ---- chapter 02's build-it exercises: each typical mistake gets the hint that names it


def _train_topk_variant(skip: str):
    """train_topk with one step left out (`skip`), for the 02.6 hints."""
    from tutorial_lib import sae as S

    def fn(sae, data, steps, *, batch_size=256, lr=2e-3, dead_window=50, aux_coeff=1 / 32, seed=0):
        gen = torch.Generator().manual_seed(seed)
        opt = torch.optim.Adam(sae.parameters(), lr=lr)
        since = torch.zeros(sae.d_sae, dtype=torch.long)
        with torch.no_grad():
            sae.b_dec.copy_(data.mean(0))
        sae.normalize_decoder()
        out_losses = []
        for _ in range(steps):
            x = data[torch.randint(0, data.shape[0], (batch_size,), generator=gen)]
            dead = since >= dead_window if skip != "auxk" else None
            out = sae.loss(x, dead=dead, aux_coeff=aux_coeff)
            opt.zero_grad()
            out.loss.backward()
            if skip != "parallel":
                sae.remove_parallel_grad()
            opt.step()
            if skip != "normalize":
                sae.normalize_decoder()
            since += 1
            since[out.fired] = 0
            out_losses.append(out.mse.item())
        return out_losses

    assert S.SAE  # the variants train the check's own SAE
    return fn


@pytest.mark.usefixtures("capsys")
@pytest.mark.parametrize(
    "ex_id,broken,hint",
    [
        ("03.7", _directions_not_orthogonal, "orthogonal"),
        ("03.8", _code_length_in_nats, "nats"),
        ("03.9", lambda model, *_: torch.zeros(model.cfg.d_model), "needs > 0.5"),
        ("03.9", lambda model, *_: torch.ones(model.cfg.d_model) * 100, "budget"),
    ],
)
def test_chapter_03_checks_name_the_mistake(ex_id, broken, hint):
    result = EXERCISES[ex_id].check(broken)
    assert result.status == "failed" and hint in result.hint, result.hint


@pytest.mark.usefixtures("capsys")
@pytest.mark.parametrize(
    ("skip", "named"),
    [("normalize", "unit norm"), ("parallel", "parallel"), ("auxk", "AuxK")],
)
def test_02_6_names_the_missing_step(skip, named):
    result = EXERCISES["02.6"].check(_train_topk_variant(skip))
    assert result.status == "failed" and named in result.hint, result.hint


@pytest.mark.usefixtures("capsys")
def test_02_7_names_unnormalised_rows_and_a_matching_that_shares_rows():
    import torch.nn.functional as F

    def raw(learned, true):
        d = true @ learned.T
        return {"mmcs": float(d.max(1).values.mean()), "mcc": float(d.max(1).values.mean())}

    def shares(learned, true):
        c = F.normalize(true, dim=1) @ F.normalize(learned, dim=1).T
        return {"mmcs": float(c.max(1).values.mean()), "mcc": float(c.max(1).values.mean())}

    assert "normalise" in EXERCISES["02.7"].check(raw).hint
    assert "only one true feature" in EXERCISES["02.7"].check(shares).hint


@pytest.mark.usefixtures("capsys")
def test_02_8_names_zero_ablation_and_an_inverted_fraction():
    from tutorial_lib import sae as S

    def vs_zero(model, sae, tokens, hook_name):
        return S.loss_recovered(model, sae, tokens, hook_name)["recovered_vs_zero"]

    def inverted(model, sae, tokens, hook_name):
        return 1 - S.recovered_vs_mean(model, sae, tokens, hook_name)

    assert "zero ablation" in EXERCISES["02.8"].check(vs_zero).hint
    assert "upside down" in EXERCISES["02.8"].check(inverted).hint


@pytest.mark.usefixtures("capsys")
def test_02_10_measures_the_property():
    from tutorial_lib import sae as S

    def too_dense(acts):
        sae = S.TopKSAE(64, 256, k=8, seed=0)
        S.train_sae(sae, acts, steps=20, batch_size=1024, lr=5e-3)
        return sae

    result = EXERCISES["02.10"].check(too_dense)
    assert result.status == "failed" and "L0 8.0" in result.hint, result.hint


def test_student_heads_names_what_is_wrong_with_a_search_result():
    from tutorial_lib.checks.core import Mismatch, random_model, student_heads

    model = random_model(0)  # 2 layers x 4 heads
    assert student_heads([(1, 2), (torch.tensor(0), 3)], model, "x") == [(1, 2), (0, 3)]
    for bad, says in [(5, "pairs"), ([(0, 1)] * 2, "different"), ([(0, 1), (1, 1), (1, 2)], "one to 2"),
                      ([(2, 0)], "not heads")]:  # fmt: skip
        with pytest.raises(Mismatch, match=says):
            student_heads(bad, model, "x")


def _claimed(g, hyp) -> torch.Tensor:
    mask = torch.zeros_like(g.valid)
    for receiver, claims in hyp.items():
        for sender in claims:
            mask[g.edge(sender, receiver)] = True
    return mask


def _scrub_only_claimed(model, tokens, pool, hyp, seed=0):
    from tutorial_lib import discovery as D

    repl, ablate = D.scrub_replacement(model, tokens, pool, hyp, seed)
    return repl, ablate & _claimed(D.build_graph(model), hyp)


def _scrub_ignoring_claims(model, tokens, pool, hyp, seed=0):
    from tutorial_lib import discovery as D

    return D.scrub_replacement(model, tokens, pool, hyp, seed, claimed=False)


def _scrub_every_receiver(model, tokens, pool, hyp, seed=0):
    from tutorial_lib import discovery as D

    repl, _ = D.scrub_replacement(model, tokens, pool, hyp, seed)
    return repl, D.build_graph(model).valid.clone()


def _scrub_one_prompt_for_all_positions(model, tokens, pool, hyp, seed=0):
    """Draws per position but keeps every position's output from the last position's prompt."""
    from tutorial_lib import discovery as D

    repl, ablate = D.scrub_replacement(model, tokens, pool, hyp, seed)
    return repl[:, -1:].expand_as(repl).clone(), ablate


@pytest.mark.parametrize(
    ("broken", "hint"),
    [
        (_scrub_only_claimed, "every OTHER edge"),
        (_scrub_ignoring_claims, "drew its prompt unconstrained"),
        (_scrub_every_receiver, "does not name clean"),
        (_scrub_one_prompt_for_all_positions, "at position p only"),
    ],
)
def test_chapter_07_scrubbing_check_names_the_mistake(broken, hint):
    result = EXERCISES["07.9"].check(broken)
    assert result.status == "failed" and hint in result.hint, result.hint


def _lens_without_final_norm(model, cache):
    from tutorial_lib import lens

    return model.unembed(lens.residual_stack(model, cache))


def _kl_lens_final(lens_logits, final_logits):
    p, q = torch.log_softmax(lens_logits, -1), torch.log_softmax(final_logits, -1)
    return (p.exp() * (p - q)).sum(-1).mean((1, 2))


def _edges_without_values(model, transcoders, tokens, token):
    state = AG.clean_state(model, transcoders, tokens)
    edges = AG.logit_edges(model, transcoders, tokens, token).clone()
    z = state["z"][state["z"] > 0]
    edges[: len(z)] /= z
    return edges


def _unnormalised_influence(graph):
    a = graph.adjacency.abs()
    eye = torch.eye(len(a))
    return (torch.linalg.solve(eye - a, eye) - eye)[-1]


def _influence_without_abs(graph):
    a = graph.adjacency
    a = a / a.sum(1, keepdim=True).clamp_min(1e-12)
    eye = torch.eye(len(a))
    return (torch.linalg.solve(eye - a, eye) - eye)[-1]


def _direct_effects_only(graph, nodes):
    return -(graph.activations * graph.per_unit[-1, : graph.n_latents])[nodes]


def _transcoder_without_renormalising(x, y, **kwargs):
    from tutorial_lib import transcoders as T

    tc, losses = T.train_transcoder(x, y, **kwargs)
    with torch.no_grad():
        tc.W_dec.mul_(1.5)
    return tc, losses


def _explainer_without_base_rate(labels, where):
    from tutorial_lib import explain as E

    best = int(labels.values[:, where[:, 0], where[:, 1]].float().mean(1).argmax())
    return E.Explanation(text=labels.texts[best], label=best)


def _plain_accuracy(predicate, positives, negatives):
    hits = torch.cat([predicate[positives[:, 0], positives[:, 1]], ~predicate[negatives[:, 0], negatives[:, 1]]])
    return hits.float().mean().item()


def _silent_counted_as_absorbed(codes, decoder, parent, parent_direction, min_cosine=0.3):
    from tutorial_lib import explain as E

    out = E.absorption_rate(codes, decoder, parent, parent_direction, min_cosine)
    silent = parent & ~(codes[:, int(out["main"])] > 0)
    return {**out, "rate": float(silent.sum() / parent.sum())}


@pytest.mark.usefixtures("capsys")
@pytest.mark.parametrize(
    "ex_id,broken,hint",
    [
        ("08.1", _lens_without_final_norm, "final norm"),
        (
            "08.2",
            lambda lens_logits, final_logits, _mask=None: _kl_lens_final(lens_logits, final_logits),
            "wrong direction",
        ),
        ("08.4", _transcoder_without_renormalising, "unit norm"),
        ("08.5", _edges_without_values, "TIMES the source's value"),
        ("08.6", _unnormalised_influence, "normalise"),
        ("08.6", _influence_without_abs, "|adjacency|"),
        ("08.7", lambda graph, nodes: -AG.predicted_ablation_effects(graph, nodes), "REMOVES"),
        ("08.7", _direct_effects_only, "every path"),
        ("08.8", lambda *_: [(0, 0), (0, 1)], "target"),
        ("08.9", _explainer_without_base_rate, "base rate"),
        ("08.10", _plain_accuracy, "plain accuracy"),
        ("08.11", _silent_counted_as_absorbed, "ACTIVE latent"),
    ],
)
def test_chapter_08_checks_name_the_mistake(ex_id, broken, hint):
    result = EXERCISES[ex_id].check(broken)
    assert result.status == "failed" and hint in result.hint, result.hint
