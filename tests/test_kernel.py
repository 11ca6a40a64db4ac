"""Real Jupyter kernels (nbclient): ``%aeg`` cells, top-level ``await`` of the tutorial API, and a
second kernel on the same store seeing the first one's results while both are running."""

from __future__ import annotations

import glob
import json
import os
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import nbformat
import pytest
from conftest import REPO
from nbclient import NotebookClient
from nbformat import NotebookNode

pytestmark = pytest.mark.timeout(180)


class Kernel:
    """One notebook's kernel, fed one cell at a time."""

    def __init__(self, client: NotebookClient, nb: NotebookNode) -> None:
        self.client = client
        self.nb = nb

    def run(self, source: str, *, raises: bool = False, send_cell_id: bool = False) -> NotebookNode:
        """Execute one new cell; ``send_cell_id`` sends its id as JupyterLab does (nbclient does not)."""
        cell = nbformat.v4.new_code_cell()
        cell.source = textwrap.dedent(source).strip().replace("{CELL_ID}", cell.id)
        if raises:
            cell.metadata["tags"] = ["raises-exception"]
        self.nb.cells.append(cell)
        session = self.client.kc.session
        plain_msg = session.msg

        def msg_with_cell_id(msg_type: str, content: Any = None, *args: Any, **kwargs: Any) -> Any:
            if msg_type == "execute_request":
                kwargs["metadata"] = {**(kwargs.get("metadata") or {}), "cellId": cell.id}
            return plain_msg(msg_type, content, *args, **kwargs)

        if send_cell_id:
            session.msg = msg_with_cell_id
        try:
            self.client.execute_cell(cell, len(self.nb.cells) - 1)
        finally:
            session.msg = plain_msg
        return cell

    def stdout(self, cell: NotebookNode) -> str:
        return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream" and o.name == "stdout")

    def result(self, cell: NotebookNode) -> dict[str, Any]:
        found = [o for o in cell.outputs if o.output_type == "execute_result"]
        assert found, f"no result in {cell.outputs}"
        return found[-1]["data"]


KERNEL_NAME = "aeg-test-python"


