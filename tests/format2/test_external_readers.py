"""External readers of a format-2 store after SIGKILLs and under concurrent writers.

DuckDB (over deltalake's Arrow dataset; its ``delta_scan`` only where ``LOAD delta`` works offline),
Polars ``scan_delta`` and ``deltalake`` itself read the artifacts table through the Delta log. Whatever
point of a flush, a fold or a compaction a child process is killed at, no reader ever sees a row twice,
and after the next ``maintain()`` each returns exactly ``arts.list(scope="all")``. Four writer processes,
a reader process and a maintenance process on one store lose nothing and double nothing. CI runs a short
version; ``pytest --soak`` kills at random moments many times more.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import pytest
from conftest import spawn_child
from deltalake import DeltaTable

from aeg_jupyter.core.store import Store

from .readers import READERS, api_view, artifacts_path, ids_of, read

pytest.importorskip("duckdb")
pytest.importorskip("polars")

# A writer that saves, pins, unpins, deletes and records (flushing every 4 rows: many small files for
# compaction and fold to rewrite), then runs the step named by argv[2] and dies at its chosen point.
KILLED = """
import os, random, signal, sys, threading
from aeg_jupyter.core.store import Store
from aeg_jupyter.storage.delta import DeltaLakeTable

root, point, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
rng = random.Random(seed)
def die(*_a, **_k):
    os.kill(os.getpid(), signal.SIGKILL)
def after(name):
    orig = getattr(DeltaLakeTable, name)
    def wrapped(self, *a, **k):
        out = orig(self, *a, **k)
        die()
        return out
    setattr(DeltaLakeTable, name, wrapped)
def before(name):
    setattr(DeltaLakeTable, name, die)

store = Store(root, format=2, flush_rows=1_000_000)
for t in store.tables.values():
    t.background = False  # commits only at the flushes below: the kill points are deterministic
arts = store.artifacts
def work(n):
    mine = []
    for i in range(n):
        a = arts.save_json({"i": i, "seed": seed}, kind=rng.choice(["ckpt", "cfg"]),
                           labels={"seed": seed, "odd": i % 2 == 1, "w": "x%d" % (i % 3)},
                           metrics={"val_acc": rng.random(), "loss": rng.random()})
        print("A", a.artifact_id, flush=True)
        mine.append(a.artifact_id)
        store.event_log.record("log", {"i": i})
        r = rng.random()
        if r < 0.2:
            arts.pin(a.artifact_id); print("P", a.artifact_id, flush=True)
        elif r < 0.35 and len(mine) > 1:
            victim = mine.pop(0)
            if arts.get(victim).pinned:
                arts.pin(victim, False); print("U", victim, flush=True)
            arts.delete(victim); print("D", victim, flush=True)
        if i % 4 == 3:
            store.flush()
work(24)
store.flush()
if point == "flush-before-commit":
    work(3); before("commit"); store.flush()
elif point == "flush-after-commit":
    work(3); after("commit"); store.flush()
elif point == "fold-after-delete":
    after("delete_where"); store.maintain()
elif point == "fold-before-update":
    before("update_where"); store.maintain()
elif point == "compact-after-commit":
    after("compact"); store.maintain()
elif point in ("checkpoint", "vacuum"):
    store.maintain(progress=lambda line: line.startswith(point + ": events") and die())
elif point == "random":
    threading.Timer(rng.uniform(0.0, 1.5), die).start()
    while True:
        work(5)
        store.maintain(vacuum_hours=0)
print("not killed", flush=True)
"""

POINTS = [
    "flush-before-commit",
    "flush-after-commit",
    "fold-after-delete",
    "fold-before-update",
    "compact-after-commit",
    "checkpoint",
    "vacuum",
]


def _final_states(lines: list[str]) -> tuple[set[str], set[str], set[str]]:
    """(acknowledged saves, acknowledged deletes, pinned at the end) from a writer's ordered output."""
    saved, deleted, pinned = set(), set(), set()
    for line in lines:
        parts = line.split()
        if len(parts) != 2:  # a line cut by the kill
            continue
        tag, aid = parts
        if tag == "A":
            saved.add(aid)
        elif tag == "D":
            deleted.add(aid)
        elif tag == "P":
            pinned.add(aid)
        elif tag == "U":
            pinned.discard(aid)
    return saved, deleted, pinned


