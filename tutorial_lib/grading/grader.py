"""Grading: run a notebook sandboxed, run its checks in the trusted runner, then turn the results,
the cells and the executor's events into one result per exercise of the chapter; many notebooks at a time."""

from __future__ import annotations

import asyncio
import os
import re
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from .cache import cached_report, fingerprint, store_report
from .executor import DEFAULT_CELL_TIMEOUT, DEFAULT_NOTEBOOK_TIMEOUT, kernel_env, run_notebook
from .notebook_io import chapter_of, code_lines, read_notebook
from .registry import chapter_modules, check_name, exercise_key, exercise_registry
from .reports import STATUSES, CellEvent, ExerciseResult, NotebookReport
from .sandbox import DEFAULT_LIMITS, Limits, private_dir
from .trusted import grade_checks

__all__ = [
    "agrade_many",
    "agrade_notebook",
    "assemble",
    "class_summary",
    "default_jobs",
    "find_notebooks",
    "grade_many",
    "grade_notebook",
    "run_sync",
]


def _missing_reason(nb, name: str, events: list[CellEvent], executed: set[int]) -> str:
    """Why a check of the chapter left no result: deleted, retyped, commented out, or did not run."""
    if nb is None:
        return "the notebook could not be read"
    pattern = re.compile(rf"\b{re.escape(name)}\b")
    code_cells = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and pattern.search(c.source)]
    live = [i for i in code_cells if any(pattern.search(line) for line in code_lines(nb.cells[i].source))]
    if live:
        i = live[-1]
        cell_events = [e for e in events if e.cell == i + 1 and e.kind not in ("kernel restarted", "tampering")]
        if cell_events:
            return f"the check did not run: cell {i + 1} {cell_events[0].message}"
        if i not in executed:
            return f"the check did not run: cell {i + 1} was not executed (see the notes below)"
        return (
            f"cell {i + 1} calls `{name}` but no result came back: is the call inside an `if` "
            "or a function that was not called?"
        )
    if code_cells:
        return f"the call to `{name}` in cell {code_cells[-1] + 1} is commented out"
    other = [i for i, c in enumerate(nb.cells) if c.cell_type != "code" and pattern.search(c.source)]
    if other:
        return (
            f"the check cell (cell {other[-1] + 1}) is a {nb.cells[other[-1]].cell_type} cell: "
            "change it back to a code cell"
        )
    return f"check cell deleted: no cell calls `{name}` (copy it back from a fresh chapter)"


def assemble(
    chapter: str | None, exercises: dict, logged: dict[str, dict], nb, events: list[CellEvent], executed: set[int]
) -> list[ExerciseResult]:
    """Every exercise of the chapter (registry) plus any other that reported, in id order."""
    results = {}
    for ex_id, ex in exercises.items():
        if chapter is None or ex_id.split(".")[0] != chapter:
            continue
        if ex_id in logged:
            continue
        results[ex_id] = ExerciseResult(
            ex_id, ex.title, "missing", _missing_reason(nb, check_name(ex), events, executed)
        )
    for ex_id, record in logged.items():
        status = str(record["status"]) if record.get("status") in STATUSES else "failed"
        results[ex_id] = ExerciseResult(ex_id, str(record.get("title", "")), status, str(record.get("hint", "")))
    return [results[k] for k in sorted(results, key=exercise_key)]


async def _execute(
    nb, path: Path, exercises: dict, options: dict
) -> tuple[list[CellEvent], set[int], dict[str, dict], str | None]:
    """Run `nb` sandboxed in a private copy of its folder, then its checks in the trusted runner:
    (events, cells run, results per exercise, error)."""
    env, limits = options.get("env"), options.get("limits", DEFAULT_LIMITS)
    cell_timeout, notebook_timeout = options["cell_timeout"], options["notebook_timeout"]
    events: list[CellEvent] = []
    executed: set[int] = set()
    with private_dir(path) as work:
        try:
            events, executed = await run_notebook(
                nb, work, kernel_env(env, home=work.parent), cell_timeout, notebook_timeout, limits=limits
            )
        except RuntimeError as err:
            return events, executed, {}, str(err)
    timed_out = {e.cell - 1 for e in events if e.kind in ("timeout", "not run") and e.cell is not None}
    trusted = await grade_checks(nb, exercises, executed, timed_out, env, limits, cell_timeout, notebook_timeout)
    return sorted([*events, *trusted.events], key=lambda e: e.cell or 0), executed, trusted.logged, None


