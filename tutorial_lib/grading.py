"""Grade students' notebooks headless: execute each one with the current Python kernel, collect
every exercise check's result (the checks append them to TUTORIAL_GRADE_LOG), and report per
exercise passed / failed / not attempted / missing, with the hint and what went wrong where.

Built to survive what students do to notebooks: deleted, moved or retyped cells, edited
metadata (the notebook's kernelspec is ignored), infinite loops (a per-cell timeout, then an
interrupt, then a kernel restart if the interrupt is ignored), a kernel that dies, exceptions in
unrelated cells, and files that are not valid JSON. Each becomes one line in the report.

    python -m tutorial_lib grade chapters/05_induction_heads.ipynb
    python -m tutorial_lib grade submissions/ --json          # a class, for a learning-management system
    python -m tutorial_lib progress [chapters/]                # per chapter, which exercises pass (cached)
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

STATUSES = ("passed", "failed", "not attempted", "missing")
TIMEOUT_ENAME = "CellTimeout"  # the error name the executor gives a cell that ran past its timeout
DEFAULT_CELL_TIMEOUT = 120  # seconds; a whole solution notebook runs in under 120 s on 2 cores
DEFAULT_NOTEBOOK_TIMEOUT = 1800
PROBE_TIMEOUT = 15  # after a timeout: how long an interrupted kernel may take to answer again
_SYMBOL = {"passed": "✔", "failed": "✘", "not attempted": "…", "missing": "?"}
_LOG = logging.getLogger("tutorial_lib.grading")


# ----------------------------------------------------------------------------- report types
@dataclass
class ExerciseResult:
    exercise: str
    title: str
    status: str  # one of STATUSES
    hint: str = ""


@dataclass
class CellEvent:
    """Something that happened while executing one cell (1-based index over all cells)."""

    cell: int | None
    kind: str  # "error" | "timeout" | "kernel died" | "kernel restarted" | "not run" | "kernel"
    message: str

    def line(self) -> str:
        where = f"cell {self.cell}" if self.cell is not None else "notebook"
        return f"{where}: {self.message}"


@dataclass
class NotebookReport:
    path: str
    chapter: str | None
    chapter_name: str | None
    results: list[ExerciseResult] = field(default_factory=list)
    events: list[CellEvent] = field(default_factory=list)
    error: str | None = None  # the notebook could not be graded at all (not JSON, kernel did not start)
    seconds: float = 0.0
    cached: bool = False

    @property
    def passed(self) -> int:
        return sum(r.status == "passed" for r in self.results)

    @property
    def total(self) -> int:
        return len(self.results)

    def status_of(self, exercise_id: str) -> str | None:
        return next((r.status for r in self.results if r.exercise == exercise_id), None)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.update(passed=self.passed, total=self.total)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> NotebookReport:
        return cls(
            path=d["path"],
            chapter=d.get("chapter"),
            chapter_name=d.get("chapter_name"),
            results=[ExerciseResult(**r) for r in d.get("results", [])],
            events=[CellEvent(**e) for e in d.get("events", [])],
            error=d.get("error"),
            seconds=d.get("seconds", 0.0),
            cached=d.get("cached", False),
        )


# ----------------------------------------------------------------------------- registry helpers
def _registry() -> dict:
    from .checks import all_exercises

    return all_exercises()


def _chapter_modules() -> dict[str, str]:
    from .checks import CHAPTER_MODULES

    return dict(CHAPTER_MODULES)


def _exercise_key(exercise_id: str) -> tuple:
    return tuple(int(p) if p.isdigit() else p for p in exercise_id.split("."))


def _check_name(ex) -> str:
    return getattr(ex.check, "__name__", "") or f"check_{ex.function_name}"


# ----------------------------------------------------------------------------- reading notebooks
def read_notebook(path: Path):
    """Read and normalise a notebook so that nbclient can run it; raise ValueError with a clear reason."""
    import nbformat

    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"the file is not UTF-8 text ({err.reason}); it cannot be graded") from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(
            f"not valid JSON (line {err.lineno}, column {err.colno}: {err.msg}); the notebook cannot be "
            "graded. Open it in a text editor, or re-download the chapter and copy your code over."
        ) from None
    if not isinstance(raw, dict) or not isinstance(raw.get("cells"), list):
        raise ValueError("valid JSON but not a notebook (no list of cells); it cannot be graded")
    raw.setdefault("metadata", {})
    raw.setdefault("nbformat", 4)
    raw.setdefault("nbformat_minor", 5)
    cells = []
    for cell in raw["cells"]:
        if not isinstance(cell, dict):
            continue
        cell.setdefault("metadata", {})
        if not isinstance(cell["metadata"], dict):
            cell["metadata"] = {}
        source = cell.get("source", "")
        cell["source"] = "".join(source) if isinstance(source, list) else str(source)
        if cell.get("cell_type") not in ("code", "markdown", "raw"):
            cell["cell_type"] = "raw"
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
        else:
            cell.pop("outputs", None)
            cell.pop("execution_count", None)
        cells.append(cell)
    raw["cells"] = cells
    try:
        nb = nbformat.from_dict(raw)
        if raw["nbformat"] < 4:
            nb = nbformat.convert(nb, 4)
    except Exception as err:  # noqa: BLE001 - any malformed structure becomes a clear message
        raise ValueError(f"not a readable notebook ({type(err).__name__}: {err}); it cannot be graded") from None
    # Always the current Python kernel: whatever kernelspec the student's copy names is dropped.
    nb.metadata.pop("kernelspec", None)
    return nb


def chapter_of(path: Path, nb=None) -> str | None:
    """The chapter "NN": from the file name prefix "NN_" (or "name_NN_..." for a known chapter), else metadata
    (tutorial_lib.chapter / tutorial.chapter), else the `tutorial_lib.checks` module it imports."""
    name = Path(path).name
    match = re.match(r"(\d{2})_", name)
    if match:
        return match[1]
    # a student's renamed copy, e.g. "alice_05_induction_heads.ipynb": a known chapter after a separator
    known = [m for m in re.findall(r"(?:^|[^0-9])(\d{2})_", name) if m in _chapter_modules()]
    if known:
        return known[0]
    if nb is None:
        return None
    for key in ("tutorial_lib", "tutorial"):
        meta = nb.metadata.get(key)
        if isinstance(meta, dict) and meta.get("chapter") not in (None, ""):
            value = str(meta["chapter"])
            return value.zfill(2) if value.isdigit() else value
    by_module = {module: ch for ch, module in _chapter_modules().items()}
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for module in re.findall(r"tutorial_lib\.checks(?:\s+import\s+|\.)(\w+)", cell.source):
            if module in by_module:
                return by_module[module]
    return None


def _code_lines(source: str) -> list[str]:
    return [line for line in source.splitlines() if line.strip() and not line.strip().startswith("#")]


def _cell_label(nb, index: int) -> str:
    lines = _code_lines(nb.cells[index].source) or [nb.cells[index].source.strip()]
    first = lines[0].strip() if lines else ""
    return f"`{first[:50]}{'…' if len(first) > 50 else ''}`" if first else "(empty)"


# ----------------------------------------------------------------------------- the executor
def _kernel_manager():
    """A kernel manager that always starts this Python (sys.executable) with ipykernel."""
    from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager

    class _CurrentPython(KernelSpecManager):
        def get_kernel_spec(self, kernel_name, *args, **kwargs):
            import ipykernel.kernelspec as ks

            return KernelSpec(resource_dir=ks.RESOURCES, **ks.get_kernel_dict())

    return AsyncKernelManager(kernel_name="python3", kernel_spec_manager=_CurrentPython())


def kernel_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment executed notebooks get: offline, quiet, no JS bundles, this tutorial_lib first."""
    env = dict(os.environ)
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    env.setdefault("MPLBACKEND", "agg")
    env.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    env["TUTORIAL_PROGRESS"] = "0"
    env.setdefault("TUTORIAL_CIRCUITSVIS", "static")
    package_parent = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join([package_parent, *filter(None, [env.get("PYTHONPATH")])])
    env.pop("TUTORIAL_GRADE_LOG", None)
    env.update(extra or {})
    return env


