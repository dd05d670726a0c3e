"""tutorial_lib.grading.grader against what students do to notebooks: all the scenario notebooks
(tests/grading_scenarios.py) are graded together once, as a class, then each test reads its own report."""

from __future__ import annotations

from pathlib import Path

import pytest
from grading_scenarios import CELL_TIMEOUT, EXPECTED_STD, class_dir, hint, notes, statuses

from tutorial_lib import grading

pytestmark = pytest.mark.slow  # about a dozen kernels, two deliberate timeouts: ~1.5-3 min on 2 cores


@pytest.fixture(scope="module")
def checks_dir(tmp_path_factory):
    yield from class_dir(tmp_path_factory.mktemp("class"))


@pytest.fixture(scope="module")
def reports(checks_dir) -> dict[str, grading.NotebookReport]:
    paths = grading.find_notebooks([checks_dir])
    graded = grading.grade_many(paths, jobs=4, cell_timeout=CELL_TIMEOUT)
    return {Path(r.path).stem: r for r in graded}


def test_plain_notebook(reports):
    report = reports["98_plain"]
    assert report.error is None and report.chapter == "98"
    assert statuses(report) == EXPECTED_STD
    assert "x times x" in hint(report, "98.2")
    assert report.events == []


def test_deleted_check_cell_is_missing(reports):
    report = reports["98_deleted"]
    assert statuses(report) == {**EXPECTED_STD, "98.2": "missing"}
    assert "deleted" in hint(report, "98.2") and "check_square" in hint(report, "98.2")


def test_moved_cell(reports):
    report = reports["98_moved"]
    assert statuses(report) == {**EXPECTED_STD, "98.1": "missing"}
    assert "did not run" in hint(report, "98.1") and "NameError" in hint(report, "98.1")
    assert "NameError" in notes(report)
    assert statuses(reports["98_reordered"]) == EXPECTED_STD


def test_retyped_and_commented_out(reports):
    report = reports["98_retyped"]
    assert statuses(report) == {"98.1": "missing", "98.2": "failed", "98.3": "missing"}
    assert "markdown cell" in hint(report, "98.1")
    assert "commented out" in hint(report, "98.3")


@pytest.mark.parametrize("name", ["98_nokernelspec", "98_wrongkernel"])
def test_kernelspec_is_ignored(reports, name):
    report = reports[name]
    assert report.error is None, report.error
    assert statuses(report) == EXPECTED_STD


def test_infinite_loop_times_out_and_grading_goes_on(reports):
    report = reports["98_loop"]
    assert statuses(report) == EXPECTED_STD
    timeouts = [e for e in report.events if e.kind == "timeout"]
    assert len(timeouts) == 1 and timeouts[0].cell == 4
    assert f"timed out after {CELL_TIMEOUT}" in timeouts[0].message and "while True" in timeouts[0].message


def test_loop_that_ignores_the_interrupt_restarts_the_kernel(reports):
    report = reports["98_stubborn"]
    assert statuses(report) == EXPECTED_STD  # cells after the restart re-import the checks
    kinds = [e.kind for e in report.events]
    assert kinds == ["timeout", "kernel restarted"], notes(report)


def test_exception_in_unrelated_cell(reports):
    report = reports["98_exception"]
    assert statuses(report) == EXPECTED_STD
    assert [(e.cell, e.kind) for e in report.events] == [(3, "error")]
    assert "ZeroDivisionError" in report.events[0].message


def test_kernel_death_is_reported_and_survived(reports):
    report = reports["98_dies"]
    assert statuses(report) == EXPECTED_STD
    assert [e.kind for e in report.events] == ["kernel died", "kernel restarted"]
    assert report.events[0].cell == 4


def test_chapter_from_metadata(reports):
    report = reports["renamed_by_student"]
    assert report.chapter == "98" and statuses(report) == EXPECTED_STD


def test_invalid_json_is_reported_and_the_class_still_graded(reports):
    report = reports["98_broken"]
    assert report.error and "not valid JSON" in report.error
    assert statuses(report) == {"98.1": "missing", "98.2": "missing", "98.3": "missing"}
    text = grading.format_report(report)
    assert "NOT GRADED" in text and "not valid JSON" in text


def test_class_summary_counts(reports):
    rows = {row["exercise"]: row for row in grading.class_summary(list(reports.values()))}
    n = len(reports)
    assert all(row["notebooks"] == n for row in rows.values())
    # 98.1 fails to report only where it was moved, retyped, or the file is broken
    assert rows["98.1"]["passed"] == n - 3 and rows["98.1"]["missing"] == 3
    assert rows["98.2"]["failed"] == n - 2 and rows["98.2"]["missing"] == 2
    assert rows["98.3"]["not attempted"] == n - 2
    text = grading.format_summary(list(reports.values()))
    assert "98.1" in text and f"{n - 3}/{n}" in text


def test_text_report_is_readable(reports):
    text = grading.format_report(reports["98_loop"])
    assert "98.2" in text and "✘ failed" in text and "Hint" not in text
    assert "cell 4: timed out" in text