async def agrade_notebook(
    path: str | Path,
    cell_timeout: float = DEFAULT_CELL_TIMEOUT,
    notebook_timeout: float | None = DEFAULT_NOTEBOOK_TIMEOUT,
    exercises: dict | None = None,
    env: dict[str, str] | None = None,
    limits: Limits | None = DEFAULT_LIMITS,
) -> NotebookReport:
    """Execute one notebook with the current Python and collect its exercises' results.

    The notebook runs in a kernel with a scrubbed environment (`env` added), a private folder and
    `limits`; the grades come from the trusted runner (trusted.py), never from the kernel."""
    path = Path(path)
    exercises = exercise_registry() if exercises is None else exercises
    modules = chapter_modules()
    started = time.monotonic()
    nb, events, executed, logged, error = None, [], set(), {}, None
    try:
        nb = read_notebook(path)
    except (OSError, ValueError) as err:
        error = str(err)
    chapter = chapter_of(path, nb)
    if nb is not None:
        options = {"env": env, "limits": limits, "cell_timeout": cell_timeout, "notebook_timeout": notebook_timeout}
        chapter_exercises = {k: v for k, v in exercises.items() if chapter is None or k.split(".")[0] == chapter}
        events, executed, logged, error = await _execute(nb, path, chapter_exercises, options)
    if chapter is None and logged:
        chapter = sorted(logged, key=exercise_key)[0].split(".")[0]
    if chapter is None and error is None:
        events.append(
            CellEvent(
                None,
                "chapter",
                "chapter unknown: name the file NN_name.ipynb so that exercises whose check did not run can be listed",
            )
        )
    report = NotebookReport(str(path), chapter, modules.get(chapter) if chapter else None, error=error)
    report.results = assemble(chapter, exercises, logged, nb, events, executed)
    report.events = events
    report.seconds = round(time.monotonic() - started, 1)
    return report


def run_sync(coro):
    """asyncio.run, also from inside a running event loop (Jupyter): then in a worker thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box = {}

    def target():
        try:
            box["value"] = asyncio.run(coro)
        except BaseException as err:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = err

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


def grade_notebook(path: str | Path, **kwargs) -> NotebookReport:
    """Synchronous `agrade_notebook`."""
    return run_sync(agrade_notebook(path, **kwargs))


def find_notebooks(paths: Iterable[str | Path]) -> list[Path]:
    """Notebook files among `paths` (directories searched recursively, checkpoints skipped)."""
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found += sorted(q for q in p.rglob("*.ipynb") if ".ipynb_checkpoints" not in q.parts)
        elif p.exists():
            found.append(p)
        else:
            raise FileNotFoundError(f"{p}: no such file or directory")
    return list(dict.fromkeys(found))


def default_jobs() -> int:
    return max(1, min(4, os.cpu_count() or 1))


async def agrade_many(
    paths: list[Path],
    jobs: int | None = None,
    use_cache: bool = False,
    on_done: Callable[[NotebookReport], None] | None = None,
    **kwargs,
) -> list[NotebookReport]:
    """Grade notebooks, `jobs` kernels at a time; with `use_cache`, reuse results for unchanged notebooks."""
    limit = asyncio.Semaphore(jobs or default_jobs())
    exercises = kwargs.pop("exercises", None)
    exercises = exercise_registry() if exercises is None else exercises
    cell_timeout = kwargs.get("cell_timeout", DEFAULT_CELL_TIMEOUT)

    async def one(path: Path) -> NotebookReport:
        key = fingerprint(path, cell_timeout) if use_cache else None
        report = cached_report(path, key)
        if report is None:
            async with limit:
                report = await agrade_notebook(path, exercises=exercises, **kwargs)
            store_report(report, key)
        if on_done:
            on_done(report)
        return report

    return list(await asyncio.gather(*(one(p) for p in paths)))


def grade_many(paths: list[Path], **kwargs) -> list[NotebookReport]:
    return run_sync(agrade_many(paths, **kwargs))


def class_summary(reports: list[NotebookReport]) -> list[dict]:
    """Per exercise: how many notebooks passed, failed, did not attempt, or miss it."""
    rows: dict[str, dict] = {}
    for report in reports:
        for r in report.results:
            row = rows.setdefault(
                r.exercise, {"exercise": r.exercise, "title": r.title, "notebooks": 0, **{s: 0 for s in STATUSES}}
            )
            row["title"] = row["title"] or r.title
            row["notebooks"] += 1
            row[r.status] += 1
    return [rows[k] for k in sorted(rows, key=exercise_key)]
