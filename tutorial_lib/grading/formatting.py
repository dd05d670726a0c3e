"""The grader's text and JSON output: a report per notebook, a class summary."""

from __future__ import annotations

import shutil
import textwrap

from .grader import class_summary
from .reports import NotebookReport

__all__ = ["SYMBOLS", "as_json", "format_report", "format_summary"]

SYMBOLS = {"passed": "✔", "failed": "✘", "not attempted": "…", "missing": "?"}


def _width() -> int:
    return max(60, min(120, shutil.get_terminal_size((100, 20)).columns))


def _result_lines(report: NotebookReport, width: int) -> list[str]:
    """One row per exercise: id, title, status, and the hint wrapped under its column."""
    title_w = min(34, max(len(r.title) for r in report.results))
    lines = [f"  {'exercise':<9}{'title':<{title_w + 2}}{'status':<16}hint"]
    for r in report.results:
        lead = f"  {r.exercise:<9}{r.title[:title_w]:<{title_w + 2}}{SYMBOLS[r.status]} {r.status:<14}"
        if not r.hint or r.status == "passed":
            lines.append(lead.rstrip())
            continue
        indent = " " * len(lead)
        wrapped = textwrap.wrap(r.hint, max(30, width - len(lead))) or [""]
        lines.append(lead + wrapped[0])
        lines += [indent + w for w in wrapped[1:]]
    return lines


def format_report(report: NotebookReport) -> str:
    width = _width()
    chapter = f"chapter {report.chapter} {report.chapter_name or ''}".strip() if report.chapter else "chapter unknown"
    head = f"{report.path}  ({chapter}): {report.passed}/{report.total} passed"
    head += "  [cached]" if report.cached else f"  [{report.seconds:.0f} s]"
    lines = [head]
    if report.error:
        lines.append(f"  NOT GRADED: {report.error}")
    if report.results:
        lines += _result_lines(report, width)
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
