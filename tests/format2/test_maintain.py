"""Format 2's maintenance (``Store.maintain()``, ``aeg gc`` / ``%aeg gc``): flush -> fold -> compact ->
checkpoint -> vacuum under ``maintenance.lock``, and what external readers see after it.

Real stores in tmp_path, real Delta tables read by deltalake, DuckDB and Polars, real child processes.
docs/format2.md, "When pins and deletes become visible" and "Maintenance", is the design tested here."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from typing import Any

import pytest
from conftest import REPO
from deltalake import DeltaTable

from aeg_jupyter.base.errors import InvalidInputError, StoreWriteError
from aeg_jupyter.base.models import Provenance
from aeg_jupyter.core.maintenance import MaintainReport
from aeg_jupyter.core.store import Store
from aeg_jupyter.frontends.cli import main as cli_main
from aeg_jupyter.storage.delta import maintenance_lock

from .readers import READERS, api_view, artifacts_path, best_by_duckdb, best_by_polars, ids_of, read

pytest.importorskip("duckdb")
pytest.importorskip("polars")


def _populate(store: Store) -> dict[str, Any]:
    """Three kinds, typed labels, pins, unpins, a re-pin, deletes, events.

    The saves are committed 5 at a time (``store.flush``), so the artifacts table has many small files
    whatever the flusher's timing: a slow machine's flusher can otherwise take all 45 in one commit.
    """
    arts = store.artifacts
    saved = []
    for i in range(45):
        saved.append(arts.save_json(
            {"i": i}, kind=("checkpoint", "config", "model")[i % 3],
            labels={"exp": "AB"[i % 2], "seed": i % 4, "on": i % 5 == 0, "lr": 10.0 ** -(i % 3)},
            metrics={"val_acc": (i * 37 % 100) / 100, "loss": 1 / (i + 1)}, origin=Provenance(run_id=f"r{i % 3}"),
        ))  # fmt: skip
        if i % 5 == 4:
            store.flush()
    ids = [a.artifact_id for a in saved]
    for i in (1, 4, 7, 10):
        arts.pin(ids[i])
    arts.pin(ids[4], False)  # unpinned again: the last op wins
    arts.pin(ids[10], False)
    arts.pin(ids[10])  # pinned, unpinned, pinned
    deleted = [ids[i] for i in (0, 3, 8, 30, 44)]
    for aid in deleted:
        arts.delete(aid)
    for i in range(23):
        store.event_log.record("train_log", {"step": i}, metrics={"loss": 1 / (i + 1)})
    return {"ids": ids, "deleted": deleted, "pinned": {ids[1], ids[7], ids[10]}}


def _assert_readers_equal_api(root: str) -> list[tuple[Any, ...]]:
    api = sorted(api_view(root))
    assert api, "the store is empty"
    for reader in READERS:
        rows = read(root, reader)
        assert len(ids_of(rows)) == len(set(ids_of(rows))), f"{reader} sees a duplicate"
        assert sorted(rows) == api, f"{reader} differs from arts.list(scope='all')"
    return api


def test_after_maintain_every_external_reader_sees_exactly_the_live_artifacts(tmp_path: Any) -> None:
    root = str(tmp_path / "s")
    with Store(root, format=2, flush_rows=5) as store:
        made = _populate(store)
        store.flush()
        # before maintenance the deletes and pins are in the ops table only: the artifacts table still
        # holds the deleted rows (what docs/format2.md says external readers see until the fold)
        before = set(ids_of(read(root, "deltalake")))
        assert set(made["deleted"]) <= before
        files_before = len(DeltaTable(artifacts_path(root)).file_uris())
        lines: list[str] = []
        report = store.maintain(progress=lines.append)
    assert isinstance(report, MaintainReport)
    assert report.deleted == len(made["deleted"])
    assert report.repinned == 3  # ids 1, 7 and 10 had pinned=False in their rows
    steps = [line.split(":")[0] for line in lines]
    assert steps[:2] == ["flush", "fold"] and steps.index("compact") < steps.index("checkpoint") < steps.index("vacuum")
    assert "fold removed 5 deleted rows, set 3 pins" in str(report)
    by_table = {t.table: t for t in report.tables}
    # one file per kind after it (how many before depends on how the background flusher batched the commits)
    assert by_table["artifacts"].files_before == files_before >= by_table["artifacts"].files_after == 3

    api = _assert_readers_equal_api(root)
    assert {a[0] for a in api} == set(made["ids"]) - set(made["deleted"])
    assert {a[0] for a in api if a[2]} == made["pinned"]
    # labels keep their types through every reader (True is not 1, 1 is not 1.0)
    one = next(a for a in api if a[0] == made["ids"][5])
    assert one[4] == {"exp": "B", "seed": 1, "on": True, "lr": 0.01}
    assert [type(v) for v in one[4].values()] == [str, int, bool, float]
    # the query, no JSON functions, gives the API's best (and Polars agrees)
    with Store(root, format=2) as store:
        for kind in ("checkpoint", "config", "model"):
            best = store.artifacts.best(kind=kind, metric="val_acc")
            assert best is not None
            assert best_by_duckdb(root, kind, "val_acc") == best.artifact_id == best_by_polars(root, kind, "val_acc")
    # the other tables stay whole: every event once
    events = DeltaTable(os.path.join(root, "tables", "events")).to_pyarrow_table(columns=["event_id"]).column(0)
    assert len(events) == len(set(events.to_pylist())) == 23


def test_maintain_again_changes_nothing(tmp_path: Any) -> None:
    root = str(tmp_path / "s")
    with Store(root, format=2, flush_rows=5) as store:
        _populate(store)
        store.maintain()
        versions = {n: DeltaTable(os.path.join(root, "tables", n)).version() for n in ("artifacts", "events", "ops")}
        again = store.maintain()
    assert (again.deleted, again.repinned, again.conflicts) == (0, 0, 0)
    assert all(t.files_before == t.files_after for t in again.tables)
    # the fold and the compaction found nothing to do: no new commit in any table
    assert {n: DeltaTable(os.path.join(root, "tables", n)).version() for n in versions} == versions


def test_one_runner_per_store(tmp_path: Any) -> None:
    root = str(tmp_path / "s")
    with Store(root, format=2) as store:
        store.artifacts.save_json({"a": 1}, kind="config")
        with maintenance_lock(os.path.join(root, "maintenance.lock")) as held:
            assert held
            report = store.maintain(wait=False)
            assert report.skipped and "another process" in str(report)
            assert report.tables == []
        assert not store.maintain(wait=False).skipped  # free again


def test_vacuum_removes_the_files_compaction_and_fold_replaced(tmp_path: Any) -> None:
    root = str(tmp_path / "s")
    with Store(root, format=2, flush_rows=3) as writer:
        made = _populate(writer)
        writer.flush()
        old = DeltaTable(artifacts_path(root))
        old_files = old.file_uris()
        kept = writer.maintain()  # the default retention (24 h) keeps them for readers on older snapshots
        assert sum(t.vacuumed for t in kept.tables) == 0 and all(os.path.exists(f) for f in old_files)
        assert old.to_pyarrow_table(columns=["artifact_id"]).num_rows == 45  # an old snapshot still reads
        report = writer.maintain(vacuum_hours=0)
        assert sum(t.vacuumed for t in report.tables) >= len(old_files)
        assert not any(os.path.exists(f) for f in old_files)  # gone from disk
        # our own table reader refreshes its snapshot before it reads files
        assert writer.artifact_table.delta.read(["artifact_id"]).num_rows == 40
        assert {a.artifact_id for a in writer.artifacts.list()} == set(made["ids"]) - set(made["deleted"])
    _assert_readers_equal_api(root)


def test_a_reader_open_across_a_vacuum_in_another_process_still_answers(tmp_path: Any) -> None:
    root = str(tmp_path / "s")
    with Store(root, format=2, flush_rows=3) as writer:
        made = _populate(writer)
        writer.flush()
        reader = Store(root, format=2)  # opened on the many small files
        try:
            best_before = reader.artifacts.best(kind="checkpoint", metric="val_acc")
            writer.maintain(vacuum_hours=0)  # the files the reader listed are gone: it refreshes and asks again
            assert reader.artifacts.best(kind="checkpoint", metric="val_acc") == best_before
            assert {a.artifact_id for a in reader.artifacts.list()} == set(made["ids"]) - set(made["deleted"])
        finally:
            reader.close()


LATE_WRITER = """
import sys
from aeg_jupyter.core.store import Store
store = Store(sys.argv[1], format=2, flush_rows=1_000_000)
for t in store.tables.values():
    t.background = False  # the row stays in the spool until close (no background commit)
