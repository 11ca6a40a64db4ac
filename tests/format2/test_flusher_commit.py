"""The flusher's commit input: ``committer.spool_to_arrow`` (pyarrow.json for events) gives exactly the
table of the row-by-row path (``read_spool_rows`` + ``ROWS_TO_ARROW``), for every kind of event line,
and takes the row path (skipping the damaged line) when read_json refuses a spool. Real spool files
written by a real format-2 store's ``record``."""

from __future__ import annotations

import glob
import os
from typing import Any

from aeg_jupyter.base.models import Provenance
from aeg_jupyter.core.store import Store
from aeg_jupyter.storage.committer import spool_to_arrow
from aeg_jupyter.storage.delta import read_spool_rows
from aeg_jupyter.storage.schemas2 import EVENTS2_SCHEMA, ROWS_TO_ARROW


def _spool_of_every_kind_of_event(tmp_path: Any) -> tuple[Store, str]:
    store = Store(str(tmp_path / "s"), format=2, flush_rows=2**62, maintain_commits=0)
    store.event_table.background = False  # the spool stays as written
    log = store.event_log
    log.record("a", {"x": 1, "nested": [1, None, "é"]})
    log.record("b", 'text é \n"q" \\ \u2028', tags=["t1", "é"], severity=4, stage="s", metrics={"m": 1, "n": 2.5})
    log.record_tool_result(
        "tool.x",
        inputs=[{"name": "i", "kind": "number", "value": 3}],
        outputs=[{"name": "o", "kind": "json", "value": {"a": [1, None]}}, {"name": "u", "kind": "uri", "value": "s"}],
        message="m",
    )
    log.record("c", None, origin=Provenance(run_id="r", graph_id="g", node_id="n", cell_id="c1", execution_count=3))
    log.record("d", [1, 2], metrics={}, tags=[])
    paths = glob.glob(os.path.join(str(tmp_path / "s"), "spool", "*", "events-*.jsonl"))
    assert len(paths) == 1
    return store, paths[0]


def test_events_through_pyarrow_json_equal_the_row_path(tmp_path: Any) -> None:
    store, path = _spool_of_every_kind_of_event(tmp_path)
    try:
        fast = spool_to_arrow("events", path)
        rows = ROWS_TO_ARROW["events"](read_spool_rows(path))
        assert fast is not None and fast.schema == EVENTS2_SCHEMA
        assert fast.num_rows == 5
        assert fast.to_pylist() == rows.to_pylist()
        assert fast.equals(rows)
    finally:
        store.close()


def test_a_damaged_line_takes_the_row_path_and_is_skipped(tmp_path: Any) -> None:
    store, path = _spool_of_every_kind_of_event(tmp_path)
    try:
        good = ROWS_TO_ARROW["events"](read_spool_rows(path))
        with open(path, "a") as f:
            f.write('{"event_id": broken\n')
        got = spool_to_arrow("events", path)
        assert got is not None and got.equals(good)
    finally:
        store.close()


def test_an_empty_or_missing_spool_gives_none(tmp_path: Any) -> None:
    empty = tmp_path / "events-000000.jsonl"
    empty.write_bytes(b"")
    assert spool_to_arrow("events", str(empty)) is None
    assert spool_to_arrow("events", str(tmp_path / "missing.jsonl")) is None
    assert spool_to_arrow("ops", str(empty)) is None
