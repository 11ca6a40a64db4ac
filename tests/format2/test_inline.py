"""Format 2: content of at most INLINE_MAX (4 KiB) lives in its artifact row, not in a blob file.

docs/format2.md, "Small blobs inline": the spool line carries ``content_b64``, the Delta commit writes
the ``content`` column, the URI stays the blake3 address of the bytes, and every read by id or URI finds
the row. Real stores in tmp_path, real child processes, real Delta tables read with deltalake.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import REPO, run_child
from deltalake import DeltaTable

from aeg_jupyter.base.errors import CorruptionError
from aeg_jupyter.base.hashing import hash_bytes
from aeg_jupyter.base.models import URI_PREFIX, Artifact
from aeg_jupyter.core.store import Store
from aeg_jupyter.storage.delta_table import UriIndex
from aeg_jupyter.storage.migrate import migrate
from aeg_jupyter.storage.schemas2 import INLINE_MAX


def _blob_files(root: str) -> list[str]:
    out = []
    for dirpath, _dirs, files in os.walk(os.path.join(root, "blobs")):
        out += [os.path.join(dirpath, f) for f in files]
    return out


def _content_cells(root: str) -> dict[str, bytes | None]:
    t = DeltaTable(os.path.join(root, "tables", "artifacts")).to_pyarrow_table(columns=["artifact_id", "content"])
    return dict(zip(t.column(0).to_pylist(), t.column(1).to_pylist(), strict=True))


def _saves(store: Store, tmp: Any) -> dict[str, tuple[Artifact, bytes]]:
    """One small artifact through every save call, and the bytes each must read back as."""
    arts = store.artifacts
    src = tmp / "small.csv"
    src.write_bytes(b"a,b\n1,2\n")
    w = arts.open_writer(kind="stream", name="w.bin")
    w.write(b"\x00\x01streamed")
    edge = os.urandom(INLINE_MAX)  # exactly the limit: still inline
    out = {
        "json": (arts.save_json({"lr": 0.001, "name": "é"}, kind="config"), None),
        "text": (arts.save_text("hello inline", kind="note"), b"hello inline"),
        "bytes": (arts.save_bytes(edge, kind="blob", name="edge.bin"), edge),
        "file": (arts.save_file(str(src), kind="table"), b"a,b\n1,2\n"),
        "writer": (w.commit(), b"\x00\x01streamed"),
        "empty": (arts.save_bytes(b"", kind="blob", name="empty.bin"), b""),
    }
    out["json"] = (out["json"][0], json.dumps({"lr": 0.001, "name": "é"}, ensure_ascii=False).encode())
    return out  # type: ignore[return-value]


def _check_reads(store: Store, saved: dict[str, tuple[Artifact, bytes]]) -> None:
    arts = store.artifacts
    for what, (art, data) in saved.items():
        for ref in (art.artifact_id, art.uri):
            assert arts.load_bytes(ref) == data, what
            assert arts.load_bytes(ref, verify=True) == data, what
            path = arts.local_file(ref, verify=True)
            with open(path, "rb") as f:
                assert f.read() == data, what
            assert not os.stat(path).st_mode & 0o222, "materialized files are read-only"
            assert path.startswith(os.path.join(store.root, "files", art.blob_id))
    assert arts.load_json(saved["json"][0].artifact_id) == {"lr": 0.001, "name": "é"}
    assert arts.load_text(saved["text"][0].uri) == "hello inline"


def test_small_saves_make_no_blob_file_and_read_back_before_and_after_the_flush(tmp_path: Any) -> None:
    root = str(tmp_path / "s")
    with Store(root, format=2) as store:
        saved = _saves(store, tmp_path)
        for art, data in saved.values():
            assert art.uri == URI_PREFIX + hash_bytes(data) and art.size == len(data)
        assert _blob_files(root) == []
        _check_reads(store, saved)  # from this writer's spool rows
        store.flush()
        assert store.artifact_table.pending_rows == []
        _check_reads(store, saved)  # from the Delta table's content column
        cells = _content_cells(root)
        for art, data in saved.values():
            assert cells[art.artifact_id] == data
    assert _blob_files(root) == []
    with Store(root, format=2) as store:  # a fresh open: the catalog from the table, content by URI
        _check_reads(store, saved)


def test_a_fresh_process_reads_inline_content_by_id_and_uri(tmp_path: Any) -> None:
    root = str(tmp_path / "s")
    with Store(root, format=2) as store:
        saved = _saves(store, tmp_path)
    want = {a.artifact_id: hashlib.sha256(d).hexdigest() for a, d in saved.values()}
    out = run_child(
        """
        import hashlib, json, sys
        from aeg_jupyter.core.store import Store
        with Store(sys.argv[1], format=2) as store:
            arts = store.artifacts
            got = {}
            for aid in json.loads(sys.argv[2]):
                a = arts.get(aid)
                data = arts.load_bytes(a.uri, verify=True)
                assert open(arts.local_file(aid), "rb").read() == data
                got[aid] = hashlib.sha256(data).hexdigest()
            print(json.dumps(got))
        """,
        root,
        json.dumps(list(want)),
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == want
    assert _blob_files(root) == []


def test_another_process_reads_content_still_in_the_writers_spool(tmp_path: Any) -> None:
    root = str(tmp_path / "s")
    with Store(root, format=2) as store:
        store.artifacts.save_json({"warm": 1}, kind="config")  # the table exists
    child = """
        import sys, time
        from aeg_jupyter.core.store import Store
        store = Store(sys.argv[1], format=2)
        store.artifact_table.flush_seconds = 3600  # the row stays in the spool while the reader looks
        a = store.artifacts.save_text("only in my spool", kind="note")
        print(a.artifact_id, a.uri, flush=True)
        sys.stdin.readline()  # held until the reader is done
        store.close()
        """
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(child), root], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        assert proc.stdout is not None and proc.stdin is not None
        aid, uri = proc.stdout.readline().split()
        with Store(root, format=2) as reader:
            assert aid not in _content_cells(root), "the row is still in the writer's spool"
            assert reader.artifacts.load_text(aid) == "only in my spool"
            assert reader.artifacts.load_text(uri, verify=True) == "only in my spool"
            with open(reader.artifacts.local_file(aid), "rb") as f:
                assert f.read() == b"only in my spool"
        proc.stdin.write("\n")
        proc.stdin.flush()
        assert proc.wait(60) == 0, proc.stderr.read() if proc.stderr else ""
    finally:
        if proc.poll() is None:
            proc.kill()
    assert _content_cells(root)[aid] == b"only in my spool"
    assert _blob_files(root) == []


def test_over_the_limit_is_a_blob_file_and_identical_small_saves_share_a_uri(tmp_path: Any) -> None:
    root = str(tmp_path / "s")
    with Store(root, format=2) as store:
        arts = store.artifacts
        big = os.urandom(INLINE_MAX + 1)
        b = arts.save_bytes(big, kind="blob")
        one = arts.save_json({"same": True}, kind="config")
        two = arts.save_json({"same": True}, kind="config")
        assert one.uri == two.uri and one.artifact_id != two.artifact_id
        assert _blob_files(root) == [store.blobs.path(b.blob_id)]
        store.flush()
        cells = _content_cells(root)
        assert cells[b.artifact_id] is None and cells[one.artifact_id] == cells[two.artifact_id] == b'{"same": true}'
        assert arts.load_bytes(b.uri, verify=True) == big
        assert arts.get(one.uri).artifact_id == two.artifact_id  # the newest with that content
        arts.delete(two)
        assert arts.load_json(one.uri) == {"same": True}


def test_inline_content_survives_maintain_and_gc_and_a_deleted_ones_goes_with_its_row(tmp_path: Any) -> None:
    root = str(tmp_path / "s")
    with Store(root, format=2) as store:
        arts = store.artifacts
        keep = [arts.save_json({"i": i}, kind="config") for i in range(30)]
        gone = arts.save_text("delete me", kind="note")
        store.flush()
        arts.delete(gone)
        report = arts.gc(dry_run=False)  # retention -> maintain (fold, compact, checkpoint, vacuum) -> sweep
        assert report.maintenance is not None
        store.maintain(vacuum_hours=0)
        for i, a in enumerate(keep):
            assert arts.load_json(a.uri, verify=True) == {"i": i}
            with open(arts.local_file(a.artifact_id, verify=True), "rb") as f:
                assert json.loads(f.read()) == {"i": i}
        assert gone.artifact_id not in _content_cells(root)
        assert store.artifact_table.inline_content(gone.blob_id) is None
        assert arts.verify().ok
    assert _blob_files(root) == []


def test_a_migrated_store_reads_inline_and_gc_lets_the_old_small_blob_files_go(tmp_path: Any) -> None:
    root = str(tmp_path / "s")
    src = tmp_path / "d"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "x.txt").write_bytes(b"inside a directory")
    with Store(root, format=1) as old:  # format 1: every content a blob file
        small = old.artifacts.save_json({"k": 1}, kind="config")
        big = old.artifacts.save_bytes(b"z" * (INLINE_MAX + 10), kind="blob")
        d = old.artifacts.save_dir(str(src), kind="dataset")
    before = set(_blob_files(root))
    assert len(before) == 4  # small, big, the directory's file and its manifest
    migrate(root)
    with Store(root, format=2) as store:
        arts = store.artifacts
        cells = _content_cells(root)
        assert cells[small.artifact_id] == b'{"k": 1}' and cells[big.artifact_id] is None
        assert arts.load_json(small.uri, verify=True) == {"k": 1}  # both ways: the file is still there
        report = arts.gc(dry_run=False)
        after = set(_blob_files(root))
        assert store.blobs.path(small.blob_id) not in after, "its content is inline: the file may go"
        assert store.blobs.path(small.blob_id) in report.blobs or small.blob_id in report.blobs
        assert store.blobs.path(big.blob_id) in after
        entry = arts.manifest(d)[0]["blob"] if arts.manifest(d)[0]["blob"] else arts.manifest(d)[1]["blob"]
        assert store.blobs.path(entry) in after, "a directory's files stay blob files"
        assert arts.load_json(small.uri, verify=True) == {"k": 1}
        with open(arts.local_file(small.artifact_id, verify=True), "rb") as f:
            assert f.read() == b'{"k": 1}'
        ldir = arts.local_dir(d)
        with open(os.path.join(ldir, "sub", "x.txt"), "rb") as f:
            assert f.read() == b"inside a directory"
        assert arts.verify().ok


def _tamper_content(root: str, aid: str) -> None:
    """Rewrite the data file holding ``aid``'s row with one byte of its content cell changed (same length)."""
    dt = DeltaTable(os.path.join(root, "tables", "artifacts"))
    for rel in dt.file_uris():
        path = rel.removeprefix("file://")
        t = pq.read_table(path)
        ids = t.column("artifact_id").to_pylist()
        if aid not in ids:
            continue
        cells = t.column("content").to_pylist()
        i = ids.index(aid)
        cells[i] = bytes([cells[i][0] ^ 1]) + cells[i][1:]
        t = t.set_column(t.schema.get_field_index("content"), "content", pa.array(cells, pa.binary()))
        pq.write_table(t, path)
        return
    raise AssertionError(f"no data file holds {aid}")


