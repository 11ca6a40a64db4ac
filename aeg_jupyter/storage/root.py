"""The store root on disk: its format marker, this process's writer claim, and recovery of dead writers.

A writer is one process with the store open. It holds an exclusive ``flock`` on
``spool/<writer>/lock`` while it lives; a spool directory whose lock nobody holds belonged to a
writer that died, and the next process to open the store flushes that spool into the tables and
removes the writer's temp files (:meth:`StoreRoot.recover`).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import secrets
import threading
import time
import warnings
from collections.abc import Iterator, Mapping

from ..base.errors import InvalidInputError, ObjectStoreError, StoreFormatError, StoreWarning, StoreWriteError
from .fsops import (
    DIR_MODE,
    FILE_MODE,
    hold_lock,
    is_symlink,
    lock_is_free,
    make_dirs,
    remove_tree,
    set_aside_link,
    try_lock,
    unlink_quietly,
)
from .layout import META_NAME, STORE_FORMAT, Layout, parse_spool_name
from .objectstore import ObjectStore, S3Location, resolve_root
from .tables import Table

FORMATS = (STORE_FORMAT, 2)  # 1: Hive Parquet (read-only unless named; `aeg migrate`), 2: Delta Lake
DEFAULT_FORMAT = 2  # what a new store gets when the caller and AEG_STORE_FORMAT name none (docs/format2.md)
STALE_SECONDS = 60.0  # a half-created writer directory older than this belonged to a dead process
KNOWN_DIRS = ("blobs", "tables", "spool", "tmp", "files")
QUARANTINE = "quarantine"  # spools (or lines of them) recovery could not flush: kept, never retried


FORMAT_ENV = "AEG_STORE_FORMAT"  # the format asked for when the caller names none (`=1` runs the suite on 1)


def format_from_env() -> int | None:
    """The store format named by ``AEG_STORE_FORMAT`` (``1`` or ``2``), or None when it is unset or empty.

    Example:
        >>> format_from_env()     # with AEG_STORE_FORMAT unset    # doctest: +SKIP
    """
    value = os.environ.get(FORMAT_ENV, "").strip()
    if not value:
        return None
    if value not in {str(f) for f in FORMATS}:
        raise InvalidInputError(
            f"{FORMAT_ENV}={value!r} is not a store format; set it to one of {', '.join(map(str, FORMATS))} or unset it"
        )
    return int(value)


class StoreRoot:
    """One store directory as this process holds it: created or checked, and claimed as a writer.

    Example:
        >>> root = StoreRoot("/tmp/demo-store")     # doctest: +SKIP
        >>> root.writer                               # doctest: +SKIP
        'p4242x1a2b3c4d'
        >>> root.release()                            # doctest: +SKIP
    """

    def __init__(self, root: str | os.PathLike[str], *, format: int | None = None, migration: bool = False) -> None:
        if format is None:
            format = format_from_env()
        if format not in (None, *FORMATS):
            raise InvalidInputError(f"format must be one of {', '.join(map(str, FORMATS))}, not {format!r}")
        where = resolve_root(root)  # a URL root never becomes a local folder named 's3:'
        #: an s3:// root's object store (None for a local root); the root's local state is then
        #: this machine's directory for it under AEG_CACHE (storage/location.py)
        self.objects: ObjectStore | None = None
        if isinstance(where, S3Location):
            self.objects = ObjectStore(where)
            where = self.objects.local_state()
        #: the root's name in messages and `Store.root`: the directory, or s3://bucket/prefix
        self.name: str = self.objects.location.url if self.objects is not None else where
        self.path = where  # every local file of the store (for an s3:// root: its local state)
        self.layout = Layout(self.path)
        # `format` picks a new store's format (DEFAULT_FORMAT when None); an existing format-2 store opens as
        # itself, a format-1 store read-only (with `aeg migrate`'s name) unless format=1 is named
        self.format: int = format or DEFAULT_FORMAT
        # `aeg migrate` opens a store whose marker says "migrating" (every other open refuses it)
        self._migration = migration
        # set when a format-1 store is opened as format 2: it opens read-only, this says how to convert it
        self.migrate_hint: str | None = None
        #: while maintenance holds an s3:// root's lease: an event set if the lease is lost (stop at the next step)
        self.maintenance_lost: threading.Event | None = None
        #: an s3:// root: rows of dead writers' spools the last :meth:`recover` left for later (the object
        #: store did not answer), and why; ``Store.pending_uploads()`` counts them
        self.deferred_rows = 0
        self.deferred_error: str | None = None
        if self.objects is not None:
            self._init_remote(format)
        else:
            self._init_root(format)
        self.writer = f"p{os.getpid()}x{secrets.token_hex(4)}"
        # why this process cannot write ("read-only", "full", "format 1"), or None: a store whose root
        # cannot take a writer directory still opens, for reading (listing, recall, gc's report, verify)
        self.read_only: str | None = None
        if self.migrate_hint is not None:
            self._lock_fd: int | None = None
            self.read_only = "format 1"
            warnings.warn(self.migrate_hint, StoreWarning, stacklevel=3)
            self.save_gate = SaveGate(os.path.join(self.path, SAVE_GATE))
            self.save_gate.refusal = f"cannot save: {self.migrate_hint}"
            return
        try:
            self._lock_fd = self._claim_writer_dir()
        except OSError as exc:
            if exc.errno not in _NO_SPACE:
                raise
            self._lock_fd = None
            self.read_only = "full" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else "read-only"
            warnings.warn(
                f"the store at {self.path!r} is {self.read_only} ({exc.strerror}): it is open for reading only; "
                "saving and recording raise StoreWriteError, and the spools of closed sessions are flushed by a "
                "later open that can write",
                StoreWarning,
                stacklevel=3,
            )
        if self._lock_fd is not None and not migration and _marker_migrating(self.layout.meta):
            # `aeg migrate` marked the store between our look at the marker and our claim: let go
            self.release()
            raise StoreFormatError(migrating_message(self.path))
        self.save_gate = SaveGate(os.path.join(self.path, SAVE_GATE))

    # -- opening -----------------------------------------------------------------------------
    def _init_root(self, wanted: int | None) -> None:
        root = self.path
        if os.path.exists(root) and not os.path.isdir(root):
            raise InvalidInputError(
                f"store root {root!r} is a file; point the store at a directory (AEG_STORE or connect(root=...))"
            )
        meta = self.layout.meta
        if os.path.exists(meta):
            try:
                with open(meta, encoding="utf-8") as f:
                    info = json.load(f)
                fmt = info.get("format")
                migrating = bool(info.get("migrating"))
            except (OSError, ValueError, AttributeError) as exc:
                raise StoreFormatError(f"{meta} is unreadable ({exc}); restore it or open another store") from None
            if migrating and not self._migration:
                raise StoreFormatError(migrating_message(root))
            if fmt not in FORMATS:
                raise StoreFormatError(
                    f"store {root!r} has format {fmt!r}, this aeg_jupyter reads formats "
                    f"{' and '.join(map(str, FORMATS))}; "
                    "upgrade with `pip install -U aeg-jupyter` or open another store"
                )
            if fmt == STORE_FORMAT and wanted != STORE_FORMAT and not self._migration:
                # a format-1 store not opened as format 1: it opens for reading, and says how to convert it
                self.migrate_hint = (
                    f"store {root!r} is format 1; it is open read-only: convert it with `aeg migrate {root}` "
                    "(the old tables are kept until the new ones are whole), then open it again"
                )
                self.format = fmt
                return
            if wanted is not None and fmt != wanted and not self._migration:
                raise StoreFormatError(
                    f"store {root!r} has format {fmt}, not {wanted}; open it without format={wanted} "
                    f"(or unset {FORMAT_ENV}) or pick a new directory"
                )
            self.format = fmt
            self._check_known_dirs()
            return
        if os.path.isdir(root):
            strangers = [n for n in os.listdir(root) if n not in KNOWN_DIRS and not n.startswith(".")]
            if strangers:
                raise StoreFormatError(
                    f"{root!r} is not an aeg store (no {META_NAME}) and is not empty; "
                    "pick a new or empty directory for the store"
                )
        try:
            make_dirs(root)
        except OSError as exc:
            raise StoreWriteError(
                f"cannot create a store at {root!r}: {exc.strerror}; point the store at a directory you can write"
            ) from None
        tmp = os.path.join(root, f".{META_NAME}.{secrets.token_hex(4)}")
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE), "w", encoding="utf-8") as f:
            json.dump({"format": self.format, "hash": "blake3", "created_by": "aeg_jupyter"}, f)
        try:
            os.link(tmp, meta)  # never overwrite a marker another process wrote meanwhile
        except FileExistsError:
            self._init_root(wanted)  # that marker decides (and is checked against `wanted`)
        finally:
            os.unlink(tmp)
        self._check_known_dirs()

    def _init_remote(self, wanted: int | None) -> None:
        """An s3:// root: the marker on the bucket (created if absent), the local state made; always format 2."""
        assert self.objects is not None
        url = self.objects.location.url
        if wanted not in (None, 2):
            raise StoreFormatError(
                f"store {url!r}: s3:// roots are format 2 (Delta tables); open it without format={wanted}"
            )
        meta = self.objects.ensure_marker(format=2)
        if meta.get("migrating") and not self._migration:
            raise StoreFormatError(migrating_message(url))
        if meta.get("format") != 2:
            raise StoreFormatError(
                f"store {url!r} has format {meta.get('format')!r}; this aeg_jupyter opens s3:// stores of format 2: "
                "upgrade with `pip install -U aeg-jupyter` or use another prefix"
            )
        self.format = 2
        try:
            make_dirs(self.path)
        except OSError as exc:
            raise StoreWriteError(
                f"cannot create this machine's state for {url} at {self.path!r}: {exc.strerror}; "
                "set AEG_CACHE to a directory you can write"
            ) from None
        self._check_known_dirs()

    @contextlib.contextmanager
    def maintenance_lock(self, *, wait: bool = True) -> Iterator[bool]:
        """One maintenance runner at a time: ``maintenance.lock`` (a ``flock``) on this machine, and for
        an s3:// root also the bucket's lease (:class:`~.objectstore.Lease`: across machines, expiring
        when its holder dies). Yields True once held; False with ``wait=False`` when another runner has it
        (:func:`~.delta.hold_rewrites`: the flushers' merges take the same lock)."""
        from .delta import hold_rewrites  # (format 1 never imports deltalake for this)

        with hold_rewrites(self.layout.maintenance_lock, self.objects, wait=wait) as hold:
            self.maintenance_lost = hold.lost if hold is not None else None  # set if another machine takes over
            try:
                yield hold is not None
            finally:
                self.maintenance_lost = None

    def _check_known_dirs(self) -> None:
        """Each of the store's folders is a real directory of the root (created if missing).

        Raises:
            InvalidInputError: one is a file, or a symlink (the store never follows one out of its root).
        """
        for d in KNOWN_DIRS:
            path = os.path.join(self.path, d)
            if is_symlink(path):
                raise InvalidInputError(
                    f"{path} is a symlink (to {os.readlink(path)}); the store never follows links out of its root: "
                    f"replace the link with a directory (move what it points to into {path}) and open the store again"
                )
            if os.path.lexists(path) and not os.path.isdir(path):
                raise InvalidInputError(
                    f"{path} should be a directory of the store but is a file; move it away "
                    f"(e.g. `mv {path} {path}.bak`) and open the store again"
                )
            if not os.path.isdir(path):
                make_dirs(path)

    def _claim_writer_dir(self) -> int:
        """Create ``spool/<writer>/lock`` and hold an exclusive lock on it while we live.

        The directory is prepared under a dot-name and renamed into place with the lock held,
        so no other process can mistake a starting writer for a dead one.
        """
        staging = os.path.join(self.layout.spool, f".new-{self.writer}")
        os.mkdir(staging, DIR_MODE)
        fd = hold_lock(os.path.join(staging, "lock"))
        os.rename(staging, self.layout.writer_spool_dir(self.writer))
        make_dirs(self.layout.writer_tmp_dir(self.writer))
        return fd

    # -- dead writers ------------------------------------------------------------------------
    def recover(self, tables: Mapping[str, Table]) -> list[str]:
        """Flush the spools of dead writers into ``tables`` and remove their temp files.

        Returns the writers recovered. Safe to run from several processes at once. A store
        opened for reading only (:attr:`read_only`) defers this: other writers' spools are read
        where they are. On an s3:// root, artifact rows are committed only once the blobs staged
        before (the dead writer's among them: its staging area is this machine's) landed
        (``DeltaSpoolTable.write_parts``); while the object store does not answer, every spool left
        stays where it is (one :class:`StoreWarning` naming ``%aeg status``, counted in
        :attr:`deferred_rows`) for the next open or the periodic maintenance's recover to commit.
        """
        recovered: list[str] = []
        deferred = [0]  # rows left in spools for a later recover (the object store did not answer)
        offline: ObjectStoreError | None = None
        spool_root = self.layout.spool
        if self.read_only is not None:
            return recovered
        # tmp/ is listed before spool/: a writer creates its spool directory before its temp
        # directory, so a temp directory whose writer is missing from the later listing is dead.
        tmp_names = os.listdir(self.layout.tmp)
        for name in sorted(os.listdir(spool_root)):
            if name == self.writer:
                continue
            wdir = os.path.join(spool_root, name)
            if is_symlink(wdir):  # a planted link: recovery would read and delete where it points
                set_aside_link(self.path, wdir)
                continue
            if name.startswith(".new-"):
                # A writer that died before its directory was renamed into place (or one that is
                # starting right now: its lock file may not exist yet, hence the age check).
                if _age(wdir) > STALE_SECONDS and lock_is_free(os.path.join(wdir, "lock")):
                    remove_tree(wdir)
                continue
            lock_path = os.path.join(wdir, "lock")
            if is_symlink(lock_path):
                set_aside_link(self.path, lock_path)
            if not os.path.exists(lock_path):
                remove_tree(wdir)
                continue
            fd = try_lock(lock_path)
            if fd is None:
                continue  # alive
            try:
                if offline is not None:  # nobody answers: leave the rest for the next recover
                    deferred[0] += _count_spooled_rows(wdir)
                    continue
                try:
                    complete = _flush_dead_spools(tables, name, wdir, self.path, self.objects)
                except _Unreachable as exc:
                    offline = exc.error
                    deferred[0] += _count_spooled_rows(wdir)
                    continue
                remove_tree(self.layout.writer_tmp_dir(name))
                if complete:
                    remove_tree(wdir)
                    recovered.append(name)
            finally:
                os.close(fd)
        self.deferred_rows, self.deferred_error = deferred[0], None if offline is None else str(offline)
        if offline is not None:
            warnings.warn(
                f"the object store of {self.name} does not answer ({offline}); the spools of closed sessions "
                f"on this machine ({deferred[0]} row(s)) stay in {spool_root} and are committed by the next open "
                "or the periodic maintenance once it answers (`%aeg status` shows what is pending)",
                StoreWarning,
                stacklevel=3,
            )
        # temp directories with no writer behind them
        live = set(os.listdir(spool_root))
        for name in tmp_names:
            if name not in live and name != self.writer:
                remove_tree(os.path.join(self.layout.tmp, name))
        return recovered

    # -- closing -----------------------------------------------------------------------------
    def release(self, *, spool_flushed: bool = True) -> None:
        """Drop this writer's temp files (and its spool directory, once flushed) and its lock."""
        if self._lock_fd is None:
            return
        remove_tree(self.layout.writer_tmp_dir(self.writer))
        if spool_flushed:
            remove_tree(self.layout.writer_spool_dir(self.writer))
        os.close(self._lock_fd)
        self._lock_fd = None

    def move_aside_dir(self) -> str:
        """Where ``verify(repair=True)`` moves damaged files: ``<root>/corrupt``."""
        return os.path.join(self.path, "corrupt")