async def run_notebook(
    nb,
    cwd: str | Path,
    env: dict[str, str],
    cell_timeout: float = DEFAULT_CELL_TIMEOUT,
    notebook_timeout: float | None = DEFAULT_NOTEBOOK_TIMEOUT,
    startup_timeout: float = 120,
    on_kernel_start: Callable[[Any], None] | None = None,
    on_kernel_stop: Callable[[Any], None] | None = None,
) -> tuple[list[CellEvent], set[int]]:
    """Execute every code cell of `nb` in place, carrying on after errors, timeouts and dead kernels.

    Returns the events (1-based cell numbers) and the 0-based indices of the cells that ran.
    `on_kernel_start(km)` is called for each kernel started (the benchmark samples its memory).
    """
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    events: list[CellEvent] = []
    executed: set[int] = set()
    errors: dict[int, dict] = {}

    def on_cell_error(cell, cell_index, execute_reply):
        errors[cell_index] = execute_reply.get("content", {})

    quiet = logging.getLogger("tutorial_lib.grading.nbclient")
    quiet.setLevel(logging.CRITICAL)
    client = NotebookClient(
        nb,
        timeout=int(max(1, cell_timeout)),
        allow_errors=True,
        interrupt_on_timeout=True,
        error_on_timeout={
            "ename": TIMEOUT_ENAME,
            "evalue": f"the cell ran for more than {cell_timeout:g} s",
            "traceback": [],
        },
        startup_timeout=int(startup_timeout),
        iopub_timeout=10,
        record_timing=False,
        shutdown_kernel="immediate",
        on_cell_error=on_cell_error,
        log=quiet,
    )

    async def start():
        client.km = _kernel_manager()
        client.reset_execution_trackers()
        # the kernel's own log (e.g. ipykernel's warnings) would interleave with the report
        await client.async_start_new_kernel(cwd=str(cwd), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        await client.async_start_new_kernel_client()
        if on_kernel_start:
            on_kernel_start(client.km)

    async def stop():
        km = client.km
        if km is None:
            return
        if on_kernel_stop:
            on_kernel_stop(km)
        try:
            await client._async_cleanup_kernel()
        except Exception as err:  # noqa: BLE001 - a dead kernel may refuse a clean shutdown
            _LOG.debug("kernel cleanup: %s", err)
        client.km, client.kc = None, None

    async def responsive() -> bool:
        """After an interrupt: does the kernel answer a trivial request within PROBE_TIMEOUT?"""
        saved = client.timeout
        client.timeout = PROBE_TIMEOUT
        try:
            msg_id = client.kc.execute("pass", store_history=False, silent=True)
            return await client.async_wait_for_reply(msg_id) is not None
        except Exception:  # noqa: BLE001 - dead or wedged either way
            return False
        finally:
            client.timeout = saved

    async def restart(reason: str, cell: int | None):
        await stop()
        await start()
        events.append(
            CellEvent(
                cell,
                "kernel restarted",
                f"{reason}; the kernel was restarted and grading "
                "went on, without the variables defined before this cell",
            )
        )

    try:
        await start()
    except Exception as err:  # noqa: BLE001
        await stop()
        raise RuntimeError(f"the kernel did not start ({type(err).__name__}: {err})") from None
    started = time.monotonic()
    try:
        count = 0
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code" or not cell.source.strip():
                continue
            if notebook_timeout and time.monotonic() - started > notebook_timeout:
                events.append(
                    CellEvent(
                        index + 1,
                        "not run",
                        f"this cell and the ones after it were not run: "
                        f"the notebook ran past its limit of {notebook_timeout:g} s",
                    )
                )
                break
            count += 1
            try:
                await client.async_execute_cell(cell, index, execution_count=count)
                executed.add(index)
            except DeadKernelError:
                executed.add(index)
                events.append(
                    CellEvent(
                        index + 1,
                        "kernel died",
                        f"the kernel died while running {_cell_label(nb, index)} "
                        "(out of memory, or the code exited the process)",
                    )
                )
                await restart("after the kernel died", index + 1)
                continue
            except CellTimeoutError:  # not expected with interrupt_on_timeout, but be safe
                executed.add(index)
                errors[index] = {"ename": TIMEOUT_ENAME, "evalue": f"more than {cell_timeout:g} s"}
            error = errors.get(index)
            if not error:
                continue
            if error.get("ename") == TIMEOUT_ENAME:
                events.append(
                    CellEvent(
                        index + 1,
                        "timeout",
                        f"timed out after {cell_timeout:g} s "
                        f"({_cell_label(nb, index)}): an infinite loop? It was interrupted",
                    )
                )
                if not await responsive():
                    await restart("the interrupted cell did not stop", index + 1)
            else:
                message = f"{error.get('ename', 'Error')}: {error.get('evalue', '')}".strip()
                events.append(CellEvent(index + 1, "error", f"raised {message[:300]} ({_cell_label(nb, index)})"))
    finally:
        await stop()
    return events, executed


# ----------------------------------------------------------------------------- grading
def _read_log(path: Path) -> dict[str, dict]:
    results: dict[str, dict] = {}
    if not path.exists():
        return results
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and isinstance(record.get("exercise"), str):
            results[record["exercise"]] = record  # the last run of a check counts
    return results


def _missing_reason(nb, check_name: str, events: list[CellEvent], executed: set[int]) -> str:
    """Why a check of the chapter left no result: deleted, retyped, commented out, or did not run."""
    if nb is None:
        return "the notebook could not be read"
    pattern = re.compile(rf"\b{re.escape(check_name)}\b")
    code_cells = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and pattern.search(c.source)]
    live = [i for i in code_cells if any(pattern.search(line) for line in _code_lines(nb.cells[i].source))]
    if live:
        i = live[-1]
        cell_events = [e for e in events if e.cell == i + 1 and e.kind != "kernel restarted"]
        if cell_events:
            return f"the check did not run: cell {i + 1} {cell_events[0].message}"
        if i not in executed:
            return f"the check did not run: cell {i + 1} was not executed (see the notes below)"
        return (
            f"cell {i + 1} calls `{check_name}` but no result came back: is the call inside an `if` "
            "or a function that was not called?"
        )
    if code_cells:
        return f"the call to `{check_name}` in cell {code_cells[-1] + 1} is commented out"
    other = [i for i, c in enumerate(nb.cells) if c.cell_type != "code" and pattern.search(c.source)]
    if other:
        return (
            f"the check cell (cell {other[-1] + 1}) is a {nb.cells[other[-1]].cell_type} cell: "
            "change it back to a code cell"
        )
    return f"check cell deleted: no cell calls `{check_name}` (copy it back from a fresh chapter)"


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
            ex_id, ex.title, "missing", _missing_reason(nb, _check_name(ex), events, executed)
        )
    for ex_id, record in logged.items():
        status = record.get("status") if record.get("status") in STATUSES else "failed"
        results[ex_id] = ExerciseResult(ex_id, str(record.get("title", "")), status, str(record.get("hint", "")))
    return [results[k] for k in sorted(results, key=_exercise_key)]


