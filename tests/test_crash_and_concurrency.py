"""Crashes (SIGKILL mid-write) and several processes writing one store at once."""

from __future__ import annotations

import os
import signal
import time

import pytest
from conftest import run_child, spawn_child

import aeg_jupyter

WRITER = """
import sys, os, aeg_jupyter
root, what = sys.argv[1], sys.argv[2]
store = aeg_jupyter.Store(root, flush_rows=int(sys.argv[3]))
i = 0
src = os.path.join(root, "..", f"src-{os.getpid()}.bin")
while True:
    if what == "artifacts":
        if i % 3 == 0:
            a = store.artifacts.save_json({"i": i}, kind="k", labels={"pid": os.getpid()}, metrics={"i": i})
        elif i % 3 == 1:
            a = store.artifacts.save_text("x" * (i % 50), kind="t")
        else:
            with open(src, "wb") as f:
                f.write(os.urandom(2000))
            a = store.artifacts.save_file(src, kind="f")
        print(a.artifact_id, flush=True)
    else:
        e = store.event_log.record("tick", {"i": i, "pid": os.getpid()})
        print(e.event_id, flush=True)
    i += 1
"""


def _kill_after(proc, lines_wanted: int) -> list[str]:
    acked = []
    assert proc.stdout is not None
    while len(acked) < lines_wanted:
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(proc.stderr.read() if proc.stderr else "writer died")
        acked.append(line.strip())
    os.kill(proc.pid, signal.SIGKILL)
    # the rest through the same buffered reader (communicate() reads the pipe itself: what readline had
    # buffered, the start of the next line, was lost, and the rest began with the tail of an id); only
    # whole lines are acknowledgements (the kill can land while the child writes its stdout buffer out)
    rest = proc.stdout.read()
    proc.communicate()
    lines = rest.split("\n")
    acked.extend(x.strip() for x in lines[:-1] if x.strip())
    return acked


@pytest.mark.parametrize("flush_rows", [7, 10_000])
def test_sigkill_while_saving_loses_no_acknowledged_artifact(store_root, flush_rows):
    aeg_jupyter.Store(store_root).close()
    for round_ in range(3):
        proc = spawn_child(WRITER, store_root, "artifacts", str(flush_rows))
        acked = _kill_after(proc, 20 + 13 * round_)
        store = aeg_jupyter.Store(store_root)
        ids = {a.artifact_id for a in store.artifacts.list()}
        assert set(acked) <= ids
        report = store.artifacts.verify()
        assert report.ok, report
        for aid in acked[-5:]:
            store.artifacts.load_bytes(aid, verify=True)
        store.close()
    assert os.listdir(os.path.join(store_root, "tmp")) == []  # dead writers' temp files cleaned


def test_sigkill_while_recording_keeps_every_returned_event(store_root):
    aeg_jupyter.Store(store_root).close()
    proc = spawn_child(WRITER, store_root, "events", "50")
    acked = _kill_after(proc, 300)
    store = aeg_jupyter.Store(store_root, hot_limit=10)
    got = [e.event_id for e in store.event_log.recent(kinds=["tick"], limit=100_000)]
    assert set(acked) <= set(got) and len(got) == len(set(got))
    assert got == sorted(got)
    store.close()


def test_two_processes_saving_at_once_lose_nothing(store_root):
    code = """
    import sys, aeg_jupyter
    store = aeg_jupyter.Store(sys.argv[1], flush_rows=40)
    for i in range(150):
        a = store.artifacts.save_json({"w": sys.argv[2], "i": i}, kind="k", labels={"w": sys.argv[2]})
        print(a.artifact_id)
        e = store.event_log.record("log", {"w": sys.argv[2], "i": i})
        print(e.event_id)
    store.close()
    """
    aeg_jupyter.Store(store_root).close()
    procs = [spawn_child(code, store_root, w) for w in ("a", "b")]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    written = {x for out, _ in outs for x in out.split()}
    store = aeg_jupyter.Store(store_root)
    arts = store.artifacts.list()
    events = store.event_log.recent(limit=10_000)
    assert len(arts) == 300 and len(events) == 300
    assert {a.artifact_id for a in arts} | {e.event_id for e in events} == written
    assert len(store.artifacts.search(kind="k", labels={"w": "a"})) == 150
    store.close()


