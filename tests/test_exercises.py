"""The exercise rules every chapter keeps: enough exercises, several that build a method end to end,
layered hints that give the idea before any code, one open exercise checked by a measured property,
learning objectives with a time, and a student path that survives a skipped exercise."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from tutorial_lib import notebooks

SOLUTIONS = sorted(notebooks.SOLUTIONS.glob("*.ipynb"))
HEADING = re.compile(r"^###\s+Exercise\s+(\d\d\.\d+)\b(.*)$", re.MULTILINE)
HINT = re.compile(r"<details>\s*<summary>(.*?)</summary>(.*?)</details>", re.DOTALL)
MIN_EXERCISES, MIN_BUILD, BUILD_LINES = 8, 3, (10, 30)
# Chapters whose exercises follow these rules; the others are expected to fail them until converted.
CONVERTED: set[str] = {"00", "01", "02", "03", "04", "05", "06", "07", "08"}


def rules_apply(path: Path):
    chapter = path.stem[:2]
    marks = () if chapter in CONVERTED else (pytest.mark.xfail(reason=f"chapter {chapter} not converted yet"),)
    return pytest.param(path, id=chapter, marks=marks)


CHAPTERS = [rules_apply(p) for p in SOLUTIONS]


def exercise_cells(nb) -> list[tuple[str, str, str]]:
    """(id, heading tail, markdown) for each exercise heading, in order."""
    found = []
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for match in HEADING.finditer(cell.source):
                found.append((match.group(1), match.group(2), cell.source[match.start() :]))
    return found


def hints(markdown: str) -> list[tuple[str, str]]:
    """(summary, body) of each collapsible hint block of an exercise, up to the next heading."""
    body = re.split(r"^#{1,3}\s", markdown[4:], maxsplit=1, flags=re.MULTILINE)[0]
    return [(s.strip(), b) for s, b in HINT.findall(body) if "hint" in s.lower()]


def solution_lines(nb) -> list[int]:
    """Lines of student code (not blank, not comments) in each solution region, in order."""
    counts = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        inside, n = False, 0
        for line in cell.source.splitlines():
            stripped = line.strip()
            if stripped == notebooks.BEGIN:
                inside, n = True, 0
            elif stripped == notebooks.END:
                inside = False
                counts.append(n)
            elif inside and stripped and not stripped.startswith("#"):
                n += 1
    return counts


def statement_like(code: str) -> bool:
    """Inline code that reads as a statement or call (`a = b`, `f(x)`), not a name or a shape."""
    return bool(re.search(r"(?<![<>=!])=(?!=)|\w\(", code))


@pytest.fixture(params=CHAPTERS)
def nb(request):
    return nbformat.read(request.param, as_version=4)


def test_enough_exercises(nb):
    ids = [i for i, _, _ in exercise_cells(nb)]
    assert len(ids) >= MIN_EXERCISES, f"{len(ids)} exercises ({ids}); every chapter has at least {MIN_EXERCISES}"
    assert len(ids) == len(set(ids)), f"an exercise id is used twice: {ids}"


def test_build_it_exercises(nb):
    lo, hi = BUILD_LINES
    lines = solution_lines(nb)
    built = [n for n in lines if lo <= n <= hi]
    assert len(built) >= MIN_BUILD, (
        f"solution regions have {sorted(lines)} lines; at least {MIN_BUILD} exercises should be {lo}-{hi} "
        "lines of the student's own code implementing a method end to end"
    )


def test_hints_guide_before_they_tell(nb):
    for ex_id, _, markdown in exercise_cells(nb):
        blocks = hints(markdown)
        assert len(blocks) >= 2, f"{ex_id}: give layered hints (the idea, then the API or shapes, then code)"
        first = blocks[0][1]
        assert "```" not in first, f"{ex_id}: the first hint holds a code block; it should give the idea"
        spans = re.findall(r"`([^`]+)`", first)
        assert not any(statement_like(s) for s in spans), f"{ex_id}: the first hint shows code: {spans}"
        assert all("```" not in b for _, b in blocks[:-1]), f"{ex_id}: only the last hint may show a code block"


def test_one_open_exercise(nb):
    open_ones = [i for i, tail, _ in exercise_cells(nb) if "(open)" in tail]
    assert len(open_ones) >= 1, "every chapter has an open exercise, heading `### Exercise NN.M (open): ...`"


def test_objectives_and_time(nb):
    intro = "\n".join(c.source for c in nb.cells[:4] if c.cell_type == "markdown")
    assert re.search(r"learning objectives", intro, re.IGNORECASE), "state the learning objectives at the top"
    assert re.search(r"\babout \d+(\.\d+)?\s*(hours?|minutes)\b", intro, re.IGNORECASE), (
        "state a realistic time at the top, e.g. 'About 3 hours'"
    )


def test_checks_fall_back_to_the_reference(nb):
    """Every check call rebinds the student's function with `.or_reference()`, so that cells after a
    skipped exercise use the library's reference (with a note) instead of failing."""
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for line in cell.source.splitlines():
            if re.search(r"\bchecks\.check_\w+\(", line) and not line.lstrip().startswith("#"):
                assert ".or_reference()" in line, f"use `f = checks.check_f(f).or_reference()`: {line.strip()}"


@pytest.mark.slow
@pytest.mark.parametrize("path", CHAPTERS)
def test_student_path_survives_every_skipped_exercise(path: Path, tmp_path: Path):
    """The generated student notebook, every exercise left as its stub, runs to the end."""
    student = notebooks.student_version(nbformat.read(path, as_version=4))
    target = tmp_path / path.name
    nbformat.write(student, target)
    notebooks.execute(target, timeout=600)
    executed = nbformat.read(target, as_version=4)
    for index, cell in enumerate(executed.cells):
        for output in cell.get("outputs", []):
            assert output.output_type != "error", f"cell {index} failed with every exercise skipped: {output.ename}"
