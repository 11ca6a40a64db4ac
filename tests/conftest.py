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
