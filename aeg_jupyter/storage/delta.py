"""One Delta Lake table of a format-2 store (delta-rs): idempotent commits of spooled rows, Arrow reads,
maintenance.

A spool ``(writer, table, seq)`` is committed with the application transaction ``(app_id=writer,
version=seq)`` in the same commit as its rows, so a writer that dies after its commit and before
removing its spool is not appended twice when the spool is committed again: the commit is skipped when
``transaction_version(writer) >= seq``. The check and the commit use one snapshot, so two processes
committing the same spool at once cannot both win: delta-rs refuses the second commit (a concurrent
``txn`` with the same app id) and the loser finds the spool committed on its retry.

Files are read with ``pyarrow.parquet`` from the snapshot's add actions (``pyarrow.dataset`` imports
pandas, ~0.5 s on a cold open); :meth:`DeltaLakeTable.dataset` is the general reader for tables whose
protocol needs more than that (deletion vectors, column mapping). See ``docs/format2.md``.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import os
import re
import threading
import time
import warnings
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.parquet as pq

from ..base.errors import SECRET_OPTIONS, CorruptionError, StoreWarning, StoreWriteError, scrub_secrets
from .allocator import loading_deltalake
from .arrays import int64_array, repeated_string
from .fsops import hold_lock, make_dirs, move_aside, try_lock, unlink_quietly
from .schemas import Row
from .schemas2 import PARTITION

with loading_deltalake():  # delta-rs's jemalloc reads its options as it loads (storage/allocator.py)
    from deltalake import CommitProperties, DeltaTable, Transaction, WriterProperties, write_deltalake
    from deltalake.exceptions import CommitFailedError, DeltaError, TableNotFoundError

CONFIGURATION = {
    # open cost grows with the commits since the last checkpoint (docs/format2.md, spike figures)
    "delta.checkpointInterval": "10",
    # files a compaction or a delete removed stay this long for readers on older snapshots
    "delta.deletedFileRetentionDuration": "interval 1 days",
}
VACUUM_HOURS = 24
ROW_GROUP = 8_192  # rows per row group (events, ops)
# the artifacts table's: building one returned Artifact reads its row group (its catalog columns), so a
# cold best + search reads 2-3 of them, while a query's whole-column read pays per row group (page
# decode, and a footer of ~1.5 MB at 1M rows in 2,048-row groups). Measured at 1M, alternating in one
# run (load 4): cold open + best + search 267 -> 131 ms with 8,192 against 2,048 rows (the column read
# of best 218 -> 94 ms); a returned row's group read ~4 -> ~10 ms CPU. (2,048 had been chosen at 100k
# when search read the whole created_at column; it now reads only the newest groups'.)
ARTIFACT_ROW_GROUP = 8_192
_WRITER_PROPERTIES = WriterProperties(compression="ZSTD", max_row_group_size=ROW_GROUP)
# the file size the flusher's compaction merges small files up to (DeltaLakeTable.compact_small): a
# file of half of it or more is never rewritten by a logging process. 16 MiB of events is ~550k rows
# (~30 bytes a row compressed): 10M events are ~20 files, and a merge holds one such file in memory.
TARGET_FILE_BYTES = 16 << 20
ARTIFACT_TARGET_FILE_BYTES = 64 << 20  # 1M small artifacts are ~77 MiB of table: 2 files, as before
_COMMIT_ATTEMPTS = 8

# delta-rs creates its directories and files with the process umask (0o777 / 0o666 under umask 000):
# while it writes, the umask also masks group and world write, so nothing the store creates is writable
# by another account whatever the caller's umask (a stricter one still applies). The umask is the
# process's: other threads creating files meanwhile get the same mask, never a looser one.
_UMASK_LOCK = threading.Lock()
_umask_holders = 0
_umask_saved = 0


@contextlib.contextmanager
def _store_umask() -> Iterator[None]:
    """The process umask with group/world write masked while delta-rs creates files (nestable, thread-safe)."""
    global _umask_holders, _umask_saved
    with _UMASK_LOCK:
        if _umask_holders == 0:
            _umask_saved = os.umask(0o022)
            os.umask(_umask_saved | 0o022)
        _umask_holders += 1
    try:
        yield
    finally:
        with _UMASK_LOCK:
            _umask_holders -= 1
            if _umask_holders == 0:
                os.umask(_umask_saved)


_OS_ERROR = re.compile(r"\(os error (\d+)\)")
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM)
_UNREACHABLE = (errno.ECONNREFUSED, errno.ECONNRESET, errno.ETIMEDOUT, errno.EHOSTUNREACH, errno.ENETUNREACH)
_UNREACHABLE_TEXT = ("error sending request", "tcp connect error", "dns error", "operation timed out")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def error_text(exc: BaseException, storage_options: dict[str, str] | None = None) -> str:
    """delta-rs's error as one plain line, without the terminal's color codes (they would show as garbage
    in ``%aeg status``) and with the credentials of ``storage_options`` as ``***``.

    delta-rs prints its message one line per ``: `` (each new line marked with a colored ``↳``), so the
    lines are joined with ``": "`` again: "... max_retries: 1, retry_timeout: 2s - HTTP error: error
    sending request: ... Connection refused (os error 111)"."""
    lines = [line.strip().lstrip("↳").strip() for line in _ANSI.sub("", str(exc)).splitlines()]
    text = re.sub(r"\s{2,}", " ", ": ".join(line for line in lines if line)) or type(exc).__name__
    options = storage_options or {}
    return scrub_secrets(text, (options.get(k) for k in SECRET_OPTIONS))


def unreachable(exc: BaseException) -> bool:
    """True when a delta-rs error says the object store did not answer (refused, reset, timed out, no DNS)."""
    text = str(exc)
    return getattr(os_cause(exc), "errno", None) in _UNREACHABLE or any(t in text for t in _UNREACHABLE_TEXT)


