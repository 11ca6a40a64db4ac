"""Blobs on their way to an object store: a bounded local staging area and one uploader thread.

A save on an ``s3://`` root must be acknowledged at local-disk speed and must survive the network
being down. :class:`UploadQueue` does that for blobs: :meth:`UploadQueue.stage` puts the blob into
``<local state>/uploads/`` (a temp file beside it, fsynced, renamed into place, the directory
fsynced: after ``stage`` returns, the blob survives a crash), and a background thread uploads the
staged blobs oldest first with create-if-absent (:meth:`ObjectStore.put_file`), retrying with capped
exponential backoff and jitter while the server is unreachable. A staged file leaves the staging
area only after its upload is confirmed: it is then hard-linked into the verified download cache
(so a read right after the save needs no download) and unlinked.

A staged blob is named ``<time_ns>-<digest>`` (the name is its order); a file being uploaded is
held with ``flock`` so two queues on one ``AEG_CACHE`` never send the same file at once, and the
lock dies with its process. A queue left by a dead process (same ``AEG_CACHE``) is simply the
staging directory: the next :class:`UploadQueue` on it uploads what is there.

The bound (``max_bytes``, default :data:`DEFAULT_MAX_BYTES` or ``$AEG_UPLOAD_MAX_BYTES``) is on
the staged bytes; a save that would pass it fails with one :class:`ObjectStoreError` naming the
bound, what is pending and what to do, and stages nothing (what was acknowledged before stays).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import random
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ..base.errors import AegError, InvalidInputError, ObjectStoreError
from ..base.hashing import CHUNK, hasher, is_hex_digest
from .objectstore import ObjectStore

DEFAULT_MAX_BYTES = 8 << 30  # 8 GiB of blobs waiting for the server
MAX_BYTES_VAR = "AEG_UPLOAD_MAX_BYTES"
BACKOFF_FIRST = 0.2  # seconds before the first retry; doubles up to BACKOFF_CAP, each wait jittered
BACKOFF_CAP = 10.0
RESCAN_SECONDS = 5.0  # the uploader looks at the directory this often even when nobody staged anything
_TMP = ".tmp-"


@dataclass(frozen=True)
class UploadStatus:
    """What is waiting for the object store.

    ``pending`` staged blobs of ``bytes`` in all, the oldest staged ``oldest_age`` seconds ago
    (``None`` when nothing is pending), and the last upload error (``None`` once an upload
    succeeded after it; credential-free text).
    """

    pending: int
    bytes: int
    oldest_age: float | None
    last_error: str | None
    max_bytes: int

    def __str__(self) -> str:
        if not self.pending:
            text = "no blob waiting for upload"
        else:
            text = f"{self.pending} blob(s), {_size(self.bytes)} waiting for upload (oldest {self.oldest_age:.0f} s)"
        return f"{text}; last error: {self.last_error}" if self.last_error else text


@dataclass(frozen=True)
class PendingUploads:
    """What this machine acknowledged and the shared store does not have yet (``Store.pending_uploads()``).

    ``rows``: spooled rows not committed to the shared tables yet; ``blobs`` / ``bytes``: staged
    blobs not uploaded yet (:class:`UploadStatus`); ``oldest_age`` of the oldest staged blob;
    ``last_error``: why the last commit or upload failed (credential-free), ``None`` once they succeed.

    Example:
        >>> str(PendingUploads(rows=3, blobs=1, bytes=2048, oldest_age=4.0, last_error=None))
        'pending: 3 row(s), 1 blob(s) (2.0 KiB) not uploaded yet'
    """

    rows: int = 0
    blobs: int = 0
    bytes: int = 0
    oldest_age: float | None = None
    last_error: str | None = None

    @property
    def idle(self) -> bool:
        """True when nothing is waiting and nothing failed."""
        return not (self.rows or self.blobs or self.last_error)

    def __str__(self) -> str:
        if not (self.rows or self.blobs):
            text = "pending: nothing, every row and blob is uploaded"
        else:
            text = f"pending: {self.rows} row(s), {self.blobs} blob(s) ({_size(self.bytes)}) not uploaded yet"
        return f"{text}; last error: {self.last_error}" if self.last_error else text


def max_bytes_from_env(environ: Mapping[str, str] | None = None) -> int:
    """The staging bound: ``$AEG_UPLOAD_MAX_BYTES`` (bytes, or with a K/M/G suffix), else 8 GiB.

    Example:
        >>> max_bytes_from_env({"AEG_UPLOAD_MAX_BYTES": "512M"})
        536870912
    """
    env = os.environ if environ is None else environ
    text = (env.get(MAX_BYTES_VAR) or "").strip()
    if not text:
        return DEFAULT_MAX_BYTES
    scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}.get(text[-1:].upper(), 1)
    number = text[:-1] if scale != 1 else text
    try:
        value = int(float(number) * scale)
    except ValueError:
        raise InvalidInputError(
            f"{MAX_BYTES_VAR}={text!r} is not a size; write bytes or a size like 512M or 20G"
        ) from None
    if value <= 0:
        raise InvalidInputError(f"{MAX_BYTES_VAR}={text!r} must be positive; write a size like 512M or 20G")
    return value


class UploadQueue:
    """Blobs staged locally and uploaded in order by one background thread.

    Args:
        cache_dir: this machine's directory for the root (``ObjectStore.local_state()``); the staging
            area is its ``uploads/`` subdirectory.
        objectstore: where the blobs go.
        max_bytes: the bound on staged bytes (default: :func:`max_bytes_from_env`).
        start: start the uploader now (``None``: now if anything is staged, e.g. by a process that
            died, else at the first :meth:`stage`; ``False``: only when :meth:`start` is called).
        keep_in_cache: link a landed blob into the download cache (``False`` when the caller keeps
            its own local copy, as a store's local ``blobs/`` does).

    Example:
        >>> queue = UploadQueue(objects.local_state(), objects)          # doctest: +SKIP
        >>> queue.stage("/tmp/model.pt", digest)                         # doctest: +SKIP
        >>> queue.status().pending                                       # doctest: +SKIP
        1
        >>> queue.drain(30)                                              # doctest: +SKIP
        True
    """

    def __init__(
        self,
        cache_dir: str,
        objectstore: ObjectStore,
        max_bytes: int | None = None,
        *,
        start: bool | None = True,
        keep_in_cache: bool = True,
    ) -> None:
        self.objects = objectstore
        self.dir = os.path.join(cache_dir, "uploads")
        os.makedirs(self.dir, exist_ok=True)
        self.max_bytes = max_bytes if max_bytes is not None else max_bytes_from_env()
        self.keep_in_cache = keep_in_cache
        self.backoff_first = BACKOFF_FIRST
        self.backoff_cap = BACKOFF_CAP
        self._cond = threading.Condition()
        self._pending: dict[str, int] = {}  # staged name -> size (this queue's view of the directory)
        self._last_error: str | None = None
        self._error_at = 0.0  # time.monotonic() of the last failed upload
        self._closed = False
        self._busy = False
        self._remove_dead_temps()
        self._rescan()
        self._thread: threading.Thread | None = None
        self._autostart = start is None
        if start or (start is None and self._pending):
            self.start()

    def __repr__(self) -> str:
        return f"UploadQueue({self.dir!r}, {self.objects!r})"

    # -- staging ------------------------------------------------------------------------------------
    def stage(self, src: str, digest: str, *, move: bool = False, link: bool = False) -> str:
        """Put the blob ``digest`` (the bytes of ``src``) into the staging area; return its staged path.

        Returns once the staged file and its directory entry are on disk. ``move=True`` renames
        ``src`` into place (the caller's temp file; a copy when it is on another file system);
        ``link=True`` hard-links it (a read-only blob that never changes, e.g. a store's own local
        copy: no bytes copied); otherwise ``src`` is copied and re-hashed on the way (a file that no
        longer hashes to ``digest`` is refused). A digest already staged is not staged twice.

        Raises:
            ObjectStoreError: the staging area would pass its bound (nothing is staged).
            InvalidInputError: ``src`` does not hash to ``digest``.
        """
        if not is_hex_digest(digest):
            raise InvalidInputError(f"{digest!r} is not a blake3 content address")
        size = os.stat(src).st_size
        tmp_name = f"{_TMP}{os.getpid()}-{secrets.token_hex(6)}"
        with self._cond:
            already = self._staged_name(digest)
            if already is None:
                self._check_room(size)
                self._pending[tmp_name] = size  # reserved while it is written
        if already is not None:
            if move:
                with contextlib.suppress(OSError):
                    os.unlink(src)
            return os.path.join(self.dir, already)
        name = f"{time.time_ns():020d}-{digest}"
        final = os.path.join(self.dir, name)
        tmp = os.path.join(self.dir, tmp_name)
        try:
            if link and self._link_in(src, tmp):
                pass
            elif not (move and self._move_in(src, tmp)):
                self._copy_in(src, tmp, digest)
                if move:
                    with contextlib.suppress(OSError):
                        os.unlink(src)
            os.replace(tmp, final)
            _fsync_dir(self.dir)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            with self._cond:
                self._pending.pop(tmp_name, None)
            raise
        with self._cond:
            self._pending.pop(tmp_name, None)
            self._pending[name] = size
            self._cond.notify_all()
        if self._autostart and self._thread is None:
            self.start()
        return final

    def _check_room(self, size: int) -> None:
        used = sum(self._pending.values())
        if used + size <= self.max_bytes:
            return
        why = f" (the object store is unreachable: {self._last_error})" if self._last_error else ""
        raise ObjectStoreError(
            f"the local staging area for uploads to {self.objects.location.url} is full: {_size(used)} waiting "
            f"in {len(self._pending)} blob(s), bound {_size(self.max_bytes)} ({MAX_BYTES_VAR}){why}; "
            f"this save of {_size(size)} was not stored. Wait until the server is back and the uploads land "
            f"(%aeg status shows them), or raise {MAX_BYTES_VAR}; everything saved before is kept"
        )

    def _move_in(self, src: str, tmp: str) -> bool:
        try:
            os.chmod(src, 0o444)
            with open(src, "rb") as f:
                os.fsync(f.fileno())
            os.rename(src, tmp)
        except OSError as exc:
            if exc.errno in (errno.EXDEV, errno.EPERM, errno.EACCES):
                return False  # another file system: copy instead
            raise
        return True

    def _link_in(self, src: str, tmp: str) -> bool:
        try:
            os.link(src, tmp)
        except OSError as exc:
            if exc.errno in (errno.EXDEV, errno.EPERM, errno.EACCES, errno.EMLINK, errno.ENOTSUP):
                return False  # no hard links here: copy instead
            raise
        _fsync_file(tmp)
        return True

    def _copy_in(self, src: str, tmp: str, digest: str) -> None:
        h = hasher()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
        try:
            with open(src, "rb") as f:
                while chunk := f.read(CHUNK):
                    h.update(chunk)
                    view = memoryview(chunk)
                    while view:
                        view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        if h.hexdigest() != digest:
            raise InvalidInputError(f"{src!r} changed while it was being saved; save it again")

    # -- reads of blobs not uploaded yet ---------------------------------------------------------------
    def staged_path(self, digest: str) -> str | None:
        """The staged file of ``digest`` while it waits for its upload, else ``None``."""
        with self._cond:
            name = self._staged_name(digest)
        if name is None:
            return None
        path = os.path.join(self.dir, name)
        return path if os.path.exists(path) else None

    def local_file(self, digest: str) -> str:
        """A local read-only copy of the blob: from the staging area while its upload waits (works
        offline), else the verified download cache (downloaded once). The path stays valid after
        the upload (the staged file is linked into the cache)."""
        cached = self._cache_path(digest)
        if os.path.isfile(cached) and not os.path.islink(cached):
            return cached
        staged = self.staged_path(digest)
        if staged is not None and self._link_into_cache(staged, cached):
            return cached
        return self.objects.local_file(digest)

    def _cache_path(self, digest: str) -> str:
        self.objects.blob_key(digest)  # checks the digest
        return os.path.join(self.objects.cache, "blobs", digest[:2], digest[2:])

    def _link_into_cache(self, staged: str, cached: str) -> bool:
        """Hard-link a staged file into the download cache (a copy across file systems); True when there."""
        os.makedirs(os.path.dirname(cached), exist_ok=True)
        try:
            os.link(staged, cached)
        except FileExistsError:
            pass
        except FileNotFoundError:
            return os.path.isfile(cached)
        except OSError:
            tmp = f"{cached}.{secrets.token_hex(4)}.part"
            try:
                with open(staged, "rb") as f, open(tmp, "wb") as out:
                    while chunk := f.read(CHUNK):
                        out.write(chunk)
                os.chmod(tmp, 0o444)
                os.replace(tmp, cached)
            except OSError:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                return os.path.isfile(cached)
        return True

    # -- state ---------------------------------------------------------------------------------------
    def status(self) -> UploadStatus:
        """Pending blobs, their bytes, the oldest one's age and the last error (the directory looked at
        again: a process that died, or another one on this ``AEG_CACHE``, may have staged some)."""
        self._rescan()
        with self._cond:
            staged = {n: s for n, s in self._pending.items() if not n.startswith(_TMP)}
            error = self._last_error
        oldest = min((int(n.split("-", 1)[0]) for n in staged), default=None)
        age = None if oldest is None else max(0.0, (time.time_ns() - oldest) / 1e9)
        return UploadStatus(len(staged), sum(staged.values()), age, error, self.max_bytes)

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until every staged blob is uploaded; False when ``timeout`` seconds passed first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            self._cond.notify_all()
            while self._pending or self._busy:
                if self._thread is None or not self._thread.is_alive():
                    self._cond.release()
                    try:
                        self.upload_pending()
                    finally:
                        self._cond.acquire()
                    if self._pending and deadline is not None and time.monotonic() >= deadline:
                        return False
                    continue
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(min(left, 0.5) if left is not None else 0.5)
        return True

    def wait_landed(self, before_ns: int, *, timeout: float, give_up_on_error: float = 1.0) -> None:
        """Wait until every blob staged before ``before_ns`` (``time.time_ns()``) has landed.

        For a commit of rows that refer to staged blobs: rows never become visible to other machines
        before their blobs. Waits up to ``timeout`` seconds while uploads progress, and only
        ``give_up_on_error`` seconds once an upload failed (the caller retries later).

        The staging directory is looked at first: the blobs of a process that died (its rows are being
        recovered) or of another process on this ``AEG_CACHE`` count too.

        Raises:
            ObjectStoreError: some are still staged; the message says how many and why.
        """
        started = time.monotonic()
        self._rescan()
        with self._cond:
            self._cond.notify_all()  # an uploader waiting out a backoff tries again now
            while True:
                early = [n for n in self._pending if not n.startswith(_TMP) and int(n.split("-", 1)[0]) < before_ns]
                if not early:
                    return
                waited = time.monotonic() - started
                failed_since = self._last_error is not None and self._error_at >= started  # (not an old error)
                limit = give_up_on_error if failed_since else timeout
                if waited >= limit:
                    why = f": {self._last_error}" if self._last_error else " yet"
                    raise ObjectStoreError(
                        f"{len(early)} blob(s) these rows refer to are not uploaded to {self.objects.location.url}"
                        f"{why}; the rows stay in the local spool and are committed once the blobs land"
                    )
                if self._thread is None:
                    self.start()
                self._cond.wait(min(0.2, limit - waited))

    def start(self) -> None:
        """Start the uploader thread (done by the constructor unless ``start=False``)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="aeg-uploads", daemon=True)
        self._thread.start()

    def close(self, timeout: float = 0.0) -> bool:
        """Stop the uploader after up to ``timeout`` seconds of draining; what is left stays staged
        (the next queue on this directory uploads it). True when nothing is left."""
        drained = self.drain(timeout) if timeout else not self.status().pending
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=max(1.0, timeout))
        return drained

    # -- the uploader ----------------------------------------------------------------------------------
    def _run(self) -> None:
        failures = 0
        while True:
            with self._cond:
                if self._closed:
                    return
            try:
                landed = self.upload_pending()
            except Exception as exc:  # never let the thread die with blobs waiting
                failures += 1
                text = str(exc) if isinstance(exc, AegError) else f"upload failed: {type(exc).__name__}: {exc}"
                wait = min(self.backoff_cap, self.backoff_first * 2 ** min(failures - 1, 30))
                wait *= 0.5 + random.random() / 2  # jitter: machines coming back do not retry in step
                with self._cond:
                    self._last_error = self.objects.settings.scrub(text)
                    self._error_at = time.monotonic()
                    self._cond.notify_all()
                    if not self._closed:
                        self._cond.wait(wait)
                continue
            failures = 0
            with self._cond:
                if self._closed:
                    return
                if not landed:  # nothing staged, or only files another live queue is sending
                    waiting = any(not n.startswith(_TMP) for n in self._pending)
                    self._cond.wait(0.5 if waiting else RESCAN_SECONDS)

    def upload_pending(self, *, stop: Callable[[], bool] | None = None) -> int:
        """Upload what is staged, oldest first, until none is left; return how many landed.

        Raises the first upload error (:class:`ObjectStoreError`: unreachable, refused): the blob stays
        staged and the rest wait behind it (in order).
        """
        landed = 0
        while True:
            names = self._rescan()
            if not names:
                return landed
            progressed = False
            for name in names:
                if stop is not None and stop():
                    return landed
                result = self._upload_one(name)
                if result:
                    landed += 1
                    progressed = True
                elif result is None:
                    progressed = True  # another queue had it or already finished it
            if not progressed:
                return landed  # every staged file is held by another live queue: look again later

    def _upload_one(self, name: str) -> bool | None:
        """Upload one staged file: True when it landed here, None when another queue has it, raises on errors."""
        path = os.path.join(self.dir, name)
        digest = name.split("-", 1)[1]
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            self._forget(name)
            return None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            if not os.path.exists(path):  # uploaded by the queue that held it before us
                self._forget(name)
                return None
            with self._cond:
                self._busy = True
            try:
                got = self.objects.put_file(path)[0]
            finally:
                with self._cond:
                    self._busy = False
            if got != digest:
                aside = os.path.join(self.dir, f".bad-{name}")
                os.replace(path, aside)
                self._forget(name)
                raise ObjectStoreError(
                    f"a staged blob no longer matches its digest {digest} (moved to {aside}); save the artifact again"
                )
            if self.keep_in_cache:
                self._link_into_cache(path, self._cache_path(digest))
            os.unlink(path)
        finally:
            os.close(fd)
        with self._cond:
            self._last_error = None
        self._forget(name)
        return True

    def _forget(self, name: str) -> None:
        with self._cond:
            self._pending.pop(name, None)
            self._cond.notify_all()

    def _rescan(self) -> list[str]:
        """The staged names in order (the directory is the truth: other queues on it stage and land too)."""
        found: dict[str, int] = {}
        with os.scandir(self.dir) as it:
            for entry in it:
                if entry.name.startswith(".") or not _is_staged_name(entry.name):
                    continue
                with contextlib.suppress(FileNotFoundError):
                    found[entry.name] = entry.stat(follow_symlinks=False).st_size
        with self._cond:
            reserved = {n: s for n, s in self._pending.items() if n.startswith(_TMP)}
            self._pending = found | reserved
            self._cond.notify_all()
        return sorted(found)

    def _staged_name(self, digest: str) -> str | None:
        for name in self._pending:
            if name.endswith(digest) and not name.startswith(_TMP):
                return name
        return None

    def _remove_dead_temps(self) -> None:
        """Temp files of processes that died mid-stage (never acknowledged) are removed."""
        with os.scandir(self.dir) as it:
            for entry in it:
                if not entry.name.startswith(_TMP):
                    continue
                pid = entry.name[len(_TMP) :].split("-", 1)[0]
                if pid.isdigit() and not _alive(int(pid)):
                    with contextlib.suppress(OSError):
                        os.unlink(entry.path)


def _is_staged_name(name: str) -> bool:
    stamp, _, digest = name.partition("-")
    return stamp.isdigit() and is_hex_digest(digest)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _fsync_file(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _size(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"
