"""Format 2: a data file of the artifacts, events or ops table truncated, zeroed, deleted or with a
damaged page, under a real store in tmp_path (disk damage, a half-restored backup).

What a user gets (docs/architecture.md, "Reliability"): the store opens; a query of the artifacts table
that needs the file raises a ``CorruptionError`` naming it and ``aeg verify --repair`` (its answers
could be wrong: the best may be in the hole), while the events and ops tables, read at open, skip it
with a ``StoreWarning`` naming it; ``verify`` reports it; ``gc`` and ``delete`` refuse while the
artifacts or ops table is damaged; ``verify --repair`` takes the file out of its table with one Delta
commit (a ``remove`` of that file and nothing else), keeps a copy under ``corrupt/`` and reports its
rows as lost (their ids where the id column still reads); then every query, ``verify`` and ``gc`` work.
"""

from __future__ import annotations

import glob
import json
import os
import warnings
from typing import Any

import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from aeg_jupyter.base.errors import CorruptionError, StoreWarning
from aeg_jupyter.core.store import Store
from aeg_jupyter.frontends.cli import main
from aeg_jupyter.storage.schemas2 import INLINE_MAX

DAMAGE = ["truncate", "zero", "delete"]


def _build(root: str) -> dict[str, Any]:
    """Two kinds of artifacts in two commits each, pins and deletes (ops), events in two commits."""
    store = Store(root, format=2)
    arts = store.artifacts
    big = os.urandom(INLINE_MAX + 100)  # a blob file: gc must not free it while a table is damaged
    out: dict[str, Any] = {"ckpt": [], "note": []}
    for commit in range(2):
        for i in range(6):
            out["ckpt"].append(arts.save_json({"c": commit, "i": i}, kind="ckpt", metrics={"acc": commit * 10 + i}))
            out["note"].append(arts.save_text(f"note {commit} {i}", kind="note"))
        for i in range(5):
            store.event_log.record("log", {"commit": commit, "i": i})
        if commit == 0:
            out["blob"] = arts.save_bytes(big, kind="note", name="big.bin")
            arts.pin(out["ckpt"][0])
            arts.delete(out["note"][1])
        store.flush()
    arts.pin(out["note"][2])
    store.flush()
    store.close()
    return out


def _first_file(root: str, table: str) -> str:
    """The oldest data file of ``table`` (its first commit's), as the log names it."""
    dt = DeltaTable(os.path.join(root, "tables", table))
    first = [a for a in _log_actions(root, table) if "add" in a]
    assert first, dt
    return os.path.join(root, "tables", table, first[0]["add"]["path"].replace("%3D", "="))


def _log_actions(root: str, table: str) -> list[dict[str, Any]]:
    out = []
    for path in sorted(glob.glob(os.path.join(root, "tables", table, "_delta_log", "*.json"))):
        with open(path) as fh:
            out.extend(json.loads(line) for line in fh if line.strip())
    return out


def _rows(root: str, table: str, id_field: str) -> dict[str, str]:
    t = DeltaTable(os.path.join(root, "tables", table)).to_pyarrow_table(columns=[id_field])
    return {i: table for i in t.column(0).to_pylist()}


