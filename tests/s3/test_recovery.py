"""Recovery of a dead writer on an s3:// root (issue 14), on a real SeaweedFS.

A writer saves multi-MiB files while the server is down (acknowledged locally: rows in its spool, blobs
in its staging area) and is SIGKILLed. The next process on the same ``AEG_CACHE`` commits the dead
writer's rows at its open (``StoreRoot.recover``), and must do so only once the blobs they refer to
landed: a fifth machine polling rows against the bucket's keys never sees a row whose blob is absent.
While the server does not answer, recovery defers the spool (kept, a warning naming ``%aeg status``),
never quarantines it, and the next recover (the periodic maintenance's) lands it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import warnings
from typing import Any

import pytest

from aeg_jupyter.base.errors import StoreWarning

from .conftest import SeaweedServer

MiB = 1 << 20
N_FILES = 6
FILE_SIZE = 16 * MiB
N_JSON = 3

DEAD_WRITER = r"""
import asyncio, json, os, sys, time
import aeg_jupyter
root, work = sys.argv[1], sys.argv[2]
n_files, size, n_json = map(int, sys.argv[3:6])

def say(*parts):
    print(json.dumps(parts), flush=True)

ctx = aeg_jupyter.connect(root)
arts, mem = ctx.artifacts(), ctx.memory()
say("open")
while not os.path.exists(os.path.join(work, "down")):  # the server is stopped now
    time.sleep(0.02)

async def main():
    for j in range(n_files):
        path = os.path.join(work, f"dead-{j}.bin")
        with open(path, "wb") as f:
            f.write(os.urandom(size + j))
        a = await arts.save_file(path, kind="dead_file", labels={"j": j})
        say("art", a.artifact_id, a.uri, a.size)
    for i in range(n_json):
        a = await arts.save_json({"i": i}, kind="dead_json")
        say("art", a.artifact_id, a.uri, a.size)
    await mem.record(kind="dead_log", data={"i": 1})
    say("event")

asyncio.run(main())
say("acked")
time.sleep(600)  # killed here: nothing of it was committed or uploaded (the server is down)
"""

READER = r"""
import asyncio, json, os, sys, time
from deltalake import DeltaTable
import aeg_jupyter
root, seconds, expected, busy = sys.argv[1], float(sys.argv[2]), set(json.loads(sys.argv[3])), sys.argv[4]
ctx = aeg_jupyter.connect(root)
objects = ctx.store.blobs.objects
INLINE_MAX = 4096
table = DeltaTable(objects.table_uri("artifacts"), storage_options=objects.storage_options())
print(json.dumps(["ready"]), flush=True)
seen, bad, polls = set(), [], 0
deadline = time.monotonic() + seconds
while time.monotonic() < deadline:
    polls += 1
    table.update_incremental()  # the newest commit, as any external reader sees it: rows first ...
    rows = table.to_pyarrow_table(columns=["artifact_id", "uri", "size"]).to_pylist()
    for r in rows:
        seen.add(r["artifact_id"])
        if r["size"] > INLINE_MAX:  # ... then the keys: a row must never come before its blob
            if not objects.exists_key(objects.blob_key(r["uri"].rsplit("/", 1)[1])):
                bad.append([r["artifact_id"], time.time()])
    if expected <= seen and not os.path.exists(busy):
        break  # all seen, and the recovering process finished
    time.sleep(0.01)
found = asyncio.run(ctx.artifacts().search(scope="all"))  # and through the API, each once
ids = [a.artifact_id for a in found]
print(json.dumps({"seen": sorted(seen), "api": sorted(ids), "bad": bad, "polls": polls}), flush=True)
ctx.close()
"""


def _base_env(s3_env: dict[str, str]) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "AEG_"))} | s3_env
    base["PYTHONPATH"] = os.pathsep.join(p for p in (os.getcwd(), os.environ.get("PYTHONPATH", "")) if p)
    return base


def machine(base: dict[str, str], home: Any) -> dict[str, str]:
    os.makedirs(home, exist_ok=True)
    return base | {"HOME": str(home), "AEG_CACHE": os.path.join(str(home), "cache")}


def lines(proc: subprocess.Popen[str], until: str) -> list[list[Any]]:
    """The child's JSON lines up to (and with) the first whose first field is ``until``."""
    got: list[list[Any]] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        if not line.startswith("["):
            continue
        parts = json.loads(line)
        got.append(parts)
        if parts[0] == until:
            return got
    raise AssertionError(f"the child stopped before {until!r}: {proc.stderr.read() if proc.stderr else ''}")


def kill_a_writer_mid_outage(s3_server: SeaweedServer, root: str, env: dict[str, str], work: Any) -> list[list[Any]]:
    """Run the dead writer: it opens, the server stops, it saves (acknowledged locally), it is SIGKILLed.

    Returns its acknowledged artifacts ``["art", id, uri, size]``; the server is left stopped.
    """
    work.mkdir(exist_ok=True)
    child = subprocess.Popen(
        [sys.executable, "-c", DEAD_WRITER, root, str(work), str(N_FILES), str(FILE_SIZE), str(N_JSON)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True,
    )  # fmt: skip
    try:
        lines(child, "open")
        s3_server.stop()
        (work / "down").touch()
        acked = [p for p in lines(child, "acked") if p[0] == "art"]
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)
    assert len(acked) == N_FILES + N_JSON
    return acked


def dead_spools(cache: str) -> list[str]:
    """The ``.jsonl`` spool files under a machine's cache (every writer's)."""
    found = []
    for top, _dirs, files in os.walk(cache):
        if os.sep + "spool" + os.sep in top + os.sep or top.endswith(os.sep + "spool"):
            found += [os.path.join(top, f) for f in files if f.endswith(".jsonl")]
    return found