def _kill_at(root: str, point: str, seed: int) -> list[str]:
    proc = spawn_child(KILLED, root, point, str(seed))
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == -signal.SIGKILL, f"{point}: {out[-500:]}\n{err[-3000:]}"
    return out.splitlines()


def _no_duplicates_anywhere(root: str) -> None:
    if not DeltaTable.is_deltatable(artifacts_path(root)):
        return
    for reader in READERS:
        ids = ids_of(read(root, reader))
        assert len(ids) == len(set(ids)), f"{reader} sees a duplicate"


def _check_after_maintain(root: str, saved: set[str], deleted: set[str], pinned: set[str] | None) -> None:
    with Store(root, format=2) as store:  # recovers the dead writer's spools
        report = store.maintain()
        assert report.skipped is None  # the dead runner's lock went with it
    api = sorted(api_view(root))
    api_ids = {a[0] for a in api}
    assert saved - deleted <= api_ids, "an acknowledged save is missing"
    assert not api_ids & deleted, "a deleted artifact is listed"
    if pinned is not None:
        assert {a[0] for a in api if a[2]} == pinned
    for reader in READERS:
        rows = read(root, reader)
        assert len(ids_of(rows)) == len(set(ids_of(rows))), f"{reader} sees a duplicate"
        assert sorted(rows) == api, f"{reader} differs from arts.list(scope='all') after maintain"


@pytest.mark.parametrize("point", POINTS)
def test_a_kill_at_any_point_of_a_flush_fold_or_compaction_shows_no_duplicate(tmp_path: Any, point: str) -> None:
    root = str(tmp_path / "s")
    lines = _kill_at(root, point, seed=7)
    _no_duplicates_anywhere(root)  # right after the kill, before any repair
    saved, deleted, pinned = _final_states(lines)
    assert saved and deleted
    _check_after_maintain(root, saved, deleted, pinned)


def _random_kills(root: str, kills: int, seed: int) -> None:
    saved: set[str] = set()
    deleted: set[str] = set()
    for i in range(kills):
        lines = _kill_at(root, "random", seed + i)
        _no_duplicates_anywhere(root)
        s, d, _p = _final_states(lines)
        saved |= s
        deleted |= d
        # a pin or delete cut by the kill may or may not have reached the spool: pins are not compared
        _check_after_maintain(root, saved, deleted, None)


def test_random_kills_during_saves_and_maintenance(tmp_path: Any) -> None:
    _random_kills(str(tmp_path / "s"), kills=3, seed=100)


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_random_kills_during_saves_and_maintenance_soak(tmp_path: Any) -> None:
    _random_kills(str(tmp_path / "s"), kills=60, seed=1000)


def test_duckdb_delta_scan_where_the_extension_loads_offline(tmp_path: Any) -> None:
    import duckdb

    con = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    try:
        con.execute("LOAD delta")
    except duckdb.Error as exc:
        pytest.skip(f"DuckDB's delta extension does not load offline here: {str(exc).splitlines()[0]}")
    root = str(tmp_path / "s")
    lines = _kill_at(root, "fold-after-delete", seed=3)
    saved, deleted, pinned = _final_states(lines)
    _check_after_maintain(root, saved, deleted, pinned)
    got = con.sql(f"SELECT artifact_id, pinned FROM delta_scan('{artifacts_path(root)}')").fetchall()
    assert sorted(got) == sorted((a[0], a[2]) for a in api_view(root))


