"""The format-2 background flusher (storage/delta_table.py): a record only appends to the spool; a thread
commits closed spools in seq order with the idempotent (writer, seq) transaction, every flush_rows rows or
flush_seconds, and on close; a failed commit is kept and retried; a SIGKILL at any step of the thread's
commit loses nothing and doubles nothing. Real stores in tmp_path, real Delta tables, real child processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from conftest import run_child, spawn_child
from deltalake import DeltaTable

from aeg_jupyter.core.store import Store
from aeg_jupyter.storage.delta_table import DeltaSpoolTable


def _event_ids(root: str) -> list[str]:
    path = os.path.join(root, "tables", "events")
    if not DeltaTable.is_deltatable(path):
        return []
    return DeltaTable(path).to_pyarrow_table(columns=["event_id"]).column(0).to_pylist()


def _wait_for(cond: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _spools(root: str, writer: str) -> list[str]:
    return sorted(n for n in os.listdir(os.path.join(root, "spool", writer)) if n.startswith("events-"))


def test_a_record_never_waits_for_the_commit_and_readers_see_uncommitted_rows(tmp_path: Any) -> None:
    root = str(tmp_path / "s")
    with Store(root, format=2, flush_rows=10, hot_limit=5) as store:
        table = store.event_table
        assert isinstance(table, DeltaSpoolTable)
        in_commit, release = threading.Event(), threading.Event()

        def hold(step: str, seq: int) -> None:
            if step == "committing" and seq == 0:
                in_commit.set()
                release.wait(60)

        table.on_flush_step = hold
        first = [store.event_log.record("log", {"i": i}).event_id for i in range(10)]
        assert in_commit.wait(30), "the flusher did not take the full spool"
        # the commit of seq 0 is held: records go on into seq 1, none waits for it
        started = time.monotonic()
        more = [store.event_log.record("log", {"i": i}).event_id for i in range(10, 60)]
        assert time.monotonic() - started < 20 and not release.is_set()
        assert _event_ids(root) == []  # nothing committed yet
        assert {r["event_id"] for r in table.pending_rows} == set(first + more)
        assert "events-000000.jsonl" in _spools(root, store.writer)  # the closed spool is kept until its commit
        # this process reads its own uncommitted rows (hot window of 5: the rest by the cold scan)
        assert [e.event_id for e in store.event_log.recent(kinds=["log"], limit=100)] == first + more
        release.set()
        store.flush()
        ids = _event_ids(root)
        assert sorted(ids) == sorted(first + more) and len(ids) == 60
        assert DeltaTable(table.dir).transaction_version(store.writer) == table._seq - 1
        assert table.pending_rows == [] and table.flush_error is None


def test_the_flusher_commits_after_flush_seconds_and_restores_the_switch_interval(tmp_path: Any) -> None:
    root = str(tmp_path / "s")
    interval = sys.getswitchinterval()
    with Store(root, format=2) as store:
        store.event_table.flush_seconds = 0.2
        ids = [store.event_log.record("log", {"i": i}).event_id for i in range(3)]
        _wait_for(lambda: len(_event_ids(root)) == 3, "the timed commit")  # no flush() called
        assert sorted(_event_ids(root)) == sorted(ids)
        _wait_for(lambda: store.event_table.pending_rows == [], "the committed rows to leave pending_rows")
        assert "events-000000.jsonl" not in _spools(root, store.writer)
        assert sys.getswitchinterval() == interval
        # and again for rows that come later
        later = store.event_log.record("log", {"i": 3}).event_id
        _wait_for(lambda: later in _event_ids(root), "the second timed commit")
    assert sorted(_event_ids(root)) == sorted([*ids, later])


def test_the_flusher_commits_every_flush_rows_in_seq_order(tmp_path: Any) -> None:
    root = str(tmp_path / "s")
    with Store(root, format=2, flush_rows=20) as store:
        table = store.event_table
        table.flush_seconds = 3600  # only the row count triggers
        seqs: list[int] = []
        table.on_flush_step = lambda step, seq: seqs.append(seq) if step == "committed" else None
        ids = [store.event_log.record("log", {"i": i}).event_id for i in range(45)]
        _wait_for(lambda: bool(seqs), "a commit at flush_rows")
        assert len(_event_ids(root)) >= 20
        assert seqs == sorted(seqs) == list(range(len(seqs)))
    assert sorted(_event_ids(root)) == sorted(ids)  # close committed the rest, each row once
    assert seqs == list(range(len(seqs)))


def _spy_on_freeing(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the threads that free committed rows with ``_free_gradually`` from now on."""
    from aeg_jupyter.storage import delta_table

    monkeypatch.setattr(delta_table, "IDLE_FREE_SECONDS", 0.3)
    freed_on: list[str] = []
    real = delta_table._free_gradually

    def spy(rows: list[dict[str, Any]], step: int = 100) -> None:
        freed_on.append(threading.current_thread().name)
        real(rows, step)

    monkeypatch.setattr(delta_table, "_free_gradually", spy)
    return freed_on


