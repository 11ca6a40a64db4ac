"""The panel in a real browser: JupyterLab on 127.0.0.1, a notebook that shows it, Playwright driving Chromium.

Checks what only a front end shows: the leaderboard renders rows, a save in the kernel re-ranks it
without touching the panel, changing the metric and the mode re-ranks it, an image preview appears,
and a hostile label is shown as text (no element made from it, no dialog); at 800 px every control
of the panel has a non-empty box inside the viewport. Screenshots at 800 and 1400 px, light and dark,
go to the test's tmp dir (``AEG_SCREENSHOT_DIR=docs`` keeps them for the README).

Needs Debian's Chromium (``apt-get install -y chromium``: ``/usr/bin/chromium``) and the Python
packages ``playwright`` and ``jupyterlab`` (the ``test`` extra). Playwright's own browser download
(``playwright install``) is never used. Without any of them the test is skipped, saying which.
"""

from __future__ import annotations

import base64
import os
import shutil
import struct
import time
import zlib
from typing import Any

import pytest
from conftest import CHROMIUM, CHROMIUM_ARGS, notebook_json

import aeg_jupyter

HOSTILE = "<img src=x onerror=alert(1)>"
pytestmark = pytest.mark.timeout(180)


def gradient_png(width: int = 160, height: int = 90) -> bytes:
    """A small RGB gradient PNG, made without Pillow."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    raw = b"".join(
        b"\x00" + b"".join(bytes((x * 255 // width, y * 255 // height, 160)) for x in range(width))
        for y in range(height)
    )
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


SETUP_CELL = f"""\
import base64, os
import aeg_jupyter
from aeg_jupyter.frontends.panel import Panel

context = aeg_jupyter.connect(os.environ["AEG_STORE"], graph_id="panel-demo.ipynb")
index = context.store.artifacts
for exp, acc, loss in [("A", 0.91, 0.50), ("B", 0.95, 0.20), ("C", 0.88, 0.10)]:
    index.save_json({{"exp": exp, "weights": [acc] * 8}}, kind="checkpoint", labels={{"exp": exp, "seed": 1}},
                    metrics={{"val_acc": acc, "loss": loss}}, name=f"ckpt-{{exp}}.json", origin=context.origin)
index.save_bytes(base64.b64decode({base64.b64encode(gradient_png()).decode()!r}), kind="plot", name="curve.png",
                 labels={{"exp": {HOSTILE!r}}}, origin=context.origin)
