"""Charts: ``%aeg plot`` / ``%aeg compare`` through a real InteractiveShell, the series arithmetic of
core/series.py on real stores, and the escaping of user strings in figures.

Speed (100k events to a figure <= 300 ms, 1M <= 1 s) is measured in bench/run.py (`charts`), not here.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
import pyarrow as pa
import pytest
from IPython.core.error import UsageError

import aeg_jupyter
from aeg_jupyter import KernelContext
from aeg_jupyter.base.ids import new_ts_id, observe
from aeg_jupyter.base.models import ScopeFilter
from aeg_jupyter.core.series import (
    MAX_POINTS,
    LiveSeries,
    downsample,
    event_series,
    make_series,
    numbers,
    read_event_columns,
    smooth,
    values_of,
)
from aeg_jupyter.storage.layout import PartName
from aeg_jupyter.storage.schemas import EVENTS_SCHEMA
from aeg_jupyter.storage.schemas2 import EVENTS2_SCHEMA

EVIL = "<img src=x onerror=alert(1)>"


def aeg(ip: Any, line: str) -> Any:
    return ip.run_line_magic("aeg", line)


def ctx(ip: Any) -> KernelContext:
    return ip.user_ns["context"]


def record_run(context: KernelContext, losses: list[float], **extra: Any) -> str:
    log = context.store.event_log
    for step, loss in enumerate(losses):
        log.record("train_log", {"step": step, "loss": loss, **extra}, origin=context.origin)
    return context.run_id


def lines(fig: go.Figure) -> dict[str, go.Scatter]:
    """The solid lines of a figure by name (the faint raw lines of --smooth left out)."""
    return {t.name: t for t in fig.data if t.type == "scatter" and (t.opacity is None or t.opacity == 1)}


# -- %aeg plot over events ---------------------------------------------------------------------------
def test_plot_draws_one_line_per_run_with_the_recorded_values(ip: Any) -> None:
    first = record_run(ctx(ip), [1.0, 0.5, 0.25])
    ctx(ip).new_run("second")
    second = record_run(ctx(ip), [2.0, 1.5])
    fig = aeg(ip, "plot train_log --y loss")
    assert isinstance(fig, go.Figure)
    got = lines(fig)
    assert list(got) == [first, second]
    assert list(got[first].x) == [0, 1, 2] and list(got[first].y) == [1.0, 0.5, 0.25]
    assert list(got[second].y) == [2.0, 1.5]
    assert fig.layout.xaxis.title.text == "step"  # the step-like key is the default x
    data = fig.to_dict()["data"]  # the figure's dict holds the plotted numbers (typed arrays)
    assert len(data) == 2 and data[0]["name"] == first


def test_plot_x_is_time_without_a_step_key_and_any_key_with_x(ip: Any) -> None:
    log = ctx(ip).store.event_log
    for i in range(4):
        log.record("eval", {"acc": 0.5 + i / 10, "seen": 100 * i}, origin=ctx(ip).origin)
    fig = aeg(ip, "plot eval --y acc")
    assert fig.layout.xaxis.title.text == "time"
    assert np.asarray(fig.data[0].x).dtype.kind == "M"  # datetimes
    fig = aeg(ip, "plot eval --y acc --x seen")
    assert list(fig.data[0].x) == [0, 100, 200, 300] and fig.layout.xaxis.title.text == "seen"


def test_plot_reads_metrics_as_well_as_data(ip: Any) -> None:
    log = ctx(ip).store.event_log
    for i in range(3):
        log.record("train_log", {"step": i}, metrics={"grad_norm": 1.0 + i}, origin=ctx(ip).origin)
    fig = aeg(ip, "plot train_log --y grad_norm")
    assert list(fig.data[0].y) == [1.0, 2.0, 3.0]


def test_plot_by_a_label_draws_one_line_per_value(ip: Any) -> None:
    record_run(ctx(ip), [1.0, 0.9], opt="adam")
    record_run(ctx(ip), [1.0, 0.7, 0.6], opt="sgd")
    fig = aeg(ip, "plot train_log --y loss --by opt")
    got = lines(fig)
    assert sorted(got) == ["adam", "sgd"]
    assert list(got["sgd"].y) == [1.0, 0.7, 0.6]
    assert fig.layout.legend.title.text == "opt"


def test_plot_smooth_draws_the_rolling_mean_over_the_faint_raw_line(ip: Any) -> None:
    losses = [4.0, 2.0, 6.0, 0.0, 8.0]
    record_run(ctx(ip), losses)
    fig = aeg(ip, "plot train_log --y loss --smooth 2")
    solid = [t for t in fig.data if t.opacity is None]
    faint = [t for t in fig.data if t.opacity is not None and t.opacity < 1]
    assert list(solid[0].y) == [4.0, 3.0, 4.0, 3.0, 4.0]
    assert list(faint[0].y) == losses and faint[0].showlegend is False
    assert "mean of 2" in fig.layout.title.text


def test_plot_log_axis(ip: Any) -> None:
    record_run(ctx(ip), [1.0, 0.1, 0.01])
    assert aeg(ip, "plot train_log --y loss --log").layout.yaxis.type == "log"


def test_a_missing_metric_names_what_exists(ip: Any) -> None:
    record_run(ctx(ip), [1.0], lr=0.1, note="text")
    with pytest.raises(UsageError) as err:
        aeg(ip, "plot train_log --y accuracy")
    message = str(err.value)
    assert "'accuracy'" in message and "step, loss, lr" in message
    with pytest.raises(UsageError, match="event kinds: train_log"):
        aeg(ip, "plot train_lgo --y loss")
    with pytest.raises(UsageError, match="--y"):
        aeg(ip, "plot train_log")


def test_a_scope_limits_the_runs(ip: Any) -> None:
    record_run(ctx(ip), [1.0, 2.0])
    ctx(ip).new_run("now")
    mine = record_run(ctx(ip), [3.0])
    assert [t.name for t in aeg(ip, "plot train_log --y loss --scope run").data] == [mine]
    assert len(aeg(ip, "plot train_log --y loss --scope all").data) == 2


# -- %aeg plot over artifacts ---------------------------------------------------------------------------
def test_plot_artifacts_is_a_scatter_whose_points_carry_ids_and_labels(ip: Any) -> None:
    arts = ctx(ip).store.artifacts
    saved = [
        arts.save_json({"i": i}, kind="checkpoint", metrics={"val_acc": acc}, labels={"lr": lr, "exp": exp})
        for i, (acc, lr, exp) in enumerate([(0.8, 0.1, "A"), (0.9, 0.01, "A"), (0.7, 0.1, "B")])
    ]
    fig = aeg(ip, "plot checkpoint --y val_acc --x lr --by exp")
    by_name = {t.name: t for t in fig.data}
    assert sorted(by_name) == ["A", "B"]
    a = by_name["A"]
    assert a.mode == "markers" and list(a.x) == [0.1, 0.01] and list(a.y) == [0.8, 0.9]
    assert list(a.customdata) == [saved[0].artifact_id, saved[1].artifact_id]  # a selection gives the ids
    assert saved[0].short_id in a.text[0] and "lr=0.1" in a.text[0]
    # x defaults to a label; categorical labels become categories
    fig = aeg(ip, "plot checkpoint --y val_acc")
    assert fig.layout.xaxis.title.text == "exp" and sorted(set(fig.data[0].x)) == ["A", "B"]
    with pytest.raises(UsageError, match="metrics: val_acc; labels: exp, lr"):
        aeg(ip, "plot checkpoint --y loss --x lr")


def test_user_strings_in_figures_are_escaped(ip: Any) -> None:
    record_run(ctx(ip), [1.0, 0.5], opt=EVIL)
    arts = ctx(ip).store.artifacts
    arts.save_json(
        {}, kind="checkpoint", metrics={"val_acc": 0.5}, labels={"exp": EVIL, "lr": 0.1}, origin=ctx(ip).origin
    )
    figs = [
        aeg(ip, "plot train_log --y loss --by opt"),
        aeg(ip, "plot checkpoint --y val_acc --x exp --by exp"),
        aeg(ip, f"compare {ctx(ip).run_id} {ctx(ip).run_id}"),
    ]
    for fig in figs:
        text = pio.to_json(fig)
        decoded = json.loads(text)  # (to_json writes < as \u003c: look at the strings themselves)
        strings = json.dumps(decoded, ensure_ascii=False)
        assert EVIL not in strings
        assert "&lt;img src=x onerror=alert(1)&gt;" in strings


# -- %aeg compare ------------------------------------------------------------------------------------------
def test_compare_overlays_runs_and_lists_their_labels_and_metrics(ip: Any) -> None:
    arts = ctx(ip).store.artifacts
    a = record_run(ctx(ip), [1.0, 0.5, 0.2])
    arts.save_json({}, kind="config", labels={"lr": 0.1}, origin=ctx(ip).origin)
    ctx(ip).new_run("b")
    b = record_run(ctx(ip), [1.0, 0.8])
    arts.save_json({}, kind="config", labels={"lr": 0.01}, origin=ctx(ip).origin)
    fig = aeg(ip, f"compare {a} {b[:12]}")  # a unique prefix is enough
    curves = [t for t in fig.data if t.type == "scatter"]
    assert [t.name for t in curves] == [a, b]
    table = next(t for t in fig.data if t.type == "table")
    assert list(table.header.values) == ["", a, b]
    fields = list(table.cells.values[0])
    assert "lr" in fields and "last loss" in fields and "min loss" in fields
    assert table.cells.values[1][fields.index("lr")] == "0.1"
    assert table.cells.values[2][fields.index("last loss")] == "0.8"
    with pytest.raises(UsageError, match="two runs or more"):
        aeg(ip, f"compare {a}")
    with pytest.raises(UsageError, match="matches no run"):
        aeg(ip, f"compare {a} nosuchrun")


# -- core/series.py ---------------------------------------------------------------------------------------
def test_numbers_reads_flat_json_fast_and_everything_else_exactly() -> None:
    texts = pa.array(
        [
            '{"step": 1, "loss": 0.5}', '{"step": 2}', None, '{"a": {"loss": 9}, "loss": 3}', '{"loss":4}',
            '{"é": "x", "loss": -1e-3}', '{"loss": "0.5"}', '{"loss": true}', '{"loss": NaN}', "plain text",
            '{"x": ["loss"], "loss": 7}', '{"note": "\\"loss\\": 8", "loss": 5}', '{"loss": 2, "z": {"loss": 1}}',
        ]
    )  # fmt: skip
    got = numbers(texts, "loss")
    want = [0.5, None, None, 3.0, 4.0, -0.001, None, None, None, None, 7.0, 5.0, 2.0]
    assert [None if np.isnan(v) else float(v) for v in got] == want
    for i in range(len(want)):  # a slice of the array (its offsets start mid-buffer) reads the same
        assert [None if np.isnan(v) else float(v) for v in numbers(texts.slice(i), "loss")] == want[i:]
    # a nested row among rows that are not objects, a brace inside a string
    flat = pa.array(['{"step": 1, "loss": 0.5}', None, '{"step": 2, "loss": 0.25, "s": "}"}', '{"loss": 1}'])
    assert [None if np.isnan(v) else float(v) for v in numbers(flat, "loss")] == [0.5, None, 0.25, 1.0]
    mixed = pa.array(['"just a string"', '{"a": {"loss": 9}, "loss": 3}', "[1]", '{"b": 1, "loss": 4}'])
    assert [None if np.isnan(v) else float(v) for v in numbers(mixed, "loss")] == [None, 3.0, None, 4.0]


def test_numbers_of_a_long_column_parsed_on_threads_equal_a_row_by_row_decode() -> None:
    # long enough to be cut into slices parsed at once; odd rows on either side of each cut
    odd = ['{"a": {"loss": 9}, "loss": 3}', None, '{"loss":4}', '{"loss": "x"}', "plain", '{"x": [1], "loss": 7}']
    rows = [odd[i % 6] if i % 1_009 == 0 else f'{{"step": {i}, "loss": {1 / (1 + i)!r}}}' for i in range(450_000)]
    column = pa.chunked_array([pa.array(rows[:430_000]), pa.array(rows[430_000:])])
    want = []
    for raw in rows:
        value = json.loads(raw).get("loss") if raw and raw.startswith("{") else None
        want.append(float(value) if isinstance(value, (int, float)) else np.nan)
    np.testing.assert_array_equal(numbers(column, "loss"), np.array(want))
    np.testing.assert_array_equal(numbers(column.chunk(0), "loss"), np.array(want[:430_000]))


def test_downsampling_keeps_true_points_and_every_extreme() -> None:
    rng = np.random.default_rng(0)
    x = np.arange(1_000_000, dtype=np.float64)
    y = np.cumsum(rng.normal(size=len(x)))
    y[123_456] = 1e6  # a spike a plain stride would miss
    idx = downsample(x, y, MAX_POINTS)
    assert len(idx) <= MAX_POINTS
    assert idx[0] == 0 and idx[-1] == len(x) - 1 and bool(np.all(np.diff(idx) > 0))
    assert 123_456 in idx and int(np.argmin(y)) in idx
    # each 1/999 of the x range keeps its own min and max
    buckets = (MAX_POINTS - 2) // 2
    edges = np.linspace(0, len(x), buckets + 1).astype(int)
    for lo, hi in zip(edges[:-1:97], edges[1::97], strict=True):
        seg = y[lo:hi]
        kept = y[idx[(idx >= lo) & (idx < hi)]]
        assert seg.max() in kept and seg.min() in kept


def test_smoothing_is_a_trailing_mean() -> None:
    assert smooth(np.array([1.0, 3.0, 5.0, 7.0]), 3).tolist() == [1.0, 2.0, 3.0, 5.0]
    s = make_series("a", np.array([3.0, 1.0, 2.0]), np.array([30.0, 10.0, 20.0]), smooth_points=2)
    assert s.x.tolist() == [1.0, 2.0, 3.0] and s.y.tolist() == [10.0, 15.0, 25.0]


def _write_events_part(context: KernelContext, n: int, run_id: str) -> None:
    """``n`` train_log events as one Parquet part (format 1) or one Delta commit (format 2), written
    through the storage layer's own writer."""
    table = context.store.event_table
    ts0, _ = new_ts_id()
    ts = ts0 - n + np.arange(n, dtype=np.int64)
    steps = np.arange(n)
    loss = 1.0 / (1.0 + steps) + np.sin(steps / 5000.0) * 0.01
    cols = {
        "event_id": pa.array([f"{i:026d}" for i in range(n)]),
        "ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
        "topic": pa.nulls(n, pa.string()),
        "run_id": pa.array([run_id] * n),
        "graph_id": pa.array(["g"] * n),
        "node_id": pa.nulls(n, pa.string()),
        "text": pa.array(
            [f'{{"step": {s}, "loss": {v!r}}}' for s, v in zip(steps.tolist(), loss.tolist(), strict=True)]
        ),
        "inputs": pa.nulls(n, pa.string()),
        "outputs": pa.nulls(n, pa.string()),
        "metrics": pa.nulls(n, pa.string()),
        "tags": pa.nulls(n, pa.string()),
        "severity": pa.array(np.full(n, 2, np.int32)),
        "stage": pa.nulls(n, pa.string()),
        "version": pa.array(np.ones(n, np.int32)),
    }
    if context.store.format == 2:
        typed = {"inputs", "outputs", "metrics", "tags"}  # JSON text in format 1, typed (null here) in format 2
        cols = {k: v for k, v in cols.items() if k not in typed} | {"kind": pa.array(["train_log"] * n)}
        cols = {f.name: cols.get(f.name, pa.nulls(n, f.type)) for f in EVENTS2_SCHEMA}  # not set here: nulls
        assert table.delta.commit(pa.table(cols, schema=EVENTS2_SCHEMA), app_id="testwriter", seq=0)
        return
    cols = {f.name: cols.get(f.name, pa.nulls(n, f.type)) for f in EVENTS_SCHEMA}  # columns not set here: nulls
    part = pa.table(cols, schema=EVENTS_SCHEMA)
    pdir = table.layout.partition_dir("events", "train_log")
    os.makedirs(pdir, exist_ok=True)
    table.write_part_file(part, os.path.join(pdir, str(PartName(int(ts[-1]), "testwriter", 0))))


