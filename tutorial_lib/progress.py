"""Progress bars for every training loop, silenced where output must be reproducible."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def progress_enabled() -> bool:
    """TUTORIAL_PROGRESS=0 turns bars off (CI and the notebook executor set it: bars print timings)."""
    return os.environ.get("TUTORIAL_PROGRESS", "1") != "0"


def progress(iterable: Iterable[T], desc: str = "", total: int | None = None, **kwargs) -> Iterable[T]:
    """tqdm.auto over `iterable` (a widget in Jupyter, text in a terminal), or the bare iterable."""
    if not progress_enabled():
        return iterable
    return tqdm(iterable, desc=desc, total=total, **kwargs)
