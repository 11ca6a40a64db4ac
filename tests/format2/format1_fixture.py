"""A small format-1 store made by the format-1 writer in this tree: what ``aeg migrate`` tests convert.

``make_format1_store(root)`` runs two child processes with ``AEG_STORE_FORMAT=1`` (whatever the suite's
format): the first fills the store through the public API and closes it; the second writes some more and
dies by SIGKILL, leaving a dead writer's spool. Then one artifacts part is copied under another part name,
as a compaction killed between writing its output and removing its inputs leaves it (duplicate rows).

What is in it: artifacts of several kinds (``save_json``, ``save_text``, ``save_bytes``, ``save_file``,
``save_dir`` of a large and of a tiny directory) with labels of every type (str, int, float, bool, an int
beyond int64), metrics, lineage (cells, inputs), two runs; a large blob (64 KiB), small ones and the inline limit's edges (4096 and 4097
bytes); pins, an unpin, deletes; events of several kinds with metrics, tags, stages, severities; tool
results with inputs and outputs; several Parquet parts per table.

Run it by hand: ``python tests/format2/format1_fixture.py /tmp/old-store``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

FILL = r"""
import asyncio, json, os, sys
from aeg_jupyter import connect

root = sys.argv[1]

async def fill():
    ctx = connect(root, run_id="run-a", graph_id="nb-1")
    assert ctx.store.format == 1, ctx.store.format
    arts, mem = ctx.artifacts(), ctx.memory()
    ctx.begin_cell("cfg = {'lr': 0.1}\nawait arts.save_json(cfg)", cell_id="cell-1", execution_count=1)
    cfg = await arts.save_json(
        {"lr": 0.1, "layers": [64, 64]}, kind="config",
        labels={"exp": "A", "seed": 3, "lr": 0.1, "on": True, "big": 2**70, "neg": -5, "one": 1.0},
    )
    ctx.begin_cell("ckpt loop", cell_id="cell-2", execution_count=2)
    await arts.load_json(cfg.artifact_id)  # the checkpoints' input
    ckpts = []
    for i in range(12):
        ckpts.append(await arts.save_bytes(
            f"weights {i}".encode() * 10, kind="checkpoint", name=f"ckpt-{i}.bin",
            labels={"exp": "AB"[i % 2], "seed": i % 3, "lr": [0.1, 0.01][i % 2], "final": i == 11},
            metrics={"val_acc": (i * 37 % 100) / 100, "loss": 1 / (i + 1)},
        ))
        await mem.record("train_log", {"step": i, "loss": 1 / (i + 1)}, metrics={"loss": 1 / (i + 1)},
                         tags=["train", f"e{i % 3}"], stage="fit")
        if i == 5:
            ctx.store.flush()  # several parts per table
    big = await arts.save_bytes(os.urandom(64 * 1024), kind="weights", name="big.bin", metrics={"val_acc": 0.5})
    edge = await arts.save_bytes(b"e" * 4096, kind="blob", name="edge.bin", labels={"at": "limit"})
    over = await arts.save_bytes(b"o" * 4097, kind="blob", name="over.bin", labels={"at": "over"})
    note = await arts.save_text("a note <b>with</b> markup", kind="note", labels={"exp": "A"})
    src = os.path.join(root, "..", "fixture-src")
    os.makedirs(os.path.join(src, "sub"), exist_ok=True)
    with open(os.path.join(src, "a.txt"), "w") as f:
        f.write("file a")
    with open(os.path.join(src, "sub", "b.txt"), "w") as f:
        f.write("file b" * 2000)
    await arts.save_file(os.path.join(src, "a.txt"), kind="dataset", labels={"split": "train"})
    await arts.save_dir(src, kind="dataset", labels={"split": "all"})
    tiny = os.path.join(root, "..", "fixture-tiny")  # a directory of a few bytes: its manifest is no inline content
    os.makedirs(tiny, exist_ok=True)
    with open(os.path.join(tiny, "t.txt"), "w") as f:
        f.write("tiny")
    await arts.save_dir(tiny, kind="dataset", labels={"split": "tiny"})
    await mem.record_tool_result(
        "tokenize", inputs=[{"name": "text", "value": "hello"}], outputs=[{"name": "tokens", "value": [1, 2, 3]}],
        tags=["nlp"], metrics={"ms": 1.5}, message="ok",
    )
    await mem.record("alert", {"msg": "disk"}, severity=4)
    ctx.store.flush()
    await arts.pin(ckpts[3].artifact_id)
    await arts.pin(ckpts[4].artifact_id)
    await arts.unpin(ckpts[4].artifact_id)
    await arts.pin(big.artifact_id)
    await arts.delete(ckpts[7].artifact_id)
    await arts.delete(note.artifact_id)
    ctx.new_run("run-b")
    for i in range(5):
        await arts.save_json({"i": i}, kind="config", labels={"exp": "B", "seed": i, "ratio": i / 4})
        await mem.record("train_log", {"step": 100 + i}, metrics={"loss": 0.01 * i})
    await mem.record_tool_result("tokenize", outputs=[{"name": "tokens", "value": [9]}])
    ctx.close()

asyncio.run(fill())
"""

DIE = r"""
import asyncio, os, signal, sys
from aeg_jupyter import connect

async def die():
    ctx = connect(sys.argv[1], run_id="run-dead", graph_id="nb-2")
    assert ctx.store.format == 1
    arts, mem = ctx.artifacts(), ctx.memory()
    for i in range(4):
        a = await arts.save_json({"dead": i}, kind="checkpoint", labels={"exp": "C", "seed": i},
                                 metrics={"val_acc": 0.9 + i / 100})
        await mem.record("train_log", {"step": 200 + i}, metrics={"loss": 0.5})
    await arts.pin(a.artifact_id)
    await mem.record_tool_result("tokenize", outputs=[{"name": "tokens", "value": [7, 7]}])
    os.kill(os.getpid(), signal.SIGKILL)  # the spool stays, its lock free: a dead writer

asyncio.run(die())
"""


def _child(code: str, root: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, AEG_STORE_FORMAT="1", PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), root], capture_output=True, text=True, timeout=300, env=env
    )


def make_format1_store(root: str) -> str:
    """Build the fixture store at ``root`` (a new directory); returns ``root``."""
    root = os.path.abspath(root)
    proc = _child(FILL, root)
    if proc.returncode != 0:
        raise AssertionError(f"filling the format-1 store failed:\n{proc.stdout}\n{proc.stderr}")
    # a compaction killed after writing its output and before removing its inputs: the same rows twice
    pdir = os.path.join(root, "tables", "artifacts", "kind=checkpoint")
    part = sorted(os.listdir(pdir))[0]
    max_ts = part.split("-", 1)[0]
    shutil.copyfile(os.path.join(pdir, part), os.path.join(pdir, f"{max_ts}-compact-000999.parquet"))
    proc = _child(DIE, root)
    if proc.returncode != -signal.SIGKILL:
        raise AssertionError(f"the dying writer did not die as planned ({proc.returncode}):\n{proc.stderr}")
    return root


if __name__ == "__main__":
    print(make_format1_store(sys.argv[1]))