def test_a_million_event_series_is_downsampled_for_the_browser(ip: Any) -> None:
    n = 1_000_000
    _write_events_part(ctx(ip), n, "run-big")
    record_run(ctx(ip), [0.5])  # plus one spooled event of this kernel's run
    fig = aeg(ip, "plot train_log --y loss")
    big = lines(fig)["run-big"]
    assert len(big.x) <= MAX_POINTS
    # the kept points are true points: loss at step s is exactly what was stored
    steps = np.asarray(big.x, dtype=np.int64)
    want = 1.0 / (1.0 + steps) + np.sin(steps / 5000.0) * 0.01
    assert np.array_equal(np.asarray(big.y), want)
    assert steps[0] == 0 and steps[-1] == n - 1
    assert len(lines(fig)[ctx(ip).run_id].y) == 1


def test_reading_only_the_charts_columns_keeps_scopes_groups_and_takes_a_spooled_row_once(
    context: KernelContext,
) -> None:
    """Parts are read for a chart's columns only: scope filters and ``--by`` columns still hold, and
    a row both in a spool and in a part (a writer that died between the two) counts once."""
    log, table = context.store.event_log, context.store.event_table
    table.flush_seconds = 3600  # the flusher commits nothing by itself: the spooled rows below stay spooled
    record_run(context, [1.0, 0.5])
    table.flush()  # these two are in a part only
    other = aeg_jupyter.connect(context.store.root, graph_id="other-graph")
    try:
        other.new_run("elsewhere")
        record_run(other, [7.0])
        other.store.event_table.flush()
    finally:
        other.close()
    log.catch_up()
    # Delta's statistics hold milliseconds, so a part's newest time is read as up to 999 us later
    # than it is: the spooled rows are stamped 2 ms after the flush, past every part's newest time.
    # (Through the logical clock, not a sleep: an earlier test in this process may have moved it
    # ahead of the wall clock, and then stamps are 1 us apart whatever the wall clock does.)
    observe(new_ts_id()[0] + 2_000)
    for step, loss in ((2, 0.25), (3, 0.125)):  # spooled ...
        log.record("train_log", {"step": step, "loss": loss}, origin=context.origin)
    spooled = [r for p in table.spool_paths(include_own=True) for r in table.read_spool(p)[0]]
    assert len(spooled) == 2
    table.write_parts(spooled, "deadwriter", 0)  # ... and in a part as well
    cols = read_event_columns(log, "train_log")
    assert len(cols) == 5
    assert cols.column("event_id").null_count == 3  # the parts older than every spooled row: no ids read
    assert sorted(values_of(cols, "loss").tolist()) == [0.125, 0.25, 0.5, 1.0, 7.0]
    by_graph = event_series(log, "train_log", y="loss", by="graph")
    assert {s.name: s.y.tolist() for s in by_graph.series} == {
        "tests": [1.0, 0.5, 0.25, 0.125], "other-graph": [7.0]
    }  # fmt: skip
    there = event_series(log, "train_log", y="loss", where=ScopeFilter(graph_id="other-graph"))
    assert [s.y.tolist() for s in there.series] == [[7.0]]
    assert read_event_columns(log, "train_log", ids=True).column("event_id").null_count == 0


