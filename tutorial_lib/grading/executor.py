"""The executor: run every code cell of a notebook in a fresh kernel of this Python, carrying on after
errors, timeouts (interrupt, then restart if the interrupt is ignored) and kernels that die (a new
kernel is given the definitions of the cells before). Its output is shown, never used for grades."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .notebook_io import cell_label
from .reports import CellEvent
from .sandbox import Limits, limited_argv, sandbox_env
from .statements import definitions, replay_source

__all__ = [
    "DEFAULT_CELL_TIMEOUT",
    "DEFAULT_NOTEBOOK_TIMEOUT",
    "PROBE_TIMEOUT",
    "TIMEOUT_ENAME",
    "kernel_env",
    "run_notebook",
]

TIMEOUT_ENAME = "CellTimeout"  # the error name the executor gives a cell that ran past its timeout
DEFAULT_CELL_TIMEOUT = 120  # seconds; a whole solution notebook runs in under 120 s on 2 cores
DEFAULT_NOTEBOOK_TIMEOUT = 1800
PROBE_TIMEOUT = 15  # after a timeout: how long an interrupted kernel may take to answer again
_LOG = logging.getLogger("tutorial_lib.grading")


def _kernel_manager(limits: Limits | None = None):
    """A kernel manager that always starts this Python (sys.executable) with ipykernel, under `limits`."""
    from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager

    class _CurrentPython(KernelSpecManager):
        def get_kernel_spec(self, kernel_name, *args, **kwargs):  # noqa: ARG002 - whatever is asked for, this Python
            import ipykernel.kernelspec as ks

            spec = ks.get_kernel_dict()
            spec["argv"] = limited_argv([sys.executable, *spec["argv"][1:]], limits)
            return KernelSpec(resource_dir=ks.RESOURCES, **spec)

    return AsyncKernelManager(kernel_name="python3", kernel_spec_manager=_CurrentPython())


def kernel_env(extra: dict[str, str] | None = None, home: str | Path | None = None) -> dict[str, str]:
    """The environment executed notebooks get: scrubbed (sandbox.sandbox_env), offline, quiet,
    this tutorial_lib first; with `home`, HOME and TMPDIR in that private folder."""
    return sandbox_env(home, extra)


def _client(nb, cell_timeout: float, startup_timeout: float, on_cell_error: Callable[..., None]):
    """An nbclient NotebookClient that carries on after errors and interrupts a cell on timeout."""
    from nbclient import NotebookClient

    quiet = logging.getLogger("tutorial_lib.grading.nbclient")
    quiet.setLevel(logging.CRITICAL)
    return NotebookClient(
        nb,
        timeout=int(max(1, cell_timeout)),
        allow_errors=True,
        interrupt_on_timeout=True,
        error_on_timeout={
            "ename": TIMEOUT_ENAME,
            "evalue": f"the cell ran for more than {cell_timeout:g} s",
            "traceback": [],
        },
        startup_timeout=int(startup_timeout),
        iopub_timeout=10,
        record_timing=False,
        shutdown_kernel="immediate",
        on_cell_error=on_cell_error,
        log=quiet,
    )


class _NotebookRun:
    """One notebook's execution: the client and its kernel, the events so far, the cells that ran."""

    def __init__(
        self,
        nb,
        cwd: str | Path,
        env: dict[str, str],
        cell_timeout: float,
        startup_timeout: float,
        on_kernel_start: Callable[[Any], None] | None,
        on_kernel_stop: Callable[[Any], None] | None,
        limits: Limits | None = None,
    ):
        self.nb, self.cwd, self.env, self.cell_timeout, self.limits = nb, cwd, env, cell_timeout, limits
        self.on_kernel_start, self.on_kernel_stop = on_kernel_start, on_kernel_stop
        self.events: list[CellEvent] = []
        self.executed: set[int] = set()
        self.errors: dict[int, dict] = {}
        self.client = _client(nb, cell_timeout, startup_timeout, self._on_cell_error)

    def _on_cell_error(self, cell, cell_index, execute_reply):  # noqa: ARG002 - nbclient passes these by name
        self.errors[cell_index] = execute_reply.get("content", {})

    async def start(self) -> None:
        client = self.client
        client.km = _kernel_manager(self.limits)
        client.reset_execution_trackers()
        # the kernel's own log (e.g. ipykernel's warnings) would interleave with the report
        await client.async_start_new_kernel(
            cwd=str(self.cwd), env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        await client.async_start_new_kernel_client()
        if self.on_kernel_start:
            self.on_kernel_start(client.km)

    async def stop(self) -> None:
        client = self.client
        km = client.km
        if km is None:
            return
        if self.on_kernel_stop:
            self.on_kernel_stop(km)
        group = getattr(getattr(km, "provisioner", None), "pgid", None)
        try:
            await client._async_cleanup_kernel()
        except Exception as err:  # noqa: BLE001 - a dead kernel may refuse a clean shutdown
            _LOG.debug("kernel cleanup: %s", err)
        if group and group != os.getpgid(0):  # whatever the kernel forked goes with it
            with contextlib.suppress(OSError):
                os.killpg(group, signal.SIGKILL)
        client.km, client.kc = None, None

    async def responsive(self) -> bool:
        """After an interrupt: does the kernel answer a trivial request within PROBE_TIMEOUT?"""
        client = self.client
        saved = client.timeout
        client.timeout = PROBE_TIMEOUT
        try:
            kc = client.kc
            if kc is None:
                return False
            msg_id = kc.execute("pass", store_history=False, silent=True)
            return await client.async_wait_for_reply(msg_id) is not None
        except Exception:  # noqa: BLE001 - dead or wedged either way
            return False
        finally:
            client.timeout = saved

    async def restart(self, reason: str, cell: int) -> None:
        """A new kernel, given the definitions (imports, functions, assignments) of the cells run before `cell`."""
        await self.stop()
        await self.start()
        statements = [s for i in sorted(self.executed) if i < cell - 1 for s in definitions(self.nb.cells[i].source)]
        replayed = await self.replay(replay_source(statements)) if statements else True
        self.events.append(
            CellEvent(
                cell,
                "kernel restarted",
                f"{reason}; the kernel was restarted, "
                + (
                    "the setup and definitions of the cells before it were run again, and grading went on"
                    if replayed
                    else "the cells before it could not be run again in time; grading went on without them"
                ),
            )
        )

    async def replay(self, code: str) -> bool:
        """Run `code` silently in the new kernel; False when it did not finish within the cell timeout."""
        client, kc = self.client, self.client.kc
        if kc is None:
            return False
        saved, client.timeout = client.timeout, int(max(1, self.cell_timeout))
        try:
            return await client.async_wait_for_reply(kc.execute(code, silent=True, store_history=False)) is not None
        except Exception:  # noqa: BLE001 - a timeout or a dead kernel: grading goes on regardless
            return False
        finally:
            client.timeout = saved

    async def run_cells(self, notebook_timeout: float | None) -> None:
        """Every non-empty code cell in order, until the notebook runs past `notebook_timeout`."""
        started = time.monotonic()
        count = 0
        for index, cell in enumerate(self.nb.cells):
            if cell.cell_type != "code" or not cell.source.strip():
                continue
            if notebook_timeout and time.monotonic() - started > notebook_timeout:
                self.events.append(
                    CellEvent(
                        index + 1,
                        "not run",
                        f"this cell and the ones after it were not run: "
                        f"the notebook ran past its limit of {notebook_timeout:g} s",
                    )
                )
                break
            count += 1
            await self.run_cell(cell, index, count)

    async def run_cell(self, cell, index: int, count: int) -> None:
        """Execute one cell; a dead kernel is restarted, an error or a timeout becomes an event."""
        from nbclient.exceptions import CellTimeoutError, DeadKernelError

        try:
            await self.client.async_execute_cell(cell, index, execution_count=count)
            self.executed.add(index)
        except DeadKernelError:
            self.executed.add(index)
            self.events.append(
                CellEvent(
                    index + 1,
                    "kernel died",
                    f"the kernel died while running {cell_label(self.nb, index)} "
                    "(out of memory, or the code exited the process)",
                )
            )
            await self.restart("after the kernel died", index + 1)
            return
        except CellTimeoutError:  # not expected with interrupt_on_timeout, but be safe
            self.executed.add(index)
            self.errors[index] = {"ename": TIMEOUT_ENAME, "evalue": f"more than {self.cell_timeout:g} s"}
        error = self.errors.get(index)
        if error:
            await self.report_error(index, error)

    async def report_error(self, index: int, error: dict) -> None:
        """A timeout (then restart the kernel if it ignores the interrupt) or an exception, as an event."""
        if error.get("ename") == TIMEOUT_ENAME:
            self.events.append(
                CellEvent(
                    index + 1,
                    "timeout",
                    f"timed out after {self.cell_timeout:g} s "
                    f"({cell_label(self.nb, index)}): an infinite loop? It was interrupted",
                )
            )
            if not await self.responsive():
                await self.restart("the interrupted cell did not stop", index + 1)
        else:
            message = f"{error.get('ename', 'Error')}: {error.get('evalue', '')}".strip()
            self.events.append(CellEvent(index + 1, "error", f"raised {message[:300]} ({cell_label(self.nb, index)})"))


async def run_notebook(
    nb,
    cwd: str | Path,
    env: dict[str, str],
    cell_timeout: float = DEFAULT_CELL_TIMEOUT,
    notebook_timeout: float | None = DEFAULT_NOTEBOOK_TIMEOUT,
    startup_timeout: float = 120,
    on_kernel_start: Callable[[Any], None] | None = None,
    on_kernel_stop: Callable[[Any], None] | None = None,
    limits: Limits | None = None,
) -> tuple[list[CellEvent], set[int]]:
    """Execute every code cell of `nb` in place, carrying on after errors, timeouts and dead kernels.

    Returns the events (1-based cell numbers) and the 0-based indices of the cells that ran.
    `on_kernel_start(km)` is called for each kernel started (the benchmark samples its memory).
    With `limits`, each kernel runs under them (sandbox.Limits).
    """
    run = _NotebookRun(nb, cwd, env, cell_timeout, startup_timeout, on_kernel_start, on_kernel_stop, limits)
    try:
        await run.start()
    except Exception as err:  # noqa: BLE001
        await run.stop()
        raise RuntimeError(f"the kernel did not start ({type(err).__name__}: {err})") from None
    try:
        await run.run_cells(notebook_timeout)
    finally:
        await run.stop()
    return run.events, run.executed
