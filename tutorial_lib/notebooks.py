"""One source for notebooks: `solutions/` is complete and committed with outputs; `chapters/`
is generated from it, with exercise bodies replaced by stubs and outputs cleared.

    python -m tutorial_lib.notebooks build [--check]          write chapters/ (or fail if stale)
    python -m tutorial_lib.notebooks execute solutions/X.ipynb run in place, keep outputs, clean metadata
    python -m tutorial_lib.notebooks from-script X.py solutions/X.ipynb   percent script -> notebook
    python -m tutorial_lib.notebooks sync-setup               every solution's first cell := SETUP_CELL
"""

from __future__ import annotations

import argparse
import copy
import os
import re
import sys
from pathlib import Path

import nbformat

REPO_URL = "https://github.com/mechinterp-curriculum/mechinterp-curriculum"
ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = ROOT / "solutions"
CHAPTERS = ROOT / "chapters"

REPO_ENV = "TUTORIAL_REPO_URL"  # read by the setup cell on Colab: install from a fork or a mirror instead
SETUP_CELL = f"""\
# Setup: the same cell opens every notebook. On Colab it installs tutorial_lib first, from
# TUTORIAL_REPO_URL if set (a fork or a mirror: %env TUTORIAL_REPO_URL=https://host/you/fork@branch).
import os
import sys

if "google.colab" in sys.modules:
    repo_url = os.environ.get("{REPO_ENV}", "{REPO_URL}")
    %pip install --quiet "tutorial_lib @ git+{{repo_url}}"

import tutorial_lib

session = tutorial_lib.setup(seed=0)"""


def sync_setup_cells(solutions: Path = SOLUTIONS) -> list[Path]:
    """Make the first code cell of every solution notebook the canonical SETUP_CELL (its source only:
    outputs are kept, as the cell prints the same off Colab). Returns the notebooks changed."""
    changed = []
    for path in sorted(solutions.glob("*.ipynb")):
        nb = _read(path)
        cell = next((c for c in nb.cells if c.cell_type == "code"), None)
        if cell is not None and cell.source != SETUP_CELL:
            cell.source = SETUP_CELL
            _write(nb, path)
            changed.append(path)
    return changed


BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
SOLUTION_ONLY = "# solution-only"
_DEF = re.compile(r"^\s*def\s+(\w+)\s*\(")


class NotebookError(ValueError):
    """A solution notebook breaks the authoring rules (unbalanced markers, no setup cell ...)."""


def _read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def _write(nb: nbformat.NotebookNode, path: Path) -> None:
    path.write_text(nbformat.writes(nb) + "\n", encoding="utf-8")


def stub_exercises(source: str, where: str = "") -> str:
    """Replace every BEGIN/END SOLUTION region with a NotImplementedError naming the exercise."""
    out: list[str] = []
    lines = source.split("\n")
    inside, name = False, None
    for number, line in enumerate(lines, 1):
        stripped = line.strip()
        match = _DEF.match(line)
        if match and not inside:
            name = match.group(1)
        if stripped == BEGIN:
            if inside:
                raise NotebookError(f"{where} line {number}: {BEGIN} inside another solution region")
            inside = True
            indent = line[: len(line) - len(line.lstrip())]
            label = f"`{name}`" if name else "this exercise"
            out.append(f'{indent}raise NotImplementedError("Exercise: write {label}, then run its check.")')
            continue
        if stripped == END:
            if not inside:
                raise NotebookError(f"{where} line {number}: {END} without {BEGIN}")
            inside = False
            continue
        if not inside:
            out.append(line)
    if inside:
        raise NotebookError(f"{where}: {BEGIN} is never closed")
    return "\n".join(out)


