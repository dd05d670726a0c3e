"""Execute the chapter notebooks concurrently, as a class does on one shared machine, and report
whether all finished and each kernel's peak memory (RSS of the kernel's whole process tree,
sampled with psutil every 0.2 s). Target: all finish, peak under 1.5 GB per kernel.

    python benchmarks/concurrent_notebooks.py                 # solutions/*.ipynb, 8 at a time
    python benchmarks/concurrent_notebooks.py --chapters      # the students' chapters (stubs may raise)
    python benchmarks/concurrent_notebooks.py --quick         # smoke run: one notebook
    python benchmarks/concurrent_notebooks.py --copies 2 a.ipynb b.ipynb   # any notebooks, each twice

"finished": ran to the end (no cell timed out, no kernel died); errors other than the stubs'
NotImplementedError (with --chapters) are listed. Exit code 0 when all finished without
unexpected errors under the memory target, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tutorial_lib.grading import kernel_env, read_notebook, run_notebook  # noqa: E402

TARGET_MB = 1536
ALLOWED_IN_CHAPTERS = {"NotImplementedError"}  # the stubs of a student's chapter


@dataclass
class Run:
    name: str
    path: Path
    pids: list[int] = field(default_factory=list)
    peak_mb: float = 0.0
    seconds: float = 0.0
    finished: bool = False  # ran to the end: no timeout, no dead kernel, not cut short
    problems: list[str] = field(default_factory=list)  # errors other than the allowed ones, timeouts, deaths


class Sampler(threading.Thread):
    """Sample the RSS of every live kernel's process tree; keep each run's peak and the machine's total."""

    def __init__(self, interval: float = 0.2):
        super().__init__(daemon=True)
        self.interval, self.live, self.total_peak_mb = interval, {}, 0.0
        self.lock, self.stopped = threading.Lock(), threading.Event()

    def add(self, run: Run, pid: int) -> None:
        with self.lock:
            self.live[pid] = run

    def remove(self, pid: int) -> None:
        with self.lock:
            self.live.pop(pid, None)

    @staticmethod
    def tree_mb(pid: int) -> float:
        try:
            proc = psutil.Process(pid)
            procs = [proc, *proc.children(recursive=True)]
        except psutil.Error:
            return 0.0
        total = 0
        for p in procs:
            try:
                total += p.memory_info().rss
            except psutil.Error:
                pass
        return total / 2**20

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            with self.lock:
                live = list(self.live.items())
            total = 0.0
            for pid, run in live:
                mb = self.tree_mb(pid)
                run.peak_mb = max(run.peak_mb, mb)
                total += mb
            self.total_peak_mb = max(self.total_peak_mb, total)


def _pid(km) -> int | None:
    provisioner = getattr(km, "provisioner", None)
    return getattr(provisioner, "pid", None) or getattr(getattr(provisioner, "process", None), "pid", None)


async def execute(run: Run, sampler: Sampler, limit: asyncio.Semaphore, cell_timeout: float, allowed: set[str]):
    async with limit:
        started = time.monotonic()
        try:
            nb = read_notebook(run.path)
        except ValueError as err:
            run.problems.append(str(err))
            return

        def on_start(km):
            pid = _pid(km)
            if pid:
                run.pids.append(pid)
                sampler.add(run, pid)

        def on_stop(km):
            pid = _pid(km)
            if pid:
                sampler.remove(pid)

        env = kernel_env({"TUTORIAL_CIRCUITSVIS": os.environ.get("TUTORIAL_CIRCUITSVIS", "inline")})
        try:
            events, _ = await run_notebook(
                nb,
                run.path.parent.resolve(),
                env,
                cell_timeout=cell_timeout,
                notebook_timeout=None,
                on_kernel_start=on_start,
                on_kernel_stop=on_stop,
            )
        except RuntimeError as err:
            run.problems.append(str(err))
            return
        finally:
            run.seconds = time.monotonic() - started
        for e in events:
            if e.kind == "error" and any(f"raised {name}" in e.message for name in allowed):
                continue
            run.problems.append(e.line())
        run.finished = not any(e.kind in ("timeout", "kernel died", "kernel restarted", "not run") for e in events)