def os_cause(exc: BaseException) -> BaseException:
    """The ``OSError`` (with its errno) a delta-rs error reports as ``(os error N)`` in its text, else ``exc``:
    callers tell a full disk (defer and retry) from damage by ``errno``, as for format 1's writes."""
    m = _OS_ERROR.search(str(exc))
    if m is None:
        return exc
    code = int(m.group(1))
    err = OSError(code, os.strerror(code))
    err.__cause__ = exc
    return err


def _creates_files(method: Callable[..., Any]) -> Callable[..., Any]:
    """Run a method that has delta-rs write files under :func:`_store_umask`; a full disk (or a read-only
    one) is a ``StoreWriteError`` whose cause carries the errno, not a raw ``DeltaError``."""

    @functools.wraps(method)
    def wrapper(self: DeltaLakeTable, *args: Any, **kwargs: Any) -> Any:
        with _store_umask():
            try:
                return method(self, *args, **kwargs)
            except DeltaError as exc:
                cause = os_cause(exc)
                if getattr(cause, "errno", None) not in _NO_SPACE:
                    raise
                raise StoreWriteError(
                    f"{method.__name__} of the table {self.uri} could not write ({cause}); "
                    "free some disk space and run it again"
                ) from cause

    return wrapper


# an s3:// bucket whose server did not answer a snapshot refresh: reads use their last snapshot without
# asking again until then (bucket -> time.monotonic() deadline)
OFFLINE_RETRY_SECONDS = 5.0
COPY_GRACE_SECONDS = 600.0  # an s3:// root: a local copy the snapshot dropped stays this long (prune_copies)
_OFFLINE_UNTIL: dict[str, float] = {}


class CommitConflict(StoreWriteError):
    """A maintenance commit (delete, update, compaction) lost to a concurrent commit; computing it again
    on the newest snapshot and retrying is safe (maintenance does)."""


class DamagedDataFile(CorruptionError):
    """A data file the table's log names cannot be read (truncated, zeroed, garbage) or is missing.

    ``path`` is the file. ``aeg verify --repair`` takes it out of the table (a copy in ``corrupt/``).
    """

    def __init__(self, table: str, path: str, problem: str) -> None:
        self.path = path
        super().__init__(
            f"the table {table} is damaged: its data file {path} {problem}; its rows cannot be read. "
            "Run `aeg verify --repair` (verify(repair=True)) to take the file out of the table "
            "(a copy is kept in corrupt/, its rows are reported as lost)"
        )


@dataclass(frozen=True, slots=True)
class DataFile:
    """One Parquet file of the current snapshot: its local path, partition value and row count.

    ``min_ts`` / ``max_ts`` bound the times of the table's time column in the file (int microseconds),
    ``None`` when the file has no statistics. NOTE: Delta's JSON statistics hold timestamps in
    milliseconds, truncated (a max of ``...00.001999`` is written ``...00.001``), so ``max_ts`` is the
    statistic plus 999 us: a newest-first scan must not skip a file whose newest row is in that gap.
    """

    path: str
    kind: str
    rows: int
    min_ts: int | None = None
    max_ts: int | None = None
    #: the least and greatest ``uri`` in the file (Delta's statistics; None without them): a URI lookup
    #: skips a file whose range cannot hold it (``ColumnarCatalog.by_uri``)
    min_uri: str | None = None
    max_uri: str | None = None
    #: the file's size in bytes from its add action (None if the log lacks it): compaction leaves a file
    #: of at least half its target alone (:meth:`DeltaLakeTable.compact_small`)
    size: int | None = None


