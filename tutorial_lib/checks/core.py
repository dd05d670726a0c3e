"""The machinery behind every exercise check: run the student's function against the
library's reference, and answer with one line (passed) or a hint (what was expected,
what came back, the usual cause), never a traceback from inside the library."""

from __future__ import annotations

import functools
import math
import os
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from .guard import TIME_LIMIT_ENV, GuardedCall, TimeLimitExceeded, call_within, parameter_names, time_limit_s

_HERE = os.path.dirname(os.path.abspath(__file__)) + os.sep  # the checks' own frames are never the student's line
_LIBRARY = os.path.dirname(_HERE.rstrip(os.sep)) + os.sep  # nor, when there is one of theirs, the library's
STUB_MESSAGE = "Exercise: write"  # how the generated stub's NotImplementedError starts (tutorial_lib.notebooks)
Status = Literal["passed", "failed", "not attempted"]


class Mismatch(Exception):
    """The student's answer differs from the reference; the message is the hint."""


class NotAttempted(Exception):
    """The student's function still raises the stub's NotImplementedError."""


@dataclass
class CheckResult:
    exercise: str
    title: str
    status: Status
    hint: str = ""
    student: Callable | None = field(default=None, repr=False, compare=False)
    reference: Callable | None = field(default=None, repr=False, compare=False)

    def __bool__(self) -> bool:
        return self.status == "passed"

    def or_reference(self) -> Callable:
        """The student's function if the check passed, else the library's reference, with a visible
        note, so that a skipped or failed exercise never breaks the cells after it (every chapter)."""
        if self.status == "passed" and self.student is not None:
            return self.student
        if self.reference is None:
            raise ValueError(f"exercise {self.exercise} has no reference to fall back to")
        where = f"{self.reference.__module__}.{self.reference.__qualname__}"
        print(f"  -> the cells below use the library's reference `{where}` for {self.exercise} until yours passes.")
        return self.reference

    def __repr__(self) -> str:
        return f"CheckResult({self.exercise!r}, {self.status!r})"

    def _ipython_display_(self) -> None:
        """Show nothing when a check ends a cell: it has already printed its one line."""


@dataclass
class Exercise:
    id: str  # "00.3": chapter.number
    title: str
    check: Callable[[Callable], CheckResult]
    reference: Callable
    function_name: str  # the name the student's function has in the notebook
    cases: int = 0  # filled by the checker when it runs
    extra: dict = field(default_factory=dict)


EXERCISES: dict[str, Exercise] = {}


@functools.lru_cache(maxsize=8)
def random_model(
    seed: int = 0,
    d_model: int = 32,
    n_heads: int = 4,
    d_head: int = 8,
    d_vocab: int = 23,
    n_ctx: int = 16,
    attn_only: bool = False,
    n_layers: int = 2,
):
    """A small random TransformerBridge (2 layers unless asked) for checks: quick, needs no shipped files.

    Cached and shared between checks: never modify it in place (copy.deepcopy it first)."""
    from transformer_lens.config import TransformerBridgeConfig
    from transformer_lens.model_bridge import TransformerBridge

    cfg = TransformerBridgeConfig(
        n_layers=n_layers,
        d_model=d_model,
        n_heads=n_heads,
        d_head=d_head,
        d_mlp=None if attn_only else 2 * d_model,
        d_vocab=d_vocab,
        n_ctx=n_ctx,
        attn_only=attn_only,
        normalization_type="LN",
        act_fn="gelu",
        seed=seed,
        device="cpu",
    )
    model = TransformerBridge.boot_native(cfg)  # pyright: ignore[reportAttributeAccessIssue] - attached at import
    model.eval()
    return model