# -- live series ------------------------------------------------------------------------------------------
def test_live_series_takes_only_new_events(context: KernelContext) -> None:
    record_run(context, [1.0, 0.5])
    live = LiveSeries(context.store.event_log, "train_log", y="loss")
    assert live.count == 2 and live.reloads == 1
    log = context.store.event_log
    log.record("train_log", {"step": 2, "loss": 0.25}, origin=context.origin)
    log.record("other", {"loss": 99.0}, origin=context.origin)
    assert live.update() == 1 and live.update() == 0
    s = live.series_set().series[0]
    assert s.y.tolist() == [1.0, 0.5, 0.25] and live.reloads == 1
    # more events than the hot window holds between two updates, some flushed to Parquet meanwhile:
    # only the new rows are read (this writer's part and spool), nothing lost, nothing twice
    n = 2 * log.hot.limit + 10
    for step in range(3, 3 + n):
        log.record("train_log", {"step": step, "loss": 1.0 / step}, origin=context.origin)
        if step == 3 + n // 2:
            context.store.event_table.flush()
    assert live.update() == n
    assert live.reloads == 1 and live.count == 3 + n
    full = event_series(log, "train_log", y="loss", max_points=0).series[0]
    assert np.array_equal(live.series_set(max_points=0).series[0].y, full.y)
    assert np.array_equal(live.series_set(max_points=0).series[0].x, full.x)
    assert len(read_event_columns(log, "train_log")) == live.count


