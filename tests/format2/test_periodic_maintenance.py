"""Format 2's periodic maintenance thread (``Store.periodic``, core/maintenance.PeriodicMaintenance).

It runs ``maintain(wait=False)``'s body (fold, compact, checkpoint, vacuum; the flushers commit) when the
store has grown, one runner per store (``maintenance.lock``), never holding the store's lock (a
``record`` never waits for it), and stops at close. Real stores in tmp_path; external readers are
deltalake, DuckDB and Polars over the real Delta tables (tests/format2/readers.py).
"""

from __future__ import annotations

import os
import time
from typing import Any

import pytest
from deltalake import DeltaTable

from aeg_jupyter.core.store import Store
from aeg_jupyter.storage.delta import maintenance_lock

from .readers import artifacts_path, ids_of, read
from .test_maintain import _assert_readers_equal_api, _populate

pytest.importorskip("duckdb")
pytest.importorskip("polars")

NEVER = 10**9  # a commit count the test never reaches: the thread runs only once the test lowers it


def _wait_for(what: str, ok: Any, seconds: float = 120.0) -> None:
    deadline = time.monotonic() + seconds
    while not ok():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_the_periodic_run_folds_compacts_and_leaves_external_readers_exact(tmp_path: Any) -> None:
    root = str(tmp_path / "s")
    store = Store(root, format=2, flush_rows=5, maintain_commits=NEVER)
    periodic = store.periodic
    assert periodic is not None and periodic.running
    made = _populate(store)
    store.flush()
    assert periodic.runs == 0  # nothing has triggered it yet
    # before any maintenance the deleted rows are still in the artifacts table (the ops table has them)
    assert set(made["deleted"]) <= set(ids_of(read(root, "deltalake")))
    files_before = len(DeltaTable(artifacts_path(root)).file_uris())
    assert files_before > 3  # spools of 5 rows: many small files
    periodic.every_commits = 1  # the commits so far now count as "grown": the next check runs it
    _wait_for("a periodic run", lambda: periodic.runs >= 1)
    report = periodic.reports[-1]
    assert report.skipped is None and periodic.error is None
    assert report.flushed == 0  # the flushers commit; the periodic run never takes the store's lock
    assert report.deleted == len(made["deleted"])
    assert report.repinned >= len(made["pinned"])
    arts = next(t for t in report.tables if t.table == "artifacts")
    assert arts.files_before == files_before and arts.files_after == 3  # one file per kind
    # external readers see the live artifacts while the writer is still open
    for reader in ("deltalake", "duckdb", "polars"):
        ids = ids_of(read(root, reader))
        assert len(ids) == len(set(ids)), f"{reader} sees a duplicate"
        assert not set(made["deleted"]) & set(ids), f"{reader} still sees a deleted artifact"
    store.close()
    assert not periodic.running  # stopped at close
    api = _assert_readers_equal_api(root)
    assert {a[0] for a in api if a[2]} == made["pinned"]


def test_it_runs_when_the_flushers_commit_and_never_needs_the_store_lock(tmp_path: Any) -> None:
    root = str(tmp_path / "s")
    store = Store(root, format=2, maintain_commits=NEVER)
    store.event_table.flush_seconds = 0.05
    periodic = store.periodic
    assert periodic is not None
    log = store.event_log
    for i in range(4):
        before = store.event_table.commits  # (before the batch: its commit may come before the last record returns)
        for j in range(20):
            log.record("train_log", {"step": i * 20 + j})
        _wait_for(
            "a flusher commit",
            lambda before=before: store.event_table.commits > before and not store.event_table.pending_rows,
        )
    assert periodic.runs == 0
    # the flushers made 4 commits or more: with a threshold of 3 (set only now, so that no check can
    # land between two of them on a slow machine) a run follows, while this thread holds the store's
    # lock (so it cannot be waiting for it: a record in another thread never waits for maintenance)
    periodic.every_commits = 3
    with store.lock:
        _wait_for("a periodic run holding nothing of the writer's", lambda: periodic.runs >= 1)
    report = periodic.reports[-1]
    assert report.skipped is None and periodic.error is None
    events = next(t for t in report.tables if t.table == "events")
    assert events.files_before >= 4 and events.files_after == 1
    assert [e.data["step"] for e in log.recent(limit=80)] == list(range(80))
    store.close()
    assert not periodic.running
    got = DeltaTable(os.path.join(root, "tables", "events")).to_pyarrow_table(columns=["event_id"]).num_rows
    assert got == 80


def test_one_runner_per_store_another_holder_of_the_lock_makes_it_skip(tmp_path: Any) -> None:
    root = str(tmp_path / "s")
    store = Store(root, format=2, flush_rows=5, maintain_commits=NEVER)
    periodic = store.periodic
    assert periodic is not None
    _populate(store)
    store.flush()
    with maintenance_lock(store.layout.maintenance_lock) as held:  # as another process's `aeg gc` would
        assert held
        periodic.every_commits = 1
        _wait_for("a skipped round", lambda: bool(periodic.reports))
        assert periodic.runs == 0
        assert periodic.reports[-1].skipped == "another process is running maintenance on this store"
        periodic.every_commits = NEVER
    store.event_log.record("train_log", {"after": 1})
    store.flush()  # the store grew again
    periodic.every_commits = 1
    _wait_for("a run once the lock is free", lambda: periodic.runs >= 1)
    assert periodic.reports[-1].deleted == 5
    store.close()
    _assert_readers_equal_api(root)


