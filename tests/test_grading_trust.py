"""The grader against students who forge grades or reach the instructor's machine (issue 17): a grade
depends only on what the exercise functions compute; student code runs with a scrubbed environment,
a private folder and resource limits; a kernel death does not lose the setup."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from grading_scenarios import (
    CELL_TIMEOUT,
    EXPECTED_STD,
    SOLVED,
    install_checks,
    limit_scenarios,
    notes,
    statuses,
    trust_scenarios,
    write_notebooks,
)

from tutorial_lib import grading

pytestmark = pytest.mark.slow  # seven kernels and their runners: ~1-2 min on 2 cores

SECRET = "hunter2-instructor-only"


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    yield from install_checks(tmp_path_factory.mktemp("lib"))


@pytest.fixture(scope="module")
def reports(lib, tmp_path_factory) -> dict[str, grading.NotebookReport]:  # noqa: ARG001 - installs chapter 98
    paths = write_notebooks(tmp_path_factory.mktemp("class"), trust_scenarios())
    os.environ["INSTRUCTOR_SECRET"] = SECRET
    os.environ["TUTORIAL_GRADE_LOG"] = str(paths[0].parent / "instructor-grades.jsonl")
    try:
        graded = grading.grade_many(paths, jobs=3, cell_timeout=CELL_TIMEOUT)
    finally:
        os.environ.pop("INSTRUCTOR_SECRET")
        os.environ.pop("TUTORIAL_GRADE_LOG")
    return {Path(r.path).stem: r for r in graded}


def test_forged_grade_log_lines_do_not_count(reports):
    report = reports["98_forged_log"]
    assert statuses(report) == EXPECTED_STD  # was 3/3, every title "forged"
    assert {r.title for r in report.results} == {"Double a number", "Square a number", "Halve a number"}
    assert any(e.kind == "tampering" and "TUTORIAL_GRADE_LOG" in e.message for e in report.events), notes(report)
    assert all(row["title"] != "forged" for row in grading.class_summary(list(reports.values())))


def test_monkeypatched_checks_do_not_count(reports):
    report = reports["98_patched"]
    assert statuses(report) == EXPECTED_STD  # was 3/3 with a wrong square and a stub halve
    [event] = [e for e in report.events if e.kind == "tampering"]
    assert event.cell == 2 and "checks.call_student" in event.message


def test_student_code_sees_no_instructor_variables_nor_other_files(reports):
    report = reports["98_snoop"]
    assert statuses(report) == SOLVED
    text = grading.format_report(report)
    assert SECRET not in text and "secret=unset" in text
    assert "files=['98_snoop.ipynb']" in text  # was every notebook of the class
    assert not any(name in text for name in reports if name != "98_snoop")


def test_memory_hog_meets_the_limit(reports):
    report = reports["98_memory_hog"]
    assert statuses(report) == SOLVED
    assert [(e.cell, e.kind) for e in report.events] == [(2, "error")]
    assert "MemoryError" in report.events[0].message  # was "no memory limit"


def test_kernel_death_reruns_the_setup(reports):
    report = reports["98_dies_solved"]
    assert statuses(report) == SOLVED  # was 0/3: NameError in every later cell
    assert [e.kind for e in report.events] == ["kernel died", "kernel restarted"], notes(report)
    assert "run again" in report.events[1].message


def test_file_and_process_limits(lib, tmp_path):  # noqa: ARG001 - installs chapter 98
    paths = write_notebooks(tmp_path / "class", limit_scenarios())
    limits = grading.Limits(file_mb=1, processes=20)
    reports = {
        Path(r.path).stem: r for r in grading.grade_many(paths, jobs=2, cell_timeout=CELL_TIMEOUT, limits=limits)
    }
    hog = reports["98_file_hog"]
    assert statuses(hog) == SOLVED and "File too large" in notes(hog), notes(hog)
    forks = reports["98_forks"]
    assert statuses(forks) == SOLVED
    if os.getuid() == 0:  # Linux does not apply RLIMIT_NPROC to root: the limit is set, the forks run
        assert not forks.events, notes(forks)
    else:
        assert "BlockingIOError" in notes(forks) or "Resource temporarily unavailable" in notes(forks), notes(forks)
