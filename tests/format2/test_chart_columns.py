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