def test_live_series_of_one_run_past_the_hot_window_matches_a_full_read(context: KernelContext) -> None:
    """Past the hot window a live series reads the new rows as columns: its scope, a y that is a metric
    (not in data) and another kind's rows in between all come out as a full read gives them."""
    import dataclasses

    log = context.store.event_log
    mine = context.new_run("mine")
    log.record("train_log", {"step": 0, "loss": 1.0}, metrics={"acc": 0.0}, origin=context.origin)
    scope = ScopeFilter(run_id=mine)
    live = {y: LiveSeries(log, "train_log", y=y, where=scope) for y in ("loss", "acc")}
    theirs = dataclasses.replace(context.origin, run_id="theirs")  # out of the live series' scope
    n = 3 * log.hot.limit
    for step in range(1, n):
        origin = theirs if step % 3 == 0 else context.origin
        log.record("train_log", {"step": step, "loss": 1.0 / step}, metrics={"acc": step / n}, origin=origin)
        log.record("other", {"loss": 99.0}, origin=origin)
        if step == n // 3:
            context.store.event_table.flush()
    for y, series in live.items():
        assert series.update() == n - 1 - (n - 1) // 3 and series.reloads == 1
        full = event_series(log, "train_log", y=y, max_points=0, where=scope).series[0]
        got = series.series_set(max_points=0).series[0]
        assert len(full.y) == n - (n - 1) // 3
        assert np.array_equal(got.y, full.y) and np.array_equal(got.x, full.x), y
        assert series.update() == 0


