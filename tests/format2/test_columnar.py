"""core/columnar.py: the columnar catalog answers as format 1's catalog does, on the same artifacts.

A real format-1 store is filled through its API (labels of every type, ties, pins, deletes, three
runs), its table rows are committed to format-2 Delta tables, and every query is asked of both."""

from __future__ import annotations

import random
from typing import Any

import pytest
from conftest import run_child

from aeg_jupyter.base.models import Provenance, ScopeFilter
from aeg_jupyter.core.columnar import ColumnarCatalog
from aeg_jupyter.core.store import Store
from aeg_jupyter.storage.delta import DeltaLakeTable
from aeg_jupyter.storage.schemas2 import ARTIFACTS2_SCHEMA, OPS2_SCHEMA, artifact_rows_to_arrow, op_rows_to_arrow


def _rows(table: Any) -> list[dict[str, Any]]:
    return [r for part in table.list_parts() for r in (table.read_part(part) or [])]


def _tables(tmp_path: Any) -> tuple[DeltaLakeTable, DeltaLakeTable]:
    arts = DeltaLakeTable(str(tmp_path / "f2" / "artifacts"), ARTIFACTS2_SCHEMA, ts_field="created_at")
    ops = DeltaLakeTable(str(tmp_path / "f2" / "ops"), OPS2_SCHEMA, ts_field="ts")
    return arts, ops


@pytest.fixture(scope="module")
def twin(tmp_path_factory: Any) -> tuple[Store, ColumnarCatalog]:
    """A format-1 store and a columnar catalog over the same artifacts, pins and deletes."""
    tmp_path = tmp_path_factory.mktemp("twin")
    rng = random.Random(18)
    store = Store(str(tmp_path / "f1"), format=1)
    saved = []
    for i in range(400):
        labels: dict[str, Any] = {"exp": rng.choice("ABC"), "seed": rng.randrange(4)}
        if i % 3 == 0:
            labels["flag"] = rng.choice([True, False, 1, 0])  # True is not 1
        if i % 5 == 0:
            labels["lr"] = rng.choice([1, 1.0, 0.1])  # 1 and 1.0 match each other
        metrics = {"val_acc": round(rng.random(), 1)}  # rounded: many ties, the newest must win
        if i % 7:
            metrics["loss"] = rng.random()
        kind = "checkpoint" if i % 4 else "config"
        origin = Provenance(run_id=f"run{i % 3}", graph_id="nb", node_id=f"cell{i % 5}")
        saved.append(store.artifacts.save_json({"i": i}, kind=kind, labels=labels, metrics=metrics, origin=origin))
    for a in saved[::11]:
        store.artifacts.pin(a.artifact_id)
    for a in saved[::11][::2]:
        store.artifacts.pin(a.artifact_id, False)
    for a in saved[3::13]:
        if not store.artifacts.get(a.artifact_id).pinned:
            store.artifacts.delete(a.artifact_id)
    store.flush()
    arts, ops = _tables(tmp_path)
    rows = _rows(store.artifact_table)
    for seq in range(4):  # four commits, as four flushes
        arts.commit(artifact_rows_to_arrow(rows[seq * 100 : (seq + 1) * 100]), app_id="w", seq=seq)
    ops.commit(op_rows_to_arrow(_rows(store.op_table)), app_id="w", seq=0)
    yield store, ColumnarCatalog(arts, ops)
    store.close()


def _same(got: Any, want: Any) -> None:
    def key(a: Any) -> Any:
        return None if a is None else (a.artifact_id, a.kind, a.uri, a.pinned, dict(a.labels), dict(a.metrics), a.created_at, a.run_id, a.node_id, a.size, a.name)  # fmt: skip

    if isinstance(want, list):
        assert [key(a) for a in got] == [key(a) for a in want]
    else:
        assert key(got) == key(want)


BEST = [
    dict(kind="checkpoint", metric="val_acc"),
    dict(kind="checkpoint", metric="val_acc", mode="min"),
    dict(kind="checkpoint", metric="loss"),
    dict(kind="config", metric="val_acc", filters={"exp": "A"}),
    dict(kind="checkpoint", metric="val_acc", filters={"exp": "B", "seed": 2}),
    dict(kind="checkpoint", metric="loss", filters={"flag": True}),
    dict(kind="checkpoint", metric="loss", filters={"flag": 1}),
    dict(kind="checkpoint", metric="val_acc", filters={"lr": 1.0}),
    dict(kind="checkpoint", metric="val_acc", where=ScopeFilter(run_id="run1")),
    dict(kind="checkpoint", metric="val_acc", where=ScopeFilter(run_id="run2", node_id="cell3"), filters={"exp": "C"}),
    dict(kind="checkpoint", metric="nope"),
    dict(kind="nokind", metric="val_acc"),
]


