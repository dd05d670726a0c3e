"""Where student code runs when a notebook is graded: a scrubbed environment (what Python, torch and
the library need, nothing of the instructor's: no secrets, no grade paths), a private working
directory holding only that student's notebook, and resource limits set before Python starts.

Used by the executor (the notebook's kernel) and by `trusted` (the process that runs the checks)."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

__all__ = ["DEFAULT_LIMITS", "Limits", "limited_argv", "private_dir", "sandbox_env"]

# Passed through from the instructor's environment: what Python, torch, the hub cache and the
# library's settings need. Everything else (tokens, secrets, TUTORIAL_GRADE_*) stays out.
_KEEP = {
    "PATH", "LANG", "LANGUAGE", "TZ", "TERM", "PYTHONPATH", "VIRTUAL_ENV", "CONDA_PREFIX",
    "HF_HOME", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "TRANSFORMERS_CACHE", "TORCH_HOME",
    "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "CUDA_VISIBLE_DEVICES",
    "CUBLAS_WORKSPACE_CONFIG", "LD_LIBRARY_PATH", "SSL_CERT_FILE",
    "TUTORIAL_MODEL", "TUTORIAL_THREADS", "TUTORIAL_DEVICE", "TUTORIAL_PATCHING_ENGINE",
}  # fmt: skip
_KEEP_PREFIXES = ("LC_",)


@dataclass(frozen=True)
class Limits:
    """Per-process limits on student code (0 = none). `memory_mb` caps heap and private mappings
    (RLIMIT_DATA: a GPU's reserved address space does not count), `cpu_seconds` the CPU time of a
    kernel (all threads), `file_mb` the size of any file written, `processes` the user's processes
    (RLIMIT_NPROC: the kernel cannot fork past it; Linux does not apply it to root)."""

    memory_mb: int = 6144
    cpu_seconds: int = 3600
    file_mb: int = 512
    processes: int = 256  # on top of the processes the user already runs

    def resolved(self) -> dict[str, int]:
        """The values the kernel gets: `processes` counted from the user's current process count."""
        values = asdict(self)
        if self.processes:
            values["processes"] = self.processes + _user_processes()
        return values


DEFAULT_LIMITS = Limits()


def _user_processes() -> int:
    """Processes and threads of this user now (what RLIMIT_NPROC counts)."""
    uid, count = os.getuid(), 0
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else []:
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    count += len(os.listdir(entry / "task"))
            except OSError:
                continue
    return count


def sandbox_env(home: str | Path | None = None, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of student code: offline, quiet, this tutorial_lib first, only the variables
    listed in _KEEP from os.environ, and (given `home`) HOME and TMPDIR in that private folder."""
    env = {k: v for k, v in os.environ.items() if k in _KEEP or k.startswith(_KEEP_PREFIXES)}
    if home is not None:
        home = str(home)
        env.update(HOME=home, TMPDIR=home, MPLCONFIGDIR=home, IPYTHONDIR=os.path.join(home, ".ipython"))
    elif "HOME" in os.environ:
        env["HOME"] = os.environ["HOME"]
    env.update(
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        MPLBACKEND="agg",
        PYDEVD_DISABLE_FILE_VALIDATION="1",
        TUTORIAL_PROGRESS="0",
        TUTORIAL_CIRCUITSVIS=os.environ.get("TUTORIAL_CIRCUITSVIS", "static"),
        PYTHONNOUSERSITE="1",
    )
    # the hub cache and the organisms stay where the instructor's HOME had them
    real_home = os.path.expanduser("~")
    env.setdefault("HF_HOME", os.environ.get("HF_HOME") or os.path.join(real_home, ".cache", "huggingface"))
    package_parent = str(Path(__file__).resolve().parents[2])  # the folder that holds tutorial_lib/
    env["PYTHONPATH"] = os.pathsep.join([package_parent, *filter(None, [env.get("PYTHONPATH")])])
    env.update(extra or {})
    return env


def limited_argv(argv: list[str], limits: Limits | None) -> list[str]:
    """`argv` run under `limits` (none: unchanged): Python runs _limited.py, which sets them and execs argv."""
    if limits is None:
        return list(argv)
    wrapper = str(Path(__file__).with_name("_limited.py"))
    return [sys.executable, "-I", wrapper, json.dumps(limits.resolved()), *argv]


@contextmanager
def private_dir(notebook: Path | None = None) -> Iterator[Path]:
    """A fresh temporary folder (removed afterwards) holding only a copy of `notebook`, if given."""
    tmp = Path(tempfile.mkdtemp(prefix="tutorial-grade-"))
    try:
        work = tmp / "work"
        work.mkdir()
        if notebook is not None:
            shutil.copyfile(notebook, work / Path(notebook).name)
        yield work
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
