"""Well-formed but mistyped rows and parts (issue 13, item 7), planted as a hostile second writer would.

Each case is a file another writer could leave: a dead writer's spool line, or a Parquet part
under ``tables/``. The store must open, answer queries, compact and ``verify(repair=True)``;
the bad row or part is skipped with a ``StoreWarning`` naming the file. Only the public API and
the on-disk layout an external reader sees are used, so this holds on either store format.
"""

from __future__ import annotations

import json
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import aeg_jupyter
from aeg_jupyter.base.errors import StoreWarning

TS = 1_700_000_000_000_000
AID = "01AAAAAAAAAAAAAAAAAAAAAAAA"
EID = "01EEEEEEEEEEEEEEEEEEEEEEEE"


def _artifact_line(**over: object) -> dict[str, object]:
    row = {
        "artifact_id": AID, "created_at": TS, "kind": "ckpt", "uri": "cas://blake3/" + "0" * 64, "size": 1,
        "name": "x", "mime": None, "run_id": None, "graph_id": None, "node_id": None, "pinned": False,
        "labels": "{}", "metrics": "{}", "preview_uri": None,
    }  # fmt: skip
    row.update(over)
    return {k: v for k, v in row.items() if v is not ...}


def _event_line(**over: object) -> dict[str, object]:
    row = {"event_id": EID, "ts": TS, "kind": "log", "severity": 2, "version": 1, "text": '"planted"'}
    row.update(over)
    return {k: v for k, v in row.items() if v is not ...}


SPOOL_CASES = {
    "artifact_without_created_at": ("artifacts", _artifact_line(created_at=...)),
    "event_without_ts": ("events", _event_line(ts=...)),
    "created_at_as_string": ("artifacts", _artifact_line(created_at="2024-01-01T00:00:00Z")),
    "numeric_kind": ("events", _event_line(kind=7)),
}
CELL_CASES = {
    "non_json_event_metrics": ("events", _event_line(metrics="{not json")),
    "non_json_event_tags": ("events", _event_line(tags="[oops")),
    "non_json_artifact_metrics": ("artifacts", _artifact_line(metrics="{not json")),
    "string_metric_value": ("artifacts", _artifact_line(metrics='{"acc": "high"}')),
}


def _base(root: str, **open_args: object) -> tuple[str, str]:
    store = aeg_jupyter.Store(root, **open_args)
    art = store.artifacts.save_json({"ok": 1}, kind="ckpt", metrics={"acc": 0.5})
    ev = store.event_log.record("log", {"ok": 1})
    store.close()
    return art.artifact_id, ev.event_id


def _plant_spool(root: str, table: str, row: dict[str, object]) -> str:
    wdir = os.path.join(root, "spool", "p1xforeign")
    os.makedirs(wdir, exist_ok=True)
    open(os.path.join(wdir, "lock"), "w").close()
    path = os.path.join(wdir, f"{table}-000000.jsonl")
    with open(path, "a") as f:
        f.write(json.dumps(row) + "\n")
    return path


def _exercise(root: str, **open_args: object) -> tuple[list[str], list[str], aeg_jupyter.VerifyReport]:
    """Open, query every way, compact, verify with repair: returns (event ids, artifact ids, report)."""
    store = aeg_jupyter.Store(root, hot_limit=1, **open_args)  # a tiny hot window: queries reach the Parquet parts
    events = [e.event_id for e in store.event_log.recent(limit=100)]
    store.event_log.recent(kinds=["log"], limit=100)
    store.event_log.last_by_name("nothing")
    arts = [a.artifact_id for a in store.artifacts.list(limit=100)]
    store.artifacts.search(kind="ckpt", metric="acc")
    store.artifacts.best(kind="ckpt", metric="acc")
    store.artifacts.search(kind="ckpt", labels={"a": 1})
    store.compact(min_parts=1)
    report = store.artifacts.verify(repair=True)
    store.close()
    return events, arts, report


