"""Shared fixtures: a real store in a temporary directory, and helpers to run child processes."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from collections.abc import Coroutine, Iterator
from typing import Any

import pytest

import aeg_jupyter
from aeg_jupyter import KernelContext

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--soak", action="store_true", default=False, help="run long soak and scaling tests")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--soak"):
        return
    skip = pytest.mark.skip(reason="long soak run: pass --soak to run it")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def store_root(tmp_path: Any) -> str:
    return str(tmp_path / "store")


@pytest.fixture
def context(store_root: str) -> Iterator[KernelContext]:
    ctx = aeg_jupyter.connect(store_root, graph_id="tests")
    yield ctx
    if not ctx.store.closed:
        ctx.close()


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run one coroutine to completion (tests are sync; the API under test is async)."""
    return asyncio.run(coro)


def run_child(code: str, *args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run Python ``code`` in a fresh interpreter with the repo importable."""
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args], capture_output=True, text=True, timeout=timeout, env=env
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"child failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def spawn_child(code: str, *args: str) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


# -- IPython (tests/test_magics.py, tests/test_cli.py) ----------------------------------------------
@pytest.fixture
def ipython_shell(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A real ``InteractiveShell`` with history disabled, working in ``tmp_path``; no extension loaded.

    ``AEG_STORE`` is unset, so a test chooses the store (env, ``%config`` or ``./.aeg``).
    """
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AEG_STORE", raising=False)
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    config = Config()
    config.HistoryManager.enabled = False
    config.HistoryManager.hist_file = ":memory:"
    config.IPCompleter.use_jedi = False
    shell = InteractiveShell(config=config)
    yield shell
    if "aeg_jupyter" in shell.extension_manager.loaded:
        shell.extension_manager.unload_extension("aeg_jupyter")
    # NOTE: each shell's exit hook runs gc.collect(); a hundred of them add ~15 s to interpreter exit.
    import atexit

    atexit.unregister(shell.atexit_operations)


@pytest.fixture
def ip(ipython_shell: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """``ipython_shell`` with the extension loaded on a store in ``tmp_path`` (a test module may define its own)."""
    monkeypatch.setenv("AEG_STORE", str(tmp_path / "store"))
    ipython_shell.run_line_magic("load_ext", "aeg_jupyter")
    return ipython_shell


@pytest.fixture
def kernel_name(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    """A kernelspec that runs this interpreter (whatever `python` on PATH is), named "python3"
    so notebooks saved with the usual kernelspec run on it unchanged."""
    import json

    spec_dir = tmp_path / "jupyter-data" / "kernels" / "python3"
    spec_dir.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec_dir / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "Python 3", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter-data"))
    return "python3"


# -- Jupyter in Chromium (tests/test_panel_browser.py, tests/test_charts_browser.py) -----------------
CHROMIUM = os.environ.get("AEG_CHROMIUM", "/usr/bin/chromium")  # Debian's (never `playwright install`)
CHROMIUM_ARGS = [
    "--no-sandbox", "--headless", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
JUPYTER_APPS = {  # app -> (its package, the notebook's URL path, its options)
    "lab": ("jupyterlab", "lab/tree", [
        "--LabApp.expose_app_in_browser=True", "--LabApp.extension_manager=readonly", "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]),
    "notebook": ("notebook", "notebooks", ["--JupyterNotebookApp.expose_app_in_browser=True"]),
}  # fmt: skip


def browser_missing(*modules: str) -> str | None:
    """Why a browser test cannot run here (no Chromium, or one of ``playwright`` and ``modules``), or ``None``."""
    import importlib.util

    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        return f"Chromium not found at {CHROMIUM} (install Debian's: apt-get install -y chromium)"
    for module in ("playwright", *modules):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed (pip install -e '.[test]')"
    return None


def notebook_json(*sources: str) -> dict[str, Any]:
    """An nbformat 4 notebook (Python 3 kernel) with one code cell per source, not yet run."""
    cells = [
        {"cell_type": "code", "execution_count": None, "id": f"cell{i}", "metadata": {}, "outputs": [], "source": src}
        for i, src in enumerate(sources)
    ]
    kernelspec = {"display_name": "Python 3", "language": "python", "name": "python3"}
    return {"cells": cells, "metadata": {"kernelspec": kernelspec}, "nbformat": 4, "nbformat_minor": 5}


@pytest.fixture
def jupyter_server(tmp_path: Any) -> Iterator[Any]:
    """Start JupyterLab or Notebook 7 on 127.0.0.1 serving one notebook; returns the notebook's URL.

    ``url = jupyter_server("charts.ipynb", notebook_json(SETUP), app="notebook", needs=("plotly",))``
    skips the test (saying why) without Chromium, playwright, the app's package or ``needs``. The
    kernel's store is ``$AEG_STORE`` = ``tmp_path/store``; config, runtime, settings (no news toast)
    and workspaces live in ``tmp_path``. Every server started is stopped at teardown.
    """
    import json
    import socket
    import time
    import urllib.request

    servers: list[tuple[subprocess.Popen[bytes], Any]] = []

    def start(name: str, notebook: dict[str, Any], *, app: str = "lab", needs: tuple[str, ...] = ()) -> str:
        package, path, options = JUPYTER_APPS[app]
        reason = browser_missing(package, *needs)
        if reason:
            pytest.skip(reason)
        root = tmp_path / f"{app}-root"
        root.mkdir(exist_ok=True)
        (root / name).write_text(json.dumps(notebook))
        settings = tmp_path / "lab-settings" / "@jupyterlab" / "apputils-extension"
        settings.mkdir(parents=True, exist_ok=True)  # no "get Jupyter news?" toast over the page
        (settings / "notification.jupyterlab-settings").write_text(
            json.dumps({"fetchNews": "false", "checkForUpdates": False, "doNotDisturbMode": True})
        )
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        token = f"aeg-{app}-test"
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
            sys.executable, "-m", package, "--no-browser", "--ip=127.0.0.1", f"--port={port}", "--allow-root",
            f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}", "--ServerApp.port_retries=0",
            "--ServerApp.terminals_enabled=False", *options,
        ]  # fmt: skip
        log_path = tmp_path / f"{app}.log"
        log = open(log_path, "wb")  # noqa: SIM115 (closed at teardown)
        server = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=root)
        servers.append((server, log))
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2) as r:
                    if r.status == 200:
                        return f"{base}/{path}/{name}?token={token}"
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                log.flush()
                pytest.fail(f"{package} did not start:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.3)

    yield start
    for server, log in servers:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
