"""The store: the composition root that opens one root and hands each part its collaborators.

``Store`` builds, in order: the :class:`~..storage.root.StoreRoot` (format marker, this process's
writer claim), the :class:`~..storage.blobs.BlobStore` and the three tables, recovers the spools of
dead writers, then the :class:`~.artifacts.ArtifactStore` and the :class:`~.events.EventLog`. No
part holds the ``Store``: each gets the pieces it uses (tables, blobs, the :class:`~.guard.WriteGuard`).

A process opens a root once (:func:`open_store`); every ``connect()`` to it shares that store and
holds a reference, and the store closes when the last holder lets go.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
import time
import warnings
import weakref
from collections.abc import Callable
from typing import Literal

from ..base.errors import InvalidInputError, ObjectStoreError, StoreWarning, StoreWriteError
from ..storage.blobs import BlobStore
from ..storage.delta import VACUUM_HOURS
from ..storage.delta_table import DeltaSpoolTable
from ..storage.location import RemoteBlobStore, RemoteTables
from ..storage.objectstore import root_name
from ..storage.root import StoreRoot
from ..storage.schemas import ARTIFACTS, EVENTS, OPS
from ..storage.tables import Table
from ..storage.uploads import PendingUploads
from .artifacts import ArtifactStore
from .events import EventLog
from .guard import WriteGuard
from .maintenance import MAINTAIN_COMMITS, MAINTAIN_SECONDS, DeltaMaintenance, MaintainReport, PeriodicMaintenance

Durability = Literal["flush", "fsync"]


class Store:
    """One open store root. Use :func:`aeg_jupyter.connect` rather than this class directly.

    Args:
        root: the store directory; created if it does not exist.
        hot_limit: how many of the newest events the memory hot window keeps.
        durability: ``"flush"`` (a returned write survives a crash of this process) or
            ``"fsync"`` (it also survives a power loss; slower).
        flush_rows: rows per spool before it is flushed into a Parquet part.
        format: the on-disk format: 1 (the default) or 2 (Delta Lake tables, ``docs/format2.md``;
            not complete yet, so a format-2 store opens only with ``format=2``).

    Example:
        >>> store = Store("/tmp/demo-store")                   # doctest: +SKIP
        >>> store.artifacts.save_text("hi", kind="note")       # doctest: +SKIP
        >>> store.event_log.record("train_log", {"loss": 0.2})  # doctest: +SKIP
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        hot_limit: int = 1000,
        durability: Durability = "flush",
        flush_rows: int = 10_000,
        format: int | None = None,
        maintain_commits: int = MAINTAIN_COMMITS,
        maintain_seconds: float = MAINTAIN_SECONDS,
    ) -> None:
        if durability not in ("flush", "fsync"):
            raise InvalidInputError(f"durability must be 'flush' or 'fsync', not {durability!r}")
        if not isinstance(hot_limit, int) or isinstance(hot_limit, bool) or hot_limit < 1:
            raise InvalidInputError(f"hot_limit must be a positive integer, not {hot_limit!r}")
        self.durability: Durability = durability
        self.guard = WriteGuard()
        self.lock = self.guard.lock
        self.store_root = StoreRoot(root, format=format)
        self.format = self.store_root.format
        self.root = self.store_root.name  # the directory, or s3://bucket/prefix
        self.layout = self.store_root.layout
        self.writer = self.store_root.writer
        # a format-1 store opened with format=2 is read-only until `aeg migrate` converts it
        self.guard.read_only = self.store_root.migrate_hint
        fsync = durability == "fsync"
        objects = self.store_root.objects  # an s3:// root (storage/location.py), else None
        if objects is None:
            self.blobs = BlobStore(self.layout, self.writer, fsync=fsync)
        else:
            self.blobs = RemoteBlobStore(self.layout, self.writer, objects, fsync=fsync)
        table_class = DeltaSpoolTable if self.format == 2 else Table
        extra = {} if objects is None else {"remote": RemoteTables(objects)}
        self.artifact_table, self.event_table, self.op_table = (
            table_class(self.layout, spec, writer=self.writer, flush_rows=flush_rows, fsync=fsync, **extra)
            for spec in (ARTIFACTS, EVENTS, OPS)
        )
        self.tables = {t.spec.name: t for t in (self.artifact_table, self.event_table, self.op_table)}
        if isinstance(self.artifact_table, DeltaSpoolTable):  # format 2: small content is in its row
            self.blobs.inline = self.artifact_table.inline_content
        if isinstance(self.blobs, RemoteBlobStore) and isinstance(self.artifact_table, DeltaSpoolTable):
            # an s3:// root: artifact rows are committed only once the blobs they refer to landed
            self.artifact_table.before_commit = self.blobs.wait_uploaded
        self.recover()
        self.artifacts = ArtifactStore(
            blobs=self.blobs, table=self.artifact_table, ops=self.op_table, tables=self.tables,
            root=self.store_root, guard=self.guard,
        )  # fmt: skip
        self.event_log = EventLog(self.event_table, self.guard, hot_limit=hot_limit)
        #: format 2: the periodic maintenance thread (fold, compact, checkpoint, vacuum as the store grows:
        #: every ``maintain_commits`` commits of this process, or ``maintain_seconds`` after the last run
        #: when the tables moved; 0 turns it off), None otherwise
        self.periodic: PeriodicMaintenance | None = None
        if self.format == 2 and self.guard.read_only is None and maintain_commits > 0:
            delta_tables = [t for t in self.tables.values() if isinstance(t, DeltaSpoolTable)]
            self.periodic = PeriodicMaintenance(
                DeltaMaintenance(tables=self.tables, root=self.store_root, guard=self.guard),
                commits=lambda: sum(t.commits for t in delta_tables),
                versions=lambda: sum(t.delta.version() for t in delta_tables if t.delta.exists()),
                every_commits=maintain_commits,
                every_seconds=maintain_seconds,
                # a local store: each run in a one-shot child process (its memory goes when it exits); an
                # s3:// root runs here (the child would need this process's credentials and lease)
                child_root=self.root if objects is None else None,
            )
        self._holders = 0
        atexit.register(_close_at_exit, weakref.ref(self))

    @property
    def closed(self) -> bool:
        """True once :meth:`close` ran; every write then raises."""
        return self.guard.closed

    def recover(self) -> list[str]:
        """Flush the spools of dead writers into Parquet and remove their temp files; returns those writers."""
        return self.store_root.recover(self.tables)

    def flush(self) -> None:
        """Move every spooled row of this process into Parquet parts."""
        with self.lock:
            for t in self.tables.values():
                t.flush()

    def scrub(self, text: str) -> str:
        """``text`` with this store's credentials (an ``s3://`` root's) replaced by ``***``: for messages
        made from a library's or a server's text (``%aeg status``'s flush lines)."""
        if isinstance(self.blobs, RemoteBlobStore):
            return self.blobs.objects.settings.scrub(text)
        return text

    def pending_uploads(self) -> PendingUploads | None:
        """An s3:// root: what this machine acknowledged that the shared store does not have yet (spooled
        rows not committed, staged blobs not uploaded) and the last error; ``None`` for a local root.

        Example:
            >>> print(store.pending_uploads())          # doctest: +SKIP
            pending: 12 row(s), 1 blob(s) (3.0 MiB) not uploaded yet; last error: cannot reach bucket ...
        """
        if not isinstance(self.blobs, RemoteBlobStore):
            return None
        blobs = self.blobs.uploads.status()
        rows = sum(len(t.pending_rows) for t in self.tables.values() if isinstance(t, DeltaSpoolTable))
        rows += self.store_root.deferred_rows  # closed sessions' spools recovery had to leave for later
        errors = [str(e) for t in self.tables.values() if (e := getattr(t, "flush_error", None)) is not None]
        error = blobs.last_error or (errors[0] if errors else None) or self.store_root.deferred_error
        return PendingUploads(
            rows=rows, blobs=blobs.pending, bytes=blobs.bytes, oldest_age=blobs.oldest_age,
            last_error=self.scrub(error) if error else None,
        )  # fmt: skip

    def compact(self, *, min_parts: int = 16) -> int:
        """Merge small Parquet parts in every partition; returns how many parts were merged."""
        merged = 0
        with self.lock:
            for t in self.tables.values():
                for kind in t.partition_kinds():
                    merged += t.compact(kind, min_parts=min_parts)
        return merged

    def maintain(
        self, *, vacuum_hours: float = VACUUM_HOURS, wait: bool = True, progress: Callable[[str], None] | None = None
    ) -> MaintainReport:
        """Format 2: flush -> fold pins and deletes into the artifacts table -> compact -> checkpoint ->
        vacuum, under ``maintenance.lock`` (one runner per store; ``wait=False`` skips when it is held).

        Afterwards external readers (DuckDB, Polars, deltalake) of the tables see what
        ``arts.list(scope="all")`` shows, for every row and op flushed before it started
        (docs/format2.md, "When pins and deletes become visible"). ``aeg gc`` runs it too. On a
        format-1 store it flushes this process's spools and compacts small parts.

        Example:
            >>> print(Store(root, format=2).maintain())           # doctest: +SKIP
            maintain: flushed 12 rows; fold removed 3 deleted rows, set 1 pins; 40 -> 3 data files, ...
        """
        self.check_open()
        if self.format != 2:
            started = time.monotonic()
            with self.lock:
                flushed = sum(t.flush() for t in self.tables.values())
            merged = self.compact()
            return MaintainReport(flushed=flushed, merged=merged, seconds=time.monotonic() - started, format=1)
        runner = DeltaMaintenance(tables=self.tables, root=self.store_root, guard=self.guard)
        report = runner.run(vacuum_hours=vacuum_hours, wait=wait, progress=progress)
        if not report.skipped:  # queries from now on answer from the files it left (a vacuum removed the others)
            self.artifacts.catalog.refresh()
        return report

    def close(self) -> None:
        """Flush spools into Parquet, release the writer lock and remove this writer's temp dir."""
        periodic = self.periodic
        if periodic is not None:  # first (it never takes the store's lock): a run in progress stops at a step
            periodic.close()
        with self.lock:
            if self.guard.closed:
                return
            self.guard.closed = True
            errors: list[Exception] = []
            for t in self.tables.values():
                try:
                    t.close()
                except Exception as exc:  # keep the spool: the next open flushes it
                    errors.append(exc)
            if isinstance(self.blobs, RemoteBlobStore):  # what is still staged is uploaded at the next open
                self.blobs.close()
            self.store_root.release(spool_flushed=not errors)
        with _OPEN_LOCK:
            if _OPEN.get(self.root) is self:
                _OPEN.pop(self.root, None)
        if errors and all(isinstance(e, (StoreWriteError, ObjectStoreError)) for e in errors):
            # a full (or read-only) disk: every row is safe in the spool, which stays for the next open
            warnings.warn(f"{errors[0]}; the rows stay in the spool and the next open flushes them", StoreWarning, 2)
        elif errors:
            raise errors[0]

    def subscribe(self, callback: Callable[[str], None]) -> Callable[[], None]:
        """Call ``callback(table)`` after each write of this process (``"artifacts"``, ``"events"``, ``"ops"``).

        For live views (the panel): the callback runs in the writing thread, right after the
        write, so it must be quick. Returns the unsubscribe function.

        Example:
            >>> stop = store.subscribe(lambda table: print("changed:", table))   # doctest: +SKIP
            >>> stop()                                                            # doctest: +SKIP
        """
        return self.guard.subscribe(callback)

    def notify(self, table: str) -> None:
        """Tell the listeners that this process wrote to ``table``."""
        self.guard.notify(table)

    def check_open(self) -> None:
        """Raise if the store was closed."""
        self.guard.check_open()

    # -- shared by every connect() of this process -------------------------------------------
    def acquire(self) -> Store:
        """Count one more holder (a ``KernelContext``) of this open store."""
        with _OPEN_LOCK:
            self._holders += 1
        return self

    def release(self) -> None:
        """One holder lets go; the store closes when none is left."""
        with _OPEN_LOCK:
            self._holders = max(0, self._holders - 1)
            last = self._holders == 0
        if last:
            self.close()

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


_OPEN: dict[str, Store] = {}
_OPEN_LOCK = threading.RLock()


def open_store(
    root: str | os.PathLike[str],
    *,
    hot_limit: int = 1000,
    durability: Durability = "flush",
    flush_rows: int = 10_000,
    format: int | None = None,
) -> Store:
    """The process's open :class:`Store` for ``root``, opening it if needed (one writer per process).

    The caller holds a reference (:meth:`Store.acquire`) and gives it back with :meth:`Store.release`.

    Raises:
        InvalidInputError: the store is already open here with ``durability="flush"`` and
            ``"fsync"`` is asked for (a stronger guarantee cannot be given silently).
    """
    key = root_name(root)  # the directory, or s3://bucket/prefix
    with _OPEN_LOCK:
        store = _OPEN.get(key)
        if store is None or store.closed:
            store = Store(key, hot_limit=hot_limit, durability=durability, flush_rows=flush_rows, format=format)
            _OPEN[key] = store
        elif durability == "fsync" and store.durability != "fsync":
            raise InvalidInputError(
                f"the store {key!r} is already open in this process with durability='flush'; "
                "close the other context first (context.close()), then connect(..., durability='fsync')"
            )
        return store.acquire()
