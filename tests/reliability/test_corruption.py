"""Damaged files: a flipped blob byte, truncated or garbage Parquet parts, garbage spool lines."""

from __future__ import annotations

import os

import pytest

import aeg_jupyter
from aeg_jupyter import CorruptionError
from aeg_jupyter.base.errors import StoreWarning
from aeg_jupyter.storage.schemas2 import INLINE_MAX


def _make_store(root: str, **open_args: object) -> list[str]:
    store = aeg_jupyter.Store(root, flush_rows=5, **open_args)
    ids = []
    for i in range(12):
        data = {"i": i, "pad": "x" * INLINE_MAX}  # a blob file on either format (format 2 inlines <= INLINE_MAX)
        ids.append(store.artifacts.save_json(data, kind="ckpt", metrics={"acc": i / 12}).artifact_id)
        store.event_log.record("log", {"i": i})
    store.close()
    return ids


def test_flipped_blob_byte_is_reported_with_the_artifact_id(store_root):
    ids = _make_store(store_root)
    store = aeg_jupyter.Store(store_root)
    art = store.artifacts.get(ids[3])
    path = store.blobs.path(art.blob_id)
    os.chmod(path, 0o644)
    with open(path, "rb") as fh:
        data = bytearray(fh.read())
    data[0] ^= 0x01
    with open(path, "wb") as f:
        f.write(data)
    report = store.artifacts.verify()
    assert report.corrupt == [art.blob_id] and "1 corrupt" in str(report) and "repair=True" in str(report)
    for call in (store.artifacts.load_bytes, store.artifacts.load_json, store.artifacts.local_file):
        with pytest.raises(CorruptionError, match=art.artifact_id):
            call(art.artifact_id, verify=True)
    store.close()


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_bad_parquet_part_is_skipped_with_a_warning_and_repairable(store_root, damage):
    """Format 1's own parts (format 2's data files are the Delta log's: see the test below)."""
    _make_store(store_root, format=1)
    store = aeg_jupyter.Store(store_root, hot_limit=3, format=1)
    part = store.event_table.list_parts(["log"])[-1]  # the oldest part
    size = os.path.getsize(part.path)
    with open(part.path, "r+b") as f:
        if damage == "truncate":
            f.truncate(size // 2)
        else:
            f.write(os.urandom(size))
    store.close()
    with pytest.warns(StoreWarning, match=os.path.basename(part.path)):
        store = aeg_jupyter.Store(store_root, hot_limit=3, format=1)
        got = store.event_log.recent(kinds=["log"], limit=100)
    assert [e.data["i"] for e in got] == list(range(5, 12))  # the damaged part held rows 0-4
    report = store.artifacts.verify()
    assert report.bad_parts == [part.path] and not report.ok
    fixed = store.artifacts.verify(repair=True)
    assert fixed.moved_aside and not os.path.exists(part.path)
    assert store.artifacts.verify().ok
    store.close()
    store = aeg_jupyter.Store(store_root, hot_limit=3, format=1)  # no warning any more
    assert len(store.event_log.recent(kinds=["log"], limit=100)) == 7
    store.close()


def test_garbage_spool_line_of_a_dead_writer_is_skipped_with_a_warning(store_root):
    store = aeg_jupyter.Store(store_root)
    store.event_table.background = False  # no flusher: the rows stay in the spool the "crash" leaves
    store.event_log.record("log", "kept")
    spool = store.event_table.spool_paths(include_own=True)[0]
    with open(spool, "ab") as f:
        f.write(b'{"not": "a row"\n\x00\x01garbage\n')
    store.event_log.record("log", "kept too")
    # simulate a crash: release the lock without flushing
    os.close(store.store_root._lock_fd)
    store.guard.closed = True
    with pytest.warns(StoreWarning, match="spool"):
        store2 = aeg_jupyter.Store(store_root)
    assert store2.event_log.recent_data(kinds=["log"]) == ["kept", "kept too"]
    store2.close()


def test_a_half_written_last_line_is_not_read_until_complete(store_root):
    store = aeg_jupyter.Store(store_root)
    store.event_log.record("log", "whole")
    spool = store.event_table.spool_paths(include_own=True)[0]
    rows, offset = store.event_table.read_spool(spool)
    with open(spool, "ab") as f:
        f.write(b'{"event_id": "01HALF')  # a writer in the middle of its write
    rows2, offset2 = store.event_table.read_spool(spool)
    assert len(rows2) == len(rows) == 1 and offset2 == offset
    store.close()


@pytest.mark.parametrize("size", [100, 3 << 20])  # written in place / through a temp file
def test_a_short_blob_left_by_a_killed_writer_is_rewritten_not_trusted(store_root, size):
    """A new small blob is created under its final name; a writer killed half-way leaves a short
    file there. Saving those bytes again must rewrite it, never count it as stored."""
    from aeg_jupyter.base.hashing import hash_bytes

    data = os.urandom(size)
    store = aeg_jupyter.Store(store_root)
    path = store.blobs.path(hash_bytes(data))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data[: size // 3])  # what the killed writer got to write
    os.chmod(path, 0o444)
    art = store.artifacts.save_bytes(data, kind="raw")
    assert store.artifacts.load_bytes(art.artifact_id, verify=True) == data
    assert store.artifacts.load_bytes(art.artifact_id) == data
    if store.format == 2 and size <= INLINE_MAX:  # the content is in the row: the short file must not shadow it
        assert not os.path.exists(path)
    else:
        assert os.stat(path).st_mode & 0o222 == 0  # blobs stay read-only
    assert store.artifacts.verify().corrupt == []
    store.close()
