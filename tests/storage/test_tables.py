"""aeg_jupyter.storage.tables: JSONL spools flushed into partitioned Parquet parts, on real files."""

from __future__ import annotations

import json
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import aeg_jupyter.storage.tables as tables_mod
from aeg_jupyter.base.errors import InvalidInputError, StoreWarning
from aeg_jupyter.base.models import Provenance
from aeg_jupyter.storage.fsops import try_lock
from aeg_jupyter.storage.layout import Layout, PartName
from aeg_jupyter.storage.schemas import ARTIFACTS, EVENTS, artifact_row
from aeg_jupyter.storage.tables import COMPACT_AT, Table

T0 = 1_700_000_000_000_000  # microseconds


@pytest.fixture
def layout(tmp_path):
    return Layout(str(tmp_path / "store"))


@pytest.fixture
def table(layout):
    return Table(layout, EVENTS, writer="w1")


def ev(i: int, ts: int | None = None, kind: str = "log", **extra):
    return {"event_id": f"e{i:05d}", "ts": T0 + i if ts is None else ts, "kind": kind, "text": f"row {i}", **extra}


def _subset(got: dict, like: dict) -> dict:
    return {k: got[k] for k in like}


def _ids(rows) -> list[str]:
    return [r["event_id"] for r in rows]


def _part_files(layout: Layout, kind: str = "log") -> list[str]:
    d = layout.partition_dir("events", kind)
    return sorted(os.listdir(d)) if os.path.isdir(d) else []


# -- append and flush --------------------------------------------------------------------------
def test_append_writes_one_json_line_per_row(table, layout):
    rows = [ev(0), ev(1, text='quotes " and \n newline'), ev(2, text="ünïcödé \u2028")]
    for r in rows:
        table.append(r)
    spool = layout.spool_file("w1", "events", 0)
    with open(spool, "rb") as f:
        lines = f.read().split(b"\n")
    assert lines[-1] == b""  # every line is terminated
    assert [json.loads(line) for line in lines[:-1]] == rows
    assert table.pending_rows == rows


def test_append_with_a_pre_encoded_line(table, layout):
    row = ev(0)
    line = json.dumps(row) + "\n"
    table.append(row, line)
    with open(layout.spool_file("w1", "events", 0)) as f:
        assert f.read() == line


def test_append_refuses_unpaired_surrogates_and_leaves_spool_as_is(table, layout):
    table.append(ev(0))
    spool = layout.spool_file("w1", "events", 0)
    before = os.path.getsize(spool)
    with pytest.raises(InvalidInputError, match="surrogate"):
        table.append(ev(1, text="bad \ud800"))
    assert os.path.getsize(spool) == before
    assert _ids(table.pending_rows) == ["e00000"]


def test_flush_writes_named_partitioned_parts_and_removes_spool(table, layout):
    rows = [ev(0, kind="log"), ev(1, kind="a/b"), ev(2, kind="log"), ev(3, kind="模型")]
    for r in rows:
        table.append(r)
    assert table.flush() == 4
    spool = layout.spool_file("w1", "events", 0)
    assert not os.path.exists(spool)
    assert sorted(n for n in os.listdir(layout.table_dir("events")) if not n.startswith(".")) == sorted(
        ["kind=log", "kind=a%2Fb", "kind=%E6%A8%A1%E5%9E%8B"]
    )
    assert _part_files(layout, "log") == [str(PartName(T0 + 2, "w1", 0))]
    assert _part_files(layout, "a/b") == [str(PartName(T0 + 1, "w1", 0))]
    assert os.listdir(layout.writer_tmp_dir("w1")) == []
    got = {r["event_id"]: r for r in table.read_all_parts()}
    assert set(got) == {r["event_id"] for r in rows}
    for r in rows:
        assert _subset(got[r["event_id"]], r) == r  # kind restored from the partition, ts as int
        assert got[r["event_id"]]["topic"] is None  # a column the row did not have
    assert table.pending_rows == []
    assert table.flush() == 0