# a flush that fails with these is deferred (the spool stays for a later open); any other failure
# sets the spool aside in quarantine/, so that no spool can make every later open fail
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM)


SAVE_GATE = ".save-gate.lock"  # shared by every save from its blob to its row; exclusive for gc's sweep


class SaveGate:
    """The lock that makes ``gc`` safe against every concurrent save, in any process.

    The protocol, in two sentences: every save holds ``<root>/.save-gate.lock`` shared from the
    moment it looks for (or writes) its blob until its row is in the spool; ``gc`` decides what to
    free without it, then takes it exclusively, catches up with every writer's rows and deletes
    only the blobs that are still unreferenced. So a save that found its blob has its row seen by
    that re-check, and a save that comes after finds the blob gone and stores it again.

    One ``flock`` per process: threads of one process share the shared hold (counted), and the
    exclusive hold uses its own file descriptor, so it waits for this process's saves too.

    Example:
        >>> gate = SaveGate("/tmp/store/.save-gate.lock")      # doctest: +SKIP
        >>> with gate.shared():                                 # doctest: +SKIP
        ...     put = blobs.put_bytes(data); table.append(row)
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._mutex = threading.Lock()
        self._fd: int | None = None
        self._holders = 0
        self.refusal: str | None = None  # why no save may start (a format-1 store opened by format-2 code)

    def _open(self) -> int | None:
        try:
            return os.open(self.path, os.O_RDONLY | os.O_CREAT, 0o644)
        except OSError:  # a read-only root: no save can write a blob either, nor gc delete one
            return None

    @contextlib.contextmanager
    def shared(self) -> Iterator[None]:
        """Hold the gate for one save (cheap: two ``flock`` calls when no other thread holds it)."""
        if self.refusal is not None:
            raise StoreWriteError(self.refusal)
        with self._mutex:
            if self._holders == 0:
                if self._fd is None:
                    self._fd = self._open()
                if self._fd is not None:
                    fcntl.flock(self._fd, fcntl.LOCK_SH)  # waits while a gc sweeps
            self._holders += 1
        try:
            yield
        finally:
            with self._mutex:
                self._holders -= 1
                if self._holders == 0 and self._fd is not None:
                    fcntl.flock(self._fd, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the gate against every save of every process (gc's sweep)."""
        fd = self._open()
        try:
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            if fd is not None:
                os.close(fd)