panel = Panel(context, kind="checkpoint", metric="val_acc")
panel"""

LIVE_SAVE = """\
index.save_json({"exp": "D"}, kind="checkpoint", labels={"exp": "D", "seed": 2},
                metrics={"val_acc": 0.99, "loss": 0.30}, name="ckpt-D.json", origin=context.origin)"""


@pytest.fixture
def jupyterlab(jupyter_server: Any) -> str:
    """JupyterLab on 127.0.0.1 serving the panel notebook (tests/conftest.py); its URL."""
    return str(jupyter_server("panel.ipynb", notebook_json(SETUP_CELL)))


# Every button, select and input of the panel's shown tab and header: its box must be non-empty and
# inside the viewport once scrolled to. Returns the ones that are not (described).
CONTROLS_OFF_SCREEN = """() => {
  const shown = el => { for (let e = el; e; e = e.parentElement) { if (getComputedStyle(e).display === 'none') return false; } return true; };
  const out = [];
  for (const el of document.querySelectorAll('.aeg-panel button, .aeg-panel select, .aeg-panel input')) {
    if (!shown(el)) continue;
    el.scrollIntoView({block: 'center', inline: 'nearest'});
    const r = el.getBoundingClientRect();
    const inside = r.left >= 0 && r.top >= 0 && r.right <= window.innerWidth + 0.5 && r.bottom <= window.innerHeight + 0.5;
    if (!(r.width > 0 && r.height > 0 && inside)) {
      out.push(`${el.tagName}.${el.className} '${(el.innerText || el.title || '').slice(0, 20)}' ${Math.round(r.left)},${Math.round(r.top)} ${Math.round(r.width)}x${Math.round(r.height)}`);
    }
  }
  return out;
}"""

FIRST_ROW = "() => { const r = document.querySelector('.aeg-panel .aeg-lb-row'); return r && r.innerText; }"


def _first_row_has(page: Any, text: str, timeout: float = 10_000) -> None:
    page.wait_for_function(f"t => ({FIRST_ROW})() && ({FIRST_ROW})().includes(t)", arg=text, timeout=timeout)


def _rows(page: Any, n: int) -> None:
    page.wait_for_function(
        "n => document.querySelectorAll('.aeg-panel .aeg-lb-row').length === n", arg=n, timeout=10_000
    )


def test_panel_in_jupyterlab(jupyterlab: str, tmp_path: Any) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
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

            # The leaderboard renders one row per checkpoint, the best (val_acc, max) first.
            page.locator(".aeg-panel .aeg-lb-row").first.wait_for(timeout=60_000)
            _rows(page, 3)
            _first_row_has(page, "ckpt-B.json")
            assert "aeg-best" in (page.locator(".aeg-panel .aeg-lb-row").first.get_attribute("class") or "")

            # A save in the kernel re-ranks it without touching the panel.
            started = time.monotonic()
            page.evaluate(
                "code => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.requestExecute({code})",
                LIVE_SAVE,
            )
            _first_row_has(page, "ckpt-D.json", timeout=20_000)
            live_seconds = time.monotonic() - started
            _rows(page, 4)

            # Changing the metric re-ranks, in the metric's direction (a loss: lower first); so does the toggle.
            page.locator(".aeg-panel .aeg-lb-metric select").select_option("loss")
            _first_row_has(page, "ckpt-C.json")
            page.locator(".aeg-panel .aeg-lb-mode button", has_text="max").click()
            _first_row_has(page, "ckpt-A.json")
            page.locator(".aeg-panel .aeg-lb-mode button", has_text="min").click()
            _first_row_has(page, "ckpt-C.json")
            page.locator(".aeg-panel").screenshot(path=str(tmp_path / "panel-leaderboard.png"))

            # Opt-in auto-refresh (an asyncio task in the kernel) shows another process's save.
            page.locator(".aeg-panel .aeg-every input").fill("1")
            page.locator(".aeg-panel .aeg-every input").press("Enter")
            page.locator(".aeg-panel .aeg-auto input").check()
            other = aeg_jupyter.connect(tmp_path / "store", graph_id="another-kernel")
            try:
                other.store.artifacts.save_json(
                    {},
                    kind="checkpoint",
                    labels={"exp": "E"},
                    metrics={"val_acc": 0.5, "loss": 0.01},
                    name="ckpt-E.json",
                )
                _first_row_has(page, "ckpt-E.json", timeout=15_000)
            finally:
                other.close()
            assert "event loop" not in page.locator(".aeg-panel").inner_text()

            # The artifact browser shows an image inline.
            page.locator(".aeg-panel .lm-TabBar-tab", has_text="Artifacts").click()
            page.locator(".aeg-panel .aeg-ar-list option", has_text="curve.png").wait_for(state="attached")
            options = page.locator(".aeg-panel .aeg-ar-list select option").all_inner_texts()
            plot = next(i for i, text in enumerate(options) if "curve.png" in text)
            page.locator(".aeg-panel .aeg-ar-list select").select_option(index=plot)
            page.wait_for_function(
                "() => { const i = document.querySelector('.aeg-panel img.aeg-ar-image');"
                " return i && i.complete && i.naturalWidth === 160 && getComputedStyle(i).display !== 'none'; }",
                timeout=10_000,
            )
            page.locator(".aeg-panel").screenshot(path=str(tmp_path / "panel-artifacts.png"))

            # The hostile label is text on the page, not an element; no script ran.
            page.wait_for_function("t => document.querySelector('.aeg-panel').innerText.includes(t)", arg=HOSTILE)
            assert page.locator("img[src='x']").count() == 0
            assert dialogs == []

            # Every control is on screen and usable at 800 px (a narrow column cuts its text, never a control).
            page.locator(".aeg-panel .lm-TabBar-tab", has_text="Leaderboard").click()
            page.evaluate("window.jupyterapp.shell.collapseLeft()")
            page.locator(".aeg-panel .aeg-lb-metric select").select_option("val_acc")
            _first_row_has(page, "ckpt-D.json")
            shots: list[str] = []
            for theme in ("light", "dark"):
                if theme == "dark":
                    page.evaluate(
                        "window.jupyterapp.commands.execute('apputils:change-theme', {theme: 'JupyterLab Dark'})"
                    )
                    page.wait_for_function("() => document.body.dataset.jpThemeLight === 'false'", timeout=20_000)
                for width in (800, 1400):
                    page.set_viewport_size({"width": width, "height": 1000})
                    page.wait_for_timeout(400)  # the notebook relayouts
                    if width == 800:
                        hidden = page.evaluate(CONTROLS_OFF_SCREEN)
                        assert hidden == [], f"controls not visible at {width} px ({theme}): {hidden}"
                        assert page.locator(".aeg-panel .aeg-lb-pin").count() == 5
                    page.locator(".aeg-panel").scroll_into_view_if_needed()
                    name = f"panel-{width}-{theme}.png"
                    page.locator(".aeg-panel").screenshot(path=str(tmp_path / name))
                    shots.append(name)
            print(f"live re-rank seen in the browser after {live_seconds:.2f} s; screenshots in {tmp_path}")
            keep = os.environ.get("AEG_SCREENSHOT_DIR")
            if keep:  # AEG_SCREENSHOT_DIR=docs retakes the README's screenshots
                for name in ("panel-artifacts.png", *shots):
                    shutil.copy(tmp_path / name, os.path.join(keep, name))
        except Exception:
            page.screenshot(path=str(tmp_path / "failure.png"))
            raise
        finally:
            browser.close()
