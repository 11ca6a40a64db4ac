"""File operations every storage module shares: temp files that never outlive a failure, fsync,
copies of their own inode, advisory locks, modes that do not depend on the umask, and the checks
that keep every operation inside the store root (no symlink is ever followed out of it).

The one pattern here is dvc-objects' ``as_atomic``: a temp name is made in a directory of the
store's own, the caller writes it, and it is moved into place on success or removed on *any*
exception (``KeyboardInterrupt`` included), so no failure leaves a half-written file behind.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import stat
import uuid
import warnings
from collections.abc import Iterator

from ..base.errors import InvalidInputError, StoreWarning

DIR_MODE = 0o755  # every directory the store creates, whatever the umask (a stricter umask still applies)
FILE_MODE = 0o644  # every table part, spool and marker file
FICLONE = 0x40049409  # ioctl: share the extents of another file (btrfs, xfs, bcachefs): a copy in O(1)


def unlink_quietly(path: str) -> None:
    """Remove ``path`` if it exists (a missing file is not an error)."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def remove_tree(path: str) -> None:
    """Remove a directory tree, ignoring what is already gone; a symlink is removed, never followed."""
    if os.path.islink(path):
        unlink_quietly(path)
        return
    shutil.rmtree(path, ignore_errors=True)


def make_dirs(path: str) -> None:
    """``os.makedirs(path, exist_ok=True)``, every directory it creates ``DIR_MODE`` whatever the umask.

    (``os.makedirs`` gives the parents it creates the umask's default mode, 0o777 under umask 000.)
    """
    if os.path.isdir(path):
        return
    parent = os.path.dirname(path)
    if parent and parent != path and not os.path.isdir(parent):
        make_dirs(parent)
    try:
        os.mkdir(path, DIR_MODE)
    except FileExistsError:
        if not os.path.isdir(path):
            raise


def fsync_path(path: str) -> None:
    """fsync a file or a directory by path (a directory opened read-only can be fsynced on Linux)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temp_name(tmp_dir: str, prefix: str = "tmp") -> str:
    """A new, unused name inside ``tmp_dir`` (created if it was removed from under us)."""
    make_dirs(tmp_dir)
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
def atomic(
    target: str, tmp_dir: str, *, fsync: bool = False, prefix: str = "tmp", mode: int = FILE_MODE
) -> Iterator[str]:
    """Yield a temp path to write; on success it replaces ``target``, on any exception it is removed.

    With ``fsync`` the file and then ``target``'s directory are fsynced, so the new name survives
    a power loss. Parent directories of ``target`` are created as needed. The file gets ``mode``
    (0o644 by default) whatever the umask the writer used.

    Example:
        >>> with atomic("/tmp/store/tables/events/part.parquet", "/tmp/store/tmp/w1") as tmp:  # doctest: +SKIP
        ...     pq.write_table(table, tmp)
    """
    with temp_file(tmp_dir, prefix) as tmp:
        yield tmp
        os.chmod(tmp, mode)
        if fsync:
            fsync_path(tmp)
        make_dirs(os.path.dirname(target))
        os.replace(tmp, target)
        if fsync:
            fsync_path(os.path.dirname(target))


def clone_file(src: str, dest: str, tmp_dir: str, *, mode: int = 0o444) -> None:
    """A copy of ``src`` at ``dest`` that is its own inode (writing it never touches ``src``).

    NOTE: a reflink (``FICLONE``) where the file system shares extents, which costs no bytes and
    no time; otherwise ``copy_file_range`` (copied inside the kernel, no trip through Python);
    otherwise a plain read/write loop. ``dest`` appears whole or not at all, and a symlink at
    ``dest`` is replaced, never written through.
    """
    with atomic(dest, tmp_dir, prefix="copy", mode=mode) as tmp:
        sfd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW)
        try:
            dfd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                _copy_fd(sfd, dfd)
            finally:
                os.close(dfd)
        finally:
            os.close(sfd)


def _copy_fd(sfd: int, dfd: int) -> None:
    try:
        fcntl.ioctl(dfd, FICLONE, sfd)
        return
    except OSError:
        pass
    try:
        while os.copy_file_range(sfd, dfd, 1 << 30):
            pass
        return
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
            raise
    os.lseek(sfd, 0, os.SEEK_SET)
    os.lseek(dfd, 0, os.SEEK_SET)
    os.ftruncate(dfd, 0)
    while chunk := os.read(sfd, 1 << 20):
        view = memoryview(chunk)
        while view:
            view = view[os.write(dfd, view) :]


def is_symlink(path: str) -> bool:
    """True if ``path`` itself is a symbolic link (it is not followed)."""
    try:
        return stat.S_ISLNK(os.lstat(path).st_mode)
    except OSError:
        return False


def set_aside_link(root: str, path: str) -> str:
    """Move a symlink planted at ``path`` (the link, not what it points to) to ``<root>/corrupt/links/``.

    The store never follows a link in its own folders: a planted one is kept for whoever wants to
    look at it, and a ``StoreWarning`` says where it went.
    """
    try:
        target = os.readlink(path)
    except OSError:
        target = "?"
    dest = move_aside(root, path, os.path.join(root, "corrupt", "links"))
    warnings.warn(
        f"a symlink planted in the store at {path} (to {target}) was moved to {dest}; "
        "the store never follows links out of its root (remove it if you did not expect it)",
        StoreWarning,
        stacklevel=3,
    )
    return dest


def try_lock(path: str) -> int | None:
    """An exclusive ``flock`` on ``path`` (created if needed) without waiting: the fd, or None if held.

    Release it with ``os.close(fd)``.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, FILE_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def hold_lock(path: str) -> int:
    """An exclusive ``flock`` on ``path`` (created if needed), waiting for it; returns the fd."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, FILE_MODE)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def lock_is_free(path: str) -> bool:
    """True when no live process holds the ``flock`` on an existing ``path`` (or it is gone)."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW)
    except FileNotFoundError:
        return True
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # a planted link is no live writer's lock
            return True
        raise
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
    make_dirs(os.path.dirname(dest))
    if os.path.lexists(dest):  # the same path set aside before: keep both
        dest += "." + uuid.uuid4().hex[:8]
    os.replace(path, dest)
    return dest


_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
_renameat2: list[object] = []  # [function or None], looked up once


def exchange_dirs(a: str, b: str) -> bool:
    """Swap two directories in one step (Linux ``renameat2(RENAME_EXCHANGE)``): whoever looks at
    either path sees the old tree or the new one, never a mix. False where the system cannot.

    Example:
        >>> exchange_dirs("/tmp/store/tmp/w1/new-kind=log", "/tmp/store/tables/events/kind=log")  # doctest: +SKIP
        True
    """
    if not _renameat2:
        import ctypes

        try:
            _renameat2.append(ctypes.CDLL(None, use_errno=True).renameat2)
        except (OSError, AttributeError):
            _renameat2.append(None)
    fn = _renameat2[0]
    if fn is None:
        return False
    import ctypes

    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:  # type: ignore[operator]
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), b)


@contextlib.contextmanager
def file_lock(path: str, *, shared: bool) -> Iterator[None]:
    """Hold a shared (or exclusive) ``flock`` on ``path`` (created if needed) for the block, waiting for it.

    Example:
        >>> with file_lock("/tmp/store/tables/events/.swap.lock", shared=True):   # doctest: +SKIP
        ...     os.replace(tmp, part)
    """
    fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