art = store.artifacts.save_bytes(b"x" * 10_000, kind="blob")  # a blob file, not inline
print(art.artifact_id, art.blob_id, flush=True)
sys.stdin.readline()
store.close()
print("closed", flush=True)
sys.stdin.readline()
"""


def test_gc_frees_a_deleted_artifacts_blob_only_after_the_fold_removed_its_row(tmp_path: Any) -> None:
    root = str(tmp_path / "s")
    Store(root, format=2).close()
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen(
        [sys.executable, "-c", LATE_WRITER, root], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert proc.stdout is not None and proc.stdin is not None
        aid, digest = proc.stdout.readline().split()
        blob = os.path.join(root, "blobs", digest[:2], digest[2:])
        with Store(root, format=2) as store:
            store.artifacts.save_json({"keep": 1}, kind="config")
            store.artifacts.delete(aid)  # seen in the other writer's spool
            report = store.artifacts.gc(dry_run=False)
            # the row is not in the table yet, so the fold could not remove it: the blob stays
            assert report.maintenance is not None and report.maintenance.deleted == 0
            assert os.path.exists(blob) and digest not in report.blobs
            assert "maintain: flushed" in str(report)
            proc.stdin.write("\n")
            proc.stdin.flush()
            assert proc.stdout.readline().strip() == "closed"
            # committed after the fold: an external reader sees it until the next fold
            assert aid in ids_of(read(root, "deltalake"))
            report = store.artifacts.gc(dry_run=False)
            assert report.maintenance is not None and report.maintenance.deleted == 1
            assert digest in report.blobs and not os.path.exists(blob)
        assert aid not in ids_of(read(root, "deltalake"))
        _assert_readers_equal_api(root)
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        proc.wait(60)


def test_aeg_gc_runs_maintenance_on_a_format_2_store(tmp_path: Any, capsys: Any, monkeypatch: Any) -> None:
    root = str(tmp_path / "s")
    with Store(root, format=2, flush_rows=4) as store:
        made = _populate(store)
    monkeypatch.setenv("AEG_STORE_FORMAT", "2")
    capsys.readouterr()
    assert cli_main(["--store", root, "gc"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("gc freed 0 artifacts")
    assert "maintain: flushed" in out and "fold removed 5 deleted rows, set 3 pins" in out
    assert "artifacts" in out.splitlines()[-3]  # the per-table lines
    assert not set(made["deleted"]) & set(ids_of(read(root, "duckdb")))
    # a dry run changes nothing and runs no maintenance
    assert cli_main(["--store", root, "gc", "--dry-run", "--keep-last", "2"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("gc would free") and "maintain" not in out
    _assert_readers_equal_api(root)


def test_percent_aeg_gc_in_a_kernel_runs_maintenance(
    ipython_shell: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = str(tmp_path / "s")
    with Store(root, format=2, flush_rows=4) as store:
        made = _populate(store)
    monkeypatch.setenv("AEG_STORE_FORMAT", "2")
    monkeypatch.setenv("AEG_STORE", root)
    ipython_shell.run_line_magic("load_ext", "aeg_jupyter")
    report = ipython_shell.run_line_magic("aeg", "gc --keep-last 20")
    assert report.maintenance is not None and report.maintenance.deleted == len(made["deleted"]) + len(report.artifacts)
    html = report._repr_html_()
    assert "maintain: flushed" in html and "<table" in html
    ipython_shell.run_line_magic("unload_ext", "aeg_jupyter")
    _assert_readers_equal_api(root)


def test_maintain_refuses_on_a_read_only_store(tmp_path: Any) -> None:
    root = str(tmp_path / "s")
    with Store(root, format=2) as store:
        store.artifacts.save_json({"a": 1}, kind="config")
    os.chmod(root, 0o555)
    try:
        with pytest.warns(Warning), Store(root, format=2) as store:
            if store.store_root.read_only is None:
                pytest.skip("running as a user who can write to a read-only directory (root)")
            with pytest.raises(StoreWriteError, match=r"cannot write|open it where you can write"):
                store.maintain()
    finally:
        os.chmod(root, 0o755)


def test_a_hostile_artifact_id_in_the_tables_deletes_only_its_own_row(tmp_path: Any) -> None:
    from aeg_jupyter.base.ids import new_ts_id
    from aeg_jupyter.storage.schemas import op_row
    from aeg_jupyter.storage.schemas2 import artifact_rows_to_arrow, op_rows_to_arrow

    root = str(tmp_path / "s")
    with Store(root, format=2, flush_rows=1_000_000) as store:
        for t in store.tables.values():
            t.background = False  # type: ignore[attr-defined]  # the rows stay in the spool until flush()
        saved = [store.artifacts.save_json({"i": i}, kind="config").artifact_id for i in range(3)]
        row = dict(store.artifact_table.pending_rows[0])
        store.flush()
        # a foreign writer's rows: an artifact whose id is SQL, and a delete op for it
        hostile = "x' OR kind <> 'y"
        store.artifact_table.delta.commit(artifact_rows_to_arrow([dict(row, artifact_id=hostile)]), app_id="f", seq=0)
        ts, op_id = new_ts_id()
        store.op_table.delta.commit(op_rows_to_arrow([op_row(op_id, ts, "delete", hostile)]), app_id="f", seq=0)
        assert sorted(ids_of(read(root, "deltalake"))) == sorted([*saved, hostile])
        report = store.maintain()
    assert report.deleted == 1
    assert sorted(ids_of(read(root, "deltalake"))) == sorted(saved)  # the quote did not widen the predicate


def test_maintain_on_format_1_flushes_and_merges_and_a_closed_store_refuses(tmp_path: Any) -> None:
    root = str(tmp_path / "s")
    store = Store(root, format=1, flush_rows=2)
    for i in range(33):
        store.artifacts.save_json({"i": i}, kind="config")  # a Parquet part every 2 saves, the last one spooled
    parts = os.path.join(root, "tables", "artifacts", "kind=config")
    assert len(os.listdir(parts)) == 16
    report = store.maintain()
    assert (report.flushed, report.merged) == (1, 17) and len(os.listdir(parts)) == 1
    assert str(report).startswith("maintain: flushed 1 rows, merged 17 small parts")
    assert len(store.artifacts.list()) == 33
    store.close()
    with pytest.raises(InvalidInputError, match="closed"):
        store.maintain()


def test_a_fold_that_loses_to_a_concurrent_compaction_is_computed_again(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The interleaving is forced: right after the fold's update took its snapshot, another DeltaTable
    object (as another process would) commits a compaction of the same table; the update's commit is then
    refused by delta-rs's conflict checker, and the fold starts again from the newest snapshot."""
    from aeg_jupyter.storage.delta import DeltaLakeTable

    root = str(tmp_path / "s")
    armed: list[bool] = []
    raced: list[int] = []
    snapshot, update_where = DeltaLakeTable.snapshot, DeltaLakeTable.update_where

    def racing_snapshot(self: DeltaLakeTable, *, refresh: bool = True) -> Any:
        dt = snapshot(self, refresh=refresh)
        if armed and self.path == artifacts_path(root) and threading.current_thread() is threading.main_thread():
            armed.clear()
            metrics = DeltaTable(self.path).optimize.compact()  # a concurrent commit lands after our snapshot
            raced.append(int(metrics["numFilesRemoved"]))
        return dt

    def armed_update(self: DeltaLakeTable, predicate: str, updates: dict[str, str]) -> int:
        if not raced:
            armed.append(True)
        return update_where(self, predicate, updates)

    with Store(root, format=2, flush_rows=5) as store:
        made = _populate(store)
        store.flush()
        for i in range(3):  # config (where the pins are) gets a few more small files for the compaction
            store.artifacts.save_json({"more": i}, kind="config")
            store.flush()
        monkeypatch.setattr(DeltaLakeTable, "snapshot", racing_snapshot)
        monkeypatch.setattr(DeltaLakeTable, "update_where", armed_update)
        report = store.maintain()
    assert raced and raced[0] > 1, "the concurrent compaction did not happen"
    assert report.conflicts >= 1 and report.deleted == len(made["deleted"]) and report.repinned == 3
    api = _assert_readers_equal_api(root)
    assert {a[0] for a in api if a[2]} == made["pinned"]
