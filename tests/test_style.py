"""The house rules of CONTRIBUTING.md and issue #15, checked mechanically on the whole library.

- No module in tutorial_lib over MAX_MODULE_LINES lines, no function over MAX_FUNCTION_LINES lines
  (counted from `def` to its last line, decorators excluded), unless ALLOWED_LONG names it with a reason.
- Every public function of a kernel module (KERNELS; for a package, of each of its public submodules)
  names its home chapter in its docstring, d2l style: a line such as "Chapter 04: activation patching."
- Exercise references live in the kernels, not in tutorial_lib/checks/: no function there has a
  docstring saying "Exercise NN.N", and every registered exercise's reference is defined outside
  tutorial_lib.checks with its id ("Exercise 04.5") in its docstring.
- No module in tutorial_lib/checks/ reaches into another tutorial_lib module's private names
  (`from ..patching import _x`, or `P._x` where P is a tutorial_lib module).
- Every library module or package has a test module (see `test_modules_for` for the name mapping).
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import pkgutil
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LIB = ROOT / "tutorial_lib"
TESTS = ROOT / "tests"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60

# Exceptions to the size rules: "path/relative/to/tutorial_lib.py" or "path.py::qualified.name" -> why.
# Keep this short; every entry needs a reason a reviewer would accept.
ALLOWED_LONG: dict[str, str] = {}

# The chapters' kernel modules and their home chapters (a kernel may also serve later chapters).
KERNELS = {
    "hooks": "00",
    "forward_pass": "00",
    "superposition": "01",
    "sae": "02",
    "probing": "03",
    "patching": "04",
    "attention": "05",
    "training": "05",
    "open_problems": "06",
    "discovery": "07",
    "lens": "08",
    "transcoders": "08",
    "attribution_graph": "08",
    "explain": "08",
}
CHAPTER = re.compile(r"\bChapter \d\d\b")
EXERCISE = re.compile(r"\bExercise (\d\d\.\d+)\b")

# Library modules whose tests live in a module not named after them (module -> test module stem).
TEST_MODULE_ALIASES = {
    "__main__": "test_main",  # the command line, with build.py (both dispatch to a command's main)
    "build": "test_main",
}


def _library_files() -> list[Path]:
    return sorted(p for p in LIB.rglob("*.py") if "data" not in p.relative_to(LIB).parts[:1])


def _rel(path: Path) -> str:
    return path.relative_to(LIB).as_posix()


def _functions(tree: ast.AST, prefix: str = ""):
    """(qualified name, node) of every function, nested ones and methods included."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield prefix + node.name, node
            yield from _functions(node, prefix + node.name + ".")
        elif isinstance(node, ast.ClassDef):
            yield from _functions(node, prefix + node.name + ".")
        else:
            yield from _functions(node, prefix)


def test_no_module_over_400_lines():
    long = {
        _rel(p): n
        for p in _library_files()
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES and _rel(p) not in ALLOWED_LONG
    }
    assert not long, f"modules over {MAX_MODULE_LINES} lines (split them into a package): {long}"


def test_no_function_over_60_lines():
    long = {}
    for path in _library_files():
        for name, node in _functions(ast.parse(path.read_text(encoding="utf-8"))):
            n = (node.end_lineno or node.lineno) - node.lineno + 1
            key = f"{_rel(path)}::{name}"
            if n > MAX_FUNCTION_LINES and key not in ALLOWED_LONG:
                long[key] = n
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: {long}"


def test_allow_list_is_short_and_current():
    assert len(ALLOWED_LONG) <= 5, "the allow-list is for rare, explained exceptions"
    for key, reason in ALLOWED_LONG.items():
        assert (LIB / key.split("::")[0]).is_file(), f"{key} no longer exists: drop it from ALLOWED_LONG"
        assert len(reason) > 20, f"{key}: give a reason"


def _public_modules(name: str) -> list:
    """The module, or the package and each of its public submodules."""
    module = importlib.import_module(f"tutorial_lib.{name}")
    modules = [module]
    if hasattr(module, "__path__"):
        for info in pkgutil.walk_packages(module.__path__, prefix=f"{module.__name__}."):
            if not any(part.startswith("_") for part in info.name.split(".")):
                modules.append(importlib.import_module(info.name))
    return modules


@pytest.mark.parametrize("kernel", sorted(KERNELS))
def test_kernel_functions_name_their_chapter(kernel):
    missing = [
        f"{module.__name__}.{name}"
        for module in _public_modules(kernel)
        for name, fn in vars(module).items()
        if inspect.isfunction(fn)
        and not name.startswith("_")
        and fn.__module__ == module.__name__
        and not CHAPTER.search(inspect.getdoc(fn) or "")
    ]
    assert not missing, f'public kernel functions whose docstring names no "Chapter NN": {missing}'


