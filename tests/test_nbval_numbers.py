"""The stored-output comparison: numbers may move by one unit of their last compared digit, no more."""

from __future__ import annotations

import nbformat
from nbval_numbers import align_numbers, align_text, close, tolerance


def test_tolerance_is_one_unit_of_the_last_compared_digit():
    assert tolerance("0.93") == 0.01
    assert tolerance("102.6") == 0.1
    assert tolerance("0.9173") == 0.01  # decimals past the second were never compared
    assert abs(tolerance("9.35e-05") - 1e-7) < 1e-20
    assert tolerance("12") == 0.0


def test_rounding_neighbours_pass_and_real_changes_fail():
    assert close("0.92", "0.93") and close("102.6", "102.7") and close("-0.32", "-0.31")
    assert not close("0.92", "0.94")  # two units: printed at more digits than the run supports
    assert not close("102.6", "102.8")
    assert not close("12", "13")  # counts are exact
    assert not close("9.35e-05", "9.41e-05")


def test_only_numbers_in_the_same_text_are_aligned():
    stored = "real 0.92 ... selectivity 0.01, L1H1 at 0.85"
    assert align_text(stored, "real 0.93 ... selectivity 0.02, L1H1 at 0.84") == stored
    moved = "real 0.95 ... selectivity 0.02, L1H1 at 0.84"
    assert align_text(stored, moved) == "real 0.95 ... selectivity 0.01, L1H1 at 0.85"
    other_words = "real 0.93 ... selectivity 0.01, L1H2 at 0.85"
    assert align_text(stored, other_words) == other_words  # a changed label is left for nbval to report


def test_outputs_are_aligned_per_stream_and_copied():
    ref = [
        nbformat.v4.new_output("stream", name="stdout", text="loss 3.19\n"),
        nbformat.v4.new_output("execute_result", data={"text/plain": "0.92"}, execution_count=1),
    ]
    test = [
        nbformat.v4.new_output("stream", name="stdout", text="loss 3.20\n"),
        nbformat.v4.new_output("execute_result", data={"text/plain": "0.97"}, execution_count=1),
    ]
    aligned = align_numbers(test, ref)
    assert aligned[0]["text"] == "loss 3.19\n"
    assert aligned[1]["data"]["text/plain"] == "0.97"
    assert test[0]["text"] == "loss 3.20\n"  # the executed outputs themselves are untouched
