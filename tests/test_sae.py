"""tutorial_lib.sae as a package: its public API, the chapter's docstrings and exercise references,
and the benchmark's smoke run. Each module has its own tests (tests/test_sae_<module>.py)."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from pathlib import Path

import torch

from tutorial_lib import sae as S
from tutorial_lib.checks import all_exercises

ROOT = Path(__file__).resolve().parents[1]
MODULES = ("sparse", "base", "architectures", "training", "metrics", "synthetic", "io")


def test_public_api_is_reexported():
    for name in S.__all__:
        assert getattr(S, name) is not None, name
    for module in MODULES:
        mod = importlib.import_module(f"tutorial_lib.sae.{module}")
        for name in mod.__all__:
            assert getattr(S, name, None) is getattr(mod, name), f"{module}.{name}"


def test_every_kernel_function_names_its_chapter():
    for module in MODULES:
        mod = importlib.import_module(f"tutorial_lib.sae.{module}")
        for name, obj in vars(mod).items():
            if (inspect.isfunction(obj) or inspect.isclass(obj)) and obj.__module__ == mod.__name__:
                assert "Chapter 02: sparse autoencoders." in (obj.__doc__ or ""), f"{module}.{name}"


def test_chapter_02_references_live_in_the_kernel_modules():
    exercises = {k: v for k, v in all_exercises().items() if k.startswith("02.")}
    assert exercises
    for ex_id, ex in exercises.items():
        assert ex.reference.__module__.startswith("tutorial_lib.sae."), ex_id
        assert f"Exercise {ex_id}" in (ex.reference.__doc__ or ""), ex_id


def test_benchmark_quick_ours_only(capsys):
    spec = importlib.util.spec_from_file_location("sae_vs_saelens", ROOT / "benchmarks" / "sae_vs_saelens.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    sys.modules["sae_vs_saelens"] = bench  # dataclasses look their module up there
    try:
        spec.loader.exec_module(bench)
    finally:
        sys.modules.pop("sae_vs_saelens", None)
    threads = torch.get_num_threads()
    try:
        results = bench.main(["--quick", "--ours-only"])
    finally:
        torch.set_num_threads(threads)
    assert len(results) == len(bench.QUICK)
    for r in results:
        assert r["ours_samples_per_s"] > 0 and 0.0 < r["ours_ev"] <= 1.0
    assert "samples/s" in capsys.readouterr().out
