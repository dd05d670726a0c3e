"""Root pytest configuration: offline, quiet and comparable notebook runs under nbval."""

from __future__ import annotations

import os

# Set before any kernel starts: nbval's kernels inherit this environment.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TUTORIAL_THREADS", "1")  # same numerics as the executor that stored the outputs
os.environ.setdefault("TUTORIAL_PROGRESS", "0")  # progress bars print timings, which never compare equal
os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")

import torch

torch.set_num_threads(int(os.environ["TUTORIAL_THREADS"]))  # 2-thread ops on a shared 2-core box ran 10-100x slower

from nbval.plugin import IPyNbCell  # noqa: E402

from tests.nbval_numbers import align_numbers  # noqa: E402

_compare_outputs = IPyNbCell.compare_outputs


def _compare_at_printed_precision(self, test, ref, skip_compare=None):
    """nbval's comparison, after numbers within one unit of their last compared digit are aligned."""
    return _compare_outputs(self, align_numbers(test, ref), ref, skip_compare)


IPyNbCell.compare_outputs = _compare_at_printed_precision

# TUTORIAL_NBVAL_PORTABLE=1 (make test): nbval's kernels, and only they, run with torch's portable kernels,
# MKL's compatible path and oneDNN held to SSE4.1: what another machine computes. The stored outputs are
# then checked once, in that configuration, in the same run as the library's tests (which keep the fast
# kernels of this process). One thread, as everywhere in CI: 2 threads beside a second test worker on 2
# cores cost 20x the CPU (chapter 01: 460 s instead of 34 s). Unset, the kernels inherit this environment.
PORTABLE_KERNEL_ENV = {"ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "COMPATIBLE", "ONEDNN_MAX_CPU_ISA": "SSE41"}
if os.environ.get("TUTORIAL_NBVAL_PORTABLE") == "1":
    import nbval.kernel

    _start_new_kernel = nbval.kernel.start_new_kernel

    def _start_portable_kernel(*args, **kwargs):
        kwargs.setdefault("env", {**os.environ, **PORTABLE_KERNEL_ENV})
        return _start_new_kernel(*args, **kwargs)

    nbval.kernel.start_new_kernel = _start_portable_kernel

collect_ignore_glob = ["chapters/*", ".venv*/*", "benchmarks/*"]


def pytest_collectstart(collector):
    """HTML (circuitsvis, widgets' fallbacks) carries random ids: never compare it."""
    if collector.fspath and collector.fspath.ext == ".ipynb":
        collector.skip_compare += (
            "text/html",
            "application/javascript",
            "application/vnd.jupyter.widget-view+json",
            "application/vnd.jupyter.widget-state+json",
        )


# Modules whose items together take minutes (measured in CI, 2026-12-05): xdist's loadscope keeps a module on
# one worker, so they start first, or one of them would be left running alone at the end.
HEAVIEST_MODULES = ("tests/test_claims_02.py", "tests/test_exercises.py", "tests/test_real_notebooks.py",
                    "tests/test_claims_05.py")  # fmt: skip


def _rank(item) -> int:
    """Longest first, so that `pytest -n 2 --dist loadscope` leaves no worker a long tail: the heaviest
    modules (the chapters on SmolLM2 among them), then the other slow or real tests, then the solution
    notebooks, then the rest."""
    if item.nodeid.startswith(HEAVIEST_MODULES):
        return 0
    if item.get_closest_marker("slow") or item.get_closest_marker("real"):
        return 1
    return 2 if item.nodeid.startswith("solutions/") else 3


def pytest_collection_modifyitems(items):
    """Modules (xdist's scopes) ordered by their longest item; each module's items stay together, in order."""
    module_rank: dict[str, int] = {}
    for item in items:
        module = item.nodeid.split("::")[0]
        module_rank[module] = min(module_rank.get(module, 3), _rank(item))
    items.sort(key=lambda item: module_rank[item.nodeid.split("::")[0]])  # stable