class DeltaLakeTable:
    """One Delta table in a local directory, created on first use.

    Args:
        path: the table directory (``<root>/tables/<name>``).
        schema: the Arrow schema (``schemas2.SCHEMAS2[name]``), partition column included.
        ts_field: the time column whose file statistics :meth:`files` reports.

    Example:
        >>> t = DeltaLakeTable(path, OPS2_SCHEMA, ts_field="ts")              # doctest: +SKIP
        >>> t.commit(op_rows_to_arrow(rows), app_id="p42x1a2b", seq=0)       # doctest: +SKIP
        True
        >>> t.read(["artifact_id"]).num_rows                                 # doctest: +SKIP
        1
    """

    def __init__(
        self,
        path: str,
        schema: pa.Schema,
        *,
        ts_field: str | None = None,
        uri: str | None = None,
        storage_options: dict[str, str] | None = None,
        mirror: Callable[[str, str, list[tuple[str, int | None]]], list[str]] | None = None,
    ) -> None:
        self.path = path
        # an s3:// root (storage/location.py): the log and files are at `uri`; `path` holds local copies
        # of the data files read (`mirror(uri, path, [(relative path, size)])` downloads those missing
        # and returns those the bucket lacks)
        self.uri = uri or path
        self.storage_options = storage_options
        self._mirror = mirror
        self.schema = schema
        self.ts_field = ts_field
        self._dt: DeltaTable | None = None
        self._file_columns: dict[str, frozenset[str]] = {}
        self._footers: dict[str, pq.FileMetaData] = {}
        #: data files of the log a read of this process found damaged or missing (verify reports them)
        self.damaged: set[str] = set()
        self._props = (
            WriterProperties(compression="ZSTD", max_row_group_size=ARTIFACT_ROW_GROUP)
            if "content" in schema.names  # the artifacts table
            else _WRITER_PROPERTIES
        )
        #: the size a small-file compaction merges up to (:meth:`compact_small`)
        self.target_file_bytes = ARTIFACT_TARGET_FILE_BYTES if "content" in schema.names else TARGET_FILE_BYTES

    # -- the snapshot ------------------------------------------------------------------------
    @property
    def loaded(self) -> bool:
        """True once this object has loaded the table's log (its snapshot may be older than the newest
        version: another object's commit, or another process's, since)."""
        return self._dt is not None

    def exists(self) -> bool:
        """True once the table's first commit exists."""
        if self._dt is not None and self._mirror is not None:
            return True  # an s3:// root: a table, once there, stays (no request per look)
        return DeltaTable.is_deltatable(self.uri, storage_options=self.storage_options)

    @_creates_files
    def create(self) -> DeltaTable:
        """Create the table if it does not exist yet (safe when several processes race to create it)."""
        if self._dt is None:
            opts = self.storage_options
            try:
                self._dt = DeltaTable(self.uri, storage_options=opts)
            except TableNotFoundError:
                make_dirs(self.path)  # 0755 whatever the umask
                try:
                    self._dt = DeltaTable.create(
                        self.uri, self.schema, mode="ignore", partition_by=[PARTITION], configuration=CONFIGURATION,
                        storage_options=opts,
                    )  # fmt: skip
                except DeltaError:  # another process created it between our look and our commit
                    self._dt = DeltaTable(self.uri, storage_options=opts)
        return self._dt

    def snapshot(self, *, refresh: bool = True) -> DeltaTable:
        """The table at its newest version (``refresh=False``: the version this object last saw).

        An s3:// root whose server does not answer: the last snapshot seen (reads go on offline; the
        error is kept in :attr:`refresh_error` until a refresh succeeds). A local table raises.
        """
        dt = self.create()
        if refresh:
            where = self.uri.split("/")[2] if self._mirror is not None else None  # the bucket
            if where is not None and time.monotonic() < _OFFLINE_UNTIL.get(where, 0.0):
                return dt  # it did not answer a moment ago: no request (each failed one costs seconds)
            try:
                dt.update_incremental()
            except (OSError, DeltaError) as exc:
                if where is None:
                    raise
                self.refresh_error: Exception | None = exc
                _OFFLINE_UNTIL[where] = time.monotonic() + OFFLINE_RETRY_SECONDS
                return dt
            self.refresh_error = None
            if where is not None:
                _OFFLINE_UNTIL.pop(where, None)
        return dt

    def version(self) -> int:
        """The newest committed version."""
        return self.snapshot().version()  # type: ignore[no-any-return]

    def committed_seq(self, app_id: str) -> int | None:
        """The highest spool sequence committed for ``app_id`` (a writer id), or None."""
        return self._fresh().transaction_version(app_id)  # type: ignore[no-any-return]

    def _fresh(self) -> DeltaTable:
        """The newest version, always asked for: writes are never based on the stale snapshot that
        :meth:`snapshot` keeps for reads while an s3:// server does not answer."""
        if self._mirror is None:
            return self.snapshot()  # a local table: snapshot() always refreshes (and tests can hook it)
        dt = self.create()
        dt.update_incremental()
        return dt

    # -- writing -----------------------------------------------------------------------------
    @_creates_files
    def commit(self, data: pa.Table, *, app_id: str, seq: int) -> bool:
        """Append ``data`` as the commit of spool ``seq`` of writer ``app_id``, unless it is in already.

        Returns True when this call committed, False when the rows were committed before (by this
        writer before it died, or by another process recovering its spool).

        Raises:
            StoreWriteError: the commit failed for another reason (disk full, a damaged log).
        """
        for attempt in range(_COMMIT_ATTEMPTS):
            try:
                dt = self._fresh()  # (a log that cannot be read fails here: the same StoreWriteError)
                done = dt.transaction_version(app_id)
                if done is not None and done >= seq:
                    return False
                write_deltalake(
                    dt, data, mode="append", partition_by=[PARTITION], writer_properties=self._props,
                    schema_mode="merge",  # a new flat column (a metric name seen for the first time)
                    commit_properties=CommitProperties(app_transactions=[Transaction(app_id, seq)]),
                )  # fmt: skip
                return True
            except CommitFailedError:
                # another commit won the race (the same spool committed by another process, a
                # concurrent schema change, a conflicting maintenance commit): look again
                time.sleep(0.01 * (attempt + 1))
            except (DeltaError, OSError) as exc:
                cause = os_cause(exc)
                remote = "://" in self.uri
                if remote and unreachable(exc):
                    # (the errno's words when there is one; else delta-rs's, which tell a refused or timed
                    # out connection from a TLS, certificate or proxy failure that no retry mends)
                    reason = (
                        cause.strerror
                        if isinstance(cause, OSError) and cause.strerror
                        else error_text(exc, self.storage_options)
                    )
                    raise StoreWriteError(
                        f"cannot reach the object store to commit to the table {self.uri} ({reason}); the rows "
                        "stay in the spool: they are committed once it answers again; if it does not, check "
                        "the endpoint and its certificate (see `%aeg status`)"
                    ) from cause
                if getattr(cause, "errno", None) in _NO_SPACE:
                    advice = "free some disk space and reopen the store"
                elif remote:  # an object store: refused or throttled
                    advice = "they are committed once the object store answers again (see `%aeg status`)"
                else:
                    advice = "the next open commits them; if this repeats, run `aeg verify`"
                raise StoreWriteError(
                    f"could not commit to the table {self.uri}: {error_text(exc, self.storage_options)}; "
                    f"the rows stay in the spool: {advice}"
                ) from cause
        raise StoreWriteError(
            f"could not commit to the table {self.uri} after {_COMMIT_ATTEMPTS} conflicting commits; "
            "the rows stay in the spool and the next open commits them"
        )

    # -- reading -----------------------------------------------------------------------------
    def files(self, kinds: Iterable[str] | None = None, *, refresh: bool = True) -> list[DataFile]:
        """The data files of the snapshot (of ``kinds`` only, if given), with their statistics."""
        dt = self.snapshot(refresh=refresh)
        # NOTE: not pa.table(...): it asks whether its argument is a DataFrame, importing pandas
        actions = pa.RecordBatchReader.from_stream(dt.get_add_actions(flatten=True)).read_all()
        if actions.num_rows == 0:
            return []
        want = set(kinds) if kinds is not None else None
        names = actions.column_names
        kind_col = actions.column(f"partition.{PARTITION}").to_pylist()
        paths = actions.column("path").to_pylist()
        counts = actions.column("num_records").to_pylist()

        def stat(name: str) -> list[int | None]:
            if self.ts_field is None or name not in names:
                return [None] * len(paths)
            col = actions.column(name)
            if pa.types.is_timestamp(col.type):
                col = pa.chunked_array([c.view(pa.int64()) for c in col.chunks], type=pa.int64())
            return col.to_pylist()  # type: ignore[no-any-return]

        lo = stat(f"min.{self.ts_field}")
        hi = [None if b is None else b + 999 for b in stat(f"max.{self.ts_field}")]  # ms statistics: see DataFile
        has_uri = "min.uri" in names and "max.uri" in names
        lo_uri = actions.column("min.uri").to_pylist() if has_uri else [None] * len(paths)
        hi_uri = actions.column("max.uri").to_pylist() if has_uri else [None] * len(paths)
        out = []
        fetch: list[tuple[str, int | None]] = []
        sizes = actions.column("size_bytes").to_pylist() if "size_bytes" in names else [None] * len(paths)
        for p, k, n, a, b, size, ua, ub in zip(paths, kind_col, counts, lo, hi, sizes, lo_uri, hi_uri, strict=True):
            if want is None or k in want:
                out.append(DataFile(os.path.join(self.path, unquote(p)), k, n or 0, a, b, ua, ub, size=size))
                fetch.append((unquote(p), size))
        if self._mirror is not None and fetch:
            # an s3:// root: local copies of the files read (not of those found missing on the bucket before)
            fetch = [(rel, size) for rel, size in fetch if os.path.join(self.path, rel) not in self.damaged]
            gone = self._mirror(self.uri, self.path, fetch) if fetch else []
            if gone:
                self._missing_on_bucket(gone)
        return out

    def _missing_on_bucket(self, gone: list[str]) -> None:
        """Data files (relative paths) of the snapshot that the bucket answered 404 for: if the newest
        snapshot (asked again: one log listing, only now) still names one, it is damage (noted in
        :attr:`damaged`; opening it raises :class:`DamagedDataFile`); if not, a vacuum removed it after
        our snapshot: ``FileNotFoundError``, and the caller asks the newest snapshot again."""
        dt = self._fresh()
        actions = pa.RecordBatchReader.from_stream(dt.get_add_actions(flatten=True)).read_all()
        named = {unquote(p) for p in actions.column("path").to_pylist()} if actions.num_rows else set()
        for rel in gone:
            if rel in named:
                self.damaged.add(os.path.join(self.path, rel))
        vacuumed = [rel for rel in gone if rel not in named]
        if vacuumed:
            raise FileNotFoundError(os.path.join(self.path, vacuumed[0]))

    def prune_copies(self, *, older_than: float = COPY_GRACE_SECONDS) -> int:
        """An s3:// root: delete this machine's copies of data files the newest snapshot no longer has.

        A compaction or a vacuum on any machine replaces data files; the copies :meth:`files` downloaded
        of the old ones would stay in ``AEG_CACHE`` for ever. A copy (or a stale half download) goes once
        the snapshot lacks it and it is ``older_than`` seconds old (a reader of an older snapshot in
        another process of this machine may still open a younger one; a reader that loses a copy asks
        the newest snapshot again, as after a vacuum). Returns the files deleted; a local root: 0.
        """
        if self._mirror is None or self._dt is None or not os.path.isdir(self.path):
            return 0
        dt = self.snapshot()
        if getattr(self, "refresh_error", None) is not None:
            return 0  # offline: a copy another process took from a newer snapshot may be all it has
        actions = pa.RecordBatchReader.from_stream(dt.get_add_actions(flatten=True)).read_all()
        live = {unquote(p) for p in actions.column("path").to_pylist()} if actions.num_rows else set()
        cutoff = time.time() - older_than
        pruned = 0
        for top, dirs, names in os.walk(self.path):  # (does not follow links to directories)
            dirs[:] = [d for d in dirs if d != "_delta_log"]
            for name in names:
                path = os.path.join(top, name)
                if not (name.endswith(".parquet") or name.startswith(".part-")):
                    continue
                if os.path.relpath(path, self.path) in live:
                    continue
                try:
                    if os.lstat(path).st_mtime > cutoff:
                        continue
                    os.unlink(path)
                except FileNotFoundError:  # another process of this machine pruned it first
                    continue
                self._footers.pop(path, None)
                pruned += 1
        return pruned

    def plain_parquet(self) -> bool:
        """True when every file can be read as plain Parquet (no reader features: no deletion vectors,
        no column mapping)."""
        proto = self.snapshot(refresh=False).protocol()
        return proto.min_reader_version <= 1 and not proto.reader_features

    def read_file(
        self, f: DataFile, columns: Sequence[str] | None = None, *, dictionary: Sequence[str] = ()
    ) -> pa.Table:
        """One data file's ``columns`` (all, if None), the partition column added when asked for.
        ``dictionary``: string columns read as ``dictionary<int32, string>`` (Parquet's own dictionary
        pages, not a decoded string per row: a label column of 20 values at 900k rows).

        NOTE: ``ParquetFile``, not ``pq.read_table``: the latter goes through ``pyarrow.dataset``,
        which imports pandas (a cold open's budget, docs/format2.md).
        """
        cols = None if columns is None else [c for c in columns if c != PARTITION]
        with self._open(f, dictionary) as pf:
            table = pf.read(columns=cols)
        return self._with_partition(without_views(table), f, columns)

    def read_groups(self, f: DataFile, groups: Sequence[int], columns: Sequence[str]) -> pa.Table:
        """Row groups ``groups`` (in that order) of one data file, ``columns`` only (no partition column)."""
        with self._open(f) as pf:
            return without_views(pf.read_row_groups(list(groups), columns=list(columns)))

    def footer(self, f: DataFile) -> pq.FileMetaData:
        """One data file's Parquet footer (row groups and their statistics), parsed once per process."""
        meta = self._footers.get(f.path)
        if meta is None:
            with self._open(f) as pf:
                meta = pf.metadata
        return meta

    @contextlib.contextmanager
    def _open(self, f: DataFile, dictionary: Sequence[str] = ()) -> Iterator[pq.ParquetFile]:
        """One data file, its footer parsed once per process (data files never change; at 1M rows a
        footer is ~1 MB, parsed again by every read otherwise)."""
        meta = self._footers.get(f.path)
        # NOTE: an open file, not the path: given a str, pyarrow resolves a filesystem first (~6 ms a call)
        try:
            src = pa.OSFile(f.path)
        except FileNotFoundError:
            # removed by a vacuum after a snapshot we had not seen (the callers retry on the newest),
            # unless the newest snapshot still names it: then it is damage (an s3:// root: the bucket
            # answered 404 for the copy of a file the newest snapshot names, see _missing_on_bucket)
            if f.path in self.damaged if self._mirror is not None else self.listed(f.path):
                self.damaged.add(f.path)
                problem = "is missing on the bucket" if self._mirror is not None else "is missing"
                raise DamagedDataFile(self.uri, f.path, f"{problem} (the log names it)") from None
            raise
        with src:
            try:
                pf = pq.ParquetFile(src, metadata=meta, read_dictionary=list(dictionary) or None)
                if meta is None:
                    if len(self._footers) > 4096:
                        self._footers.clear()
                    self._footers[f.path] = pf.metadata
                yield pf
            except (OSError, ValueError, pa.ArrowException) as exc:  # a bad footer, page or schema
                self.damaged.add(f.path)
                self._footers.pop(f.path, None)
                raise DamagedDataFile(self.path, f.path, f"cannot be read ({exc})") from exc

    def listed(self, path: str) -> bool:
        """True when the newest snapshot names the data file ``path``."""
        return self.exists() and any(f.path == path for f in self.files())

    def check_files(self, *, full: bool = False) -> list[str]:
        """Data files of the newest snapshot that are missing or cannot be read: their footers (and,
        with ``full``, every page of every column) are read. ``aeg verify`` reports them."""
        if not self.exists():
            return []
        bad = []
        for f in self.files():
            try:
                with self._open(f) as pf:
                    if full:
                        pf.read()
            except DamagedDataFile:
                bad.append(f.path)
            except FileNotFoundError:  # a vacuum meanwhile (s3:// mirror): not damage
                continue
        return bad

    @_creates_files
    def drop_damaged(self, paths: Iterable[str], aside: str, root: str, id_column: str) -> list[dict[str, Any]]:
        """Take damaged data files out of the table: each is moved under ``aside`` (never deleted),
        then one Delta commit (delta-rs's ``repair``, FSCK) removes every file the log names that is
        not on disk; nothing else is touched. Returns one entry per file removed: ``table``, ``file``,
        ``rows`` (the log's count), ``ids`` (of ``id_column``, where that column still reads; else
        None) and ``moved_to``. The caller holds ``maintenance.lock`` (no compaction reads them)."""
        by_path = {f.path: f for f in self.files()}
        entries: dict[str, dict[str, Any]] = {}
        for path in paths:
            f = by_path.get(path)
            if f is None:
                continue  # not in the table (any more)
            ids: list[str] | None = None
            try:
                with pa.OSFile(path) as src:
                    ids = [str(v) for v in pq.ParquetFile(src).read(columns=[id_column]).column(0).to_pylist()]
            except (OSError, ValueError, pa.ArrowException):
                ids = None
            moved = move_aside(root, path, aside) if os.path.lexists(path) else None
            self._footers.pop(path, None)
            entries[path] = {"table": os.path.basename(self.path), "file": path, "rows": f.rows, "ids": ids,
                             "moved_to": moved}  # fmt: skip
        if not entries:
            return []
        removed = self._fresh().repair(dry_run=False).get("files_removed", [])
        gone = {os.path.join(self.path, unquote(p)) for p in removed}
        for path in gone - set(entries):  # another file of the log that was missing: removed too
            f = by_path.get(path)
            entries[path] = {"table": os.path.basename(self.path), "file": path, "rows": f.rows if f else None,
                             "ids": None, "moved_to": None}  # fmt: skip
        self.damaged.difference_update(gone)
        return [entries[p] for p in sorted(entries) if p in gone]

    def file_columns(self, f: DataFile) -> frozenset[str]:
        """The top-level columns a data file holds (files written before a flat column was added lack it)."""
        names = self._file_columns.get(f.path)
        if names is None:
            with self._open(f) as pf:
                names = frozenset(pf.schema_arrow.names)
            self._file_columns[f.path] = names
        return names

    def read_leaves(self, f: DataFile, column: str, leaves: Sequence[str]) -> pa.ChunkedArray:
        """Some leaves of one nested column of a data file, e.g. ``("key_value.key", "key_value.value.s")``
        of ``labels``: the column with only those fields (a label query reads one of five value fields)."""
        with self._open(f) as pf:
            return without_views(pf.read(columns=[f"{column}.{leaf}" for leaf in leaves])).column(column)

    def read_rows(self, f: DataFile, rows: Sequence[int], columns: Sequence[str] | None = None) -> pa.Table:
        """Rows ``rows`` (indices within the file, in that order) of one data file: only the row
        groups holding them are read."""
        cols = None if columns is None else [c for c in columns if c != PARTITION]
        with self._open(f) as pf:
            meta = pf.metadata
            starts = [0]
            for g in range(meta.num_row_groups):
                starts.append(starts[-1] + meta.row_group(g).num_rows)
            groups = sorted({bisect_right(starts, r) - 1 for r in rows})
            table = without_views(pf.read_row_groups(groups, columns=cols))
        # offsets of the wanted rows inside the concatenation of the groups read
        base, offset = {}, 0
        for g in groups:
            base[g] = offset
            offset += starts[g + 1] - starts[g]
        take = [base[bisect_right(starts, r) - 1] + r - starts[bisect_right(starts, r) - 1] for r in rows]
        return self._with_partition(table.take(int64_array(take)), f, columns)

    @staticmethod
    def _with_partition(table: pa.Table, f: DataFile, columns: Sequence[str] | None) -> pa.Table:
        if columns is None or PARTITION in columns:
            table = table.append_column(PARTITION, repeated_string(f.kind, table.num_rows))
        if columns is not None:
            table = table.select(list(columns))
        return table

    def read(
        self, columns: Sequence[str] | None = None, kinds: Iterable[str] | None = None, *, skip_damaged: bool = False
    ) -> pa.Table:
        """The snapshot's rows as one Arrow table (``columns`` only; ``kinds`` only).

        A file removed by a vacuum while we read (our snapshot was older than the retention) makes
        the read start again on the newest snapshot. A damaged data file raises
        :class:`DamagedDataFile`, or with ``skip_damaged`` is left out with a ``StoreWarning``.
        """
        names = list(columns) if columns is not None else self.schema.names
        schema = pa.schema([self.schema.field(n) for n in names])
        for attempt in range(2):
            try:
                if not self.plain_parquet():
                    return self._read_dataset(names, kinds)
                parts = []
                for f in self.files(kinds):
                    try:
                        parts.append(self.read_file(f, names))
                    except DamagedDataFile as exc:
                        if not skip_damaged:
                            raise
                        warnings.warn(f"skipping: {exc}", StoreWarning, stacklevel=2)
                if not parts:
                    return pa.Table.from_batches([], schema=schema)  # NOTE: empty_table() imports pandas
                return pa.concat_tables([p.cast(schema) if not p.schema.equals(schema) else p for p in parts])
            except FileNotFoundError:
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def _read_dataset(self, names: list[str], kinds: Iterable[str] | None) -> pa.Table:
        ds = self.dataset()
        filt = None
        if kinds is not None:
            import pyarrow.dataset as pads

            filt = pads.field(PARTITION).isin(list(kinds))
        return ds.to_table(columns=names, filter=filt)

    def dataset(self) -> Any:
        """The newest snapshot as a ``pyarrow.dataset.Dataset`` (what DuckDB and other engines scan)."""
        return self.snapshot().to_pyarrow_dataset()

    # -- maintenance -------------------------------------------------------------------------
    @_creates_files
    def compact(
        self, *, kinds: Iterable[str] | None = None, target_size: int | None = None, max_tasks: int | None = None
    ) -> dict[str, Any]:
        """Rewrite small files into bigger ones, one commit per call (readers see either side, never both).

        ``target_size``: delta-rs's bin size in bytes (default: the table's ``delta.targetFileSize``, else
        100 MiB); a file bigger than it is left alone. ``max_tasks``: bins rewritten at once (each holds
        up to a file of ``target_size`` in memory while it is written)."""
        dt = self._fresh()
        filters = [(PARTITION, "in", list(kinds))] if kinds is not None else None
        try:
            metrics = dt.optimize.compact(
                partition_filters=filters, target_size=target_size, max_concurrent_tasks=max_tasks,
                writer_properties=self._props,
            )  # fmt: skip
        except CommitFailedError as exc:
            raise CommitConflict(f"compacting {self.uri} met a concurrent commit ({exc}); run it again") from exc
        return dict(metrics)

    def small_files(self, kind: str, *, target_size: int | None = None) -> list[DataFile]:
        """The data files of partition ``kind`` under half of ``target_size`` (default :attr:`target_file_bytes`)
        by the sizes in the Delta log: those a small-file compaction merges (a file without a size counts)."""
        half = (target_size or self.target_file_bytes) // 2
        return [f for f in self.files([kind]) if f.size is None or f.size < half]

    def compact_small(
        self, kind: str, *, min_files: int, target_size: int | None = None, small: list[DataFile] | None = None
    ) -> int:
        """Merge partition ``kind``'s small files when it has at least ``min_files`` of them (one commit);
        returns how many files were merged away.

        A logging process's compaction (the flusher's, after its commits): files of at least half of
        ``target_size`` (default :attr:`target_file_bytes`) are never rewritten, so the cost of a merge is
        bounded by the target and not by the partition, which grows with every commit (before, at 10M
        events the whole growing partition was rewritten every 32 commits: +391 MB of RSS while logging).
        delta-rs's own planner skips files over the target and drops bins of one file; this counts the
        small files from the Delta log's sizes first, so a partition of files at target costs no optimize
        call at all. One bin at a time (``max_tasks=1``): one file of at most the target in memory.
        """
        target = target_size or self.target_file_bytes
        if small is None:  # (given: the caller just counted them)
            small = self.small_files(kind, target_size=target)
        if len(small) < min_files:
            return 0
        return int(self.compact(kinds=[kind], target_size=target, max_tasks=1).get("numFilesRemoved", 0))

    def duplicates(self, id_column: str) -> dict[str, tuple[int, str, str]]:
        """Rows the snapshot holds more than once (the same ``id_column``), by partition:
        ``kind -> (surplus rows, least id, greatest id held twice or more)``; partitions without any
        are left out.

        The store never writes a row twice, but delta-rs 1.6 let two compactions of the same files both
        commit (docs/format2.md, "One rewrite at a time"): each added a copy of every merged row. A
        store a build before that fix compacted may hold such copies. Reads each partition's id
        column once, holding one partition's ids (and their counts) at a time.
        """
        import pyarrow.compute as pc

        by_kind: dict[str, list[DataFile]] = {}
        for f in self.files():  # one snapshot for every kind (a store may have thousands of kinds)
            by_kind.setdefault(f.kind, []).append(f)
        plain = self.plain_parquet()
        out: dict[str, tuple[int, str, str]] = {}
        for kind, files in sorted(by_kind.items()):
            if all(f.rows is not None for f in files) and sum(f.rows for f in files) < 2:
                continue  # (a file the log gives no row count for is read)
            if plain:
                chunks = [c for f in files for c in self.read_file(f, [id_column]).column(0).chunks]
                ids = pa.chunked_array(chunks, type=self.schema.field(id_column).type)
            else:
                ids = self.read([id_column], kinds=[kind]).column(0)
            counts = pc.value_counts(ids)
            many = counts.filter(pc.greater(counts.field("counts"), 1))
            if len(many):
                values = many.field("values")
                surplus = int(pc.sum(pc.subtract(many.field("counts"), 1)).as_py())
                out[kind] = (surplus, str(pc.min(values).as_py()), str(pc.max(values).as_py()))
        return out

    @_creates_files
    def drop_duplicates(self, id_column: str, kind: str, low: str, high: str) -> int:
        """Keep one row of each id in partition ``kind`` among the ids ``low`` .. ``high``: the rows of
        that range are written again, each id once, by one commit (delta-rs's overwrite where a
        predicate holds), so a reader sees the range as it was or whole, never half. Returns the rows
        dropped. The caller holds the rewrite lock (:func:`hold_rewrites`); a writer's commit that
        lands meanwhile makes delta-rs refuse ours, and the range is read again."""
        import pyarrow.compute as pc
        import pyarrow.dataset as pads

        predicate = (
            f"{PARTITION} = {sql_text(kind)} AND {id_column} >= {sql_text(low)} AND {id_column} <= {sql_text(high)}"
        )
        where = (pads.field(PARTITION) == kind) & (pads.field(id_column) >= low) & (pads.field(id_column) <= high)
        for attempt in range(_COMMIT_ATTEMPTS):
            dt = self._fresh()
            rows = without_views(dt.to_pyarrow_dataset().to_table(filter=where))
            order = pc.sort_indices(rows.column(id_column))
            ids = rows.column(id_column).take(order).combine_chunks()
            n = len(ids)
            if n < 2:
                return 0
            # in id order, a row whose id differs from the one before it is the first of its id
            first = pc.not_equal(ids.slice(1), ids.slice(0, n - 1))
            keep = order.filter(pa.concat_arrays([pa.array([True]), first]))
            dropped = n - len(keep)
            if not dropped:
                return 0
            try:
                write_deltalake(
                    dt, rows.take(keep), mode="overwrite", predicate=predicate, partition_by=[PARTITION],
                    writer_properties=self._props,
                )  # fmt: skip
                return dropped
            except CommitFailedError:
                time.sleep(0.05 * (attempt + 1))
        raise CommitConflict(
            f"dropping the duplicate rows of {self.uri} (kind {kind!r}) met a concurrent commit "
            f"{_COMMIT_ATTEMPTS} times; run it again"
        )

    @_creates_files
    def checkpoint(self) -> None:
        """Write a checkpoint of the newest version (a cold open then reads one Parquet file, not every commit)."""
        self._fresh().create_checkpoint()

    @_creates_files
    def vacuum(self, *, retention_hours: int = VACUUM_HOURS) -> list[str]:
        """Delete files that no snapshot of the last ``retention_hours`` refers to; returns them."""
        dt = self._fresh()
        try:
            return dt.vacuum(  # type: ignore[no-any-return]
                retention_hours=retention_hours, enforce_retention_duration=False, dry_run=False
            )
        except CommitFailedError as exc:  # its commit info lost a race: the files are gone or stay for the next run
            raise CommitConflict(f"vacuuming {self.uri} met a concurrent commit ({exc}); run it again") from exc

    @_creates_files
    def delete_where(self, predicate: str) -> int:
        """Delete the rows matching a SQL ``predicate`` in one commit (maintenance's fold); returns how many."""
        try:
            metrics = self._fresh().delete(predicate, writer_properties=self._props)
        except CommitFailedError as exc:  # a concurrent compaction rewrote a file this delete read
            raise CommitConflict(f"a delete in {self.uri} met a concurrent commit ({exc}); run it again") from exc
        return int(metrics.get("num_deleted_rows", 0))

    @_creates_files
    def update_where(self, predicate: str, updates: dict[str, str]) -> int:
        """Set columns to SQL expressions where ``predicate`` holds, in one commit; returns rows updated."""
        try:
            metrics = self._fresh().update(updates=updates, predicate=predicate, writer_properties=self._props)
        except CommitFailedError as exc:  # a concurrent commit added or rewrote files this update read
            raise CommitConflict(f"an update in {self.uri} met a concurrent commit ({exc}); run it again") from exc
        return int(metrics.get("num_updated_rows", 0))


