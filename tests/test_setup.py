"""The README's two set-up commands: a virtual environment, one install, then no network; a fresh
clone holds everything they need."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ENV = Path(sys.prefix)


def _stamps(env: Path) -> list[Path]:
    return sorted(env.glob(".tutorial-installed-*"))


def _make(*args: str, cwd: Path = ROOT, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    if shutil.which("make") is None:
        pytest.skip("needs make")
    return subprocess.run(["make", "--no-print-directory", *args], cwd=cwd, env=env, capture_output=True, text=True)


def _offline_env() -> dict[str, str]:
    """The active environment, with every package index unreachable (a closed port on loopback)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(
        VIRTUAL_ENV=str(ENV),
        PIP_NO_INDEX="1",
        PIP_INDEX_URL="http://127.0.0.1:9/simple",
        PIP_FIND_LINKS="",
        PIP_CONFIG_FILE=os.devnull,
    )
    return env


def test_makefile_installs_into_a_virtual_environment_never_the_system_python():
    text = (ROOT / "Makefile").read_text()
    assert "VIRTUAL_ENV" in text and "-m venv" in text
    dry = _make("-n", "install", env={**os.environ, "VIRTUAL_ENV": "/nonexistent-env"})
    assert "/nonexistent-env/bin/python -m pip install" in dry.stdout or "nothing" in dry.stdout
    for line in dry.stdout.splitlines():
        if "pip install" in line:
            assert line.strip().startswith("/nonexistent-env/bin/python"), line


def test_second_install_needs_no_network():
    if not _stamps(ENV):
        pytest.skip(f"{ENV} was not installed by `make install` (no stamp): nothing to check")
    if "pip install" in _make("-n", "install", env=_offline_env()).stdout:
        pytest.skip(f"{ENV} was installed for another pyproject.toml: `make install` first (nothing to check)")
    result = _make("install", env=_offline_env())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "pip install" not in result.stdout, result.stdout
    assert "nothing to download" in result.stdout
    # `make lab` would run exactly this install step, then JupyterLab, and nothing else
    lab = _make("-n", "lab", env=_offline_env())
    assert "pip" not in lab.stdout and "jupyter lab chapters/" in lab.stdout, lab.stdout


def test_install_runs_pip_when_the_stamp_is_missing(tmp_path):
    """The control: with no stamp, the same command would install (and so would need the network)."""
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "python").symlink_to(sys.executable)
    dry = _make("-n", "install", env={**_offline_env(), "VIRTUAL_ENV": str(tmp_path)})
    assert f"{tmp_path}/bin/python -m pip install" in dry.stdout, dry.stdout


@pytest.mark.slow
def test_a_fresh_clone_holds_everything_the_readme_commands_need(tmp_path):
    """Clone the committed tree (HEAD) and run the README's commands' pieces from the clone alone."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs git and a git checkout")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(ROOT), str(clone)], check=True)
    env = {**_offline_env(), "PYTHONPATH": str(clone), "HF_HUB_OFFLINE": "1", "TUTORIAL_THREADS": "1"}
    env.pop("PYTEST_XDIST_WORKER", None)

    def run(*cmd: str) -> subprocess.CompletedProcess:
        result = subprocess.run(list(cmd), cwd=clone, env=env, capture_output=True, text=True)
        assert result.returncode == 0, f"{' '.join(cmd)} failed in a fresh clone:\n{result.stdout}\n{result.stderr}"
        return result

    where = run(sys.executable, "-c", "import tutorial_lib; print(tutorial_lib.__file__)").stdout
    assert where.startswith(str(clone)), f"the clone's own library was not imported: {where}"
    run(sys.executable, "-m", "tutorial_lib.build", "--check")
    # every shipped organism's files are committed and pass their integrity check
    run(
        sys.executable,
        "-c",
        "from tutorial_lib import organisms\nfor n in ('toy-lm','ioi-3l','induction-2l'): organisms.load(n)",
    )
    # the test command's files are there: collection of every test and notebook succeeds
    run(
        sys.executable,
        "-m",
        "pytest",
        "--collect-only",
        "-q",
        "-p",
        "no:cacheprovider",
        "--nbval",
        "--nbval-current-env",
        "--nbval-sanitize-with",
        "tests/nbval_sanitize.cfg",
        "tests",
        "solutions",
    )
    # and one chapter runs end to end from the clone, its stored outputs compared
    run(
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "--nbval",
        "--nbval-current-env",
        "--nbval-sanitize-with",
        "tests/nbval_sanitize.cfg",
        "solutions/00_foundations.ipynb",
    )
    # `make test`'s install step is satisfied without the network in the clone too
    assert run("make", "--no-print-directory", "-n", "test").stdout.count("pip install") == 0
