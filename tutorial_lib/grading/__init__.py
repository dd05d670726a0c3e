"""Grade students' notebooks headless: execute each one with the current Python kernel, then run
every exercise check on the student's functions in a separate runner that imported the library
before any student code (trusted.py, runner.py), and report per exercise passed / failed / not
attempted / missing, with the hint and what went wrong where.

Student code never reaches the grades: kernel and runner get a scrubbed environment (no
instructor variables, no grade paths), a private folder holding only that notebook, and resource
limits (sandbox.Limits: memory, CPU seconds, file size, processes). A notebook that rebinds the
library (`checks.compare = ...`) is named in the report; the runner restores it before checking.

Built to survive what students do to notebooks: deleted, moved or retyped cells, edited
metadata (the notebook's kernelspec is ignored), infinite loops (a per-cell timeout, then an
interrupt, then a kernel restart if the interrupt is ignored), a kernel that dies, exceptions in
unrelated cells, and files that are not valid JSON. Each becomes one line in the report.

    python -m tutorial_lib grade chapters/05_induction_heads.ipynb
    python -m tutorial_lib grade submissions/ --json          # a class, for a learning-management system
    python -m tutorial_lib progress [chapters/]                # per chapter, which exercises pass (cached)

Modules:
    reports       ExerciseResult, CellEvent, NotebookReport, STATUSES
    registry      the exercise registry as the grader sees it (chapters, id order, check names)
    notebook_io   read_notebook, chapter_of: whatever a student saved, made runnable
    sandbox       Limits, sandbox_env, private_dir: where student code runs
    statements    the definitions, check calls and tampering read from a notebook's code
    executor      run_notebook, kernel_env: every cell in a fresh kernel, through timeouts and deaths
    runner        the process that calls the checks (python -m tutorial_lib.grading.runner)
    trusted       grade_checks: the runner's job, started sandboxed, its results read back
    grader        agrade_notebook, grade_many, class_summary: results per exercise
    cache         the per-notebook cache behind `progress`
    formatting    format_report, format_summary, as_json
    cli           main (`grade`) and progress_main (`progress`)
"""

from __future__ import annotations

from .cli import main, progress_main
from .executor import (
    DEFAULT_CELL_TIMEOUT,
    DEFAULT_NOTEBOOK_TIMEOUT,
    PROBE_TIMEOUT,
    TIMEOUT_ENAME,
    kernel_env,
    run_notebook,
)
from .formatting import as_json, format_report, format_summary
from .grader import (
    agrade_many,
    agrade_notebook,
    assemble,
    class_summary,
    default_jobs,
    find_notebooks,
    grade_many,
    grade_notebook,
)
from .notebook_io import chapter_of, read_notebook
from .reports import STATUSES, CellEvent, ExerciseResult, NotebookReport
from .sandbox import DEFAULT_LIMITS, Limits

__all__ = [
    "DEFAULT_CELL_TIMEOUT",
    "DEFAULT_LIMITS",
    "DEFAULT_NOTEBOOK_TIMEOUT",
    "PROBE_TIMEOUT",
    "STATUSES",
    "TIMEOUT_ENAME",
    "CellEvent",
    "ExerciseResult",
    "Limits",
    "NotebookReport",
    "agrade_many",
    "agrade_notebook",
    "as_json",
    "assemble",
    "chapter_of",
    "class_summary",
    "default_jobs",
    "find_notebooks",
    "format_report",
    "format_summary",
    "grade_many",
    "grade_notebook",
    "kernel_env",
    "main",
    "progress_main",
    "read_notebook",
    "run_notebook",
]
