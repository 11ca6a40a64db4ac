"""storage/delta.py on real Delta tables in tmp_path: idempotent spool commits (also across a SIGKILL and
racing processes), typed columns round-trip, external readers (DuckDB, Polars, deltalake) agree, and
maintenance (compact, vacuum, delete, update) never shows a duplicate."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from aeg_jupyter.storage.delta import DeltaLakeTable, commit_spool, read_spool_rows
from aeg_jupyter.storage.schemas2 import (
    ARTIFACTS2_SCHEMA,
    EVENTS2_SCHEMA,
    OPS2_SCHEMA,
    artifact_rows_to_arrow,
    artifacts_from_arrow,
    event_rows_to_arrow,
    op_rows_to_arrow,
)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
T0 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z in microseconds


def art_row(i: int, kind: str = "checkpoint", **extra: Any) -> dict[str, Any]:
    row = {
        "artifact_id": f"01ART{i:08d}",
        "kind": kind,
        "created_at": T0 + i,
        "uri": f"cas://blake3/{i:064x}",
        "size": 10 + i,
        "name": f"n{i}.json",
        "mime": "application/json",
        "run_id": f"run{i % 3}",
        "graph_id": "g",
        "node_id": None,
        "pinned": False,
        "labels": {"exp": "A" if i % 2 else "B", "seed": i % 5},
        "metrics": {"val_acc": ((i * 7919) % 1000) / 1000.0, "loss": 1.0 / (i + 1)},
        "preview_uri": None,
    }
    row.update(extra)
    return row


def write_spool(path: str, rows: list[dict[str, Any]]) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")


def artifacts_table(tmp_path: Any) -> DeltaLakeTable:
    return DeltaLakeTable(str(tmp_path / "tables" / "artifacts"), ARTIFACTS2_SCHEMA, ts_field="created_at")


def ids_of(table: pa.Table) -> list[str]:
    return table.column("artifact_id").to_pylist()


def child(code: str, *args: str, timeout: float = 120) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


# -- idempotent commits ----------------------------------------------------------------------------
def test_commit_then_die_before_spool_removal_does_not_append_twice(tmp_path: Any) -> None:
    table = artifacts_table(tmp_path)
    spool = str(tmp_path / "spool" / "pdeadx0001" / "artifacts-0.jsonl")
    rows = [art_row(i) for i in range(50)]
    write_spool(spool, rows)
    # a real process commits the spool and is SIGKILLed between the commit and the removal
    proc = child(
        """
        import os, signal, sys
        from aeg_jupyter.storage.delta import DeltaLakeTable, commit_spool
        from aeg_jupyter.storage.schemas2 import ARTIFACTS2_SCHEMA, artifact_rows_to_arrow
        t = DeltaLakeTable(sys.argv[1], ARTIFACTS2_SCHEMA, ts_field="created_at")
        commit_spool(t, sys.argv[2], writer="pdeadx0001", seq=0, rows_to_arrow=artifact_rows_to_arrow,
                     before_unlink=lambda: os.kill(os.getpid(), signal.SIGKILL))
        """,
        table.path,
        spool,
    )
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGKILL, err
    assert os.path.exists(spool), "the spool outlived its commit, as after a crash"
    assert table.committed_seq("pdeadx0001") == 0
    assert sorted(ids_of(table.read(["artifact_id"]))) == [r["artifact_id"] for r in rows]

    # recovery commits the same spool again: nothing is appended, the spool goes
    assert commit_spool(table, spool, writer="pdeadx0001", seq=0, rows_to_arrow=artifact_rows_to_arrow) == 0
    assert not os.path.exists(spool)
    ids = ids_of(table.read(["artifact_id"]))
    assert len(ids) == len(set(ids)) == 50
    # and the external view agrees
    assert DeltaTable(table.path).to_pyarrow_table(columns=["artifact_id"]).num_rows == 50


def test_next_sequence_of_the_same_writer_commits(tmp_path: Any) -> None:
    table = artifacts_table(tmp_path)
    assert table.commit(artifact_rows_to_arrow([art_row(1)]), app_id="w", seq=0) is True
    assert table.commit(artifact_rows_to_arrow([art_row(1)]), app_id="w", seq=0) is False
    assert table.commit(artifact_rows_to_arrow([art_row(2)]), app_id="w", seq=1) is True
    # another writer's sequence 0 is its own
    assert table.commit(artifact_rows_to_arrow([art_row(3)]), app_id="other", seq=0) is True
    assert sorted(ids_of(table.read(["artifact_id"]))) == [art_row(i)["artifact_id"] for i in (1, 2, 3)]
    assert (table.committed_seq("w"), table.committed_seq("other"), table.committed_seq("nobody")) == (1, 0, None)


def test_processes_racing_to_recover_one_spool_commit_it_once(tmp_path: Any) -> None:
    table = artifacts_table(tmp_path)
    table.create()
    spool = str(tmp_path / "spool" / "pdeadx0002" / "artifacts-3.jsonl")
    write_spool(spool, [art_row(i) for i in range(20)])
    go = str(tmp_path / "go")
    code = """
        import os, sys, time
        from aeg_jupyter.storage.delta import DeltaLakeTable
        from aeg_jupyter.storage.delta import read_spool_rows
        from aeg_jupyter.storage.schemas2 import ARTIFACTS2_SCHEMA, artifact_rows_to_arrow
        t = DeltaLakeTable(sys.argv[1], ARTIFACTS2_SCHEMA)
        data = artifact_rows_to_arrow(read_spool_rows(sys.argv[2]))
        t.snapshot()
        while not os.path.exists(sys.argv[3]):
            time.sleep(0.001)
        print(t.commit(data, app_id="pdeadx0002", seq=3))
        """
    procs = [child(code, table.path, spool, go) for _ in range(4)]
    with open(go, "w"):
        pass
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1] for o in outs]
    assert sorted(o[0].strip() for o in outs) == ["False", "False", "False", "True"]
    ids = ids_of(table.read(["artifact_id"]))
    assert len(ids) == len(set(ids)) == 20


def test_read_spool_rows_takes_whole_lines_only(tmp_path: Any) -> None:
    spool = str(tmp_path / "s.jsonl")
    write_spool(spool, [art_row(1), art_row(2)])
    with open(spool, "a") as f:
        f.write('{"artifact_id": "half')  # a line still being written when the writer died
    assert [r["artifact_id"] for r in read_spool_rows(spool)] == [art_row(1)["artifact_id"], art_row(2)["artifact_id"]]


# -- typed columns ---------------------------------------------------------------------------------
def test_typed_columns_round_trip_exactly(tmp_path: Any) -> None:
    table = artifacts_table(tmp_path)
    labels = {"s": "A", "i": 3, "f": 3.0, "b": True, "zero": 0, "no": False, "big": 2**70, "neg": -(2**63), "e": ""}
    row = art_row(7, labels=labels, metrics={"val_acc": 0.91, "epoch": 3.0}, content=b"\x00{}\xff")
    # format 1's JSON-text columns are read the same way (a migrated row)
    old = art_row(8, labels=json.dumps({"exp": "B", "seed": 1}), metrics=json.dumps({"val_acc": 0.5}))
    # a spool line holds content as base64
    spooled = art_row(9, content_b64="aGk=")
    table.commit(artifact_rows_to_arrow([row, old, spooled]), app_id="w", seq=0)

    got = {a.artifact_id: a for a in artifacts_from_arrow(table.read())}
    a = got[row["artifact_id"]]
    assert a.labels == labels
    assert {k: type(v) for k, v in a.labels.items()} == {k: type(v) for k, v in labels.items()}
    assert a.metrics == {"val_acc": 0.91, "epoch": 3.0}
    assert a.created_at == datetime(2026, 1, 1, 0, 0, 0, 7, tzinfo=UTC)
    assert (a.kind, a.uri, a.size, a.name, a.run_id, a.node_id) == (
        "checkpoint",
        row["uri"],
        17,
        "n7.json",
        "run1",
        None,
    )
    b = got[old["artifact_id"]]
    assert (b.labels, b.metrics) == ({"exp": "B", "seed": 1}, {"val_acc": 0.5})

    content = dict(zip(*table.read(["artifact_id", "content"]).to_pydict().values(), strict=True))
    assert content == {row["artifact_id"]: b"\x00{}\xff", old["artifact_id"]: None, spooled["artifact_id"]: b"hi"}

    # what deltalake itself reports to any engine
    schema = DeltaTable(table.path).to_pyarrow_dataset().schema
    assert schema.field("metrics").type == pa.map_(pa.string(), pa.float64())
    assert schema.field("created_at").type == pa.timestamp("us", tz="UTC")
    assert pa.types.is_map(schema.field("labels").type)


def test_events_and_ops_tables_take_format_1_rows(tmp_path: Any) -> None:
    events = DeltaLakeTable(str(tmp_path / "events"), EVENTS2_SCHEMA, ts_field="ts")
    ev = {
        "event_id": "01EV1", "ts": T0, "kind": "tool_result", "severity": 2, "version": 1, "topic": "train",
        "inputs": json.dumps([{"name": "lr", "kind": "number", "value": 0.1}]),
        "outputs": json.dumps([{"name": "obj", "kind": "json", "value": {"a": [1, 2]}}]),
        "metrics": json.dumps({"loss": 0.25}), "tags": json.dumps(["x", "y"]), "text": "done",
    }  # fmt: skip
    events.commit(event_rows_to_arrow([ev, {"event_id": "01EV2", "ts": T0 + 1, "kind": "log"}]), app_id="w", seq=0)
    got = {r["event_id"]: r for r in events.read().to_pylist()}
    assert got["01EV1"]["metrics"] == [("loss", 0.25)]
    assert got["01EV1"]["tags"] == ["x", "y"]
    assert json.loads(got["01EV1"]["outputs"][0]["value"]) == {"a": [1, 2]}
    assert (got["01EV2"]["severity"], got["01EV2"]["metrics"], got["01EV2"]["inputs"]) == (2, None, None)
    ops = DeltaLakeTable(str(tmp_path / "ops"), OPS2_SCHEMA, ts_field="ts")
    ops.commit(op_rows_to_arrow([{"op_id": "01OP", "ts": T0, "kind": "pin", "artifact_id": "01A"}]), app_id="w", seq=0)
    assert ops.read(["kind", "artifact_id"]).to_pylist() == [{"kind": "pin", "artifact_id": "01A"}]


def test_files_report_partition_rows_and_time_statistics(tmp_path: Any) -> None:
    table = artifacts_table(tmp_path)
    table.commit(
        artifact_rows_to_arrow([art_row(i) for i in range(5)] + [art_row(9, kind="config")]), app_id="w", seq=0
    )
    files = sorted(table.files(), key=lambda f: f.kind)
    # Delta's statistics are milliseconds (truncated): the bounds widen to whole milliseconds
    assert [(f.kind, f.rows, f.min_ts, f.max_ts) for f in files] == [
        ("checkpoint", 5, T0, T0 + 999),
        ("config", 1, T0, T0 + 999),
    ]
    table.commit(artifact_rows_to_arrow([art_row(1999, kind="late")]), app_id="w", seq=1)
    (late,) = table.files(["late"])
    assert late.min_ts <= T0 + 1999 <= late.max_ts
    assert all(os.path.isfile(f.path) for f in files)
    assert table.read(["artifact_id"], kinds=["config"]).column(0).to_pylist() == [art_row(9)["artifact_id"]]


# -- external readers ------------------------------------------------------------------------------
def _filled(tmp_path: Any) -> tuple[DeltaLakeTable, list[dict[str, Any]]]:
    table = artifacts_table(tmp_path)
    rows = [art_row(i, kind="checkpoint" if i % 3 else "config") for i in range(60)]
    for seq in range(3):  # three commits, as three flushes
        table.commit(artifact_rows_to_arrow(rows[seq * 20 : (seq + 1) * 20]), app_id="w", seq=seq)
    return table, rows


def _expected_best(rows: list[dict[str, Any]]) -> str:
    ckpt = [r for r in rows if r["kind"] == "checkpoint"]
    return max(ckpt, key=lambda r: (r["metrics"]["val_acc"], r["created_at"]))["artifact_id"]


QUERY = "SELECT artifact_id FROM artifacts WHERE kind='checkpoint' ORDER BY metrics['val_acc'] DESC, created_at DESC LIMIT 1"


def test_duckdb_ranks_by_a_metric_without_json_functions(tmp_path: Any) -> None:
    duckdb = pytest.importorskip("duckdb")
    table, rows = _filled(tmp_path)
    con = duckdb.connect(config={"autoinstall_known_extensions": False})
    con.register("artifacts", DeltaTable(table.path).to_pyarrow_dataset())
    assert con.sql(QUERY).fetchall() == [(_expected_best(rows),)]
    want = sorted(r["artifact_id"] for r in rows if r["labels"]["exp"] == "A" and r["labels"]["seed"] == 3)
    got = con.sql("SELECT artifact_id FROM artifacts WHERE labels['exp'].s = 'A' AND labels['seed'].i = 3 ORDER BY 1")
    assert [r[0] for r in got.fetchall()] == want
    assert con.sql("SELECT count(*), count(DISTINCT artifact_id) FROM artifacts").fetchall() == [(60, 60)]


def test_duckdb_delta_scan(tmp_path: Any) -> None:
    duckdb = pytest.importorskip("duckdb")
    # no autoinstall: LOAD of a missing extension would otherwise download it
    con = duckdb.connect(config={"autoinstall_known_extensions": False})
    try:
        con.sql("LOAD delta")  # never INSTALL: that downloads from extensions.duckdb.org
    except duckdb.Error as exc:
        pytest.skip(f"DuckDB's delta extension is not installed on this machine (it cannot load offline): {exc}")
    table, rows = _filled(tmp_path)
    q = QUERY.replace("FROM artifacts", f"FROM delta_scan('{table.path}')")
    assert con.sql(q).fetchall() == [(_expected_best(rows),)]


def test_polars_scan_delta_agrees(tmp_path: Any) -> None:
    pl = pytest.importorskip("polars")
    table, rows = _filled(tmp_path)
    lf = pl.scan_delta(table.path)
    best = (
        lf.filter(pl.col("kind") == "checkpoint")
        .sort([pl.col("metrics").map.get("val_acc"), pl.col("created_at")], descending=[True, True])
        .select("artifact_id")
        .head(1)
        .collect()
    )
    assert best["artifact_id"].to_list() == [_expected_best(rows)]
    ids = lf.select("artifact_id").collect()["artifact_id"].to_list()
    assert sorted(ids) == sorted(r["artifact_id"] for r in rows)
    seeds = lf.filter(pl.col("labels").map.get("seed").struct.field("i") == 3).select("artifact_id").collect()
    assert sorted(seeds["artifact_id"].to_list()) == sorted(r["artifact_id"] for r in rows if r["labels"]["seed"] == 3)


# -- maintenance -----------------------------------------------------------------------------------
def test_compaction_and_vacuum_never_show_a_duplicate(tmp_path: Any) -> None:
    table = artifacts_table(tmp_path)
    rows = [art_row(i, kind="checkpoint" if i % 2 else "config") for i in range(200)]
    for seq in range(20):
        table.commit(artifact_rows_to_arrow(rows[seq * 10 : (seq + 1) * 10]), app_id="w", seq=seq)
    want = sorted(r["artifact_id"] for r in rows)
    old = DeltaTable(table.path)
    files_before = len(table.files())

    seen: list[list[str]] = []
    stop = threading.Event()

    def reader() -> None:  # a reader on its own snapshots throughout the maintenance
        while not stop.is_set():
            seen.append(ids_of(DeltaLakeTable(table.path, ARTIFACTS2_SCHEMA).read(["artifact_id"])))

    th = threading.Thread(target=reader)
    th.start()
    try:
        metrics = table.compact()
        table.checkpoint()
    finally:
        stop.set()
        th.join()
    assert metrics["numFilesRemoved"] == files_before and len(table.files()) == 2
    assert seen and all(sorted(s) == want for s in seen)
    assert sorted(ids_of(old.to_pyarrow_table(columns=["artifact_id"]))) == want  # the old snapshot still reads
    assert table.vacuum() == []  # within the retention nothing goes
    removed = table.vacuum(retention_hours=0)
    assert len(removed) == files_before
    assert sorted(ids_of(table.read(["artifact_id"]))) == want
    assert table.committed_seq("w") == 19  # the app transactions survive compaction, checkpoint and vacuum


def test_delete_and_update_fold_ops_into_the_table(tmp_path: Any) -> None:
    table, rows = _filled(tmp_path)
    gone = [rows[1]["artifact_id"], rows[2]["artifact_id"]]
    pinned = rows[4]["artifact_id"]
    assert table.delete_where(f"artifact_id IN ('{gone[0]}', '{gone[1]}')") == 2
    assert table.update_where(f"artifact_id = '{pinned}'", {"pinned": "true"}) == 1
    assert table.delete_where(f"artifact_id IN ('{gone[0]}', '{gone[1]}')") == 0  # a rerun does nothing
    got = {
        r["artifact_id"]: r["pinned"]
        for r in DeltaTable(table.path).to_pyarrow_table(columns=["artifact_id", "pinned"]).to_pylist()
    }
    assert set(got) == {r["artifact_id"] for r in rows} - set(gone)
    assert [k for k, v in got.items() if v] == [pinned]
    assert table.committed_seq("w") == 2


def test_a_delta_rs_error_reads_as_one_plain_line_without_its_credentials() -> None:
    """delta-rs prints an error one line per ": ", each marked with a red "↳" (terminal color codes): shown
    as is in `%aeg status` it was several lines of garbage, and "Kernel error <- ... max_retries <- 1" when
    joined with arrows. ``error_text`` gives the message delta-rs split, on one line, with the store's
    credentials as ***. (The text below is delta-rs 1.x's for a refused endpoint, with a key added.)"""
    from aeg_jupyter.storage.delta import error_text

    raw = (
        "Kernel error -> Generic S3 error\n          \x1b[31m↳\x1b[0m Error performing GET "
        "http://127.0.0.1:9/b/t/_delta_log/_last_checkpoint in 102ms, after 1 retries, max_retries\n"
        "           \x1b[31m↳\x1b[0m 1, retry_timeout\n            \x1b[31m↳\x1b[0m 2s  - HTTP error\n"
        "             \x1b[31m↳\x1b[0m error sending request for key AKIAEXAMPLEKEY42\n"
        "              \x1b[31m↳\x1b[0m Connection refused (os error 111)\n"
    )
    text = error_text(OSError(raw), {"AWS_ACCESS_KEY_ID": "AKIAEXAMPLEKEY42", "AWS_SECRET_ACCESS_KEY": "s3cr3t-value"})
    assert text == (
        "Kernel error -> Generic S3 error: Error performing GET http://127.0.0.1:9/b/t/_delta_log/_last_checkpoint "
        "in 102ms, after 1 retries, max_retries: 1, retry_timeout: 2s - HTTP error: error sending request for "
        "key ***: Connection refused (os error 111)"
    )
    assert error_text(OSError("")) == "OSError"