def sql_text(text: str) -> str:
    """``text`` as a SQL string literal for a delta-rs predicate (quotes doubled)."""
    return "'" + text.replace("'", "''") + "'"


def _unview(t: pa.DataType) -> pa.DataType:
    if pa.types.is_string_view(t):
        return pa.string()
    if pa.types.is_binary_view(t):
        return pa.binary()
    if pa.types.is_map(t):
        return pa.map_(t.key_field.with_type(_unview(t.key_type)), t.item_field.with_type(_unview(t.item_type)))
    if pa.types.is_list(t):
        return pa.list_(t.value_field.with_type(_unview(t.value_type)))
    if pa.types.is_struct(t):
        return pa.struct([t.field(i).with_type(_unview(t.field(i).type)) for i in range(t.num_fields)])
    return t


def without_views(table: pa.Table) -> pa.Table:
    """``table`` with ``string_view`` / ``binary_view`` columns (nested too) cast to ``string`` / ``binary``.

    NOTE: files that delta-rs rewrites (a fold's delete / update, a compaction) hold view types where our
    appends wrote plain ones; readers then see one type whichever file a row is in.
    """
    schema = table.schema
    plain = pa.schema([f.with_type(_unview(f.type)) for f in schema], metadata=schema.metadata)
    return table if plain.equals(schema) else table.cast(plain)