@pytest.mark.parametrize("case", sorted(SPOOL_CASES))
def test_a_mistyped_spool_line_is_skipped_with_a_warning_naming_the_file(store_root, case):
    good_art, good_ev = _base(store_root)
    table, row = SPOOL_CASES[case]
    path = _plant_spool(store_root, table, row)
    with pytest.warns(StoreWarning) as rec:
        events, arts, report = _exercise(store_root)
    assert any(path in str(w.message) for w in rec), [str(w.message) for w in rec]
    assert events == [good_ev] and arts == [good_art]
    assert report.ok, report
    _exercise(store_root)  # the line was set aside: the next open is quiet


@pytest.mark.parametrize("case", sorted(CELL_CASES))
def test_a_damaged_json_cell_reads_as_empty_and_never_crashes_a_query(store_root, case):
    good_art, good_ev = _base(store_root)
    table, row = CELL_CASES[case]
    _plant_spool(store_root, table, row)
    with pytest.warns(StoreWarning):
        events, arts, report = _exercise(store_root)
    planted = EID if table == "events" else AID
    assert planted in (events if table == "events" else arts)  # the row itself is kept
    assert good_ev in events and good_art in arts
    assert not report.corrupt and not report.bad_parts  # (the planted artifact names no real blob)


def _foreign_schema() -> pa.Table:
    return pa.table({"x": pa.array([1, 2]), "y": pa.array(["a", "b"])})


def _ts_as_string() -> pa.Table:
    return pa.table({"event_id": [EID], "ts": ["2024-01-01T00:00:00Z"], "text": ['"x"']})


def _missing_columns() -> pa.Table:
    return pa.table({"event_id": [EID], "ts": pa.array([TS], pa.timestamp("us", tz="UTC"))})


PART_CASES = {"foreign_schema": _foreign_schema, "ts_as_string": _ts_as_string, "missing_columns": _missing_columns}


@pytest.mark.parametrize("case", sorted(PART_CASES))
def test_a_part_of_another_shape_is_read_skipped_or_set_aside_never_a_crash(store_root, case):
    """Foreign-schema parts are skipped with a warning and moved aside by verify(repair=True); a
    part missing only optional columns reads as nulls there, and compaction merges it.

    Format 1's own parts (a format-2 table reads only the files its Delta log names: the test below)."""
    good_art, good_ev = _base(store_root, format=1)
    part = os.path.join(store_root, "tables", "events", "kind=log", f"{TS:016d}-foreign-000000.parquet")
    pq.write_table(PART_CASES[case](), part)
    if case == "missing_columns":
        events, arts, report = _exercise(store_root, format=1)
        assert sorted(events) == sorted([good_ev, EID]) and report.ok
        events, _, _ = _exercise(store_root, format=1)  # after the compaction merged it
        assert sorted(events) == sorted([good_ev, EID])
        return
    with pytest.warns(StoreWarning) as rec:
        events, arts, report = _exercise(store_root, format=1)
    assert any(part in str(w.message) for w in rec), [str(w.message) for w in rec]
    assert events == [good_ev] and arts == [good_art]
    assert report.bad_parts == [part] and not os.path.exists(part)  # moved to corrupt/
    events, _, report = _exercise(store_root, format=1)  # quiet from now on
    assert events == [good_ev] and report.ok


@pytest.mark.parametrize("case", sorted(PART_CASES))
def test_a_file_planted_beside_a_delta_table_is_never_read(store_root, case):
    """Format 2's counterpart: a file a hostile writer drops into a Delta table's partition folder is
    not in the table (the log names every data file), so no query, compaction or verify reads it, and
    every answer stays the table's."""
    good_art, good_ev = _base(store_root, format=2)
    part = os.path.join(store_root, "tables", "events", "kind=log", f"{TS:016d}-foreign-000000.parquet")
    pq.write_table(PART_CASES[case](), part)
    for _ in range(2):  # and again after the compaction
        events, arts, report = _exercise(store_root, format=2)
        assert events == [good_ev] and arts == [good_art] and report.ok
