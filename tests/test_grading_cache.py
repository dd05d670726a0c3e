"""tutorial_lib.grading.cache: what is stored, what is not, and what changes the key."""

from __future__ import annotations

from pathlib import Path

from grading_scenarios import notebook

from tutorial_lib import grading
from tutorial_lib.grading import cache


def test_runs_that_timed_out_are_not_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("TUTORIAL_GRADE_CACHE", str(tmp_path))
    ok = grading.NotebookReport("a.ipynb", "98", None, [grading.ExerciseResult("98.1", "t", "passed")])
    cache.store_report(ok, "good")
    slow = grading.NotebookReport("a.ipynb", "98", None, events=[grading.CellEvent(1, "timeout", "timed out")])
    cache.store_report(slow, "slow")
    assert (tmp_path / "good.json").exists() and not (tmp_path / "slow.json").exists()
    cached = cache.cached_report(Path("b.ipynb"), "good")
    assert cached is not None
    assert cached.cached and cached.path == "b.ipynb" and cached.results == ok.results


def test_fingerprint_follows_the_cells_and_the_timeout(tmp_path):
    import nbformat

    path = tmp_path / "98_x.ipynb"
    nbformat.write(notebook("x = 1"), path)
    key = cache.fingerprint(path, 40)
    assert key is not None and key == cache.fingerprint(path, 40)
    assert cache.fingerprint(path, 41) != key
    nbformat.write(notebook("x = 2"), path)
    assert cache.fingerprint(path, 40) != key
    path.write_text("not json")
    assert cache.fingerprint(path, 40) is None