def test_no_exercise_reference_in_checks():
    found = []
    for path in sorted((LIB / "checks").rglob("*.py")):
        for name, node in _functions(ast.parse(path.read_text(encoding="utf-8"))):
            match = EXERCISE.search(ast.get_docstring(node) or "")
            if match:
                found.append(f"{_rel(path)}::{name} (Exercise {match[1]})")
    assert not found, f"exercise references belong in their kernel module, not in checks/: {found}"


def test_every_exercise_reference_lives_in_a_kernel_and_names_its_exercise():
    from tutorial_lib.checks import all_exercises

    wrong = []
    for ex in all_exercises().values():
        ref = inspect.unwrap(ex.reference)
        where = f"{ex.id} {ref.__module__}.{ref.__qualname__}"
        if ref.__module__.startswith("tutorial_lib.checks"):
            wrong.append(f"{where}: defined in checks/")
        elif f"Exercise {ex.id}" not in (inspect.getdoc(ref) or ""):
            wrong.append(f'{where}: docstring lacks "Exercise {ex.id}"')
    assert not wrong, "exercise references:\n" + "\n".join(wrong)


def _resolve(node: ast.ImportFrom, package: str) -> str:
    """The absolute module an ImportFrom reads from (relative to `package`, the importing module's package)."""
    if node.level == 0:
        return node.module or ""
    base = package.split(".")[: len(package.split(".")) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def _dotted(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        head = _dotted(node.value)
        return f"{head}.{node.attr}" if head else None
    return None


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # a parent that is not a package
        return False


def _private_uses(source: str, module_name: str, is_package: bool = False) -> list[str]:
    """Private names of other tutorial_lib modules that the code imports or reads as attributes."""
    package = module_name if is_package else module_name.rpartition(".")[0]
    tree = ast.parse(source)
    modules: dict[str, str] = {"tutorial_lib": "tutorial_lib"}  # local name -> tutorial_lib module
    uses = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("tutorial_lib"):
                    modules[alias.asname or alias.name.split(".")[0]] = alias.name if alias.asname else "tutorial_lib"
        elif isinstance(node, ast.ImportFrom):
            source_module = _resolve(node, package)
            if not source_module.startswith("tutorial_lib") or source_module == module_name:
                continue
            for alias in node.names:
                if _private(alias.name):
                    uses.append(f"from {source_module} import {alias.name}")
                elif _is_module(f"{source_module}.{alias.name}"):
                    modules[alias.asname or alias.name] = f"{source_module}.{alias.name}"
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            dotted = _dotted(node.value)
            if dotted and dotted.split(".")[0] in modules:
                uses.append(f"{dotted}.{node.attr} (line {node.lineno})")
    return uses


def _module_name(path: Path) -> str:
    return "tutorial_lib." + _rel(path).removesuffix(".py").replace("/", ".").removesuffix(".__init__")


def test_private_name_detector():
    code = """
from .. import patching as P, validation
from ..patching import _fast, logit_diff
from .core import _describe, compare
import tutorial_lib.sae as S
from torch import _C
P._engine(S._x, P.logit_diff, validation.expect_shape, _C._y, self._z)
"""
    assert _private_uses(code, "tutorial_lib.checks.fake") == [
        "from tutorial_lib.patching import _fast",
        "from tutorial_lib.checks.core import _describe",
        "P._engine (line 7)",
        "S._x (line 7)",
    ]


def test_checks_use_only_public_names_of_other_modules():
    uses = {}
    for path in sorted((LIB / "checks").rglob("*.py")):
        found = _private_uses(path.read_text(encoding="utf-8"), _module_name(path), path.name == "__init__.py")
        if found:
            uses[_rel(path)] = found
    assert not uses, f"checks reach into private names (make them public or use the public API): {uses}"


def _library_units() -> list[str]:
    """Top-level modules and packages of tutorial_lib (not __init__)."""
    units = [p.stem for p in LIB.glob("*.py") if p.name != "__init__.py"]
    units += [p.name for p in LIB.iterdir() if (p / "__init__.py").is_file()]
    return sorted(units)


def test_modules_for(unit: str) -> list[Path]:
    """Where the tests of library module or package `unit` may live: tests/test_<unit>.py,
    tests/test_<unit>_<part>.py (one per part of a package), or a folder tests/<unit>/ of test_*.py;
    TEST_MODULE_ALIASES maps the few modules tested under another name."""
    stem = TEST_MODULE_ALIASES.get(unit, f"test_{unit}")
    found = [TESTS / f"{stem}.py"] if (TESTS / f"{stem}.py").is_file() else []
    found += sorted(TESTS.glob(f"{stem}_*.py"))
    if (TESTS / unit).is_dir():
        found += sorted((TESTS / unit).rglob("test_*.py"))
    return found


test_modules_for.__test__ = False  # a helper, not a test


@pytest.mark.parametrize("unit", _library_units())
def test_every_library_module_has_a_test_module(unit):
    stem = TEST_MODULE_ALIASES.get(unit, f"test_{unit}")
    assert test_modules_for(unit), f"tutorial_lib/{unit} has no tests/{stem}.py (or tests/{stem}_*.py, tests/{unit}/)"