def _spool_order(name: str) -> tuple[int, str]:
    """Oldest seq first, by number (by name, seq 1000000 would sort before 999999): format 2's
    ``(writer, seq)`` commit skips a spool whose seq is at or below the newest committed one."""
    parsed = parse_spool_name(name)
    return (-1 if parsed is None else parsed[1], name)


class _Unreachable(Exception):
    """Recovery met an object store that does not answer: every spool left stays for a later recover."""

    def __init__(self, error: ObjectStoreError) -> None:
        super().__init__(str(error))
        self.error = error


def _flush_dead_spools(
    tables: Mapping[str, Table],
    writer: str,
    wdir: str,
    root: str,
    objects: ObjectStore | None = None,
) -> bool:
    """Flush a dead writer's spool files into ``tables``; False if some spool is left behind.

    A spool of a table not in ``tables`` (one a newer version writes) holds acknowledged rows: it
    stays, with its directory, for a process that knows that table. So does a spool that cannot
    be flushed for want of space or write access (with a warning: the next open tries again). A
    spool that fails to flush for any other reason, and the damaged lines of any spool, are moved
    to ``quarantine/<writer>/`` with a warning: never lost, never retried forever. A spool left
    behind keeps the later spools of its table behind it too (format 2 skips a ``(writer, seq)``
    at or below the newest one committed, so a later seq committed first would drop it).

    Raises:
        _Unreachable: an s3:// root whose object store does not answer (``objects``): the spool being
            flushed and every later one stay where they are, never quarantined.
    """
    complete = True
    held_back: set[str] = set()  # tables with a spool left behind: their later spools wait too
    for fname in sorted(os.listdir(wdir), key=_spool_order):
        parsed = parse_spool_name(fname)
        if parsed is None:
            continue
        if parsed[0] not in tables or parsed[0] in held_back:
            complete = False
            continue
        table = tables[parsed[0]]
        path = os.path.join(wdir, fname)
        if is_symlink(path):  # rows from outside the root are not taken in (nor is their file deleted)
            set_aside_link(os.path.dirname(os.path.dirname(wdir)), path)
            continue
        bad: list[bytes] = []
        rows, _ = table.read_spool(path, bad=bad)
        # de-duplicate by id: a row can only repeat if the line was written twice
        seen: set[str] = set()
        id_field = table.spec.id_field
        unique = [r for r in rows if not (r[id_field] in seen or seen.add(r[id_field]))]
        try:
            if unique:
                table.write_parts(unique, writer, parsed[1])
            if bad:
                _quarantine_lines(root, writer, fname, bad)
        except (OSError, ObjectStoreError) as exc:  # StoreWriteError is an OSError
            offline = _unreachable(objects, exc)
            if offline is not None:
                raise _Unreachable(offline) from None
            cause = exc.__cause__ if isinstance(exc.__cause__, OSError) else exc
            if isinstance(cause, OSError) and cause.errno in _NO_SPACE:
                warnings.warn(
                    f"could not flush the spool {path} of a closed session now ({cause.strerror or cause}); "
                    "its rows are kept and the next open tries again (free some space)",
                    StoreWarning,
                    stacklevel=4,
                )
                complete = False
                held_back.add(parsed[0])
                continue
            dest = _quarantine_file(root, writer, path)
            warnings.warn(
                f"could not flush the spool {path} ({exc}); it was moved to {dest} (quarantine) so that the "
                "store opens; its rows are not visible until you fix and re-append them",
                StoreWarning,
                stacklevel=4,
            )
            continue
        unlink_quietly(path)
    return complete