@pytest.mark.parametrize("query", BEST, ids=[str(q) for q in BEST])
def test_best_agrees_with_format_1(twin: tuple[Store, ColumnarCatalog], query: dict[str, Any]) -> None:
    store, cat = twin
    want = store.artifacts.best(**query)
    _same(cat.best(**query), want)
    assert want is not None or query["metric"] == "nope" or query["kind"] == "nokind"


SEARCH = [
    dict(kind="checkpoint", labels={"exp": "A"}, limit=10),
    dict(kind="checkpoint", labels={"exp": "A", "seed": 1}),
    dict(kind="checkpoint", labels={"flag": False}, limit=5),
    dict(kind="checkpoint", labels={"flag": 0}),
    dict(kind="config", labels={"lr": 1}),
    dict(kind="checkpoint", metric="val_acc", limit=10),
    dict(kind="checkpoint", metric="loss", mode="min", labels={"exp": "C"}, limit=7),
    dict(kind="checkpoint", where=ScopeFilter(run_id="run0"), limit=20),
    dict(kind="config"),
    dict(labels={"exp": "B"}, limit=15),
    dict(kind="checkpoint", labels={"exp": "Z"}),
]


@pytest.mark.parametrize("query", SEARCH, ids=[str(q) for q in SEARCH])
def test_search_agrees_with_format_1(twin: tuple[Store, ColumnarCatalog], query: dict[str, Any]) -> None:
    store, cat = twin
    want = list(store.artifacts.search(**query))
    _same(cat.search(**query), want)
    assert want or query.get("labels") == {"exp": "Z"}


def test_counts_and_kinds_agree(twin: tuple[Store, ColumnarCatalog]) -> None:
    store, cat = twin
    assert len(cat) == len(store.artifacts)
    assert cat.kinds() == store.artifacts.kinds()


def test_open_reads_no_column_and_a_query_only_its_own(tmp_path: Any) -> None:
    arts, ops = _tables(tmp_path)
    rows = [
        {"artifact_id": f"01A{i:05d}", "kind": "ckpt" if i % 2 else "cfg", "created_at": 1_000 + i,
         "uri": f"cas://blake3/{i:064x}", "labels": {"exp": "AB"[i % 2]}, "metrics": {"acc": i / 10}}
        for i in range(10)
    ]  # fmt: skip
    arts.commit(artifact_rows_to_arrow(rows), app_id="w", seq=0)
    cat = ColumnarCatalog(arts, ops)
    assert all(not seg.columns for seg in cat._segments.values())  # opening read no artifact column
    assert cat.best(kind="ckpt", metric="acc").artifact_id == "01A00009"
    # the flat metric column, not the map, ids, labels or the rest (created_at: only the winner's row
    # group, found by its footer statistics)
    assert set(cat._segments["ckpt"].columns) == {"metric.acc"}
    assert not cat._segments["cfg"].columns  # nor the other kind
    assert [a.artifact_id for a in cat.search(kind="cfg", labels={"exp": "A"}, limit=2)] == ["01A00008", "01A00006"]
    # of labels, only the flat column of the key's string values: a str label is asked for
    assert set(cat._segments["cfg"].columns) == {"label.exp.s"}  # newest first: created_at of the newest group
    assert [a.artifact_id for a in cat.search(kind="cfg", labels={"ex p": "A"}, limit=2)] == []
    # a key that is no identifier: the map's keys and string values (2 of its 6 leaves)
    assert set(cat._segments["cfg"].columns) == {"label.exp.s", "labels:key_value.key,key_value.value.s"}


