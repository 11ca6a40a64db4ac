"""File operations every storage module shares: temp files that never outlive a failure, fsync,
link-or-copy, advisory locks, and the check that a path stays inside the store root.

The one pattern here is dvc-objects' ``as_atomic``: a temp name is made in a directory of the
store's own, the caller writes it, and it is moved into place on success or removed on *any*
exception (``KeyboardInterrupt`` included), so no failure leaves a half-written file behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import uuid
from collections.abc import Iterator

from ..base.errors import InvalidInputError


def unlink_quietly(path: str) -> None:
    """Remove ``path`` if it exists (a missing file is not an error)."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def remove_tree(path: str) -> None:
    """Remove a directory tree, ignoring what is already gone."""
    shutil.rmtree(path, ignore_errors=True)


def fsync_path(path: str) -> None:
    """fsync a file or a directory by path (a directory opened read-only can be fsynced on Linux)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temp_name(tmp_dir: str, prefix: str = "tmp") -> str:
    """A new, unused name inside ``tmp_dir`` (created if it was removed from under us)."""
    os.makedirs(tmp_dir, exist_ok=True)
    return os.path.join(tmp_dir, f"{prefix}-{uuid.uuid4().hex}")


@contextlib.contextmanager
def temp_file(tmp_dir: str, prefix: str = "tmp") -> Iterator[str]:
    """Yield a temp path in ``tmp_dir``; whatever is left at that path afterwards is removed.

    For writers that decide themselves where the finished file goes (or whether it goes at all):
    moving it away inside the block keeps it; an exception, or not moving it, removes it.

    Example:
        >>> with temp_file("/tmp/store/tmp/w1") as tmp:            # doctest: +SKIP
        ...     write(tmp); os.replace(tmp, final)
    """
    tmp = temp_name(tmp_dir, prefix)
    try:
        yield tmp
    finally:
        unlink_quietly(tmp)


@contextlib.contextmanager
def atomic(target: str, tmp_dir: str, *, fsync: bool = False, prefix: str = "tmp") -> Iterator[str]:
    """Yield a temp path to write; on success it replaces ``target``, on any exception it is removed.

    With ``fsync`` the file and then ``target``'s directory are fsynced, so the new name survives
    a power loss. Parent directories of ``target`` are created as needed.

    Example:
        >>> with atomic("/tmp/store/tables/events/part.parquet", "/tmp/store/tmp/w1") as tmp:  # doctest: +SKIP
        ...     pq.write_table(table, tmp)
    """
    with temp_file(tmp_dir, prefix) as tmp:
        yield tmp
        if fsync:
            fsync_path(tmp)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        os.replace(tmp, target)
        if fsync:
            fsync_path(os.path.dirname(target))


def link_or_copy(src: str, dest: str, tmp_dir: str) -> None:
    """Hard-link ``src`` at ``dest``; where links fail (another file system), a read-only copy."""
    try:
        os.link(src, dest)
    except FileExistsError:
        pass
    except OSError:
        with atomic(dest, tmp_dir, prefix="copy") as tmp:
            shutil.copyfile(src, tmp)
            os.chmod(tmp, 0o444)


def try_lock(path: str) -> int | None:
    """An exclusive ``flock`` on ``path`` (created if needed) without waiting: the fd, or None if held.

    Release it with ``os.close(fd)``.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def hold_lock(path: str) -> int:
    """An exclusive ``flock`` on ``path`` (created if needed), waiting for it; returns the fd."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def lock_is_free(path: str) -> bool:
    """True when no live process holds the ``flock`` on an existing ``path`` (or it is gone)."""
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def inside_root(root: str, path: str) -> str:
    """``path`` if it resolves inside ``root``; a planted symlink leading out of it is refused.

    Raises:
        InvalidInputError: ``path`` resolves outside ``root``.
    """
    real_root = os.path.realpath(root)
    real = os.path.realpath(path)
    if real != real_root and not real.startswith(real_root + os.sep):
        raise InvalidInputError(f"{path} leads outside the store (a symlink to {real}); remove the link and try again")
    return path


def move_aside(root: str, path: str, aside: str) -> str:
    """Move a damaged file under ``aside`` at its path relative to ``root`` (never delete it); returns the new path."""
    dest = os.path.join(aside, os.path.relpath(path, root))
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    os.replace(path, dest)
    return dest