async def agrade_notebook(
    path: str | Path,
    cell_timeout: float = DEFAULT_CELL_TIMEOUT,
    notebook_timeout: float | None = DEFAULT_NOTEBOOK_TIMEOUT,
    exercises: dict | None = None,
    env: dict[str, str] | None = None,
) -> NotebookReport:
    """Execute one notebook with the current Python and collect its exercises' results."""
    path = Path(path)
    exercises = _registry() if exercises is None else exercises
    modules = _chapter_modules()
    started = time.monotonic()
    nb, events, executed, logged, error = None, [], set(), {}, None
    try:
        nb = read_notebook(path)
    except (OSError, ValueError) as err:
        error = str(err)
    chapter = chapter_of(path, nb)
    if nb is not None:
        with tempfile.TemporaryDirectory(prefix="tutorial-grade-") as tmp:
            log = Path(tmp) / "grade.jsonl"
            try:
                events, executed = await run_notebook(
                    nb,
                    path.parent.resolve(),
                    kernel_env({**(env or {}), "TUTORIAL_GRADE_LOG": str(log)}),
                    cell_timeout=cell_timeout,
                    notebook_timeout=notebook_timeout,
                )
            except RuntimeError as err:
                error = str(err)
            logged = _read_log(log)
    if chapter is None and logged:
        chapter = sorted(logged, key=_exercise_key)[0].split(".")[0]
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


