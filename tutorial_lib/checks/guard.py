"""What a check does around each call of a student's function: hand it copies of its inputs (a model
keeps its identity, its weights are saved before and restored after), name any input it changed in
place, and stop it at a time limit per call (TIME_LIMIT_S, or TUTORIAL_CHECK_TIME_LIMIT seconds)."""

from __future__ import annotations

import copy
import dataclasses
import inspect
import math
import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import torch

TIME_LIMIT_S = 20.0  # per call of the student's function; the references take well under a second
TIME_LIMIT_ENV = "TUTORIAL_CHECK_TIME_LIMIT"  # overrides TIME_LIMIT_S; 0 or less turns the limit off
_DEPTH = 4  # how deep inputs are searched for tensors and models (a dataclass of tensors, a cache's dict)
_ATOMS = (int, float, complex, str, bytes, bool, type(None), range, slice)


@dataclasses.dataclass(frozen=True)
class Mutable:
    """An argument the student's function is meant to change in place (a model it trains, an optimizer,
    the activation a hook edits): passed as it is, neither copied nor checked."""

    value: Any


class TimeLimitExceeded(BaseException):
    """Raised inside the student's function when it runs past the limit (a BaseException, so that the
    student's own `except Exception` does not swallow it)."""


def time_limit_s() -> float:
    """The limit per call in seconds: TUTORIAL_CHECK_TIME_LIMIT if set (<= 0: no limit), else TIME_LIMIT_S."""
    raw = os.environ.get(TIME_LIMIT_ENV, "").strip()
    try:
        limit = float(raw) if raw else TIME_LIMIT_S
    except ValueError:
        limit = TIME_LIMIT_S
    return limit if limit > 0 else math.inf


def _raise_out_of_time(_signum, _frame):
    raise TimeLimitExceeded


def call_within(limit: float, fn: Callable, *args, **kwargs) -> Any:
    """fn(*args, **kwargs), stopped by SIGALRM after `limit` seconds on the main thread of a POSIX
    system; elsewhere it runs to the end and TimeLimitExceeded is raised afterwards if it ran too long."""
    alarm = (
        math.isfinite(limit) and hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    )
    start = time.perf_counter()
    if not alarm:
        result = fn(*args, **kwargs)
        if time.perf_counter() - start > limit:
            raise TimeLimitExceeded
        return result
    old_handler = signal.signal(signal.SIGALRM, _raise_out_of_time)
    old_delay, old_interval = signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        try:
            result = fn(*args, **kwargs)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    finally:
        signal.signal(signal.SIGALRM, old_handler)
        if old_delay > 0:  # someone else's timer (pytest-timeout, say) was running: put it back
            signal.setitimer(signal.ITIMER_REAL, max(old_delay - (time.perf_counter() - start), 1e-3), old_interval)
    if time.perf_counter() - start > limit:  # the student's code caught the alarm and went on
        raise TimeLimitExceeded
    return result


def _children(obj: Any) -> list[tuple[str, Any]]:
    """(path suffix, value) of what a container, dataclass or plain object holds; [] for anything else."""
    if isinstance(obj, (tuple, list)):
        return [(f"[{i}]", o) for i, o in enumerate(obj)]
    if isinstance(obj, dict):
        return [(f"[{k!r}]", v) for k, v in obj.items()]
    if isinstance(obj, (torch.Tensor, torch.nn.Module, Mutable, type, *_ATOMS)) or callable(obj):
        return []
    if dataclasses.is_dataclass(obj):
        return [(f".{f.name}", getattr(obj, f.name)) for f in dataclasses.fields(obj)]
    attrs = getattr(obj, "__dict__", None)
    return [(f".{k}", v) for k, v in attrs.items() if not k.startswith("_")] if isinstance(attrs, dict) else []


def _walk(obj: Any, path: str, found: list[tuple[str, Any]], depth: int = 0) -> None:
    """Collect (path, object) of every tensor and model reachable from obj (not through Mutable)."""
    if isinstance(obj, (torch.Tensor, torch.nn.Module)):
        found.append((path, obj))
    elif depth < _DEPTH:
        for suffix, child in _children(obj):
            _walk(child, path + suffix, found, depth + 1)


