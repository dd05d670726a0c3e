"""The machinery behind every exercise check: run the student's function against the
library's reference, and answer with one line (passed) or a hint (what was expected,
what came back, the usual cause), never a traceback from inside the library."""

from __future__ import annotations

import functools
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

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

    def __bool__(self) -> bool:
        return self.status == "passed"

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
    """Call the student's function, turning its exceptions into hints."""
    if not callable(fn):
        raise Mismatch(f"expected a function, got {type(fn).__name__}: pass the function itself, without calling it.")
    try:
        return fn(*args, **kwargs)
    except NotImplementedError as err:
        raise NotAttempted(str(err)) from None
    except Exception as err:  # noqa: BLE001 - any student error becomes a hint
        frame = traceback.extract_tb(err.__traceback__)[-1]
        where = f" (line {frame.lineno}: `{frame.line}`)" if frame.line else ""
        raise Mismatch(
            f"your function raised {type(err).__name__}: {err}{where}. "
            "Run it on its own in a cell to see the full traceback."
        ) from None


def _describe(x: Any) -> str:
    if isinstance(x, torch.Tensor):
        return f"a tensor of shape {tuple(x.shape)} and dtype {x.dtype}"
    return f"{type(x).__name__} {x!r}"[:120]


def compare(got: Any, want: Any, what: str, atol: float = 1e-5, rtol: float = 1e-4, hint: str = "") -> None:
    """Raise Mismatch unless `got` equals `want` (tensors within tolerance, numbers, or exactly).

    `what` names the quantity for the message; `hint` adds the usual cause of a wrong value.
    """
    extra = f" {hint}" if hint else ""
    if isinstance(want, torch.Tensor):
        if not isinstance(got, torch.Tensor):
            raise Mismatch(f"{what}: expected {_describe(want)}, got {_describe(got)}.{extra}")
        if got.shape != want.shape:
            note = ""
            if sorted(got.shape) == sorted(want.shape):
                note = (
                    " The same sizes in another order: check the order of your dimensions (a transpose or rearrange)."
                )
            elif got.numel() == 1 and want.numel() > 1:
                note = " You returned a single number: did you reduce (sum/mean) over a dimension you should keep?"
            raise Mismatch(f"{what}: expected shape {tuple(want.shape)}, got {tuple(got.shape)}.{note}{extra}")
        if want.dtype == torch.bool or not want.is_floating_point():
            if not torch.equal(got.to(want.dtype).cpu(), want.cpu()):
                bad = (got.to(want.dtype).cpu() != want.cpu()).sum().item()
                raise Mismatch(f"{what}: {bad} of {want.numel()} entries differ from the reference.{extra}")
            return
        g, w = got.detach().float().cpu(), want.detach().float().cpu()
        if not torch.isfinite(g).all():
            raise Mismatch(
                f"{what}: your result contains NaN or inf.{extra} Look for a division by zero or a log of 0."
            )
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
        return
    if isinstance(want, float):
        try:
            g = float(got)
        except (TypeError, ValueError):
            raise Mismatch(f"{what}: expected a number, got {_describe(got)}.{extra}") from None
        if abs(g - want) > atol + rtol * abs(want):
            raise Mismatch(f"{what}: expected about {want:.4g}, got {g:.4g}.{extra}")
        return
    if got != want:
        raise Mismatch(f"{what}: expected {want!r}, got {got!r}.{extra}")


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
            _report(result, name)
            return result

        if id in EXERCISES:
            raise ValueError(f"exercise id {id} registered twice")
        EXERCISES[id] = Exercise(id, title, check, reference, name)
        return check

    return decorate