def _run(coro):
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
    return _run(agrade_notebook(path, **kwargs))


# ----------------------------------------------------------------------------- cache (progress)
def _cache_dir() -> Path:
    base = os.environ.get("TUTORIAL_GRADE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "tutorial_lib", "grades"
    )
    return Path(base)


def _fingerprint(path: Path, cell_timeout: float) -> str | None:
    """A key that changes when the notebook's cells or the library's checks change."""
    from . import __version__

    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        cells = [(c.get("cell_type"), "".join(c.get("source", ""))) for c in raw.get("cells", [])]
        meta = {k: raw.get("metadata", {}).get(k) for k in ("tutorial_lib", "tutorial")}
    except (OSError, ValueError, AttributeError, TypeError):
        return None
    digest = hashlib.sha256(json.dumps([path.name, cells, meta, cell_timeout, __version__]).encode())
    for source in sorted((Path(__file__).parent / "checks").glob("*.py")):
        digest.update(source.read_bytes())
    return digest.hexdigest()[:32]


def _cached(path: Path, key: str | None) -> NotebookReport | None:
    if key is None:
        return None
    try:
        report = NotebookReport.from_dict(json.loads((_cache_dir() / f"{key}.json").read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    report.path, report.cached = str(path), True
    return report


def _store(report: NotebookReport, key: str | None) -> None:
    """Cache a result, unless the run may not say what the notebook does (a timeout on a busy machine)."""
    if key is None or report.error or any(e.kind in ("timeout", "kernel died", "not run") for e in report.events):
        return
    try:
        _cache_dir().mkdir(parents=True, exist_ok=True)
        target = _cache_dir() / f"{key}.json"
        tmp = target.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(report.to_dict()), encoding="utf-8")
        tmp.replace(target)
    except OSError as err:
        _LOG.debug("grade cache not written: %s", err)


# ----------------------------------------------------------------------------- many notebooks
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
    exercises = _registry() if exercises is None else exercises
    cell_timeout = kwargs.get("cell_timeout", DEFAULT_CELL_TIMEOUT)

    async def one(path: Path) -> NotebookReport:
        key = _fingerprint(path, cell_timeout) if use_cache else None
        report = _cached(path, key)
        if report is None:
            async with limit:
                report = await agrade_notebook(path, exercises=exercises, **kwargs)
            _store(report, key)
        if on_done:
            on_done(report)
        return report

    return list(await asyncio.gather(*(one(p) for p in paths)))


def grade_many(paths: list[Path], **kwargs) -> list[NotebookReport]:
    return _run(agrade_many(paths, **kwargs))


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
    return [rows[k] for k in sorted(rows, key=_exercise_key)]


# ----------------------------------------------------------------------------- text output
def _width() -> int:
    return max(60, min(120, shutil.get_terminal_size((100, 20)).columns))


def format_report(report: NotebookReport) -> str:
    width = _width()
    chapter = f"chapter {report.chapter} {report.chapter_name or ''}".strip() if report.chapter else "chapter unknown"
    head = f"{report.path}  ({chapter}): {report.passed}/{report.total} passed"
    head += "  [cached]" if report.cached else f"  [{report.seconds:.0f} s]"
    lines = [head]
    if report.error:
        lines.append(f"  NOT GRADED: {report.error}")
    if report.results:
        title_w = min(34, max(len(r.title) for r in report.results))
        lines.append(f"  {'exercise':<9}{'title':<{title_w + 2}}{'status':<16}hint")
        for r in report.results:
            lead = f"  {r.exercise:<9}{r.title[:title_w]:<{title_w + 2}}{_SYMBOL[r.status]} {r.status:<14}"
            if not r.hint or r.status == "passed":
                lines.append(lead.rstrip())
                continue
            indent = " " * len(lead)
            wrapped = textwrap.wrap(r.hint, max(30, width - len(lead))) or [""]
            lines.append(lead + wrapped[0])
            lines += [indent + w for w in wrapped[1:]]
    elif not report.error:
        lines.append("  no exercises found for this notebook")
    if report.events:
        lines.append("  notes:")
        for e in report.events:
            lines += textwrap.wrap(e.line(), width - 4, initial_indent="  - ", subsequent_indent="    ")
    return "\n".join(lines)


def format_summary(reports: list[NotebookReport]) -> str:
    rows = class_summary(reports)
    graded = sum(r.error is None for r in reports)
    lines = [f"Class summary: {len(reports)} notebooks ({graded} graded, {len(reports) - graded} not gradable)"]
    if not rows:
        return "\n".join(lines + ["  no exercises reported"])
    title_w = min(34, max(len(r["title"]) for r in rows))
    lines.append(f"  {'exercise':<9}{'title':<{title_w + 2}}{'passed':>8}{'failed':>8}{'not att.':>10}{'missing':>9}")
    for row in rows:
        lines.append(
            f"  {row['exercise']:<9}{row['title'][:title_w]:<{title_w + 2}}"
            f"{row['passed']:>5}/{row['notebooks']:<2}{row['failed']:>8}{row['not attempted']:>10}{row['missing']:>9}"
        )
    return "\n".join(lines)


def as_json(reports: list[NotebookReport]) -> dict:
    return {"notebooks": [r.to_dict() for r in reports], "summary": class_summary(reports)}


# ----------------------------------------------------------------------------- CLI
def _common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_CELL_TIMEOUT,
        metavar="S",
        help=f"seconds one cell may run before it is interrupted (default {DEFAULT_CELL_TIMEOUT})",
    )
    parser.add_argument(
        "--notebook-timeout",
        type=float,
        default=DEFAULT_NOTEBOOK_TIMEOUT,
        metavar="S",
        help=f"seconds a whole notebook may run; later cells are skipped (default {DEFAULT_NOTEBOOK_TIMEOUT})",
    )
    parser.add_argument(
        "--jobs",
        "-j",
        type=int,
        default=None,
        help=f"notebooks graded at once (default {default_jobs()}; each runs its own kernel)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON (for a learning-management system)")


