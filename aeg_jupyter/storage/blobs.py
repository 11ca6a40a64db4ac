"""Content-addressed blob store: bytes named by their blake3 digest, written once, read-only.

Every write lands in the writer's ``tmp/`` directory first and is moved into ``blobs/`` with
``os.replace``, so a blob is either absent or complete. Saving bytes that are already stored
writes no new blob; it only refreshes the blob's mtime so a concurrent ``gc`` keeps it.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import stat
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from ..base.errors import CorruptionError, InvalidInputError, NotFoundError, StoreWriteError
from ..base.hashing import CHUNK, hash_bytes, hasher, is_hex_digest
from .fsops import (
    clone_file,
    fsync_path,
    inside_root,
    is_symlink,
    make_dirs,
    remove_tree,
    set_aside_link,
    temp_file,
    unlink_quietly,
)
from .layout import Layout

READ_ONLY = stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH
DIRECT_MAX = 1 << 20  # new blobs up to this size are written in place (see BlobStore.put_bytes)
# NOTE: below this size a file is read into memory, hashed, and written only if new (a repeated
# save writes nothing); above it, copying and hashing run side by side on two threads.
PARALLEL_THRESHOLD = 8 << 20


@dataclass(frozen=True, slots=True)
class PutResult:
    """What a blob write produced: the digest, the byte count, and whether the blob is new."""

    digest: str
    size: int
    created: bool


def _write_error(exc: OSError, what: str) -> StoreWriteError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return StoreWriteError(
            f"could not write {what}: {os.strerror(exc.errno)}; free some space (try `gc`) and save again"
        )
    return StoreWriteError(f"could not write {what}: {exc}")


def _create_read_only(path: str) -> int:
    """Create ``path`` (never an existing one, nor through a link) for writing, with read-only permissions."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    try:
        return os.open(path, flags, READ_ONLY)
    except FileNotFoundError:  # the first blob under this 2-hex prefix
        make_dirs(os.path.dirname(path))
        return os.open(path, flags, READ_ONLY)


def _unlink_if_ours(path: str, fd: int) -> None:
    """Remove the short file we were writing, unless another writer has since replaced it."""
    try:
        if os.stat(path).st_ino == os.fstat(fd).st_ino:
            os.unlink(path)
    except OSError:
        pass