def test_committed_rows_are_freed_by_the_appends_and_once_idle_by_the_flusher(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The flusher frees no committed row while appends come (each freeing step was a GIL wait for the next
    `record`): one append in DRAIN_EVERY frees DRAIN_ROWS, the backlog stays bounded, and once no append
    comes for IDLE_FREE_SECONDS the flusher frees what is left, rows still waiting for their commit or
    not. Nothing is lost on the way."""
    freed_on = _spy_on_freeing(monkeypatch)
    root = str(tmp_path / "s")
    with Store(root, format=2, flush_rows=400, hot_limit=10) as store:
        table = store.event_table
        assert isinstance(table, DeltaSpoolTable)
        table.flush_seconds = 3600  # only the row count triggers a commit
        commits: list[int] = []
        table.on_flush_step = lambda step, seq: commits.append(seq) if step == "committed" else None
        ids, backlog = [], []
        for i in range(3000):
            ids.append(store.event_log.record("log", {"i": i}).event_id)
            if i % 400 == 399 and i > 400:  # the spool before the one just filled is committed meanwhile
                _wait_for(lambda i=i: len(commits) >= (i + 1) // 400 - 1, "a commit at flush_rows")
            backlog.append(sum(len(rows) for rows in table._dead))
        assert len(commits) >= 6
        assert freed_on == []  # while appends came, the flusher freed nothing itself
        assert max(backlog) > 0  # committed rows were handed to the appends ...
        assert max(backlog) <= 3 * 400  # ... which keep the backlog within a few spools
        # no more appends, 200 rows wait for a commit that only close makes: the flusher frees the dead rows
        _wait_for(lambda: table._dead == [], "the idle flusher's freeing", timeout=5)
        assert freed_on and all(name.startswith("aeg-flush") for name in freed_on)
        assert table.pending_rows, (commits, len(table.pending_rows))  # rows still wait for a commit
        assert [e.data["i"] for e in store.event_log.recent(kinds=["log"], limit=3000)] == list(range(3000))
    assert sorted(_event_ids(root)) == sorted(ids)


def test_sparse_appends_leave_no_committed_rows_behind(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A notebook that records now and then: each commit holds a few rows, which the flusher frees at once
    (too few appends come to free them), so committed rows never pile up in ``_dead``."""
    freed_on = _spy_on_freeing(monkeypatch)
    root = str(tmp_path / "s")
    with Store(root, format=2) as store:
        table = store.event_table
        assert isinstance(table, DeltaSpoolTable)
        table.flush_seconds = 0.1
        commits: list[int] = []
        table.on_flush_step = lambda step, seq: commits.append(seq) if step == "committed" else None
        for i in range(40):  # faster than IDLE_FREE_SECONDS apart, so the idle freeing never comes
            store.event_log.record("log", {"i": i})
            time.sleep(0.02)
            assert table._dead == []
        _wait_for(lambda: len(_event_ids(root)) == 40, "the sparse rows' commits")
        assert len(commits) >= 3 and table._dead == []
        assert freed_on and all(name.startswith("aeg-flush") for name in freed_on)


def test_a_failed_commit_keeps_the_spool_is_retried_and_shows_its_error(tmp_path: Any) -> None:
    root = str(tmp_path / "s")
    with Store(root, format=2) as store:
        table = store.event_table
        table.flush_seconds = 0.05
        first = store.event_log.record("log", {"i": 0}).event_id
        _wait_for(lambda: _event_ids(root) == [first], "the first commit")
        _wait_for(lambda: table.commits >= 1 and not table.pending_rows, "the first commit to finish")
        # the table directory is replaced by a file: a real failure of the next commits
        away = table.dir + ".away"
        os.rename(table.dir, away)
        with open(table.dir, "w") as f:
            f.write("not a table")
        ids = [store.event_log.record("log", {"i": i}).event_id for i in range(1, 6)]
        _wait_for(lambda: table.flush_error is not None, "the flusher to report its failed commit")
        assert "could not commit" in str(table.flush_error) and "spool" in str(table.flush_error)
        assert os.path.exists(os.path.join(root, "spool", store.writer, "events-000001.jsonl"))
        assert {r["event_id"] for r in table.pending_rows} == set(ids)
        assert len(store.event_log.recent(kinds=["log"], limit=10)) == 6
        os.remove(table.dir)
        os.rename(away, table.dir)
        _wait_for(lambda: table.flush_error is None and len(_event_ids(root)) == 6, "the retried commit", 90)
        assert sorted(_event_ids(root)) == sorted([first, *ids])
        assert "events-000001.jsonl" not in _spools(root, store.writer)


def test_rows_recorded_without_close_are_committed_at_exit(tmp_path: Any) -> None:
    root = str(tmp_path / "s")
    proc = run_child(
        """
        import sys
        from aeg_jupyter.core.store import Store
        store = Store(sys.argv[1], format=2)
        store.event_table.flush_seconds = 3600
        for i in range(30):
            print(store.event_log.record("log", {"i": i}).event_id)
        """,
        root,
    )
    acked = proc.stdout.split()
    assert len(acked) == 30
    assert sorted(_event_ids(root)) == sorted(acked)
    assert os.listdir(os.path.join(root, "spool")) == []  # the writer's spool went with a clean exit


KILLED_IN_THE_FLUSHER = """
import os, random, signal, sys, threading, time
from aeg_jupyter.core.store import Store
root, when = sys.argv[1], sys.argv[2]
store = Store(root, format=2, flush_rows=25)
table = store.event_table
table.flush_seconds = 3600
print("writer", store.writer, flush=True)

def die():
    os.kill(os.getpid(), signal.SIGKILL)

def step(name, seq):
    if seq != 1:
        return
    if when == "mid" and name == "committing":  # somewhere inside write_deltalake, or just after it
        threading.Timer(random.uniform(0.0, 0.06), die).start()
    elif name == when:
        die()

table.on_flush_step = step
for i in range(100):
    print(store.event_log.record("log", {"i": i}).event_id, flush=True)
while True:  # (however the flusher's first rotation fell, seq 1 fills up too) until the flusher kills us
    print(store.event_log.record("log", {"i": -1}).event_id, flush=True)
    time.sleep(0.01)
"""


@pytest.mark.parametrize("when", ["rotated", "committing", "mid", "committed"])
def test_sigkill_in_the_flushers_commit_loses_and_doubles_nothing(tmp_path: Any, when: str) -> None:
    root = str(tmp_path / "s")
    proc = spawn_child(KILLED_IN_THE_FLUSHER, root, when)
    try:
        out, err = proc.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    assert proc.returncode == -signal.SIGKILL, err
    lines = out.split("\n")
    writer = lines[0].split()[1]
    acked = [x for x in lines[1:] if x]
    assert len(acked) >= 26  # seq 0 (committed) and at least one row of seq 1
    committed = DeltaTable(os.path.join(root, "tables", "events")).transaction_version(writer)
    if when in ("rotated", "committing"):
        assert committed == 0  # died before seq 1's commit: its spool holds the rows
    elif when == "committed":
        assert committed == 1  # died after the commit, before the spool's removal
    if when != "mid":
        assert "events-000001.jsonl" in _spools(root, writer)
    for _ in range(2):  # recovery, then an open with nothing left to do
        with Store(root, format=2) as store:
            seen = [e.event_id for e in store.event_log.recent(kinds=["log"], limit=1000)]
            assert len(seen) == len(set(seen)) and set(acked) <= set(seen)
    ids = _event_ids(root)
    assert len(ids) == len(set(ids))  # nothing twice
    assert set(acked) <= set(ids)  # nothing acknowledged lost
    assert len(set(ids) - set(acked)) <= 1  # at most the row whose id the child had no time to print
    assert not os.path.exists(os.path.join(root, "spool", writer))


def test_a_table_without_background_commits_only_on_flush(tmp_path: Any) -> None:
    root = str(tmp_path / "s")
    with Store(root, format=2) as store:
        store.event_table.background = False
        store.event_table.flush_seconds = 0.01
        ids = [store.event_log.record("log", {"i": i}).event_id for i in range(3)]
        time.sleep(0.3)
        assert store.event_table._thread is None and _event_ids(root) == []
        store.flush()
        assert sorted(_event_ids(root)) == sorted(ids)


@pytest.mark.parametrize("mode", [None, "0", "1"])
def test_the_flusher_commits_on_its_thread_or_in_the_commit_process(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, mode: str | None
) -> None:
    # the default (and AEG_COMMIT_PROCESS=0) commits on the flusher thread; AEG_COMMIT_PROCESS=1 in a child
    if mode is None:
        monkeypatch.delenv("AEG_COMMIT_PROCESS", raising=False)
    else:
        monkeypatch.setenv("AEG_COMMIT_PROCESS", mode)
    root = str(tmp_path / "s")
    with Store(root, format=2) as store:
        store.event_table.flush_seconds = 0.05
        ids = [store.event_log.record("log", {"i": i}).event_id for i in range(5)]
        ids.append(store.event_log.record("log", "x", tags=["t"], metrics={"m": 1}, stage="s").event_id)
        _wait_for(lambda: len(_event_ids(root)) == 6, "the background commit")
        committer = store.event_table._committer
        assert (committer is not None and committer.running) == (mode == "1")
        if committer is not None and committer._proc is not None:
            # background work: the child runs niced, so it never takes a core from a `record` (the tail budget)
            assert os.getpriority(os.PRIO_PROCESS, committer._proc.pid) == min(
                19, os.getpriority(os.PRIO_PROCESS, 0) + 19
            )
        assert sorted(_event_ids(root)) == sorted(ids)
        # the rows show once the commit is in the log, a moment before the flusher counts it
        _wait_for(lambda: store.event_table.commits >= 1, "the flusher's count of its commit")


def test_recovery_commits_spools_in_seq_order_past_six_digits(tmp_path: Any) -> None:
    # a long-lived writer rotates every 2 s: seq 1,000,000 comes after 23 days; a dead writer's spools
    # 999999 and 1000000 must both be recognized and committed in that order ((writer, seq) skips a seq
    # at or below the newest committed one)
    root = str(tmp_path / "s")
    proc = run_child(
        """
        import os, signal, sys
        from aeg_jupyter.core.store import Store
        store = Store(sys.argv[1], format=2)
        table = store.event_table
        table.background = False
        table._seq = 999_999
        for i in range(3):
            print(store.event_log.record("log", {"i": i}).event_id, flush=True)
        table._rotate()  # closes events-999999, opens events-1000000
        for i in range(3, 5):
            print(store.event_log.record("log", {"i": i}).event_id, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        """,
        root,
        check=False,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    acked = proc.stdout.split()
    (writer,) = os.listdir(os.path.join(root, "spool"))
    assert _spools(root, writer) == ["events-1000000.jsonl", "events-999999.jsonl"]
    with Store(root, format=2) as store:
        assert [e.event_id for e in store.event_log.recent(kinds=["log"], limit=10)] == acked
    assert sorted(_event_ids(root)) == sorted(acked)
    assert DeltaTable(os.path.join(root, "tables", "events")).transaction_version(writer) == 1_000_000


def test_status_shows_a_failed_background_commit(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from aeg_jupyter import connect
    from aeg_jupyter.frontends.commands.runs import store_status

    monkeypatch.setenv("AEG_STORE_FORMAT", "2")
    ctx = connect(str(tmp_path / "s"))
    try:
        table = ctx.store.event_table
        table.flush_seconds = 0.05
        ctx.store.event_log.record("log", {"i": 0})
        _wait_for(lambda: len(_event_ids(ctx.store.root)) == 1, "the first commit")
        assert "flush " not in str(store_status(ctx))
        # a file where the new kind's partition directory goes: that commit fails, reads still work
        blocker = os.path.join(table.dir, "kind=other")
        with open(blocker, "w") as f:
            f.write("in the way")
        ctx.store.event_log.record("other", {"i": 1})
        _wait_for(lambda: table.flush_error is not None, "the failed commit")
        status = str(store_status(ctx))
        lines = [ln for ln in status.splitlines() if ln.startswith("flush ")]
        assert len(lines) == 1 and "events: could not commit" in lines[0] and "retried" in lines[0], status
        assert "events     2" in status  # the uncommitted event is counted (it is in the spool)
        os.remove(blocker)
        _wait_for(lambda: table.flush_error is None and len(_event_ids(ctx.store.root)) == 2, "the retry", 90)
        assert "flush " not in str(store_status(ctx))
    finally:
        ctx.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice is Linux's")
def test_the_flushers_parse_runs_at_the_lowest_priority_and_lowers_nothing_else(tmp_path: Any) -> None:
    # storage/priority.py: the spool's parse (nobody waits on it) runs on one thread at nice 19, serially;
    # no other thread is lowered: deltalake's tokio threads serve the notebook's reads too
    from aeg_jupyter.storage import delta_table, priority

    base = os.getpriority(os.PRIO_PROCESS, 0)
    if base >= priority.LOWEST or not delta_table.YIELDING:
        pytest.skip("this process already runs at the lowest priority")
    parsed_on: list[tuple[int, int]] = []
    real = delta_table.spool_to_arrow

    def spy(*args: Any) -> Any:
        tid = threading.get_native_id()
        parsed_on.append((tid, os.getpriority(os.PRIO_PROCESS, tid)))
        return real(*args)

    root = str(tmp_path / "s")
    delta_table.spool_to_arrow = spy  # type: ignore[assignment]
    try:
        with Store(root, format=2, flush_rows=50) as store:
            store.event_table.commit_process = False
            ids = [store.event_log.record("log", "x" * 100, metrics={"i": i}).event_id for i in range(120)]
            _wait_for(lambda: len(_event_ids(root)) >= 100 and parsed_on, "background commits")
            flusher = store.event_table._thread
            assert flusher is not None
            lowered = {int(t) for t in os.listdir("/proc/self/task") if os.getpriority(os.PRIO_PROCESS, int(t)) > base}
        assert sorted(_event_ids(root)) == sorted(ids)  # parsed there, committed whole
    finally:
        delta_table.spool_to_arrow = real  # type: ignore[assignment]
    # (a loaded machine may fold both spools into one commit: one parse or more)
    assert parsed_on and all(nice == priority.LOWEST for _tid, nice in parsed_on)
    yield_tids = {tid for tid, _ in parsed_on}
    assert len(yield_tids) == 1 and flusher.native_id not in yield_tids
    # the parse started no thread (one would inherit nice 19): the lowered thread is the parse's alone
    assert lowered == yield_tids


def test_run_yielding_raises_the_calls_error_and_a_forked_child_gets_its_own_thread() -> None:
    from aeg_jupyter.storage.priority import run_yielding

    assert run_yielding(sum, [1, 2, 3]) == 6
    with pytest.raises(ZeroDivisionError):
        run_yielding(divmod, 1, 0)
    pid = os.fork()
    if pid == 0:  # the parent's executor thread is not in the child: it must not wait for it forever
        code = 0 if run_yielding(sum, [2, 2]) == 4 else 1
        os._exit(code)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            assert os.waitstatus_to_exitcode(status) == 0
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    raise AssertionError("run_yielding hung in a forked child")
