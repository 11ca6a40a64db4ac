"""aeg_jupyter.storage.blobs: the content-addressed blob store, on real files."""

from __future__ import annotations

import os
import stat

import pytest

from aeg_jupyter.base.errors import CorruptionError, InvalidInputError, NotFoundError
from aeg_jupyter.base.hashing import hash_bytes
from aeg_jupyter.storage.blobs import DIRECT_MAX, PARALLEL_THRESHOLD, BlobStore
from aeg_jupyter.storage.layout import Layout

LARGE = PARALLEL_THRESHOLD + (1 << 20)  # ~9 MiB: the two-thread copy+hash path


@pytest.fixture
def layout(tmp_path):
    return Layout(str(tmp_path / "store"))


@pytest.fixture
def blobs(layout):
    return BlobStore(layout, writer="w1")


def _mode(path: str) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _all_blob_files(layout: Layout) -> list[str]:
    out = []
    for dirpath, _dirs, files in os.walk(layout.blobs):
        out.extend(os.path.join(dirpath, f) for f in files)
    return out


def _zero_file(path: str, size: int) -> str:
    with open(path, "wb") as f:
        f.truncate(size)  # sparse: no bytes written
    return path


def _flip_byte(path: str, offset: int = 0) -> None:
    os.chmod(path, 0o644)
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0xFF]))


# -- put_bytes ---------------------------------------------------------------------------------
def test_put_bytes_stores_under_its_digest(blobs, layout):
    put = blobs.put_bytes(b"hello world")
    assert put.digest == hash_bytes(b"hello world")
    assert put.size == 11 and put.created is True
    assert _read(layout.blob_path(put.digest)) == b"hello world"
    assert blobs.exists(put.digest) and blobs.size(put.digest) == 11


def test_put_bytes_twice_dedups_and_refreshes_mtime(blobs, layout):
    first = blobs.put_bytes(b"same bytes")
    path = layout.blob_path(first.digest)
    os.utime(path, (1_000_000, 1_000_000))  # as if saved long ago
    second = blobs.put_bytes(b"same bytes")
    assert second.created is False
    assert second.digest == first.digest and second.size == first.size
    assert os.stat(path).st_mtime > 1_000_000 + 86400  # refreshed: gc's grace period starts again
    assert _all_blob_files(layout) == [path]
    assert os.listdir(blobs.tmp_dir) == []


@pytest.mark.parametrize(("size", "fsync"), [(0, False), (100, False), (DIRECT_MAX + 1, False), (100, True)], ids=str)
def test_blobs_are_born_read_only(layout, size, fsync):
    blobs = BlobStore(layout, writer="w1", fsync=fsync)
    data = os.urandom(size)
    put = blobs.put_bytes(data)
    path = layout.blob_path(put.digest)
    assert _mode(path) == 0o444
    assert _read(path) == data
    assert os.listdir(blobs.tmp_dir) == []