async def main_async(paths: list[Path], jobs: int, copies: int, cell_timeout: float, allowed: set[str]) -> list[Run]:
    runs = [Run(f"{p.stem}" + (f"#{i + 1}" if copies > 1 else ""), p) for p in paths for i in range(copies)]
    sampler = Sampler()
    sampler.start()
    limit = asyncio.Semaphore(jobs)
    try:
        await asyncio.gather(*(execute(r, sampler, limit, cell_timeout, allowed) for r in runs))
    finally:
        sampler.stopped.set()
        sampler.join()
    main_async.total_peak_mb = sampler.total_peak_mb
    return runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="notebooks to run (default: solutions/*.ipynb)")
    parser.add_argument("--chapters", action="store_true", help="run chapters/*.ipynb (NotImplementedError allowed)")
    parser.add_argument("--jobs", type=int, default=8, help="kernels at once (default 8)")
    parser.add_argument("--copies", type=int, default=1, help="run each notebook this many times (a class)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per cell (default 600)")
    parser.add_argument("--quick", action="store_true", help="smoke run: the first notebook only")
    args = parser.parse_args(argv)
    folder = ROOT / ("chapters" if args.chapters else "solutions")
    paths = args.notebooks or sorted(folder.glob("[0-9][0-9]_*.ipynb"))
    if not paths:
        print(f"no notebooks in {folder}", file=sys.stderr)
        return 2
    if args.quick:
        paths, args.copies = paths[:1], 1
    allowed = ALLOWED_IN_CHAPTERS if args.chapters else set()
    # Each kernel runs in a scratch copy of its notebook's folder: nothing is written to the repo.
    with tempfile.TemporaryDirectory(prefix="concurrent-notebooks-") as tmp:
        copies = []
        for p in paths:
            target = Path(tmp) / p.parent.name / p.name
            target.parent.mkdir(exist_ok=True)
            shutil.copy(p, target)
            copies.append(target)
        total_mb = psutil.virtual_memory().total / 2**20
        print(
            f"{len(paths) * args.copies} notebook runs, {args.jobs} at a time, on {os.cpu_count()} CPUs "
            f"and {total_mb / 1024:.1f} GB RAM",
            flush=True,
        )
        started = time.monotonic()
        runs = asyncio.run(main_async(copies, args.jobs, args.copies, args.timeout, allowed))
        wall = time.monotonic() - started
    width = max(len(r.name) for r in runs)
    print(f"\n{'notebook':<{width}}  {'finished':>8}  {'errors':>6}  {'seconds':>8}  {'peak MB':>8}  problems")
    for r in runs:
        problems = "; ".join(r.problems)[:160]
        print(
            f"{r.name:<{width}}  {'yes' if r.finished else 'NO':>8}  {len(r.problems):>6}  {r.seconds:8.1f}  "
            f"{r.peak_mb:8.0f}  {problems}"
        )
    all_finished = all(r.finished for r in runs)
    clean = all(not r.problems for r in runs)
    peak = max(r.peak_mb for r in runs)
    under = peak < TARGET_MB
    print(
        f"\nall finished: {'yes' if all_finished else 'NO'}   "
        f"without unexpected errors: {'yes' if clean else f'NO ({sum(bool(r.problems) for r in runs)} runs)'}   "
        f"wall {wall:.0f} s   "
        f"peak per kernel: max {peak:.0f} MB, mean {sum(r.peak_mb for r in runs) / len(runs):.0f} MB "
        f"(target < {TARGET_MB} MB: {'OK' if under else 'OVER'})   "
        f"peak of all kernels together: {main_async.total_peak_mb:.0f} MB"
    )
    return 0 if all_finished and clean and under else 1


if __name__ == "__main__":
    sys.exit(main())
