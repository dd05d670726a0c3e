"""What the grader reads from a notebook's code without running it: the definitions of each cell
(imports, functions, classes, assignments to plain names), the check calls, and statements that
change the library (tampering). Cells are parsed after IPython's own transformation (magics)."""

from __future__ import annotations

import ast
from dataclasses import dataclass

__all__ = ["CheckCall", "check_calls", "definitions", "parse_cell", "replay_source", "tampering"]

_DEFINITIONS = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
_LIBRARY = ("tutorial_lib",)
_LOG_VARIABLE = "TUTORIAL_GRADE_LOG"


def parse_cell(source: str) -> list[ast.stmt]:
    """The cell's top-level statements ([] when it is not valid Python even after IPython's transforms)."""
    try:
        from IPython.core.inputtransformer2 import TransformerManager

        source = TransformerManager().transform_cell(source)
    except Exception:  # noqa: BLE001 - without IPython, or a cell it cannot transform: plain Python
        pass
    try:
        return ast.parse(source).body
    except (SyntaxError, ValueError):
        return []


def _plain_names(target: ast.expr) -> bool:
    if isinstance(target, ast.Name):
        return True
    if isinstance(target, (ast.Tuple, ast.List)):
        return all(_plain_names(t) for t in target.elts)
    return isinstance(target, ast.Starred) and _plain_names(target.value)


def _check_call(value: ast.expr | None) -> ast.expr | None:
    """The check call itself, also inside `checks.check_x(f).or_reference()`."""
    if (
        isinstance(value, ast.Call)
        and isinstance(value.func, ast.Attribute)
        and value.func.attr == "or_reference"
        and isinstance(value.func.value, ast.Call)
    ):
        return value.func.value
    return value


def _calls_check(node: ast.stmt, checks: frozenset[str] | set[str]) -> bool:
    value = _check_call(getattr(node, "value", None))
    func = value.func if isinstance(value, ast.Call) else None
    return (
        isinstance(func, (ast.Attribute, ast.Name))
        and (getattr(func, "attr", None) or getattr(func, "id", "")) in checks
    )


def _is_definition(node: ast.stmt, checks: frozenset[str] | set[str]) -> bool:
    if isinstance(node, _DEFINITIONS):
        return True
    if _calls_check(node, checks):
        return False
    if isinstance(node, ast.Assign):
        return all(_plain_names(t) for t in node.targets)
    return isinstance(node, ast.AnnAssign) and node.value is not None and isinstance(node.target, ast.Name)


def definitions(source: str, checks: frozenset[str] | set[str] = frozenset()) -> list[str]:
    """The cell's top-level definitions, each as source: what a function defined in it can rely on.
    Calls, prints, loops, plots, check calls and assignments to attributes or items are left out."""
    return [ast.unparse(node) for node in parse_cell(source) if _is_definition(node, checks)]


def replay_source(statements: list[str]) -> str:
    """One block that runs each statement on its own, an exception in one not stopping the next."""
    body = []
    for stmt in statements:
        handler = ast.ExceptHandler(type=ast.Name("Exception"), name=None, body=[ast.Pass()])
        body.append(ast.Try(body=ast.parse(stmt).body, handlers=[handler], orelse=[], finalbody=[]))
    return ast.unparse(ast.fix_missing_locations(ast.Module(body=body, type_ignores=[])))


@dataclass(frozen=True)
class CheckCall:
    name: str  # the check's name, e.g. "check_double"
    argument: str  # the source of the expression passed as the student's function


def check_calls(source: str, names: set[str]) -> list[CheckCall]:
    """Top-level calls (`checks.check_x(f)`, `r = check_x(f)`, `f = check_x(f).or_reference()`) of a check in `names`, in order."""
    found = []
    for node in parse_cell(source):
        call = _check_call(node.value) if isinstance(node, (ast.Expr, ast.Assign)) else None
        if not isinstance(call, ast.Call) or not call.args:
            continue
        func = call.func
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
        if name in names:
            found.append(CheckCall(name, ast.unparse(call.args[0])))
    return found


def _library_aliases(tree: list[ast.stmt], prefixes: tuple[str, ...]) -> set[str]:
    """Names bound to tutorial_lib or anything imported from it (`checks`, `core`, `tutorial_lib`)."""
    aliases = set()
    for node in ast.walk(ast.Module(body=tree, type_ignores=[])):
        if isinstance(node, ast.Import):
            aliases |= {(a.asname or a.name.split(".")[0]) for a in node.names if a.name.startswith(prefixes)}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(prefixes):
            aliases |= {a.asname or a.name for a in node.names}
    return aliases


def _root(node: ast.expr) -> str | None:
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def tampering(sources: list[str], modules: frozenset[str] | set[str] = frozenset()) -> list[tuple[int, str]]:
    """(index into `sources`, what) for each statement that rebinds or deletes an attribute of the
    library (`checks.compare = ...`, setattr, `__dict__`) or names the grade log's variable."""
    trees = [parse_cell(s) for s in sources]
    prefixes = (*_LIBRARY, *modules)
    aliases = set().union(*(_library_aliases(t, prefixes) for t in trees))
    found = []
    for index, tree in enumerate(trees):
        for node in ast.walk(ast.Module(body=tree, type_ignores=[])):
            what = None
            targets = []
            if isinstance(node, (ast.Assign, ast.Delete)):
                targets = node.targets
            elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
                targets = [node.target]
            for t in targets:
                if isinstance(t, (ast.Attribute, ast.Subscript)) and _root(t) in aliases:
                    what = f"`{ast.unparse(t)}` is changed"
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in ("setattr", "delattr")
            ):
                if node.args and _root(node.args[0]) in aliases:
                    what = f"`{ast.unparse(node)[:60]}` changes the library"
            if isinstance(node, ast.Attribute) and node.attr == "__dict__" and _root(node) in aliases:
                what = f"`{ast.unparse(node)}` is used"
            if isinstance(node, ast.Constant) and node.value == _LOG_VARIABLE:
                what = f"it uses {_LOG_VARIABLE}"
            if what:
                found.append((index, what))
    return found