def main(argv: list[str] | None = None) -> int:
    """`python -m tutorial_lib grade PATH...`: exit 0 when graded (whatever the marks), 2 when nothing
    could be graded; with --strict, 1 unless every exercise of every notebook passed and no cell raised."""
    parser = argparse.ArgumentParser(
        prog="python -m tutorial_lib grade",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("paths", nargs="+", help="notebooks, or directories of notebooks (a class)")
    _common_options(parser)
    parser.add_argument("--cache", action="store_true", help="reuse earlier results for unchanged notebooks")
    parser.add_argument(
        "--strict",
        action="store_true",
        help="exit 1 unless every exercise passed and no cell raised or timed out (CI on solutions/)",
    )
    args = parser.parse_args(argv)
    try:
        paths = find_notebooks(args.paths)
    except FileNotFoundError as err:
        print(f"grade: {err}", file=sys.stderr)
        return 2
    if not paths:
        print(f"grade: no .ipynb files in {' '.join(args.paths)}", file=sys.stderr)
        return 2

    def progress(report: NotebookReport) -> None:
        if args.json:
            return
        print(format_report(report), end="\n\n", flush=True)

    reports = grade_many(
        paths,
        jobs=args.jobs,
        use_cache=args.cache,
        on_done=progress,
        cell_timeout=args.timeout,
        notebook_timeout=args.notebook_timeout,
    )
    if args.json:
        print(json.dumps(as_json(reports), indent=1))
    elif len(reports) > 1:
        print(format_summary(reports))
    if all(r.error for r in reports):
        return 2
    if args.strict and not all(r.error is None and r.total and r.passed == r.total and not r.events for r in reports):
        return 1
    return 0


def progress_main(argv: list[str] | None = None) -> int:
    """`python -m tutorial_lib progress [DIR]`: per chapter, which exercises the notebooks in DIR pass."""
    parser = argparse.ArgumentParser(
        prog="python -m tutorial_lib progress",
        description="Per chapter, which exercises your notebooks pass. Results are "
        "cached per notebook content: unchanged notebooks are not run again.",
    )
    parser.add_argument("directory", nargs="?", default="chapters", help="where your notebooks are (default chapters/)")
    _common_options(parser)
    parser.add_argument("--no-cache", action="store_true", help="run every notebook again")
    args = parser.parse_args(argv)
    directory = Path(args.directory)
    if not directory.is_dir():
        print(
            f"progress: {directory} is not a directory (run it from the repository, or give the folder "
            "with your chapter notebooks)",
            file=sys.stderr,
        )
        return 2
    paths = sorted(p for p in directory.glob("*.ipynb") if re.match(r"\d{2}_", p.name))
    if not args.json and paths:
        print(
            f"Checking {len(paths)} notebook{'s' * (len(paths) > 1)} in {directory}/ (unchanged ones come "
            "from the cache)...",
            flush=True,
        )
    reports = grade_many(
        paths,
        jobs=args.jobs,
        use_cache=not args.no_cache,
        cell_timeout=args.timeout,
        notebook_timeout=args.notebook_timeout,
    )
    by_chapter = {r.chapter: r for r in reports}
    exercises = _registry()
    chapters = sorted(set(_chapter_modules()) | {r.chapter for r in reports if r.chapter})
    rows = []
    for ch in chapters:
        report = by_chapter.get(ch)
        expected = {k: v.title for k, v in exercises.items() if k.split(".")[0] == ch}
        if report is not None:
            statuses = {r.exercise: r.status for r in report.results}
            expected.update({r.exercise: r.title for r in report.results})
        else:
            statuses = {}
        rows.append(
            {
                "chapter": ch,
                "name": _chapter_modules().get(ch, report.chapter_name if report else ""),
                "notebook": report.path if report else None,
                "error": report.error if report else None,
                "exercises": [
                    {"exercise": k, "title": expected[k], "status": statuses.get(k, "no notebook")}
                    for k in sorted(expected, key=_exercise_key)
                ],
            }
        )
    if args.json:
        print(json.dumps({"directory": str(directory), "chapters": rows}, indent=1))
        return 0
    total = sum(len(r["exercises"]) for r in rows)
    passed = sum(e["status"] == "passed" for r in rows for e in r["exercises"])
    for row in rows:
        done = sum(e["status"] == "passed" for e in row["exercises"])
        name = f"{row['chapter']} {row['name'] or ''}"
        if row["notebook"] is None:
            note = f"no notebook {row['chapter']}_*.ipynb in {directory}/"
            marks = ""
        elif row["error"]:
            note, marks = f"not gradable: {row['error']}", ""
        else:
            note = f"{done}/{len(row['exercises'])}"
            marks = "  ".join(f"{_SYMBOL.get(e['status'], '·')} {e['exercise']}" for e in row["exercises"])
        print(f"{name:<28}{note:<8}{marks}".rstrip())
    print(
        f"\n{passed} of {total} exercises passed.  (✔ passed  ✘ failed  … not attempted  ? check missing or did "
        "not run; `python -m tutorial_lib grade FILE` shows hints)"
    )
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
