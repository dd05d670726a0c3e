"""The grader's side of the runner (runner.py): build its job from the notebook (the definitions of
every cell, the check calls of the cells the kernel ran), start it sandboxed, read its results.
A check that runs past the cell timeout, or a runner that dies, fails that exercise; a new runner
goes on with the rest. The kernel's own output is never read for a grade."""

from __future__ import annotations

import ast
import asyncio
import json
import os
import secrets
import signal
import sys
from dataclasses import dataclass, field

from .registry import check_name
from .reports import CellEvent
from .sandbox import Limits, limited_argv, private_dir, sandbox_env
from .statements import check_calls, definitions, replay_source, tampering

__all__ = ["TrustedResults", "build_job", "grade_checks"]


@dataclass
class TrustedResults:
    logged: dict[str, dict] = field(default_factory=dict)  # exercise id -> status, title, hint
    events: list[CellEvent] = field(default_factory=list)  # tampering, checks that ran too long


def _names(source: str) -> tuple[set[str], set[str]]:
    """(names a statement binds at top level, names it reads anywhere)."""
    node = ast.parse(source).body[0]
    loads = {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    if isinstance(node, (ast.Assign, ast.AnnAssign)):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        bound = {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
        return bound, loads
    return set(), loads


def _slice(cells: list[tuple[int, list[str]]], arguments: list[str]) -> dict[int, list[str]]:
    """Per cell, the definitions kept: imports, functions and classes always; an assignment only when
    a kept statement or a check's argument reads the name it binds (no model runs nobody needs)."""
    needed = {n for a in arguments for n in _names(f"_ = {a}")[1]}
    flat = [(cell, s, *_names(s)) for cell, stmts in cells for s in stmts]
    for _, _, bound, loads in flat:
        if not bound:
            needed |= loads
    kept = set()
    for i in range(len(flat) - 1, -1, -1):
        _, _, bound, loads = flat[i]
        if bound and bound & needed:
            kept.add(i)
            needed |= loads
    out: dict[int, list[str]] = {}
    for i, (cell, s, bound, _) in enumerate(flat):
        if not bound or i in kept:
            out.setdefault(cell, []).append(s)
    return out


def build_job(nb, exercises: dict, executed: set[int], skip_cells: set[int]) -> dict:
    """The runner's job: check modules to import first, then code and check steps in cell order."""
    by_name = {check_name(ex): ex_id for ex_id, ex in exercises.items()}
    cells, calls = [], []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        cells.append((index, definitions(cell.source, set(by_name))))
        if index in executed and index not in skip_cells:
            calls += [(index, by_name[c.name], c.argument) for c in check_calls(cell.source, set(by_name))]
    kept = _slice(cells, [a for _, _, a in calls])
    steps: list[dict] = []
    for index, _ in cells:
        if kept.get(index):
            steps.append({"code": replay_source(kept[index]), "cell": index + 1})
        steps += [{"exercise": ex, "argument": arg, "cell": index + 1} for i, ex, arg in calls if i == index]
    used = sorted({s["exercise"] for s in steps if "exercise" in s})
    modules = sorted({exercises[e].check.__module__ for e in used})
    return {"modules": modules, "exercises": used, "steps": steps}


async def _read(proc, nonce: str, timeout_for, on_message) -> str:
    """Feed the runner's messages to `on_message` until it is done; "timeout", "died" or "done"."""
    assert proc.stdout is not None
    while True:
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), timeout_for())
        except asyncio.TimeoutError:
            return "timeout"
        if not line:
            return "died"
        try:
            message = json.loads(line)
            assert isinstance(message, dict) and message.pop("nonce", None) == nonce
        except (ValueError, AssertionError):
            on_message({"kind": "forged"})
            continue
        if message.get("kind") == "done":
            return "done"
        on_message(message)


def _kill(proc) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


async def _run_once(job: dict, env, limits, cell_timeout: float, budget: float, on_message) -> tuple[str, str | None]:
    """One runner on `job`: how it ended, and the exercise it was checking when it did not finish."""
    nonce = secrets.token_hex(16)
    current: dict[str, str | None] = {"exercise": None}

    def handle(message: dict) -> None:
        current["exercise"] = message.get("exercise") if message.get("kind") == "begin" else None
        on_message(message)

    with private_dir() as work:
        proc = await asyncio.create_subprocess_exec(
            *limited_argv([sys.executable, "-m", "tutorial_lib.grading.runner"], limits),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            cwd=work,
            env=sandbox_env(work.parent, env),
            start_new_session=True,
            limit=1 << 22,
        )
        assert proc.stdin is not None
        proc.stdin.write(json.dumps({**job, "nonce": nonce}).encode())
        proc.stdin.close()
        try:
            ended = await _read(proc, nonce, lambda: cell_timeout if current["exercise"] else budget, handle)
        finally:
            _kill(proc)
            await proc.wait()
    return ended, current["exercise"]


def _static_events(nb, modules: list[str]) -> list[CellEvent]:
    code = [(i, c.source) for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    by_cell: dict[int, list[str]] = {}
    for k, what in tampering([s for _, s in code], modules=set(modules)):
        by_cell.setdefault(code[k][0] + 1, []).append(what)
    return [
        CellEvent(cell, "tampering", f"the notebook changes the library: {'; '.join(whats)}; grading ignores it")
        for cell, whats in by_cell.items()
    ]


async def grade_checks(
    nb,
    exercises: dict,
    executed: set[int],
    skip_cells: set[int],
    env: dict[str, str] | None,
    limits: Limits | None,
    cell_timeout: float,
    notebook_timeout: float | None,
) -> TrustedResults:
    """Run the notebook's checks in sandboxed runners (a new one after a check that hangs or kills it)."""
    job = build_job(nb, exercises, executed, skip_cells)
    out = TrustedResults(events=_static_events(nb, job["modules"]))
    if not job["exercises"]:
        return out
    flagged = {e.cell for e in out.events}

    def on_message(message: dict) -> None:
        kind, ex_id = message.get("kind"), message.get("exercise")
        if kind == "result" and isinstance(ex_id, str) and ex_id in exercises:
            status, hint = str(message.get("status")), str(message.get("hint", ""))
            out.logged[ex_id] = {"exercise": ex_id, "title": exercises[ex_id].title, "status": status, "hint": hint}
        elif kind == "tampered" and message.get("cell") not in flagged:
            flagged.add(message.get("cell"))
            names = ", ".join(map(str, message.get("names", [])[:4]))
            out.events.append(
                CellEvent(
                    message.get("cell"), "tampering", f"the notebook changed the library ({names}); grading ignores it"
                )
            )
        elif kind == "forged":
            out.events.append(
                CellEvent(None, "tampering", "something other than the checks wrote to the grader's results")
            )

    budget = float(notebook_timeout or 1800)
    while True:
        ended, exercise = await _run_once(job, env, limits, cell_timeout, budget, on_message)
        if ended == "done" or exercise is None:
            return out
        why = (
            f"the check ran for more than {cell_timeout:g} s (an infinite loop, or a very slow function?)"
            if ended == "timeout"
            else "the check's process ended while calling your function (out of memory, or it exited)"
        )
        on_message({"kind": "result", "exercise": exercise, "status": "failed", "hint": why})
        job = {**job, "skip": sorted(out.logged)}