def test_live_series_past_the_hot_window_misses_no_row_committed_while_it_reads(context: KernelContext) -> None:
    """A commit landing while a live series reads past the hot window (after it listed the data files)
    moves rows out of this writer's uncommitted ones: they are still taken, each once, and a graph- and
    node-scoped series leaves other nodes' rows out."""
    import dataclasses

    log, table = context.store.event_log, context.store.event_table
    if not hasattr(table, "pending_rows"):
        pytest.skip("format 1 has no background commits")
    table.flush_seconds = 3600  # commits only when the test says
    node = dataclasses.replace(context.origin, node_id="train")
    elsewhere = dataclasses.replace(context.origin, node_id="eval")
    log.record("train_log", {"step": 0, "loss": 1.0}, origin=node)
    everything = LiveSeries(log, "train_log", y="loss")
    scope = ScopeFilter(graph_id=context.origin.graph_id, node_id="train")
    scoped = LiveSeries(log, "train_log", y="loss", where=scope)
    n = 3 * log.hot.limit
    for step in range(1, n):
        log.record("train_log", {"step": step, "loss": 1.0 / step}, origin=elsewhere if step % 4 == 0 else node)
    real = table.list_parts

    def list_then_commit(kinds=None):  # the flusher's commit lands right after the listing
        parts = real(kinds)
        table.flush()
        return parts

    table.list_parts = list_then_commit
    try:
        assert everything.update() == n - 1
    finally:
        table.list_parts = real
    assert scoped.update() == n - 1 - (n - 1) // 4
    for series, where in ((everything, ScopeFilter()), (scoped, scope)):
        full = event_series(log, "train_log", y="loss", max_points=0, where=where).series[0]
        got = series.series_set(max_points=0).series[0]
        assert np.array_equal(got.y, full.y) and np.array_equal(got.x, full.x)
        assert series.update() == 0


