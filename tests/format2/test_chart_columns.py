"""A chart's read of a format-2 store: only the columns asked for, metrics text as the full read
gives it, and rows of a Delta file out of time order come out in time order (issue 18's 1M plot)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

import aeg_jupyter
from aeg_jupyter.core.series import EventColumns, event_series, read_event_columns


def test_part_reads_only_the_asked_columns_with_the_same_metrics_text(tmp_path: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv("AEG_STORE_FORMAT", "2")  # Delta files are the subject
    ctx = aeg_jupyter.connect(str(tmp_path / "store"))
    log = ctx.store.event_log
    for i in range(50):
        metrics = {"acc": i / 100, "f1": 0.5} if i % 3 == 0 else None
        log.record("train_log", {"step": i, "loss": 1 / (1 + i)}, metrics=metrics, origin=ctx.origin)
    ctx.store.event_table.flush()
    table = ctx.store.event_table
    parts = table.list_parts(["train_log"])
    assert parts
    for part in parts:
        full = table.read_part_table(part)
        some = table.read_part_table(part, columns=["ts", "metrics", "text"])
        assert some.column_names == ["ts", "metrics", "text"]
        for name in some.column_names:
            assert some.column(name).to_pylist() == full.column(name).to_pylist()
    texts = [t for p in parts for t in table.read_part_table(p, columns=["metrics"]).column(0).to_pylist()]
    assert len(texts) == 50 and sum(t is not None for t in texts) == 17 and '{"acc": 0.03, "f1": 0.5}' in texts
    s = event_series(log, "train_log", y="acc")
    assert s.series[0].count == 17 and list(s.series[0].x[:3]) == [0.0, 3.0, 6.0]
    ctx.close()


def test_rows_out_of_time_order_come_out_in_time_order() -> None:
    ts = [30, 10, 20, 40]
    raw = pa.table(
        {
            "ts": pa.array(ts, pa.int64()),
            "run_id": ["b", "a", "a", None],
            "text": [f'{{"step": {t}, "loss": {t / 10}}}' for t in ts],
            "metrics": ["{}"] * 4,
        }
    )
    cols = EventColumns(raw, np.argsort(np.array(ts), kind="stable"))
    assert list(cols.ts) == [10, 20, 30, 40]
    assert list(cols.numbers("text", "loss")) == [1.0, 2.0, 3.0, 4.0]
    codes, values = cols.codes("run_id")
    assert [values[c] if c >= 0 else None for c in codes] == ["a", "a", "b", None]
    assert cols.table.column("ts").to_pylist() == [10, 20, 30, 40]
    assert cols.column("run_id").to_pylist() == ["a", "a", "b", None]
    assert cols.sample("text")[0] == '{"step": 10, "loss": 1.0}'


def test_a_store_read_in_threads_keeps_every_event_once(tmp_path: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv("AEG_STORE_FORMAT", "2")  # Delta files are the subject
    ctx = aeg_jupyter.connect(str(tmp_path / "store"))
    log = ctx.store.event_log
    for k in range(4):  # four Delta files, then rows still spooled
        for i in range(k * 25, k * 25 + 25):
            log.record("train_log", {"step": i, "loss": float(i)}, origin=ctx.origin)
        ctx.store.event_table.flush()
    for i in range(100, 110):
        log.record("train_log", {"step": i, "loss": float(i)}, origin=ctx.origin)
    cols = read_event_columns(log, "train_log")
    assert len(cols) == 110
    assert list(cols.numbers("text", "step")) == [float(i) for i in range(110)]
    assert bool(np.all(np.diff(cols.ts) > 0))
    ctx.close()


def _texts(n: int, start: int = 0) -> list[str]:
    return [f'{{"step": {i}, "loss": {1 / (1 + i)!r}}}' for i in range(start, start + n)]


def test_numbers_of_a_data_file_are_cut_once_and_kept(tmp_path: Any, monkeypatch: Any) -> None:
    """A plot drawn again parses only the rows of data files it has not seen (a data file never
    changes); a file of another size or time (or another scope) is not taken for it, and the
    numbers come out the same either way, in time order."""
    from aeg_jupyter.core import series

    monkeypatch.setenv("AEG_STORE_FORMAT", "2")
    monkeypatch.setattr(series, "_NUMBERS", series._NumbersCache(series.NUMBERS_CACHE_BYTES))
    ctx = aeg_jupyter.connect(str(tmp_path / "store"))
    log = ctx.store.event_log
    for i in range(30):
        log.record("train_log", {"step": i, "loss": 1 / (1 + i)}, origin=ctx.origin)
        if i % 10 == 9:
            ctx.store.event_table.flush()  # three data files
    for i in range(30, 35):
        log.record("train_log", {"step": i, "loss": 1 / (1 + i)}, origin=ctx.origin)  # spooled
    parsed: list[int] = []
    real = series.numbers
    monkeypatch.setattr(series, "numbers", lambda text, key: parsed.append(len(text)) or real(text, key))
    first = event_series(log, "train_log", y="loss").series[0]
    assert sorted(parsed) == [5, 5, 10, 10, 10, 10, 10, 10]  # loss and step: 3 files and the spool
    parsed.clear()
    again = event_series(log, "train_log", y="loss").series[0]
    assert parsed == [5, 5]  # only the spooled rows
    assert list(again.x) == list(first.x) == list(range(35)) and list(again.y) == list(first.y)
    parsed.clear()
    run = ctx.origin.run_id
    assert event_series(log, "train_log", y="loss", where=series.ScopeFilter(run_id=run)).series[0].count == 35
    assert sorted(parsed) == [5, 5, 10, 10, 10, 10, 10, 10]  # another scope: other rows, parsed anew
    ctx.close()


def test_numbers_of_big_and_small_files_at_once() -> None:
    """Spans of a big file (cut on the pool's threads itself) beside small ones give the numbers of
    the whole column, cached or not, without a thread of the pool waiting for the pool."""
    from aeg_jupyter.core import series

    big, small = series._PARALLEL_ROWS + 10, 7
    texts = _texts(big) + _texts(small, big) + _texts(small, big + small)
    cols = EventColumns(pa.table({"text": pa.array(texts)}), spans=[("big", big), ("a", small), (None, small)])
    want = series.numbers(pa.array(texts), "loss")
    assert np.array_equal(cols.numbers("text", "loss"), want)
    assert np.array_equal(cols.numbers("text", "loss"), want)  # the big and "a" from the cache
    cached = series._NUMBERS.get(("big", "text", "loss"))
    assert cached is not None and not cached.flags.writeable and len(cached) == big
    many = [(f"s{i}", 60_000) for i in range(4)]  # small files only: cut on the threads at once
    texts = _texts(240_000)
    cols = EventColumns(pa.table({"text": pa.array(texts)}), spans=many)
    assert np.array_equal(cols.numbers("text", "step"), np.arange(240_000, dtype=np.float64))


def test_the_numbers_cache_keeps_to_its_size() -> None:
    from aeg_jupyter.core.series import _NumbersCache

    cache = _NumbersCache(1000)
    for i in range(5):
        cache.put(i, np.zeros(50))  # 400 bytes each
    assert cache.bytes <= 1000 and cache.get(0) is None and cache.get(4) is not None
    cache.get(3)  # used: kept over 4 when the next comes
    cache.put(5, np.zeros(50))
    assert cache.get(3) is not None and cache.get(4) is None
    cache.put("huge", np.zeros(1000))  # bigger than the whole cache: not kept
    assert cache.get("huge") is None and cache.bytes <= 1000
