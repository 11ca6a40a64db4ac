"""``BlobStore.put_file(src, move=True)``: a staged file becomes the blob by a rename, only when that is safe."""

from __future__ import annotations

import os
import stat
import time

import pytest

import aeg_jupyter
from aeg_jupyter.base.errors import InvalidInputError
from aeg_jupyter.base.hashing import hash_bytes
from aeg_jupyter.storage.blobs import PARALLEL_THRESHOLD, READ_ONLY, BlobStore
from aeg_jupyter.storage.layout import Layout
from aeg_jupyter.storage.schemas2 import INLINE_MAX


@pytest.fixture
def layout(tmp_path):
    return Layout(str(tmp_path / "store"))


@pytest.fixture
def blobs(layout):
    return BlobStore(layout, writer="w1")


def _write(path, data: bytes) -> str:
    with open(path, "wb") as f:
        f.write(data)
    return str(path)


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _blob_files(layout: Layout) -> list[str]:
    out = []
    for dirpath, _dirs, files in os.walk(layout.blobs):
        out.extend(os.path.join(dirpath, f) for f in files)
    return out


def test_a_staged_file_becomes_the_blob_by_a_rename(blobs, tmp_path):
    data = b'{"step": 1, "val_acc": 0.9}'
    src = _write(tmp_path / "staged.json", data)
    os.utime(src, (time.time() - 86400, time.time() - 86400))  # written long ago
    ino = os.stat(src).st_ino
    put = blobs.put_file(src, move=True)
    assert put.digest == hash_bytes(data) and put.size == len(data) and put.created
    assert not os.path.exists(src)  # consumed
    st = os.stat(blobs.path(put.digest))
    assert st.st_ino == ino  # the same file: renamed, not copied
    assert stat.S_IMODE(st.st_mode) == READ_ONLY and st.st_nlink == 1
    assert time.time() - st.st_mtime < 600  # gc's grace period starts at the save
    assert blobs.read_bytes(put.digest, verify=True) == data


def test_bytes_already_stored_remove_the_source_and_keep_the_blob(blobs, tmp_path):
    first = blobs.put_bytes(b"same bytes")
    before = os.stat(blobs.path(first.digest)).st_ino
    src = _write(tmp_path / "again.bin", b"same bytes")
    put = blobs.put_file(src, move=True)
    assert put.digest == first.digest and not put.created
    assert not os.path.exists(src)
    assert os.stat(blobs.path(put.digest)).st_ino == before


def test_a_hard_linked_file_is_copied_and_its_other_name_left_alone(blobs, tmp_path):
    src = _write(tmp_path / "staged.bin", b"hard linked")
    other = tmp_path / "other-name.bin"
    os.link(src, other)
    put = blobs.put_file(src, move=True)
    assert not os.path.exists(src) and _read(str(other)) == b"hard linked"
    blob = blobs.path(put.digest)
    assert os.stat(blob).st_ino != os.stat(other).st_ino  # a copy: the other name cannot change the blob
    with open(other, "r+b") as f:
        f.write(b"HARD")
    assert blobs.read_bytes(put.digest, verify=True) == b"hard linked"
    assert stat.S_IMODE(os.stat(other).st_mode) & stat.S_IWUSR  # its mode untouched


def test_a_symlink_is_refused_and_neither_it_nor_its_target_touched(blobs, layout, tmp_path):
    target = _write(tmp_path / "target.txt", b"not through a link")
    link = tmp_path / "staged.txt"
    link.symlink_to(target)
    with pytest.raises(InvalidInputError, match="symbolic link"):
        blobs.put_file(str(link), move=True)
    assert os.path.islink(link) and _read(target) == b"not through a link"
    assert _blob_files(layout) == []


def test_a_planted_fan_link_never_takes_the_file_out_of_the_root(blobs, layout, tmp_path):
    data = b"stays inside"
    digest = hash_bytes(data)
    outside = tmp_path / "outside"
    outside.mkdir()
    os.makedirs(layout.blobs, exist_ok=True)
    fan = os.path.dirname(blobs.path(digest))
    os.symlink(outside, fan)
    src = _write(tmp_path / "staged.bin", data)
    with pytest.warns(Warning):
        put = blobs.put_file(src, move=True)
    assert list(outside.iterdir()) == []
    assert not os.path.islink(fan) and blobs.read_bytes(put.digest, verify=True) == data
    assert not os.path.exists(src)


