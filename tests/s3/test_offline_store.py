"""A store on an s3:// root while its server is down (issue 14 step 4b items 2-3), on a real SeaweedFS.

Saves and records keep being acknowledged locally; a saved file reads back at once offline (from this
machine's copy); ``Store.pending_uploads()``, ``%aeg status`` and the panel header show what waits and
the last error (escaped in the panel, no credential anywhere); when the server is back everything
lands, the rows only after their blobs, and a second machine sees it all.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
import time
from typing import Any

import pytest

import aeg_jupyter
from aeg_jupyter.base.hashing import hash_bytes
from aeg_jupyter.base.html import esc
from aeg_jupyter.frontends.commands.runs import store_status

from .conftest import SeaweedServer

MiB = 1 << 20


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def wait_for(cond: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not cond():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def blob_key(bucket_prefix: str, uri: str) -> str:
    digest = uri.rsplit("/", 1)[1]
    return f"{bucket_prefix}/blobs/{digest[:2]}/{digest[2:]}"


SECOND_MACHINE = """
import asyncio, json, sys
import aeg_jupyter
ctx = aeg_jupyter.connect(sys.argv[1])
arts, mem = ctx.artifacts(), ctx.memory()
found = asyncio.run(arts.search(kind="offline", scope="all"))
paths = {a.artifact_id: asyncio.run(arts.as_local_file(a, verify=True)) for a in found}
events = asyncio.run(mem.recent(kinds=["offline_log"], limit=100, scope="all"))
print(json.dumps({"ids": sorted(paths), "sizes": sorted(__import__("os").path.getsize(p) for p in paths.values()),
                  "events": sorted(e.data["i"] for e in events)}))