@pytest.fixture(autouse=True)
def kernelspec(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A kernelspec running this interpreter, whatever ``python`` on PATH is (venvs, pyenv, CI)."""
    spec_dir = tmp_path / "jupyter" / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec_dir / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "aeg test", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))


@contextmanager
def kernel(tmp_path: Any, store: str, session_name: str) -> Iterator[Kernel]:
    nb = nbformat.v4.new_notebook()
    client = NotebookClient(
        nb, timeout=60, kernel_name=KERNEL_NAME, resources={"metadata": {"path": str(tmp_path)}}, allow_errors=False
    )
    env = dict(
        os.environ,
        AEG_STORE=store,
        JPY_SESSION_NAME=session_name,
        PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""),
    )
    with client.setup_kernel(env=env):
        yield Kernel(client, nb)


@pytest.fixture
def store(tmp_path: Any) -> str:
    return str(tmp_path / "store")


def test_notebook_of_aeg_cells_and_tutorial_awaits(tmp_path: Any, store: str) -> None:
    with kernel(tmp_path, store, "notebooks/first.ipynb") as k:
        cell = k.run("%load_ext aeg_jupyter")
        out = k.stdout(cell).splitlines()
        assert len(out) == 1
        assert out[0].startswith(f"aeg_jupyter: store {store} | run run-")
        assert out[0].endswith("| 0 artifacts, 0 events | `context` is ready")

        # The tutorial, unchanged, with top-level await in the kernel.
        k.run(
            """
            arts = context.artifacts()
            mem = context.memory()
            art = await arts.save_json({"lr": 1e-3, "epoch": 1}, kind="checkpoint", labels={"exp": "A"},
                                       metrics={"val_acc": 0.91})
            await mem.record(kind="train_log", data={"epoch": 1, "loss": 0.25, "acc": 0.91})
            await mem.record_tool_result(tool="train.step",
                                         outputs=[{"name": "val_acc", "kind": "number", "value": 0.912}])
            best = await arts.best(kind="checkpoint", metric="val_acc", mode="max", scope="run")
            assert best.artifact_id == art.artifact_id
            path = await arts.as_local_file(best)
            assert open(path).read().startswith("{")
            logs = await mem.recent_data(kinds=["train_log"], limit=3)
            assert logs == [{"epoch": 1, "loss": 0.25, "acc": 0.91}], logs
            async with arts.writer(kind="plot", planned_ext=".png") as w:
                w.write(b"\\x89PNG fake")
            assert (await arts.list(scope="run"))[0].kind == "plot"
            """
        )
        # Scopes come from the kernel: the notebook path, and the cell id (else the execution count).
        k.run(
            """
            assert context.graph_id == "notebooks/first.ipynb", context.graph_id
            assert context.node_id == "{CELL_ID}", context.node_id
            assert art.graph_id == "notebooks/first.ipynb"
            """,
            send_cell_id=True,
        )
        k.run("assert context.node_id == 'In[4]', context.node_id")
        # Magics return values.
        k.run(
            """
            df = %aeg recent train_log
            assert list(df["data.loss"]) == [0.25]
            b = %aeg best checkpoint --metric val_acc
            assert b.artifact_id == art.artifact_id
            kind = "checkpoint"
            hits = %aeg search $kind --label exp=A
            assert list(hits["short_id"]) == [art.short_id]
            """
        )
        shown = k.run("%aeg show {art.short_id}")
        assert "<table class='aeg-artifact'>" in k.result(shown)["text/html"]

        # A tracked cell with top-level await inside; its last value is the cell's result.
        tracked = k.run(
            """
            %%aeg track train_step --metric lr=0.001
            await mem.record(kind="inner", data={"x": 1})
            41 + 1
            """
        )
        assert k.result(tracked)["text/plain"] == "42"
        k.run(
            """
            steps = %aeg recent train_step
            ev = steps.iloc[0]
            assert ev["data.ok"] is True and ev["metric.lr"] == 0.001 and ev["data.duration_s"] >= 0
            """
        )

        # run_sync while the kernel's own loop is running in this thread.
        k.run(
            """
            import asyncio, aeg_jupyter
            asyncio.get_running_loop()
            t = aeg_jupyter.run_sync(arts.save_text("from run_sync", kind="note"))
            again = %aeg load {t.artifact_id}
            assert again == "from run_sync"
            """
        )
        err = k.run("%aeg best checkpoint", raises=True)
        # A mistake is one line on stderr, no traceback.
        assert [(o.output_type, o.get("name")) for o in err.outputs] == [("stream", "stderr")]
        assert err.outputs[0]["text"] == (
            "UsageError: %aeg best: the following arguments are required: --metric; "
            "e.g. `%aeg best checkpoint --metric val_acc --max` (`%aeg best -h` lists the options)\n"
        )

        closed = k.run("%unload_ext aeg_jupyter")
        assert k.stdout(closed).strip() == f"aeg_jupyter: store {store} closed (spools flushed to Parquet)"
        k.run("assert 'context' not in globals()")
    assert glob.glob(os.path.join(store, "tables", "artifacts", "kind=checkpoint", "*.parquet"))


def test_second_kernel_sees_the_first_ones_results(tmp_path: Any, store: str) -> None:
    with kernel(tmp_path, store, "notebooks/a.ipynb") as a, kernel(tmp_path, store, "notebooks/b.ipynb") as b:
        a.run("%load_ext aeg_jupyter")
        a_run = a.stdout(
            a.run(
                """
                arts, mem = context.artifacts(), context.memory()
                first = await arts.save_json({"w": [1, 2]}, kind="checkpoint", metrics={"val_acc": 0.8})
                await mem.record_tool_result(tool="train.step",
                                             outputs=[{"name": "val_acc", "kind": "number", "value": 0.8}])
                print(context.run_id)
                """
            )
        ).strip()

        loaded = b.stdout(b.run("%load_ext aeg_jupyter"))
        assert "| 1 artifact, 1 event |" in loaded
        b.run(
            f"""
            best = %aeg best checkpoint --metric val_acc
            assert best.run_id == "{a_run}" and best.graph_id == "notebooks/a.ipynb"
            assert await context.memory().last_by_name("val_acc") == 0.8
            listed = %aeg list
            assert len(listed) == 1
            """
        )
        # Kernel A writes while B is running: B sees it on its next query (no reopen).
        a.run(
            """
            second = await arts.save_json({"w": [3]}, kind="checkpoint", metrics={"val_acc": 0.95})
            await mem.record(kind="train_log", data={"epoch": 2, "loss": 0.1})
            """
        )
        b.run(
            f"""
            best = %aeg best checkpoint --metric val_acc
            assert best.metrics["val_acc"] == 0.95
            logs = %aeg recent train_log
            assert list(logs["data.epoch"]) == [2]
            runs = %aeg runs
            assert "{a_run}" in set(runs["run_id"])
            assert context.run_id != "{a_run}"
            """
        )
        # And B's writes reach A.
        b.run("%aeg log from_b note=hello")
        a.run(
            """
            got = %aeg recent from_b
            assert list(got["data.note"]) == ["hello"]
            """
        )
        a.run("%unload_ext aeg_jupyter")
        b.run("%unload_ext aeg_jupyter")
    leftover = [p for p in glob.glob(os.path.join(store, "spool", "*", "*.jsonl"))]
    assert leftover == []
