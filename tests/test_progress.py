"""progress(): a tqdm bar over a loop, or the bare iterable when TUTORIAL_PROGRESS=0."""

from __future__ import annotations

from tqdm.auto import tqdm

from tutorial_lib import progress


def test_silenced_progress_is_the_iterable_itself(monkeypatch):
    monkeypatch.setenv("TUTORIAL_PROGRESS", "0")
    items = range(5)
    assert not progress.progress_enabled()
    assert progress.progress(items, desc="steps") is items


def test_progress_bar_yields_the_same_items(monkeypatch):
    monkeypatch.setenv("TUTORIAL_PROGRESS", "1")
    assert progress.progress_enabled()
    bar = progress.progress(iter(range(4)), desc="steps", total=4, disable=True)
    assert isinstance(bar, tqdm)
    assert list(bar) == [0, 1, 2, 3]
    monkeypatch.delenv("TUTORIAL_PROGRESS")
    assert progress.progress_enabled()  # on by default