def test_next_flush_uses_the_next_sequence(table, layout):
    table.append(ev(0))
    table.flush()
    table.append(ev(1))
    assert os.path.exists(layout.spool_file("w1", "events", 1))
    table.flush()
    assert _part_files(layout) == [str(PartName(T0, "w1", 0)), str(PartName(T0 + 1, "w1", 1))]


def test_flush_rows_triggers_a_flush(layout):
    t = Table(layout, EVENTS, writer="w1", flush_rows=2)
    t.append(ev(0))
    assert _part_files(layout) == []
    t.append(ev(1))
    assert len(_part_files(layout)) == 1
    assert t.pending_rows == []
    assert not os.path.exists(layout.spool_file("w1", "events", 0))


def test_fsync_table_round_trip(layout):
    t = Table(layout, EVENTS, writer="w1", fsync=True)
    t.append(ev(0))
    t.close()
    assert _ids(t.read_all_parts()) == ["e00000"]


def test_many_flushes_are_compacted_into_few_parts(table, layout):
    for i in range(COMPACT_AT + 1):
        table.append(ev(i))
        table.flush()
    assert len(_part_files(layout)) <= COMPACT_AT // 2 + 1
    assert sorted(_ids(table.read_all_parts())) == [f"e{i:05d}" for i in range(COMPACT_AT + 1)]


def test_artifacts_table_round_trip(layout):
    t = Table(layout, ARTIFACTS, writer="w1")
    row = artifact_row(
        "a1", T0, "ckpt", "cas://blake3/" + "0" * 64, 12, name="m.pt", mime=None,
        origin=Provenance("r1", "g1", None), pinned=True, labels={"é": 1}, metrics={"acc": 0.5},
    )  # fmt: skip
    t.append(row)
    t.flush()
    (got,) = t.read_all_parts()
    assert got == row


# -- spools ------------------------------------------------------------------------------------
def test_read_spool_skips_damaged_lines_and_keeps_a_partial_one(table, tmp_path):
    path = str(tmp_path / "events-000000.jsonl")
    good = [ev(0), ev(1), ev(2)]
    body = (
        json.dumps(good[0]) + "\n"
        + "{not json\n"
        + json.dumps(good[1]) + "\n"
        + "[1, 2]\n"
        + json.dumps({"ts": 1, "kind": "log"}) + "\n"  # no id
        + "\n"
        + json.dumps(good[2]) + "\n"
    )  # fmt: skip
    partial = '{"event_id": "e00009", "ts": 9'
    with open(path, "w") as f:
        f.write(body + partial)
    with pytest.warns(StoreWarning, match="damaged line in spool") as record:
        rows, offset = table.read_spool(path)
    assert len(record) == 3
    assert all(path in str(w.message) for w in record)
    assert rows == good
    assert offset == len(body.encode())
    assert table.read_spool(path, offset) == ([], offset)  # the partial line is not consumed
    with open(path, "a") as f:
        f.write(', "kind": "log"}\n')
    rows, offset2 = table.read_spool(path, offset)
    assert _ids(rows) == ["e00009"]
    assert offset2 == os.path.getsize(path)


def test_read_spool_of_a_missing_file(table, tmp_path):
    assert table.read_spool(str(tmp_path / "gone.jsonl"), 17) == ([], 17)


