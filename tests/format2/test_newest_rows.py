"""Format 2's events at scale (issue 18, the 10M-events row): the flusher's small-file compaction leaves
files at its target size alone (so a growing partition is not rewritten again and again), and the cold
newest-first read (``DeltaSpoolTable.newest_rows``, what a fresh process's ``recent`` runs on) gives the
same rows as reading every data file whole through format 1's row path, without importing pandas.
Real Delta tables in ``tmp_path``, real child processes."""

from __future__ import annotations

import json
import os
from typing import Any

from conftest import run_child

from aeg_jupyter.core.store import Store
from aeg_jupyter.storage.delta import DeltaLakeTable
from aeg_jupyter.storage.delta_table import DeltaSpoolTable
from aeg_jupyter.storage.schemas import as_micros
from aeg_jupyter.storage.schemas2 import EVENTS2_SCHEMA, event_rows_to_arrow

T0 = 1_767_225_600_000_000  # 2026-01-01 UTC, microseconds


def _row(n: int, us: int, kind: str = "log") -> dict[str, Any]:
    return {"event_id": f"01JB{n:022d}", "ts": us, "kind": kind, "text": f"row {n} " + "x" * 40}


def test_compaction_leaves_files_at_target_size_alone(tmp_path: Any) -> None:
    table = DeltaLakeTable(str(tmp_path / "events"), EVENTS2_SCHEMA, ts_field="ts")
    target = 40_000
    table.target_file_bytes = target
    # every file of at least half the target seen at any point (a merge's output is smaller than its inputs,
    # compressed together: 4 files of 10 kB make one of ~20 kB, so "at target" is what compact_small
    # does not count as small)
    at_target: set[str] = set()
    n = 0
    merges = 0
    for seq in range(60):
        table.commit(event_rows_to_arrow([_row(n + i, T0 + (n + i) * 10) for i in range(400)]), app_id="w", seq=seq)
        n += 400
        before = table.version()
        merged = table.compact_small("log", min_files=6)
        if merged:
            merges += 1
        else:  # too few small files: no optimize at all, so no commit
            assert table.version() == before
        files = table.files(["log"])
        paths = {f.path for f in files}
        assert at_target <= paths, "a file at its target size was rewritten"
        at_target.update(f.path for f in files if f.size is not None and f.size >= target // 2)
        assert sum(1 for f in files if f.size is None or f.size < target // 2) < 6 + 1
    assert merges >= 5 and len(at_target) >= 3, (merges, len(at_target))
    assert all(f.size is not None for f in table.files())
    # nothing lost, nothing twice
    ids = table.read(["event_id"]).column(0).to_pylist()
    assert len(ids) == len(set(ids)) == n
    # the default target of a table, and the artifacts table's larger one
    assert DeltaLakeTable(str(tmp_path / "x"), EVENTS2_SCHEMA).target_file_bytes == 16 << 20


def _full_read(table: DeltaSpoolTable) -> list[dict[str, Any]]:
    """Every row of every data file through format 1's whole-file path (read_part -> to_format1), newest first."""
    rows = [r for part in table.list_parts() for r in table.read_part(part) or []]
    return sorted(rows, key=lambda r: (r["ts"], r["event_id"]), reverse=True)


def test_newest_rows_equal_a_full_read_of_every_file(tmp_path: Any) -> None:
    root = str(tmp_path / "s")
    with Store(root, format=2) as store:
        store.event_table.background = False
        log = store.event_log
        for batch in range(3):  # 3 commits of 6,000, compacted below into one file of several row groups
            for i in range(6000):
                n = batch * 6000 + i
                if n % 10 == 9:
                    log.record_tool_result(
                        "train.step", outputs=[{"name": "val_acc", "kind": "number", "value": n / 1e4}],
                        inputs=[{"name": "lr", "kind": "json", "value": {"lr": 0.1}}], tags=["t", "ü"],
                        metrics={"loss": 1.0 / (n + 1)},
                    )  # fmt: skip
                else:
                    log.record("train_log", {"i": n}, stage="fit" if n % 3 else None)
            store.flush()
        table = store.event_table
        assert isinstance(table, DeltaSpoolTable)
        table.delta.compact(kinds=["train_log"])  # one file of 16,200 rows: more than one row group
        for i in range(300):  # and two small newer commits
            log.record("train_log", {"late": i})
            if i == 150:
                store.flush()
        store.flush()
    with Store(root, format=2, hot_limit=1) as store:
        table = store.event_table
        assert isinstance(table, DeltaSpoolTable)
        big = max(table.delta.files(["train_log"]), key=lambda f: f.rows)
        assert big.rows > 8192 and table.delta.footer(big).num_row_groups > 1
        full = _full_read(table)
        assert len(full) == 18_300
        for limit in (1, 10, 151, 1000, 9000):
            got, whole = table.newest_rows(limit)
            assert got == full[:limit] and not whole, limit
        got, whole = table.newest_rows(20_000)
        assert got == full and whole
        got, whole = table.newest_rows(5, whole_below=20_000)  # a table this small comes whole
        assert got == full and whole
        tools = [r for r in full if r["kind"] == "tool_result"]
        got, _ = table.newest_rows(25, ["tool_result"])
        assert got == tools[:25] and json.loads(got[0]["outputs"])[0]["name"] == "val_acc"
        assert json.loads(got[0]["tags"]) == ["t", "ü"] and json.loads(got[0]["metrics"])["loss"] > 0
        for at in (0, 149, 150, 500, 12_000):  # older than a key (the hot window's oldest)
            key = (full[at]["ts"], full[at]["event_id"])
            got, _ = table.newest_rows(10, before=key)
            assert [r for r in got if (r["ts"], r["event_id"]) < key] == full[at + 1 : at + 11], at
        # through the API: a window of one, so recent scans cold
        ev = store.event_log.recent(limit=40)
        assert [e.event_id for e in ev] == [r["event_id"] for r in reversed(full[:40])]
        ev = store.event_log.recent(kinds=["tool_result"], limit=3)
        assert [e.event_id for e in ev] == [r["event_id"] for r in reversed(tools[:3])]


def test_newest_rows_keep_every_row_of_a_tied_time(tmp_path: Any) -> None:
    # two writers stamped the same microsecond: both rows are the newest, whichever file holds them
    root = str(tmp_path / "s")
    Store(root, format=2).close()
    table = DeltaLakeTable(os.path.join(root, "tables", "events"), EVENTS2_SCHEMA, ts_field="ts")
    table.commit(event_rows_to_arrow([_row(1, T0 + 5), _row(2, T0 + 9)]), app_id="a", seq=0)
    table.commit(event_rows_to_arrow([_row(3, T0 + 9), _row(4, T0 + 1)]), app_id="b", seq=0)
    with Store(root, format=2, hot_limit=1) as store:
        t = store.event_table
        assert isinstance(t, DeltaSpoolTable)
        got, _ = t.newest_rows(1)
        assert sorted(r["event_id"] for r in got) == [_row(2, 0)["event_id"], _row(3, 0)["event_id"]]
        got, _ = t.newest_rows(1, before=(T0 + 9, _row(3, 0)["event_id"]))  # the tie comes on top of the limit
        assert {r["event_id"] for r in got} >= {_row(2, 0)["event_id"], _row(1, 0)["event_id"]}
        assert [e.text for e in store.event_log.recent(limit=4)] == [_row(n, 0)["text"] for n in (4, 1, 2, 3)]


COLD_CHILD = """
import json, sys
from aeg_jupyter.core.store import Store
store = Store(sys.argv[1], format=2, hot_limit=int(sys.argv[2]))
got = [e.event_id for e in store.event_log.recent(limit=10)]
print(json.dumps({"got": got, "pandas": "pandas" in sys.modules}))
store.close()
"""


def test_a_cold_open_and_recent_over_events_do_not_import_pandas(tmp_path: Any) -> None:
    """The hot window's fill used to read whole row groups through to_format1, whose Python-value
    conversions made pyarrow import pandas: 0.5-1 s of a cold open at 1M events."""
    root = str(tmp_path / "s")
    with Store(root, format=2) as store:
        store.event_table.background = False
        for i in range(3000):
            if i % 5 == 0:
                store.event_log.record_tool_result(
                    "step", outputs=[{"name": "acc", "kind": "number", "value": i}], metrics={"m": 1.0}, tags=["a"]
                )  # fmt: skip
            else:
                store.event_log.record("train_log", {"i": i})
            if i % 1000 == 999:
                store.flush()
        want = [e.event_id for e in store.event_log.recent(limit=10)]
    for hot in (1000, 1):
        proc = run_child(COLD_CHILD, root, str(hot))
        res = json.loads(proc.stdout.strip().splitlines()[-1])
        assert res["got"] == want and res["pandas"] is False, (hot, res)


def test_a_writer_counts_small_files_only_when_its_commits_can_make_a_merge_due(tmp_path):
    """The flusher reads the Delta log's file list (~1 ms holding the GIL, which a `record` waits for)
    only after COMPACT_AT commits of its own since the last count, not after every commit; partitions
    stay within the limit and every row stays (issue 18, the `record` tail)."""
    from aeg_jupyter.storage.tables import COMPACT_AT

    store = Store(str(tmp_path / "s"), format=2)
    table = store.event_table
    table.background = False  # commits at each flush(), on this thread
    counted: list[int] = []
    real = table.delta.small_files

    def counting(kind, **kw):
        out = real(kind, **kw)
        counted.append(len(out))
        return out

    table.delta.small_files = counting
    n = 2 * COMPACT_AT + 10
    for i in range(n):
        store.event_log.record("tick", i)
        store.flush()
    assert counted == [COMPACT_AT + 1, COMPACT_AT + 1]  # at commits 33 and 65 of 74: each time a merge was due
    assert len(table.delta.small_files("tick")) <= COMPACT_AT + 1
    assert [e.data for e in store.event_log.recent(kinds=["tick"], limit=10_000)] == list(range(n))
    store.close()


def test_the_flushers_merges_run_beside_its_commits(tmp_path):
    """A merge of small files found due by the flusher runs on a merger thread: the flusher goes on
    committing meanwhile (before, a 0.5-2.5 s merge on the flusher let ~100k logged rows pile up in
    memory), nothing is lost or doubled, and close() waits for it (issue 18, RSS while logging)."""
    import threading
    import time

    from aeg_jupyter.storage.tables import COMPACT_AT

    store = Store(str(tmp_path / "s"), format=2, flush_rows=5)
    table = store.event_table
    table.flush_seconds = 0.01
    merged_on: list[str] = []
    release = threading.Event()
    real = table._merge_in_child

    def slow_merge(kind, hold):  # a merge that lasts until the test has seen commits go on beside it
        merged_on.append(threading.current_thread().name)
        release.wait(60)
        return real(kind, hold)

    def wait_for(what, ok, seconds=60.0):
        deadline = time.monotonic() + seconds
        while not ok():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.005)

    table._merge_in_child = slow_merge  # (the merger thread's merge: in a one-shot child process)
    n = 5 * (COMPACT_AT + 20)
    for i in range(n):
        if i % 5 == 0:  # (counted before the batch: its commit may come before the batch's last record returns)
            before = table.commits
        store.event_log.record("tick", i)
        if i % 5 == 4:  # one spool, one commit (waited for: a slow flusher would take several in one)
            wait_for("a commit", lambda before=before: table.commits > before and not table.pending_rows)
    wait_for("a merge", lambda: bool(merged_on))
    commits_before = table.commits
    try:
        for i in range(n, n + 50):  # logged while the merge runs: committed meanwhile
            if i % 5 == 0:
                before = table.commits
            store.event_log.record("tick", i)
            if i % 5 == 4:
                wait_for(
                    "a commit beside the merge", lambda before=before: table.commits > before and not table.pending_rows
                )
    finally:
        release.set()
    assert merged_on[0].startswith("aeg-merge-")
    assert table.commits >= commits_before + 10
    store.close()  # waits for the merger
    again = Store(str(tmp_path / "s"), format=2)
    assert [e.data for e in again.event_log.recent(kinds=["tick"], limit=10_000)] == list(range(n + 50))
    assert len(again.event_table.delta.small_files("tick")) <= COMPACT_AT + 1
    again.close()


def _log_past_a_merge(store: Store, n: int) -> None:
    """Record ``n`` ticks, one flusher commit every 5 (waited for), so that merges come due on the flusher."""
    import time

    table = store.event_table
    for i in range(n):
        if i % 5 == 0:
            before = table.commits
        store.event_log.record("tick", i)
        if i % 5 == 4:
            deadline = time.monotonic() + 60
            while not (table.commits > before and not table.pending_rows):
                assert time.monotonic() < deadline, "timed out waiting for a commit"
                time.sleep(0.005)


def _store_logging_past_a_merge(tmp_path):
    """A store in ``tmp_path / "s"`` that logged ``n`` ticks, enough for a merge of small files, with the
    kinds merged in this process recorded in ``here``: ``(store, table, here, n)``."""
    from aeg_jupyter.storage.tables import COMPACT_AT

    store = Store(str(tmp_path / "s"), format=2, flush_rows=5)
    table = store.event_table
    table.flush_seconds = 0.01
    here: list[str] = []
    real = table.delta.compact_small
    table.delta.compact_small = lambda kind, **kw: here.append(kind) or real(kind, **kw)
    n = 5 * (COMPACT_AT + 5)
    _log_past_a_merge(store, n)
    return store, table, here, n


def test_the_merger_merges_in_a_child_process_that_exits(tmp_path):
    """The flusher's merges of small files run in a one-shot child process (a merge in the logging process
    leaves it holding +28 MB at 1M events, +59 MB at 10M: docs/format2.md, "RSS while logging"); the
    partition is merged all the same, nothing is lost or doubled, and no merge ran in this process (close()
    waits for the child's exit)."""
    from aeg_jupyter.storage.tables import COMPACT_AT

    store, table, here, n = _store_logging_past_a_merge(tmp_path)
    store.close()  # waits for the merger (and its child)
    assert table.child_merges >= 1 and here == [], (table.child_merges, here)
    assert table.merge_peak_mb > 50  # a child that imported pyarrow and deltalake, and reported its peak
    again = Store(str(tmp_path / "s"), format=2)
    assert len(again.event_table.delta.small_files("tick")) <= COMPACT_AT + 1
    assert [e.data for e in again.event_log.recent(kinds=["tick"], limit=10_000)] == list(range(n))
    again.close()


def test_the_merger_merges_here_when_no_child_process_can_start(tmp_path, monkeypatch):
    """An interpreter that cannot start a child (an embedded Python whose ``sys.executable`` is not a
    program): the merger thread merges in this process instead, and says nothing (the rows are safe)."""
    import sys
    import warnings

    from aeg_jupyter.storage.tables import COMPACT_AT

    monkeypatch.setattr(sys, "executable", str(tmp_path / "no-such-python"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "could not compact" warning
        store, table, here, n = _store_logging_past_a_merge(tmp_path)
        store.close()
    assert table.child_merges == 0 and here == ["tick"], (table.child_merges, here)
    again = Store(str(tmp_path / "s"), format=2)
    assert len(again.event_table.delta.small_files("tick")) <= COMPACT_AT + 1
    assert [e.data for e in again.event_log.recent(kinds=["tick"], limit=10_000)] == list(range(n))
    again.close()


def test_a_read_since_a_time_skips_older_row_groups_and_keeps_every_newer_row(tmp_path, monkeypatch):
    """``read_part_table(since_us=...)`` (a live chart's redraw past the hot window): a merged file's
    row groups before the time are not read, and every row at or after it comes back, once."""
    import pyarrow.parquet as pq

    store = Store(str(tmp_path / "s"), format=2, maintain_commits=0)
    log = store.event_log
    n = 20_000
    for i in range(n):
        log.record("tick", {"i": i})
        if i % 2_500 == 2_499:
            store.flush()  # 8 commits, 8 files
    store.maintain()  # merged: one file of 3 row groups
    table = store.event_table
    (part,) = table.list_parts(["tick"])
    with pq.ParquetFile(part.path) as pf:
        groups = pf.metadata.num_row_groups
    assert groups >= 3
    everything = table.read_part_table(part, columns=["event_id", "ts"])
    ts = as_micros(everything.column("ts")).to_pylist()
    cut = sorted(ts)[15_000]
    asked: list[list[int]] = []
    real = pq.ParquetFile.read_row_groups
    monkeypatch.setattr(
        pq.ParquetFile, "read_row_groups", lambda pf, rg, **kw: asked.append(list(rg)) or real(pf, rg, **kw)
    )
    got = table.read_part_table(part, columns=["event_id", "ts"], since_us=cut)
    assert len(asked) == 1 and 0 < len(asked[0]) < groups  # a group of older rows only is not read
    want = {e for e, t in zip(everything.column("event_id").to_pylist(), ts, strict=True) if t >= cut}
    ids = got.column("event_id").to_pylist()
    assert len(ids) == len(set(ids)) and set(ids) == want and len(want) >= n - 15_000
    store.close()
