"""Attacks by a second account that can write into the store: planted symlinks, writes through a
handed-out path, a permissive umask (issue 13: 10, 11, 12, 19).

No store operation may follow a symlink out of the root, for reading, writing or deleting; a
foreign link is moved aside (or refused) with a ``StoreWarning``.
"""

from __future__ import annotations

import os
import stat

import pytest
from conftest import run_child

import aeg_jupyter
from aeg_jupyter.base.errors import AegError, StoreWarning
from aeg_jupyter.base.hashing import hash_bytes
from aeg_jupyter.storage.schemas2 import INLINE_MAX


def _outside(tmp_path, name="outside"):
    d = tmp_path / name
    d.mkdir()
    (d / "secret").write_bytes(b"not yours")
    return d


def _inside(root: str, path: str) -> bool:
    real_root = os.path.realpath(root)
    return os.path.realpath(path).startswith(real_root + os.sep)


@pytest.mark.parametrize("verify", [False, True])
def test_as_local_file_never_returns_a_planted_symlink(store_root, tmp_path, verify):
    """Attack 10: files/<digest>/<name> planted as a link out of the root, before and after a first use."""
    outside = _outside(tmp_path)
    store = aeg_jupyter.Store(store_root)
    art = store.artifacts.save_text("the real bytes", kind="note", name="notes.txt")
    for already_used in (False, True):
        target = os.path.join(store_root, "files", art.blob_id, "notes.txt")
        if already_used:
            store.artifacts.local_file(art)
        if os.path.lexists(target):
            os.chmod(os.path.dirname(target), 0o755)
            os.unlink(target)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        os.symlink(outside / "secret", target)
        with pytest.warns(StoreWarning, match="symlink"):
            path = store.artifacts.local_file(art, verify=verify)
        assert not os.path.islink(path) and _inside(store_root, path)
        with open(path, "rb") as f:
            assert f.read() == b"the real bytes"
    assert (outside / "secret").read_bytes() == b"not yours"
    store.close()


def test_a_symlinked_blob_fan_does_not_make_blobs_land_outside(store_root, tmp_path):
    """Attack 10: blobs/<ab> planted as a link to a directory out of the root."""
    outside = _outside(tmp_path)
    store = aeg_jupyter.Store(store_root)
    # written in place / through a temp file (both above format 2's INLINE_MAX: blob files, not row content)
    small, big = b"small payload " * 600, os.urandom(9 << 20)
    for data in (small, big):
        fan = os.path.join(store_root, "blobs", hash_bytes(data)[:2])
        if not os.path.lexists(fan):
            os.symlink(outside, fan)
    src = tmp_path / "big.bin"
    src.write_bytes(big)
    with pytest.warns(StoreWarning, match="symlink"):
        a = store.artifacts.save_bytes(small, kind="b")
        b = store.artifacts.save_file(src, kind="b")
    assert sorted(p.name for p in outside.iterdir()) == ["secret"]
    for art, data in ((a, small), (b, big)):
        path = store.blobs.path(art.blob_id)
        assert not os.path.islink(os.path.dirname(path)) and _inside(store_root, path)
        assert store.artifacts.load_bytes(art, verify=True) == data
    assert store.artifacts.verify().ok
    store.close()


def test_a_blob_replaced_by_a_symlink_is_not_read(store_root, tmp_path):
    """Attack 10: a blob file replaced by a link to a file out of the root is never read through."""
    outside = _outside(tmp_path)
    store = aeg_jupyter.Store(store_root)
    art = store.artifacts.save_bytes(b"not yours" * 500, kind="b")  # a blob file (> INLINE_MAX) on either format
    path = store.blobs.path(art.blob_id)
    os.unlink(path)
    os.symlink(outside / "secret", path)
    (outside / "secret").write_bytes(b"NOT YOURS" * 500)  # same size as the blob
    with pytest.warns(StoreWarning, match="symlink"), pytest.raises(AegError):
        store.artifacts.load_bytes(art)
    with pytest.raises(AegError):
        store.artifacts.local_file(art)
    assert (outside / "secret").read_bytes() == b"NOT YOURS" * 500
    store.close()


