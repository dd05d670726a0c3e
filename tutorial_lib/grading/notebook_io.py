"""Reading students' notebooks: normalise whatever was saved into something nbclient runs, find the
chapter, and label cells for the report."""

from __future__ import annotations

import json
import re
from pathlib import Path

from .registry import chapter_modules

__all__ = ["cell_label", "chapter_of", "code_lines", "read_notebook"]


def _normalise_cell(cell: dict) -> None:
    """In place: metadata a dict, source a string, a known cell type, no stale outputs."""
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


def _load_json(path: Path) -> dict:
    """The notebook file as a dict with a list of cells; ValueError with a clear reason otherwise."""
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
    return raw


def read_notebook(path: Path):
    """Read and normalise a notebook so that nbclient can run it; raise ValueError with a clear reason."""
    import nbformat

    raw = _load_json(path)
    raw.setdefault("metadata", {})
    raw.setdefault("nbformat", 4)
    raw.setdefault("nbformat_minor", 5)
    cells = []
    for cell in raw["cells"]:
        if not isinstance(cell, dict):
            continue
        _normalise_cell(cell)
        cells.append(cell)
    raw["cells"] = cells
    try:
        nb = nbformat.from_dict(raw)
        if raw["nbformat"] < 4:
            nb = nbformat.convert(nb, 4)
        assert isinstance(nb, nbformat.NotebookNode)  # from_dict of a dict is a NotebookNode
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
    known = [m for m in re.findall(r"(?:^|[^0-9])(\d{2})_", name) if m in chapter_modules()]
    if known:
        return known[0]
    if nb is None:
        return None
    for key in ("tutorial_lib", "tutorial"):
        meta = nb.metadata.get(key)
        if isinstance(meta, dict) and meta.get("chapter") not in (None, ""):
            value = str(meta["chapter"])
            return value.zfill(2) if value.isdigit() else value
    by_module = {module: ch for ch, module in chapter_modules().items()}
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for module in re.findall(r"tutorial_lib\.checks(?:\s+import\s+|\.)(\w+)", cell.source):
            if module in by_module:
                return by_module[module]
    return None


def code_lines(source: str) -> list[str]:
    """The lines of a cell that are neither blank nor comments."""
    return [line for line in source.splitlines() if line.strip() and not line.strip().startswith("#")]


def cell_label(nb, index: int) -> str:
    """The first line of code of cell `index`, quoted and cut at 50 characters, for the report."""
    lines = code_lines(nb.cells[index].source) or [nb.cells[index].source.strip()]
    first = lines[0].strip() if lines else ""
    return f"`{first[:50]}{'…' if len(first) > 50 else ''}`" if first else "(empty)"
