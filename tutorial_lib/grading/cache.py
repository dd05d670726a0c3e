"""The grade cache behind `progress`: a notebook's report is reused while its cells, the checks and
the library's version stay the same."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

from .reports import NotebookReport

__all__ = ["cache_dir", "cached_report", "fingerprint", "store_report"]

_LOG = logging.getLogger("tutorial_lib.grading")


def cache_dir() -> Path:
    """$TUTORIAL_GRADE_CACHE, else $XDG_CACHE_HOME/tutorial_lib/grades (~/.cache by default)."""
    base = os.environ.get("TUTORIAL_GRADE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "tutorial_lib", "grades"
    )
    return Path(base)


def fingerprint(path: Path, cell_timeout: float) -> str | None:
    """A key that changes when the notebook's cells or the library's checks change."""
    from .. import __version__

    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        cells = [(c.get("cell_type"), "".join(c.get("source", ""))) for c in raw.get("cells", [])]
        meta = {k: raw.get("metadata", {}).get(k) for k in ("tutorial_lib", "tutorial")}
    except (OSError, ValueError, AttributeError, TypeError):
        return None
    digest = hashlib.sha256(json.dumps([path.name, cells, meta, cell_timeout, __version__]).encode())
    for source in sorted((Path(__file__).parent.parent / "checks").glob("*.py")):
        digest.update(source.read_bytes())
    return digest.hexdigest()[:32]


def cached_report(path: Path, key: str | None) -> NotebookReport | None:
    """The stored report under `key`, as the report of `path`; None when there is none."""
    if key is None:
        return None
    try:
        report = NotebookReport.from_dict(json.loads((cache_dir() / f"{key}.json").read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    report.path, report.cached = str(path), True
    return report


def store_report(report: NotebookReport, key: str | None) -> None:
    """Cache a result, unless the run may not say what the notebook does (a timeout on a busy machine)."""
    if key is None or report.error or any(e.kind in ("timeout", "kernel died", "not run") for e in report.events):
        return
    try:
        cache_dir().mkdir(parents=True, exist_ok=True)
        target = cache_dir() / f"{key}.json"
        tmp = target.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(report.to_dict()), encoding="utf-8")
        tmp.replace(target)
    except OSError as err:
        _LOG.debug("grade cache not written: %s", err)