def test_verify_reports_a_tampered_content_cell_like_a_damaged_blob(tmp_path: Any) -> None:
    root = str(tmp_path / "s")
    with Store(root, format=2) as store:
        ok = store.artifacts.save_json({"fine": 1}, kind="config")
        bad = store.artifacts.save_text("will be damaged", kind="note")
        store.flush()
        assert store.artifacts.verify().ok
    _tamper_content(root, bad.artifact_id)
    with Store(root, format=2) as store:
        report = store.artifacts.verify()
        assert not report.ok and report.corrupt == [bad.blob_id], str(report)
        assert report.missing == []
        with pytest.raises(CorruptionError, match="verify"):
            store.artifacts.load_bytes(bad.artifact_id, verify=True)
        assert store.artifacts.load_json(ok.uri, verify=True) == {"fine": 1}
        store.artifacts.verify(repair=True)  # no file to move aside: nothing else is touched
        assert store.artifacts.load_json(ok.uri, verify=True) == {"fine": 1}


def test_ten_thousand_small_json_saves_take_at_most_twice_their_payload_plus_the_tables(tmp_path: Any) -> None:
    root = str(tmp_path / "s")
    payload = 0
    with Store(root, format=2) as store:
        for i in range(10_000):
            a = store.artifacts.save_json({"step": i, "loss": 1 / (i + 1), "tag": f"run-{i % 7}"}, kind="metrics")
            payload += a.size
        store.flush()
        store.maintain(vacuum_hours=0)
    files, total, tables, blocks = 0, 0, 0, 0
    for dirpath, _dirs, names in os.walk(root):
        for n in names:
            st = os.lstat(os.path.join(dirpath, n))
            files += 1
            total += st.st_size
            blocks += st.st_blocks * 512
            if os.path.relpath(dirpath, root).startswith("tables"):
                tables += st.st_size
    print(
        f"10,000 small JSON saves: {files} files, {total:,} bytes ({blocks:,} allocated), payload {payload:,}, tables {tables:,}"
    )
    assert _blob_files(root) == []
    assert files < 100, f"{files} files for 10,000 artifacts"
    assert total <= 2 * payload + tables, (total, payload, tables)
    # what the disk holds, blocks included: format 1 spends a 4 KiB block per blob (40 MB here)
    assert blocks <= 2 * payload + tables + files * 4096, (blocks, payload, tables, files)


def test_the_uri_index_finds_every_row_of_a_uri_and_falls_back_for_odd_uris() -> None:
    uris = [URI_PREFIX + hash_bytes(str(i).encode()) for i in range(5000)]
    uris[10] = uris[20]  # identical content saved twice
    index = UriIndex(pa.chunked_array([pa.array(uris[:2500]), pa.array(uris[2500:])]))
    for i, u in enumerate(uris):
        assert i in index.rows(u)
    assert index.rows(uris[20]) == [10, 20]
    assert index.rows(URI_PREFIX + "0" * 64) == [] and index.rows("cas://blake3/not-hex") == []
    # same first 16 hex digits, different digest: both are candidates, the caller compares the cells
    twin = uris[0][: len(URI_PREFIX) + 16] + "f" * 48
    assert 0 in UriIndex(pa.array([uris[0], twin])).rows(twin)
    odd = UriIndex(pa.array(["cas://blake3/ABC", uris[3]]))  # not all of one width: a dict
    assert odd.rows(uris[3]) == [1] and odd.rows("cas://blake3/ABC") == [0]
