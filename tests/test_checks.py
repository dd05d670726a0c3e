"""Every registered check passes the reference, reports a stub as not attempted, and answers a
broken function with a hint instead of a traceback."""

from __future__ import annotations

import pytest
import torch

from tutorial_lib.checks import all_exercises
from tutorial_lib.checks.core import CheckResult, Mismatch, call_student, compare, exercise

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
def test_grade_log_records_results(tmp_path, monkeypatch):
    from tutorial_lib.checks.core import EXERCISES as registry

    log = tmp_path / "log.jsonl"
    monkeypatch.setenv("TUTORIAL_GRADE_LOG", str(log))

    def reference(x):
        return x * 2

    @exercise("99.1", "Double it", reference=reference)
    def check_double(fn):
        compare(call_student(fn, torch.ones(2)), torch.full((2,), 2.0), "the doubled tensor")

    try:
        assert isinstance(check_double(reference), CheckResult)
        assert not check_double(lambda x: x * 3)
        lines = log.read_text().splitlines()
        assert len(lines) == 2 and '"passed"' in lines[0] and '"failed"' in lines[1]
    finally:
        registry.pop("99.1")


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