"""


def test_saves_with_the_server_down_are_acknowledged_read_offline_and_land_when_it_is_back(
    s3_server: SeaweedServer, s3_env: dict[str, str], s3_bucket: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AEG_CACHE", str(tmp_path / "cache-a"))
    root = f"s3://{s3_bucket}/team"
    ctx = aeg_jupyter.connect(root)
    arts, mem = ctx.artifacts(), ctx.memory()
    store = ctx.store
    assert store.pending_uploads() is not None and store.pending_uploads().idle
    payloads = [os.urandom(5 * MiB + i) for i in range(2)]
    saved = []
    s3_server.stop()
    try:
        for i, data in enumerate(payloads):
            src = tmp_path / f"weights-{i}.bin"
            src.write_bytes(data)
            started = time.perf_counter()
            saved.append(run(arts.save_file(str(src), kind="offline", labels={"i": i})))
            assert time.perf_counter() - started < 3.0, "a save waited for the network"
        for i in range(5):
            run(mem.record(kind="offline_log", data={"i": i}))
        # a save followed at once by as_local_file works offline, from this machine's copy
        path = run(arts.as_local_file(saved[0]))
        with open(path, "rb") as f:
            assert f.read() == payloads[0]
        wait_for(lambda: store.pending_uploads().last_error is not None, 30, "no error shown while the server is down")
        pending = store.pending_uploads()
        assert pending.blobs == 2 and pending.bytes == sum(map(len, payloads))
        assert pending.rows >= 7  # 2 artifacts + 5 events, spooled, not committed
        assert "cannot reach" in pending.last_error  # the blob upload's error or the table commit's: one plain line
        assert "\n" not in pending.last_error and "\x1b" not in pending.last_error, pending.last_error
        assert s3_server.secret_key not in str(pending) and s3_server.access_key not in str(pending)
        time.sleep(3.0)  # the flusher's commits fail meanwhile: they only wait
    finally:
        s3_server.start()
    wait_for(lambda: store.pending_uploads().idle, 90, f"still pending after the restart: {store.pending_uploads()}")
    client = s3_server.client()
    for art in saved:  # each blob landed once, whole
        body = client.get_object(Bucket=s3_bucket, Key=blob_key("team", art.uri))["Body"].read()
        assert hash_bytes(body) == art.uri.rsplit("/", 1)[1]
    # a second machine (its own AEG_CACHE and HOME) sees the rows and reads the blobs
    env = dict(os.environ) | s3_env | {"AEG_CACHE": str(tmp_path / "cache-b"), "HOME": str(tmp_path / "home-b")}
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(SECOND_MACHINE), root],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["ids"] == sorted(a.artifact_id for a in saved)
    assert seen["sizes"] == sorted(map(len, payloads))
    assert seen["events"] == list(range(5))
    ctx.close()


def test_a_table_commit_with_the_server_down_says_it_cannot_reach_it_in_one_plain_line(
    s3_server: SeaweedServer, s3_env: dict[str, str], s3_bucket: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # events only: no blob upload, so the error shown is the Delta commit's (delta-rs reports a chain of
    # causes over several lines, with terminal color codes)
    monkeypatch.setenv("AEG_CACHE", str(tmp_path / "cache"))
    ctx = aeg_jupyter.connect(f"s3://{s3_bucket}/rows")
    store = ctx.store
    s3_server.stop()
    try:
        run(ctx.memory().record(kind="offline_log", data={"i": 1}))
        with pytest.raises(aeg_jupyter.StoreWriteError) as caught:
            store.event_table.flush()
        wait_for(lambda: store.pending_uploads().last_error is not None, 30, "no error shown while the server is down")
        pending = store.pending_uploads()
        assert pending.blobs == 0 and pending.rows == 1
        for text in (str(caught.value), pending.last_error):
            assert text.startswith("cannot reach the object store to commit to the table s3://"), text
            assert "the rows stay in the spool" in text and "%aeg status" in text
            assert "\n" not in text and "\x1b" not in text and s3_server.secret_key not in text
        wait_for(lambda: store.event_table.flush_error is not None, 30, "no background commit error")
        status = str(store_status(ctx))
        flush_lines = [ln for ln in status.splitlines() if ln.startswith("flush ")]
        assert len(flush_lines) == 1 and "events: cannot reach the object store" in flush_lines[0], status
        assert s3_server.secret_key not in status and s3_server.access_key not in status
    finally:
        s3_server.start()
    wait_for(lambda: store.pending_uploads().idle, 90, f"still pending after the restart: {store.pending_uploads()}")
    assert [e.data for e in run(ctx.memory().recent(kinds=["offline_log"], limit=5))] == [{"i": 1}]
    ctx.close()


def test_rows_are_committed_only_after_their_blobs_landed(
    s3_server: SeaweedServer, s3_env: dict[str, str], s3_bucket: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AEG_CACHE", str(tmp_path / "cache"))
    root = f"s3://{s3_bucket}/order"
    ctx = aeg_jupyter.connect(root)
    store = ctx.store
    s3_server.stop()
    try:
        src = tmp_path / "big.bin"
        src.write_bytes(os.urandom(2 * MiB))
        art = run(ctx.artifacts().save_file(str(src), kind="offline"))
        # a commit of the artifact's row refuses while its blob waits (the spool keeps the row)
        with pytest.raises(Exception, match="not uploaded"):
            store.artifact_table.flush()
        assert [r["artifact_id"] for r in store.artifact_table.pending_rows] == [art.artifact_id]
    finally:
        s3_server.start()
    store.artifact_table.flush()  # waits for the blob (uploads progress now), then commits
    assert store.artifact_table.pending_rows == []
    assert store.blobs.uploads.status().pending == 0
    head = s3_server.client().head_object(Bucket=s3_bucket, Key=blob_key("order", art.uri))
    assert head["ContentLength"] == 2 * MiB
    ctx.close()


def test_status_magic_and_panel_header_show_pending_uploads_and_the_last_error(
    s3_server: SeaweedServer,
    s3_env: dict[str, str],
    s3_bucket: str,
    tmp_path: Any,
    ipython_shell: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    widgets = pytest.importorskip("ipywidgets")
    from aeg_jupyter.frontends.panel import Panel

    monkeypatch.setenv("AEG_CACHE", str(tmp_path / "cache"))
    root = f"s3://{s3_bucket}/magic"
    ipython_shell.config.AegMagics.store = root
    ipython_shell.run_line_magic("load_ext", "aeg_jupyter")
    context = ipython_shell.user_ns["context"]
    status = str(ipython_shell.run_line_magic("aeg", "status"))
    assert "uploads    pending: nothing" in status
    panel = Panel(context)
    try:
        assert panel.uploads.value == ""
        s3_server.stop()
        try:
            src = tmp_path / "model.bin"
            src.write_bytes(os.urandom(MiB))
            run(context.artifacts().save_file(str(src), kind="model"))
            ipython_shell.run_line_magic("aeg", "log train_log loss=0.5")
            store = context.store
            uploads = store.blobs.uploads
            wait_for(lambda: uploads.status().last_error is not None, 30, "no upload error while the server is down")
            status_obj = ipython_shell.run_line_magic("aeg", "status")
            text = str(status_obj)
            assert "pending: " in text and " blob(s)" in text and "last error: cannot reach" in text
            assert "pending upload:" in status_obj.line() and " blob" in status_obj.line()
            assert s3_server.secret_key not in text
            panel.refresh()
            header = panel.uploads.value
            pending = store.pending_uploads()
            assert "pending upload:" in header and f"{pending.blobs} blob(s)" in header and pending.blobs >= 1
            assert esc(pending.last_error) in header  # the error, escaped (it quotes the bucket: &#x27;)
            assert "&#x27;" in header and f"'{s3_bucket}'" not in header
            assert s3_server.secret_key not in header
            assert isinstance(panel.uploads, widgets.HTML)
        finally:
            s3_server.start()
        wait_for(lambda: context.store.pending_uploads().blobs == 0, 60, "the blob never landed")
        context.store.flush()
        wait_for(lambda: context.store.pending_uploads().idle, 60, "still pending after the restart")
        panel.refresh()
        assert panel.uploads.value == ""
        assert "uploads    pending: nothing" in str(ipython_shell.run_line_magic("aeg", "status"))
    finally:
        panel.close()
