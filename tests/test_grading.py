"""The grader against what students do to notebooks: each case is a tiny synthetic notebook for a
test-only chapter "98" whose checks live in a module written next to the notebooks. All the
scenario notebooks are graded together once (as a class), then each test reads its own report."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from tutorial_lib import grading
from tutorial_lib.checks.core import EXERCISES

pytestmark = pytest.mark.slow  # about a dozen kernels, two deliberate timeouts: ~1.5-3 min on 2 cores

CHECKS_MODULE = "gradetest_checks"
CHECKS_SOURCE = """
from tutorial_lib.checks.core import call_student, compare, exercise


def double(x):
    return 2 * x


def square(x):
    return x * x


def halve(x):
    return x / 2


@exercise("98.1", "Double a number", reference=double)
def check_double(fn):
    for x in (1.0, 2.5, -3.0):
        compare(call_student(fn, x), double(x), "double(x)", hint="Multiply by 2.")


@exercise("98.2", "Square a number", reference=square)
def check_square(fn):
    for x in (1.5, -2.0):
        compare(call_student(fn, x), square(x), "square(x)", hint="x times x, not 2 * x.")


@exercise("98.3", "Halve a number", reference=halve)
def check_halve(fn):
    for x in (1.0, 3.0):
        compare(call_student(fn, x), halve(x), "halve(x)", hint="Divide by 2.")
