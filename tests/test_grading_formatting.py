"""tutorial_lib.grading.formatting on hand-built reports (the graded ones: test_grading_grader.py)."""

from __future__ import annotations

from tutorial_lib import grading
from tutorial_lib.grading import CellEvent, ExerciseResult, NotebookReport


def _report(**kwargs) -> NotebookReport:
    results = [
        ExerciseResult("98.1", "Double a number", "passed", "ignored when passed"),
        ExerciseResult("98.2", "Square a number", "failed", "x times x, not 2 * x. " * 8),
        ExerciseResult("98.10", "Tenth", "missing", "check cell deleted"),
    ]
    return NotebookReport("98_a.ipynb", "98", "test", results, **kwargs)


def test_format_report_lists_every_exercise_with_its_hint():
    report = _report(events=[CellEvent(4, "timeout", "timed out after 40 s")], seconds=3.2)
    text = grading.format_report(report)
    head, *rows = text.splitlines()
    assert head == "98_a.ipynb  (chapter 98 test): 1/3 passed  [3 s]"
    assert "✔ passed" in rows[1] and "ignored" not in text
    assert "✘ failed" in rows[2] and "x times x" in rows[2]
    assert any("? missing" in r and "check cell deleted" in r for r in rows)
    assert text.endswith("  notes:\n  - cell 4: timed out after 40 s")
    assert all(len(line) <= 120 for line in text.splitlines())


def test_format_report_of_an_ungradable_notebook():
    text = grading.format_report(NotebookReport("x.ipynb", None, None, error="not valid JSON", cached=True))
    assert text.splitlines() == ["x.ipynb  (chapter unknown): 0/0 passed  [cached]", "  NOT GRADED: not valid JSON"]


def test_summary_and_json_count_per_exercise_in_id_order():
    reports = [_report(), _report(error=None), NotebookReport("b.ipynb", None, None, error="broken")]
    rows = grading.class_summary(reports)
    assert [r["exercise"] for r in rows] == ["98.1", "98.2", "98.10"]
    assert rows[0]["passed"] == 2 and rows[1]["failed"] == 2 and rows[2]["missing"] == 2
    text = grading.format_summary(reports)
    assert text.startswith("Class summary: 3 notebooks (2 graded, 1 not gradable)")
    assert "2/2" in text
    data = grading.as_json(reports)
    assert data["summary"] == rows and data["notebooks"][0]["passed"] == 1 and data["notebooks"][0]["total"] == 3
