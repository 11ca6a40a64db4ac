"""The store: blobs, tables and this process's writer identity, opened once per root.

``Store`` owns the files; :class:`~aeg_jupyter.core.artifacts.ArtifactStore` and
:class:`~aeg_jupyter.core.events.EventLog` hold the in-memory views built on it. Opening a store
also finishes the work of writers that died: their spools are flushed into Parquet parts and
their temp files removed.
"""

from __future__ import annotations

import atexit
import fcntl
import json
import os
import secrets
import shutil
import sys
import threading
import time
import warnings
import weakref
from collections.abc import Callable
from typing import Literal

from ..base.errors import InvalidInputError, StoreFormatError
from ..storage.blobs import BlobStore
from ..storage.layout import META_NAME, STORE_FORMAT, Layout, parse_spool_name
from ..storage.tables import ARTIFACTS, EVENTS, OPS, Table

Durability = Literal["flush", "fsync"]
STALE_SECONDS = 60.0  # a half-created writer directory older than this belonged to a dead process
_KNOWN_DIRS = {"blobs", "tables", "spool", "tmp", "files"}


class Store:
    """One open store root. Use :func:`aeg_jupyter.connect` rather than this class directly.

    Args:
        root: the store directory; created if it does not exist.
        hot_limit: how many of the newest events the memory hot window keeps.
        durability: ``"flush"`` (a returned write survives a crash of this process) or
            ``"fsync"`` (it also survives a power loss; slower).
        flush_rows: rows per spool before it is flushed into a Parquet part.

    Example:
        >>> store = Store("/tmp/demo-store")        # doctest: +SKIP
        >>> store.artifacts.save_text("hi", kind="note")  # doctest: +SKIP
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        hot_limit: int = 1000,
        durability: Durability = "flush",
        flush_rows: int = 10_000,
    ) -> None:
        if durability not in ("flush", "fsync"):
            raise InvalidInputError(f"durability must be 'flush' or 'fsync', not {durability!r}")
        if not isinstance(hot_limit, int) or isinstance(hot_limit, bool) or hot_limit < 1:
            raise InvalidInputError(f"hot_limit must be a positive integer, not {hot_limit!r}")
        self.root = os.path.abspath(os.path.expanduser(os.fspath(root)))
        self.layout = Layout(self.root)
        self.durability: Durability = durability
        self.lock = threading.RLock()
        self.closed = False
        self._listeners: list[Callable[[str], None]] = []
        self._init_root()
        self.writer = f"p{os.getpid()}x{secrets.token_hex(4)}"
        self._lock_fd = self._claim_writer_dir()
        fsync = durability == "fsync"
        self.blobs = BlobStore(self.layout, self.writer, fsync=fsync)
        self.artifact_table = Table(self.layout, ARTIFACTS, writer=self.writer, flush_rows=flush_rows, fsync=fsync)
        self.event_table = Table(self.layout, EVENTS, writer=self.writer, flush_rows=flush_rows, fsync=fsync)
        self.op_table = Table(self.layout, OPS, writer=self.writer, flush_rows=flush_rows, fsync=fsync)
        self.tables = {t.spec.name: t for t in (self.artifact_table, self.event_table, self.op_table)}
        self.recover()
        # Imported here: the views import this module for typing only.
        from .artifacts import ArtifactStore
        from .events import EventLog

        self.artifacts = ArtifactStore(self)
        self.event_log = EventLog(self, hot_limit=hot_limit)
        atexit.register(_close_at_exit, weakref.ref(self))

    # -- opening -----------------------------------------------------------------------------
    def _init_root(self) -> None:
        root = self.root
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
            except (OSError, ValueError, AttributeError) as exc:
                raise StoreFormatError(f"{meta} is unreadable ({exc}); restore it or open another store") from None
            if fmt != STORE_FORMAT:
                raise StoreFormatError(
                    f"store {root!r} has format {fmt!r}, this aeg_jupyter reads format {STORE_FORMAT}; "
                    "upgrade with `pip install -U aeg-jupyter` or open another store"
                )
            return
        if os.path.isdir(root):
            strangers = [n for n in os.listdir(root) if n not in _KNOWN_DIRS and not n.startswith(".")]
            if strangers:
                raise StoreFormatError(
                    f"{root!r} is not an aeg store (no {META_NAME}) and is not empty; "
                    "pick a new or empty directory for the store"
                )
        os.makedirs(root, exist_ok=True)
        tmp = os.path.join(root, f".{META_NAME}.{secrets.token_hex(4)}")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({"format": STORE_FORMAT, "hash": "blake3", "created_by": "aeg_jupyter"}, f)
        try:
            os.link(tmp, meta)  # never overwrite a marker another process wrote meanwhile
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
        for d in _KNOWN_DIRS:
            os.makedirs(os.path.join(root, d), exist_ok=True)

    def _claim_writer_dir(self) -> int:
        """Create ``spool/<writer>/lock`` and hold an exclusive lock on it while we live.

        The directory is prepared under a dot-name and renamed into place with the lock held,
        so no other process can mistake a starting writer for a dead one.
        """
        staging = os.path.join(self.layout.spool, f".new-{self.writer}")
        os.makedirs(staging)
        fd = os.open(os.path.join(staging, "lock"), os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.rename(staging, self.layout.writer_spool_dir(self.writer))
        os.makedirs(self.layout.writer_tmp_dir(self.writer), exist_ok=True)
        return fd

    def recover(self) -> list[str]:
        """Flush the spools of dead writers into Parquet and remove their temp files.

        Returns the writers recovered. Safe to run from several processes at once.
        """
        recovered = []
        spool_root = self.layout.spool
        # tmp/ is listed before spool/: a writer creates its spool directory before its temp
        # directory, so a temp directory whose writer is missing from the later listing is dead.
        tmp_names = os.listdir(self.layout.tmp)
        for name in sorted(os.listdir(spool_root)):
            if name == self.writer:
                continue
            wdir = os.path.join(spool_root, name)
            if name.startswith(".new-"):
                # A writer that died before its directory was renamed into place (or one that is
                # starting right now: its lock file may not exist yet, hence the age check).
                if _age(wdir) > STALE_SECONDS and _is_dead(os.path.join(wdir, "lock")):
                    shutil.rmtree(wdir, ignore_errors=True)
                continue
            lock_path = os.path.join(wdir, "lock")
            try:
                fd = os.open(lock_path, os.O_RDWR)
            except FileNotFoundError:
                shutil.rmtree(wdir, ignore_errors=True)
                continue
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # alive
                self._flush_dead_spools(name, wdir)
                shutil.rmtree(self.layout.writer_tmp_dir(name), ignore_errors=True)
                shutil.rmtree(wdir, ignore_errors=True)
                recovered.append(name)
            finally:
                os.close(fd)
        # temp directories with no writer behind them
        live = set(os.listdir(spool_root))
        for name in tmp_names:
            if name not in live and name != self.writer:
                shutil.rmtree(os.path.join(self.layout.tmp, name), ignore_errors=True)
        return recovered

    def _flush_dead_spools(self, writer: str, wdir: str) -> None:
        for fname in sorted(os.listdir(wdir)):
            parsed = parse_spool_name(fname)
            if parsed is None or parsed[0] not in self.tables:
                continue
            table = self.tables[parsed[0]]
            path = os.path.join(wdir, fname)
            rows, _ = table.read_spool(path)
            # de-duplicate by id: a row can only repeat if the line was written twice
            seen: set[str] = set()
            unique = [r for r in rows if not (r[table.spec.id_field] in seen or seen.add(r[table.spec.id_field]))]
            if unique:
                table.write_parts(unique, writer, parsed[1])
            os.unlink(path)

    # -- closing -----------------------------------------------------------------------------
    def flush(self) -> None:
        """Move every spooled row of this process into Parquet parts."""
        with self.lock:
            for t in self.tables.values():
                t.flush()

    def compact(self, *, min_parts: int = 16) -> int:
        """Merge small Parquet parts in every partition; returns how many parts were merged."""
        merged = 0
        with self.lock:
            for t in self.tables.values():
                for kind in t.partition_kinds():
                    merged += t.compact(kind, min_parts=min_parts)
        return merged

    def close(self) -> None:
        """Flush spools into Parquet, release the writer lock and remove this writer's temp dir."""
        with self.lock:
            if self.closed:
                return
            self.closed = True
            errors: list[Exception] = []
            for t in self.tables.values():
                try:
                    t.close()
                except Exception as exc:  # keep the spool: the next open flushes it
                    errors.append(exc)
            shutil.rmtree(self.layout.writer_tmp_dir(self.writer), ignore_errors=True)
            if not errors:
                shutil.rmtree(self.layout.writer_spool_dir(self.writer), ignore_errors=True)
            os.close(self._lock_fd)
        if _OPEN.get(self.root) is self:
            _OPEN.pop(self.root, None)
        if errors:
            raise errors[0]

    # -- change listeners --------------------------------------------------------------------
    def subscribe(self, callback: Callable[[str], None]) -> Callable[[], None]:
        """Call ``callback(table)`` after each write of this process (``"artifacts"``, ``"events"``, ``"ops"``).

        For live views (the panel): the callback runs in the writing thread, right after the
        write, so it must be quick (mark dirty, schedule a redraw). Returns the unsubscribe function.

        Example:
            >>> stop = store.subscribe(lambda table: print("changed:", table))   # doctest: +SKIP
            >>> stop()                                                            # doctest: +SKIP
        """
        self._listeners.append(callback)

        def unsubscribe() -> None:
            if callback in self._listeners:
                self._listeners.remove(callback)

        return unsubscribe

    def notify(self, table: str) -> None:
        """Tell the listeners that this process wrote to ``table``; a failing listener never fails the write."""
        if not self._listeners:
            return
        for callback in tuple(self._listeners):
            try:
                callback(table)
            except Exception as exc:
                warnings.warn(f"aeg_jupyter: a store listener failed: {exc!r}", RuntimeWarning, stacklevel=3)

    def check_open(self) -> None:
        if self.closed:
            raise InvalidInputError("this store is closed; connect again with aeg_jupyter.connect()")

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self.root!r}, writer={self.writer!r}{', closed' if self.closed else ''})"


def _close_at_exit(ref: weakref.ref[Store]) -> None:
    store = ref()
    if store is None or store.closed:
        return
    try:
        store.close()
    except Exception as exc:  # the spool is intact; the next open flushes it
        print(f"aeg_jupyter: rows stay in the spool until the next open ({exc})", file=sys.stderr)


def _age(path: str) -> float:
    try:
        return time.time() - os.stat(path).st_mtime
    except FileNotFoundError:
        return 0.0


def _is_dead(lock_path: str) -> bool:
    try:
        fd = os.open(lock_path, os.O_RDWR)
    except FileNotFoundError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


_OPEN: dict[str, Store] = {}
_OPEN_LOCK = threading.Lock()


def open_store(root: str | os.PathLike[str], **options: object) -> Store:
    """The process's open :class:`Store` for ``root``, opening it if needed (one writer per process)."""
    key = os.path.abspath(os.path.expanduser(os.fspath(root)))
    with _OPEN_LOCK:
        store = _OPEN.get(key)
        if store is None or store.closed:
            store = Store(key, **options)  # type: ignore[arg-type]
            _OPEN[key] = store
        return store