def _write_all(fd: int, data: bytes | bytearray | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class BlobStore:
    """The ``blobs/`` directory of one store, written through one writer's ``tmp/`` directory.

    Example:
        >>> blobs = BlobStore(Layout("/tmp/store"), writer="w1")   # doctest: +SKIP
        >>> blobs.put_bytes(b"hello").digest[:8]                    # doctest: +SKIP
        'ea8f163d'
    """

    def __init__(self, layout: Layout, writer: str, *, fsync: bool = False) -> None:
        self.layout = layout
        self.tmp_dir = layout.writer_tmp_dir(writer)
        self.fsync = fsync
        try:
            make_dirs(self.tmp_dir)
        except OSError:  # a read-only (or full) root opens for reading; writes say why when they fail
            pass
        # temp names: unique within this writer's own tmp dir (no uuid4 per save: hot path)
        self._tmp_token = uuid.uuid4().hex[:12]
        self._tmp_seq = itertools.count()
        #: format 2: digest -> the content inline in an artifact row (None: not inline); read when
        #: the blob file is absent (``DeltaSpoolTable.inline_content``, set by the store)
        self.inline: Callable[[str], bytes | None] | None = None

    # -- paths -------------------------------------------------------------------------------
    def path(self, digest: str) -> str:
        """Local path of a blob (which may not exist)."""
        return self.layout.blob_path(digest)

    def touch(self, digest: str) -> bool:
        """Refresh a blob's mtime (``gc`` keeps recently touched blobs); False if it is missing."""
        return self._keep_existing(self._checked(digest))

    def exists(self, digest: str) -> bool:
        path = self._checked(digest)
        return os.path.isfile(path) and not os.path.islink(path)

    def size(self, digest: str) -> int:
        try:
            return self._lstat(digest).st_size
        except FileNotFoundError:
            data = self._inline(digest)
            if data is None:
                raise NotFoundError(self._missing(digest)) from None
            return len(data)

    def available(self, digest: str) -> bool:
        """True when the content is stored: as a blob file, or inline in an artifact row (format 2)."""
        return self.exists(digest) or self._inline(digest) is not None

    def _inline(self, digest: str) -> bytes | None:
        return None if self.inline is None else self.inline(digest)

    # -- never through a link ------------------------------------------------------------------
    def _checked(self, digest: str) -> str:
        """The blob's path, once its 2-hex directory is known not to be a planted symlink.

        NOTE: one ``lstat`` per call (hot path: the ``save_json`` budget). A link there would send
        writes, reads and deletes out of the root: it is moved aside with a ``StoreWarning``.
        """
        path = self.layout.blob_path(digest)
        fan = os.path.dirname(path)
        try:
            st = os.lstat(fan)
        except FileNotFoundError:
            return path
        if not stat.S_ISDIR(st.st_mode):
            set_aside_link(self.layout.root, fan)
        return path

    def _lstat(self, digest: str) -> os.stat_result:
        """``lstat`` of a stored blob; a blob that is a symlink (or not a file) is moved aside and reads as missing."""
        path = self._checked(digest)
        st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode):
            set_aside_link(self.layout.root, path)
            raise FileNotFoundError(path)
        return st

    def _open(self, digest: str) -> int:
        """A read fd on a stored blob, never through a symlink (``FileNotFoundError`` if missing)."""
        path = self._checked(digest)
        try:
            return os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError as exc:
            if exc.errno != errno.ELOOP:
                raise
        set_aside_link(self.layout.root, path)
        raise FileNotFoundError(path)

    # -- writes ------------------------------------------------------------------------------
    def _tmp_path(self) -> str:
        if not os.path.isdir(self.tmp_dir):  # removed from under us (a manual clean-up): recreate
            make_dirs(self.tmp_dir)
        return os.path.join(self.tmp_dir, f"{self._tmp_token}-{next(self._tmp_seq)}")

    def _keep_existing(self, final: str, size: int | None = None) -> bool:
        """True if ``final`` is stored (and of ``size`` bytes, when given); its mtime is then
        refreshed for ``gc``'s grace period."""
        try:
            if not os.access(final, os.F_OK):  # the usual answer for new bytes, without raising
                return False
            st = os.lstat(final)
            if not stat.S_ISREG(st.st_mode):  # a planted link: never counts as stored
                set_aside_link(self.layout.root, final)
                return False
            if size is not None and st.st_size != size:  # a short file left by a killed writer
                return False
            os.utime(final)
            return True
        except FileNotFoundError:
            return False
        except OSError:
            return os.path.exists(final)

    def _install(self, tmp: str, digest: str, size: int) -> bool:
        """Move a finished temp file of ``size`` bytes into place; False (and temp removed) if it was already there."""
        final = self._checked(digest)
        if self._keep_existing(final, size):
            unlink_quietly(tmp)
            return False
        os.chmod(tmp, READ_ONLY)
        self._place(tmp, final)
        return True

    def put_bytes(self, data: bytes | bytearray | memoryview) -> PutResult:
        """Store ``data``; writes nothing if the same bytes are already stored.

        NOTE: small saves are bound by file-system calls (a new file costs more than all the
        Python around it; the ``save_json`` budget, docs/architecture.md), so a new blob of up to
        ``DIRECT_MAX`` bytes is three calls: create it under its final name (``O_EXCL``, born
        read-only), write, close. A writer killed half-way leaves a short file: a blob whose size
        is not that of the bytes being saved is rewritten through a temp file and a rename, so it
        never counts as stored. With ``durability="fsync"`` every blob goes through temp + fsync +
        rename, the atomic way.
        """
        digest = hash_bytes(data)
        final = self._checked(digest)
        size = len(data)
        if self._keep_existing(final, size):
            return PutResult(digest, size, False)
        if size <= DIRECT_MAX and not self.fsync:
            try:
                fd = _create_read_only(final)
            except FileExistsError:
                pass  # a short file (or another writer's, just now): rewrite it the atomic way below
            except OSError as exc:
                raise _write_error(exc, "a blob") from exc
            else:
                try:
                    _write_all(fd, data)
                except OSError as exc:
                    _unlink_if_ours(final, fd)
                    raise _write_error(exc, "a blob") from exc
                except BaseException:
                    _unlink_if_ours(final, fd)
                    raise
                finally:
                    os.close(fd)
                return PutResult(digest, size, True)
        try:
            with temp_file(self.tmp_dir, "blob") as tmp:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, READ_ONLY)
                try:
                    _write_all(fd, data)
                    if self.fsync:
                        os.fsync(fd)
                finally:
                    os.close(fd)
                self._place(tmp, final)
        except OSError as exc:
            raise _write_error(exc, "a blob") from exc
        return PutResult(digest, size, True)

    def _place(self, tmp: str, final: str) -> None:
        """Rename a finished, read-only temp file to its blob path (making the 2-hex directory)."""
        try:
            os.replace(tmp, final)
        except FileNotFoundError:  # the first blob under this 2-hex prefix
            make_dirs(os.path.dirname(final))
            os.replace(tmp, final)
        if self.fsync:
            fsync_path(os.path.dirname(final))

    def put_file(self, src: str, *, move: bool = False) -> PutResult:
        """Store the bytes of the local file ``src`` (hash and copy in one go).

        With ``move=True`` the file is consumed (a staged file the caller would delete next): it
        is read and hashed once and becomes the blob by a rename (see :meth:`_adopt`); ``src`` is
        gone afterwards whatever happened to be stored already.
        """
        if move:
            return self._adopt(src)
        try:
            st = os.stat(src)
        except FileNotFoundError:
            raise InvalidInputError(
                f"no such file: {src!r}; check the path (relative paths start at {os.getcwd()!r})"
            ) from None
        if stat.S_ISDIR(st.st_mode):
            raise InvalidInputError(f"{src!r} is a directory; use save_dir() for directories")
        if not stat.S_ISREG(st.st_mode):
            raise InvalidInputError(f"{src!r} is not a regular file")
        if st.st_size < PARALLEL_THRESHOLD:
            with open(src, "rb") as f:
                data = f.read()
            return self.put_bytes(data)
        return self._put_large(src, st)

    def _adopt(self, src: str) -> PutResult:
        """``put_file(src, move=True)``: the file itself becomes the blob when it safely can.

        NOTE: AetherGraph's facade stages every save in a file of its own (the ``save_json``
        budget): renaming that file into ``blobs/`` saves a file create, a write and an unlink per
        save. The file is renamed only if it is a regular file (opened ``O_NOFOLLOW``; renamed only
        while its path still names the inode read) with no other hard link (no other name could
        change the blob), unchanged while it was read (size and mtime), on the store's file system
        (``EXDEV``: copied instead) and ours to make read-only; otherwise its bytes are copied as by
        ``put_file`` and the file removed. Its mtime is refreshed first: ``gc`` counts its grace
        period from the save, not from when the file was written.
        """
        try:
            fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            raise InvalidInputError(
                f"no such file: {src!r}; check the path (relative paths start at {os.getcwd()!r})"
            ) from None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise InvalidInputError(f"{src!r} is a symbolic link; save the file it points to") from None
            raise
        try:
            st = os.fstat(fd)
            if stat.S_ISDIR(st.st_mode):
                raise InvalidInputError(f"{src!r} is a directory; use save_dir() for directories")
            if not stat.S_ISREG(st.st_mode):
                raise InvalidInputError(f"{src!r} is not a regular file")
            data: bytes | None = None
            if st.st_size < PARALLEL_THRESHOLD:
                data = os.read(fd, st.st_size + 1)  # one read (one more byte: a file that grew shows)
                while len(data) < st.st_size and (more := os.read(fd, st.st_size + 1 - len(data))):
                    data += more
                digest, size = hash_bytes(data), len(data)
            else:
                digest, size = _hash_fd(fd)
            after = os.fstat(fd)
            if (after.st_size, after.st_mtime_ns, size) != (st.st_size, st.st_mtime_ns, st.st_size):
                raise InvalidInputError(f"{src!r} changed while it was being saved; save it again once it is written")
            final = self._checked(digest)
            if self._keep_existing(final, size):
                _unlink_same(src, st)
                return PutResult(digest, size, False)
            if st.st_nlink == 1 and self._rename_into(fd, st, src, final):
                return PutResult(digest, size, True)
        finally:
            os.close(fd)
        put = self.put_bytes(data) if data is not None else self._put_large(src, st)
        _unlink_same(src, st)
        return put

    def _rename_into(self, fd: int, st: os.stat_result, src: str, final: str) -> bool:
        """Make the open file ``fd`` (read from ``src``) the blob at ``final``; False if it cannot be."""
        try:
            cur = os.lstat(src)
        except OSError:
            return False
        if (cur.st_dev, cur.st_ino) != (st.st_dev, st.st_ino):  # the name now points elsewhere
            return False
        try:
            os.chmod(fd, READ_ONLY)
        except OSError:  # not ours (another owner): copy it
            return False
        try:
            if self.fsync:
                os.fsync(fd)
            self._place(src, final)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.chmod(fd, stat.S_IMODE(st.st_mode))
            if exc.errno in (errno.EXDEV, errno.EPERM, errno.EACCES):  # another file system: copy
                return False
            raise _write_error(exc, "a blob") from exc
        with contextlib.suppress(OSError):  # (the save gate keeps gc away until the row is written)
            os.utime(fd)
        return True

    def _put_large(self, src: str, st: os.stat_result) -> PutResult:
        """Copy (kernel-side) and hash (blake3, GIL released) at the same time, on two threads.

        NOTE: reading the source twice costs nothing extra (the second read hits the page
        cache) and halves wall time against a single-threaded read+hash+write loop. If the
        source changes while it is being saved, the save is refused rather than stored under
        a digest that does not match.
        """
        result: dict[str, object] = {}

        def hash_source() -> None:
            try:
                result["digest"], result["hashed"] = hash_file(src)
            except BaseException as exc:  # reported on the calling thread
                result["error"] = exc

        try:
            with temp_file(self.tmp_dir, "blob") as tmp:
                t = threading.Thread(target=hash_source, name="aeg-hash", daemon=True)
                t.start()
                try:
                    _copy_file(src, tmp, st.st_size, fsync=self.fsync)
                finally:
                    t.join()
                if "error" in result:
                    raise result["error"]  # type: ignore[misc]
                after = os.stat(src)
                if (after.st_size, after.st_mtime_ns, result["hashed"]) != (st.st_size, st.st_mtime_ns, st.st_size):
                    raise InvalidInputError(
                        f"{src!r} changed while it was being saved; save it again once it is written"
                    )
                digest = str(result["digest"])
                created = self._install(tmp, digest, st.st_size)
        except OSError as exc:
            raise _write_error(exc, f"a copy of {src!r}") from exc
        return PutResult(digest, st.st_size, created)

    def put_tree(self, path: str) -> tuple[list[dict[str, Any]], list[str], int]:
        """Store every regular file under the directory ``path``: ``(entries, skipped, total_bytes)``.

        ``entries`` are ``{"path", "blob", "size", "mode"}`` sorted by path (an empty directory is
        an entry with ``blob=None``). Symbolic links are not followed (they could point out of the
        directory) and, like other non-regular files, are listed in ``skipped``.

        Raises:
            InvalidInputError: ``path`` is missing or is not a directory.
        """
        top = os.path.abspath(path)
        if not os.path.exists(top):
            raise InvalidInputError(f"no such directory: {path!r}")
        if not os.path.isdir(top):
            raise InvalidInputError(f"{path!r} is a file; use save_file() for files")
        entries: list[dict[str, Any]] = []
        skipped: list[str] = []
        total = 0
        for dirpath, dirnames, filenames in os.walk(top, followlinks=False):
            dirnames.sort()
            rel_dir = os.path.relpath(dirpath, top)
            for d in list(dirnames):
                if os.path.islink(os.path.join(dirpath, d)):
                    skipped.append(_rel(rel_dir, d))
                    dirnames.remove(d)
            stored = 0
            for fname in sorted(filenames):
                full = os.path.join(dirpath, fname)
                st = os.lstat(full)
                if not stat.S_ISREG(st.st_mode):
                    skipped.append(_rel(rel_dir, fname))
                    continue
                put = self.put_file(full)
                total += put.size
                stored += 1
                entries.append(
                    {"path": _rel(rel_dir, fname), "blob": put.digest, "size": put.size, "mode": st.st_mode & 0o777}
                )
            if rel_dir != "." and not stored and not dirnames:  # empty, or only skipped entries: kept as a directory
                entries.append({"path": rel_dir.replace(os.sep, "/") + "/", "blob": None, "size": 0, "mode": 0o755})
        entries.sort(key=lambda e: e["path"])
        # A long save_dir: refresh every file blob now (gc keeps fresh blobs) and re-store any
        # that a gc running meanwhile collected, so the manifest never names a missing blob.
        for e in entries:
            if e["blob"] and not self.touch(e["blob"]):
                self.put_file(os.path.join(top, *e["path"].split("/")))
        return entries, skipped, total

    def open_writer(self) -> BlobWriter:
        """A binary file-like object that hashes what is written; ``commit()`` stores it."""
        return BlobWriter(self)

    # -- reads -------------------------------------------------------------------------------
    def read_bytes(self, digest: str, *, verify: bool = False) -> bytes:
        """The blob's bytes; with ``verify`` they are re-hashed first."""
        try:
            with open(self._open(digest), "rb") as f:
                data = f.read()
        except FileNotFoundError:
            inline = self._inline(digest)
            if inline is None:
                raise NotFoundError(self._missing(digest)) from None
            data = inline
        if verify and hash_bytes(data) != digest:
            raise CorruptionError(
                f"blob {digest} is corrupt (its bytes no longer hash to its name); run verify(repair=True)"
            )
        return data

    def read_head(self, digest: str, limit: int) -> bytes:
        """At most the first ``limit`` bytes of a blob (previews read no more than they show)."""
        try:
            with open(self._open(digest), "rb") as f:
                return f.read(limit)
        except FileNotFoundError:
            inline = self._inline(digest)
            if inline is None:
                raise NotFoundError(self._missing(digest)) from None
            return inline[:limit]

    def check(self, digest: str) -> bool:
        """Re-hash a stored blob; True when its bytes still match its name."""
        path = self._checked(digest)
        if is_symlink(path):
            return False
        try:
            return hash_file(path, threads=True)[0] == digest
        except FileNotFoundError:
            inline = self._inline(digest)  # format 2: content inline in its row
            if inline is None:
                raise
            return hash_bytes(inline) == digest

    def iter_blobs(self) -> Iterator[tuple[str, int, float]]:
        """Every stored blob as ``(digest, size, mtime)``."""
        try:
            fans = os.scandir(self.layout.blobs)
        except FileNotFoundError:
            return
        with fans:
            for fan in fans:
                if not fan.is_dir(follow_symlinks=False) or len(fan.name) != 2:
                    continue
                try:
                    entries = os.scandir(fan.path)
                except FileNotFoundError:
                    continue
                with entries:
                    for e in entries:
                        digest = fan.name + e.name
                        try:
                            if not (is_hex_digest(digest) and e.is_file(follow_symlinks=False)):
                                continue
                            st = e.stat(follow_symlinks=False)
                        except FileNotFoundError:  # another process's gc freed it after the listing
                            continue
                        yield digest, st.st_size, st.st_mtime

    def drop_short(self, digest: str, size: int) -> None:
        """Remove a blob file of ``digest`` that is not ``size`` bytes (a killed writer's short file).

        Format 2 keeps small content in its row and reads a blob file first (a migrated store's):
        a short file left there must not shadow the row saved now. One ``lstat`` call when there is
        none (every small save's case).

        Example:
            >>> blobs.drop_short(digest, len(data))    # doctest: +SKIP
        """
        try:  # the usual case, no such file, in one call (a look through a planted link writes nothing)
            os.lstat(self.layout.blob_path(digest))
        except FileNotFoundError:
            return
        final = self._checked(digest)
        if os.access(final, os.F_OK) and not self._keep_existing(final, size):
            unlink_quietly(final)

    def delete(self, digest: str) -> None:
        """Remove a blob (gc only)."""
        unlink_quietly(self._checked(digest))

    # -- local paths handed out (as_local_file / as_local_dir) --------------------------------
    def materialize_file(self, digest: str, name: str, *, verify: bool = False) -> str:
        """A read-only local path named ``name`` holding the blob's bytes: its own inode, never the blob.

        Made once (a reflink where the file system can, else a kernel-side copy) and kept in
        ``files/<digest>/``. Writing through the path never reaches the blob: a copy whose size or
        read-only mode changed is made again, and with ``verify`` the copy is re-hashed too. A
        symlink planted there is moved aside with a ``StoreWarning``.

        Raises:
            NotFoundError: the blob is not stored.
            InvalidInputError: ``files/<digest>`` is a symlink leading out of the store.
        """
        try:
            src_st = self._lstat(digest)
        except FileNotFoundError:
            inline = self._inline(digest)
            if inline is None:
                raise NotFoundError(self._missing(digest)) from None
            return self._materialize_inline(digest, name, inline, verify=verify)
        src = self.layout.blob_path(digest)
        target_dir, target, st = self._materialized_target(digest, name)
        if (
            st is None
            or st.st_ino == src_st.st_ino  # a hard link to the blob (made by an older version)
            or st.st_size != src_st.st_size
            or st.st_mode & 0o222
            or (verify and not self._copy_matches(target, digest))
        ):
            make_dirs(target_dir)
            clone_file(src, target, self.tmp_dir)
        return target

    def _materialized_target(self, digest: str, name: str) -> tuple[str, str, os.stat_result | None]:
        """The folder and path ``name`` of ``digest`` is materialized at, and the regular file there (if any);
        anything else planted there (a symlink, a folder) is set aside first."""
        target_dir = self._materialized_dir(digest)
        target = os.path.join(target_dir, name)
        try:
            st: os.stat_result | None = os.lstat(target)
        except FileNotFoundError:
            st = None
        if st is not None and not stat.S_ISREG(st.st_mode):
            set_aside_link(self.layout.root, target)
            st = None
        return target_dir, target, st

    def _materialize_inline(self, digest: str, name: str, data: bytes, *, verify: bool) -> str:
        """``materialize_file`` of content held inline in its row: written once, read-only, renamed into place."""
        target_dir, target, st = self._materialized_target(digest, name)
        if (
            st is None
            or st.st_size != len(data)
            or st.st_mode & 0o222
            or (verify and not self._copy_matches(target, digest))
        ):
            make_dirs(target_dir)
            with temp_file(self.tmp_dir, "file") as tmp:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, READ_ONLY)
                try:
                    _write_all(fd, data)
                finally:
                    os.close(fd)
                os.replace(tmp, target)
        return target

    def _materialized_dir(self, digest: str) -> str:
        """``files/<digest>``, inside the root and not a planted symlink."""
        path = inside_root(self.layout.root, self.layout.materialized_dir(digest))
        if is_symlink(path):
            set_aside_link(self.layout.root, path)
        return path

    def _copy_matches(self, path: str, digest: str) -> bool:
        h = hasher(threads=True)
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        with open(fd, "rb") as f:
            while chunk := f.read(CHUNK):
                h.update(chunk)
        return h.hexdigest() == digest

    def materialize_dir(self, digest: str, name: str, entries: list[dict[str, Any]]) -> str:
        """A local directory ``name`` laid out from a directory manifest's ``entries`` (read-only files).

        Built in this writer's temp directory and renamed into place, so a reader never sees half
        of it; a concurrent twin that won the rename is as good.

        Raises:
            CorruptionError: an entry's path would leave the directory.
            NotFoundError: a file's blob is not stored.
        """
        target = os.path.join(self._materialized_dir(digest), name)
        if is_symlink(target):
            set_aside_link(self.layout.root, target)
        elif os.path.isdir(target):
            return target
        staging = os.path.join(self.tmp_dir, "dir-" + uuid.uuid4().hex)
        try:
            for e in entries:
                rel = e["path"]
                parts = [p for p in rel.split("/") if p]
                if not parts or any(p in (".", "..") for p in parts) or rel.startswith("/"):
                    raise CorruptionError(f"manifest {digest} has an unsafe path {rel!r}; refusing to materialize it")
                dest = os.path.join(staging, *parts)
                if e["blob"] is None:
                    make_dirs(dest)
                    continue
                make_dirs(os.path.dirname(dest))
                try:
                    self._lstat(e["blob"])
                except FileNotFoundError:
                    inline = self._inline(e["blob"])
                    if inline is None:
                        raise NotFoundError(self._missing(e["blob"])) from None
                    with open(dest, "wb") as f:  # staging: renamed into place whole below
                        f.write(inline)
                    os.chmod(dest, READ_ONLY)
                    continue
                clone_file(self.layout.blob_path(e["blob"]), dest, self.tmp_dir)
            make_dirs(staging)
            make_dirs(os.path.dirname(target))
            try:
                os.rename(staging, target)
            except OSError:
                if not os.path.isdir(target):  # not a concurrent twin: a real failure
                    raise
        finally:
            remove_tree(staging)
        return target

    def forget_materialized(self, digest: str) -> None:
        """Remove the local paths handed out for a blob (after gc or repair removed the blob)."""
        remove_tree(os.path.join(self.layout.files, digest))

    def move_aside(self, digest: str, aside: str) -> str:
        """Move a damaged blob to ``<aside>/blobs/<digest>`` (never delete it); returns the new path."""
        dest = os.path.join(aside, "blobs", digest)
        make_dirs(os.path.dirname(dest))
        os.replace(self._checked(digest), dest)
        self.forget_materialized(digest)
        return dest

    def _missing(self, digest: str) -> str:
        return f"blob {digest} is missing from the store at {self.layout.root!r}; it may have been collected by gc"