def test_live_processes_see_each_other_without_restart(store_root):
    """Two writers alternate; each one's recent() includes the other's events at once."""
    code = """
    import sys, time, os, aeg_jupyter
    root, me, other = sys.argv[1], sys.argv[2], sys.argv[3]
    store = aeg_jupyter.Store(root, flush_rows=5)
    seen_other = 0
    for i in range(20):
        store.event_log.record("chat", {"who": me, "i": i})
        store.artifacts.save_text(f"{me}{i}", kind="note", labels={"who": me})
        deadline = time.time() + 20
        while True:  # wait until the other side has written its i-th event
            mine = [d for d in store.event_log.recent_data(kinds=["chat"], limit=100) if d["who"] == other]
            if len(mine) >= i + 1 or time.time() > deadline:
                break
            time.sleep(0.005)
        seen_other = max(seen_other, len(mine))
    notes = store.artifacts.search(kind="note", labels={"who": other})
    print(seen_other, len(notes))
    store.close()
    """
    aeg_jupyter.Store(store_root).close()
    pa = spawn_child(code, store_root, "a", "b")
    pb = spawn_child(code, store_root, "b", "a")
    outs = [p.communicate(timeout=120) for p in (pa, pb)]
    assert [p.returncode for p in (pa, pb)] == [0, 0], outs
    for out, _ in outs:
        seen, notes = map(int, out.split())
        assert seen == 20 and notes >= 19  # the other's last note may land just after our last look
    store = aeg_jupyter.Store(store_root)
    assert len(store.event_log.recent(kinds=["chat"], limit=1000)) == 40
    store.close()


def test_compaction_merges_parts_and_keeps_rows_once(store_root):
    """Format 1's per-partition compaction of Parquet parts (format 2: the next test)."""
    store = aeg_jupyter.Store(store_root, format=1, flush_rows=3)
    for i in range(60):
        store.event_log.record("tick", i)
        store.artifacts.save_text(str(i), kind="n")
    store.flush()
    before = len(store.event_table.list_parts(["tick"]))
    assert store.compact(min_parts=4) > 0
    assert len(store.event_table.list_parts(["tick"])) < before
    store.close()
    store2 = aeg_jupyter.Store(store_root, format=1, hot_limit=5)
    assert [e.data for e in store2.event_log.recent(kinds=["tick"], limit=1000)] == list(range(60))
    assert len(store2.artifacts.list(kind="n")) == 60
    store2.close()


def test_format_2_compaction_merges_data_files_and_keeps_rows_once(store_root):
    """Format 2: Delta's optimize merges a partition's data files in one commit; every row stays, once."""
    from deltalake import DeltaTable

    store = aeg_jupyter.Store(store_root, format=2)
    for i in range(60):
        store.event_log.record("tick", i)
        store.artifacts.save_text(str(i), kind="n")
        if i % 3 == 2:
            store.flush()  # one commit, so one data file per partition, every 3 rows
    before = len(store.event_table.list_parts(["tick"]))
    assert before >= 4
    assert store.compact(min_parts=4) > 0
    assert len(store.event_table.list_parts(["tick"])) < before
    store.close()
    store2 = aeg_jupyter.Store(store_root, format=2, hot_limit=5)
    assert [e.data for e in store2.event_log.recent(kinds=["tick"], limit=1000)] == list(range(60))
    assert len(store2.artifacts.list(kind="n")) == 60
    store2.close()
    for table, id_field, n in (("events", "event_id", 60), ("artifacts", "artifact_id", 60)):
        ids = DeltaTable(os.path.join(store_root, "tables", table)).to_pyarrow_table(columns=[id_field]).column(0)
        assert len(ids) == len(set(ids.to_pylist())) == n  # what an external reader sees: no row twice


def test_duckdb_reads_the_tables_with_hive_partitioning(store_root):
    """Format 1's Hive-partitioned Parquet with JSON text columns (format 2: the next test)."""
    duckdb = pytest.importorskip("duckdb")
    store = aeg_jupyter.Store(store_root, format=1)
    idx = store.artifacts
    saved = [
        idx.save_json({"i": i}, kind=k, labels={"exp": "A"}, metrics={"acc": i / 10})
        for i, k in enumerate(["ckpt", "ckpt", "plot", "a b/c"])
    ]
    store.event_log.record("train_log", {"epoch": 1})
    store.close()
    glob = os.path.join(store_root, "tables", "artifacts", "*", "*.parquet")
    rows = duckdb.sql(
        f"select artifact_id, kind, metrics->>'acc' as acc, labels->>'exp' as exp, created_at "
        f"from read_parquet('{glob}', hive_partitioning=true) order by artifact_id"
    ).fetchall()
    assert [r[0] for r in rows] == sorted(a.artifact_id for a in saved)
    assert {r[3] for r in rows} == {"A"} and rows[0][4].tzinfo is not None
    kinds = {r[1] for r in rows}
    assert {"ckpt", "plot"} <= kinds
    events = duckdb.sql(
        f"select kind, text from read_parquet('{os.path.join(store_root, 'tables', 'events', '*', '*.parquet')}', hive_partitioning=true)"
    ).fetchall()
    assert events == [("train_log", '{"epoch": 1}')]
    import pandas as pd

    df = pd.read_parquet(os.path.join(store_root, "tables", "artifacts"))
    assert len(df) == 4 and set(df["kind"].astype(str)) >= {"ckpt", "plot"}


