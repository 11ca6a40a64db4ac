"""aeg_jupyter.storage.fsops: temp files that never outlive a failure, links, locks, the root check."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import textwrap
import threading

import pytest

from aeg_jupyter.base.errors import InvalidInputError
from aeg_jupyter.storage.fsops import (
    atomic,
    clone_file,
    hold_lock,
    inside_root,
    lock_is_free,
    move_aside,
    remove_tree,
    temp_file,
    temp_name,
    try_lock,
    unlink_quietly,
)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

HOLDER = """
import sys
from aeg_jupyter.storage.fsops import hold_lock
fd = hold_lock(sys.argv[1])
print("locked", flush=True)
sys.stdin.read()  # hold the lock until the parent closes our stdin
"""


@pytest.fixture
def tmp_dir(tmp_path):
    return str(tmp_path / "tmp" / "w1")


def _write(path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


def _read(path) -> bytes:
    with open(path, "rb") as f:
        return f.read()


# -- atomic ------------------------------------------------------------------------------------
def test_atomic_replaces_target_on_success(tmp_path, tmp_dir):
    target = str(tmp_path / "out.bin")
    _write(target, b"old")
    with atomic(target, tmp_dir) as tmp:
        assert os.path.dirname(tmp) == tmp_dir
        _write(tmp, b"new")
        assert _read(target) == b"old"  # nothing visible before the block ends
    assert _read(target) == b"new"
    assert os.listdir(tmp_dir) == []


@pytest.mark.parametrize("exc_type", [RuntimeError, KeyboardInterrupt])
def test_atomic_failure_removes_temp_and_keeps_target(tmp_path, tmp_dir, exc_type):
    target = str(tmp_path / "out.bin")
    _write(target, b"old")
    with pytest.raises(exc_type), atomic(target, tmp_dir) as tmp:
        _write(tmp, b"half")
        raise exc_type()
    assert _read(target) == b"old"
    assert os.listdir(tmp_dir) == []


def test_atomic_failure_before_target_exists_creates_nothing(tmp_path, tmp_dir):
    target = str(tmp_path / "a" / "b" / "out.bin")
    with pytest.raises(KeyboardInterrupt), atomic(target, tmp_dir) as tmp:
        _write(tmp, b"half")
        raise KeyboardInterrupt
    assert not os.path.exists(target)
    assert os.listdir(tmp_dir) == []


@pytest.mark.parametrize("fsync", [False, True])
def test_atomic_creates_parent_dirs(tmp_path, tmp_dir, fsync):
    target = str(tmp_path / "tables" / "events" / "kind=log" / "part.parquet")
    with atomic(target, tmp_dir, fsync=fsync, prefix="part") as tmp:
        assert os.path.basename(tmp).startswith("part-")
        _write(tmp, b"data")
    assert _read(target) == b"data"
    assert os.listdir(tmp_dir) == []


def test_atomic_recreates_a_removed_tmp_dir(tmp_path, tmp_dir):
    os.makedirs(tmp_dir)
    remove_tree(tmp_dir)  # a manual clean-up under a running writer
    target = str(tmp_path / "out")
    with atomic(target, tmp_dir) as tmp:
        _write(tmp, b"x")
    assert _read(target) == b"x"


# -- temp_file ---------------------------------------------------------------------------------
def test_temp_file_removes_leftover(tmp_dir):
    with temp_file(tmp_dir, "blob") as tmp:
        _write(tmp, b"scratch")
        assert os.path.basename(tmp).startswith("blob-")
    assert not os.path.exists(tmp)
    assert os.listdir(tmp_dir) == []


def test_temp_file_keeps_a_moved_file(tmp_path, tmp_dir):
    final = str(tmp_path / "final")
    with temp_file(tmp_dir) as tmp:
        _write(tmp, b"done")
        os.replace(tmp, final)
    assert _read(final) == b"done"
    assert os.listdir(tmp_dir) == []


def test_temp_file_removes_on_exception_and_tolerates_nothing_written(tmp_dir):
    with pytest.raises(ValueError), temp_file(tmp_dir) as tmp:
        _write(tmp, b"x")
        raise ValueError
    assert os.listdir(tmp_dir) == []
    with temp_file(tmp_dir) as tmp:  # never created: leaving the block must not fail
        pass
    assert os.listdir(tmp_dir) == []


def test_temp_names_are_unique_and_dir_is_created(tmp_dir):
    names = {temp_name(tmp_dir) for _ in range(50)}
    assert len(names) == 50
    assert os.path.isdir(tmp_dir)


def test_unlink_quietly_and_remove_tree_ignore_missing(tmp_path):
    unlink_quietly(str(tmp_path / "missing"))
    remove_tree(str(tmp_path / "missing-dir"))
    f = tmp_path / "f"
    f.write_bytes(b"x")
    unlink_quietly(str(f))
    assert not f.exists()


# -- clone_file ---------------------------------------------------------------------------------
def test_clone_file_is_a_read_only_copy_of_its_own(tmp_path, tmp_dir):
    src, dest = str(tmp_path / "src"), str(tmp_path / "dest")
    _write(src, b"payload")
    clone_file(src, dest, tmp_dir)
    assert os.stat(dest).st_ino != os.stat(src).st_ino  # writing dest can never change src
    assert _read(dest) == b"payload" and os.stat(dest).st_mode & 0o777 == 0o444
    assert os.listdir(tmp_dir) == []


def test_clone_file_replaces_a_symlink_at_dest_without_following_it(tmp_path, tmp_dir):
    src, dest, victim = str(tmp_path / "src"), str(tmp_path / "dest"), str(tmp_path / "victim")
    _write(src, b"payload")
    _write(victim, b"untouched")
    os.symlink(victim, dest)
    clone_file(src, dest, tmp_dir)
    assert not os.path.islink(dest) and _read(dest) == b"payload" and _read(victim) == b"untouched"


def test_clone_file_copies_read_only_across_file_systems(tmp_path, tmp_dir):
    if not os.path.isdir("/dev/shm") or os.stat("/dev/shm").st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("needs /dev/shm on another file system than tmp_path")
    fd, src = tempfile.mkstemp(dir="/dev/shm", prefix="aeg-test-")
    try:
        os.write(fd, b"across devices")
        os.close(fd)
        dest = str(tmp_path / "dest")
        clone_file(src, dest, tmp_dir)
        assert _read(dest) == b"across devices"
        assert os.stat(dest).st_ino != os.stat(src).st_ino
        assert os.stat(dest).st_mode & 0o777 == 0o444
        assert os.listdir(tmp_dir) == []
    finally:
        os.unlink(src)


# -- locks -------------------------------------------------------------------------------------
def _spawn_holder(path: str) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(HOLDER), path],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip() == "locked", proc.stderr.read() if proc.stderr else ""
    return proc


def _stop(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None
    proc.stdin.close()
    proc.wait(timeout=30)


def test_lock_held_by_another_process_then_released(tmp_path):
    path = str(tmp_path / "lock")
    proc = _spawn_holder(path)
    try:
        assert try_lock(path) is None
        assert lock_is_free(path) is False
    finally:
        _stop(proc)
    assert proc.returncode == 0
    assert lock_is_free(path) is True
    fd = try_lock(path)
    assert fd is not None
    try:
        assert lock_is_free(path) is False  # now we hold it
    finally:
        os.close(fd)
    assert lock_is_free(path) is True


def test_hold_lock_waits_for_the_holder(tmp_path):
    path = str(tmp_path / "lock")
    proc = _spawn_holder(path)
    got: list[int] = []
    waiter = threading.Thread(target=lambda: got.append(hold_lock(path)), daemon=True)
    try:
        waiter.start()
        waiter.join(0.3)
        assert waiter.is_alive() and got == []  # blocked while the child holds it
    finally:
        _stop(proc)
    waiter.join(10)
    assert len(got) == 1
    try:
        assert try_lock(path) is None
    finally:
        os.close(got[0])


def test_try_lock_creates_the_file_and_excludes_a_second_fd(tmp_path):
    path = str(tmp_path / "sub-lock")
    fd = try_lock(path)
    assert fd is not None and os.path.exists(path)
    try:
        assert try_lock(path) is None  # flock is per open file, even within one process
    finally:
        os.close(fd)
    fd2 = try_lock(path)
    assert fd2 is not None
    os.close(fd2)


def test_lock_is_free_for_a_missing_file(tmp_path):
    path = str(tmp_path / "never")
    assert lock_is_free(path) is True
    assert not os.path.exists(path)  # asking does not create it


# -- inside_root -------------------------------------------------------------------------------
def test_inside_root_accepts_paths_in_the_root(tmp_path):
    root = tmp_path / "store"
    (root / "files").mkdir(parents=True)
    inner = str(root / "files" / "abc")
    assert inside_root(str(root), inner) == inner
    assert inside_root(str(root), str(root)) == str(root)


def test_inside_root_refuses_a_symlink_planted_out_of_the_root(tmp_path):
    root = tmp_path / "store"
    (root / "files").mkdir(parents=True)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    link = root / "files" / "abc"
    link.symlink_to(outside)
    with pytest.raises(InvalidInputError, match=r"leads outside the store.*remove the link"):
        inside_root(str(root), str(link / "name.txt"))


def test_inside_root_refuses_a_sibling_sharing_the_prefix(tmp_path):
    root = tmp_path / "store"
    root.mkdir()
    with pytest.raises(InvalidInputError):
        inside_root(str(root), str(tmp_path / "store-evil" / "x"))


def test_inside_root_follows_a_symlinked_root(tmp_path):
    real = tmp_path / "real-store"
    (real / "files").mkdir(parents=True)
    alias = tmp_path / "alias"
    alias.symlink_to(real)
    path = str(alias / "files" / "x")
    assert inside_root(str(alias), path) == path


# -- move_aside --------------------------------------------------------------------------------
def test_move_aside_keeps_relative_path_and_bytes(tmp_path):
    root = tmp_path / "store"
    part = root / "tables" / "events" / "kind=log" / "bad.parquet"
    part.parent.mkdir(parents=True)
    part.write_bytes(b"garbage")
    aside = str(root / "corrupt")
    dest = move_aside(str(root), str(part), aside)
    assert dest == os.path.join(aside, "tables", "events", "kind=log", "bad.parquet")
    assert not part.exists()
    assert _read(dest) == b"garbage"
