"""Issue 19, items 2 and 13, through the panel's widgets: the leaderboard opens on the metric and direction
a practitioner would pick and keeps the user's choice per kind; run names, details, previews and the
artifact list read well."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pandas as pd
import pytest

from aeg_jupyter import KernelContext

widgets = pytest.importorskip("ipywidgets")
from aeg_jupyter.frontends.panel import Panel  # noqa: E402


@pytest.fixture
def store(context: KernelContext) -> KernelContext:
    """Checkpoints with loss, epoch, lr, val_acc (loss first alphabetically) and a model kind with only a loss."""
    index = context.store.artifacts
    for i, (loss, acc) in enumerate([(0.9, 0.60), (0.2, 0.95), (0.5, 0.80)]):
        index.save_json(
            {"i": i}, kind="checkpoint", metrics={"loss": loss, "epoch": i, "lr": 0.1, "val_acc": acc},
            name=f"ckpt-{i}.json", origin=context.origin,
        )  # fmt: skip
    for i, loss in enumerate([0.7, 0.3]):
        index.save_json({"i": i}, kind="model", metrics={"loss": loss}, name=f"model-{i}.json", origin=context.origin)
    return context


@pytest.fixture
def panel(store: KernelContext) -> Any:
    p = Panel(store)  # what `%aeg panel` opens with no arguments
    yield p
    p.close()


def test_the_default_leaderboard_is_what_a_practitioner_would_pick(panel: Any) -> None:
    tab = panel.leaderboard_tab
    # Before: kind checkpoint, metric "epoch"/"loss" (the first alphabetically), mode max: the worst model gold.
    assert (tab.kind.value, tab.metric.value, tab.mode.value) == ("checkpoint", "val_acc", "max")
    assert tab.frame["name"][0] == "ckpt-1.json" and "aeg-best" in tab.rows[0].cells.value
    tab.metric.value = "loss"
    assert tab.mode.value == "min" and tab.frame["name"][0] == "ckpt-1.json"
    assert "lower is better" in tab.note.value


def test_a_kind_with_only_a_loss_ranks_lowest_first(panel: Any) -> None:
    tab = panel.leaderboard_tab
    tab.kind.value = "model"
    assert (tab.metric.value, tab.mode.value) == ("loss", "min")
    assert list(tab.frame["metric.loss"]) == [0.3, 0.7]


def test_the_users_choice_is_kept_per_kind(panel: Any) -> None:
    tab = panel.leaderboard_tab
    tab.metric.value = "loss"
    tab.mode.value = "max"  # the user's own (odd) choice
    tab.kind.value = "model"
    assert (tab.metric.value, tab.mode.value) == ("loss", "min")
    tab.kind.value = "checkpoint"  # Before: reset to the first metric and max.
    assert (tab.metric.value, tab.mode.value) == ("loss", "max")
    assert tab.frame["name"][0] == "ckpt-0.json"


def test_an_unknown_direction_is_asked_for(panel: Any) -> None:
    tab = panel.leaderboard_tab
    tab.metric.value = "epoch"
    assert tab.mode.value is None and tab.rows == []
    assert "better? The name does not say: choose" in tab.note.value
    tab.mode.value = "max"
    assert tab.frame["name"][0] == "ckpt-2.json"


def test_a_recorded_direction_wins(context: KernelContext) -> None:
    index = context.store.artifacts
    for score in (3.0, 1.0):
        index.save_json({}, kind="eval", metrics={"score": score}, labels={"metric_modes": "score:min"})
    p = Panel(context, kind="eval")
    try:
        assert (p.leaderboard_tab.metric.value, p.leaderboard_tab.mode.value) == ("score", "min")
        assert [v for _, v in p.leaderboard_tab.group.options] == [""]  # metric_modes is no "best per" choice
    finally:
        p.close()


# -- item 13 -------------------------------------------------------------------------------------
def test_run_names_are_shown_not_the_common_prefix(store: KernelContext) -> None:
    store.new_run("sweep-2")
    store.store.artifacts.save_json({}, kind="checkpoint", metrics={"val_acc": 0.99}, name="late.json",
                                    origin=store.origin)  # fmt: skip
    p = Panel(store)
    try:
        first = p.leaderboard_tab.rows[0].cells.value
        assert ">sweep-2<" in first and store.run_id in first  # the name shown, the whole id its tooltip
        second = p.leaderboard_tab.rows[1].cells.value
        assert ">run-2" not in second  # Before: every run cell read "run-2026120…"
        p.show("runs")
        assert "sweep-2" in p.runs_tab.table.value
    finally:
        p.close()


def test_details_keep_labels_on_one_line_and_the_uri_whole(panel: Any, store: KernelContext) -> None:
    art = store.store.artifacts.list(kind="checkpoint")[0]
    panel.select_artifact(art.artifact_id)
    html = panel.artifacts_tab.details.value
    assert "run / graph / node" not in html  # Before: one label wrapping onto three lines
    assert all(f"<th style='text-align:left'>{k}</th>" in html for k in ("run", "notebook", "cell", "uri"))
    assert art.uri in html and "aeg-ar-details" in html
    assert ".aeg-ar-details th{white-space:nowrap" in panel.title.value


def test_the_artifact_list_is_aligned_columns(panel: Any) -> None:
    panel.show("artifacts")
    tab = panel.artifacts_tab
    labels = [text for text, _ in tab.listing.options]
    assert len(labels) == 5
    assert all("·" not in t for t in labels)  # Before: "id  ·  kind  ·  name  ·  ..."
    starts = {t.index(name) for t in labels for name in ("ckpt-", "model-") if name in t}
    assert len(starts) == 1  # every name starts in the same column
    assert tab.list_header.value.count("name") == 1 and "aeg-ar-head" in tab.list_header.value


def test_table_and_array_previews(context: KernelContext, tmp_path: Any) -> None:
    index = context.store.artifacts
    buf = io.BytesIO()
    pd.DataFrame({c: range(6) for c in "abcd"}).to_parquet(buf)
    table = index.save_bytes(buf.getvalue(), kind="table", name="t.parquet")  # small: inline on format 2
    csv = index.save_bytes(b"a,b\n1,2\n3,4\n", kind="table", name="t.csv")
    path = tmp_path / "w.npy"
    np.save(path, np.zeros((3, 4), dtype="float32"))
    from_file = index.save_file(path, kind="array")
    assert from_file.mime == "application/x-npy"  # Before: None (the variable path said application/x-npy)
    p = Panel(context, tab="artifacts")
    try:
        p.select_artifact(table.artifact_id)
        assert "6 rows x 4 columns" in p.artifacts_tab.preview.value
        assert "first 6 6 rows" not in p.artifacts_tab.preview.value
        p.select_artifact(csv.artifact_id)
        assert "first 2 rows x 2 columns" in p.artifacts_tab.preview.value
        p.select_artifact(from_file.artifact_id)
        assert "shape (3, 4), float32" in p.artifacts_tab.preview.value  # Before: only "176 B"
    finally:
        p.close()


def test_header_notes_follow_the_theme(panel: Any) -> None:
    assert "color:#666" not in panel.title.value and "aeg-title-note" in panel.title.value
    assert "var(--jp-ui-font-color1" in panel.title.value
    assert "color:#555" not in panel.leaderboard_tab.note.value
