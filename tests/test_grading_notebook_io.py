"""tutorial_lib.grading.notebook_io: reading whatever a student saved, and finding the chapter."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from grading_scenarios import notebook

from tutorial_lib import grading
from tutorial_lib.grading.notebook_io import cell_label


def test_chapter_detection_without_kernel(tmp_path):
    nb = notebook("from tutorial_lib.checks import induction_heads as checks")
    assert grading.chapter_of(Path("05_x.ipynb")) == "05"
    assert grading.chapter_of(Path("alice_05_induction_heads.ipynb")) == "05"
    assert grading.chapter_of(Path("alice_97_unknown.ipynb")) is None
    assert grading.chapter_of(Path("mine.ipynb"), nb) == "05"
    assert grading.chapter_of(Path("mine.ipynb"), notebook(metadata={"tutorial": {"chapter": 3}})) == "03"
    assert grading.chapter_of(Path("mine.ipynb"), notebook("print(1)")) is None
    (tmp_path / "list.ipynb").write_text("[1, 2]")
    with pytest.raises(ValueError, match="not a notebook"):
        grading.read_notebook(tmp_path / "list.ipynb")


def test_read_notebook_normalises_what_students_save(tmp_path):
    raw = {
        "cells": [
            {"cell_type": "code", "source": ["x = 1\n", "y = 2"], "outputs": [{"stale": 1}], "metadata": []},
            {"cell_type": "heading", "source": "old"},
            "not a cell",
            {"cell_type": "markdown", "source": "# hi", "outputs": [], "execution_count": 3},
        ],
        "metadata": {"kernelspec": {"name": "julia-1.9"}},
    }
    (tmp_path / "a.ipynb").write_text(json.dumps(raw))
    nb = grading.read_notebook(tmp_path / "a.ipynb")
    assert [c.cell_type for c in nb.cells] == ["code", "raw", "markdown"]
    assert nb.cells[0].source == "x = 1\ny = 2" and nb.cells[0].outputs == [] and nb.cells[0].metadata == {}
    assert "outputs" not in nb.cells[2] and "kernelspec" not in nb.metadata
    (tmp_path / "b.ipynb").write_bytes(b"\xff\xfe")
    with pytest.raises(ValueError, match="not UTF-8"):
        grading.read_notebook(tmp_path / "b.ipynb")


def test_cell_label_quotes_the_first_line_of_code():
    nb = notebook("# a comment\nwhile True:\n    pass", "", "x = '" + "a" * 60 + "'")
    assert cell_label(nb, 0) == "`while True:`"
    assert cell_label(nb, 1) == "(empty)"
    assert cell_label(nb, 2).endswith("…`") and len(cell_label(nb, 2)) == 53
