"""Many machines, one s3:// store (issue 14 step 4b item 4), on a real SeaweedFS.

Four writer processes, each with its own ``AEG_CACHE`` and ``HOME`` (four machines as far as the store
can tell), write small JSON artifacts, multi-MiB files and events into one root at once; the server is
stopped for several seconds in the middle of their run and restarted. A fifth process (this one, with
its own ``AEG_CACHE`` and ``HOME``) must then see every acknowledged write within 5 s of the commit
that carries it, through the same ``search`` / ``recent`` calls a notebook uses: nothing lost, nothing
twice. ``--soak`` runs a longer variant.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from typing import Any

import pytest

from .conftest import SeaweedServer

VISIBLE_WITHIN = 5.0  # seconds after the commit (the promise)
OUTAGE = 4.0  # seconds the server is down mid-run
MiB = 1 << 20

WRITER = r"""
import asyncio, json, os, sys, time
import aeg_jupyter
root, name, work, n_json, n_files, n_events = sys.argv[1], sys.argv[2], sys.argv[3], *map(int, sys.argv[4:7])

def say(*parts):
    print(json.dumps(parts), flush=True)

async def phase(arts, mem, half):
    for i in range(half * n_json // 2, (half + 1) * n_json // 2):
        a = await arts.save_json({"w": name, "i": i}, kind="mm_json", labels={"w": name, "i": i})
        say("art", a.artifact_id, a.uri)
    for j in range(half * n_files // 2, (half + 1) * n_files // 2):
        path = os.path.join(work, f"{name}-{j}.bin")
        with open(path, "wb") as f:
            f.write(os.urandom(3 * 1024 * 1024 + j))
        a = await arts.save_file(path, kind="mm_file", labels={"w": name, "j": j})
        say("art", a.artifact_id, a.uri)
    for k in range(half * n_events // 2, (half + 1) * n_events // 2):
        await mem.record(kind="mm_event", data={"w": name, "k": k})
        say("event", name, k)

async def main():
    ctx = aeg_jupyter.connect(root)
    arts, mem = ctx.artifacts(), ctx.memory()
    await phase(arts, mem, 0)
    say("half")
    while not os.path.exists(os.path.join(work, "outage")):  # the server goes down now
        time.sleep(0.05)
    started = time.perf_counter()
    await phase(arts, mem, 1)  # acknowledged while nobody answers
    say("written", time.perf_counter() - started)
    while not os.path.exists(os.path.join(work, "back")):
        time.sleep(0.05)
    ctx.close()  # commits what is spooled, lands what is staged
    say("committed", time.time())

asyncio.run(main())
"""


def machine_env(base: dict[str, str], home: str) -> dict[str, str]:
    os.makedirs(home, exist_ok=True)
    return base | {"HOME": home, "AEG_CACHE": os.path.join(home, "cache"), "AEG_GRAPH": "many-machines"}


def run_machines(
    s3_server: SeaweedServer,
    s3_env: dict[str, str],
    bucket: str,
    tmp: Any,
    monkeypatch: pytest.MonkeyPatch,
    *,
    writers: int,
    sizes: tuple[int, int, int],
) -> None:
    root = f"s3://{bucket}/shared"
    work = tmp / "work"
    work.mkdir()
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "AEG_"))} | s3_env
    base["PYTHONPATH"] = os.pathsep.join(p for p in (os.getcwd(), os.environ.get("PYTHONPATH", "")) if p)
    # the root exists before the writers start (as when a team shares one): its marker and tables
    prepare = subprocess.run(
        [sys.executable, "-c", f"import aeg_jupyter; aeg_jupyter.connect({root!r}).close()"],
        env=machine_env(base, str(tmp / "home-setup")), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert prepare.returncode == 0, prepare.stderr
    # the fifth machine (this process: its own AEG_CACHE and HOME) opens the root before anyone writes,
    # so what it sees later comes from refreshing its view, not from a first open
    for name, value in machine_env({}, str(tmp / "home-reader")).items():
        monkeypatch.setenv(name, value)
    import aeg_jupyter

    ctx = aeg_jupyter.connect(root)
    try:
        _run(s3_server, bucket, tmp, root, work, base, ctx, writers=writers, sizes=sizes)
    finally:
        ctx.close()


def _run(
    s3_server: SeaweedServer,
    bucket: str,
    tmp: Any,
    root: str,
    work: Any,
    base: dict[str, str],
    ctx: Any,
    *,
    writers: int,
    sizes: tuple[int, int, int],
) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, root, f"m{i}", str(work), *map(str, sizes)],
            env=machine_env(base, str(tmp / f"home-m{i}")),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(writers)
    ]
    lines: dict[int, list[list[Any]]] = {i: [] for i in range(writers)}

    def read_until(i: int, word: str) -> list[Any]:
        stdout = procs[i].stdout
        assert stdout is not None
        for line in stdout:
            msg = json.loads(line)
            lines[i].append(msg)
            if msg[0] == word:
                return msg
        err = procs[i].stderr.read() if procs[i].stderr else ""
        raise AssertionError(f"writer m{i} ended before {word!r}: {err[-3000:]}")

    try:
        for i in range(writers):
            read_until(i, "half")
        s3_server.stop()
        down = time.monotonic()
        try:
            (work / "outage").touch()
            for i in range(writers):
                took = read_until(i, "written")[1]
                assert took < 30, f"writes during the outage were not acknowledged locally ({took:.1f} s)"
            time.sleep(max(0.0, OUTAGE - (time.monotonic() - down)))
        finally:
            s3_server.start()
        (work / "back").touch()
        committed = [read_until(i, "committed")[1] for i in range(writers)]
        errs: list[str] = []
        for p in procs:
            assert p.wait(60) == 0, p.stderr.read() if p.stderr else ""
            errs.append(p.stderr.read() if p.stderr else "")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)

    acked_arts = {(m[1], m[2]) for i in range(writers) for m in lines[i] if m[0] == "art"}
    acked_events = {(m[1], m[2]) for i in range(writers) for m in lines[i] if m[0] == "event"}
    n_json, n_files, n_events = sizes
    assert len(acked_arts) == writers * (n_json + n_files) and len(acked_events) == writers * n_events

    # the fifth machine, through the same calls a notebook makes
    arts, mem = ctx.artifacts(), ctx.memory()
    last_commit = max(committed)
    while True:
        began = time.time()  # (a look that began within the bound must not fail for its own duration)
        found = asyncio.run(arts.search(kind="mm_json", scope="all")) + asyncio.run(
            arts.search(kind="mm_file", scope="all")
        )
        events = asyncio.run(mem.recent(kinds=["mm_event"], limit=100_000, scope="all"))
        got_arts = [(a.artifact_id, a.uri) for a in found]
        got_events = [(e.data["w"], e.data["k"]) for e in events]
        if set(got_arts) >= acked_arts and set(got_events) >= acked_events:
            break
        # a look begun more than VISIBLE_WITHIN after the last commit sees everything
        assert began - last_commit <= VISIBLE_WITHIN, (
            f"{len(acked_arts - set(got_arts))} artifact(s) and {len(acked_events - set(got_events))} "
            f"event(s) still not visible {began - last_commit:.1f} s after the last commit; writers said: "
            + " | ".join(e[-600:] for e in errs)
        )
        time.sleep(0.1)
    # nothing lost, nothing twice, nothing else
    assert sorted(got_arts) == sorted(acked_arts)
    assert sorted(got_events) == sorted(acked_events)
    # every file's bytes came up once and read back whole on the fifth machine
    files = [a for a in found if a.kind == "mm_file"]
    assert len(files) == writers * n_files
    for a in files:
        path = asyncio.run(arts.as_local_file(a, verify=True))
        assert os.path.getsize(path) >= 3 * MiB
    listing = s3_server.client().list_objects_v2(Bucket=bucket, Prefix="shared/blobs/")
    keys = [o["Key"] for o in listing.get("Contents", [])]
    assert len(keys) == len(set(keys)) and len(keys) >= writers * n_files
    # no staging area left with anything in it on any machine
    for i in range(writers):
        cache = tmp / f"home-m{i}" / "cache"
        staged = [p for p in cache.rglob("uploads/*") if p.is_file()]
        assert staged == [], staged


def test_four_machines_write_at_once_through_an_outage_and_a_fifth_sees_everything(
    s3_server: SeaweedServer, s3_env: dict[str, str], s3_bucket: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_machines(s3_server, s3_env, s3_bucket, tmp_path, monkeypatch, writers=4, sizes=(10, 2, 20))


@pytest.mark.slow
def test_soak_four_machines_many_writes_through_an_outage(
    s3_server: SeaweedServer, s3_env: dict[str, str], s3_bucket: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_machines(s3_server, s3_env, s3_bucket, tmp_path, monkeypatch, writers=4, sizes=(200, 10, 1000))