def test_duckdb_reads_the_format_2_tables_with_typed_columns(store_root):
    """Format 2: DuckDB over the Delta snapshot (deltalake's Arrow dataset): typed maps, no JSON functions."""
    duckdb = pytest.importorskip("duckdb")
    from deltalake import DeltaTable

    store = aeg_jupyter.Store(store_root, format=2)
    idx = store.artifacts
    saved = [
        idx.save_json({"i": i}, kind=k, labels={"exp": "A"}, metrics={"acc": i / 10})
        for i, k in enumerate(["ckpt", "ckpt", "plot", "a b/c"])
    ]
    store.event_log.record("train_log", {"epoch": 1})
    store.close()
    con = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    con.register("artifacts", DeltaTable(os.path.join(store_root, "tables", "artifacts")).to_pyarrow_dataset())
    con.register("events", DeltaTable(os.path.join(store_root, "tables", "events")).to_pyarrow_dataset())
    rows = con.sql(
        "select artifact_id, kind, metrics['acc'] as acc, labels['exp'].s as exp, created_at "
        "from artifacts order by artifact_id"
    ).fetchall()
    assert [r[0] for r in rows] == sorted(a.artifact_id for a in saved)
    assert [r[1] for r in rows] == [a.kind for a in sorted(saved, key=lambda a: a.artifact_id)]
    assert [r[2] for r in rows] == [a.metrics["acc"] for a in sorted(saved, key=lambda a: a.artifact_id)]
    assert {r[3] for r in rows} == {"A"} and rows[0][4].tzinfo is not None
    assert con.sql("select kind, text from events").fetchall() == [("train_log", '{"epoch": 1}')]


def test_core_imports_no_ipython_or_widgets():
    out = run_child(
        """
        import sys
        import aeg_jupyter, aeg_jupyter.core.store, aeg_jupyter.core.artifacts, aeg_jupyter.core.events, aeg_jupyter.core.frames
        import aeg_jupyter.api.context, aeg_jupyter.storage.tables, aeg_jupyter.storage.blobs, aeg_jupyter.api.run_sync
        bad = [m for m in ("IPython", "ipywidgets", "traitlets", "ipykernel") if m in sys.modules]
        print(",".join(bad) or "clean")
        """
    ).stdout.strip()
    assert out == "clean"


def test_open_is_fast_enough_to_not_notice(store_root):
    store = aeg_jupyter.Store(store_root)
    for i in range(200):
        store.event_log.record("x", i)
    store.close()
    t = time.perf_counter()
    aeg_jupyter.Store(store_root).close()
    assert time.perf_counter() - t < 5  # generous: a sanity check, budgets live in bench/


def test_flushes_compact_partitions_automatically(store_root):
    from aeg_jupyter.storage.tables import COMPACT_AT

    store = aeg_jupyter.Store(store_root, flush_rows=2)
    for i in range(2 * COMPACT_AT + 10):
        store.event_log.record("tick", i)
    assert len(store.event_table.list_parts(["tick"])) <= COMPACT_AT
    assert [e.data for e in store.event_log.recent(kinds=["tick"], limit=10_000)] == list(range(2 * COMPACT_AT + 10))
    store.close()


def test_a_writer_that_came_and_went_between_two_looks_is_seen(store_root):
    store = aeg_jupyter.Store(store_root)
    assert store.artifacts.list() == [] and store.event_log.recent() == []
    run_child(
        """
        import sys, aeg_jupyter
        s = aeg_jupyter.Store(sys.argv[1])
        s.artifacts.save_text("from a one-shot process", kind="note")
        s.event_log.record("log", "one-shot")
        s.close()
        """,
        store_root,
    )
    assert [a.kind for a in store.artifacts.list()] == ["note"]
    assert store.event_log.recent_data(kinds=["log"]) == ["one-shot"]
    store.close()
