"""What the grader reads from a cell without running it: check calls (also with `.or_reference()`)
and definitions (which leave check calls out)."""

from __future__ import annotations

from tutorial_lib.grading.statements import CheckCall, check_calls, definitions


def test_check_calls_in_every_form():
    source = "_ = checks.check_a(f)\nchecks.check_b(g)\nh = checks.check_c(h).or_reference()\nprint(checks.check_a)"
    assert check_calls(source, {"check_a", "check_b", "check_c"}) == [
        CheckCall("check_a", "f"),
        CheckCall("check_b", "g"),
        CheckCall("check_c", "h"),
    ]


def test_definitions_leave_out_check_calls():
    source = "import torch\nx = 3\nf = checks.check_f(f).or_reference()\ndef g():\n    return 1\nprint(x)"
    assert definitions(source, {"check_f"}) == ["import torch", "x = 3", "def g():\n    return 1"]