def test_no_thread_when_turned_off_on_format_1_or_read_only(tmp_path: Any) -> None:
    off = Store(str(tmp_path / "off"), format=2, maintain_commits=0)
    assert off.periodic is None
    off.close()
    one = Store(str(tmp_path / "one"), format=1)
    assert one.periodic is None
    one.close()


def test_a_local_store_runs_it_in_a_child_process_that_exits(tmp_path: Any, monkeypatch: Any) -> None:
    # this process's DeltaMaintenance.run is never called: the run happens in a one-shot child (whose
    # memory goes when it exits), which reports back what it did
    from aeg_jupyter.core import maintenance

    here: list[int] = []
    real_run = maintenance.DeltaMaintenance.run
    monkeypatch.setattr(maintenance.DeltaMaintenance, "run", lambda self, **kw: here.append(1) or real_run(self, **kw))
    children: list[Any] = []
    real_start = maintenance.start_python
    monkeypatch.setattr(
        maintenance, "start_python", lambda *a, **kw: children.append(real_start(*a, **kw)) or children[-1]
    )
    root = str(tmp_path / "s")
    store = Store(root, format=2, flush_rows=5, maintain_commits=NEVER)
    periodic = store.periodic
    assert periodic is not None and periodic.child_root == root
    made = _populate(store)
    store.flush()
    periodic.every_commits = 1
    _wait_for("a periodic run", lambda: periodic.runs >= 1)
    assert here == [] and len(children) >= 1
    assert all(c.poll() is not None for c in children[: periodic.runs])  # each run's child has exited
    report = periodic.reports[-1]
    assert periodic.error is None and report.skipped is None
    assert report.deleted == len(made["deleted"])
    assert next(t for t in report.tables if t.table == "artifacts").files_after == 3
    store.close()
    _assert_readers_equal_api(root)


def test_with_no_child_process_it_runs_in_this_one(tmp_path: Any, monkeypatch: Any) -> None:
    from aeg_jupyter.core import maintenance

    def cannot_start(*_a: Any, **_kw: Any) -> Any:
        raise OSError("no interpreter to run")

    monkeypatch.setattr(maintenance, "start_python", cannot_start)
    here: list[int] = []
    real_run = maintenance.DeltaMaintenance.run
    monkeypatch.setattr(maintenance.DeltaMaintenance, "run", lambda self, **kw: here.append(1) or real_run(self, **kw))
    store = Store(str(tmp_path / "s"), format=2, flush_rows=5, maintain_commits=NEVER)
    periodic = store.periodic
    assert periodic is not None
    made = _populate(store)
    store.flush()
    periodic.every_commits = 1
    _wait_for("a periodic run", lambda: periodic.runs >= 1)
    assert here and periodic.error is None
    assert periodic.reports[-1].deleted == len(made["deleted"])
    store.close()


def test_a_failed_child_run_is_an_error_the_next_trigger_retries(tmp_path: Any, monkeypatch: Any) -> None:
    from aeg_jupyter.core import maintenance

    store = Store(str(tmp_path / "s"), format=2, flush_rows=5, maintain_commits=NEVER)
    periodic = store.periodic
    assert periodic is not None
    _populate(store)
    store.flush()
    periodic.child_root = str(tmp_path / "not-a-store" / "file")  # the child cannot open it
    (tmp_path / "not-a-store").write_text("a file, not a directory")
    periodic.every_commits = 1
    _wait_for("a failed round", lambda: periodic.error is not None)
    assert periodic.runs == 0
    assert isinstance(periodic.error, maintenance.StoreWriteError)
    assert "the periodic maintenance run failed" in str(periodic.error)
    assert "runs again at the next trigger" in str(periodic.error)
    periodic.child_root = store.root  # fixed: the next trigger (the store growing again) runs
    store.event_log.record("train_log", {"after": 1})
    store.flush()
    _wait_for("a run after the failure", lambda: periodic.runs >= 1)
    store.close()


def test_close_stops_a_child_run_between_its_steps(tmp_path: Any) -> None:
    from aeg_jupyter.core import maintenance

    root = str(tmp_path / "s")
    store = Store(root, format=2, flush_rows=5, maintain_commits=NEVER)
    _populate(store)
    store.flush()
    # a child whose stdin closes at once (its parent closing) stops before its first compaction
    child = maintenance.start_python("aeg_jupyter.core.maintenance_child", root, stderr=-2)
    assert child.stdin is not None and child.stdout is not None
    child.stdin.close()
    out = child.stdout.read()
    assert child.wait(60) == 0
    answer = maintenance.json.loads(out.strip().splitlines()[-1])
    assert answer["report"]["skipped"] == "stopped: the store is closing (the next run finishes)"
    # close() while the periodic child runs: it returns, and the child is gone
    periodic = store.periodic
    assert periodic is not None
    periodic.every_commits = 1
    _wait_for("a child run", lambda: periodic._child is not None, seconds=60)
    running = periodic._child
    started = time.monotonic()
    store.close()
    assert time.monotonic() - started < maintenance.CHILD_STOP_SECONDS
    assert running is not None and running.poll() is not None
    assert not periodic.running
    _assert_readers_equal_api(root)