# -- the panel's Charts tab (widget state, no browser) ------------------------------------------------------
def _panel(context: KernelContext, **kw: Any) -> Any:
    from aeg_jupyter.frontends.panel import Panel

    return Panel(context, tab="charts", **kw)


def test_charts_tab_draws_the_chosen_runs(context: KernelContext) -> None:
    first = record_run(context, [1.0, 0.5, 0.25])
    context.new_run("b")
    second = record_run(context, [2.0, 1.0])
    panel = _panel(context)
    tab = panel.charts_tab
    try:
        assert tab.kind.value == "train_log" and tab.metric.value == "loss"  # not the step
        assert set(tab.runs.value) == {first, second}
        assert {t.name: list(t.y) for t in tab.figure.data} == {first: [1.0, 0.5, 0.25], second: [2.0, 1.0]}
        tab.runs.value = (second,)
        assert [t.name for t in tab.figure.data] == [second]
        tab.smooth.value = 2
        solid = [t for t in tab.figure.data if t.opacity is None]
        assert [list(t.y) for t in solid] == [[2.0, 1.5]]
        tab.log_y.value = True
        assert tab.figure.layout.yaxis.type == "log"
        assert "1 of 2 runs" in tab.note.value
    finally:
        panel.close()


def test_a_live_record_adds_a_point_to_the_chart(context: KernelContext) -> None:
    """While a loop records, each coalesced redraw appends the new points (here on a running event loop)."""
    import asyncio

    record_run(context, [1.0, 0.5])
    log = context.store.event_log

    async def loop() -> tuple[list[float], list[float], int]:
        panel = _panel(context, live_interval=0.25)
        tab = panel.charts_tab
        try:
            before = list(tab.figure.data[0].y)
            log.record("train_log", {"step": 2, "loss": 0.25}, origin=context.origin)
            for _ in range(40):  # at most ~1 s
                await asyncio.sleep(0.025)
                if len(tab.figure.data[0].y) == 3:
                    break
            return before, list(tab.figure.data[0].y), tab.live.reloads if tab.live else -1
        finally:
            panel.close()

    before, after, reloads = asyncio.run(loop())
    assert before == [1.0, 0.5] and after == [1.0, 0.5, 0.25]
    assert reloads == 1  # taken from the hot window, not by reading the store again


