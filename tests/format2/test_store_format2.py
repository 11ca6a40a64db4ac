"""`Store(root, format=2)`: format 2 in the composition root; every store here names its format.

Real stores in tmp_path, real child processes killed with SIGKILL; the format-2 store answers through the
format-1 catalog and event log over Delta tables (storage/delta_table.py)."""

from __future__ import annotations

import json
import os
import signal
from typing import Any

import pytest
from conftest import run_child
from deltalake import DeltaTable

from aeg_jupyter.base.errors import InvalidInputError, StoreFormatError
from aeg_jupyter.base.models import Provenance
from aeg_jupyter.core.store import Store


def _marker(root: str) -> dict[str, Any]:
    with open(os.path.join(root, "aeg-store.json")) as f:
        return json.load(f)  # type: ignore[no-any-return]


def _delta_ids(root: str, table: str = "artifacts", id_field: str = "artifact_id") -> list[str]:
    return DeltaTable(os.path.join(root, "tables", table)).to_pyarrow_table(columns=[id_field]).column(0).to_pylist()


def test_a_format_1_store_has_no_delta_log(tmp_path: Any) -> None:
    root = str(tmp_path / "s")
    with Store(root, format=1) as store:
        assert store.format == 1
        store.artifacts.save_json({"a": 1}, kind="config")
    assert _marker(root)["format"] == 1
    assert not os.path.exists(os.path.join(root, "tables", "artifacts", "_delta_log"))


def test_a_format_2_store_round_trips_through_the_api(tmp_path: Any) -> None:
    root = str(tmp_path / "s")
    with Store(root, format=2, flush_rows=7) as store:
        saved = [
            store.artifacts.save_json(
                {"i": i}, kind="checkpoint" if i % 4 else "config", labels={"exp": "AB"[i % 2], "seed": i % 3, "on": i % 5 == 0},
                metrics={"val_acc": (i * 37 % 100) / 100}, origin=Provenance(run_id=f"r{i % 2}"),
            )
            for i in range(30)
        ]  # fmt: skip
        store.artifacts.pin(saved[5].artifact_id)
        store.artifacts.delete(saved[6].artifact_id)
        for i in range(25):
            store.event_log.record("train_log", {"step": i, "loss": 1 / (i + 1)}, metrics={"loss": 1 / (i + 1)})
        before_best = store.artifacts.best(kind="checkpoint", metric="val_acc", filters={"exp": "A"})
        before_search = [a.artifact_id for a in store.artifacts.search(kind="checkpoint", labels={"seed": 1})]
        before_recent = store.event_log.recent(kinds=["train_log"], limit=10)
    assert _marker(root)["format"] == 2
    assert os.path.isdir(os.path.join(root, "tables", "artifacts", "_delta_log"))
    assert sorted(_delta_ids(root)) == sorted(a.artifact_id for a in saved)  # every row committed once

    with pytest.raises(StoreFormatError, match="has format 2, not 1"):
        Store(root, format=1)  # a format-2 store never opens as format 1
    with Store(root, format=2) as store:
        assert store.format == 2
        assert len(store.artifacts) == 29
        best = store.artifacts.best(kind="checkpoint", metric="val_acc", filters={"exp": "A"})
        assert best == before_best and best is not None
        assert [a.artifact_id for a in store.artifacts.search(kind="checkpoint", labels={"seed": 1})] == before_search
        got = store.artifacts.get(saved[7].artifact_id)
        assert (got.labels, got.metrics) == (saved[7].labels, saved[7].metrics)
        assert {k: type(v) for k, v in got.labels.items()} == {"exp": str, "seed": int, "on": bool}
        assert store.artifacts.get(saved[5].artifact_id).pinned
        assert store.artifacts.load_json(saved[7].artifact_id) == {"i": 7}
        events = store.event_log.recent(kinds=["train_log"], limit=10)
        assert events == before_recent  # every field, read back from the typed columns
        assert {e.metrics["loss"] for e in events} == {1 / (i + 1) for i in range(15, 25)}
    # an external engine ranks by a typed metric, no JSON functions
    duckdb = pytest.importorskip("duckdb")
    con = duckdb.connect(config={"autoinstall_known_extensions": False})
    con.register("artifacts", DeltaTable(os.path.join(root, "tables", "artifacts")).to_pyarrow_dataset())
    q = "SELECT artifact_id FROM artifacts WHERE kind='checkpoint' AND labels['exp'].s = 'A' ORDER BY metrics['val_acc'] DESC, created_at DESC LIMIT 1"
    assert con.sql(q).fetchall() == [(before_best.artifact_id,)]


KILLED_WRITER = """
import os, signal, sys
from aeg_jupyter.core.store import Store
store = Store(sys.argv[1], format=2)
for t in store.tables.values():
    t.flush_seconds = 3600  # no background commit before the kill (a loaded machine can take 2 s here)
for i in range(20):
    store.artifacts.save_json({"i": i}, kind="note", labels={"i": i})
    store.event_log.record("log", {"i": i})
if sys.argv[2] == "after-commit":
    # the flush's commit happens, the process dies before it removes the spool
    for t in (store.artifact_table, store.event_table):
        t.write_parts(list(t.pending_rows), t.writer, 0)
os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.parametrize("when", ["before-commit", "after-commit"])
def test_a_killed_writer_is_recovered_once(tmp_path: Any, when: str) -> None:
    root = str(tmp_path / "s")
    proc = run_child(KILLED_WRITER, root, when, check=False)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    committed = _delta_ids(root) if os.path.isdir(os.path.join(root, "tables", "artifacts", "_delta_log")) else []
    assert len(committed) == (20 if when == "after-commit" else 0)
    for _ in range(2):  # recovery, then a second open that must find nothing left to do
        with Store(root, format=2) as store:
            assert len(store.artifacts) == 20
            assert len(store.event_log.recent(kinds=["log"], limit=100)) == 20
    ids = _delta_ids(root)
    assert len(ids) == len(set(ids)) == 20
    events = _delta_ids(root, "events", "event_id")
    assert len(events) == len(set(events)) == 20


def test_format_mismatch_and_unknown_format_are_refused(tmp_path: Any) -> None:
    root = str(tmp_path / "s")
    Store(root, format=2).close()
    with pytest.raises(StoreFormatError, match="has format 2, not 1"):
        Store(root, format=1)
    with pytest.raises(InvalidInputError, match="format must be one of 1, 2"):
        Store(str(tmp_path / "t"), format=3)