def test_pending_rows_then_their_commit_and_later_appends(tmp_path: Any) -> None:
    arts, ops = _tables(tmp_path)

    def row(i: int, acc: float) -> dict[str, Any]:
        return {"artifact_id": f"01B{i:05d}", "kind": "ckpt", "created_at": 1_000 + i, "uri": f"cas://blake3/{i:064x}",
                "labels": {"exp": "A"}, "metrics": {"acc": acc}}  # fmt: skip

    arts.commit(artifact_rows_to_arrow([row(1, 0.5), row(2, 0.7)]), app_id="w", seq=0)
    cat = ColumnarCatalog(arts, ops)
    assert cat.best(kind="ckpt", metric="acc").artifact_id == "01B00002"
    # a spooled row of another writer, not committed yet
    cat.add_rows([row(3, 0.9)])
    assert cat.best(kind="ckpt", metric="acc").artifact_id == "01B00003"
    assert [a.artifact_id for a in cat.search(kind="ckpt", labels={"exp": "A"})] == ["01B00003", "01B00002", "01B00001"]
    # it is committed: the pending copy goes, the answer stays; columns read before are kept and extended
    arts.commit(artifact_rows_to_arrow([row(3, 0.9)]), app_id="other", seq=0)
    assert cat.refresh() is True
    assert not cat._pending and len(cat) == 3
    assert cat.best(kind="ckpt", metric="acc").artifact_id == "01B00003"
    # a tie on the metric goes to the newest
    arts.commit(artifact_rows_to_arrow([row(4, 0.9), row(0, 0.9)]), app_id="w", seq=1)
    cat.refresh()
    assert cat.best(kind="ckpt", metric="acc").artifact_id == "01B00004"
    assert [a.artifact_id for a in cat.search(kind="ckpt", metric="acc", limit=3)] == [
        "01B00004",
        "01B00003",
        "01B00000",
    ]
    # a delete op reaches the catalog on refresh
    ops.commit(
        op_rows_to_arrow([{"op_id": "01OP1", "ts": 5_000, "kind": "delete", "artifact_id": "01B00004"}]),
        app_id="w",
        seq=0,
    )
    cat.refresh()
    assert cat.best(kind="ckpt", metric="acc").artifact_id == "01B00003"
    assert len(cat) == 4


def test_a_cold_open_and_queries_do_not_import_pandas(tmp_path: Any) -> None:
    # pyarrow imports pandas on its first conversion of a Python value: 0.5-2 s, more than the cold-open
    # budget (storage/arrays.py); the open, best and search paths must never make one
    arts, ops = _tables(tmp_path)
    rows = [
        {"artifact_id": f"01C{i:05d}", "kind": "ckpt", "created_at": 1_000 + i, "uri": f"cas://blake3/{i:064x}",
         "labels": {"exp": "AB"[i % 2], "on": i % 3 == 0, "seed": i % 4}, "metrics": {"acc": i / 10}}
        for i in range(30)
    ]  # fmt: skip
    arts.commit(artifact_rows_to_arrow(rows), app_id="w", seq=0)
    ops.commit(
        op_rows_to_arrow([{"op_id": "01OP", "ts": 9, "kind": "delete", "artifact_id": "01C00029"}]), app_id="w", seq=0
    )
    proc = run_child(
        """
        import sys
        from aeg_jupyter.core.columnar import ColumnarCatalog
        from aeg_jupyter.storage.delta import DeltaLakeTable
        from aeg_jupyter.storage.schemas2 import ARTIFACTS2_SCHEMA, OPS2_SCHEMA
        from aeg_jupyter.base.models import ScopeFilter
        cat = ColumnarCatalog(DeltaLakeTable(sys.argv[1], ARTIFACTS2_SCHEMA, ts_field="created_at"),
                              DeltaLakeTable(sys.argv[2], OPS2_SCHEMA, ts_field="ts"))
        best = cat.best(kind="ckpt", metric="acc", filters={"exp": "B", "on": True, "seed": 3.0})
        hits = cat.search(kind="ckpt", labels={"exp": "A"}, metric="acc", limit=3, where=ScopeFilter(run_id="r"))
        print(best.artifact_id, len(hits), len(cat), "pandas" in sys.modules)
        """,
        arts.path,
        ops.path,
    )
    # 27 is the best "B" with on and seed 3 (29 is deleted); no row has run_id "r"
    assert proc.stdout.split() == ["01C00027", "0", "29", "False"]