@pytest.mark.parametrize("size", [1000, DIRECT_MAX + 1000], ids=["direct", "via-temp"])
def test_short_file_of_a_killed_writer_is_rewritten(blobs, layout, size):
    data = os.urandom(size)
    digest = hash_bytes(data)
    path = layout.blob_path(digest)
    os.makedirs(os.path.dirname(path))
    with open(path, "wb") as f:  # what a writer killed half-way through leaves
        f.write(data[: size // 2])
    os.chmod(path, 0o444)
    put = blobs.put_bytes(data)
    assert put.created is True
    assert _read(path) == data
    assert _mode(path) == 0o444
    assert blobs.read_bytes(digest, verify=True) == data
    assert os.listdir(blobs.tmp_dir) == []


def test_touch_refreshes_or_reports_missing(blobs, layout):
    put = blobs.put_bytes(b"x")
    path = layout.blob_path(put.digest)
    os.utime(path, (1_000_000, 1_000_000))
    assert blobs.touch(put.digest) is True
    assert os.stat(path).st_mtime > 1_000_000 + 86400
    assert blobs.touch(hash_bytes(b"never stored")) is False


def test_size_of_a_missing_blob_says_what_happened(blobs):
    with pytest.raises(NotFoundError, match=r"missing from the store.*gc"):
        blobs.size(hash_bytes(b"never stored"))


# -- put_file ----------------------------------------------------------------------------------
def test_put_file_small(blobs, layout, tmp_path):
    src = tmp_path / "small.txt"
    src.write_bytes(b"small file")
    put = blobs.put_file(str(src))
    assert (put.digest, put.size, put.created) == (hash_bytes(b"small file"), 10, True)
    assert _read(layout.blob_path(put.digest)) == b"small file"
    assert blobs.put_file(str(src)).created is False
    assert blobs.put_bytes(b"small file").created is False  # the same blob, whichever way it came


def test_put_file_large_copies_and_hashes(blobs, layout, tmp_path):
    src = _zero_file(str(tmp_path / "big.bin"), LARGE)
    put = blobs.put_file(src)
    assert put.digest == hash_bytes(bytes(LARGE))
    assert put.size == LARGE and put.created is True
    path = layout.blob_path(put.digest)
    assert os.path.getsize(path) == LARGE
    assert _mode(path) == 0o444
    assert blobs.check(put.digest) is True
    assert os.listdir(blobs.tmp_dir) == []
    again = blobs.put_file(src)
    assert again.created is False and again.digest == put.digest
    assert os.listdir(blobs.tmp_dir) == []


def test_put_file_large_rewrites_a_short_blob(blobs, layout, tmp_path):
    src = _zero_file(str(tmp_path / "big.bin"), LARGE)
    digest = hash_bytes(bytes(LARGE))
    path = layout.blob_path(digest)
    os.makedirs(os.path.dirname(path))
    _zero_file(path, LARGE // 3)
    put = blobs.put_file(src)
    assert put.created is True
    assert os.path.getsize(path) == LARGE
    assert blobs.check(digest) is True


def test_put_file_refuses_what_is_not_a_regular_file(blobs, tmp_path):
    with pytest.raises(InvalidInputError, match="no such file"):
        blobs.put_file(str(tmp_path / "missing"))
    with pytest.raises(InvalidInputError, match="save_dir"):
        blobs.put_file(str(tmp_path))
    fifo = str(tmp_path / "fifo")
    os.mkfifo(fifo)
    with pytest.raises(InvalidInputError, match="not a regular file"):
        blobs.put_file(fifo)


# -- put_tree ----------------------------------------------------------------------------------
@pytest.fixture
def tree(tmp_path):
    top = tmp_path / "src"
    (top / "sub" / "deeper").mkdir(parents=True)
    (top / "empty").mkdir()
    (top / "a.txt").write_bytes(b"alpha")
    (top / "sub" / "b.bin").write_bytes(b"\x00\x01\x02")
    (top / "sub" / "deeper" / "c.txt").write_bytes(b"alpha")  # same bytes as a.txt
    os.chmod(top / "sub" / "b.bin", 0o600)
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"secret")
    (top / "link.txt").symlink_to(outside)
    (top / "dirlink").symlink_to(tmp_path)
    os.mkfifo(top / "sub" / "pipe")
    return top


def test_put_tree_stores_files_and_skips_links_and_fifos(blobs, tree):
    entries, skipped, total = blobs.put_tree(str(tree))
    assert [e["path"] for e in entries] == ["a.txt", "empty/", "sub/b.bin", "sub/deeper/c.txt"]
    by_path = {e["path"]: e for e in entries}
    assert by_path["empty/"] == {"path": "empty/", "blob": None, "size": 0, "mode": 0o755}
    assert by_path["a.txt"]["blob"] == by_path["sub/deeper/c.txt"]["blob"] == hash_bytes(b"alpha")
    assert by_path["sub/b.bin"]["mode"] == 0o600 and by_path["sub/b.bin"]["size"] == 3
    assert sorted(skipped) == ["dirlink", "link.txt", "sub/pipe"]
    assert total == 5 + 3 + 5
    for e in entries:
        if e["blob"]:
            assert blobs.exists(e["blob"])
    assert not blobs.exists(hash_bytes(b"secret"))  # the symlink was not followed


def test_put_tree_refuses_missing_and_file(blobs, tmp_path):
    with pytest.raises(InvalidInputError, match="no such directory"):
        blobs.put_tree(str(tmp_path / "missing"))
    f = tmp_path / "file"
    f.write_bytes(b"x")
    with pytest.raises(InvalidInputError, match="save_file"):
        blobs.put_tree(str(f))


def test_put_tree_keeps_a_directory_whose_only_file_was_skipped(blobs, tmp_path):
    top = tmp_path / "src"
    (top / "only-link").mkdir(parents=True)
    (top / "only-dirlink").mkdir()
    (tmp_path / "target.txt").write_bytes(b"t")
    (top / "only-link" / "l").symlink_to(tmp_path / "target.txt")
    (top / "only-dirlink" / "d").symlink_to(tmp_path)
    entries, skipped, _ = blobs.put_tree(str(top))
    assert sorted(skipped) == ["only-dirlink/d", "only-link/l"]
    # both directories hold only a skipped symlink: both should come back, as empty directories
    assert [e["path"] for e in entries] == ["only-dirlink/", "only-link/"]


# -- BlobWriter --------------------------------------------------------------------------------
def test_blob_writer_commit(blobs, layout):
    w = blobs.open_writer()
    assert w.write(b"part one, ") == 10
    w.write(memoryview(b"part two"))
    w.flush()
    put = w.commit()
    assert put.digest == hash_bytes(b"part one, part two")
    assert put.size == 18 and put.created is True
    path = layout.blob_path(put.digest)
    assert _read(path) == b"part one, part two"
    assert _mode(path) == 0o444
    assert os.listdir(blobs.tmp_dir) == []
    with pytest.raises(ValueError, match="closed"):
        w.write(b"more")
    with pytest.raises(ValueError, match="already closed"):
        w.commit()


def test_blob_writer_commit_of_stored_bytes_dedups(blobs):
    blobs.put_bytes(b"known")
    w = blobs.open_writer()
    w.write(b"known")
    assert w.commit().created is False
    assert os.listdir(blobs.tmp_dir) == []


def test_blob_writer_abort_leaves_nothing(blobs, layout):
    w = blobs.open_writer()
    w.write(b"never to be stored")
    w.abort()
    w.abort()  # twice is harmless
    assert os.listdir(blobs.tmp_dir) == []
    assert not blobs.exists(hash_bytes(b"never to be stored"))
    assert _all_blob_files(layout) == []


def test_blob_writer_refuses_text(blobs):
    w = blobs.open_writer()
    with pytest.raises(TypeError, match="encode"):
        w.write("text")  # type: ignore[arg-type]
    w.abort()
    assert os.listdir(blobs.tmp_dir) == []


# -- reads and checks --------------------------------------------------------------------------
def test_read_bytes_verify_detects_a_flipped_byte(blobs, layout):
    put = blobs.put_bytes(b"precious data")
    assert blobs.read_bytes(put.digest, verify=True) == b"precious data"
    assert blobs.check(put.digest) is True
    _flip_byte(layout.blob_path(put.digest), 3)
    damaged = blobs.read_bytes(put.digest)  # without verify the bytes come back as stored
    assert damaged != b"precious data" and len(damaged) == 13
    with pytest.raises(CorruptionError, match=r"corrupt.*verify\(repair=True\)"):
        blobs.read_bytes(put.digest, verify=True)
    assert blobs.check(put.digest) is False


def test_check_detects_a_flipped_byte_in_a_large_blob(blobs, layout, tmp_path):
    put = blobs.put_file(_zero_file(str(tmp_path / "big"), LARGE))
    assert blobs.check(put.digest) is True
    _flip_byte(layout.blob_path(put.digest), LARGE - 1)
    assert blobs.check(put.digest) is False


def test_read_bytes_of_a_missing_blob(blobs):
    with pytest.raises(NotFoundError, match="missing"):
        blobs.read_bytes(hash_bytes(b"never stored"))


def test_iter_blobs_lists_blobs_and_ignores_strays(blobs, layout):
    assert list(blobs.iter_blobs()) == []  # no blobs/ directory yet
    puts = [blobs.put_bytes(data) for data in (b"a", b"bb", b"ccc")]
    os.makedirs(os.path.join(layout.blobs, "zz"))
    open(os.path.join(layout.blobs, "zz", "x" * 62), "wb").close()  # not hex
    open(os.path.join(layout.blobs, "README"), "wb").close()
    fan = os.path.dirname(layout.blob_path(puts[0].digest))
    open(os.path.join(fan, "tmp-partial"), "wb").close()
    os.makedirs(os.path.join(layout.blobs, "abc"))  # not a 2-hex fan directory
    found = {d: (size, mtime) for d, size, mtime in blobs.iter_blobs()}
    assert set(found) == {p.digest for p in puts}
    for p in puts:
        assert found[p.digest] == (p.size, os.stat(layout.blob_path(p.digest)).st_mtime)


def test_iter_blobs_skips_blobs_another_gc_frees_while_it_lists(blobs, layout):
    """Two processes' gc may list one fan folder while the other deletes from it."""
    by_fan: dict[str, list[bytes]] = {}
    i = 0
    while not any(len(v) >= 6 for v in by_fan.values()):
        data = f"blob {i}".encode()
        by_fan.setdefault(hash_bytes(data)[:2], []).append(data)
        i += 1
    fan = next(f for f, v in by_fan.items() if len(v) >= 6)
    puts = [blobs.put_bytes(data) for data in by_fan[fan]]
    listed = blobs.iter_blobs()
    first = next(d for d, _, _ in listed if d[:2] == fan)
    gone = {p.digest for p in puts} - {first}
    for digest in gone:
        os.unlink(layout.blob_path(digest))  # freed by "another process" after the listing began
    rest = {d for d, _, _ in listed}  # before the fix: FileNotFoundError from the entry's stat
    assert not (rest & gone)


# -- local paths handed out --------------------------------------------------------------------
def test_materialize_file_is_a_copy_of_the_blob_under_its_name(blobs, layout):
    put = blobs.put_bytes(b"report body")
    path = blobs.materialize_file(put.digest, "report.pdf")
    assert path == os.path.join(layout.files, put.digest, "report.pdf")
    assert os.stat(path).st_ino != os.stat(layout.blob_path(put.digest)).st_ino  # its own inode, read-only
    assert not os.stat(path).st_mode & 0o222
    assert _read(path) == b"report body"
    assert blobs.materialize_file(put.digest, "report.pdf") == path  # again: same path, no error


def test_materialize_file_of_a_missing_blob(blobs, layout):
    digest = hash_bytes(b"never stored")
    with pytest.raises(NotFoundError):
        blobs.materialize_file(digest, "x.txt")
    assert not os.path.exists(os.path.join(layout.files, digest))


def test_materialize_file_refuses_a_planted_symlink(blobs, layout, tmp_path):
    put = blobs.put_bytes(b"x")
    outside = tmp_path / "outside"
    outside.mkdir()
    os.makedirs(layout.files)
    os.symlink(outside, os.path.join(layout.files, put.digest))
    with pytest.raises(InvalidInputError, match="outside the store"):
        blobs.materialize_file(put.digest, "x.txt")
    assert os.listdir(outside) == []


def test_materialize_dir_lays_out_the_manifest(blobs, layout, tree):
    entries, _, _ = blobs.put_tree(str(tree))
    manifest = blobs.put_bytes(repr(entries).encode()).digest
    out = blobs.materialize_dir(manifest, "src", entries)
    assert out == os.path.join(layout.files, manifest, "src")
    found = sorted(
        os.path.relpath(os.path.join(d, f), out).replace(os.sep, "/") for d, _, files in os.walk(out) for f in files
    )
    assert found == ["a.txt", "sub/b.bin", "sub/deeper/c.txt"]
    assert os.path.isdir(os.path.join(out, "empty"))
    assert _read(os.path.join(out, "sub", "b.bin")) == b"\x00\x01\x02"
    a = os.path.join(out, "a.txt")
    assert os.stat(a).st_ino != os.stat(layout.blob_path(hash_bytes(b"alpha"))).st_ino  # a copy, not the blob
    assert os.listdir(blobs.tmp_dir) == []  # the staging directory is gone
    assert blobs.materialize_dir(manifest, "src", entries) == out


@pytest.mark.parametrize("bad", ["../escape.txt", "/etc/x", "a/../../b", "", "./"])
def test_materialize_dir_refuses_unsafe_paths(blobs, layout, bad):
    put = blobs.put_bytes(b"x")
    entries = [{"path": "ok.txt", "blob": put.digest, "size": 1, "mode": 0o644}, {"path": bad, "blob": put.digest}]
    with pytest.raises(CorruptionError, match="unsafe path"):
        blobs.materialize_dir(put.digest, "d", entries)
    assert not os.path.exists(os.path.join(layout.files, put.digest, "d"))
    assert os.listdir(blobs.tmp_dir) == []


def test_materialize_dir_with_a_missing_blob_leaves_nothing(blobs, layout):
    put = blobs.put_bytes(b"manifest")
    entries = [{"path": "gone.bin", "blob": hash_bytes(b"collected"), "size": 9, "mode": 0o644}]
    with pytest.raises(NotFoundError):
        blobs.materialize_dir(put.digest, "d", entries)
    assert not os.path.exists(os.path.join(layout.files, put.digest, "d"))
    assert os.listdir(blobs.tmp_dir) == []


# -- removal -----------------------------------------------------------------------------------
def test_move_aside_keeps_the_bytes_and_forgets_local_paths(blobs, layout, tmp_path):
    put = blobs.put_bytes(b"damaged?")
    local = blobs.materialize_file(put.digest, "f.txt")
    aside = str(tmp_path / "store" / "corrupt")
    dest = blobs.move_aside(put.digest, aside)
    assert dest == os.path.join(aside, "blobs", put.digest)
    assert _read(dest) == b"damaged?"
    assert not blobs.exists(put.digest)
    assert not os.path.exists(local)
    assert not os.path.exists(os.path.join(layout.files, put.digest))


def test_delete_then_put_again(blobs):
    put = blobs.put_bytes(b"collect me")
    blobs.delete(put.digest)
    assert not blobs.exists(put.digest)
    assert list(blobs.iter_blobs()) == []
    blobs.delete(put.digest)  # already gone: no error
    again = blobs.put_bytes(b"collect me")
    assert again.created is True
    assert blobs.read_bytes(put.digest, verify=True) == b"collect me"
