"""The panel's logic without a browser: set widget values, click buttons, assert on what it shows.

Also the core queries behind it (:mod:`aeg_jupyter.core.leaderboard`, :mod:`aeg_jupyter.core.browse`) and the
store's change listeners that make it live.
"""

from __future__ import annotations

import asyncio
import os
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pandas as pd
import pytest
from conftest import REPO, run_child

import aeg_jupyter
from aeg_jupyter import InvalidInputError, KernelContext
from aeg_jupyter.core.browse import find_artifacts, parse_label_filter, preview
from aeg_jupyter.core.leaderboard import label_keys, leaderboard, ranked

widgets = pytest.importorskip("ipywidgets")
from aeg_jupyter.base.html import html_table  # noqa: E402
from aeg_jupyter.frontends.panel import Panel  # noqa: E402

HOSTILE = "<img src=x onerror=alert(1)>"


def png_bytes(width: int = 4, height: int = 3, rgb: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    """A valid RGB PNG, made without Pillow."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def save_ckpt(ctx: KernelContext, exp: str, val_acc: float, loss: float, **labels: Any) -> aeg_jupyter.Artifact:
    return ctx.store.artifacts.save_json(
        {"exp": exp}, kind="checkpoint", labels={"exp": exp, **labels}, metrics={"val_acc": val_acc, "loss": loss},
        name=f"ckpt-{exp}-{val_acc}.json", origin=ctx.origin,
    )  # fmt: skip


@pytest.fixture
def sweep(context: KernelContext) -> KernelContext:
    """Five checkpoints over three experiments; val_acc and loss rank them differently."""
    save_ckpt(context, "A", 0.90, 0.30)
    save_ckpt(context, "A", 0.93, 0.35)
    save_ckpt(context, "B", 0.95, 0.40)
    save_ckpt(context, "B", 0.80, 0.10)
    save_ckpt(context, "C", 0.85, 0.20)
    return context


@pytest.fixture
def panel(sweep: KernelContext) -> Iterator[Panel]:
    p = Panel(sweep, kind="checkpoint", metric="val_acc")
    yield p
    p.close()


def shown_names(p: Panel) -> list[str]:
    return list(p.leaderboard_tab.frame["name"])


def all_html(root: Any) -> str:
    """Every HTML string the panel would send to the browser (HTML widgets and leaderboard rows)."""
    out, stack = [], [root]
    while stack:
        w = stack.pop()
        if isinstance(w, widgets.HTML):
            out.append(w.value)
        stack.extend(getattr(w, "children", ()) or ())
    return "\n".join(out)


# -- core: leaderboard -----------------------------------------------------------------------------
def test_leaderboard_ranks_by_metric_and_mode(sweep: KernelContext) -> None:
    index = sweep.store.artifacts
    df = leaderboard(index, kind="checkpoint", metric="val_acc")
    assert list(df["metric.val_acc"]) == [0.95, 0.93, 0.90, 0.85, 0.80]
    assert list(df["rank"]) == [1, 2, 3, 4, 5]
    assert list(df.columns[:3]) == ["rank", "short_id", "artifact_id"]
    assert df["short_id"][0] == df["artifact_id"][0][-8:]
    assert df["age"].dtype.kind == "m" and (df["age"] >= pd.Timedelta(0)).all()
    low = leaderboard(index, kind="checkpoint", metric="loss", mode="min", limit=2)
    assert list(low["metric.loss"]) == [0.10, 0.20]


def test_leaderboard_best_per_label(sweep: KernelContext) -> None:
    save_ckpt(sweep, "D", 0.99, 0.5)
    sweep.store.artifacts.save_json({}, kind="checkpoint", metrics={"val_acc": 1.0}, origin=sweep.origin)  # no exp
    df = leaderboard(sweep.store.artifacts, kind="checkpoint", metric="val_acc", group_by="exp")
    assert list(df["label.exp"]) == ["D", "B", "A", "C"]
    assert list(df["metric.val_acc"]) == [0.99, 0.95, 0.93, 0.85]
    assert [a.labels["exp"] for a in ranked(sweep.store.artifacts, kind="checkpoint", metric="val_acc", group_by="exp", limit=2)] == ["D", "B"]  # fmt: skip


def test_leaderboard_scope_labels_and_stable_columns(sweep: KernelContext) -> None:
    index = sweep.store.artifacts
    other = aeg_jupyter.connect(sweep.store.root, graph_id="other")
    save_ckpt(other, "Z", 0.999, 0.0)
    assert leaderboard(index, kind="checkpoint", metric="val_acc", where=sweep.scope("run"))["label.exp"][0] == "B"
    assert leaderboard(index, kind="checkpoint", metric="val_acc")["label.exp"][0] == "Z"
    assert list(leaderboard(index, kind="checkpoint", metric="val_acc", labels={"exp": "A"})["label.exp"]) == ["A", "A"]
    empty = leaderboard(index, kind="checkpoint", metric="f1", group_by="team")
    assert empty.empty and {"rank", "short_id", "metric.f1", "label.team"} <= set(empty.columns)
    assert label_keys(index, kind="checkpoint") == ["exp"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"metric": ""}, "metric must be a metric name"),
        ({"metric": "val_acc", "mode": "best"}, "mode must be 'max' or 'min'"),
        ({"metric": "val_acc", "limit": -1}, "limit must be a non-negative integer"),
        ({"metric": "val_acc", "group_by": ""}, "label names must be non-empty strings"),
    ],
)
def test_leaderboard_bad_input(sweep: KernelContext, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        leaderboard(sweep.store.artifacts, kind="checkpoint", **kwargs)


# -- core: change listeners --------------------------------------------------------------------------
def test_store_listeners_hear_every_local_write(context: KernelContext) -> None:
    heard: list[str] = []
    stop = context.store.subscribe(heard.append)
    art = context.store.artifacts.save_text("x", origin=context.origin)
    context.store.event_log.record("note", "hi", origin=context.origin)
    context.store.artifacts.pin(art)
    stop()
    context.store.event_log.record("note", "unheard")
    assert heard == ["artifacts", "events", "ops"]


def test_a_failing_listener_never_fails_the_write(context: KernelContext) -> None:
    def broken(_table: str) -> None:
        raise RuntimeError("boom")

    context.store.subscribe(broken)
    with pytest.warns(RuntimeWarning, match="listener failed"):
        ev = context.store.event_log.record("note", "still stored")
    assert context.store.event_log.recent(limit=1)[0].event_id == ev.event_id


# -- leaderboard tab ----------------------------------------------------------------------------------
def test_dropdowns_are_filled_from_the_store(panel: Panel) -> None:
    assert list(panel.leaderboard_tab.kind.options) == ["checkpoint"]
    assert list(panel.leaderboard_tab.metric.options) == ["loss", "val_acc"]
    assert panel.leaderboard_tab.metric.value == "val_acc"
    assert [v for _, v in panel.leaderboard_tab.group.options] == ["", "exp"]


def test_changing_metric_mode_group_and_limit_reranks(panel: Panel) -> None:
    assert shown_names(panel)[0] == "ckpt-B-0.95.json"
    panel.leaderboard_tab.metric.value = "loss"
    assert panel.leaderboard_tab.mode.value == "min"  # a loss: lower is better, without being told
    assert list(panel.leaderboard_tab.frame["metric.loss"]) == [0.10, 0.20, 0.30, 0.35, 0.40]
    panel.leaderboard_tab.mode.value = "max"
    assert list(panel.leaderboard_tab.frame["metric.loss"]) == [0.40, 0.35, 0.30, 0.20, 0.10]
    panel.leaderboard_tab.mode.value = "min"
    assert shown_names(panel)[0] == "ckpt-B-0.8.json"
    panel.leaderboard_tab.group.value = "exp"
    assert list(panel.leaderboard_tab.frame["label.exp"]) == ["B", "C", "A"]
    panel.leaderboard_tab.limit.value = 2
    assert len(panel.leaderboard_tab.rows) == 2 and len(panel.leaderboard_tab.body.children) == 2
    panel.leaderboard_tab.group.value = ""
    panel.leaderboard_tab.mode.value = "max"
    panel.leaderboard_tab.metric.value = "val_acc"
    assert shown_names(panel) == ["ckpt-B-0.95.json", "ckpt-A-0.93.json"]


def test_table_rows_show_rank_id_labels_metrics_run_age_and_highlight_the_best(panel: Panel) -> None:
    rows = panel.leaderboard_tab.rows
    assert len(rows) == 5
    first, second = rows[0].cells.value, rows[1].cells.value
    best = panel.leaderboard_tab.frame.iloc[0]
    for text in (best["short_id"], "ckpt-B-0.95.json", "0.95", "0.4", ">B<", panel.context.run_id, "0s"):
        assert text in first
    assert "aeg-best" in first and "aeg-best" not in second
    assert all(
        h in panel.leaderboard_tab.header.value for h in ("#", "id", "name", "val_acc", "loss", "exp", "run", "age")
    )
    assert rows[0].artifact_id == best["artifact_id"]


def test_pin_toggle_pins_the_rows_artifact(panel: Panel) -> None:
    row = panel.leaderboard_tab.rows[1]
    target = row.artifact_id
    assert target is not None and not row.pin.value
    row.pin.value = True
    assert panel.artifacts.get(target).pinned
    assert panel.leaderboard_tab.frame.set_index("artifact_id").loc[target, "pinned"]
    row.pin.value = False
    assert not panel.artifacts.get(target).pinned


def test_empty_store_and_kind_without_metrics_say_what_to_do(context: KernelContext) -> None:
    p = Panel(context)
    assert "No artifacts yet" in p.leaderboard_tab.note.value and p.leaderboard_tab.rows == []
    context.store.artifacts.save_text("notes", kind="report", origin=context.origin)
    p.refresh()
    assert p.leaderboard_tab.kind.value == "report" and "has metrics to rank by" in p.leaderboard_tab.note.value
    p.close()


@contextmanager
def other_kernel(store_root: str, name: str, val_acc: float) -> Iterator[None]:
    """Another process (a second kernel) that saves a checkpoint and stays open until the block ends."""
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    code = f"""
import sys, aeg_jupyter
ctx = aeg_jupyter.connect({store_root!r}, graph_id="elsewhere")
ctx.store.artifacts.save_json({{}}, kind="checkpoint", labels={{"exp": "E"}}, metrics={{"val_acc": {val_acc}}},
                              name={name!r}, origin=ctx.origin)
print("saved", flush=True)
sys.stdin.read()
ctx.close()
"""
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "saved"
        yield
    finally:
        proc.communicate("", timeout=60)


def test_refresh_button_shows_another_process_write(panel: Panel, store_root: str) -> None:
    with other_kernel(store_root, "from-child.json", 0.999):
        assert shown_names(panel)[0] != "from-child.json"
        panel.refresh_button.click()
        assert shown_names(panel)[0] == "from-child.json"
        assert not panel.refresh_button.disabled


# -- live updates ---------------------------------------------------------------------------------------
def test_a_save_in_this_kernel_reranks_within_a_second(sweep: KernelContext) -> None:
    async def scenario() -> None:
        # (an interval of 1 s, not the default 0.25: on a slow machine the second save could
        # otherwise come after it, and be drawn at once)
        p = Panel(sweep, kind="checkpoint", metric="val_acc", live_interval=1.0)
        save_ckpt(sweep, "NEW", 0.97, 0.1)  # no live redraw lately: drawn at once, in the writing call
        assert shown_names(p)[0] == "ckpt-NEW-0.97.json"
        save_ckpt(sweep, "NEWER", 0.98, 0.1)  # right after that redraw: one is scheduled on the loop
        assert shown_names(p)[0] == "ckpt-NEW-0.97.json"
        deadline = time.monotonic() + 3
        while shown_names(p)[0] != "ckpt-NEWER-0.98.json" and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert shown_names(p)[0] == "ckpt-NEWER-0.98.json"  # within the interval, on the loop
        p.close()

    asyncio.run(scenario())


def test_live_redraws_are_coalesced(context: KernelContext) -> None:
    async def scenario() -> None:
        p = Panel(context, tab="memory")
        start, began = p.renders, time.monotonic()
        for i in range(5000):
            context.store.event_log.record("train_log", {"step": i}, origin=context.origin)
        elapsed = time.monotonic() - began
        during = p.renders - start
        assert 1 <= during <= 2 + elapsed / p.live_interval, (during, elapsed)  # not one per write
        deadline = time.monotonic() + 10  # the trailing redraw, scheduled on the loop (after the gap)
        while p.memory_tab.frame["data.step"].iloc[0] != 4999 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert p.memory_tab.frame["data.step"].iloc[0] == 4999
        await asyncio.sleep(1.0)  # nothing written since: no other redraw comes
        assert p.renders - start <= during + 1
        p.close()

    asyncio.run(scenario())


def test_a_long_cell_that_keeps_writing_still_shows_progress(context: KernelContext) -> None:
    async def scenario() -> None:
        p = Panel(context, tab="memory", live_interval=0.1)
        start, began, i = p.renders, time.monotonic(), 0
        # never yields to the loop, like a busy notebook cell: 0.6 s, and on until 3 redraws (a redraw
        # of d s is followed by a gap of max(0.1, 10 d), so on a slow machine they come slower)
        while (time.monotonic() - began < 0.6 or p.renders - start < 3) and time.monotonic() - began < 30:
            context.store.event_log.record("train_log", {"step": i}, origin=context.origin)
            i += 1
        elapsed, during = time.monotonic() - began, p.renders - start
        assert during >= 3, (during, elapsed)
        assert during <= 2 + elapsed / p.live_interval, (during, elapsed)  # not one per write
        assert during < i / 10, (during, i)
        p.close()

    asyncio.run(scenario())


def test_slow_live_redraws_take_at_most_their_share_of_a_writing_loop(context: KernelContext) -> None:
    from aeg_jupyter.frontends.panel.live import LIVE_SHARE, LiveUpdates

    spent: list[float] = []

    def slow_draw(_tables: frozenset[str]) -> None:  # a chart grown big: 50 ms a redraw
        t = time.monotonic()
        time.sleep(0.05)
        spent.append(time.monotonic() - t)

    live = LiveUpdates(
        context.store, on_write=lambda: None, draw=slow_draw, busy=lambda: False, say=print, interval=0.01
    )  # fmt: skip
    try:
        began, i = time.monotonic(), 0
        # a cell that keeps writing: 1.5 s, and on until 3 redraws (a slow machine's first may be late)
        while time.monotonic() - began < 1.5 or (len(spent) < 3 and time.monotonic() - began < 20):
            context.store.event_log.record("train_log", {"step": i}, origin=context.origin)
            i += 1
        elapsed = time.monotonic() - began
        # every redraw is followed by a gap of 1 / LIVE_SHARE (20) times its duration (not the 10 ms interval)
        assert 3 <= len(spent) <= 1 + elapsed * LIVE_SHARE / min(spent) + 1, (len(spent), spent)
        assert sum(spent) <= 1.5 * LIVE_SHARE * elapsed + max(spent), (sum(spent), elapsed)
        live.interval = 0.0  # 0: every write redraws again, whatever the last one cost
        drawn = len(spent)
        for _ in range(2):
            context.store.event_log.record("train_log", {"step": i}, origin=context.origin)
        assert len(spent) == drawn + 2
    finally:
        live.close()


def test_a_very_slow_redraw_delays_the_next_by_at_most_two_seconds(context: KernelContext) -> None:
    """A chart whose redraw takes 0.3 s (20x: 6 s) still moves every LIVE_MAX_GAP (2 s) during a busy loop."""
    from aeg_jupyter.frontends.panel.live import LIVE_MAX_GAP, LiveUpdates

    starts: list[float] = []

    def slow_draw(_tables: frozenset[str]) -> None:
        starts.append(time.monotonic())
        time.sleep(0.3)

    live = LiveUpdates(
        context.store, on_write=lambda: None, draw=slow_draw, busy=lambda: False, say=print, interval=0.01
    )  # fmt: skip
    try:
        began, i = time.monotonic(), 0
        while len(starts) < 2 and time.monotonic() - began < 20:
            context.store.event_log.record("train_log", {"step": i}, origin=context.origin)
            i += 1
    finally:
        live.close()
    assert len(starts) == 2, starts
    assert LIVE_MAX_GAP - 0.05 <= starts[1] - starts[0] <= LIVE_MAX_GAP + 0.4, starts


def test_a_redraw_with_nothing_written_does_not_restart_the_clock(context: KernelContext) -> None:
    """A scheduled redraw that finds nothing written since the last (a write's own in-call draw took it)
    leaves the clock alone: the next write draws when it was due, not a whole gap later."""
    from aeg_jupyter.frontends.panel.live import LIVE_MAX_GAP, LIVE_SHARE, LiveUpdates

    starts: list[float] = []
    gap = min(0.1 / LIVE_SHARE, LIVE_MAX_GAP)

    def draw(_tables: frozenset[str]) -> None:  # 0.1 s: the next is due `gap` (2 s) after its start
        starts.append(time.monotonic())
        time.sleep(0.1)

    live = LiveUpdates(context.store, on_write=lambda: None, draw=draw, busy=lambda: False, say=print, interval=0.01)
    try:
        log = context.store.event_log
        log.record("train_log", {"step": 0}, origin=context.origin)  # drawn in the call
        assert len(starts) == 1
        time.sleep(0.5)
        live._live_draw()  # what a scheduled redraw does: nothing written since, so nothing happens
        assert len(starts) == 1
        time.sleep(max(0.0, starts[0] + gap + 0.1 - time.monotonic()))
        log.record("train_log", {"step": 1}, origin=context.origin)  # past the gap: drawn at once
        assert len(starts) == 2, "the empty redraw pushed the next one a whole gap later"
    finally:
        live.close()


def test_a_write_from_a_worker_thread_is_drawn_on_the_loop(sweep: KernelContext, tmp_path: Any) -> None:
    drawn_in: list[int] = []

    async def scenario() -> None:
        p = Panel(sweep, kind="checkpoint", metric="val_acc")
        original = p.leaderboard_tab.refresh

        def spy() -> None:
            drawn_in.append(threading.get_ident())
            original()

        p.leaderboard_tab.refresh = spy  # type: ignore[method-assign]
        src = tmp_path / "w.bin"
        src.write_bytes(b"weights")
        await sweep.artifacts().save_file(src, kind="checkpoint", metrics={"val_acc": 0.991})  # asyncio.to_thread
        await asyncio.sleep(0.5)
        assert p.leaderboard_tab.frame["metric.val_acc"].iloc[0] == 0.991
        p.close()

    asyncio.run(scenario())
    assert drawn_in and set(drawn_in) == {threading.get_ident()}


def test_auto_refresh_is_an_asyncio_task(sweep: KernelContext, store_root: str) -> None:
    async def scenario() -> None:
        p = Panel(sweep, kind="checkpoint", metric="val_acc")
        p.every.value = 0.5
        p.auto.value = True
        assert isinstance(p.live.auto_task, asyncio.Task)
        with other_kernel(store_root, "child.json", 0.9999):
            await asyncio.sleep(1.2)
            assert shown_names(p)[0] == "child.json"
        task = p.live.auto_task
        p.auto.value = False
        await asyncio.sleep(0)
        assert task is not None and task.cancelled()
        p.close()

    asyncio.run(scenario())


def test_auto_refresh_without_a_loop_is_refused_with_a_reason(panel: Panel) -> None:
    panel.auto.value = True
    assert panel.auto.value is False and panel.live.auto_task is None
    assert "event loop" in panel.status.value


def test_close_stops_listening(sweep: KernelContext) -> None:
    p = Panel(sweep)
    assert p.live.on_store_change in sweep.store.guard._listeners
    p.close()
    assert p.live.on_store_change not in sweep.store.guard._listeners
    save_ckpt(sweep, "after", 0.5, 0.5)  # no error from a closed panel


# -- escaping --------------------------------------------------------------------------------------------
def test_hostile_strings_are_shown_as_text(context: KernelContext) -> None:
    index = context.store.artifacts
    art = index.save_text(
        HOSTILE, kind=HOSTILE, labels={HOSTILE: HOSTILE}, metrics={HOSTILE: 1.0, "acc": 0.5}, name=HOSTILE + ".txt",
        origin=context.origin,
    )  # fmt: skip
    context.store.event_log.record(HOSTILE, {HOSTILE: HOSTILE}, origin=context.origin)
    context.store.event_log.record_tool_result(
        HOSTILE, outputs=[{"name": HOSTILE, "value": HOSTILE}], origin=context.origin
    )
    asking = Panel(context, kind=HOSTILE, metric=HOSTILE)  # a direction the name does not tell: asked for
    assert "better? The name does not say" in asking.leaderboard_tab.note.value
    assert "<img" not in asking.leaderboard_tab.note.value
    asking.close()
    p = Panel(context, kind=HOSTILE, metric=HOSTILE, mode="max", group_by=HOSTILE)
    p.select_artifact(art.artifact_id)
    p.copy_path()
    p.show("memory")
    p.show("runs")
    p.show("leaderboard")
    text = all_html(p) + "\n".join(r.cells.value for r in p.leaderboard_tab.rows)
    assert "<img" not in text
    assert "&lt;img src=x onerror=alert(1)&gt;" in text
    # ranked by the hostile metric, grouped by the hostile label
    assert p.leaderboard_tab.frame["name"][0] == HOSTILE + ".txt"
    assert HOSTILE in p.artifacts_tab.listing.options[0][0]  # Select options are text (textContent)
    p.close()


def test_html_table_escapes_headers_and_cells() -> None:
    out = html_table([HOSTILE], [[HOSTILE], [{"k": HOSTILE}]], highlight=0)
    assert "<img" not in out and out.count("&lt;img") == 5  # header, 2 cells x (text + title)


# -- artifacts tab ---------------------------------------------------------------------------------------
@pytest.fixture
def zoo(context: KernelContext, tmp_path: Any) -> dict[str, aeg_jupyter.Artifact]:
    index, o = context.store.artifacts, context.origin
    df = pd.DataFrame({"epoch": range(1000), "loss": [1 / (i + 1) for i in range(1000)]})
    df.to_parquet(tmp_path / "metrics.parquet")
    df.to_csv(tmp_path / "metrics.csv", index=False)
    d = tmp_path / "run_dir"
    (d / "sub").mkdir(parents=True)
    (d / "a.txt").write_text("a")
    (d / "sub" / "b.bin").write_bytes(b"\x00" * 10)
    (tmp_path / "blob.bin").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "big.log").write_text("".join(f"line {i}\n" for i in range(100_000)))
    return {
        "image": index.save_bytes(png_bytes(), kind="plot", name="curve.png", labels={"exp": "A"}, origin=o),
        "text": index.save_text("hello\nworld", kind="note", labels={"exp": "B"}, origin=o),
        "json": index.save_json({"lr": 0.001, "layers": [64, 32]}, kind="config", origin=o),
        "parquet": index.save_file(tmp_path / "metrics.parquet", kind="table", origin=o),
        "csv": index.save_file(tmp_path / "metrics.csv", kind="table", origin=o),
        "dir": index.save_dir(d, kind="dataset", origin=o),
        "binary": index.save_file(tmp_path / "blob.bin", kind="weights", origin=o),
        "big": index.save_file(tmp_path / "big.log", kind="log", origin=o),
    }


def test_previews_by_type(context: KernelContext, zoo: dict[str, aeg_jupyter.Artifact]) -> None:
    p = Panel(context, tab="artifacts")
    tab = p.artifacts_tab
    p.select_artifact(zoo["image"].artifact_id)
    assert tab.image.layout.display == "" and tab.image.value == png_bytes() and tab.image.format == "png"
    p.select_artifact(zoo["text"].artifact_id)
    assert tab.image.layout.display == "none"
    assert "hello\nworld" in tab.preview.value and "aeg-preview-text" in tab.preview.value
    p.select_artifact(zoo["json"].artifact_id)
    assert "&quot;layers&quot;: [\n    64," in tab.preview.value  # pretty-printed
    p.select_artifact(zoo["parquet"].artifact_id)
    assert "aeg-preview-table" in tab.preview.value and "1,000 rows x 2 columns" in tab.preview.value
    assert tab.preview.value.count("<tr class='aeg-row") == 10
    p.select_artifact(zoo["csv"].artifact_id)
    assert "aeg-preview-table" in tab.preview.value and tab.preview.value.count("<tr class='aeg-row") == 10
    p.select_artifact(zoo["dir"].artifact_id)
    assert "sub/b.bin" in tab.preview.value and "a.txt" in tab.preview.value and "2 files" in tab.preview.value
    p.select_artifact(zoo["binary"].artifact_id)
    assert "aeg-preview-other" in tab.preview.value and "1.0 KiB" in tab.preview.value
    p.select_artifact(zoo["big"].artifact_id)
    assert tab.preview.value.count("\nline ") == 39 and "first 40 of" in tab.preview.value
    assert zoo["big"].artifact_id in tab.details.value and "big.log" in tab.details.value
    p.close()


def test_previews_are_bounded(context: KernelContext, zoo: dict[str, aeg_jupyter.Artifact]) -> None:
    index = context.store.artifacts
    big = preview(index, zoo["big"], max_bytes=1024, max_lines=1000)
    assert big.truncated and big.text is not None and len(big.text) <= 1024
    huge_image = preview(index, zoo["image"], max_image_bytes=10)
    assert huge_image.kind == "binary" and "too large" in huge_image.note
    rows = preview(index, zoo["parquet"], max_rows=3)
    assert rows.frame is not None and len(rows.frame) == 3
    listing = preview(index, zoo["dir"], max_entries=1)
    assert len(listing.entries) == 1 and listing.truncated


def test_artifact_filters(context: KernelContext, zoo: dict[str, aeg_jupyter.Artifact]) -> None:
    p = Panel(context, tab="artifacts")
    assert len(p.artifacts_tab.listing.options) == len(zoo)
    p.artifacts_tab.kind.value = "table"
    assert {v for _, v in p.artifacts_tab.listing.options} == {zoo["parquet"].artifact_id, zoo["csv"].artifact_id}
    p.artifacts_tab.kind.value = ""
    p.artifacts_tab.labels.value = "exp=A"
    assert [v for _, v in p.artifacts_tab.listing.options] == [zoo["image"].artifact_id]
    p.artifacts_tab.labels.value = ""
    p.artifacts_tab.search.value = "METRICS.CSV"
    assert [v for _, v in p.artifacts_tab.listing.options] == [zoo["csv"].artifact_id]
    p.artifacts_tab.search.value = ""
    p.artifacts_tab.labels.value = "no equals sign"
    assert "key=value" in p.status.value
    assert parse_label_filter(" exp = A , seed=3") == {"exp": "A", "seed": "3"}
    assert find_artifacts(context.store.artifacts, labels={"exp": "B"})[0].artifact_id == zoo["text"].artifact_id
    p.close()


def test_artifact_pin_and_copy_path(context: KernelContext, zoo: dict[str, aeg_jupyter.Artifact]) -> None:
    p = Panel(context, tab="artifacts")
    assert p.artifacts_tab.pin.disabled and p.artifacts_tab.copy.disabled
    p.artifacts_tab.listing.value = zoo["csv"].artifact_id
    assert not p.artifacts_tab.pin.disabled
    p.artifacts_tab.pin.value = True
    assert context.store.artifacts.get(zoo["csv"].artifact_id).pinned
    p.artifacts_tab.pin.value = False
    assert not context.store.artifacts.get(zoo["csv"].artifact_id).pinned
    p.artifacts_tab.copy.click()
    path = p.artifacts_tab.path.value
    assert path.endswith("metrics.csv") and os.path.isfile(path) and not os.stat(path).st_mode & 0o222
    with open(path) as f:
        assert f.readline().strip() == "epoch,loss"
    assert "aeg-copy" in p.artifacts_tab.clip.value and "data-path" in p.artifacts_tab.clip.value
    p.select_artifact(zoo["dir"].artifact_id)
    assert p.artifacts_tab.path.value == ""  # cleared for the new selection
    assert os.path.isdir(p.copy_path() or "")
    p.close()


# -- memory and runs tabs ----------------------------------------------------------------------------
def test_memory_tab_newest_first_kind_filter_and_outputs_as_columns(context: KernelContext) -> None:
    mem, o = context.store.event_log, context.origin
    for epoch in range(3):
        mem.record("train_log", {"epoch": epoch, "loss": 1 / (epoch + 1)}, origin=o)
    mem.record_tool_result("train.step", outputs=[{"name": "val_acc", "kind": "number", "value": 0.912}], origin=o)
    p = Panel(context, tab="memory")
    tab = p.memory_tab
    assert list(tab.frame["kind"]) == ["tool_result", "train_log", "train_log", "train_log"]
    assert "out.val_acc" in tab.table.value and "0.912" in tab.table.value and "train.step" in tab.table.value
    tab.kind.value = "train_log"
    assert list(tab.frame["data.epoch"]) == [2, 1, 0]
    assert "<th>epoch</th>" in tab.table.value and "out.val_acc" not in tab.table.value
    tab.limit.value = 1
    assert len(tab.frame) == 1
    mem.record("train_log", {"epoch": 3, "loss": 0.2}, origin=o)  # live (no loop: drawn in the call)
    p.refresh()
    assert list(tab.frame["data.epoch"]) == [3]
    p.close()


def test_runs_tab_lists_every_run(context: KernelContext) -> None:
    save_ckpt(context, "A", 0.5, 0.5)
    context.store.event_log.record("note", "x", origin=context.origin)
    old_run = context.run_id
    context.new_run("second")
    context.store.event_log.record("note", "y", origin=context.origin)
    p = Panel(context, tab="runs")
    html = p.runs_tab.table.value
    assert old_run in html and context.run_id in html and "(this kernel)" in html
    assert html.count("<tr class='aeg-row") == 2 and "tests" in html  # the notebook (graph) column
    assert "aeg-best" in html.split(context.run_id)[0].rsplit("<tr", 1)[1]  # this kernel's run is highlighted
    p.close()


def test_hidden_tabs_redraw_only_when_shown(panel: Panel) -> None:
    before = panel.runs_tab.table.value
    assert before == ""  # never shown yet
    panel.show("runs")
    assert "aeg-runs" in panel.runs_tab.table.value
    panel.show("leaderboard")
    drawn = panel.renders
    panel.context.store.event_log.record("note", "z")
    assert panel.renders <= drawn + 1


def test_core_modules_import_no_ipython_or_widgets() -> None:
    proc = run_child(
        """
        import sys
        import aeg_jupyter.core.store, aeg_jupyter.core.artifacts, aeg_jupyter.core.events, aeg_jupyter.core.frames
        import aeg_jupyter.api.context, aeg_jupyter.core.leaderboard, aeg_jupyter.core.browse, aeg_jupyter.core.runs
        print(sorted(m for m in ("IPython", "ipywidgets", "traitlets") if m in sys.modules))
        """
    )
    assert proc.stdout.strip() == "[]"
