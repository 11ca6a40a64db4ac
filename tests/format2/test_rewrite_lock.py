"""One rewrite of a store's data files at a time: the flusher's merges of small files and maintenance's
compaction both hold ``maintenance.lock`` (``storage.delta.hold_rewrites``).

delta-rs (1.6) lets two compactions that started from the same snapshot both commit: each removes the
same small files (``dataChange=false``, which its conflict checker lets through since delta-rs PR 3982)
and adds its own merged copy, so every row is in the table twice, for external readers and for ours.
These tests start real processes at the same instant on one real store and count the rows with
deltalake (the table as DuckDB or Polars see it) and through the API.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from typing import Any

from deltalake import DeltaTable

from aeg_jupyter.core.store import Store
from aeg_jupyter.storage.delta import maintenance_lock
from aeg_jupyter.storage.tables import COMPACT_AT

EVENTS_PER_FILE = 5
FILES = COMPACT_AT + 8  # small files in partition "tick": enough for the flusher's merge

# One rewriter: waits for the file `go`, then merges partition "tick" the flusher's way (`merge`, in a
# one-shot child as the merger thread does) or runs maintenance (`maintain`); prints what it did.
_REWRITER = textwrap.dedent(
    """
    import json, os, sys, time
    from aeg_jupyter.core.maintenance import DeltaMaintenance
    from aeg_jupyter.core.store import Store

    root, how, go = sys.argv[1:]
    store = Store(root, format=2, maintain_commits=0)
    table = store.event_table
    table.delta.files(["tick"])  # the snapshot is loaded before the start, as in a store that logs
    open(go + "." + how, "w").close()
    while not os.path.exists(go):
        time.sleep(0.0005)
    if how == "maintain":
        run = DeltaMaintenance(tables=store.tables, root=store.store_root, guard=store.guard)
        report = run.run(wait=False, flush=False)  # (as the periodic maintenance child runs it)
        done = {"skipped": report.skipped, "compacted": sum(t.compacted for t in report.tables)}
    else:
        table._merge_small(["tick"], in_child=how == "merge-child")
        done = {"child_merges": table.child_merges}
    store.close()
    print(json.dumps(done))
    """
)


def _small_files_store(root: str) -> int:
    """A format-2 store whose events partition "tick" has :data:`FILES` small data files, unmerged
    (its merges are held back while it is built); returns the events recorded."""
    store = Store(root, format=2, maintain_commits=0)
    table = store.event_table
    table._compact_small_files = lambda kinds: None  # type: ignore[method-assign]
    n = 0
    for _ in range(FILES):
        for _ in range(EVENTS_PER_FILE):
            store.event_log.record("tick", n)
            n += 1
        table.flush()
    assert len(table.delta.small_files("tick")) == FILES
    store.close()
    return n


def _rewrite_at_once(root: str, tmp: str, hows: list[str]) -> list[dict[str, Any]]:
    """Start one :data:`_REWRITER` per entry of ``hows``, let them all go at the same instant, and
    return what each printed."""
    go = os.path.join(tmp, "go")
    procs = [
        subprocess.Popen([sys.executable, "-c", _REWRITER, root, how, go], stdout=subprocess.PIPE, text=True)
        for how in hows
    ]
    deadline = time.monotonic() + 120
    while not all(os.path.exists(f"{go}.{how}") for how in hows):
        assert time.monotonic() < deadline, "the rewriters did not start"
        assert all(p.poll() is None for p in procs), "a rewriter died before the start"
        time.sleep(0.01)
    open(go, "w").close()
    outs = []
    for p in procs:
        out, _ = p.communicate(timeout=180)
        assert p.returncode == 0, out
        outs.append(json.loads(out.strip().splitlines()[-1]))
    os.unlink(go)
    for how in hows:
        os.unlink(f"{go}.{how}")
    return outs


def _assert_each_event_once(root: str, n: int) -> None:
    table = DeltaTable(os.path.join(root, "tables", "events"))
    ids = table.to_pyarrow_dataset().to_table(columns=["event_id"]).column("event_id").to_pylist()
    assert len(ids) == n and len(set(ids)) == n, f"{len(ids)} rows for {n} events ({len(set(ids))} ids)"
    store = Store(root, format=2, maintain_commits=0)
    assert [e.data for e in store.event_log.recent(kinds=["tick"], limit=10 * n)] == list(range(n))
    store.close()


def test_concurrent_merges_and_maintenance_never_double_a_row(tmp_path: Any) -> None:
    """Two flusher merges (one in a merge child, one in its process) and a maintenance run, started at the
    same instant on a partition of small files, three rounds: each row stays in the table once."""
    root = str(tmp_path / "s")
    n = _small_files_store(root)
    for _round in range(3):
        outs = _rewrite_at_once(root, str(tmp_path), ["merge-child", "merge-here", "maintain"])
        _assert_each_event_once(root, n)
        files = DeltaTable(os.path.join(root, "tables", "events")).get_add_actions(flatten=True).num_rows
        assert files < FILES, f"no rewriter merged ({files} files; {outs})"
        # a rewriter that found the lock held did nothing, and said so (maintenance) or merges later
        assert sum(o.get("child_merges", 0) for o in outs) <= 1, outs
        store = Store(root, format=2, maintain_commits=0)
        table = store.event_table
        table._compact_small_files = lambda kinds: None  # type: ignore[method-assign]
        for _ in range(FILES):  # small files again for the next round
            for _ in range(EVENTS_PER_FILE):
                store.event_log.record("tick", n)
                n += 1
            table.flush()
        store.close()
    _assert_each_event_once(root, n)


def test_a_merge_waits_for_no_one_and_skips_while_maintenance_holds_the_lock(tmp_path: Any) -> None:
    """While ``maintenance.lock`` is held (a maintenance run, here or in another process), the flusher's
    merge leaves the small files as they are, without waiting (the flusher goes on committing); once it
    is free, the next merge merges them."""
    root = str(tmp_path / "s")
    n = _small_files_store(root)
    store = Store(root, format=2, maintain_commits=0)
    table = store.event_table
    with maintenance_lock(os.path.join(root, "maintenance.lock")) as held:
        assert held
        started = time.monotonic()
        table._merge_small(["tick"], in_child=True)
        assert time.monotonic() - started < 5
        assert len(table.delta.small_files("tick")) == FILES and table.child_merges == 0
    table._merge_small(["tick"], in_child=True)
    assert table.child_merges == 1 and len(table.delta.small_files("tick")) == 1
    store.close()
    _assert_each_event_once(root, n)


def test_with_the_commit_process_the_merger_still_merges_under_the_lock(tmp_path: Any) -> None:
    """Commits in the commit process (``AEG_COMMIT_PROCESS=1``) leave merging to the writer's merger
    thread (the commit child has no lease, and merged without the lock before): the partition is
    merged in a merge child, and every event is in the table once."""
    from .test_newest_rows import _log_past_a_merge

    root = str(tmp_path / "s")
    store = Store(root, format=2, flush_rows=EVENTS_PER_FILE, maintain_commits=0)
    table = store.event_table
    table.commit_process = True
    table.flush_seconds = 0.01
    n = EVENTS_PER_FILE * (COMPACT_AT + 5)
    _log_past_a_merge(store, n)
    assert table._committer is not None and table._committer.running  # the commits went through it
    store.close()  # waits for the merger (and its child)
    assert table.child_merges >= 1
    again = Store(root, format=2, maintain_commits=0)
    assert len(again.event_table.delta.small_files("tick")) <= COMPACT_AT + 1
    again.close()
    _assert_each_event_once(root, n)


def _group_nice(path: str) -> str:
    with open(path) as f:
        return f.read().split()[-1]  # "/autogroup-645 nice 19"


def test_children_start_at_the_lowest_priority_and_inherit_only_the_fds_given(tmp_path: Any) -> None:
    """``start_python``: the child runs at nice 19 from its first instruction and, on Linux with
    scheduler autogroups, its own session's group at nice 19 too (a nice counts only inside its group:
    without it a merge child beside a plot took half the cores); of the parent's fds it has only
    ``pass_fds`` (a merge child: the rewrite lock)."""
    from aeg_jupyter.storage.committer import start_python

    with maintenance_lock(str(tmp_path / "maintenance.lock")) as held:
        assert held
    fd = os.open(str(tmp_path / "maintenance.lock"), os.O_RDWR)
    other = os.open(str(tmp_path / "other"), os.O_RDWR | os.O_CREAT)
    try:
        child = start_python("aeg_jupyter.storage.committer", pass_fds=(fd,))
        try:
            deadline = time.monotonic() + 30  # (set by the child's first lines: a moment after the start)
            while os.getpriority(os.PRIO_PROCESS, child.pid) != 19 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert os.getpriority(os.PRIO_PROCESS, child.pid) == 19
            if not os.path.exists(f"/proc/{child.pid}"):
                return  # (no /proc: nothing more to look at here)
            group = f"/proc/{child.pid}/autogroup"
            if os.path.exists(group):
                while _group_nice(group) != "19" and time.monotonic() < deadline:
                    time.sleep(0.01)
                assert _group_nice(group) == "19"
            fds = set(map(int, os.listdir(f"/proc/{child.pid}/fd")))
            assert fd in fds and other not in fds
        finally:
            assert child.stdin is not None
            child.stdin.close()
            assert child.wait(60) == 0
            if child.stdout is not None:
                child.stdout.close()
    finally:
        os.close(fd)
        os.close(other)
