"""The process that decides grades (`python -m tutorial_lib.grading.runner`, started by `trusted`):
it imports the library and the chapter's checks before any student code exists, snapshots them,
then runs the notebook's definitions cell by cell and, where the notebook calls a check, calls
the check it imported itself on the student's function. After every step the snapshot is
compared and restored, so a notebook that rebinds `compare`, `call_student` or a torch function
changes nothing, and is named. Results go out on the stdout it had at start, one JSON line each
with the nonce read from stdin; the student's own prints go to /dev/null."""

from __future__ import annotations

import builtins
import contextlib
import importlib
import io
import json
import linecache
import os
import sys
import types

_MISSING = object()


class Snapshot:
    """The attributes of the library's modules, torch's and the builtins, to compare and restore."""

    def __init__(self, extra_modules: list[str]):
        import torch
        import torch.nn.functional

        with contextlib.suppress(ImportError):  # importing it rewraps torch.manual_seed: not the notebook's doing
            import torch._dynamo
        names = [n for n in sys.modules if n == "tutorial_lib" or n.startswith("tutorial_lib.")]
        self.strict = {n: sys.modules[n] for n in [*names, *extra_modules] if n in sys.modules}
        self.callables = {"torch": torch, "torch.nn.functional": torch.nn.functional, "builtins": builtins}
        self.saved = {n: dict(vars(m)) for n, m in {**self.strict, **self.callables}.items()}
        self.tensor = dict(vars(torch.Tensor))

    def _watched(self, name: str, key: str, old, new) -> bool:
        if isinstance(new, types.ModuleType) and old is _MISSING:
            return False  # a submodule imported since
        strict = name in self.strict and (callable(old) or callable(new) or name.startswith("tutorial_lib.checks"))
        return strict or name not in self.strict and (callable(old) or callable(new)) and not key.startswith("__")

    def restore(self) -> list[str]:
        """Put back every changed attribute; the names of those changed (empty: untouched)."""
        import torch

        changed = []
        for name, module in {**self.strict, **self.callables}.items():
            now, saved = vars(module), self.saved[name]
            for key in set(now) | set(saved):
                old, new = saved.get(key, _MISSING), now.get(key, _MISSING)
                if old is new or not self._watched(name, key, old, new):
                    continue
                changed.append(f"{name}.{key}")
                if old is _MISSING:
                    delattr(module, key)
                else:
                    setattr(module, key, old)
        for key, old in self.tensor.items():
            if vars(torch.Tensor).get(key, _MISSING) is not old:
                changed.append(f"torch.Tensor.{key}")
                setattr(torch.Tensor, key, old)
        return sorted(set(changed))


def _send(channel, nonce: str, **message) -> None:
    channel.write(json.dumps({"nonce": nonce, **message}) + "\n")
    channel.flush()


def _run_check(check, fn) -> tuple[str, str]:
    with contextlib.redirect_stdout(io.StringIO()):
        result = check(fn)
    status = getattr(result, "status", None)
    return (status, str(getattr(result, "hint", ""))) if isinstance(status, str) else ("failed", "no result")


def _step(step: dict, namespace: dict, checks: dict, snapshot: Snapshot, send) -> None:
    if "code" in step:
        try:
            filename = f"<cell {step['cell']}>"
            # tracebacks (and the checks' stub test) read the student's lines from linecache
            linecache.cache[filename] = (len(step["code"]), None, step["code"].splitlines(True), filename)
            exec(compile(step["code"], filename, "exec"), namespace)
        except BaseException:  # noqa: BLE001 - a failing definition: the check says what is missing
            pass
        changed = snapshot.restore()
        if changed:
            send(kind="tampered", cell=step["cell"], names=changed)
        return
    send(kind="begin", exercise=step["exercise"])
    try:
        fn = eval(step["argument"], namespace)
    except BaseException as err:  # noqa: BLE001
        send(kind="no result", exercise=step["exercise"], reason=f"{type(err).__name__}: {err}"[:200])
        return
    try:
        status, hint = _run_check(checks[step["exercise"]], fn)
    except BaseException as err:  # noqa: BLE001 - e.g. SystemExit from the student's function
        status, hint = "failed", f"your function stopped the check ({type(err).__name__}: {err})"[:300]
    changed = snapshot.restore()
    if changed:
        status = "failed"
        hint = f"your code changed the library while it was checked ({', '.join(changed[:3])}): not counted"
        send(kind="tampered", cell=step["cell"], names=changed)
    send(kind="result", exercise=step["exercise"], status=status, hint=hint)


def main() -> None:
    job = json.loads(sys.stdin.read())
    channel = os.fdopen(os.dup(1), "w", encoding="utf-8")
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    sys.stdin = io.StringIO()
    from tutorial_lib.checks.core import EXERCISES

    for module in job["modules"]:
        importlib.import_module(module)
    checks = {ex_id: EXERCISES[ex_id].check for ex_id in job["exercises"] if ex_id in EXERCISES}
    snapshot = Snapshot(job["modules"])
    nonce = job.pop("nonce")

    def send(**message) -> None:
        _send(channel, nonce, **message)

    namespace: dict = {"__name__": "__main__", "__builtins__": builtins}
    skip = set(job.get("skip", []))
    for step in job["steps"]:
        if step.get("exercise") not in skip:
            _step(step, namespace, checks, snapshot, send)
    send(kind="done")
    channel.close()
    os._exit(0)  # no atexit handlers of student code


if __name__ == "__main__":
    main()
