"""`record`'s fast path (a kind and data only, EventLog._record): the row, its spool line and the hot
window are what the general path (event_row, HotWindow.add) makes, on both formats (issue 18, the
`record` budget)."""

from __future__ import annotations

import gc
import json
import os

import pytest

from aeg_jupyter.base.errors import InvalidInputError
from aeg_jupyter.base.ids import new_ts_id
from aeg_jupyter.base.models import Provenance
from aeg_jupyter.core.store import Store
from aeg_jupyter.storage.schemas import event_row, optional_json

TEXTS = ["plain", 'with "quotes", \\ backslash, \n newline, \x00 nul, \u2028 and ünïcode 模型', ""]


def _spool_lines(store: Store) -> list[str]:
    table = store.event_table
    path = table.layout.spool_file(table.writer, table.spec.name, table._seq)
    with open(path, encoding="utf-8") as f:
        return [x + "\n" for x in f.read().split("\n")[:-1]]  # (not splitlines: U+2028 is in a line)


@pytest.mark.parametrize("fmt", [1, 2])
def test_fast_path_line_and_row_equal_event_rows(tmp_path, fmt):
    store = Store(str(tmp_path / "s"), format=fmt, flush_rows=10**6)
    if fmt == 2:
        store.event_table.background = False  # the rows stay in the open spool to be read back
    origin = Provenance(run_id="r1", cell_id="c/1", execution_count=3)
    fields = {"run_id": "r1", "cell_id": "c/1", "execution_count": 3}
    data = [{"step": 1, "note": TEXTS[1]}, TEXTS[1], TEXTS[2], 5, [1.5, None]]
    events = [store.event_log.record('kind "q" ü', d, origin=origin) for d in data]
    events.append(store.event_log.record("plain_kind", "no origin"))
    lines = _spool_lines(store)
    rows = store.event_table.pending_rows
    assert len(lines) == len(rows) == len(events)
    for ev, line, row in zip(events, lines, rows, strict=True):
        o = fields if ev.kind != "plain_kind" else {}
        want_row, want_line = event_row(
            ev.event_id, row["ts"], ev.kind, 2, (o, optional_json(o)), ev.text, None, None, None, None, None, None
        )
        assert line == want_line and row == want_row  # byte for byte what the general path writes
        assert json.loads(line) == row
    assert [e.data for e in events[:5]] == data
    assert events[0].run_id == "r1" and events[0].execution_count == 3 and events[-1].run_id is None
    # the hot window holds them newest last, each once, and answers recent() with them
    assert [e.event_id for e in store.event_log.recent(limit=10)] == [e.event_id for e in events]
    store.close()
    reopened = Store(str(tmp_path / "s"), format=fmt)
    assert [e.text for e in reopened.event_log.recent(limit=10)] == [e.text for e in events]
    reopened.close()


@pytest.mark.parametrize("fmt", [1, 2])
def test_fast_path_after_a_newer_stamp_and_past_the_window(tmp_path, fmt):
    """An event stamped after ours already in the window (another writer's) goes through HotWindow.add,
    and the window is trimmed to its limit as before."""
    store = Store(str(tmp_path / "s"), format=fmt, hot_limit=5)
    log = store.event_log
    for i in range(23):
        log.record("k", {"i": i})
    assert len(log.hot.items) <= 10 and [e.data["i"] for e in log.recent(limit=5)] == [18, 19, 20, 21, 22]
    items = log.hot.items
    # an event in the window stamped a second ahead of our clock (another writer's, not observed):
    # our next record is older than it and takes HotWindow.add's sorted insert, not the append
    ts_ahead = new_ts_id()[0] + 1_000_000
    ahead = dict(items[-1], event_id="7ZZZZZZZZZZZZZZZZZZZZZZZZZ", ts=ts_ahead)
    log.hot.add(ahead)
    ours = log.record("k", {"i": "ours"})
    assert items[-1] is ahead and items[-2]["event_id"] == ours.event_id
    assert log.recent(limit=2)[0] == ours  # the Event built from the window's row equals the one record returned
    keys = [(r["ts"], r["event_id"]) for r in items]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    store.close()


@pytest.mark.parametrize("fmt", [1, 2])
def test_fast_path_refuses_surrogates_and_keeps_the_spool_whole(tmp_path, fmt):
    store = Store(str(tmp_path / "s"), format=fmt)
    store.event_log.record("k", "first")
    with pytest.raises(InvalidInputError, match="surrogate"):
        store.event_log.record("k", "bad \ud800 text")
    with pytest.raises(InvalidInputError, match="surrogate"):
        store.event_log.record("k", {"bad": "\udfff"})
    store.event_log.record("k", "second")
    lines = _spool_lines(store) if fmt == 1 or store.event_table._fd is not None else []
    assert all(json.loads(x) for x in lines)
    assert [e.text for e in store.event_log.recent(limit=5)] == ["first", "second"]
    store.close()
    reopened = Store(str(tmp_path / "s"), format=fmt)
    assert [e.text for e in reopened.event_log.recent(limit=5)] == ["first", "second"]
    reopened.close()
    assert not os.path.exists(str(tmp_path / "s" / "corrupt"))


class _InterruptedOnce(list):  # a pending-rows list whose next append is interrupted, as by Ctrl-C
    armed = True

    def append(self, row):  # type: ignore[no-untyped-def]
        if self.armed:
            self.armed = False
            raise KeyboardInterrupt
        super().append(row)