def clean_metadata(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Keep only what a reader needs: kernelspec, language name, and cell tags."""
    nb.metadata = nbformat.NotebookNode(
        kernelspec={"display_name": "Python 3", "language": "python", "name": "python3"},
        language_info={"name": "python"},
    )
    for cell in nb.cells:
        tags = cell.metadata.get("tags")
        cell.metadata = nbformat.NotebookNode({"tags": tags} if tags else {})
    return nb


def first_code_cell(nb: nbformat.NotebookNode) -> str | None:
    return next((c.source for c in nb.cells if c.cell_type == "code"), None)


def student_version(solution: nbformat.NotebookNode, where: str = "") -> nbformat.NotebookNode:
    """The chapter a student gets: stubs for exercises, solution-only cells dropped, no outputs."""
    nb = copy.deepcopy(solution)
    if first_code_cell(nb) != SETUP_CELL:
        raise NotebookError(f"{where}: the first code cell must be the canonical setup cell (notebooks.SETUP_CELL)")
    cells = []
    for cell in nb.cells:
        if cell.cell_type == "code":
            if cell.source.split("\n", 1)[0].strip() == SOLUTION_ONLY:
                continue
            cell.source = stub_exercises(cell.source, where)
            cell.outputs = []
            cell.execution_count = None
        cells.append(cell)
    nb.cells = cells
    return clean_metadata(nb)


def build(check: bool = False, solutions: Path = SOLUTIONS, chapters: Path = CHAPTERS) -> list[Path]:
    """Write chapters/ from solutions/; with check=True write nothing and return the stale files."""
    stale = []
    chapters.mkdir(exist_ok=True)
    expected = set()
    for src in sorted(solutions.glob("*.ipynb")):
        dst = chapters / src.name
        expected.add(dst.name)
        text = nbformat.writes(student_version(_read(src), where=str(src))) + "\n"
        if not dst.exists() or dst.read_text(encoding="utf-8") != text:
            stale.append(dst)
            if not check:
                dst.write_text(text, encoding="utf-8")
    for extra in sorted(chapters.glob("*.ipynb")):
        if extra.name not in expected:
            stale.append(extra)
            if not check:
                extra.unlink()
    return stale


def from_script(script: Path, target: Path) -> None:
    """Convert a percent-format script (`# %%`, `# %% [markdown]`) to a notebook with the setup cell."""
    cells, kind, buf = [], None, []

    def flush():
        text = "\n".join(buf).strip("\n")
        if kind == "markdown":
            text = "\n".join(re.sub(r"^# ?", "", line) for line in text.split("\n"))
            cells.append(nbformat.v4.new_markdown_cell(text))
        elif kind == "code" and text:
            cells.append(nbformat.v4.new_code_cell(text))

    for line in script.read_text(encoding="utf-8").split("\n"):
        if line.startswith("# %%"):
            flush()
            kind, buf = ("markdown" if "[markdown]" in line else "code"), []
        elif kind is not None:
            buf.append(line)
    flush()
    if first_code_cell(nbformat.v4.new_notebook(cells=cells)) != SETUP_CELL:
        at = next((i for i, c in enumerate(cells) if c.cell_type == "code"), len(cells))
        cells.insert(at, nbformat.v4.new_code_cell(SETUP_CELL))
    nb = nbformat.v4.new_notebook(cells=cells)
    for i, cell in enumerate(nb.cells):  # stable ids: diffs stay readable
        cell.id = f"cell-{i:03d}"
    _write(clean_metadata(nb), target)


def execute(path: Path, timeout: int = 900) -> None:
    """Run a notebook in place as CI will compare it: offline, no progress bars, small HTML."""
    from nbclient import NotebookClient

    os.environ.setdefault("TUTORIAL_PROGRESS", "0")
    os.environ.setdefault("TUTORIAL_THREADS", "1")
    os.environ.setdefault("TUTORIAL_CIRCUITSVIS", "cdn")  # committed outputs stay small
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    nb = _read(path)
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        record_timing=False,
        coalesce_streams=True,
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute()
    _write(clean_metadata(nb), path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tutorial_lib.notebooks",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="write chapters/ from solutions/")
    b.add_argument("--check", action="store_true", help="fail if chapters/ is out of date; write nothing")
    e = sub.add_parser("execute", help="run notebooks in place, keeping outputs")
    e.add_argument("paths", nargs="+", type=Path)
    f = sub.add_parser("from-script", help="percent-format script -> notebook")
    f.add_argument("script", type=Path)
    f.add_argument("target", type=Path)
    sub.add_parser("sync-setup", help="make every solution's first code cell notebooks.SETUP_CELL (outputs kept)")
    args = parser.parse_args(argv)
    if args.command == "build":
        stale = build(check=args.check)
        if args.check and stale:
            names = ", ".join(p.name for p in stale)
            print(f"chapters/ is out of date ({names}): run `python -m tutorial_lib.notebooks build`.")
            return 1
        print("chapters/ is up to date." if args.check else f"wrote {len(stale)} chapter notebook(s).")
    elif args.command == "execute":
        for path in args.paths:
            execute(path)
            print(f"executed {path}")
    elif args.command == "sync-setup":
        print(f"updated the setup cell of {len(sync_setup_cells())} solution notebook(s); then run build.")
    else:
        from_script(args.script, args.target)
        print(f"wrote {args.target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