class BlobWriter:
    """Streaming writer into the CAS: ``write()`` bytes, then ``commit()`` or ``abort()``."""

    def __init__(self, blobs: BlobStore) -> None:
        self._blobs = blobs
        self._tmp = blobs._tmp_path()
        self._fd: int | None = os.open(self._tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        self._hash = hasher()
        self.size = 0

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Append ``data``; returns the number of bytes written."""
        if self._fd is None:
            raise ValueError("write to a closed artifact writer")
        if isinstance(data, str):
            raise TypeError("artifact writers take bytes; encode text first, e.g. w.write(text.encode())")
        view = memoryview(data).cast("B")
        self._hash.update(view)
        try:
            rest = view
            while rest:
                rest = rest[os.write(self._fd, rest) :]
        except OSError as exc:
            self.abort()
            raise _write_error(exc, "an artifact") from exc
        self.size += len(view)
        return len(view)

    def writable(self) -> bool:
        return True

    def flush(self) -> None:
        """Nothing is buffered; present for file-like compatibility."""

    def commit(self) -> PutResult:
        """Finish the blob and move it into place."""
        if self._fd is None:
            raise ValueError("artifact writer is already closed")
        fd, self._fd = self._fd, None
        try:
            if self._blobs.fsync:
                os.fsync(fd)
            os.close(fd)
            digest = self._hash.hexdigest()
            created = self._blobs._install(self._tmp, digest, self.size)
        except OSError as exc:
            unlink_quietly(self._tmp)
            raise _write_error(exc, "an artifact") from exc
        return PutResult(digest, self.size, created)

    def take_small(self, limit: int) -> bytes | None:
        """The bytes written, if at most ``limit`` (format 2 keeps them in the row): the writer is
        then closed and its temp file removed; None (and still open for ``commit``) otherwise."""
        if self._fd is None or self.size > limit:
            return None
        with open(self._tmp, "rb") as f:
            data = f.read()
        self.abort()
        return data

    def abort(self) -> None:
        """Drop everything written so far."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        unlink_quietly(self._tmp)


HASH_BUFFER = 8 << 20  # large enough for blake3's threads; reused for every read of one file


def hash_file(path: str, *, threads: bool = False) -> tuple[str, int]:
    """``(blake3 hex digest, bytes hashed)`` of a file, read in chunks into one reused buffer.

    NOTE: not ``update_mmap``: a file truncated by another process while it is mapped kills the
    reader with SIGBUS (a kernel dies with it); a read just returns fewer bytes, which the caller
    compares with the size it expected.
    """
    h = hasher(threads=threads)
    buf = bytearray(HASH_BUFFER)
    view = memoryview(buf)
    total = 0
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buf):
            h.update(view[:n])
            total += n
    return h.hexdigest(), total


