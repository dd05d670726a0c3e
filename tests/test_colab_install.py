"""The Colab path, offline: the setup cell, run as on Colab (google.colab imported, TUTORIAL_REPO_URL pointing
at this repository as a local git URL), installs tutorial_lib non-editable into a fresh virtual environment,
and chapter 00's first cells then run from a folder outside the repository.

Colab ships torch, transformers, numpy ...; here the fresh environment sees this environment's packages
(a .pth file, as Colab's preinstalled ones) and pip gets no index at all (PIP_NO_INDEX), so the test fails if
the core dependencies ask for anything that is not already there: the cell must install tutorial_lib alone.
Build isolation is off (setuptools comes from the environment, as on Colab), since no index is reachable.
pip installs the repository's last commit (HEAD), as Colab installs the pushed one."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

import nbformat
import pytest

from tutorial_lib import notebooks

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent

RUNNER = r"""
import importlib.machinery, json, sys, types
colab = types.ModuleType("google.colab")
colab.__spec__ = importlib.machinery.ModuleSpec("google.colab", None)
sys.modules["google.colab"] = colab  # what the setup cell tests for (only it: other libraries test for it too)
from IPython.core.interactiveshell import InteractiveShell
shell = InteractiveShell.instance()
for i, source in enumerate(json.load(open(sys.argv[1]))):
    result = shell.run_cell(source)
    sys.modules.pop("google.colab", None)
    if not result.success:
        sys.exit(f"cell {i + 1} failed: {result.error_in_exec or result.error_before_exec!r}")
import tutorial_lib
print("TUTORIAL_LIB_AT", tutorial_lib.__file__)
"""


def _first_cells(path: Path) -> list[str]:
    """The code cells before the first exercise stub."""
    cells = []
    for cell in nbformat.read(path, as_version=4).cells:
        if cell.cell_type != "code":
            continue
        if "NotImplementedError" in cell.source:
            break
        cells.append(cell.source)
    return cells


def test_setup_cell_installs_from_a_local_git_url_and_runs_a_chapter_outside_the_repo(tmp_path):
    if subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True).returncode:
        pytest.skip("the repository is not a git checkout")
    venv = tmp_path / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True
    )  # pip: the current one, below
    python = venv / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    here = sysconfig.get_paths()["purelib"]  # this environment's packages (pip too) stand for Colab's
    (Path(site) / "zz_preinstalled.pth").write_text(f"import site; site.addsitedir({here!r})\n")
    cells = _first_cells(ROOT / "chapters" / "00_foundations.ipynb")
    assert cells[0] == notebooks.SETUP_CELL and len(cells) >= 3
    (tmp_path / "cells.json").write_text(json.dumps(cells))
    (tmp_path / "runner.py").write_text(RUNNER)
    outside = tmp_path / "student"
    outside.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYTHON", "VIRTUAL_ENV"))}
    env.update({notebooks.REPO_ENV: f"file://{ROOT}", "PIP_NO_INDEX": "1", "PIP_CONFIG_FILE": os.devnull,
                "PIP_NO_BUILD_ISOLATION": "0", "HF_HUB_OFFLINE": "1", "MPLBACKEND": "Agg"})  # fmt: skip
    # pip's odd spelling: PIP_NO_BUILD_ISOLATION=0 turns build isolation *off*
    run = subprocess.run([str(python), str(tmp_path / "runner.py"), str(tmp_path / "cells.json")], cwd=outside,
                         env=env, capture_output=True, text=True, timeout=600)  # fmt: skip
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-4000:]
    where = re.search(r"TUTORIAL_LIB_AT (\S+)", out)
    assert where and where.group(1).startswith(str(venv)), f"tutorial_lib not from the fresh environment: {out[-2000:]}"
    assert (venv / "bin").exists() and not (Path(site) / "__editable__").exists()
    installed = subprocess.run([str(python), "-m", "pip", "list", "--path", site, "--format", "json"], env=env,
                               capture_output=True, text=True, check=True).stdout  # fmt: skip
    names = {p["name"].lower().replace("_", "-") for p in json.loads(installed)} - {"pip", "setuptools"}
    assert names == {"tutorial-lib"}, f"the setup cell installed more than tutorial_lib: {sorted(names)}"
    assert "tutorial_lib ready" in out  # the setup cell's own message; the model cells ran after it