"""

SETUP = f"import {CHECKS_MODULE} as checks"
DOUBLE = "def double(x):\n    return 2 * x"
SQUARE_WRONG = "def square(x):\n    return 2 * x"
HALVE_STUB = 'def halve(x):\n    raise NotImplementedError("halve: your code here")'
CHECK = {1: "checks.check_double(double)", 2: "checks.check_square(square)", 3: "checks.check_halve(halve)"}


def notebook(*cells, metadata=None):
    """Cells given as strings are code; ("md", text) is markdown."""
    nb = new_notebook(
        metadata=metadata or {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
    )
    for c in cells:
        nb.cells.append(new_markdown_cell(c[1]) if isinstance(c, tuple) else new_code_cell(c))
    return nb


def standard_cells():
    return [SETUP, DOUBLE, CHECK[1], SQUARE_WRONG, CHECK[2], HALVE_STUB, CHECK[3]]


def scenarios() -> dict[str, object]:
    """name -> notebook (or raw text for broken files)."""
    std = standard_cells()
    return {
        "98_plain": notebook(*std),
        # the check cell of 98.2 deleted
        "98_deleted": notebook(*std[:4], *std[5:]),
        # the definition of double moved below its check: NameError in the check cell
        "98_moved": notebook(SETUP, CHECK[1], DOUBLE, *std[3:]),
        # independent cells swapped: still passes
        "98_reordered": notebook(SETUP, SQUARE_WRONG, CHECK[2], DOUBLE, CHECK[1], HALVE_STUB, CHECK[3]),
        # the check cell of 98.1 retyped as markdown, the one of 98.3 commented out
        "98_retyped": notebook(SETUP, DOUBLE, ("md", CHECK[1]), SQUARE_WRONG, CHECK[2], HALVE_STUB, "# " + CHECK[3]),
        # kernelspec removed, and another notebook naming a kernel that does not exist
        "98_nokernelspec": notebook(*std, metadata={}),
        "98_wrongkernel": notebook(
            *std,
            metadata={
                "kernelspec": {"name": "julia-1.9", "display_name": "Julia", "language": "julia"},
                "language_info": {"name": "julia"},
            },
        ),
        # an infinite loop between the exercises; the ones after it still graded
        "98_loop": notebook(
            SETUP, DOUBLE, CHECK[1], "while True:\n    pass", SQUARE_WRONG, CHECK[2], HALVE_STUB, CHECK[3]
        ),
        # a loop that swallows the interrupt: the kernel is restarted, later cells still run
        "98_stubborn": notebook(
            SETUP,
            DOUBLE,
            CHECK[1],
            "import time\nwhile True:\n    try:\n        time.sleep(0.05)\n    except KeyboardInterrupt:\n        pass",
            SETUP,
            SQUARE_WRONG,
            CHECK[2],
            HALVE_STUB,
            CHECK[3],
        ),
        # an exception in an unrelated cell
        "98_exception": notebook(SETUP, DOUBLE, "1 / 0", CHECK[1], SQUARE_WRONG, CHECK[2], HALVE_STUB, CHECK[3]),
        # the kernel dies mid-notebook
        "98_dies": notebook(
            SETUP, DOUBLE, CHECK[1], "import os\nos._exit(1)", SETUP, SQUARE_WRONG, CHECK[2], HALVE_STUB, CHECK[3]
        ),
        # the chapter from metadata when the file was renamed
        "renamed_by_student": notebook(*std, metadata={"tutorial_lib": {"chapter": "98"}}),
        # not JSON at all (a truncated save)
        "98_broken": '{"cells": [{"cell_type": "code", "source": "print(1)"',
    }


# Long enough for `import torch` with four kernels starting at once on a busy 2-core machine.
CELL_TIMEOUT = 40


@pytest.fixture(scope="module")
def checks_dir(tmp_path_factory):
    """A class directory with the scenario notebooks and the test-only checks module."""
    root = tmp_path_factory.mktemp("class")
    (root / f"{CHECKS_MODULE}.py").write_text(CHECKS_SOURCE)
    for name, nb in scenarios().items():
        target = root / f"{name}.ipynb"
        if isinstance(nb, str):
            target.write_text(nb)
        else:
            nbformat.write(nb, target)
    sys.path.insert(0, str(root))
    importlib.import_module(CHECKS_MODULE)  # registers 98.x here too, so the grader knows the chapter
    yield root
    sys.path.remove(str(root))
    sys.modules.pop(CHECKS_MODULE, None)
    for key in ("98.1", "98.2", "98.3"):
        EXERCISES.pop(key, None)


@pytest.fixture(scope="module")
def reports(checks_dir) -> dict[str, grading.NotebookReport]:
    paths = grading.find_notebooks([checks_dir])
    graded = grading.grade_many(paths, jobs=4, cell_timeout=CELL_TIMEOUT)
    return {Path(r.path).stem: r for r in graded}


def statuses(report) -> dict[str, str]:
    return {r.exercise: r.status for r in report.results}


def hint(report, exercise) -> str:
    return next(r.hint for r in report.results if r.exercise == exercise)


def notes(report) -> str:
    return "\n".join(e.line() for e in report.events)


EXPECTED_STD = {"98.1": "passed", "98.2": "failed", "98.3": "not attempted"}


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


def test_cli_json_single_notebook(checks_dir, capsys):
    code = grading.main([str(checks_dir / "98_plain.ipynb"), "--json", "--timeout", str(CELL_TIMEOUT)])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    [nb] = out["notebooks"]
    assert nb["passed"] == 1 and nb["total"] == 3
    assert {r["exercise"]: r["status"] for r in nb["results"]} == EXPECTED_STD
    assert {row["exercise"] for row in out["summary"]} == {"98.1", "98.2", "98.3"}
    assert grading.main([str(checks_dir / "98_plain.ipynb"), "--strict", "--json"]) == 1


def test_cli_errors(tmp_path, capsys):
    assert grading.main([str(tmp_path / "nope.ipynb")]) == 2
    assert grading.main([str(tmp_path)]) == 2
    assert "no .ipynb" in capsys.readouterr().err


def test_progress_uses_the_cache(checks_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TUTORIAL_GRADE_CACHE", str(tmp_path / "cache"))
    student = tmp_path / "chapters"
    student.mkdir()
    (student / f"{CHECKS_MODULE}.py").write_text(CHECKS_SOURCE)
    nbformat.write(scenarios()["98_plain"], student / "98_test.ipynb")
    assert grading.progress_main([str(student), "--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    [row] = [r for r in first["chapters"] if r["chapter"] == "98"]
    assert {e["exercise"]: e["status"] for e in row["exercises"]} == EXPECTED_STD

    async def no_kernel(*args, **kwargs):
        raise AssertionError("an unchanged notebook must come from the cache")

    monkeypatch.setattr(grading, "agrade_notebook", no_kernel)
    assert grading.progress_main([str(student)]) == 0
    text = capsys.readouterr().out
    assert "98" in text and "1/3" in text and "✔ 98.1" in text
    # editing the notebook invalidates the cache
    nb = nbformat.read(student / "98_test.ipynb", as_version=4)
    nb.cells[3].source = "def square(x):\n    return x * x"
    nbformat.write(nb, student / "98_test.ipynb")
    with pytest.raises(AssertionError, match="cache"):
        grading.progress_main([str(student)])


def test_chapter_detection_without_kernel(tmp_path):
    nb = notebook("from tutorial_lib.checks import induction_heads as checks")
    assert grading.chapter_of(Path("05_x.ipynb")) == "05"
    assert grading.chapter_of(Path("alice_05_induction_heads.ipynb")) == "05"
    assert grading.chapter_of(Path("alice_97_unknown.ipynb")) is None
    assert grading.chapter_of(Path("mine.ipynb"), nb) == "05"
    assert grading.chapter_of(Path("mine.ipynb"), notebook(metadata={"tutorial": {"chapter": 3}})) == "03"
    assert grading.chapter_of(Path("mine.ipynb"), notebook("print(1)")) is None
    (tmp_path / "list.ipynb").write_text("[1, 2]")
    with pytest.raises(ValueError, match="not a notebook"):
        grading.read_notebook(tmp_path / "list.ipynb")


def test_runs_that_timed_out_are_not_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("TUTORIAL_GRADE_CACHE", str(tmp_path))
    ok = grading.NotebookReport("a.ipynb", "98", None, [grading.ExerciseResult("98.1", "t", "passed")])
    grading._store(ok, "good")
    slow = grading.NotebookReport("a.ipynb", "98", None, events=[grading.CellEvent(1, "timeout", "timed out")])
    grading._store(slow, "slow")
    assert (tmp_path / "good.json").exists() and not (tmp_path / "slow.json").exists()
    cached = grading._cached(Path("b.ipynb"), "good")
    assert cached.cached and cached.path == "b.ipynb" and cached.results == ok.results