def _hash_fd(fd: int) -> tuple[str, int]:
    """``(blake3 hex digest, bytes hashed)`` of an open file, from its current offset."""
    h = hasher()
    buf = bytearray(HASH_BUFFER)
    view = memoryview(buf)
    total = 0
    while n := os.readv(fd, [buf]):
        h.update(view[:n])
        total += n
    return h.hexdigest(), total


def _unlink_same(path: str, st: os.stat_result) -> None:
    """Remove ``path`` if it still names the file ``st`` describes (a consumed source)."""
    try:
        cur = os.lstat(path)
        if (cur.st_dev, cur.st_ino) == (st.st_dev, st.st_ino):
            os.unlink(path)
    except OSError:
        pass


def _copy_file(src: str, dst: str, size: int, *, fsync: bool) -> None:
    with open(src, "rb") as fin, open(dst, "xb") as fout:
        try:
            left = size
            while left > 0:
                n = os.copy_file_range(fin.fileno(), fout.fileno(), min(left, 1 << 30))
                if n == 0:
                    break
                left -= n
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                raise
            fin.seek(0)
            fout.seek(0)
            fout.truncate()
            while chunk := fin.read(CHUNK):
                fout.write(chunk)
        if fsync:
            fout.flush()
            os.fsync(fout.fileno())


def _rel(rel_dir: str, name: str) -> str:
    return name if rel_dir == "." else rel_dir.replace(os.sep, "/") + "/" + name