def test_an_interrupt_under_the_record_locks_releases_them(tmp_path):
    # the locks are taken by acquire() and released in a finally (not `with`: the `record` budget)
    import threading

    from aeg_jupyter.base import ids

    store = Store(str(tmp_path / "s"), format=2)
    log, table = store.event_log, store.event_table
    log.record("k", "first")  # the spool is open: the next append takes the table lock's path
    table._pending = _InterruptedOnce(table._pending)
    with pytest.raises(KeyboardInterrupt):
        log.record("k", "interrupted")
    assert not table._lock.locked() and not ids._lock.locked()
    got: list[bool] = []

    def take_guard() -> None:
        took = store.guard.lock.acquire(timeout=5)
        got.append(took)
        if took:
            store.guard.lock.release()

    other = threading.Thread(target=take_guard)
    other.start()
    other.join()
    assert got == [True]  # the guard (an RLock) is free for another thread
    log.record("k", "second")
    assert [e.text for e in log.recent(limit=5)][-1] == "second"
    store.close()


@pytest.mark.parametrize("fmt", [1, 2])
def test_the_window_holds_nothing_the_gc_tracks(tmp_path, fmt):
    """The hot window keeps rows (str/int values: dicts the gc does not track), not Events: a logging loop
    leaves no object for the collector to promote, so no full collection is ever due to it (issue 18,
    `record`'s max latency: each full pass walked the whole process)."""
    store = Store(str(tmp_path / "s"), format=fmt, hot_limit=500, flush_rows=10**6)
    if fmt == 2:
        store.event_table.background = False  # no flusher thread allocating beside the loop
    log = store.event_log
    for i in range(200):
        log.record("warm", {"i": i})
    log.record("tool_result", None, topic="t", outputs=[{"name": "x", "kind": "number", "value": 1}])
    gc.collect()
    gc.disable()
    try:
        before = len(gc.get_objects())
        for i in range(3000):  # the window fills past 2 * hot_limit and is trimmed
            log.record("train_log", {"step": i, "loss": 1 / (i + 1)})
        grown = len(gc.get_objects()) - before
    finally:
        gc.enable()
    assert grown < 50, f"{grown} gc-tracked objects kept by 3,000 records"
    assert not any(gc.is_tracked(r) for r in log.hot.items) and 500 <= len(log.hot.items) <= 1000
    assert [e.data["step"] for e in log.recent(kinds="train_log", limit=3)] == [2997, 2998, 2999]
    assert log.last_by_name("x") == 1
    store.close()


@pytest.mark.parametrize("fmt", [1, 2])
def test_event_ts_is_ts_to_iso_of_the_row_across_seconds(tmp_path, fmt, monkeypatch):
    # `_record` formats ev.ts itself, its second's text cached: it must equal ts_to_iso of the stored stamp,
    # on both paths, also when a second (and the cache) changes between records
    from aeg_jupyter.base import ids
    from aeg_jupyter.base.ids import observe
    from aeg_jupyter.base.times import iso_to_us, ts_to_iso

    # the process clock moves 6 s ahead below: put it back after the test (later tests compare stamps with
    # the wall clock, e.g. `gc --older-than 0s`; this store's stamps are gone with it)
    monkeypatch.setattr(ids, "_last_us", ids._last_us)
    monkeypatch.setattr(ids, "_last_ms", ids._last_ms)

    store = Store(str(tmp_path / "s"), format=fmt, flush_rows=10**6)
    if fmt == 2:
        store.event_table.background = False
    log = store.event_log
    events = []
    for i in range(6):
        events.append(log.record("k", {"i": i}))  # fast path
        events.append(log.record("k", i, tags=["t"]))  # general path
        observe(new_ts_id()[0] + 1_000_000 - 3)  # the next stamps land in the next second
    rows = {r["event_id"]: r["ts"] for r in store.event_table.pending_rows}
    seconds = set()
    for ev in events:
        assert ev.ts == ts_to_iso(rows[ev.event_id])
        assert iso_to_us(ev.ts) == rows[ev.event_id]
        seconds.add(rows[ev.event_id] // 1_000_000)
    assert len(seconds) >= 6
    assert [r.event_id for r in log.recent(limit=12)] == [e.event_id for e in events]
    store.close()


def test_the_window_takes_a_row_once_in_order_and_skips_what_it_no_longer_holds() -> None:
    """HotWindow.add finds a held row by its (ts, id) in the sorted rows: a row seen twice (tailed from a
    spool, then read from the part it went to) is held once, late rows go in order, and once trimmed the
    window skips rows older than what it holds."""
    from aeg_jupyter.core.hotwindow import HotWindow

    def row(ts: int, eid: str) -> dict[str, object]:
        return {"event_id": eid, "ts": ts, "kind": "k", "severity": 2, "version": 1, "text": "{}"}

    hot = HotWindow(limit=3)
    for ts, eid in ((10, "A"), (30, "C"), (20, "B"), (30, "C"), (20, "B"), (20, "A2"), (10, "A")):
        hot.add(row(ts, eid))
    assert [(r["ts"], r["event_id"]) for r in hot.items] == [(10, "A"), (20, "A2"), (20, "B"), (30, "C")]
    assert hot.complete
    for ts in range(40, 80, 10):
        hot.add(row(ts, f"N{ts}"))
    assert not hot.complete and len(hot.items) <= 6
    oldest = hot.items[0]["ts"]
    hot.add(row(oldest - 1, "OLD"))  # older than the trimmed window: skipped
    hot.add(row(hot.items[-1]["ts"], hot.items[-1]["event_id"]))  # the newest again: held once
    keys = [(r["ts"], r["event_id"]) for r in hot.items]
    assert keys == sorted(set(keys)) and "OLD" not in {k[1] for k in keys}
