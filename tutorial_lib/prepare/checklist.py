"""One line of the checklist (`Check`), what the curriculum requires, and where the repository is."""

from __future__ import annotations

import importlib.metadata as metadata
import sys
from dataclasses import dataclass
from pathlib import Path

INSTALL = "run `make install` in the repository (or `pip install -e .`)"
# Used when neither the installed distribution nor pyproject.toml says what is needed.
FALLBACK_REQUIREMENTS = [
    "torch>=2.2",
    "transformer-lens>=4.3,<5",
    "circuitsvis>=1.43",
    "ipywidgets>=7.6",
    "matplotlib>=3.7",
    "numpy>=1.24",
    "safetensors>=0.4",
    "einops>=0.7",
    "jaxtyping>=0.2.25",
]
FALLBACK_PYTHON = ">=3.10"
IMPORTS = ("torch", "transformer_lens", "circuitsvis", "ipywidgets")
STATUSES = ("OK", "WARN", "FAIL")


@dataclass
class Check:
    name: str
    status: str  # OK | WARN | FAIL
    detail: str = ""
    fix: str = ""  # what to do when it is not OK

    def line(self) -> str:
        text = f"{self.status:<5} {self.name}"
        if self.detail:
            text += f": {self.detail}"
        if self.fix and self.status != "OK":
            text += f"\n      -> {self.fix}"
        return text


def repo_root() -> Path:
    """The folder with chapters/: the current directory if it has one, else the package's parent."""
    cwd = Path.cwd()
    if (cwd / "chapters").is_dir() or (cwd / "pyproject.toml").is_file():
        return cwd
    return Path(__file__).resolve().parents[2]


def requirements(root: Path) -> tuple[str, list[str]]:
    """(requires-python, dependency specs): installed metadata, else pyproject.toml, else a fallback."""
    try:
        dist = metadata.distribution("tutorial_lib")
        reqs = [r for r in (dist.requires or []) if "extra ==" not in r]
        if reqs:
            return (dist.metadata.get_all("Requires-Python") or [""])[0] or FALLBACK_PYTHON, reqs
    except metadata.PackageNotFoundError:
        pass
    pyproject = root / "pyproject.toml"
    if pyproject.is_file() and sys.version_info >= (3, 11):
        import tomllib

        try:
            project = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("project", {})
            if project.get("dependencies"):
                return project.get("requires-python", FALLBACK_PYTHON), list(project["dependencies"])
        except ValueError:
            pass
    return FALLBACK_PYTHON, list(FALLBACK_REQUIREMENTS)


def _satisfies(version: str, spec: str) -> bool | None:
    """None when `packaging` is unavailable to decide."""
    try:
        from packaging.specifiers import SpecifierSet
        from packaging.version import Version
    except ImportError:
        return None
    return Version(version) in SpecifierSet(spec, prereleases=True)