def _tensors(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The model's parameters and buffers by name (named_parameters is much quicker than a bridge's state_dict)."""
    return {**dict(model.named_parameters()), **dict(model.named_buffers())}


def _snapshot(model: torch.nn.Module) -> dict[str, Any]:
    return {
        "training": [(m, m.training) for m in model.modules()],
        "tensors": {
            k: (t, t.detach().clone(), t.requires_grad, None if t.grad is None else t.grad.clone())
            for k, t in _tensors(model).items()
        },
    }


def _restore(model: torch.nn.Module, snap: dict[str, Any]) -> str | None:
    """Put the model back as it was; return the name of the first weight that had changed, if any."""
    changed = None
    now = _tensors(model)
    with torch.no_grad():
        for k, (tensor, values, requires_grad, grad) in snap["tensors"].items():
            current = now.get(k)
            if current is not tensor or not _equal(tensor.detach(), values):
                changed = changed or k.replace("_original_component.", "")
            tensor.copy_(values)  # the original tensor (the model may hold a replacement: then it is reported)
            if tensor.is_leaf:
                tensor.requires_grad_(requires_grad)
                tensor.grad = grad
    for module, training in snap["training"]:
        module.training = training
    return changed


def _equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Same shape, dtype and values, NaN equal to NaN."""
    if a.shape != b.shape or a.dtype != b.dtype or a.device != b.device:
        return False
    if a.is_floating_point() or a.is_complex():
        return bool(((a == b) | (a.isnan() & b.isnan())).all())
    return torch.equal(a, b)


def _differs(before: Any, after: Any, path: str, depth: int = 0) -> str | None:
    """The path of the first thing that differs between an input and the copy the student got."""
    if isinstance(before, Mutable) or isinstance(before, torch.nn.Module):
        return None  # not copied; models are compared through their snapshot
    if isinstance(before, torch.Tensor):
        ok = isinstance(after, torch.Tensor) and _equal(before.detach(), after.detach())
        return None if ok else path
    if isinstance(before, _ATOMS):
        return None if type(before) is type(after) and (before == after or before != before) else path
    kids, now = _children(before), _children(after)
    if depth >= _DEPTH or not kids:
        return None
    if [k for k, _ in kids] != [k for k, _ in now]:
        return path
    for (suffix, b), (_, a) in zip(kids, now):
        found = _differs(b, a, path + suffix, depth + 1)
        if found:
            return found
    return None


class GuardedCall:
    """The inputs of one call: copies for the student, the originals kept for the reference."""

    def __init__(self, args: tuple, kwargs: dict):
        self.originals = (args, kwargs)
        found: list[tuple[str, Any]] = []
        _walk((args, kwargs), "", found)
        models = {id(m): m for _, m in found if isinstance(m, torch.nn.Module)}
        self.models = {i: (m, _snapshot(m)) for i, m in models.items()}
        memo: dict[int, Any] = dict(models)  # models keep their identity (their weights are restored after)
        for _, t in found:  # a tensor inside a graph cannot be deep-copied: clone it (keeping the graph)
            if isinstance(t, torch.Tensor) and not t.is_leaf:
                memo[id(t)] = t.clone()
        self.args = tuple(_copy(a, memo) for a in args)
        self.kwargs = {k: _copy(v, memo) for k, v in kwargs.items()}

    def finish(self, names: list[str]) -> str | None:
        """Restore every model; name the first input the student's function changed in place, if any."""
        changed = {i: _restore(m, snap) for i, (m, snap) in self.models.items()}
        args, kwargs = self.originals
        pairs = list(zip(names, args, self.args)) + [(k, v, self.kwargs[k]) for k, v in kwargs.items()]
        for name, before, after in pairs:
            found: list[tuple[str, Any]] = []
            _walk(before, name, found)
            for path, obj in found:
                if isinstance(obj, torch.nn.Module) and changed.get(id(obj)):
                    return f"`{path}` (its weight {changed[id(obj)]})"
            path = _differs(before, after, name) if before is not after else None
            if path:
                return f"`{path}`"
        return None


def _copy(value: Any, memo: dict[int, Any]) -> Any:
    if isinstance(value, Mutable):
        return value.value
    try:
        return copy.deepcopy(value, memo)
    except Exception:  # noqa: BLE001 - an input that cannot be copied is passed as it is (and not checked)
        return value


def parameter_names(fn: Callable, n_args: int) -> list[str]:
    """The names the student's function gives its first n_args positional arguments."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        params = []
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    positional = [p.name for p in params if p.kind in kinds]
    star = next((p.name for p in params if p.kind == inspect.Parameter.VAR_POSITIONAL), None)
    names = positional[:n_args]
    for i in range(len(names), n_args):
        names.append(f"{star}[{i - len(positional)}]" if star else f"argument {i + 1}")
    return names