def test_symlinks_in_spool_and_tmp_do_not_make_connect_delete_outside(store_root, tmp_path):
    """Attack 11: a dead writer's spool directory (and its files, and a temp dir) planted as links out of the root."""
    outside = _outside(tmp_path)
    (outside / "lock").write_text("")
    (outside / "events-000001.jsonl").write_text('{"event_id":"X","ts":1,"kind":"k","severity":2,"version":1}\n')
    (outside / "tmp-file").write_text("keep me")
    aeg_jupyter.Store(store_root).close()
    spool = os.path.join(store_root, "spool")
    os.symlink(outside, os.path.join(spool, "p1x00000000"))  # a whole "writer"
    os.symlink(outside, os.path.join(store_root, "tmp", "p2x00000000"))
    dead = os.path.join(spool, "p3x00000000")  # a real dead writer whose spool file is a link
    os.mkdir(dead)
    open(os.path.join(dead, "lock"), "w").close()
    os.symlink(outside / "events-000001.jsonl", os.path.join(dead, "events-000001.jsonl"))
    before = {p.name: p.read_bytes() for p in outside.iterdir()}
    with pytest.warns(StoreWarning, match="symlink"):
        store = aeg_jupyter.Store(store_root)
    assert {p.name: p.read_bytes() for p in outside.iterdir()} == before
    assert store.event_log.recent(limit=10) == []  # the linked rows were not taken in
    store.close()
    aeg_jupyter.Store(store_root).close()  # the links were set aside: no warning now (warnings are errors)
    assert {p.name: p.read_bytes() for p in outside.iterdir()} == before


@pytest.mark.parametrize("data", [b"shared bytes", b"shared bytes" * 400], ids=["small", "blob_file"])
def test_a_handed_out_path_is_not_the_blob(store_root, tmp_path, data):
    """Attack 12: writing through the path as_local_file gave must not corrupt the blob (or its other artifacts).

    ``small`` is row content on format 2 (``INLINE_MAX``), a blob file on format 1; ``blob_file`` is a file on both.
    """
    store = aeg_jupyter.Store(store_root)
    a = store.artifacts.save_bytes(data, kind="x", name="a.bin")
    b = store.artifacts.save_bytes(data, kind="y", name="b.bin")
    path = store.artifacts.local_file(a)
    if store.format == 1 or len(data) > INLINE_MAX:
        assert os.stat(path).st_ino != os.stat(store.blobs.path(a.blob_id)).st_ino
    assert not os.stat(path).st_mode & 0o222  # handed out read-only
    os.chmod(path, 0o644)  # the owner (or root, without chmod) writes through it
    with open(path, "r+b") as f:
        f.write(b"SHARED")
    assert store.artifacts.load_bytes(b, verify=True) == data
    assert store.artifacts.verify().ok
    again = store.artifacts.local_file(a, verify=True)  # verify re-checks what it hands out, and repairs it
    with open(again, "rb") as f:
        assert f.read() == data
    store.close()


UMASK_CHILD = """
import os, sys
os.umask(0)
import aeg_jupyter
root, src = sys.argv[1], sys.argv[2]
store = aeg_jupyter.Store(root, flush_rows=3)
for i in range(7):
    store.artifacts.save_json({"i": i}, kind="ckpt", metrics={"acc": i})
    store.event_log.record("log", {"i": i})
art = store.artifacts.save_file(src, kind="big")
store.artifacts.local_file(art)
d = os.path.join(os.path.dirname(src), "tree")
os.makedirs(os.path.join(d, "sub"))
open(os.path.join(d, "sub", "f.txt"), "w").write("x")
store.artifacts.local_dir(store.artifacts.save_dir(d, kind="dir"))
store.compact(min_parts=2)
store.close()
"""


def test_modes_do_not_depend_on_the_umask(store_root, tmp_path):
    """Attack 19: under umask 000 nothing the store creates is group- or world-writable."""
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(9 << 20))
    run_child(UMASK_CHILD, store_root, str(src))
    seen = {"dir": 0, "part": 0, "blob": 0}
    for dirpath, _dirnames, filenames in os.walk(store_root):
        mode = stat.S_IMODE(os.lstat(dirpath).st_mode)
        assert not mode & 0o022, f"{dirpath} is {oct(mode)}"
        seen["dir"] += 1
        for name in filenames:
            full = os.path.join(dirpath, name)
            mode = stat.S_IMODE(os.lstat(full).st_mode)
            assert not mode & 0o022, f"{full} is {oct(mode)}"
            rel = os.path.relpath(full, store_root)
            if rel.startswith("blobs" + os.sep):
                assert mode == 0o444, f"{full} is {oct(mode)}"
                seen["blob"] += 1
            elif name.endswith(".parquet"):
                assert mode == 0o644, f"{full} is {oct(mode)}"
                seen["part"] += 1
    assert min(seen.values()) > 0, seen
