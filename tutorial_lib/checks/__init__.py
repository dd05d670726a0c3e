"""Exercise checks, one module per chapter: `from tutorial_lib.checks import foundations as checks`.

Every check compares the student's function with the library's reference on several inputs
and prints a hint that names the likely mistake. `all_exercises()` lists them for the tests
and the grader."""

from __future__ import annotations

import importlib

from .core import EXERCISES, CheckResult, Exercise, Mismatch, call_student, compare, exercise
from .guard import TIME_LIMIT_S, Mutable

CHAPTER_MODULES = {
    "00": "foundations",
    "01": "superposition",
    "02": "sparse_autoencoders",
    "03": "probing",
    "04": "activation_patching",
    "05": "induction_heads",
    "06": "open_problems",
    "07": "circuit_discovery",
    "08": "lenses_and_attribution",
}


def all_exercises() -> dict[str, Exercise]:
    """Import every chapter's check module that exists and return the registry."""
    for module in CHAPTER_MODULES.values():
        try:
            importlib.import_module(f"{__name__}.{module}")
        except ModuleNotFoundError as err:
            if err.name != f"{__name__}.{module}":
                raise
    return dict(sorted(EXERCISES.items()))


__all__ = [
    "TIME_LIMIT_S",
    "CheckResult",
    "Exercise",
    "Mismatch",
    "Mutable",
    "all_exercises",
    "call_student",
    "compare",
    "exercise",
]
