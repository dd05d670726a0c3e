"""What the grader's tests share: a test-only chapter "98" whose checks live in a module written next
to the notebooks, and the scenario notebooks, each something students do to a notebook."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from tutorial_lib.checks.core import EXERCISES

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
EXPECTED_STD = {"98.1": "passed", "98.2": "failed", "98.3": "not attempted"}

# Long enough for `import torch` with four kernels starting at once on a busy 2-core machine.
CELL_TIMEOUT = 40


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


def install_checks(lib: Path) -> Iterator[Path]:
    """The test-only checks module in `lib`, on PYTHONPATH (the grader's kernels and runners import it
    from there, as they would an installed tutorial_lib) and registered here, until the generator is closed."""
    lib.mkdir(exist_ok=True)
    (lib / f"{CHECKS_MODULE}.py").write_text(CHECKS_SOURCE)
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(lib), saved]))
    sys.path.insert(0, str(lib))
    importlib.import_module(CHECKS_MODULE)
    try:
        yield lib
    finally:
        sys.path.remove(str(lib))
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved
        sys.modules.pop(CHECKS_MODULE, None)
        for key in ("98.1", "98.2", "98.3"):
            EXERCISES.pop(key, None)


def class_dir(root: Path) -> Iterator[Path]:
    """A class directory with the scenario notebooks, the test-only checks module installed (see
    install_checks) until the generator is closed. For a fixture to yield from."""
    root.mkdir(exist_ok=True)
    for name, nb in scenarios().items():
        target = root / f"{name}.ipynb"
        if isinstance(nb, str):
            target.write_text(nb)
        else:
            nbformat.write(nb, target)
    for _ in install_checks(root.parent / f"{root.name}-lib"):
        yield root


def statuses(report) -> dict[str, str]:
    return {r.exercise: r.status for r in report.results}


def hint(report, exercise) -> str:
    return next(r.hint for r in report.results if r.exercise == exercise)


def notes(report) -> str:
    return "\n".join(e.line() for e in report.events)


SQUARE = "def square(x):\n    return x * x"
HALVE = "def halve(x):\n    return x / 2"
SOLVED = {"98.1": "passed", "98.2": "passed", "98.3": "passed"}
FORGE_LOG = """import json
import os

path = os.environ.get("TUTORIAL_GRADE_LOG")
if path:
    with open(path, "a") as f:
        for n in (1, 2, 3):
            f.write(json.dumps({"exercise": f"98.{n}", "status": "passed", "title": "forged"}) + "\\n")
"""
PATCH_CHECKS = "checks.call_student = lambda *a, **k: None\nchecks.compare = lambda *a, **k: None"
SNOOP = """import os

secret = os.environ.get("INSTRUCTOR_SECRET", "unset")
raise RuntimeError(f"secret={secret} files={sorted(os.listdir('.'))}")"""
MEMORY_HOG = """import resource

soft = resource.getrlimit(resource.RLIMIT_DATA)[0]
assert soft != resource.RLIM_INFINITY, "no memory limit"
hog = bytearray(soft + 2**20)"""
FILE_HOG = """import resource

assert resource.getrlimit(resource.RLIMIT_FSIZE)[0] != resource.RLIM_INFINITY, "no file size limit"
with open("big.bin", "wb") as f:
    f.write(bytes(4 * 2**20))"""
FORKS = """import os, resource, time

assert resource.getrlimit(resource.RLIMIT_NPROC)[0] != resource.RLIM_INFINITY, "no process limit"
assert resource.getrlimit(resource.RLIMIT_CPU)[0] != resource.RLIM_INFINITY, "no CPU limit"
children = []
for _ in range(60):
    pid = os.fork()
    if pid == 0:
        time.sleep(3)
        os._exit(0)
    children.append(pid)
print(len(children), "children")"""


def trust_scenarios() -> dict[str, object]:
    """What a student does to forge a grade or reach the instructor's machine (issue 17), each
    in a notebook of chapter 98."""
    std = standard_cells()
    solved = [DOUBLE, CHECK[1], SQUARE, CHECK[2], HALVE, CHECK[3]]
    return {
        # appends "passed" lines to the grade log the checks used to write to, after the checks ran
        "98_forged_log": notebook(*std, FORGE_LOG),
        # turns the checks into no-ops
        "98_patched": notebook(SETUP, PATCH_CHECKS, *std[1:]),
        # prints the instructor's secret and the class folder in an error (into the report's notes)
        "98_snoop": notebook(SETUP, SNOOP, *solved),
        # asks for more memory than the limit
        "98_memory_hog": notebook(SETUP, MEMORY_HOG, *solved),
        # a solved notebook whose kernel dies before the first check
        "98_dies_solved": notebook(SETUP, DOUBLE, "import os\nos._exit(1)", *solved[1:]),
    }


def limit_scenarios() -> dict[str, object]:
    """Graded with small limits: a file larger than the limit, a bounded fork bomb."""
    solved = [DOUBLE, CHECK[1], SQUARE, CHECK[2], HALVE, CHECK[3]]
    return {"98_file_hog": notebook(SETUP, FILE_HOG, *solved), "98_forks": notebook(SETUP, FORKS, *solved)}


def write_notebooks(root: Path, notebooks: dict[str, object]) -> list[Path]:
    root.mkdir(exist_ok=True)
    for name, nb in notebooks.items():
        nbformat.write(nb, root / f"{name}.ipynb")
    return [root / f"{name}.ipynb" for name in notebooks]