def test_tail_others_sees_new_rows_then_rotation(layout):
    t1 = Table(layout, EVENTS, writer="w1")
    t2 = Table(layout, EVENTS, writer="w2")
    t1.append(ev(0))
    t1.append(ev(1))
    t2.append(ev(100))  # its own rows are not "others"
    rows, rotated = t2.tail_others()
    assert (_ids(rows), rotated) == (["e00000", "e00001"], False)
    assert t2.tail_others() == ([], False)
    t1.append(ev(2))
    rows, rotated = t2.tail_others()
    assert (_ids(rows), rotated) == (["e00002"], False)
    spool = layout.spool_file("w1", "events", 0)
    with open(spool, "a") as f:
        f.write('{"event_id": "e00003"')  # a line still being written
    assert t2.tail_others() == ([], False)
    with open(spool, "a") as f:
        f.write(f', "ts": {T0 + 3}, "kind": "log"}}\n')
    rows, rotated = t2.tail_others()
    assert (_ids(rows), rotated) == (["e00003"], False)
    t1.flush()
    assert t2.tail_others() == ([], True)  # the rows moved into a part t2 has not read
    assert t2.tail_others() == ([], False)
    t1.append(ev(4))  # into a new spool file (seq 1)
    rows, rotated = t2.tail_others()
    assert _ids(rows) == ["e00004"]
    assert rotated is True  # a new spool file appeared in w1's directory


def test_tail_others_reports_a_writer_that_came(layout):
    t2 = Table(layout, EVENTS, writer="w2")
    t2.append(ev(100))
    assert t2.tail_others() == ([], False)
    t3 = Table(layout, EVENTS, writer="w3")
    t3.append(ev(0))
    rows, rotated = t2.tail_others()
    assert _ids(rows) == ["e00000"] and rotated is True


def test_spool_paths(layout):
    t1 = Table(layout, EVENTS, writer="w1")
    t2 = Table(layout, EVENTS, writer="w2")
    a = Table(layout, ARTIFACTS, writer="w2")
    assert t1.spool_paths() == []  # no spool directory yet
    t1.append(ev(0))
    t2.append(ev(1))
    a.append({"artifact_id": "x", "created_at": T0, "kind": "k"})
    open(os.path.join(layout.writer_spool_dir("w2"), "lock"), "w").close()
    assert t1.spool_paths() == [layout.spool_file("w2", "events", 0)]
    assert t1.spool_paths(include_own=True) == [
        layout.spool_file("w1", "events", 0),
        layout.spool_file("w2", "events", 0),
    ]


# -- reading parts -----------------------------------------------------------------------------
def _three_parts(table):
    for base in (100, 300, 200):
        for j in range(3):
            table.append(ev(base + j, ts=T0 + base + j))
        table.flush()


def test_iter_newest_yields_newest_parts_first(table):
    _three_parts(table)
    batches = list(table.iter_newest())
    assert [sorted(_ids(b)) for b in batches] == [
        ["e00300", "e00301", "e00302"],
        ["e00200", "e00201", "e00202"],
        ["e00100", "e00101", "e00102"],
    ]
    assert [p.name.max_ts for p in table.list_parts()] == [T0 + 302, T0 + 202, T0 + 102]


def test_iter_newest_stop(table):
    _three_parts(table)
    asked: list[int] = []

    def stop(max_ts: int) -> bool:
        asked.append(max_ts)
        return max_ts < T0 + 250

    batches = list(table.iter_newest(stop=stop))
    assert [sorted(_ids(b)) for b in batches] == [["e00300", "e00301", "e00302"]]
    assert asked == [T0 + 302, T0 + 202]  # asked before each batch; the oldest part never read


def test_iter_newest_interleaves_row_groups_across_parts(table, monkeypatch):
    monkeypatch.setattr(tables_mod, "ROW_GROUP", 2)
    for i, ts in enumerate([100, 101, 300, 301]):  # one part, two row groups far apart in time
        table.append(ev(i, ts=T0 + ts))
    table.flush()
    table.append(ev(10, ts=T0 + 200))
    table.append(ev(11, ts=T0 + 201))
    table.flush()
    batches = [_ids(b) for b in table.iter_newest()]
    assert batches == [["e00002", "e00003"], ["e00010", "e00011"], ["e00000", "e00001"]]


