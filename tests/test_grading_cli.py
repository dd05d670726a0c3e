"""tutorial_lib.grading.cli: `grade` (JSON, --strict, bad paths) and `progress` with its cache."""

from __future__ import annotations

import json

import nbformat
import pytest
from grading_scenarios import CELL_TIMEOUT, CHECKS_MODULE, CHECKS_SOURCE, EXPECTED_STD, class_dir, scenarios

from tutorial_lib import grading
from tutorial_lib.grading import grader


@pytest.fixture(scope="module")
def checks_dir(tmp_path_factory):
    yield from class_dir(tmp_path_factory.mktemp("class"))


@pytest.mark.slow
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


@pytest.mark.slow
@pytest.mark.usefixtures("checks_dir")  # registers chapter 98's checks in this process
def test_progress_uses_the_cache(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TUTORIAL_GRADE_CACHE", str(tmp_path / "cache"))
    student = tmp_path / "chapters"
    student.mkdir()
    (student / f"{CHECKS_MODULE}.py").write_text(CHECKS_SOURCE)
    nbformat.write(scenarios()["98_plain"], student / "98_test.ipynb")
    assert grading.progress_main([str(student), "--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    [row] = [r for r in first["chapters"] if r["chapter"] == "98"]
    assert {e["exercise"]: e["status"] for e in row["exercises"]} == EXPECTED_STD

    async def no_kernel(*_args, **_kwargs):
        raise AssertionError("an unchanged notebook must come from the cache")

    monkeypatch.setattr(grader, "agrade_notebook", no_kernel)  # where grade_many looks it up
    assert grading.progress_main([str(student)]) == 0
    text = capsys.readouterr().out
    assert "98" in text and "1/3" in text and "✔ 98.1" in text
    # editing the notebook invalidates the cache
    nb = nbformat.read(student / "98_test.ipynb", as_version=4)
    nb.cells[3].source = "def square(x):\n    return x * x"
    nbformat.write(nb, student / "98_test.ipynb")
    with pytest.raises(AssertionError, match="cache"):
        grading.progress_main([str(student)])


def test_the_module_runs_as_a_command(tmp_path):
    """`python -m tutorial_lib.grading` is `python -m tutorial_lib grade`."""
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "tutorial_lib.grading", str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2 and "no .ipynb" in proc.stderr
