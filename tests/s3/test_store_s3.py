"""A store on an ``s3://`` root (issue 14 step 4a), on a real SeaweedFS on loopback.

``connect("s3://bucket/prefix")`` (and ``AEG_STORE``, ``%config AegMagics.store``, ``aeg --store``) opens a
format-2 store: the marker and the three Delta tables on the bucket, this machine's spool, temp files,
handed-out files and blob cache under ``AEG_CACHE``. The tutorial's snippets and the magics run on it;
two processes with their own ``HOME`` and ``AEG_CACHE`` (two machines) see each other's rows within 5 s
of the commit; deltalake and Polars on the same endpoint agree with ``list(scope="all")``; gc, verify
and maintenance work on the bucket (maintenance under the bucket's lease); the secret key is in no
output, message, log, row or stored object.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from typing import Any

import pytest

import aeg_jupyter
from aeg_jupyter.base.errors import ObjectStoreError, StoreFormatError
from aeg_jupyter.core.store import Store
from aeg_jupyter.frontends.cli import main
from aeg_jupyter.storage.location import RemoteBlobStore
from aeg_jupyter.storage.objectstore import ObjectStore, S3Location

from .conftest import SeaweedServer

VISIBLE_SECONDS = 5.0  # a row committed on one machine is seen on another within this


def run(coro: Any) -> Any:
    return asyncio.run(coro)


@pytest.fixture
def root(s3_bucket: str) -> str:
    return f"s3://{s3_bucket}/team"


@pytest.fixture
def ctx(root: str) -> Iterator[Any]:
    context = aeg_jupyter.connect(root)
    try:
        yield context
    finally:
        context.close()


def read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def bucket_objects(server: SeaweedServer, bucket: str) -> dict[str, bytes]:
    client = server.client()
    out: dict[str, bytes] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            out[item["Key"]] = client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
    return out


def local_files(top: str) -> Iterator[str]:
    for dirpath, _dirs, files in os.walk(top):
        for name in files:
            yield os.path.join(dirpath, name)


# -- opening -----------------------------------------------------------------------------------------
def test_connect_opens_a_format2_store_on_the_bucket_with_local_state_under_aeg_cache(
    s3_server: SeaweedServer, s3_bucket: str, root: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    ctx = aeg_jupyter.connect(root + "/")
    try:
        store = ctx.store
        assert (store.root, store.format) == (root, 2)
        assert isinstance(store.blobs, RemoteBlobStore)
        state = store.store_root.path
        assert state.startswith(os.environ["AEG_CACHE"] + os.sep)  # this machine's state, named by the URL
        assert {"spool", "tmp", "files", "blobs"} <= set(os.listdir(state))
        assert aeg_jupyter.connect(root).store is store  # one open store per root and process
        ctx2 = aeg_jupyter.connect(root)
        ctx2.close()
    finally:
        ctx.close()
    keys = bucket_objects(s3_server, s3_bucket)
    assert json.loads(keys["team/aeg-store.json"])["format"] == 2
    for table in ("artifacts", "events", "ops"):  # the three tables, created once at the first open
        assert f"team/tables/{table}/_delta_log/00000000000000000000.json" in keys
    assert "s3:" not in os.listdir(tmp_path)  # nothing in the working directory
    # a second open (another process would do the same) finds the tables and the marker
    again = aeg_jupyter.connect(root)
    again.close()
    assert sum(k.endswith("00000000000000000000.json") for k in bucket_objects(s3_server, s3_bucket)) == 3


def test_two_first_opens_at_once_are_harmless(s3_server: SeaweedServer, root: str, tmp_path: Any) -> None:
    child = "import sys, aeg_jupyter; aeg_jupyter.connect(sys.argv[1]).close(); print('ok')"
    procs = [
        subprocess.Popen([sys.executable, "-c", child, root], env=_machine_env(s3_server, tmp_path / f"m{i}"),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(3)
    ]  # fmt: skip
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0 and out.strip() == "ok", err


def test_an_s3_root_is_format_2_and_a_missing_bucket_is_one_clear_error(s3_env: dict[str, str], s3_bucket: str) -> None:
    with pytest.raises(StoreFormatError, match=r"s3:// roots are format 2"):
        Store(f"s3://{s3_bucket}/x", format=1)
    started = time.monotonic()
    with pytest.raises(ObjectStoreError, match=r"bucket 'no-such-bucket-aeg' .*does not exist") as info:
        aeg_jupyter.connect("s3://no-such-bucket-aeg/x")
    assert time.monotonic() - started < 10
    assert s3_env["AWS_SECRET_ACCESS_KEY"] not in str(info.value)
    assert not os.path.exists(os.path.join(os.environ["AEG_CACHE"], "stores", "no-such-bucket-aeg"))


# -- the tutorial and the magics ------------------------------------------------------------------
def test_tutorial_snippets_on_an_s3_root(
    s3_server: SeaweedServer, s3_bucket: str, ctx: Any, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    arts, mem = ctx.artifacts(), ctx.memory()
    report = tmp_path / "report.pdf"
    report.write_bytes(b"%PDF-1.4 " + os.urandom(64 << 10))  # past the inline limit: a blob on the bucket
    big = tmp_path / "weights.bin"
    big.write_bytes(os.urandom(20 << 20))  # a multipart upload

    async def tutorial() -> dict[str, Any]:
        art = await arts.save_file(path=str(report), kind="report", labels={"exp": "A"})
        path = await arts.as_local_file(art)
        weights = await arts.save_file(path=str(big), kind="weights")
        async with arts.writer(kind="plot", planned_ext=".png") as w:
            w.write(b"\x89PNG\r\n\x1a\n" + b"p" * 10_000)
        for acc in (0.7, 0.9, 0.8):
            await arts.save_json({"acc": acc, "pad": "x" * 5000}, kind="checkpoint", metrics={"val_acc": acc})
        cfg = await arts.save_json({"lr": 1e-3, "batch": 64})
        await mem.record_tool_result(
            tool="train.step",
            outputs=[{"name": "val_acc", "kind": "number", "value": 0.912}, {"name": "ckpt_uri", "kind": "uri",
                                                                             "value": art.uri}],
        )  # fmt: skip
        await mem.record(kind="train_log", data={"epoch": 1, "loss": 0.25, "acc": 0.91})
        return {
            "art": art,
            "path": path,
            "weights": weights,
            "hits": await arts.search(kind="report", labels={"exp": "A"}),
            "best": await arts.best(kind="checkpoint", metric="val_acc", mode="max", scope="run"),
            "listed": await arts.list(scope="run"),
            "pinned": await arts.pin(artifact_id=cfg.artifact_id),
            "recent": await mem.recent(kinds=["train_log"], limit=3),
            "tool": await mem.recent_tool_results(tool="train.step", limit=10),
            "last": await mem.last_by_name("val_acc"),
            "cfg": await arts.load_json(cfg),
            "weights_path": await arts.as_local_file(weights),
        }

    got = run(tutorial())
    assert read(got["path"]) == report.read_bytes()
    assert [a.artifact_id for a in got["hits"]] == [got["art"].artifact_id]
    assert got["best"].metrics["val_acc"] == 0.9
    assert len(got["listed"]) == 7 and got["pinned"].pinned
    assert got["recent"][0].data == {"epoch": 1, "loss": 0.25, "acc": 0.91}
    assert len(got["tool"]) == 1 and got["last"] == 0.912
    assert got["cfg"] == {"lr": 1e-3, "batch": 64}
    assert read(got["weights_path"]) == big.read_bytes()
    ctx.store.flush()
    keys = bucket_objects(s3_server, s3_bucket)
    for a in (got["art"], got["weights"], got["best"]):  # the blobs are on the bucket under their blake3 key
        digest = a.uri.rsplit("/", 1)[1]
        assert f"team/blobs/{digest[:2]}/{digest[2:]}" in keys
    assert any(k.startswith("team/tables/artifacts/kind=checkpoint/") for k in keys)
    assert any(k.startswith("team/tables/events/kind=train_log/") for k in keys)
    # a reader with an empty cache (another machine) downloads, verifies and hands the same bytes out
    fresh = _other_machine_python(
        s3_server, tmp_path / "m2", ctx.store.root,
        "a = run(arts.get(sys.argv[2])); print(open(run(arts.as_local_file(a)), 'rb').read() == open(sys.argv[3], 'rb').read())",
        got["weights"].artifact_id, str(big),
    )  # fmt: skip
    assert fresh.strip().splitlines()[-1] == "True"
    out = capsys.readouterr()
    assert s3_server.secret_key not in out.out + out.err


def test_magics_on_an_s3_root(s3_server: SeaweedServer, root: str, ipython_shell: Any) -> None:
    ipython_shell.config.AegMagics.store = root
    ipython_shell.run_line_magic("load_ext", "aeg_jupyter")
    context = ipython_shell.user_ns["context"]
    assert context.store.root == root
    ipython_shell.run_line_magic("aeg", "log train_log loss=0.5 epoch=1")
    ipython_shell.user_ns["cfg"] = {"lr": 0.1, "pad": "y" * 6000}
    art = ipython_shell.run_line_magic("aeg", "save cfg --kind config --metric score=3")
    assert ipython_shell.run_line_magic("aeg", f"load {art.artifact_id}") == ipython_shell.user_ns["cfg"]
    best = ipython_shell.run_line_magic("aeg", "best config --metric score --max")
    assert best.artifact_id == art.artifact_id
    listed = ipython_shell.run_line_magic("aeg", "ls config")
    assert len(listed) == 1
    recent = ipython_shell.run_line_magic("aeg", "recent train_log")
    assert len(recent) == 1
    path = ipython_shell.run_line_magic("aeg", f"path {art.artifact_id}")
    assert json.loads(read(path)) == ipython_shell.user_ns["cfg"]
    status = ipython_shell.run_line_magic("aeg", "status")
    assert root in str(status) and s3_server.secret_key not in str(status)


def test_cli_on_an_s3_root(s3_server: SeaweedServer, root: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--store", root, "log", "train_log", "loss=1.5"]) == 0
    assert main(["--store", root, "recent", "train_log"]) == 0
    out = capsys.readouterr()
    assert "1.5" in out.out and s3_server.secret_key not in out.out + out.err


# -- many machines ------------------------------------------------------------------------------------
def _machine_env(server: SeaweedServer, home: Any) -> dict[str, str]:
    os.makedirs(home, exist_ok=True)
    env = {n: v for n, v in os.environ.items() if not n.startswith("AWS_") and n not in ("AEG_STORE", "AEG_CACHE")}
    return env | server.env() | {"HOME": str(home), "AEG_CACHE": os.path.join(str(home), "cache")}


CHILD_PRELUDE = textwrap.dedent(
    """
    import asyncio, sys, time
    import aeg_jupyter
    ctx = aeg_jupyter.connect(sys.argv[1])
    arts, mem = ctx.artifacts(), ctx.memory()
    run = asyncio.run
    """
)


def _other_machine_python(server: SeaweedServer, home: Any, root: str, body: str, *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD_PRELUDE + body + "\nctx.close()\n", root, *args],
        env=_machine_env(server, home), capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert server.secret_key not in proc.stdout + proc.stderr
    return proc.stdout


WRITER = CHILD_PRELUDE + textwrap.dedent(
    """
    art = run(arts.save_json({"who": "m2", "pad": "z" * 5000}, kind="shared", metrics={"acc": 0.99}))
    run(mem.record(kind="shared_log", data={"who": "m2"}))
    ctx.store.flush()
    print("committed", art.artifact_id, time.time(), flush=True)
    # then wait for the other machine's row
    line = sys.stdin.readline()
    t0 = time.monotonic()
    while time.monotonic() - t0 < 20:
        began = time.monotonic()
        if run(arts.search(kind="from_m1", scope="all")):
            print("seen", began - t0, flush=True)
            break
        time.sleep(0.1)
    ctx.close()
    """
)


def test_two_machines_see_each_others_rows_within_5_s(
    s3_server: SeaweedServer, root: str, ctx: Any, tmp_path: Any
) -> None:
    arts, mem = ctx.artifacts(), ctx.memory()
    assert run(arts.search(kind="shared", scope="all")) == []  # opened (and looked) before the other writes
    assert run(mem.recent(kinds=["shared_log"])) == []
    child = subprocess.Popen(
        [sys.executable, "-c", WRITER, root], env=_machine_env(s3_server, tmp_path / "m2"),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert child.stdout is not None and child.stdin is not None
        line = child.stdout.readline().split()
        assert line and line[0] == "committed", child.stderr.read() if child.stderr else ""
        art_id, committed_at = line[1], float(line[2])
        seen_art = seen_event = None
        while time.time() - committed_at < VISIBLE_SECONDS + 5:
            # (each look timed from its start: a slow call does not count against the row's visibility)
            began = time.time()
            if seen_art is None and [a.artifact_id for a in run(arts.search(kind="shared", scope="all"))] == [art_id]:
                seen_art = began - committed_at
            began = time.time()
            if seen_event is None and [e.data for e in run(mem.recent(kinds=["shared_log"]))] == [{"who": "m2"}]:
                seen_event = began - committed_at
            if seen_art is not None and seen_event is not None:
                break
            time.sleep(0.05)
        assert seen_art is not None and seen_art <= VISIBLE_SECONDS, seen_art
        assert seen_event is not None and seen_event <= VISIBLE_SECONDS, seen_event
        best = run(arts.best(kind="shared", metric="acc", mode="max", scope="all"))
        assert best is not None and run(arts.load_json(best))["who"] == "m2"  # its blob, downloaded here
        # and the other way round: this machine's row reaches the other within 5 s of its commit
        run(arts.save_json({"who": "m1"}, kind="from_m1"))
        ctx.store.flush()
        child.stdin.write("go\n")
        child.stdin.flush()
        out, err = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
    seen = [ln.split() for ln in out.splitlines() if ln.startswith("seen")]
    assert seen and float(seen[0][1]) <= VISIBLE_SECONDS, (out, err)
    assert s3_server.secret_key not in out + err


# -- external readers, maintenance, gc, verify -------------------------------------------------------
def test_deltalake_and_polars_on_the_endpoint_agree_with_list_all(
    s3_server: SeaweedServer, root: str, ctx: Any
) -> None:
    from deltalake import DeltaTable

    arts, mem = ctx.artifacts(), ctx.memory()

    async def fill() -> list[str]:
        ids = []
        for i in range(6):
            a = await arts.save_json({"i": i}, kind="point", metrics={"score": float(i)}, labels={"i": str(i)})
            ids.append(a.artifact_id)
            await mem.record(kind="step", data={"i": i})
        await arts.pin(ids[0])
        await arts.delete(ids[1])
        return ids

    run(fill())
    report = ctx.store.maintain()  # flush, fold pins and deletes, compact, checkpoint, vacuum: under the lease
    assert report.skipped is None
    listed = {a.artifact_id: a for a in run(arts.list(scope="all"))}
    objects = ObjectStore(S3Location.parse(root))
    options = objects.storage_options()
    table = DeltaTable(objects.table_uri("artifacts"), storage_options=options).to_pyarrow_table()
    assert sorted(table.column("artifact_id").to_pylist()) == sorted(listed)
    pinned = dict(zip(table.column("artifact_id").to_pylist(), table.column("pinned").to_pylist(), strict=True))
    assert pinned == {i: a.pinned for i, a in listed.items()}
    pl = pytest.importorskip("polars")
    frame = pl.read_delta(objects.table_uri("events"), storage_options=options)
    assert sorted(frame.filter(pl.col("kind") == "step")["event_id"].to_list()) == sorted(
        e.event_id for e in run(mem.recent(kinds=["step"], limit=100))
    )


def test_gc_and_verify_work_on_the_bucket_and_maintenance_waits_for_the_lease(
    s3_server: SeaweedServer, s3_bucket: str, root: str, ctx: Any, tmp_path: Any
) -> None:
    arts = ctx.artifacts()
    keep = run(arts.save_bytes(os.urandom(50_000), kind="blob"))
    objects = ObjectStore(S3Location.parse(root))
    # gc frees a deleted artifact's blob only when the bucket's Last-Modified of it (its upload's landing,
    # on the server's 1-second clock) is not past the artifact's own time; a blob whose upload lands in a
    # later second than its row waits out GC_GRACE_SECONDS instead (kept longer, never lost). So the blob
    # to collect is one whose upload landed within its row's second (a loaded machine may need a retry).
    for _attempt in range(5):
        time.sleep(1 - time.time() % 1)  # at the start of a second
        gone = run(arts.save_bytes(os.urandom(50_000), kind="blob"))
        digest_gone = gone.uri.rsplit("/", 1)[1]
        key = f"team/blobs/{digest_gone[:2]}/{digest_gone[2:]}"
        assert ctx.store.blobs.uploads.drain(30)
        landed = objects.last_modified(key)
        assert landed is not None
        if int(landed) <= int(gone.created_at.timestamp()):
            break
    else:
        pytest.fail("no upload landed within its row's second in 5 tries")
    digest_keep = keep.uri.rsplit("/", 1)[1]
    assert run(arts.verify()).ok
    run(arts.delete(gone))
    ctx.store.flush()
    report = run(arts.gc(dry_run=False))
    assert digest_gone in report.blobs and digest_keep not in report.blobs
    keys = bucket_objects(s3_server, s3_bucket)
    assert key not in keys and f"team/blobs/{digest_keep[:2]}/{digest_keep[2:]}" in keys
    assert run(arts.load_bytes(keep))  # still readable
    # a blob damaged on the bucket: verify (which re-hashes the bucket's bytes) says so
    client = s3_server.client()
    client.put_object(Bucket=s3_bucket, Key=f"team/blobs/{digest_keep[:2]}/{digest_keep[2:]}", Body=b"damaged")
    assert not run(arts.verify()).ok
    # maintenance: one runner across machines; while another holds the lease, wait=False skips
    lease = ObjectStore(S3Location.parse(root)).lease("maintenance", holder="another-machine")
    assert lease.acquire()
    try:
        assert ctx.store.maintain(wait=False).skipped
    finally:
        lease.release()
    assert ctx.store.maintain(wait=False).skipped is None


def test_the_flushers_merges_on_a_bucket_take_the_lease(s3_server: SeaweedServer, root: str) -> None:
    """A writer's merge of small files on an s3:// root holds the bucket's maintenance lease, as
    maintenance does (two compactions of the same files would both commit: storage.delta.hold_rewrites):
    while another machine holds it the merge skips, without waiting; then it merges, in its child."""
    from aeg_jupyter.storage.tables import COMPACT_AT

    store = Store(root, format=2, flush_rows=5, maintain_commits=0)
    table = store.event_table
    table._compact_small_files = lambda kinds: None  # type: ignore[method-assign]  # (the files first)
    n = 5 * (COMPACT_AT + 3)
    for i in range(n):
        store.event_log.record("tick", i)
        if i % 5 == 4:
            table.flush()
    files = len(table.delta.small_files("tick"))  # (a file per flush at least: the flusher may split a batch)
    assert files >= COMPACT_AT + 3
    lease = ObjectStore(S3Location.parse(root)).lease("maintenance", holder="another-machine")
    assert lease.acquire()
    try:
        started = time.monotonic()
        table._merge_small(["tick"], in_child=True)
        assert time.monotonic() - started < 10  # skipped, not waited for
        assert table.child_merges == 0 and len(table.delta.small_files("tick")) == files
    finally:
        lease.release()
    table._merge_small(["tick"], in_child=True)
    assert table.child_merges == 1 and len(table.delta.small_files("tick")) == 1
    store.close()
    again = Store(root, format=2, maintain_commits=0)
    assert [e.data for e in again.event_log.recent(kinds=["tick"], limit=10 * n)] == list(range(n))
    again.close()


def test_no_credential_in_any_object_or_local_file(
    s3_server: SeaweedServer, s3_bucket: str, root: str, ctx: Any
) -> None:
    arts, mem = ctx.artifacts(), ctx.memory()
    run(arts.save_json({"k": "v" * 6000}, kind="c"))
    run(mem.record(kind="e", data={"a": 1}))
    ctx.store.maintain()
    secret, access = s3_server.secret_key.encode(), s3_server.access_key.encode()
    for key, body in bucket_objects(s3_server, s3_bucket).items():
        assert secret not in body and access not in body, key
    for path in local_files(os.environ["AEG_CACHE"]):
        with open(path, "rb") as f:
            data = f.read()
        assert secret not in data, path
    assert s3_server.secret_key not in repr(ctx) + repr(ctx.store) + repr(ctx.store.blobs.objects)


def test_gc_keeps_a_blob_another_machine_saves_again_meanwhile(
    s3_server: SeaweedServer, s3_bucket: str, root: str, ctx: Any
) -> None:
    # gc's safety across machines: the save gate is per machine, so a save elsewhere that finds its blob
    # in the bucket touches it (ObjectStore.touch_key), and gc's delete looks at it once more first
    arts = ctx.artifacts()
    data = os.urandom(50_000)
    art = run(arts.save_bytes(data, kind="blob"))
    digest = art.uri.rsplit("/", 1)[1]
    key = f"team/blobs/{digest[:2]}/{digest[2:]}"
    run(arts.delete(art))
    ctx.store.flush()
    blobs = ctx.store.blobs
    assert isinstance(blobs, RemoteBlobStore)
    _wait_for_key(s3_server, s3_bucket, key)  # (uploads may be in the background)
    listed = {d for d, _size, _mtime in blobs.iter_blobs()}  # gc's listing chose it ...
    assert digest in listed
    time.sleep(1.1)  # (Last-Modified has whole seconds)
    other = ObjectStore(S3Location.parse(root))  # ... then another machine saves the same bytes
    assert other.put_bytes(data) == digest
    blobs.delete(digest)  # ... and gc's delete comes after: the blob stays
    assert key in bucket_objects(s3_server, s3_bucket)
    report = run(arts.gc(dry_run=False))  # touched after the deleted artifact was made: the grace period holds
    assert digest not in report.blobs and key in bucket_objects(s3_server, s3_bucket)


def test_gc_keeps_a_blob_saved_again_elsewhere_in_the_same_second_as_its_listing(
    s3_server: SeaweedServer, s3_bucket: str, root: str, ctx: Any
) -> None:
    # Last-Modified has whole seconds: a blob saved, listed by gc and touched by another machine's save all
    # within one second looks untouched when compared with the listed Last-Modified; gc's listing starts
    # after a mark on the server's clock instead (ObjectStore.server_mark), and a touch comes after it
    blobs = ctx.store.blobs
    assert isinstance(blobs, RemoteBlobStore)
    other = ObjectStore(S3Location.parse(root))  # another machine
    data = os.urandom(50_000)
    time.sleep(1.02 - time.time() % 1)  # the start of a second (the server's clock is this machine's)
    digest = other.put_bytes(data)  # the blob lands ...
    listed = {d for d, _size, _mtime in blobs.iter_blobs()}  # ... gc's listing chooses it ...
    assert digest in listed
    assert other.put_bytes(data) == digest  # ... another machine saves the same bytes (a touch) ...
    blobs.delete(digest)  # ... and gc's delete comes after: the blob stays
    assert f"team/blobs/{digest[:2]}/{digest[2:]}" in bucket_objects(s3_server, s3_bucket)


def _wait_for_key(server: SeaweedServer, bucket: str, key: str, seconds: float = 30.0) -> None:
    client = server.client()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if client.list_objects_v2(Bucket=bucket, Prefix=key).get("KeyCount", 0):
            return
        time.sleep(0.1)
    raise AssertionError(f"{key} never reached the bucket")


def test_maintenance_stops_at_the_next_step_when_its_lease_is_taken_over(
    s3_server: SeaweedServer, s3_bucket: str, root: str, ctx: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    short = ObjectStore.lease
    monkeypatch.setattr(
        ObjectStore, "lease", lambda self, name, **kw: short(self, name, seconds=1.5)
    )  # renewed every 0.5 s
    arts, mem = ctx.artifacts(), ctx.memory()
    run(arts.save_json({"a": 1}, kind="k"))
    run(mem.record(kind="e", data={"b": 2}))
    client = s3_server.client()

    def progress(line: str) -> None:
        if line == "compact: artifacts":  # a machine that found the lease expired takes it over
            client.put_object(Bucket=s3_bucket, Key="team/leases/maintenance", Body=b'{"holder": "other"}')
            time.sleep(1.5)  # the next renewal is refused: the lease is lost

    report = ctx.store.maintain(progress=progress)
    assert report.skipped and "another machine took the maintenance lease over" in report.skipped
    # the other holder's lease is left alone (nothing deleted that is not ours)
    assert json.loads(client.get_object(Bucket=s3_bucket, Key="team/leases/maintenance")["Body"].read()) == {
        "holder": "other"
    }


def test_local_copies_of_replaced_data_files_are_pruned(s3_server: SeaweedServer, root: str, tmp_path: Any) -> None:
    # one commit per save: many small data files, each downloaded into AEG_CACHE by the reads below
    store = Store(root, flush_rows=1, maintain_commits=0)
    try:
        for i in range(6):
            store.artifacts.save_json({"i": i}, kind="ckpt", metrics={"acc": i / 10})
            store.flush()
        delta = store.artifact_table.delta
        assert store.artifacts.best(kind="ckpt", metric="acc").metrics["acc"] == 0.5
        before = [f for f in local_files(delta.path) if f.endswith(".parquet")]
        assert len(before) >= 6  # the local copies the reads downloaded
        report = store.maintain()  # compaction: one file replaces them in the snapshot
        assert report.pruned == 0  # copies younger than the grace period stay (another reader may hold one)
        assert delta.prune_copies(older_than=0) >= 5
        live = {os.path.normpath(f.path) for f in delta.files()}
        after = {os.path.normpath(f) for f in local_files(delta.path) if f.endswith(".parquet")}
        assert after <= live  # only the snapshot's files are left on this machine
        assert len(store.artifacts.search(kind="ckpt")) == 6  # and reads go on (missing copies come down again)
        assert store.artifacts.best(kind="ckpt", metric="acc").metrics["acc"] == 0.5
    finally:
        store.close()
