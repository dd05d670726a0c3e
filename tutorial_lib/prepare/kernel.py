"""Does the kernel JupyterLab starts ("python3") come up and import tutorial_lib?"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from .checklist import INSTALL, Check

IMPORT_CODE = "import sys, tutorial_lib; print(sys.executable, tutorial_lib.__version__)"


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
        register = f"`{sys.executable} -m ipykernel install --user`"
        return [Check("Jupyter kernel", "FAIL", "no python3 kernel is registered", register)]
    started = time.monotonic()
    with _working_folder(cwd) as folder:
        try:
            km, kc = start_new_kernel(
                kernel_name="python3",
                startup_timeout=timeout,
                cwd=str(folder),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        except Exception as err:  # noqa: BLE001 - a kernel that does not start is one FAIL line
            return [
                Check(
                    "Jupyter kernel",
                    "FAIL",
                    f"the python3 kernel ({spec.argv[0]}) did not start: {err}",
                    f"`{sys.executable} -m ipykernel install --user`, then run prepare again",
                )
            ]
        status, output = _import_in_kernel(km, kc, timeout)
    return _verdict(status, output, spec.argv[0], started)


@contextlib.contextmanager
def _working_folder(cwd: Path | None) -> Iterator[Path]:
    """`cwd` when it is a folder, else a temporary folder removed afterwards."""
    if cwd is not None and Path(cwd).is_dir():
        yield Path(cwd)
        return
    with tempfile.TemporaryDirectory(prefix="tutorial-prepare-") as scratch:
        yield Path(scratch)


def _import_in_kernel(km, kc, timeout: float) -> tuple[str, str]:
    """Run IMPORT_CODE in the started kernel, then shut it down: (reply status, printed output or error)."""
    lines: list[str] = []

    def collect(msg):
        if msg["msg_type"] == "stream":
            lines.append(msg["content"]["text"])
        elif msg["msg_type"] == "error":
            lines.append(f"{msg['content']['ename']}: {msg['content']['evalue']}")

    try:
        reply = kc.execute_interactive(IMPORT_CODE, timeout=timeout, output_hook=collect, allow_stdin=False)
        status = reply["content"]["status"]
    except Exception as err:  # noqa: BLE001 - a kernel that dies or times out is one FAIL line
        status, lines = "error", [f"{type(err).__name__}: {err}"]
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    return status, "".join(lines).strip()


def _verdict(status: str, output: str, kernel_argv0: str, started: float) -> list[Check]:
    """OK when the kernel imported tutorial_lib with this Python, WARN with another one, else FAIL."""
    if status != "ok":
        return [
            Check(
                "Jupyter kernel",
                "FAIL",
                f"started, but `import tutorial_lib` failed in it: {output[:200]}",
                f"the kernel runs {kernel_argv0}: install the curriculum into that Python ({INSTALL}), "
                f"or register this one: `{sys.executable} -m ipykernel install --user`",
            )
        ]
    kernel_python = output.split()[0] if output else kernel_argv0
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