def call_student(fn: Callable, *args, **kwargs) -> Any:
    """Call the student's function on copies of the inputs (wrap in `Mutable` an input it is meant to
    change), within the time limit per call, turning its exceptions, a changed input and a timeout into hints."""
    if not callable(fn):
        raise Mismatch(f"expected a function, got {type(fn).__name__}: pass the function itself, without calling it.")
    call, limit = GuardedCall(args, kwargs), time_limit_s()
    result, problem, changed = None, None, None
    try:
        try:
            result = call_within(limit, fn, *call.args, **call.kwargs)
        finally:
            changed = call.finish(parameter_names(fn, len(args)))  # restores the models, whatever happened
    except TimeLimitExceeded:
        problem = (
            f"your function took longer than the time limit of {limit:g} s for one call, and was stopped. "
            "Look for a loop that runs far more often than it should (a Python loop over every entry, or more "
            f"training steps than asked); the reference takes well under a second. ({TIME_LIMIT_ENV} sets the limit.)"
        )
    except NotImplementedError as err:
        if _is_stub(err, fn):
            raise NotAttempted(str(err)) from None
        problem = _raised(err) + (
            " This NotImplementedError comes from inside your code, not from the exercise's stub: "
            "an operation you call is not implemented for these inputs (their dtype, device or layout)."
        )
    except Exception as err:  # noqa: BLE001 - any student error becomes a hint
        problem = _raised(err) + " Run it on its own in a cell to see the full traceback."
    if changed:
        raise Mismatch(
            f"your function changed its input {changed} in place: the caller's inputs must stay as they were. "
            "Work on a copy (x = x.clone(), copy.deepcopy(model)) or use out-of-place operations "
            "(x = x * 2, not x *= 2 or x.mul_(2)); to change what a model computes, use hooks."
            + (f" Besides, {problem}" if problem else "")
        )
    if problem:
        raise Mismatch(problem)
    return result


def student_heads(got: Any, model, what: str, max_heads: int = 2) -> list[tuple[int, int]]:
    """The (layer, head) pairs a student's search returned, as ints, or a Mismatch naming what is wrong:
    not pairs, not 1..max_heads different heads, or heads outside the model (open exercises' checks)."""
    try:
        heads = [(int(layer), int(head)) for layer, head in got]
    except (TypeError, ValueError):
        raise Mismatch(f"{what}: expected a list of (layer, head) pairs, got {got!r:.200}.") from None
    if not 1 <= len(heads) <= max_heads or len(set(heads)) != len(heads):
        raise Mismatch(f"{what}: expected one to {max_heads} different heads, got {heads}.")
    bad = [h for h in heads if not (0 <= h[0] < model.cfg.n_layers and 0 <= h[1] < model.cfg.n_heads)]
    if bad:
        raise Mismatch(f"{what}: {bad} are not heads of this {model.cfg.n_layers}x{model.cfg.n_heads} model.")
    return heads


def _is_stub(err: NotImplementedError, fn: Callable) -> bool:
    """The exercise's stub (`raise NotImplementedError("Exercise: write ...")`, or a bare `raise
    NotImplementedError` in the function's own body), not one raised deeper (by torch or a helper)."""
    if str(err).startswith(STUB_MESSAGE):
        return True
    code = getattr(fn, "__code__", None)
    frames = traceback.extract_tb(err.__traceback__)
    last = frames[-1] if frames else None
    return (
        code is not None
        and last is not None
        and (last.filename, last.name) == (code.co_filename, code.co_name)
        and (last.line or "").startswith("raise NotImplementedError")
    )


def _raised(err: BaseException) -> str:
    """'your function raised X: message (line N: `code`).', the line taken from the student's own code when
    the error came from inside torch, another installed package or the library."""
    frames = [f for f in traceback.extract_tb(err.__traceback__) if not f.filename.startswith(_HERE)]
    own = [f for f in frames if not f.filename.startswith(_LIBRARY) and "-packages" + os.sep not in f.filename]
    frame = (own or frames or [None])[-1]
    where = f" (line {frame.lineno}: `{frame.line}`)" if frame is not None and frame.line else ""
    message = str(err) if len(str(err)) <= 300 else str(err)[:300] + " ..."
    return f"your function raised {type(err).__name__}: {message}{where}."