def test_missing_and_directory_sources_say_what_to_do(blobs, tmp_path):
    with pytest.raises(InvalidInputError, match="no such file"):
        blobs.put_file(str(tmp_path / "nope.json"), move=True)
    with pytest.raises(InvalidInputError, match="save_dir"):
        blobs.put_file(str(tmp_path), move=True)


@pytest.mark.parametrize("size", [100, PARALLEL_THRESHOLD + 1])
def test_another_file_system_is_copied(blobs, layout, tmp_path, size):
    other = "/dev/shm"
    if not os.path.isdir(other) or os.stat(other).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("needs a second file system (/dev/shm) beside tmp_path")
    data = os.urandom(size)
    src = _write(os.path.join(other, f"aeg-move-test-{os.getpid()}.bin"), data)
    try:
        put = blobs.put_file(src, move=True)
    finally:
        if os.path.exists(src):
            os.unlink(src)
            pytest.fail("the source on another file system was left behind")
    assert put.created and blobs.read_bytes(put.digest, verify=True) == data
    assert os.stat(blobs.path(put.digest)).st_dev == os.stat(layout.blobs).st_dev


def test_a_large_file_is_hashed_once_and_renamed(blobs, tmp_path):
    data = os.urandom(1 << 16) * ((PARALLEL_THRESHOLD >> 16) + 2)  # above the in-memory threshold
    src = _write(tmp_path / "big.bin", data)
    ino = os.stat(src).st_ino
    put = blobs.put_file(src, move=True)
    assert put.digest == hash_bytes(data) and put.size == len(data)
    assert os.stat(blobs.path(put.digest)).st_ino == ino and not os.path.exists(src)


@pytest.mark.parametrize("size", [0, 1, 70_000])
def test_with_fsync_and_any_size(layout, tmp_path, size):
    blobs = BlobStore(layout, writer="w2", fsync=True)
    data = os.urandom(size)
    src = _write(tmp_path / "s.bin", data)
    put = blobs.put_file(src, move=True)
    assert put.size == size and blobs.read_bytes(put.digest, verify=True) == data and not os.path.exists(src)


def test_save_file_move_through_the_store(tmp_path):
    ctx = aeg_jupyter.connect(str(tmp_path / "store"))
    try:
        arts = ctx.store.artifacts
        data = b'{"a": "' + b"x" * INLINE_MAX + b'"}'  # over INLINE_MAX: a blob file in both formats
        src = _write(tmp_path / "tmpXYZ.json", data)
        ino = os.stat(src).st_ino
        art = arts.save_file(src, kind="checkpoint", name="ckpt.json", metrics={"val_acc": 0.5}, move=True)
        assert not os.path.exists(src) and art.name == "ckpt.json" and art.mime == "application/json"
        assert os.stat(ctx.store.blobs.path(art.uri.rsplit("/", 1)[-1])).st_ino == ino  # renamed into place
        assert arts.load_bytes(art.uri) == data
        # a small file moved: a blob file on format 1, its row's content on format 2; the source goes either way
        small = _write(tmp_path / "small.json", b'{"a": 1}')
        art_small = arts.save_file(small, kind="checkpoint", move=True)
        assert not os.path.exists(small) and arts.load_bytes(art_small.uri) == b'{"a": 1}'
        inline = ctx.store.format == 2
        assert os.path.exists(ctx.store.blobs.path(art_small.blob_id)) is not inline
        # mime given: kept as given; without move the source stays
        src2 = _write(tmp_path / "blob", b"raw")
        art2 = arts.save_file(src2, kind="bytes", mime="application/octet-stream")
        assert art2.mime == "application/octet-stream" and os.path.exists(src2)
        assert [a.artifact_id for a in arts.search(kind="checkpoint")] == [art_small.artifact_id, art.artifact_id]
    finally:
        ctx.close()
