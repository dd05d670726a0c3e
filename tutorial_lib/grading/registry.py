"""The exercise registry as the grader sees it: the checks that exist, the chapters, id order."""

from __future__ import annotations

__all__ = ["chapter_modules", "check_name", "exercise_key", "exercise_registry"]


def exercise_registry() -> dict:
    """Every registered exercise (importing every chapter's check module), by id."""
    from ..checks import all_exercises

    return all_exercises()


def chapter_modules() -> dict[str, str]:
    """Chapter "NN" -> the name of its check module in tutorial_lib.checks."""
    from ..checks import CHAPTER_MODULES

    return dict(CHAPTER_MODULES)


def exercise_key(exercise_id: str) -> tuple:
    """Sort key for ids like "05.10": numeric parts as numbers."""
    return tuple(int(p) if p.isdigit() else p for p in exercise_id.split("."))


def check_name(ex) -> str:
    """The name a notebook calls an exercise's check by (check_<function> unless the check says)."""
    return getattr(ex.check, "__name__", "") or f"check_{ex.function_name}"