LEASE_WAIT_SECONDS = 300.0  # maintenance on an s3:// root waits this long for another machine's run


@contextlib.contextmanager
def maintenance_lock(path: str, *, wait: bool = True) -> Iterator[bool]:
    """Hold ``maintenance.lock`` (an exclusive ``flock``: one maintenance runner per store) for the block.

    Yields True once held; with ``wait=False`` it yields False at once when another process holds it.
    A runner killed mid-way leaves nothing to clean up: the kernel drops its ``flock``.
    """
    with hold_rewrites(path, wait=wait) as hold:
        yield hold is not None


@dataclass(frozen=True, slots=True)
class RewriteHold:
    """What :func:`hold_rewrites` holds: the ``flock``'s fd (a child process given it holds the lock
    with us: a parent killed mid-merge does not free it while its child still rewrites) and, on an
    s3:// root, an event set if the bucket's lease is lost meanwhile."""

    fd: int
    lost: threading.Event | None = None


@contextlib.contextmanager
def hold_rewrites(path: str, objects: Any = None, *, wait: bool = True) -> Iterator[RewriteHold | None]:
    """Hold the right to rewrite the store's data files (compaction, a fold's deletes and updates) for
    the block: ``maintenance.lock`` at ``path`` (an exclusive ``flock``), and with ``objects`` (an s3://
    root's :class:`~.objectstore.ObjectStore`) the bucket's ``maintenance`` lease too, across machines.

    Every rewrite takes it, the flusher's merges of small files as much as maintenance: delta-rs (1.6)
    lets two compactions that read the same snapshot both commit (each removes the same files with
    ``dataChange=false``, which its conflict checker lets through), and every row they merged is then
    in the table twice. Yields the hold, or None with ``wait=False`` when another runner has it (and,
    for the lease, after :data:`LEASE_WAIT_SECONDS` with ``wait=True``).
    """
    fd = hold_lock(path) if wait else try_lock(path)
    if fd is None:
        yield None
        return
    try:
        if objects is None:
            yield RewriteHold(fd)
            return
        lease = objects.lease("maintenance")
        deadline = time.monotonic() + LEASE_WAIT_SECONDS
        while True:
            with lease.holding() as lost:
                if lost is not None:
                    yield RewriteHold(fd, lost)
                    return
            if not wait or time.monotonic() > deadline:
                yield None
                return
            time.sleep(1.0)
    finally:
        os.close(fd)