def test_iter_newest_of_chosen_kinds(table):
    table.append(ev(0, kind="log"))
    table.append(ev(1, kind="metric"))
    table.flush()
    assert [_ids(b) for b in table.iter_newest(["metric"])] == [["e00001"]]
    assert [_ids(b) for b in table.iter_newest(["never-written"])] == []
    assert table.partition_kinds() == ["log", "metric"]


# -- maintenance -------------------------------------------------------------------------------
def test_compact_merges_parts_and_keeps_every_row(table, layout):
    for b in range(5):
        for j in range(3):
            table.append(ev(b * 10 + j))
        table.flush()
    assert len(_part_files(layout)) == 5
    assert table.compact("log", min_parts=2) == 5
    (part,) = table.list_parts()
    assert part.name.writer == "compactw1"
    assert part.name.max_ts == T0 + 42
    rows = table.read_all_parts()
    assert len(rows) == 15 and len(set(_ids(rows))) == 15
    ts = pq.read_table(part.path).column("ts").cast(pa.int64()).to_pylist()
    assert ts == sorted(ts)  # the merged part is in time order
    assert os.listdir(layout.writer_tmp_dir("w1")) == []


def test_compact_of_overlapping_parts_drops_duplicate_ids(layout):
    t = Table(layout, EVENTS, writer="w1")
    first = [ev(i) for i in range(5)]  # ts T0..T0+4
    second = [ev(2), ev(5, ts=T0 + 1), ev(6, ts=T0 + 9)]  # overlaps the first part, repeats e00002
    t.write_parts(first, "w1", 0)
    t.write_parts(second, "w2", 0)
    assert len(t.read_all_parts()) == 8
    assert t.compact("log", min_parts=2) == 2
    rows = t.read_all_parts()
    assert sorted(_ids(rows)) == [f"e{i:05d}" for i in range(7)]
    assert len(t.list_parts()) == 1


def test_compact_leaves_too_few_parts_alone(table, layout):
    for i in range(3):
        table.append(ev(i))
        table.flush()
    before = _part_files(layout)
    assert table.compact("log", min_parts=4) == 0
    assert _part_files(layout) == before


def test_compact_yields_to_another_compactor(table, layout):
    for i in range(3):
        table.append(ev(i))
        table.flush()
    fd = try_lock(os.path.join(layout.table_dir("events"), ".compact.lock"))
    assert fd is not None
    try:
        assert table.compact("log", min_parts=2) == 0
    finally:
        os.close(fd)
    assert len(_part_files(layout)) == 3


def test_unreadable_parts_lists_garbage_and_foreign_files(table, layout):
    table.append(ev(0))
    table.flush()
    pdir = layout.partition_dir("events", "log")
    garbage = os.path.join(pdir, str(PartName(T0 + 50, "w9", 0)))
    with open(garbage, "wb") as f:
        f.write(b"PAR1 this is not parquet")
    foreign = os.path.join(pdir, str(PartName(T0 + 60, "w9", 1)))
    pq.write_table(pa.table({"x": [1, 2]}), foreign)
    open(os.path.join(pdir, "part-tempfile"), "wb").close()  # a stray, not a part
    assert sorted(table.unreadable_parts()) == sorted([garbage, foreign])


def test_reading_around_an_unreadable_part_warns_and_keeps_the_rest(table, layout):
    table.append(ev(0))
    table.flush()
    garbage = os.path.join(layout.partition_dir("events", "log"), str(PartName(T0 + 50, "w9", 0)))
    with open(garbage, "wb") as f:
        f.write(b"\x00" * 100)
    with pytest.warns(StoreWarning, match="unreadable Parquet part") as record:
        rows = table.read_all_parts()
    assert _ids(rows) == ["e00000"]
    assert any(garbage in str(w.message) for w in record)
    with pytest.warns(StoreWarning, match="unreadable Parquet part"):
        tables = list(table.read_columns(["event_id"]))
    assert [t.column("event_id").to_pylist() for t in tables] == [["e00000"]]