def quarantined(cache: str) -> list[str]:
    return [os.path.join(t, f) for t, _d, fs in os.walk(cache) if "quarantine" in t.split(os.sep) for f in fs]


def table_ids(root: str, table: str) -> list[str]:
    """Every id in the shared Delta table, as an external reader sees it (duplicates kept)."""
    from deltalake import DeltaTable

    from aeg_jupyter.storage.objectstore import ObjectStore, S3Location

    objects = ObjectStore(S3Location.parse(root))
    column = "artifact_id" if table == "artifacts" else "event_id"
    dt = DeltaTable(objects.table_uri(table), storage_options=objects.storage_options())
    return sorted(dt.to_pyarrow_table(columns=[column]).column(0).to_pylist())


def assert_all_landed_once(
    s3_server: Any, bucket: str, root: str, cache: str, acked: list[Any], ids: list[str], *, prefix: str
) -> None:
    """Every acknowledged artifact is in the shared table exactly once, the one event too, no spool is left
    (nor set aside), and every blob file it staged is in the bucket whole."""
    assert table_ids(root, "artifacts") == ids
    assert len(table_ids(root, "events")) == 1
    assert not dead_spools(cache) and not quarantined(cache)
    client = s3_server.client()
    for _tag, _id, uri, size in acked:
        if size > 4096:  # (smaller content is inline in its row)
            digest = uri.rsplit("/", 1)[1]
            head = client.head_object(Bucket=bucket, Key=f"{prefix}/blobs/{digest[:2]}/{digest[2:]}")
            assert head["ContentLength"] == size


def test_recovery_commits_a_dead_writers_rows_only_after_their_blobs_landed(
    s3_server: SeaweedServer, s3_env: dict[str, str], s3_bucket: str, tmp_path: Any
) -> None:
    root = f"s3://{s3_bucket}/dead"
    base = _base_env(s3_env)
    env_a = machine(base, tmp_path / "home-a")
    acked = kill_a_writer_mid_outage(s3_server, root, env_a, tmp_path / "work")
    assert dead_spools(env_a["AEG_CACHE"]), "the dead writer left no spool: the test proves nothing"
    s3_server.start()
    ids = sorted(p[1] for p in acked)
    # the fifth machine polls rows against keys while machine A's next process opens (and recovers)
    busy = tmp_path / "recovering"
    busy.touch()
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, root, "120", json.dumps(ids), str(busy)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=machine(base, tmp_path / "home-e"), text=True,
    )  # fmt: skip
    try:
        lines(reader, "ready")
        again = subprocess.run(
            [sys.executable, "-W", "always::UserWarning", "-c",
             f"import aeg_jupyter; ctx = aeg_jupyter.connect({root!r}); print(ctx.store.pending_uploads()); ctx.close()"],
            env=env_a, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert again.returncode == 0, again.stderr
        busy.unlink()
        out, err = reader.communicate(timeout=180)
    finally:
        if reader.poll() is None:
            reader.kill()
            reader.wait(10)
    report = json.loads(out.strip().splitlines()[-1])
    assert report["bad"] == [], f"rows visible before their blobs landed: {report} {err}"
    assert report["seen"] == ids and report["api"] == ids, (report, err)
    assert_all_landed_once(s3_server, s3_bucket, root, env_a["AEG_CACHE"], acked, ids, prefix="dead")


def test_recovery_while_the_server_is_down_defers_the_spool_and_lands_it_later(
    s3_server: SeaweedServer,
    s3_env: dict[str, str],
    s3_bucket: str,
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import aeg_jupyter

    root = f"s3://{s3_bucket}/deferred"
    base = _base_env(s3_env)
    env_a = machine(base, tmp_path / "home-a")
    # machine A's other process (this one) has the store open before the writer dies
    monkeypatch.setenv("AEG_CACHE", env_a["AEG_CACHE"])
    ctx = aeg_jupyter.connect(root)
    store = ctx.store
    try:
        try:
            acked = kill_a_writer_mid_outage(s3_server, root, env_a, tmp_path / "work")
            spools = dead_spools(env_a["AEG_CACHE"])
            assert spools
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                started = time.monotonic()
                assert store.recover() == []  # what the periodic maintenance calls: nothing recovered yet
                took = time.monotonic() - started
            texts = [str(w.message) for w in caught if issubclass(w.category, StoreWarning)]
            assert any("%aeg status" in t and "does not answer" in t for t in texts), texts
            assert s3_server.secret_key not in " ".join(texts)
            assert took < 60, f"recovery waited {took:.0f} s for a server that is down"
            assert sorted(dead_spools(env_a["AEG_CACHE"])) == sorted(spools)  # kept where they were
            assert not quarantined(env_a["AEG_CACHE"])  # never set aside
            pending = store.pending_uploads()
            assert pending.rows >= len(acked) + 1 and pending.blobs >= N_FILES, pending
        finally:
            s3_server.start()
        # the periodic maintenance retries (every DEFERRED_RETRY_SECONDS while spools wait): its recover lands them
        deadline = time.monotonic() + 90
        assert store.periodic is not None
        while dead_spools(env_a["AEG_CACHE"]) or not any(r.recovered for r in store.periodic.reports):
            assert time.monotonic() < deadline, f"the deferred spools never landed: {store.pending_uploads()}"
            time.sleep(0.2)
        assert store.pending_uploads().rows == 0
    finally:
        ctx.close()
    ids = sorted(p[1] for p in acked)
    assert_all_landed_once(s3_server, s3_bucket, root, env_a["AEG_CACHE"], acked, ids, prefix="deferred")