def test_a_live_redraw_takes_new_kinds_from_the_hot_window_and_refresh_lists_the_store(
    context: KernelContext, store_root: str
) -> None:
    """A live redraw (this kernel's writes) does not list the data files: a kind this kernel records
    shows at once; one another process committed shows on Refresh (which lists the store again)."""
    from tests.conftest import run_child

    record_run(context, [1.0, 0.5])
    log = context.store.event_log
    panel = _panel(context, live_interval=0.0)  # every write redraws, in the writing call
    tab = panel.charts_tab
    try:
        run_child(
            f"""
            import aeg_jupyter
            ctx = aeg_jupyter.connect({store_root!r}, graph_id="other")
            ctx.store.event_log.record("their_kind", {{"step": 0, "v": 1.0}}, origin=ctx.origin)
            ctx.close()
            """
        )
        renders = panel.renders
        log.record("my_kind", {"step": 0, "v": 2.0}, origin=context.origin)
        assert panel.renders == renders + 1
        assert list(tab.kind.options) == ["my_kind", "train_log"] and tab.kind.value == "train_log"
        log.record("train_log", {"step": 2, "loss": 0.25}, origin=context.origin)
        assert list(tab.figure.data[0].y) == [1.0, 0.5, 0.25] and tab.live is not None and tab.live.reloads == 1
        panel.refresh()
        assert list(tab.kind.options) == ["my_kind", "their_kind", "train_log"]
    finally:
        panel.close()


def test_writes_between_live_redraws_cost_the_listener_only(context: KernelContext) -> None:
    """Within the live interval a write only notes its table: no redraw until the interval has passed,
    then one redraw for all of them; a tab switch takes the writes in too (the tab shown is drawn)."""
    record_run(context, [1.0])
    log = context.store.event_log
    panel = _panel(context, live_interval=3600.0)
    tab = panel.charts_tab
    try:
        renders = panel.renders
        log.record("train_log", {"step": 1, "loss": 0.5}, origin=context.origin)  # none drawn yet: at once
        assert panel.renders == renders + 1 and len(tab.figure.data[0].y) == 2
        for step in range(2, 200):
            log.record("train_log", {"step": step, "loss": 1.0 / step}, origin=context.origin)
        assert panel.renders == renders + 1 and len(tab.figure.data[0].y) == 2
        panel.show("memory")  # the writes since the last redraw make every tab stale
        panel.show("charts")
        assert len(tab.figure.data[0].y) == 200
        panel.live_interval = 0.0
        log.record("train_log", {"step": 200, "loss": 0.001}, origin=context.origin)
        assert len(tab.figure.data[0].y) == 201
    finally:
        panel.close()


def test_selecting_leaderboard_artifacts_selects_their_runs_and_highlights_them(context: KernelContext) -> None:
    arts = context.store.artifacts
    a_run = record_run(context, [1.0, 0.5])
    a = arts.save_json(
        {}, kind="checkpoint", labels={"lr": 0.1, "opt": EVIL}, metrics={"val_acc": 0.8}, origin=context.origin
    )
    context.new_run("b")
    record_run(context, [2.0])
    arts.save_json(
        {}, kind="checkpoint", labels={"lr": 0.01, "opt": "sgd"}, metrics={"val_acc": 0.9}, origin=context.origin
    )
    panel = _panel(context)
    tab = panel.charts_tab
    try:
        panel.show("leaderboard")  # the leaderboard picks its kind and metric
        panel.show("charts")
        par = tab.parallel.data[0]
        assert [d["label"] for d in par.dimensions] == ["lr", "opt", "val_acc"]
        assert "&lt;img src=x onerror=alert(1)&gt;" in par.dimensions[1]["ticktext"]
        assert EVIL not in json.dumps(tab.parallel.to_dict(), ensure_ascii=False)
        tab.select_artifacts([a.artifact_id])
        assert tab.runs.value == (a_run,)
        assert [t.name for t in tab.figure.data] == [a_run]
        par = tab.parallel.data[0]
        assert list(par.line.color) == [1.0, 0.0] or list(par.line.color) == [0.0, 1.0]
        assert "1 selected on the leaderboard" in tab.compare_note.value
    finally:
        panel.close()