def _describe(x: Any) -> str:
    if isinstance(x, torch.Tensor):
        return f"a tensor of shape {tuple(x.shape)} and dtype {x.dtype}"
    if _is_numpy(x) and hasattr(x, "shape"):
        return f"a NumPy array of shape {tuple(x.shape)}"
    return f"{type(x).__name__} {x!r}"[:120]


def compare(got: Any, want: Any, what: str, atol: float = 1e-5, rtol: float = 1e-4, hint: str = "") -> None:
    """Raise Mismatch unless `got` equals `want`: tensors and numbers within tolerance (NaN and inf only
    where the reference has the same), tuples, lists and dicts entry by entry, anything else exactly.

    `what` names the quantity for the message; `hint` adds the usual cause of a wrong value.
    """
    extra = f" {hint}" if hint else ""
    if isinstance(want, torch.Tensor):
        _compare_tensor(got, want, what, atol, rtol, extra)
    elif isinstance(want, float):
        _compare_number(got, want, what, atol, rtol, extra)
    elif isinstance(want, (tuple, list, dict)):
        _compare_container(got, want, what, atol, rtol, hint)
    else:
        try:
            differs = bool(got != want)
        except Exception:  # noqa: BLE001 - e.g. a tensor of many values where one was expected: not equal
            differs = True
        if differs:
            raise Mismatch(f"{what}: expected {want!r}, got {_describe(got)}.{extra}")


def _compare_container(got: Any, want: tuple | list | dict, what: str, atol: float, rtol: float, hint: str) -> None:
    extra = f" {hint}" if hint else ""
    if isinstance(want, dict):
        if not isinstance(got, dict) or set(got) != set(want):
            keys = sorted(map(str, want))
            raise Mismatch(f"{what}: expected a dict with the keys {keys}, got {_describe(got)}.{extra}")
        for key, w in want.items():
            compare(got[key], w, f"{what}[{key!r}]", atol, rtol, hint)
        return
    if not isinstance(got, (tuple, list)) or len(got) != len(want):
        raise Mismatch(f"{what}: expected a {type(want).__name__} of {len(want)} items, got {_describe(got)}.{extra}")
    for i, (g, w) in enumerate(zip(got, want)):
        compare(g, w, f"{what}[{i}]", atol, rtol, hint)


def _compare_number(got: Any, want: float, what: str, atol: float, rtol: float, extra: str) -> None:
    try:
        if isinstance(got, (str, bytes)):
            raise TypeError
        g = float(got)
    except (TypeError, ValueError, RuntimeError):
        raise Mismatch(f"{what}: expected a number, got {_describe(got)}.{extra}") from None
    if not math.isfinite(want):  # a documented inf (or NaN) answer must be matched exactly
        if not (g == want or (math.isnan(g) and math.isnan(want))):
            raise Mismatch(f"{what}: expected {want}, got {g:.4g}.{extra}")
        return
    if not math.isfinite(g):
        raise Mismatch(f"{what}: expected about {want:.4g}, got {g}.{extra} Look for a division by zero or a log of 0.")
    if abs(g - want) > atol + rtol * abs(want):
        raise Mismatch(f"{what}: expected about {want:.4g}, got {g:.4g}.{extra}")