def test_metrics_read_from_flat_columns_and_from_the_map_of_older_files(tmp_path: Any) -> None:
    arts, ops = _tables(tmp_path)

    def row(i: int, metrics: dict[str, float]) -> dict[str, Any]:
        return {"artifact_id": f"01D{i:05d}", "kind": "ckpt", "created_at": 1_000 + i, "uri": f"cas://blake3/{i:064x}",
                "metrics": metrics}  # fmt: skip

    old = artifact_rows_to_arrow([row(1, {"acc": 0.9, "odd name": 5.0}), row(2, {"acc": 0.1})])
    old = old.drop_columns([n for n in old.column_names if n.startswith("metric.")])  # written before flat columns
    arts.commit(old, app_id="w", seq=0)
    new = artifact_rows_to_arrow([row(3, {"acc": 0.5, "f1": 0.7}), row(4, {"odd name": 9.0})])
    assert [n for n in new.column_names if n.startswith("metric.")] == ["metric.acc", "metric.f1"]
    arts.commit(new, app_id="w", seq=1)  # adds the flat columns to the table's schema
    assert {"metric.acc", "metric.f1"} <= set(arts.dataset().schema.names)
    cat = ColumnarCatalog(arts, ops)
    assert cat.best(kind="ckpt", metric="acc").artifact_id == "01D00001"  # from the old file's map
    assert cat.best(kind="ckpt", metric="acc", mode="min").artifact_id == "01D00002"
    assert cat.best(kind="ckpt", metric="f1").artifact_id == "01D00003"  # only the new file has it
    assert cat.best(kind="ckpt", metric="odd name").artifact_id == "01D00004"  # no flat column: the map
    assert [a.artifact_id for a in cat.search(kind="ckpt", metric="acc")] == ["01D00001", "01D00003", "01D00002"]


def test_labels_read_from_flat_columns_and_from_the_map_of_older_files(tmp_path: Any) -> None:
    arts, ops = _tables(tmp_path)

    def row(i: int, labels: dict[str, Any]) -> dict[str, Any]:
        return {"artifact_id": f"01E{i:05d}", "kind": "ckpt", "created_at": 1_000 + i, "uri": f"cas://blake3/{i:064x}",
                "labels": labels, "metrics": {"acc": i / 10}}  # fmt: skip

    old = artifact_rows_to_arrow([row(1, {"exp": "A", "seed": 3, "odd key": "x"}), row(2, {"exp": "B", "flag": True})])
    old = old.drop_columns([n for n in old.column_names if n.startswith("label.")])  # written before flat columns
    arts.commit(old, app_id="w", seq=0)
    new = artifact_rows_to_arrow(
        [row(3, {"exp": "A", "seed": 3.0, "flag": 1}), row(4, {"seed": "3", "odd key": "x", "big": 2**70}),
         row(5, {"exp": "B", "flag": True, "seed": 2})]
    )  # fmt: skip
    flat = [n for n in new.column_names if n.startswith("label.")]
    # one column per key and type; a key that is no identifier and a value that fits no type stay map-only
    assert flat == ["label.exp.s", "label.flag.b", "label.flag.i", "label.seed.f", "label.seed.i", "label.seed.s"]
    assert new.column("label.seed.i").to_pylist() == [None, None, 2]
    arts.commit(new, app_id="w", seq=1)
    cat = ColumnarCatalog(arts, ops)

    def ids(**labels: Any) -> list[str]:
        return [a.artifact_id[-1] for a in cat.search(kind="ckpt", labels=labels)]

    assert ids(exp="A") == ["3", "1"]  # 1 from the old file's map
    assert ids(seed=3) == ["3", "1"]  # 3 == 3.0, not "3"
    assert ids(seed="3") == ["4"]
    assert ids(flag=True) == ["5", "2"]  # True is not 1
    assert ids(flag=1) == ["3"]
    assert ids(**{"odd key": "x"}) == ["4", "1"]
    assert ids(big=2**70) == ["4"]
    assert ids(exp="B", flag=True) == ["5", "2"]
    assert cat.best(kind="ckpt", metric="acc", filters={"seed": 3}).artifact_id == "01E00003"


def test_names_that_differ_only_in_case_commit(tmp_path: Any) -> None:
    """Delta column names are case-insensitive: `metric.Acc` beside `metric.acc` would fail every commit."""
    arts, ops = _tables(tmp_path)
    base = {"kind": "ckpt", "uri": "cas://blake3/" + "0" * 64}
    arts.commit(artifact_rows_to_arrow([{**base, "artifact_id": "01F1", "created_at": 1, "metrics": {"acc": 0.5},
                                        "labels": {"exp": "a"}}]), app_id="w", seq=0)  # fmt: skip
    arts.commit(artifact_rows_to_arrow([{**base, "artifact_id": "01F2", "created_at": 2, "metrics": {"Acc": 0.7},
                                        "labels": {"Exp": "a"}}]), app_id="w", seq=1)  # fmt: skip
    cat = ColumnarCatalog(arts, ops)
    assert cat.best(kind="ckpt", metric="Acc").artifact_id == "01F2"
    assert cat.best(kind="ckpt", metric="acc").artifact_id == "01F1"
    assert [a.artifact_id for a in cat.search(kind="ckpt", labels={"Exp": "a"})] == ["01F2"]