def test_ticking_leaderboard_rows_selects_their_runs_in_the_charts_tab(ip: Any) -> None:
    """The panel of ``%aeg panel`` in a real shell: each leaderboard row has a checkbox; ticking rows
    selects their runs in the Charts tab (and highlights them), across redraws; none ticked: the newest runs."""
    context = ctx(ip)
    arts = context.store.artifacts
    a_run = record_run(context, [1.0, 0.5])
    a = arts.save_json({}, kind="checkpoint", labels={"lr": 0.1}, metrics={"val_acc": 0.8}, origin=context.origin)
    context.new_run("b")
    b_run = record_run(context, [2.0, 1.5, 1.0])
    b = arts.save_json({}, kind="checkpoint", labels={"lr": 0.01}, metrics={"val_acc": 0.9}, origin=context.origin)
    panel = aeg(ip, "panel")
    lb, charts = panel.leaderboard_tab, panel.charts_tab
    try:
        assert [r.artifact_id for r in lb.rows] == [b.artifact_id, a.artifact_id]
        row_of = {r.artifact_id: r for r in lb.rows}
        assert all(r.box.children[0] is r.select and not r.select.value for r in lb.rows)
        row_of[a.artifact_id].select.value = True  # what a click in the browser sets
        assert lb.selected == [a.artifact_id] and charts.selected_artifacts == [a.artifact_id]
        panel.show("charts")
        assert [t.name for t in charts.figure.data] == [a_run]
        assert charts.runs.value == (a_run,)
        assert "1 selected on the leaderboard" in charts.compare_note.value
        panel.show("leaderboard")
        row_of[b.artifact_id].select.value = True
        assert lb.selected == [b.artifact_id, a.artifact_id]  # best first
        panel.show("charts")
        assert {t.name for t in charts.figure.data} == {a_run, b_run}
        # a better artifact re-ranks the rows: the ticks follow their artifacts, not the row positions
        panel.show("leaderboard")
        c = arts.save_json({}, kind="checkpoint", labels={"lr": 0.2}, metrics={"val_acc": 0.95}, origin=context.origin)
        panel.refresh()
        assert [r.artifact_id for r in lb.rows] == [c.artifact_id, b.artifact_id, a.artifact_id]
        assert [r.select.value for r in lb.rows] == [False, True, True]
        for r in lb.rows:
            r.select.value = False
        assert lb.selected == [] and charts.selected_artifacts == []
        panel.show("charts")
        assert {t.name for t in charts.figure.data} == {a_run, b_run}  # the newest runs again
        assert "selected on the leaderboard" not in charts.compare_note.value
    finally:
        panel.close()


def test_leaderboard_rows_picked_before_the_charts_tab_was_ever_drawn(context: KernelContext) -> None:
    a_run = record_run(context, [1.0, 0.5])
    a = context.store.artifacts.save_json({}, kind="checkpoint", metrics={"val_acc": 0.8}, origin=context.origin)
    context.new_run("b")
    record_run(context, [2.0])
    panel = _panel(context)
    try:
        panel.show("leaderboard")
        panel.leaderboard_tab.select([a.artifact_id])
        panel.show("charts")
        assert [t.name for t in panel.charts_tab.figure.data] == [a_run]
    finally:
        panel.close()


def test_a_new_run_joins_the_curves_unless_runs_were_chosen(context: KernelContext) -> None:
    first = record_run(context, [1.0, 0.5])
    context.new_run("b")
    second = record_run(context, [2.0])
    panel = _panel(context)
    tab = panel.charts_tab
    try:
        context.new_run("c")
        third = record_run(context, [3.0])
        panel.refresh()
        assert {t.name for t in tab.figure.data} == {first, second, third}  # the newest runs, the new one too
        tab.runs.value = (first,)  # a choice (the browser sets it so)
        context.new_run("d")
        record_run(context, [4.0])
        panel.refresh()
        assert [t.name for t in tab.figure.data] == [first]  # kept when another run appears
        assert tab.runs.value == (first,)
    finally:
        panel.close()
