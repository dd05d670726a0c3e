"""Every registered check against functions that try to fool it: raising, None, a wrong shape, NumPy
instead of torch, NaN, inf, mutating its inputs, too slow, and answering every call with its first answer.

None may pass where its answer is wrong, none may print a library traceback, and every failure is a
hint. `abuse_matrix()` is also the measuring tool behind issue 17's figures:
`python -c "from tests.test_checks_abuse import summary; print(summary())"`."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import inspect
import io
import math
import os
import time
from collections.abc import Callable
from typing import Any

import pytest
import torch

from tutorial_lib.checks import all_exercises
from tutorial_lib.checks.core import random_model

EXERCISES = all_exercises()
TRAINS_ITS_ONLY_INPUT = {"01.4"}
KINDS = ["raises", "none", "wrong_shape", "numpy", "nan", "inf", "mutating", "slow", "first_input_only"]
TIME_LIMIT_ENV = "TUTORIAL_CHECK_TIME_LIMIT"  # seconds per call of the student's function
TEST_LIMIT_S, SLOW_S = 0.1, 0.4


def _walk(obj: Any, tensor: Callable[[torch.Tensor], Any], number: Callable[[float], Any]) -> Any:
    """Rebuild obj with every tensor and float replaced (through tuples, lists and dicts)."""
    if isinstance(obj, torch.Tensor):
        return tensor(obj)
    if isinstance(obj, float):
        return number(obj)
    if isinstance(obj, (tuple, list)):
        return type(obj)(_walk(o, tensor, number) for o in obj)
    if isinstance(obj, dict):
        return {k: _walk(v, tensor, number) for k, v in obj.items()}
    return obj


def _poison(value: float) -> Callable[[torch.Tensor], torch.Tensor]:
    """A float copy of the tensor with its first entry replaced by value (the rest stays right)."""

    def f(t: torch.Tensor) -> torch.Tensor:
        t = t.detach().float().contiguous().clone()
        t.view(-1)[:1] = value
        return t

    return f


def _mutate(obj: Any, seen: set[int]) -> bool:
    """Change every tensor and module weight reachable from obj in place; True if anything changed."""
    if id(obj) in seen:
        return False
    seen.add(id(obj))
    if isinstance(obj, torch.nn.Module):
        with torch.no_grad():
            for p in obj.parameters():
                p.mul_(1.1).add_(0.01)
        return True
    if isinstance(obj, torch.Tensor):
        with torch.no_grad():
            if obj.is_floating_point():
                obj.mul_(1.5).add_(0.25)
            elif obj.dtype != torch.bool and obj.numel() > 1:
                obj.copy_(obj.flatten().roll(1).reshape(obj.shape))
            else:
                return False
        return True
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return any([_mutate(getattr(obj, f.name), seen) for f in dataclasses.fields(obj)])
    if isinstance(obj, (tuple, list)):
        return any([_mutate(o, seen) for o in obj])
    if isinstance(obj, dict):
        return any([_mutate(o, seen) for o in obj.values()])
    return False


def _abuser(kind: str, reference: Callable, flags: dict[str, bool]) -> Callable:
    """The abusive student function; flags["wrong"] records whether its answer is wrong on some call."""
    memo: list[Any] = []

    def honest(args, kwargs):
        return reference(*copy.deepcopy(args), **copy.deepcopy(kwargs))

    def fn(*args, **kwargs):
        if kind == "raises":
            raise ValueError("oops")
        if kind == "none":
            return None
        if kind == "wrong_shape":
            return torch.zeros(3, 1, 7)
        if kind == "slow":
            time.sleep(SLOW_S)
            return honest(args, kwargs)
        if kind == "mutating":  # changes its inputs, then answers as if they had come that way
            flags["wrong"] |= _mutate((args, kwargs), set())
            return honest(args, kwargs)
        answer = honest(args, kwargs)
        if kind == "numpy":
            flags["wrong"] |= _has_tensor(answer)
            return _walk(answer, lambda t: t.detach().cpu().numpy(), float)
        if kind in ("nan", "inf"):
            bad = math.nan if kind == "nan" else math.inf
            poisoned = _walk(answer, _poison(bad), lambda _x: bad)
            flags["wrong"] |= not _same(poisoned, answer)  # an answer of whole numbers (heads) has nothing to poison
            return poisoned
        if kind == "first_input_only":
            if not memo:
                memo.append(answer)
            flags["wrong"] |= not _same(answer, memo[0])
            return copy.deepcopy(memo[0])
        raise AssertionError(kind)

    fn.__signature__ = inspect.signature(reference)  # pyright: ignore[reportFunctionMemberAccess] - names in hints
    return fn


def _has_tensor(obj: Any) -> bool:
    found: list[bool] = []
    _walk(obj, lambda _t: found.append(True), float)
    return bool(found)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b


@dataclasses.dataclass
class Outcome:
    exercise: str
    kind: str
    status: str  # passed / failed / not attempted / escaped (the check itself raised)
    must_fail: bool
    output: str
    hint: str

    @property
    def wrongly_passed(self) -> bool:
        return self.status == "passed" and self.must_fail

    @property
    def traceback(self) -> bool:
        return self.status == "escaped" or "Traceback" in self.output

    @property
    def is_hint(self) -> bool:
        return self.status == "failed" and "Hint:" in self.output and "Traceback" not in self.output


def abuse(ex_id: str, kind: str) -> Outcome:
    ex = EXERCISES[ex_id]
    flags = {"wrong": kind not in ("numpy", "mutating", "first_input_only", "nan", "inf")}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            result = ex.check(_abuser(kind, ex.reference, flags))
            status, hint = result.status, result.hint
        except Exception as err:  # noqa: BLE001 - the figure counts checks that let an error escape
            status, hint = "escaped", f"{type(err).__name__}: {err}"
    return Outcome(ex_id, kind, status, flags["wrong"], out.getvalue(), hint)


def abuse_matrix(kinds: list[str] = KINDS) -> list[Outcome]:
    return [outcome for kind in kinds for outcome in _abuse_kind(kind)]


def _abuse_kind(kind: str) -> list[Outcome]:
    """Every check against one kind of abuse; the slow kind under a tiny time limit per call."""
    old = os.environ.get(TIME_LIMIT_ENV)
    if kind == "slow":
        os.environ[TIME_LIMIT_ENV] = str(TEST_LIMIT_S)
    try:
        return [abuse(ex_id, kind) for ex_id in EXERCISES]
    finally:
        if old is None:
            os.environ.pop(TIME_LIMIT_ENV, None)
        else:
            os.environ[TIME_LIMIT_ENV] = old


def summary(outcomes: list[Outcome] | None = None) -> str:
    outcomes = abuse_matrix() if outcomes is None else outcomes
    lines = [
        f"{len(outcomes)} abusive calls of {len(EXERCISES)} checks: "
        f"{sum(o.wrongly_passed for o in outcomes)} wrongly passed, "
        f"{sum(o.traceback for o in outcomes)} library tracebacks, "
        f"{sum(o.status == 'not attempted' for o in outcomes)} 'not attempted', "
        f"{sum(o.is_hint for o in outcomes)} hints"
    ]
    for kind in dict.fromkeys(o.kind for o in outcomes):
        mine = [o for o in outcomes if o.kind == kind]
        wrong = [o.exercise for o in mine if o.wrongly_passed]
        lines.append(f"  {kind:17s} {len(mine)} calls, {len(wrong)} wrongly passed {' '.join(wrong)}")
    return "\n".join(lines)


def _state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.fixture(scope="module")
def outcomes() -> list[Outcome]:
    shared = [random_model(0), random_model(0, n_layers=3)]
    before = [_state(m) for m in shared]
    found = abuse_matrix()
    for model, state in zip(shared, before):
        after = model.state_dict()
        changed = [k for k, v in state.items() if not torch.equal(v, after[k])]
        assert not changed, f"the abusive functions changed the shared cached random model: {changed[:3]}"
    print("\n" + summary(found))
    return found


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_no_abusive_function_passes(outcomes, kind):
    mine = [o for o in outcomes if o.kind == kind]
    assert len(mine) == len(EXERCISES)
    wrong = [o.exercise for o in mine if o.wrongly_passed]
    assert not wrong, f"{kind}: wrongly passed {wrong}"
    escaped = [(o.exercise, o.hint) for o in mine if o.traceback]
    assert not escaped, f"{kind}: a library traceback in {escaped}"
    unhinted = [(o.exercise, o.status, o.output) for o in mine if o.must_fail and not o.is_hint]
    assert not unhinted, f"{kind}: no hint in {unhinted[:3]}"


@pytest.mark.slow
def test_mutated_inputs_are_named(outcomes):
    unnamed = [(o.exercise, o.hint) for o in outcomes if o.kind == "mutating" and o.must_fail]
    # 01.4's only input is the model it is meant to train in place (passed as Mutable): changing that model's
    # weights is the exercise, so its check names the result (weights unlike the reference's), not a mutation
    unnamed = [
        (ex, hint) for ex, hint in unnamed if "changed its input `" not in hint and ex not in TRAINS_ITS_ONLY_INPUT
    ]
    assert not unnamed, unnamed


@pytest.mark.slow
def test_slow_functions_are_stopped_at_the_limit(outcomes):
    slow = [o for o in outcomes if o.kind == "slow"]
    assert all("time limit" in o.hint and f"{TEST_LIMIT_S:g} s" in o.hint for o in slow), [o.hint for o in slow][:3]
