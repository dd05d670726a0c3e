"""Time each solution notebook end to end, as CI runs it (offline, one torch thread, no progress bars).

    python benchmarks/notebook_times.py                 # every notebook in solutions/
    python benchmarks/notebook_times.py solutions/05_induction_heads.ipynb

Prints wall seconds per notebook and the 120 s budget each must meet; the README's run-time column
comes from this script. Notebooks run one at a time in fresh kernels on copies (the files are untouched).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
BUDGET_S = 120.0


def time_notebook(path: Path) -> float:
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()
    client.execute()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="*", type=Path)
    args = parser.parse_args(argv)
    for key, value in {
        "TUTORIAL_PROGRESS": "0",
        "TUTORIAL_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
        "MPLBACKEND": "module://matplotlib_inline.backend_inline",
    }.items():
        os.environ.setdefault(key, value)
    paths = args.paths or sorted((ROOT / "solutions").glob("*.ipynb"))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"{'notebook':32s} {'seconds':>8s}  budget {BUDGET_S:.0f} s   (load average at start {load:.1f}, {os.cpu_count()} cores)"
    )
    over = 0
    for path in paths:
        seconds = time_notebook(path)
        over += seconds > BUDGET_S
        print(f"{path.name:32s} {seconds:8.1f}  {'ok' if seconds <= BUDGET_S else 'OVER'}", flush=True)
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
