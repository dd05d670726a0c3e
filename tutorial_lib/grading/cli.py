"""Grade students' notebooks headless: execute each one with the current Python kernel (sandboxed:
a scrubbed environment, a private folder, resource limits), run every exercise check on the
student's functions in a separate process that student code cannot change, and report per
exercise passed / failed / not attempted / missing, with the hint and what went wrong where.

The command lines: `python -m tutorial_lib grade PATH...` (`main`) and `python -m tutorial_lib
progress [DIR]` (`progress_main`).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from .executor import DEFAULT_CELL_TIMEOUT, DEFAULT_NOTEBOOK_TIMEOUT
from .formatting import SYMBOLS, as_json, format_report, format_summary
from .grader import default_jobs, find_notebooks, grade_many
from .registry import chapter_modules, exercise_key, exercise_registry
from .reports import NotebookReport
from .sandbox import DEFAULT_LIMITS, Limits

__all__ = ["main", "progress_main"]


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
    limits = parser.add_argument_group("limits on student code (per process; 0 = none)")
    for name, unit, what in (
        ("memory_mb", "MB", "heap and private memory (RLIMIT_DATA)"),
        ("cpu_seconds", "S", "CPU seconds of a kernel, all threads"),
        ("file_mb", "MB", "size of any file written"),
        ("processes", "N", "processes beyond the user's current ones (not enforced for root)"),
    ):
        default = getattr(DEFAULT_LIMITS, name)
        limits.add_argument(
            "--" + name.replace("_", "-"), type=int, default=default, metavar=unit, help=f"{what} (default {default})"
        )


def _limits(args: argparse.Namespace) -> Limits:
    return Limits(args.memory_mb, args.cpu_seconds, args.file_mb, args.processes)


def main(argv: list[str] | None = None) -> int:
    """`python -m tutorial_lib grade PATH...`: exit 0 when graded (whatever the marks), 2 when nothing
    could be graded; with --strict, 1 unless every exercise of every notebook passed and no cell raised."""
    parser = argparse.ArgumentParser(
        prog="python -m tutorial_lib grade",
        description=(__doc__ or "").split("\n\n")[0],
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
        limits=_limits(args),
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


def _progress_rows(reports: list[NotebookReport]) -> list[dict]:
    """Per chapter (known or graded): its notebook, error, and every exercise with its status."""
    by_chapter = {r.chapter: r for r in reports}
    exercises = exercise_registry()
    chapters = sorted(set(chapter_modules()) | {r.chapter for r in reports if r.chapter})
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
                "name": chapter_modules().get(ch, report.chapter_name if report else ""),
                "notebook": report.path if report else None,
                "error": report.error if report else None,
                "exercises": [
                    {"exercise": k, "title": expected[k], "status": statuses.get(k, "no notebook")}
                    for k in sorted(expected, key=exercise_key)
                ],
            }
        )
    return rows


def _print_progress(rows: list[dict], directory: Path) -> None:
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
            marks = "  ".join(f"{SYMBOLS.get(e['status'], '·')} {e['exercise']}" for e in row["exercises"])
        print(f"{name:<28}{note:<8}{marks}".rstrip())
    print(
        f"\n{passed} of {total} exercises passed.  (✔ passed  ✘ failed  … not attempted  ? check missing or did "
        "not run; `python -m tutorial_lib grade FILE` shows hints)"
    )


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
        limits=_limits(args),
    )
    rows = _progress_rows(reports)
    if args.json:
        print(json.dumps({"directory": str(directory), "chapters": rows}, indent=1))
        return 0
    _print_progress(rows, directory)
    return 0