# -- many processes at once ---------------------------------------------------------------------------------
WRITER = """
import random, sys
from aeg_jupyter.core.store import Store
root, w = sys.argv[1], int(sys.argv[2])
rng = random.Random(w)
store = Store(root, format=2, flush_rows=5)
arts, mine = store.artifacts, []
for i in range(int(sys.argv[3])):
    a = arts.save_json({"w": w, "i": i}, kind=("ckpt", "cfg")[i % 2], labels={"w": w, "i": i},
                       metrics={"val_acc": rng.random()})
    print("A", a.artifact_id, flush=True)
    mine.append(a.artifact_id)
    e = store.event_log.record("log", {"w": w, "i": i})
    print("E", e.event_id, flush=True)
    r = rng.random()
    if r < 0.15:
        arts.pin(a.artifact_id); print("P", a.artifact_id, flush=True)
    elif r < 0.3 and len(mine) > 2:
        victim = mine.pop(rng.randrange(len(mine) - 1))
        if arts.get(victim).pinned:
            arts.pin(victim, False); print("U", victim, flush=True)
        arts.delete(victim); print("D", victim, flush=True)
store.close()
print("done", flush=True)
"""

READER = """
import os, sys, time
from deltalake import DeltaTable
from aeg_jupyter.core.store import Store
root, stop = sys.argv[1], sys.argv[2]
store = Store(root, format=2)
path = os.path.join(root, "tables", "artifacts")
reads = 0
while not os.path.exists(stop):
    if DeltaTable.is_deltatable(path):
        ids = DeltaTable(path).to_pyarrow_table(columns=["artifact_id"]).column(0).to_pylist()
        if len(ids) != len(set(ids)):
            print("DUP delta", len(ids) - len(set(ids)), flush=True)
    listed = [a.artifact_id for a in store.artifacts.list()]
    if len(listed) != len(set(listed)):
        print("DUP api", flush=True)
    reads += 1
    time.sleep(0.05)
store.close()
print("reads", reads, flush=True)
"""

MAINTAINER = """
import os, sys, time
from aeg_jupyter.core.store import Store
root, stop = sys.argv[1], sys.argv[2]
store = Store(root, format=2)
runs = deleted = conflicts = 0
while not os.path.exists(stop):
    r = store.maintain()
    runs += 1
    deleted += r.deleted
    conflicts += r.conflicts
    time.sleep(0.1)
store.close()
print("runs", runs, deleted, conflicts, flush=True)
"""


@pytest.mark.timeout(900)  # 6 processes on a shared 2-core machine: ~1 min at a load of 17
def test_four_writers_a_reader_and_maintenance_lose_nothing_and_double_nothing(tmp_path: Any) -> None:
    root = str(tmp_path / "s")
    stop = str(tmp_path / "stop")
    Store(root, format=2).close()
    started = time.monotonic()
    writers = [spawn_child(WRITER, root, str(w), "40") for w in range(4)]
    reader = spawn_child(READER, root, stop)
    maintainer = spawn_child(MAINTAINER, root, stop)
    outs = []
    for proc in writers:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0 and out.rstrip().endswith("done"), err[-3000:]
        outs.append(out.splitlines())
    with open(stop, "w"):
        pass
    r_out, r_err = reader.communicate(timeout=300)
    m_out, m_err = maintainer.communicate(timeout=300)
    assert reader.returncode == 0, r_err[-3000:]
    assert maintainer.returncode == 0, m_err[-3000:]
    assert "DUP" not in r_out, r_out
    reads = int(r_out.split()[-1])
    runs = int(m_out.split()[1])
    assert reads >= 1 and runs >= 1, (r_out, m_out)

    saved, deleted, pinned = set(), set(), set()
    for lines in outs:
        s, d, p = _final_states(lines)
        saved |= s
        deleted |= d
        pinned |= p
    assert len(saved) == 160 and deleted
    _check_after_maintain(root, saved, deleted, pinned)
    assert {a[0] for a in api_view(root)} == saved - deleted  # nothing lost, nothing extra
    events = DeltaTable(os.path.join(root, "tables", "events")).to_pyarrow_table(columns=["event_id"]).column(0)
    acked = {line.split()[1] for lines in outs for line in lines if line.startswith("E ")}
    assert len(events) == len(set(events.to_pylist())) and set(events.to_pylist()) == acked
    # how the run went, for the report when it fails
    print(
        f"4 writers x 40 saves, reader {reads} reads, maintenance {m_out.strip()}, {time.monotonic() - started:.1f} s"
    )
