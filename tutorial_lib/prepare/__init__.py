"""`python -m tutorial_lib prepare`: is this machine ready for a class?

Checks Python and the package versions the curriculum asks for, imports the heavy libraries,
loads every shipped model organism, looks for the optional offline real model, the chapter
notebooks and a working Jupyter kernel, and prints a checklist: OK / WARN / FAIL, with what to
do for each problem. Exit code 1 when anything FAILs (WARN is optional: the class still works).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from .checklist import (
    FALLBACK_PYTHON,
    FALLBACK_REQUIREMENTS,
    IMPORTS,
    INSTALL,
    STATUSES,
    Check,
    repo_root,
    requirements,
)
from .content import check_notebooks, check_organisms, check_real_model
from .environment import check_imports, check_memory, check_packages, check_python
from .kernel import check_kernel


def _guard(name: str, fn: Callable[[], list[Check]]) -> list[Check]:
    """A check that crashes becomes one FAIL line, never a traceback."""
    try:
        return fn()
    except Exception as err:  # noqa: BLE001
        return [Check(name, "FAIL", f"the check itself failed: {type(err).__name__}: {err}", INSTALL)]


def run_checks(
    root: Path | None = None, quick: bool = False, kernel: bool = True, emit: Callable[[Check], None] | None = None
) -> list[Check]:
    """All checks in order; `emit` sees each as soon as it is known. `quick` skips organisms and the kernel."""
    root = Path(root) if root else repo_root()
    python_spec, reqs = requirements(root)
    steps: list[tuple[str, Callable[[], list[Check]]]] = [
        ("Python", lambda: check_python(python_spec)),
        ("packages", lambda: check_packages(reqs)),
        ("imports", check_imports),
        ("memory", check_memory),
        ("real model", check_real_model),
        ("chapter notebooks", lambda: check_notebooks(root)),
    ]
    if not quick:
        steps.insert(3, ("model organisms", check_organisms))
        if kernel:
            steps.append(("Jupyter kernel", lambda: check_kernel(cwd=root / "chapters")))
    results = []
    for name, fn in steps:
        for check in _guard(name, fn):
            results.append(check)
            if emit:
                emit(check)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tutorial_lib prepare", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("--root", type=Path, default=None, help="the repository (default: here, or the package's)")
    parser.add_argument("--quick", action="store_true", help="skip loading the organisms and starting a kernel")
    parser.add_argument("--no-kernel", action="store_true", help="do not start a Jupyter kernel")
    parser.add_argument("--json", action="store_true", help="print the checklist as JSON")
    args = parser.parse_args(argv)
    root = args.root or repo_root()
    if not args.json:
        print(f"Checking this environment for the curriculum (repository: {root})", flush=True)
    emit = None if args.json else (lambda c: print("  " + c.line().replace("\n", "\n  "), flush=True))
    results = run_checks(root, quick=args.quick, kernel=not args.no_kernel, emit=emit)
    failed = [c for c in results if c.status == "FAIL"]
    warned = [c for c in results if c.status == "WARN"]
    if args.json:
        print(json.dumps({"ok": not failed, "checks": [asdict(c) for c in results]}, indent=1))
    elif failed:
        print(
            f"\nNOT READY: {len(failed)} problem{'s' * (len(failed) > 1)}. Fix the FAIL lines above, then run "
            "`python -m tutorial_lib prepare` again."
        )
    else:
        note = f" ({len(warned)} optional warning{'s' * (len(warned) > 1)})" if warned else ""
        print(f"\nREADY for class{note}. Start with `make lab` (or `jupyter lab chapters/`).")
    return 1 if failed else 0


__all__ = [
    "FALLBACK_PYTHON",
    "FALLBACK_REQUIREMENTS",
    "IMPORTS",
    "INSTALL",
    "STATUSES",
    "Check",
    "check_imports",
    "check_kernel",
    "check_memory",
    "check_notebooks",
    "check_organisms",
    "check_packages",
    "check_python",
    "check_real_model",
    "main",
    "repo_root",
    "requirements",
    "run_checks",
]
