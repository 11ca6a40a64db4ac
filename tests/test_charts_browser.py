"""The Charts tab in a real browser: JupyterLab on 127.0.0.1, a loop recording in the kernel, Chromium.

Checks what only a front end shows: plotly (its mime renderer, no server, no iframe) draws
the curves of the chosen runs, the live run's curve grows while the loop records (the kernel is busy
all along: the panel redraws from inside ``record``, at most 4 times a second), a hostile run name is
shown as text, and no dialog opens. The screenshot goes to the test's tmp dir
(``AEG_SCREENSHOT_DIR=docs`` keeps it as ``docs/charts.png`` for the README).

The JupyterLab harness is the one of tests/test_panel_browser.py (same skips: Debian's Chromium at
``/usr/bin/chromium``, the ``playwright`` and ``jupyterlab`` packages; never ``playwright install``).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import REPO

CHROMIUM = os.environ.get("AEG_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--headless", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
HOSTILE = "<img src=x onerror=alert(1)>"
pytestmark = pytest.mark.timeout(480)


def _missing() -> str | None:
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        return f"Chromium not found at {CHROMIUM} (install Debian's: apt-get install -y chromium)"
    for module in ("playwright", "jupyterlab", "plotly"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed (pip install -e '.[test]')"
    return None


SETUP_CELL = f"""\
import math, os, time
import aeg_jupyter
from aeg_jupyter.frontends.panel import Panel

context = aeg_jupyter.connect(os.environ["AEG_STORE"], graph_id="charts-demo.ipynb")
log = context.store.event_log
for name, rate in (("baseline", 0.004), ({HOSTILE!r}, 0.002)):
    context.new_run(name)
    for step in range(0, 1500, 5):
        log.record("train_log", {{"step": step, "loss": 2.5 * math.exp(-rate * step) + 0.05 * math.sin(step / 9)}},
                   origin=context.origin)
context.new_run("live")
panel = Panel(context, tab="charts", live_interval=1.0)
panel"""

# The training loop: runs in the kernel while the browser watches (the kernel stays busy throughout).
LOOP_CELL = """\
for step in range(0, 12000, 2):
    log.record("train_log", {"step": step, "loss": 2.0 * math.exp(-0.003 * step) + 0.04 * math.cos(step / 7)},
               origin=context.origin)
    time.sleep(0.01)"""

# The number of points plotly drew for the run called `live` (_fullData: the traces with their arrays decoded).
LIVE_POINTS = """() => {
  const gd = document.querySelector('.aeg-charts .js-plotly-plot');
  if (!gd || !gd._fullData) return -1;
  const t = gd._fullData.find(d => (d.name || '').startsWith('live-'));
  return t ? t._length : 0;
}"""


PLOTS = """() => Array.from(document.querySelectorAll('.aeg-charts .js-plotly-plot')).map(
  gd => (gd._fullData || []).map(t => [t.name, t._length, t.y && t.y.length]))"""


def _notebook() -> dict[str, Any]:
    cell = {"cell_type": "code", "execution_count": None, "id": "setup", "metadata": {}, "outputs": []}
    return {
        "cells": [{**cell, "source": SETUP_CELL}],
        "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def jupyterlab(tmp_path: Any) -> Iterator[str]:
    """A JupyterLab server on 127.0.0.1 serving the charts notebook; yields its URL."""
    reason = _missing()
    if reason:
        pytest.skip(reason)
    root = tmp_path / "lab"
    root.mkdir()
    (root / "charts.ipynb").write_text(json.dumps(_notebook()))
    settings = tmp_path / "lab-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False, "doNotDisturbMode": True})
    )
    port, token = _free_port(), "aeg-charts-test"
    env = dict(
        os.environ,
        AEG_STORE=str(tmp_path / "store"),
        PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""),
        JUPYTER_CONFIG_DIR=str(tmp_path / "jupyter-config"),
        JUPYTER_RUNTIME_DIR=str(tmp_path / "jupyter-runtime"),
        JUPYTERLAB_SETTINGS_DIR=str(tmp_path / "lab-settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "lab-workspaces"),
    )
    cmd = [
        sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
        "--allow-root", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}", "--ServerApp.port_retries=0",
        "--LabApp.expose_app_in_browser=True", "--LabApp.extension_manager=readonly", "--ServerApp.terminals_enabled=False",
        "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]  # fmt: skip
    log = open(tmp_path / "jupyterlab.log", "w")  # noqa: SIM115 (closed below)
    server = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=root)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                log.flush()
                pytest.fail(f"JupyterLab did not start:\n{(tmp_path / 'jupyterlab.log').read_text()[-3000:]}")
            time.sleep(0.3)
        yield f"{base}/lab/tree/charts.ipynb?token={token}"
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def test_charts_tab_grows_while_a_loop_records(jupyterlab: str, tmp_path: Any) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 1100})
        try:
            dialogs: list[str] = []
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.goto(jupyterlab, wait_until="domcontentloaded", timeout=60_000)
            page.wait_for_function(
                "() => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
                " const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;"
                " return k && k.status === 'idle'; }",
                timeout=60_000,
            )
            page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
            page.evaluate("window.jupyterapp.shell.collapseLeft()")
            # The Charts tab is open: plotly draws both finished runs (a graph div with two lines).
            page.locator(".aeg-charts .js-plotly-plot").wait_for(timeout=90_000)
            page.wait_for_function(
                "() => { const gd = document.querySelector('.aeg-charts .js-plotly-plot');"
                " return gd && gd.data && gd.data.length === 2; }",
                timeout=30_000,
            )
            # The loop starts; its run appears and its curve grows while the kernel stays busy.
            page.evaluate(
                "code => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.requestExecute({code})",
                LOOP_CELL,
            )
            page.wait_for_function(f"() => ({LIVE_POINTS})() > 5", timeout=30_000)
            first = page.evaluate(LIVE_POINTS)
            page.wait_for_function(f"n => ({LIVE_POINTS})() > n + 20", arg=first, timeout=30_000)
            page.wait_for_function(f"() => ({LIVE_POINTS})() > 400", timeout=30_000)
            later = page.evaluate(LIVE_POINTS)
            assert later > first
            busy = page.evaluate("() => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.status")
            assert busy == "busy"  # the loop is still running: the curve grew during it
            # (a page screenshot clipped to the panel: the chart redraws all the time, never "stable")
            box = page.locator(".aeg-panel").bounding_box()
            assert box is not None
            page.screenshot(path=str(tmp_path / "charts.png"), clip=box)

            # A hostile run name is legend text, not an element; no script ran.
            legend = page.evaluate("() => document.querySelector('.aeg-charts .js-plotly-plot .legend').textContent")
            assert "<img-src=x-onerror=alert(1)>" in legend
            assert page.locator("img[src='x']").count() == 0
            assert dialogs == []
            print(f"live curve: {first} -> {later} points while the loop ran; screenshot in {tmp_path}")
            keep = os.environ.get("AEG_SCREENSHOT_DIR")
            if keep:
                shutil.copy(tmp_path / "charts.png", os.path.join(keep, "charts.png"))
        except Exception:
            page.screenshot(path=str(tmp_path / "failure.png"))
            print("plots:", page.evaluate(PLOTS))
            raise
        finally:
            browser.close()
