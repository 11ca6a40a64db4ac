"""The Charts tab in a real browser: JupyterLab and Notebook 7 on 127.0.0.1, a loop recording in the
kernel, Chromium.

Checks what only a front end shows: plotly (its mime renderer, no server, no iframe) draws
the curves of the chosen runs, the live run's curve grows while the loop records (the kernel is busy
all along: the panel redraws from inside ``record``, at most 4 times a second), a hostile run name is
shown as text, and no dialog opens; then (the loop stopped) ticking a leaderboard row shows that
row's run alone in the Charts tab. The screenshots go to the test's tmp dir (``AEG_SCREENSHOT_DIR=docs``
keeps them as ``docs/charts.png`` and ``docs/charts-notebook.png`` for the README).

The Jupyter harness is the fixture ``jupyter_server`` of tests/conftest.py (shared with
tests/test_panel_browser.py; same skips: Debian's Chromium at ``/usr/bin/chromium``, the
``playwright``, ``jupyterlab`` / ``notebook`` and ``plotly`` packages; never ``playwright install``).
"""

from __future__ import annotations

import os
import shutil
from typing import Any

import pytest
from conftest import CHROMIUM, CHROMIUM_ARGS, notebook_json

HOSTILE = "<img src=x onerror=alert(1)>"
pytestmark = pytest.mark.timeout(480)


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
    context.store.artifacts.save_json({{}}, kind="checkpoint", name=f"ckpt-{{rate}}.json", labels={{"rate": rate}},
                                      metrics={{"val_acc": 1 - rate * 100}}, origin=context.origin)
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


KERNEL = "window.jupyterapp.shell.currentWidget.sessionContext.session.kernel"
KERNEL_IDLE = (
    "() => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
    " const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;"
    " return k && k.status === 'idle'; }"
)
SHOTS = {"lab": "charts.png", "notebook": "charts-notebook.png"}


@pytest.mark.parametrize("app", ["lab", "notebook"])
def test_charts_tab_grows_while_a_loop_records(app: str, jupyter_server: Any, tmp_path: Any) -> None:
    from playwright.sync_api import expect, sync_playwright

    url = jupyter_server("charts.ipynb", notebook_json(SETUP_CELL), app=app, needs=("plotly",))
    shot = SHOTS[app]

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 1100})
        try:
            dialogs: list[str] = []
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.goto(url, wait_until="domcontentloaded", timeout=60_000)
            page.wait_for_function(KERNEL_IDLE, timeout=60_000)
            page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
            page.evaluate("() => { const s = window.jupyterapp.shell; if (s.collapseLeft) s.collapseLeft(); }")
            # The Charts tab is open: plotly draws both finished runs (a graph div with two lines).
            page.locator(".aeg-charts .js-plotly-plot").wait_for(timeout=90_000)
            page.wait_for_function(
                "() => { const gd = document.querySelector('.aeg-charts .js-plotly-plot');"
                " return gd && gd.data && gd.data.length === 2; }",
                timeout=30_000,
            )
            # The loop starts; its run appears and its curve grows while the kernel stays busy.
            page.evaluate(f"code => {KERNEL}.requestExecute({{code}})", LOOP_CELL)
            page.wait_for_function(f"() => ({LIVE_POINTS})() > 5", timeout=30_000)
            first = page.evaluate(LIVE_POINTS)
            page.wait_for_function(f"n => ({LIVE_POINTS})() > n + 20", arg=first, timeout=30_000)
            page.wait_for_function(f"() => ({LIVE_POINTS})() > 400", timeout=30_000)
            later = page.evaluate(LIVE_POINTS)
            assert later > first
            busy = page.evaluate(f"() => {KERNEL}.status")
            assert busy == "busy"  # the loop is still running: the curve grew during it
            # (a page screenshot clipped to the panel: the chart redraws all the time, never "stable")
            box = page.locator(".aeg-panel").bounding_box()
            assert box is not None
            page.screenshot(path=str(tmp_path / shot), clip=box)

            # A hostile run name is legend text, not an element; no script ran.
            legend = page.evaluate("() => document.querySelector('.aeg-charts .js-plotly-plot .legend').textContent")
            assert "<img-src=x-onerror=alert(1)>" in legend
            assert page.locator("img[src='x']").count() == 0
            assert dialogs == []

            # The loop stopped (an interrupt), ticking a leaderboard row shows that row's run alone.
            page.evaluate(f"() => {KERNEL}.interrupt()")
            page.wait_for_function(KERNEL_IDLE, timeout=60_000)
            page.locator(".aeg-panel .lm-TabBar-tab", has_text="Leaderboard").click()
            row = page.locator(".aeg-panel .widget-hbox:has(> .aeg-lb-select)", has_text="ckpt-0.004.json")
            row.locator(".aeg-lb-select input").check()
            page.locator(".aeg-panel .lm-TabBar-tab", has_text="Charts").click()
            page.wait_for_function(f"() => JSON.stringify(({PLOTS})()[0].map(t => t[0])).startsWith('[\"baseline-')"
                                   f" && ({PLOTS})()[0].length === 1", timeout=30_000)  # fmt: skip
            # the comparison view (parallel coordinates) highlights the ticked row's artifact
            expect(page.locator(".aeg-panel .aeg-charts")).to_contain_text(
                "1 selected on the leaderboard", timeout=30_000
            )
            assert page.locator(".aeg-panel .aeg-charts .js-plotly-plot").count() == 2
            page.locator(".aeg-panel").screenshot(path=str(tmp_path / f"selected-{shot}"))
            assert dialogs == []
            print(f"{app}: live curve {first} -> {later} points while the loop ran; screenshots in {tmp_path}")
            keep = os.environ.get("AEG_SCREENSHOT_DIR")
            if keep:
                shutil.copy(tmp_path / shot, os.path.join(keep, shot))
        except Exception:
            page.screenshot(path=str(tmp_path / "failure.png"))
            print("plots:", page.evaluate(PLOTS))
            print("charts tab:", page.evaluate("() => (document.querySelector('.aeg-charts') || {}).innerText"))
            raise
        finally:
            browser.close()