def _unreachable(objects: ObjectStore | None, exc: BaseException) -> ObjectStoreError | None:
    """The object store's error when a failed commit of recovery is the object store not answering (or
    refusing the keys), else None (a local root, or a server that answers: the spool itself is at fault)."""
    if objects is None:
        return None
    if isinstance(exc, ObjectStoreError):
        return exc
    try:
        objects.check()  # fails fast (and names the bucket) when nobody answers
    except ObjectStoreError as error:
        return error
    return None


def _count_lines(path: str) -> int:
    try:
        with open(path, "rb") as f:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
    except OSError:
        return 0


def _count_spooled_rows(wdir: str) -> int:
    """Rows (lines) in a writer's spool files (what ``%aeg status`` counts as pending)."""
    try:
        names = os.listdir(wdir)
    except OSError:
        return 0
    return sum(_count_lines(os.path.join(wdir, n)) for n in names if parse_spool_name(n) is not None)


def _quarantine_file(root: str, writer: str, path: str) -> str:
    dest_dir = os.path.join(root, QUARANTINE, writer)
    make_dirs(dest_dir)
    dest = os.path.join(dest_dir, os.path.basename(path))
    os.replace(path, dest)
    return dest


def _quarantine_lines(root: str, writer: str, fname: str, lines: list[bytes]) -> None:
    dest_dir = os.path.join(root, QUARANTINE, writer)
    make_dirs(dest_dir)
    dest = os.path.join(dest_dir, fname + ".bad")
    with open(os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_APPEND, FILE_MODE), "ab") as f:
        f.write(b"".join(line.rstrip(b"\n") + b"\n" for line in lines))
    warnings.warn(
        f"{len(lines)} damaged line(s) of the spool {fname} were set aside in {dest} (quarantine)",
        StoreWarning,
        stacklevel=5,
    )


def migrating_message(root: str) -> str:
    """What an open of a store in the middle of ``aeg migrate`` says."""
    return (
        f"store {root!r} is being converted to format 2 (`aeg migrate` started and has not finished); "
        f"finish it with `aeg migrate {root}`, then open the store again"
    )


def _marker_migrating(meta: str) -> bool:
    try:
        with open(meta, encoding="utf-8") as f:
            return bool(json.load(f).get("migrating"))
    except (OSError, ValueError, AttributeError):
        return False


def _age(path: str) -> float:
    try:
        return time.time() - os.stat(path).st_mtime
    except FileNotFoundError:
        return 0.0