# -- spools ----------------------------------------------------------------------------------------
def read_spool_rows(path: str) -> list[Row]:
    """Every whole JSON line of a closed spool file (a damaged line is skipped with a warning)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return []
    end = data.rfind(b"\n")
    rows: list[Row] = []
    for line in data[: end + 1].splitlines():
        if not line:
            continue
        try:
            row = json.loads(line)
        except ValueError:
            row = None
        if isinstance(row, dict) and "kind" in row:
            rows.append(row)
        else:
            warnings.warn(f"skipping a damaged line in spool {path}", StoreWarning, stacklevel=2)
    return rows


def commit_spool(
    table: DeltaLakeTable,
    path: str,
    *,
    writer: str,
    seq: int,
    rows_to_arrow: Callable[[list[Row]], pa.Table],
    before_unlink: Callable[[], None] | None = None,
) -> int:
    """Commit a closed spool file of ``writer`` (sequence ``seq``) into ``table``, then remove it.

    Idempotent: run it again after a crash at any point and the rows are in the table once. The
    spool must be closed (the writer moved on to ``seq + 1``): lines appended meanwhile would be lost
    with the file. Returns how many rows this call committed (0: none, or committed before).
    ``before_unlink`` runs between the commit and the removal (tests use it to die there).
    """
    rows = read_spool_rows(path)
    committed = 0
    if rows and table.commit(rows_to_arrow(rows), app_id=writer, seq=seq):
        committed = len(rows)
    if before_unlink is not None:
        before_unlink()
    unlink_quietly(path)
    return committed


__all__ = [
    "CONFIGURATION",
    "TARGET_FILE_BYTES",
    "VACUUM_HOURS",
    "CommitConflict",
    "DamagedDataFile",
    "DataFile",
    "DeltaLakeTable",
    "RewriteHold",
    "commit_spool",
    "error_text",
    "hold_rewrites",
    "maintenance_lock",
    "read_spool_rows",
    "unreachable",
    "without_views",
]