def _damage(path: str, how: str) -> None:
    if how == "truncate":
        with open(path, "r+b") as fh:
            fh.truncate(os.path.getsize(path) // 2)
    elif how == "zero":
        size = os.path.getsize(path)
        with open(path, "wb") as fh:
            fh.write(b"\0" * size)
    elif how == "delete":
        os.unlink(path)
    else:  # a damaged page: the footer and the id column read, another column's data does not
        meta = pq.ParquetFile(path).metadata
        names = [meta.schema.column(j).path for j in range(meta.num_columns)]
        col = meta.row_group(0).column(names.index(how))
        with open(path, "r+b") as fh:
            fh.seek(col.data_page_offset)
            fh.write(os.urandom(col.total_compressed_size))


def _file_ids(path: str, id_field: str) -> list[str]:
    return pq.ParquetFile(path).read(columns=[id_field]).column(0).to_pylist()


def _expected(saved: dict[str, Any], kind: str, lost: list[str]) -> set[str]:
    """The live ids of ``kind`` once the rows in ``lost`` are gone (the blob is a note; one note deleted)."""
    ids = {a.artifact_id for a in saved[kind]} | ({saved["blob"].artifact_id} if kind == "note" else set())
    return ids - set(lost) - {saved["note"][1].artifact_id}


def _open_quietly(root: str) -> tuple[Store, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        store = Store(root, format=2)
    return store, [str(w.message) for w in caught if issubclass(w.category, StoreWarning)]


@pytest.mark.parametrize("how", DAMAGE)
def test_a_damaged_artifacts_file_is_named_reported_refused_by_gc_and_repaired(tmp_path: Any, how: str) -> None:
    root = str(tmp_path / "s")
    saved = _build(root)
    victim = _first_file(root, "artifacts")
    lost_ids = _file_ids(victim, "artifact_id")
    kind = "ckpt" if "kind=ckpt" in victim else "note"
    other = "note" if kind == "ckpt" else "ckpt"
    before = _rows(root, "artifacts", "artifact_id")
    _damage(victim, how)

    store, _ = _open_quietly(root)  # the open reads no artifact column: it works
    arts = store.artifacts
    try:
        with pytest.raises(CorruptionError, match="aeg verify --repair") as err:
            arts.search(kind=kind)
        assert victim in str(err.value)
        with pytest.raises(CorruptionError, match="aeg verify --repair"):
            arts.best(kind="ckpt", metric="acc") if kind == "ckpt" else arts.list(kind=kind)
        assert len(arts.search(kind=other)) > 0  # the other kind's files answer

        report = arts.verify()
        assert not report.ok and report.bad_parts == [victim]
        assert "aeg verify --repair" in str(report)

        blobs_before = sorted(glob.glob(os.path.join(root, "blobs", "**", "*"), recursive=True))
        with pytest.raises(CorruptionError, match="aeg verify --repair") as err:
            arts.gc(dry_run=False)
        assert victim in str(err.value)
        assert sorted(glob.glob(os.path.join(root, "blobs", "**", "*"), recursive=True)) == blobs_before

        version = DeltaTable(os.path.join(root, "tables", "artifacts")).version()
        fixed = arts.verify(repair=True)
        assert [(e["table"], e["file"], e["rows"], e["ids"]) for e in fixed.lost] == [
            ("artifacts", victim, len(lost_ids), None)
        ]
        if how == "delete":
            assert fixed.lost[0]["moved_to"] is None
        else:
            copy = fixed.lost[0]["moved_to"]
            assert copy.startswith(os.path.join(root, "corrupt")) and os.path.isfile(copy)
        assert "lost" in str(fixed) and victim in str(fixed)
        # one commit, removing that file and nothing else
        dt = DeltaTable(os.path.join(root, "tables", "artifacts"))
        assert dt.version() == version + 1
        with open(os.path.join(root, "tables", "artifacts", "_delta_log", f"{version + 1:020d}.json")) as fh:
            actions = [json.loads(line) for line in fh if line.strip()]
        changes = [a for a in actions if "add" in a or "remove" in a]
        assert [os.path.join(root, "tables", "artifacts", a["remove"]["path"]) for a in changes] == [victim]
        after = _rows(root, "artifacts", "artifact_id")
        assert set(after) == set(before) - set(lost_ids)

        # the rest answers; verify is clean; gc runs
        assert {a.artifact_id for a in arts.search(kind=kind)} == _expected(saved, kind, lost_ids)
        assert arts.verify().ok
        arts.gc(dry_run=False)
        if saved["blob"].artifact_id not in lost_ids:  # (a lost row no longer keeps its blob)
            assert len(arts.load_bytes(saved["blob"])) == INLINE_MAX + 100
    finally:
        store.close()
    again, warned = _open_quietly(root)
    try:
        assert not warned
        assert again.artifacts.verify().ok
        assert {a.artifact_id for a in again.artifacts.search(kind=other)} == _expected(saved, other, lost_ids)
        assert {a.artifact_id for a in again.artifacts.search(kind=kind)} == _expected(saved, kind, lost_ids)
    finally:
        again.close()


def test_a_damaged_page_reports_the_ids_of_the_rows_lost(tmp_path: Any) -> None:
    root = str(tmp_path / "s")
    _build(root)
    victim = _first_file(root, "artifacts")
    lost_ids = _file_ids(victim, "artifact_id")
    _damage(victim, "content")  # the footer and the id column are intact
    store, _ = _open_quietly(root)
    try:
        report = store.artifacts.verify()
        assert report.bad_parts == [victim]
        fixed = store.artifacts.verify(repair=True)
        assert [e["ids"] for e in fixed.lost] == [lost_ids]
        assert lost_ids[0] in str(fixed)
        assert store.artifacts.verify().ok
    finally:
        store.close()


@pytest.mark.parametrize("how", DAMAGE)
@pytest.mark.parametrize("table", ["events", "ops"])
def test_a_damaged_events_or_ops_file_is_skipped_with_a_warning_and_repaired(
    tmp_path: Any, table: str, how: str
) -> None:
    root = str(tmp_path / "s")
    saved = _build(root)
    victim = _first_file(root, table)
    id_field = "event_id" if table == "events" else "op_id"
    lost_ids = _file_ids(victim, id_field)
    events_before = 10
    _damage(victim, how)

    store, warned = _open_quietly(root)  # read at open: skipped with a warning naming the file
    try:
        if table == "events":
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                got = store.event_log.recent(kinds=["log"], limit=100)
            warned += [str(w.message) for w in caught]
            assert len(got) == events_before - len(lost_ids)
        assert any(victim in w and "aeg verify --repair" in w for w in warned), warned
        report = store.artifacts.verify()
        assert not report.ok and victim in report.bad_parts
        if table == "ops":  # a hole in the ops may hide a pin: gc and delete refuse
            with pytest.raises(CorruptionError, match="aeg verify --repair"):
                store.artifacts.gc(dry_run=False)
            with pytest.raises(CorruptionError, match="aeg verify --repair"):
                store.artifacts.delete(saved["ckpt"][3])
        fixed = store.artifacts.verify(repair=True)
        assert [(e["table"], e["file"], e["rows"]) for e in fixed.lost] == [(table, victim, len(lost_ids))]
        assert set(_rows(root, table, id_field)).isdisjoint(lost_ids)
        assert store.artifacts.verify().ok
        store.artifacts.gc(dry_run=False)
    finally:
        store.close()
    again, warned = _open_quietly(root)
    try:
        assert not warned
        assert len(again.event_log.recent(kinds=["log"], limit=100)) == (
            events_before - len(lost_ids) if table == "events" else events_before
        )
    finally:
        again.close()


def test_the_cli_verify_names_the_file_and_repair_reports_the_loss(tmp_path: Any, capsys: Any) -> None:
    root = str(tmp_path / "s")
    _build(root)
    victim = _first_file(root, "artifacts")
    _damage(victim, "truncate")
    code = main(["--store", root, "verify"])
    out, err = capsys.readouterr()
    assert code == 1
    assert "aeg verify --repair" in out + err
    code = main(["--store", root, "verify", "--repair"])
    out, err = capsys.readouterr()
    assert "lost" in out and victim in out
    code = main(["--store", root, "verify"])
    out, err = capsys.readouterr()
    assert code == 0, out + err


def test_aeg_status_reports_a_damaged_table_and_what_to_do(
    tmp_path: Any, ipython_shell: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``%aeg status`` in a real shell looks at every data file: a truncated artifacts file (no query
    has read it yet) and a deleted events file are named with `aeg verify --repair`; after the repair
    the status is clean."""
    root = str(tmp_path / "s")
    saved = _build(root)
    art_victim = _first_file(root, "artifacts")
    lost = _file_ids(art_victim, "artifact_id")
    ev_victim = _first_file(root, "events")
    _damage(art_victim, "truncate")
    _damage(ev_victim, "delete")
    monkeypatch.setenv("AEG_STORE", root)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StoreWarning)  # (the open skips the events file, naming it)
        ipython_shell.run_line_magic("load_ext", "aeg_jupyter")
    status = ipython_shell.run_line_magic("aeg", "status")
    text = str(status)
    damaged = dict(status.damaged)
    assert damaged == {"artifacts": (art_victim,), "events": (ev_victim,)}
    lines = [ln for ln in text.splitlines() if ln.startswith("DAMAGED")]
    assert len(lines) == 2 and all("aeg verify --repair" in ln for ln in lines)
    assert art_victim in lines[0] and lines[0].startswith("DAMAGED    artifacts: 1 data file ")
    assert ev_victim in lines[1] and lines[1].startswith("DAMAGED    events: 1 data file ")
    assert "DAMAGED: artifacts, events (run `aeg verify --repair`)" in status.line()
    assert status.artifacts is None and "artifacts  ? (a data file cannot be read)" in text  # (len reads it)

    context = ipython_shell.user_ns["context"]
    context.store.artifacts.verify(repair=True)
    after = ipython_shell.run_line_magic("aeg", "status")
    assert after.damaged == () and "DAMAGED" not in str(after) and "DAMAGED" not in after.line()
    assert after.artifacts == len(_expected(saved, "ckpt", lost)) + len(_expected(saved, "note", lost))


def test_an_events_file_whose_id_column_is_damaged_is_reported_by_verify_and_repaired(tmp_path: Any) -> None:
    """verify reads every events file's id column (rows held twice): a damaged page there is a bad part
    named in the report, not an error out of verify, and the repair takes the file out like the others."""
    root = str(tmp_path / "s")
    _build(root)
    victim = _first_file(root, "events")
    lost_ids = _file_ids(victim, "event_id")
    _damage(victim, "event_id")
    store, _warned = _open_quietly(root)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", StoreWarning)
            report = store.artifacts.verify()
            assert not report.ok and victim in report.bad_parts and "aeg verify --repair" in str(report)
            fixed = store.artifacts.verify(repair=True)
        assert [(e["table"], e["file"]) for e in fixed.lost] == [("events", victim)]
        assert len(store.event_log.recent(kinds=["log"], limit=100)) == 10 - len(lost_ids)
        assert store.artifacts.verify().ok
    finally:
        store.close()