def _compare_tensor(got: Any, want: torch.Tensor, what: str, atol: float, rtol: float, extra: str) -> None:
    if not isinstance(got, torch.Tensor):
        note = (
            " Return a torch tensor, not a NumPy array (torch.from_numpy, or compute in torch)."
            if _is_numpy(got)
            else ""
        )
        raise Mismatch(f"{what}: expected {_describe(want)}, got {_describe(got)}.{note}{extra}")
    if got.shape != want.shape:
        note = ""
        if sorted(got.shape) == sorted(want.shape):
            note = " The same sizes in another order: check the order of your dimensions (a transpose or rearrange)."
        elif got.numel() == 1 and want.numel() > 1:
            note = " You returned a single number: did you reduce (sum/mean) over a dimension you should keep?"
        raise Mismatch(f"{what}: expected shape {tuple(want.shape)}, got {tuple(got.shape)}.{note}{extra}")
    g = got.detach().cpu()
    if (g.is_floating_point() or g.is_complex()) and not torch.isfinite(g).all():
        w = want.detach().cpu().to(g.dtype) if want.is_floating_point() else None
        same = w is not None and all(torch.equal(f(g), f(w)) for f in (torch.isnan, torch.isposinf, torch.isneginf))
        if not same:
            raise Mismatch(
                f"{what}: your result contains NaN or inf.{extra} Look for a division by zero or a log of 0."
            )
    if want.dtype == torch.bool or not want.is_floating_point():
        if g.is_floating_point() and not torch.equal(g, g.round()):
            raise Mismatch(f"{what}: expected whole numbers ({want.dtype}), got fractions ({got.dtype}).{extra}")
        if not torch.equal(g.to(want.dtype), want.cpu()):
            bad = (g.to(want.dtype) != want.cpu()).sum().item()
            raise Mismatch(f"{what}: {bad} of {want.numel()} entries differ from the reference.{extra}")
        return
    g, w = g.float(), want.detach().float().cpu()
    special = ~torch.isfinite(w)  # where the reference itself is NaN or inf, and so is the answer (checked above)
    g, w = g.masked_fill(special, 0.0), w.masked_fill(special, 0.0)
    if not torch.allclose(g, w, atol=atol, rtol=rtol):
        err = (g - w).abs().max().item()
        if torch.allclose(g, -w, atol=atol, rtol=rtol):
            note = " It equals minus the reference: check the sign."
        elif w.abs().sum() > 0 and torch.allclose(
            g * (w.norm() / max(g.norm().item(), 1e-12)), w, atol=atol, rtol=1e-3
        ):
            note = f" It is the reference times {g.norm().item() / w.norm().item():.3g}: check a scale factor or normalisation."
        else:
            note = ""
        raise Mismatch(f"{what}: values differ from the reference (largest difference {err:.3g}).{note}{extra}")


def _is_numpy(x: Any) -> bool:
    return type(x).__module__ == "numpy"


def _report(result: CheckResult, function_name: str) -> None:
    head = f"{result.exercise} {result.title}"
    if result.status == "passed":
        print(f"✔ {head}: passed")
    elif result.status == "not attempted":
        print(
            f"… {head}: not attempted yet. Replace the `raise NotImplementedError(...)` line in `{function_name}` with your code."
        )
    else:
        print(f"✘ {head}: not yet right.\n  Hint: {result.hint}")


def exercise(id: str, title: str, reference: Callable, function_name: str | None = None):
    """Register a checker. The checker takes the student's function and raises Mismatch (with a
    hint) on a wrong answer; the wrapped check prints one line and returns a CheckResult."""

    def decorate(checker: Callable[[Callable], None]) -> Callable[[Callable], CheckResult]:
        name = function_name or reference.__name__

        @functools.wraps(checker)
        def check(student_fn: Callable) -> CheckResult:
            try:
                checker(student_fn)
                result = CheckResult(id, title, "passed")
            except NotAttempted:
                result = CheckResult(id, title, "not attempted", f"`{name}` still raises NotImplementedError.")
            except Mismatch as err:
                result = CheckResult(id, title, "failed", str(err))
            except Exception as err:  # noqa: BLE001 - e.g. the student returned something unusable
                result = CheckResult(
                    id,
                    title,
                    "failed",
                    f"your result could not be used ({type(err).__name__}: {err}). "
                    "Check that your function returns the type and shape its docstring asks for.",
                )
            result.student, result.reference = student_fn, reference
            _report(result, name)
            return result

        if id in EXERCISES:
            raise ValueError(f"exercise id {id} registered twice")
        EXERCISES[id] = Exercise(id, title, check, reference, name)
        return check

    return decorate
