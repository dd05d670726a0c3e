"""tutorial_lib.grading.executor: run_notebook itself (the scenarios in test_grading_grader.py cover
timeouts, restarts and dead kernels through the grader)."""

from __future__ import annotations

import asyncio
import os

import pytest
from grading_scenarios import notebook

from tutorial_lib import grading


def test_kernel_env_puts_this_tutorial_lib_first(monkeypatch):
    monkeypatch.setenv("TUTORIAL_GRADE_LOG", "/tmp/leftover")
    monkeypatch.setenv("PYTHONPATH", "elsewhere")
    env = grading.kernel_env({"EXTRA": "1"})
    first = env["PYTHONPATH"].split(os.pathsep)[0]
    assert os.path.isfile(os.path.join(first, "tutorial_lib", "grading", "executor.py"))
    assert env["PYTHONPATH"].endswith("elsewhere") and env["EXTRA"] == "1"
    assert "TUTORIAL_GRADE_LOG" not in env and env["TUTORIAL_PROGRESS"] == "0"


@pytest.mark.slow
def test_run_notebook_carries_on_after_an_error(tmp_path):
    nb = notebook("x = 1", ("md", "text"), "", "1 / 0", "print(x + 1)")
    started = []
    events, executed = asyncio.run(
        grading.run_notebook(nb, tmp_path, grading.kernel_env(), cell_timeout=60, on_kernel_start=started.append)
    )
    assert executed == {0, 3, 4} and len(started) == 1
    assert [(e.cell, e.kind) for e in events] == [(4, "error")]
    assert "ZeroDivisionError" in events[0].message and "`1 / 0`" in events[0].message
    assert nb.cells[4].outputs[0]["text"] == "2\n"
