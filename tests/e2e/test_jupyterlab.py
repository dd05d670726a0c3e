"""A student's first minutes in a real browser: JupyterLab on a loopback port, a chapter notebook
opened in headless Chromium, Run All, then: no unexpected errors, a matplotlib figure rendered as
an <img>, and a circuitsvis view drawn offline (the inline bundle, no network). A screenshot is
saved (its path is printed; E2E_SCREENSHOT_DIR keeps it somewhere CI can upload).

The notebook is chapter 00 as a student has it once the exercises are done (the solution with its
outputs cleared, so any error at all is unexpected), else a tiny generated demo; both end with the
demo's plot and attention view.
E2E_NOTEBOOK=path/to/any.ipynb opens that notebook instead."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
CHAPTER = Path(os.environ.get("E2E_NOTEBOOK") or REPO / "solutions" / "00_foundations.ipynb")  # any notebook
CHROMIUM = os.environ.get("E2E_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
TOKEN = "e2e-test-token"
EXPECTED_IN_CHAPTER: set[str] = set()  # exercises done: no error is expected
DEMO_CELLS = [
    "import matplotlib.pyplot as plt\nimport torch\n\nfig, ax = plt.subplots(figsize=(4, 2.5))\n"
    "ax.plot([0, 1, 2, 3], [0, 1, 4, 9], marker='o')\nax.set_title('e2e: a matplotlib figure')\nplt.show()",
    "import tutorial_lib.display\n\ntorch.manual_seed(0)\n"
    "tutorial_lib.display.attention_heads(torch.rand(2, 4, 4).softmax(-1), ['a', 'b', 'c', 'd'])",
]


def demo_notebook():
    nb = new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    nb.cells = [new_markdown_cell("# e2e demo"), new_code_cell("import tutorial_lib\n\nsession = tutorial_lib.setup()")]
    return nb


def prepare_notebook(workdir: Path) -> tuple[Path, set[str]]:
    """The notebook to open (a clean copy) and the error names it may show."""
    if CHAPTER.exists():
        nb = nbformat.read(CHAPTER, as_version=4)
        allowed = EXPECTED_IN_CHAPTER
        for cell in nb.cells:
            if cell.cell_type == "code":
                cell.outputs, cell.execution_count = [], None
    else:
        nb, allowed = demo_notebook(), set()
    nb.cells += [new_markdown_cell("## e2e: rendering checks")] + [new_code_cell(c) for c in DEMO_CELLS]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    target = workdir / (CHAPTER.name if CHAPTER.exists() else "e2e_demo.ipynb")
    nbformat.write(nb, target)
    return target, allowed


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def lab_env(tmp: Path) -> dict[str, str]:
    """Fresh Jupyter config, data and runtime folders; this checkout importable; offline circuitsvis."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "TUTORIAL_GRADE"))}
    config = tmp / "jupyter-config"
    (config / "labconfig").mkdir(parents=True)
    # no "news" prompt, no update check: nothing reaches for the network
    (config / "labconfig" / "page_config.json").write_text(
        json.dumps({"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}})
    )
    env.update(
        JUPYTER_CONFIG_DIR=str(config),
        JUPYTER_RUNTIME_DIR=str(tmp / "jupyter-runtime"),
        JUPYTERLAB_WORKSPACES_DIR=str(tmp / "jupyter-workspaces"),
        JUPYTERLAB_SETTINGS_DIR=str(tmp / "jupyter-settings"),
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        TUTORIAL_PROGRESS="0",
        TUTORIAL_CIRCUITSVIS="inline",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        MPLBACKEND="module://matplotlib_inline.backend_inline",
    )
    return env


@pytest.fixture
def lab(tmp_path):
    """JupyterLab serving a scratch folder on 127.0.0.1:<free port>; yields (url, folder)."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"chromium not found at {CHROMIUM} (apt-get install chromium, or set E2E_CHROMIUM)")
    pytest.importorskip(
        "playwright.sync_api",
        reason="playwright not installed (pip install playwright; "
        "no browser download needed, the test uses the system chromium)",
    )
    workdir = tmp_path / "work"
    workdir.mkdir()
    port = free_port()
    log = open(tmp_path / "jupyterlab.log", "w")
    cmd = [
        sys.executable,
        "-m",
        "jupyter",
        "lab",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={TOKEN}",
        f"--ServerApp.root_dir={workdir}",
        "--LabApp.expose_app_in_browser=True",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.extension_manager=readonly",
        "--ServerApp.terminals_enabled=False",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # CI containers run as root
        cmd.append("--allow-root")
    proc = subprocess.Popen(cmd, cwd=workdir, env=lab_env(tmp_path), stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                pytest.fail(
                    f"jupyter lab exited ({proc.returncode}):\n{(tmp_path / 'jupyterlab.log').read_text()[-3000:]}"
                )
            try:
                with urllib.request.urlopen(f"{url}/api/status?token={TOKEN}", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("jupyter lab did not answer within 120 s")
            time.sleep(0.5)
        yield url, workdir
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


# In the page: the notebook panel JupyterLab shows (expose_app_in_browser puts the app on window).
PANEL = "window.jupyterapp && window.jupyterapp.shell.currentWidget"
OPENED = f"""() => {{ const w = {PANEL}; return !!(w && w.content && w.sessionContext && w.context.isReady); }}"""
KERNEL_READY = f"""async () => {{ const w = {PANEL}; await w.sessionContext.ready;
    const k = w.sessionContext.session && w.sessionContext.session.kernel; return k ? k.name : null; }}"""
# Done: the kernel is idle, no prompt shows [*] and every code cell has an execution count.
DONE = f"""() => {{ const w = {PANEL}; const k = w.sessionContext.session.kernel;
    const busy = [...document.querySelectorAll('.jp-InputPrompt')].some(p => p.textContent.includes('*'));
    const pending = w.content.widgets.some(c => c.model.type === 'code' && c.model.executionCount === null
                                                 && c.model.sharedModel.getSource().trim() !== '');
    return k.status === 'idle' && !busy && !pending; }}"""
CELLS = f"""() => {{ const w = {PANEL};
    return w.content.widgets.filter(c => c.model.type === 'code').map(c => ({{
        count: c.model.executionCount, source: c.model.sharedModel.getSource().slice(0, 60),
        errors: c.model.outputs.toJSON().filter(o => o.output_type === 'error').map(o => o.ename + ': ' + o.evalue),
    }})); }}"""
IMAGES = """() => [...document.querySelectorAll('.jp-OutputArea-output img')]
    .filter(img => img.complete && img.naturalWidth > 0).length"""
CIRCUITSVIS = """() => [...document.querySelectorAll('div[id^="circuits-vis-"]')].map(d => ({
    id: d.id, children: d.childElementCount, elements: d.querySelectorAll('*').length,
    drawn: d.querySelectorAll('svg, canvas, table').length, text: d.innerText.slice(0, 80) }))"""


def _offline_context(p, profile: Path) -> tuple[Any, list[str]]:
    """A headless Chromium that refuses everything not on the loopback server (the class may be offline);
    the list collects what it refused."""
    context = p.chromium.launch_persistent_context(
        str(profile),
        executable_path=CHROMIUM,
        headless=True,
        args=CHROMIUM_ARGS,
        viewport={"width": 1400, "height": 1000},
    )
    external: list[str] = []

    def offline(route):
        if route.request.url.startswith(("http://127.0.0.1", "ws://127.0.0.1", "data:", "blob:")):
            route.continue_()
        else:
            external.append(route.request.url)
            route.abort()

    context.route("**/*", offline)
    return context, external


def _run_all_cells(page, address: str, shots: Path, started: float, timings: dict) -> tuple[list, list, int]:
    """Open the notebook, Run All, wait until done; screenshots; returns (cells, circuitsvis views, images)."""
    page.set_default_timeout(180_000)
    page.goto(address, wait_until="domcontentloaded")
    page.wait_for_function(OPENED, polling=500)
    assert page.evaluate(KERNEL_READY) == "python3"
    timings["open"] = time.monotonic() - started
    # Run > Run All Cells, not awaited here: the wait below has the timeout
    page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
    page.wait_for_function(DONE, polling=500, timeout=600_000)
    timings["run all"] = time.monotonic() - started - timings["open"]
    cells = page.evaluate(CELLS)
    page.wait_for_function(f"() => ({CIRCUITSVIS})().some(v => v.drawn > 0)", polling=500, timeout=60_000)
    views = page.evaluate(CIRCUITSVIS)
    images = page.evaluate(IMAGES)
    view = page.locator('div[id^="circuits-vis-"]').last
    view.scroll_into_view_if_needed()
    page.screenshot(path=str(shots / "e2e_jupyterlab.png"))
    view.screenshot(path=str(shots / "e2e_circuitsvis.png"))
    return cells, views, images


def test_chapter_runs_in_jupyterlab(lab, tmp_path, capsys):
    from playwright.sync_api import sync_playwright

    url, workdir = lab
    notebook, allowed = prepare_notebook(workdir)
    shots = Path(os.environ.get("E2E_SCREENSHOT_DIR") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    timings = {}
    started = time.monotonic()
    with sync_playwright() as p:
        context, external = _offline_context(p, tmp_path / "chromium-profile")
        try:
            address = f"{url}/lab/tree/{notebook.name}?token={TOKEN}"
            cells, views, images = _run_all_cells(context.new_page(), address, shots, started, timings)
        finally:
            context.close()
    timings["total"] = time.monotonic() - started
    with capsys.disabled():
        print(
            f"\n[e2e] {notebook.name}: screenshots {shots / 'e2e_jupyterlab.png'} and {shots / 'e2e_circuitsvis.png'}; "
            + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items())
            + (f"; refused {len(external)} external requests: {external[:3]}" if external else "")
        )

    not_run = [c["source"] for c in cells if c["count"] is None and c["source"].strip()]
    unexpected = [(c["source"], e) for c in cells for e in c["errors"] if e.split(":")[0] not in allowed]
    assert not not_run, f"cells that did not run: {not_run}"
    assert not unexpected, f"unexpected errors: {unexpected}"
    assert images >= 1, "no matplotlib figure rendered as an <img>"
    drawn = [v for v in views if v["drawn"] > 0 and v["children"] > 0]
    assert drawn, f"circuitsvis did not render offline: {views}"
    assert "bundle not loaded" not in drawn[-1]["text"]
