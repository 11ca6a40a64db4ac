"""A format-1 :class:`~.tables.Table` whose flushes commit to a Delta table: format 2 behind a flag.

The spool, its tailing and recovery stay :class:`~.tables.Table`'s; only where spooled rows go
changes. ``write_parts(rows, writer, seq)`` (a flush, or the recovery of a dead writer's spool)
commits the rows with the application transaction ``(writer, seq)``, so a flush repeated after a
crash is not appended twice (``storage/delta.py``). The read side presents the snapshot's data files
as parts, their typed columns converted back to format 1's row shape (labels, metrics, values as
JSON text), so the format-1 catalog and event log run unchanged over a format-2 store while the
columnar catalog (``core/columnar.py``) is wired in. See ``docs/format2.md``.

Flushing is off the caller's path: :meth:`DeltaSpoolTable.append` is one ``os.write`` into the spool
(format 1's), and a background thread (started by the first append) rotates the spool under the
table's lock (the writer moves to ``seq + 1`` at once, so an append never waits for a commit) and
commits the closed spool ``seq`` with the application transaction ``(writer, seq)``, every
``flush_rows`` rows or every ``flush_seconds`` while rows are pending, and on close. The commit runs
on that thread: an events spool is parsed by ``pyarrow.json`` (C++) and written by delta-rs (Rust),
which hold this process's GIL for little of the commit (``storage/committer.spool_to_arrow``; the
row-by-row conversion it replaces held it for 20-150 ms and stalled the caller's next record), so
``record``'s tail while logging equals that of a store that commits nothing meanwhile
(bench/format2_record_bench.py). ``AEG_COMMIT_PROCESS=1`` commits in the store's commit process
instead (``storage/committer.py``, a second interpreter). Closed spools
are committed in ``seq`` order; a failed commit keeps its spool, is retried with a growing delay and
is shown in :attr:`DeltaSpoolTable.flush_error`. Until its commit a row is in :attr:`pending_rows`
(readers of this process see it) and in its spool file (other processes tail it; a crash leaves it
for the next open's recovery).
"""

from __future__ import annotations

import bisect
import errno
import json
import os
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import quote

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..base.errors import InvalidInputError, StoreWarning, StoreWriteError
from ..base.models import URI_PREFIX
from .committer import CommitProcess, spool_to_arrow
from .delta import (
    PARTITION,
    ROW_GROUP,
    DamagedDataFile,
    DataFile,
    DeltaLakeTable,
    RewriteHold,
    error_text,
    hold_rewrites,
    without_views,
)
from .fsops import unlink_quietly
from .layout import Layout, Part, PartName
from .location import RemoteTables
from .priority import ENABLED as YIELDING
from .priority import run_yielding
from .schemas import Row, TableSpec, as_micros, encode_row
from .schemas2 import ROWS_TO_ARROW, SCHEMAS2, labels_from_entries, row_content
from .tables import COMPACT_AT, SURROGATES, Table, rows_since

_DELTA_WRITER = "delta"  # the writer field of the PartName given to a Delta data file
_GROUP_CACHE_BYTES = 8 << 20  # inline content of recently read row groups kept decoded (inline_content)
FLUSH_SECONDS = 2.0  # the longest a row waits in the spool before the flusher commits it
REMOTE_POLL_SECONDS = 1.0  # an s3:// root: how often readers look for other machines' commits
RETRY_SECONDS = (0.5, 30.0)  # the flusher's delay after a failed commit: first, and at most (doubling)


MAX_DIR_NAME_BYTES = 255  # a directory name on ext4, xfs, btrfs, APFS, NTFS (255 UTF-16 units)


def check_partition_value(kind: str) -> str:
    """``kind`` if its Delta partition folder ``kind=<value>`` fits a directory name, else a clear error.

    delta-rs names the folder ``kind=`` + the value percent-encoded as ``urllib.parse.quote(value,
    safe="")`` does (measured: ``ü`` -> ``%C3%BC``, ``/`` -> ``%2F``, ``~._-`` kept), so every kind of
    ASCII letters fits (``check_kind`` keeps kinds to 120 characters), and one of 28 CJK characters
    (9 bytes each encoded) does not. Format 1
    stored such kinds under a digest-named partition; format 2 refuses them before they are spooled,
    since a commit of their rows would fail forever.

    Example:
        >>> check_partition_value("checkpoint")
        'checkpoint'
    """
    size = len("kind=") + len(quote(kind, safe=""))
    if size > MAX_DIR_NAME_BYTES:
        raise InvalidInputError(
            f"kind {kind[:24]!r}... is too long for a table partition ({size} bytes once percent-encoded, at most "
            f"{MAX_DIR_NAME_BYTES}: 27 characters of a script outside ASCII, 41 accented letters); "
            "use a shorter kind and put the rest in labels"
        )
    return kind


DRAIN_EVERY = 16  # an append of every 16 frees ...
DRAIN_ROWS = 32  # ... this many rows of committed spools (twice what the appends meanwhile add)
DRAIN_AT_LEAST = 256  # a smaller committed spool came from sparse appends: the flusher frees it at once
IDLE_FREE_SECONDS = 1.0  # no append for this long: the flusher frees what is left itself


def _free_gradually(rows: list[Row], step: int = 100) -> None:
    """Drop a committed spool's rows 100 at a time, yielding the GIL between. Only for a list no reader
    holds (``pending_rows`` hands the open spool's list out, and it becomes the closed spool's).

    A `record` releases the GIL in its ``os.write``, so each step runs between two records and is a wait
    the next record may see. Freeing a row costs ~0.35 us (its memory is no longer in the cache).

    Steps of 1,000 held the GIL ~350 us, ten times a commit, and made the tail's p99.9 (docs/format2.md,
    "Where the tail's p99.9 came from"). Steps of 100 hold it ~35 us, but each is still a wait with a GIL
    hand-off for the next record: while appends come, the flusher leaves the rows to them
    (:meth:`DeltaSpoolTable._drain`); this runs only where no record waits (an idle flusher, ``flush()``
    or ``close()`` on the caller's thread)."""
    while rows:
        del rows[-step:]
        time.sleep(0)


class DeltaSpoolTable(Table):
    """One table of a format-2 store: spooled like format 1, committed to Delta by a background flusher.

    Args:
        flush_seconds: the longest a row waits in the spool before the flusher commits it.
        background: False commits only on :meth:`flush` / :meth:`close` (no thread).

    Example:
        >>> t = DeltaSpoolTable(Layout(root), ARTIFACTS, writer="p1x2")      # doctest: +SKIP
        >>> t.append(row)            # one os.write; the flusher commits it within 2 s  # doctest: +SKIP
        >>> t.flush()                # or now, from this thread                          # doctest: +SKIP
    """

    def __init__(
        self,
        layout: Layout,
        spec: TableSpec,
        *,
        writer: str,
        flush_seconds: float = FLUSH_SECONDS,
        background: bool = True,
        remote: RemoteTables | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(layout, spec, writer=writer, **kw)
        #: an s3:// root (storage/location.py): the Delta table is on the bucket, self.dir its local copies
        self.remote = remote
        self._polled = 0.0  # an s3:// root: when tail_others last looked for a new table version
        self._seen_version: int | None = None
        if remote is None:
            self.delta = DeltaLakeTable(self.dir, SCHEMAS2[spec.name], ts_field=spec.ts_field)
        else:
            self.delta = DeltaLakeTable(
                self.dir, SCHEMAS2[spec.name], ts_field=spec.ts_field, uri=remote.uri(spec.name),
                storage_options=remote.storage_options(), mirror=remote.mirror,
            )  # fmt: skip
            self.delta.create()  # once per table (a race of two first opens: one creates, the other opens it)
        self._files: dict[str, DataFile] = {}
        self.flush_seconds = flush_seconds
        self.background = background
        #: the flusher's last failed commit (its spool is kept and retried), None once a commit succeeds
        self.flush_error: Exception | None = None
        #: test hook: called with (step, seq) at "rotated", "committing", "committed" of each spool commit
        self.on_flush_step: Callable[[str, int], None] | None = None
        #: called with a spool's start (``time.time_ns()``) before its commit; raising keeps the spool for a
        #: retry (an s3:// root's artifacts: their blobs land first, ``RemoteBlobStore.wait_uploaded``)
        self.before_commit: Callable[[int], None] | None = None
        self._flush_at = sys.maxsize  # Table.append never flushes on the caller's path: the flusher does
        self._closed: list[tuple[int, list[Row]]] = []  # rotated spools not committed yet, oldest first
        # committed spools' rows that no reader holds, freed by the appends (see _drain) or, once no append
        # comes for IDLE_FREE_SECONDS, by the flusher; guarded by the table lock
        self._dead: list[list[Row]] = []
        self._dead_ticks = 0  # appends while _dead held rows (one in DRAIN_EVERY drains)
        self._lock = threading.Lock()  # the table lock: appends, rotations (append takes it bare: no Python frame)
        self._cv = threading.Condition(self._lock)  # the same lock, for the flusher's wait
        self._commit_lock = threading.Lock()  # one committer at a time (flusher or flush()), so seqs go in order
        self._thread: threading.Thread | None = None
        self._idle = False  # the flusher waits for rows (in _wait_for_work): append notifies it
        self._committer: CommitProcess | None = None  # the store's commit process, once the flusher runs
        self._stopping = False
        #: commit on the flusher thread (False, the default: events are parsed by pyarrow.json and written
        #: by delta-rs, which hold the GIL for little of a commit) or in the store's commit process
        #: (True, AEG_COMMIT_PROCESS=1: a second interpreter of 250-750 MB); set before the first append
        self.commit_process = os.environ.get("AEG_COMMIT_PROCESS", "0") == "1"
        self.commits = 0  #: spools this process committed (the periodic maintenance counts them)
        self._uri_index: dict[str, UriIndex] = {}  # data file -> its uri -> rows index (inline_content)
        self._uri_lock = threading.Lock()
        self._uri_files: list[DataFile] | None = None  # the data files inline_content last looked at
        self._groups: dict[tuple[str, int], dict[str, bytes]] = {}  # decoded row groups, oldest first
        self._group_bytes = 0
        self._group_starts: dict[str, list[int]] = {}  # data file -> first row of each row group, and the end
        self._kinds_ok: set[str] = set()  # kinds whose partition folder name fits (check_partition_value)
        self._small_seen: dict[str, int] = {}  # kind -> its small files at the last count, + our commits since
        self._merge_due: set[str] = set()  # kinds whose small files the merger thread is to merge
        self._merger: threading.Thread | None = None  # merges for the flusher: commits go on meanwhile
        self._merge_cv = threading.Condition()  # (its own: the flusher's is notified one waiter at a time)
        #: merges the merger thread had a child do (:meth:`_merge_in_child`), and the highest peak RSS
        #: (MB) of those children
        self.child_merges = 0
        self.merge_peak_mb = 0.0

    # -- writing -----------------------------------------------------------------------------
    @property
    def pending_rows(self) -> list[Row]:
        """Rows of this writer not committed yet: closed spools waiting for the flusher, then the open one."""
        with self._cv:
            if not self._closed:
                return self._pending
            rows = [r for _seq, batch in self._closed for r in batch]
            rows.extend(self._pending)
            return rows

    def append(self, row: Row, line: str | None = None) -> None:
        """Append one row to the spool (one ``os.write``); the flusher commits it later (see the module).

        Raises:
            InvalidInputError: the row's kind makes a partition folder name no file system takes
                (nothing is written: a row that can never commit is refused, not spooled).
        """
        if row["kind"] not in self._kinds_ok:
            self._kinds_ok.add(check_partition_value(row["kind"]))
        if self._thread is None and self.background:
            self._start()
        # Table.append inlined (the `record` budget: one frame, one lock, one os.write)
        try:
            data = (line if line is not None else encode_row(row) + "\n").encode()
        except UnicodeEncodeError:
            raise InvalidInputError(SURROGATES) from None
        lock = self._lock
        lock.acquire()  # (not `with`: ~65 ns less, the `record` budget; the finally releases it)
        try:
            fd = self._fd
            if fd is None or self.fsync:  # no spool open yet, or one fsync a row: format 1's way
                Table.append(self, row, line)
            else:
                try:
                    n = os.write(fd, data)
                    if n != len(data):
                        raise OSError(errno.ENOSPC, "short write")
                except OSError as exc:
                    raise self._write_failed(fd, exc) from exc
                self._spool_size += n
                self._pending.append(row)
            if self._dead:
                self._dead_ticks += 1
                if not self._dead_ticks % DRAIN_EVERY:
                    self._drain()
            if self._idle:  # the flusher waits: a first pending row starts its clock, a full spool ends it
                n = len(self._pending)
                if n == 1 or n >= self.flush_rows:
                    self._cv.notify()
        finally:
            lock.release()

    def _drain(self) -> None:
        """Free ``DRAIN_ROWS`` rows of committed spools (the caller holds the table lock).

        Freeing a row costs ~0.35 us (its memory is no longer in the cache): done by the flusher, it held
        the GIL in steps that the next ``record`` waited for after its ``os.write``, the GIL hand-off
        included (half the calls over 100 us while logging, docs/format2.md "Freed by the appends"). While
        committed rows wait, one append in 16 frees 32 instead, ~11 us on that call, without a hand-off; the
        other 15 free none. Spools of fewer than ``DRAIN_AT_LEAST`` rows (sparse appends) never come here,
        and once no append has come for ``IDLE_FREE_SECONDS`` the flusher frees the rest (``_free_dead``).
        """
        dead = self._dead
        rows = dead[-1]
        del rows[-DRAIN_ROWS:]
        if not rows:
            dead.pop()

    def flush(self) -> int:
        """Commit every spooled row now, from this thread (after the flusher's commit in flight, if any).

        Returns how many rows this call committed.

        Raises:
            StoreWriteError: a commit failed; its rows stay in the spool (the flusher or the next
                open commits them).
        """
        return self._commit_closed()

    def close(self) -> None:
        """Stop the flusher, commit what is left and release the spool file."""
        with self._cv:
            self._stopping = True
            self._cv.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        with self._merge_cv:  # the merger finishes the merges due, then stops
            self._merge_cv.notify_all()
            merger = self._merger
        if merger is not None and merger is not threading.current_thread():
            merger.join()
        try:
            self.flush()
        finally:
            with self._cv:
                if self._fd is not None:
                    os.close(self._fd)
                    self._fd = None
                self._dead = []
            committer, self._committer = self._committer, None
            if committer is not None:
                _release_committer(self.layout.root)

    def write_parts(self, rows: list[Row], writer: str, seq: int) -> list[str]:
        """Commit ``rows`` (spool ``seq`` of ``writer``) in one Delta commit, unless it is in already.

        The recovery of a dead writer's spool comes here (``StoreRoot.recover``): as the flusher's commits,
        it first waits for :attr:`before_commit` (an s3:// root: the blobs staged before now landed, the
        dead process's too, since its staging area is this machine's), which raises while they cannot.
        """
        if self.before_commit is not None:
            self.before_commit(time.time_ns())
        self.delta.commit(ROWS_TO_ARROW[self.spec.name](rows), app_id=writer, seq=seq)
        return []  # nothing for format 1's per-partition compaction to look at

    def compact(self, kind: str, *, min_parts: int = 16, max_rows: int = 1_000_000) -> int:
        """Compact one partition with Delta's optimize (one commit, under :func:`~.delta.hold_rewrites`,
        waiting for it); returns how many files it merged."""
        objects = self.remote.objects if self.remote is not None else None
        with hold_rewrites(self.layout.maintenance_lock, objects) as hold:
            if hold is None or not self.delta.exists() or len(self.delta.files([kind])) < min_parts:
                return 0
            return int(self.delta.compact(kinds=[kind]).get("numFilesRemoved", 0))

    # -- the flusher -------------------------------------------------------------------------
    def _start(self) -> None:
        with self._cv:
            if self._thread is not None or self._stopping:
                return
            thread = threading.Thread(target=self._run, name=f"aeg-flush-{self.spec.name}", daemon=True)
            try:
                thread.start()
            except RuntimeError:  # interpreter shutdown: no new threads; close() commits the rows
                self.background = False
                return
            self._thread = thread
            if self.commit_process:
                self._committer = _acquire_committer(self.layout.root)

    def _run(self) -> None:
        delay = 0.0
        while True:
            with self._cv:
                if not self._wait_for_work(delay):
                    return
            try:
                self._commit_closed()
            except Exception as exc:  # the spool stays: try again later, and say why meanwhile
                self.flush_error = exc
                delay = min(max(2 * delay, RETRY_SECONDS[0]), RETRY_SECONDS[1])
            else:
                self.flush_error = None
                delay = 0.0

    def _wait_for_work(self, delay: float) -> bool:
        """Wait (holding the table lock's condition) until rows are due; False once the table closes."""
        if delay:  # after a failed commit (close cuts the wait short)
            self._cv.wait(delay)
            return not self._stopping
        self._idle = True  # (append signals only a waiting flusher)
        try:
            while not self._stopping and not self._pending and not self._closed:
                if not self._dead:
                    self._cv.wait()
                elif not self._cv.wait(IDLE_FREE_SECONDS) and not self._pending:
                    self._free_dead()  # no append came to free them
            deadline = time.monotonic() + self.flush_seconds
            while not self._stopping and len(self._pending) < self.flush_rows:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                if not self._dead or left < IDLE_FREE_SECONDS:
                    self._cv.wait(left)
                    continue
                rows = self._pending  # (appends here notify only a full spool: a timeout is the usual end)
                before = len(rows)
                if not self._cv.wait(IDLE_FREE_SECONDS) and self._pending is rows and len(rows) == before:
                    self._free_dead()  # rows wait for their commit, but no append came to free the dead ones
        finally:
            self._idle = False
        return not self._stopping

    def _free_dead(self) -> None:
        """Free every committed row left in ``_dead`` (the caller holds the table lock: it is released
        meanwhile, so that an append that comes now does not wait for this)."""
        dead, self._dead = self._dead, []
        self._cv.release()
        try:
            for rows in dead:
                _free_gradually(rows)
        finally:
            self._cv.acquire()

    def _rotate(self) -> None:
        """Close the open spool (it joins the closed ones) and open ``seq + 1`` for the next append."""
        with self._cv:
            if not self._pending:
                return
            self._closed.append((self._seq, self._pending))
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            self._seq += 1
            self._pending = []
            self._spool_size = 0
            try:
                self._open_spool()  # so that the next append only writes
            except OSError:
                pass  # the next append opens it, and says why if it cannot

    def _commit_closed(self) -> int:
        """Rotate, then commit the closed spools oldest first; returns the rows committed."""
        committed = 0
        with self._commit_lock:
            self._rotate()
            while True:
                with self._cv:
                    if not self._closed:
                        return committed
                    seq, rows = self._closed[0]
                committed += self._commit_one(seq, rows)
                with self._cv:
                    self._closed.pop(0)
                if sys.getrefcount(rows) == 2:  # (this frame's name and the call's argument: no reader holds the list)
                    if (
                        len(rows) >= DRAIN_AT_LEAST
                        and threading.current_thread() is self._thread
                        and not self._stopping
                    ):
                        with self._cv:  # appends come fast: they free them (_drain), a few at a time
                            self._dead.append(rows)
                    else:  # few rows (appends are sparse), or flush() / close() on the caller's thread: now
                        _free_gradually(rows)
                del rows

    def _commit_one(self, seq: int, rows: list[Row]) -> int:
        if self.before_commit is not None:
            self.before_commit(time.time_ns())
        step = self.on_flush_step
        path = self.layout.spool_file(self.writer, self.spec.name, seq)
        if step is not None:
            step("rotated", seq)
        committer = self._committer
        # the flusher's way: the child commits the file (another thread, e.g. close(), uses the child
        # only when it is up: starting one costs a second or more of imports)
        if (
            committer is not None
            and not committer.broken
            and (threading.current_thread() is self._thread or committer.running)
        ):
            if step is not None:
                step("committing", seq)
            _rows, kinds = committer.commit(
                dir=self.delta.uri, table=self.spec.name, writer=self.writer, seq=seq, path=path,
                storage_options=self.delta.storage_options,
            )  # fmt: skip
            self._compact_small_files(set(kinds))
        else:  # no flusher (background=False), or no commit process could start: commit here
            # events: the spool file through pyarrow.json (C++, no GIL held: committer.spool_to_arrow)
            data = None
            if self.spec.name == "events":
                if YIELDING and threading.current_thread() is self._thread:  # nobody waits: at the lowest priority
                    data = run_yielding(spool_to_arrow, self.spec.name, path, False)
                else:
                    data = spool_to_arrow(self.spec.name, path)
            if data is None or data.num_rows != len(rows):
                data = ROWS_TO_ARROW[self.spec.name](rows)
            if step is not None:
                step("committing", seq)
            self.delta.commit(data, app_id=self.writer, seq=seq)
            # the kinds from the Arrow column (C++), not a Python loop over the rows: the flusher's Python work
            # holds the GIL, and a `record` waits for it (the `record` tail budget, docs/format2.md)
            self._compact_small_files(set(data.column(PARTITION).unique().to_pylist()))
        self.commits += 1
        if step is not None:
            step("committed", seq)
        unlink_quietly(path)
        return len(rows)

    def _compact_small_files(self, kinds: set[str]) -> None:
        """Keep partitions to a few files (reads open every file): off the caller's path, after a commit,
        more than ``COMPACT_AT`` small files are merged up to the table's target size; files at it stay
        (``DeltaLakeTable.compact_small``: the growing partition is not rewritten again and again)."""
        # The small files of a partition are counted from the Delta log (`get_add_actions`: ~1 ms holding
        # the GIL, which a `record` then waits for) only once this writer's own commits since the last
        # count can have taken it over the limit: every writer compacts after its own commits, so a
        # partition never has more than COMPACT_AT small files of one writer's plus what others left.
        due = []
        for kind in kinds:
            known = self._small_seen.get(kind, 0) + 1  # + this commit's file
            self._small_seen[kind] = known
            if known > COMPACT_AT:
                due.append(kind)
        if not due:
            return
        if threading.current_thread() is self._thread:  # the flusher: a merge (0.5-2.5 s) must not stop commits,
            # or the rows logged meanwhile pile up in memory (~1 KB each; +100 MB of RSS at 75k records/s)
            with self._merge_cv:
                self._merge_due.update(due)
                if self._merger is None:
                    merger = threading.Thread(target=self._merge_run, name=f"aeg-merge-{self.spec.name}", daemon=True)
                    try:
                        merger.start()
                    except RuntimeError:  # interpreter shutdown: merged here
                        self._merge_due.difference_update(due)
                        self._merge_small(due)
                        return
                    self._merger = merger
                self._merge_cv.notify()
            return
        self._merge_small(due)

    def _merge_run(self) -> None:
        """The merger thread: merges the partitions the flusher found due, until close()."""
        while True:
            with self._merge_cv:
                while not self._merge_due and not self._stopping:
                    self._merge_cv.wait()
                if not self._merge_due:
                    return
                due = sorted(self._merge_due)
                self._merge_due.clear()
            self._merge_small(due, in_child=True)

    def _merge_small(self, kinds: list[str], *, in_child: bool = False) -> None:
        """Merge the small files of partitions ``kinds`` (in a one-shot child with ``in_child``), each under
        :func:`~.delta.hold_rewrites`; a partition whose lock another runner holds (maintenance, or
        another writer's merge) is left for a later commit, without waiting: two compactions at once
        would both commit, each with its own copy of every row (see there)."""
        objects = self.remote.objects if self.remote is not None else None
        for kind in kinds:
            try:
                before = self._small_seen.get(kind, 0)
                with hold_rewrites(self.layout.maintenance_lock, objects, wait=False) as hold:
                    if hold is None:
                        continue  # (its count stays over the limit: the next commit asks again)
                    counted = self._merge_in_child(kind, hold) if in_child else None
                    if counted is None:  # here (or no child could start)
                        files = self.delta.small_files(kind)
                        merged = (
                            self.delta.compact_small(kind, min_files=COMPACT_AT + 1, small=files)
                            if len(files) > COMPACT_AT
                            else 0
                        )
                        counted = len(files), merged
                small, merged = counted
                if merged:
                    small = small - merged + 1  # (merged into about one file)
                # + the flusher's commits meanwhile
                self._small_seen[kind] = small + max(0, self._small_seen.get(kind, 0) - before)
            except Exception as exc:  # the rows are committed: a merge can wait for the next commit
                warnings.warn(
                    f"could not compact {self.spec.name} ({error_text(exc, self.delta.storage_options)}); trying again later",
                    StoreWarning,
                    2,
                )

    def _merge_in_child(self, kind: str, hold: RewriteHold) -> tuple[int, int] | None:
        """Merge partition ``kind``'s small files in a one-shot child (``committer.serve``, niced); returns
        the small files it counted and those merged away, or None when no child could start. The child
        is given ``hold``'s lock fd: the lock stays held while it works, even if this process dies.

        A merge reads and rewrites up to a target's worth of files: in the logging process, delta-rs and
        pyarrow keep most of that memory afterwards (+30-45 MB at 1M events, +38 at 10M; docs/format2.md,
        "RSS while logging"), while a child's is returned to the system when it exits. Its peak is kept in
        :attr:`merge_peak_mb`."""
        child = CommitProcess(pass_fds=(hold.fd,))
        try:
            small, merged, peak = child.compact(
                dir=self.delta.uri, table=self.spec.name, kind=kind, min_files=COMPACT_AT + 1,
                target_size=self.delta.target_file_bytes, storage_options=self.delta.storage_options,
            )  # fmt: skip
        except StoreWriteError:
            if child.broken:
                return None
            raise
        finally:
            child.close()
        self.child_merges += 1
        self.merge_peak_mb = max(self.merge_peak_mb, peak)
        return small, merged

    # -- reading -----------------------------------------------------------------------------
    def tail_others(self) -> tuple[list[Row], bool]:
        """Format 1's tail of this machine's other writers; on an s3:// root ``rotated`` is also True when
        the table has a new version (other machines' commits: their spools are on their own disks),
        looked at once every :data:`REMOTE_POLL_SECONDS` at most."""
        rows, rotated = super().tail_others()
        if self.remote is not None and not rotated:
            now = time.monotonic()
            if now - self._polled >= REMOTE_POLL_SECONDS:
                self._polled = now
                version = self.delta.version()
                rotated = self._seen_version is not None and version != self._seen_version
                self._seen_version = version
        return rows, rotated

    def list_parts(self, kinds: Iterable[str] | None = None) -> list[Part]:
        """The snapshot's data files as parts, newest first by their newest row."""
        if not self.delta.exists():
            return []
        files = self.delta.files(kinds)
        self._files = {f.path: f for f in files}
        parts = [
            Part(f.path, f.kind, PartName(f.max_ts if f.max_ts is not None else 2**62, _DELTA_WRITER, i))
            for i, f in enumerate(sorted(files, key=lambda f: f.path))
        ]
        parts.sort(key=lambda p: (p.name.max_ts, p.path), reverse=True)
        return parts

    def read_part_table(
        self,
        part: Part,
        *,
        row_groups: list[int] | None = None,
        columns: list[str] | None = None,
        since_us: int | None = None,
    ) -> pa.Table | None:
        """One data file as format 1's columns (``None`` if a vacuum removed it meanwhile).

        ``columns``: only these columns, in this order (a chart of 1M events reads 4 of 19: the others,
        ``inputs`` / ``outputs`` above all, would cost seconds of per-row JSON text). ``since_us``: only
        the rows with ``ts >= since_us``, the row groups before it skipped by their statistics and the
        other rows dropped before the conversion (a live chart's redraw wants the newest rows, and the
        newest file can be a merged one of many commits)."""
        if row_groups is None and since_us is not None and (ranges := self._row_group_ranges(part)):
            row_groups = [gi for gi, max_ts in ranges if max_ts >= since_us]
        try:
            with pq.ParquetFile(part.path) as pf:
                have = None if columns is None else [c for c in columns if c in pf.schema_arrow.names]
                if row_groups is not None:
                    table = pf.read_row_groups(row_groups, columns=have)
                else:
                    table = pf.read(columns=have)
        except FileNotFoundError:
            if not self.delta.listed(part.path):
                return None  # a vacuum removed it meanwhile
            table = self._skip_damaged_file(part.path, "is missing (the log names it)")
        except (OSError, ValueError, pa.ArrowException) as exc:
            table = self._skip_damaged_file(part.path, f"cannot be read ({exc})")
        if since_us is not None:
            table = rows_since(table, since_us)
        return to_format1(self.spec, table, columns=columns)

    def newest_rows(
        self,
        limit: int,
        kinds: Iterable[str] | None = None,
        *,
        before: tuple[int, str] | None = None,
        whole_below: int = 0,
    ) -> tuple[list[Row], bool]:
        """The ``limit`` newest rows of the newest snapshot's data files (of ``kinds``; only those whose
        ``(ts, id)`` key may be older than ``before``), in format 1's row shape, newest first; and whether
        they are every such row. A table of at most ``whole_below`` rows is returned whole.

        The cold newest-first scan of format 2 (``EventLog``'s hot window fill and its fallback scan):
        units (a data file of one row group, else each row group of a compacted file) are taken in
        descending order of their newest time, from the Delta log's file statistics and the footers'
        row-group statistics, until the ``limit``-th newest time found is newer than the next unit's;
        only the time column of those units is read, then only the chosen rows are decoded into rows
        (never a whole file through ``to_format1``, whose Python-value conversions import pandas: 0.5-1 s
        of a cold open). Rows whose time equals ``before``'s are returned on top of ``limit`` (the
        caller compares the ids).
        """
        ts_name = self.spec.ts_field
        for attempt in range(2):
            try:
                files = self.delta.files(kinds) if self.delta.exists() else []
                if whole_below and sum(f.rows for f in files) <= whole_below:
                    limit = max(limit, whole_below)
                return self._newest_rows(files, ts_name, limit, before)
            except FileNotFoundError:  # a vacuum in another process removed a file: the newest snapshot
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def _newest_rows(
        self, files: list[DataFile], ts_name: str, limit: int, before: tuple[int, str] | None
    ) -> tuple[list[Row], bool]:
        units: list[tuple[int, int, DataFile, int | None]] = [
            (f.max_ts if f.max_ts is not None else 2**62, i, f, None) for i, f in enumerate(files) if f.rows
        ]
        units.sort(key=lambda u: (u[0], u[1]), reverse=True)
        cut = before[0] if before is not None else None
        chosen_ts = np.empty(0, dtype=np.int64)  # candidates: time, unit number, row within the unit
        chosen_unit = np.empty(0, dtype=np.int64)
        chosen_row = np.empty(0, dtype=np.int64)
        read: list[tuple[DataFile, int | None]] = []  # the units whose time column was read
        complete = True
        i = 0
        while i < len(units):
            max_ts, order, f, group = units[i]
            i += 1
            ties = int((chosen_ts == cut).sum()) if cut is not None and len(chosen_ts) else 0
            if len(chosen_ts) >= limit + ties and int(np.partition(chosen_ts, len(chosen_ts) - limit - ties)[
                len(chosen_ts) - limit - ties]) > max_ts:  # fmt: skip
                complete = False  # every unit left is older than the limit-th newest found
                break
            try:  # a damaged file (events: read at open) is skipped with a warning naming it
                meta = self.delta.footer(f) if group is None and f.rows > ROW_GROUP else None
                ts = self._unit_micros(f, group, ts_name) if meta is None or meta.num_row_groups <= 1 else None
            except DamagedDataFile as exc:
                self.skip_damaged(exc.path, f"skipping: {exc}")
                complete = False
                continue
            if meta is not None and meta.num_row_groups > 1:  # a compacted file: its row groups, by their statistics
                units[i:] = sorted(
                    units[i:] + [(g_max, order, f, g) for g, g_max in _group_maxima(meta, ts_name, max_ts)],
                    key=lambda u: (u[0], u[1]), reverse=True,
                )  # fmt: skip
                continue
            assert ts is not None
            rows = np.arange(len(ts), dtype=np.int64)
            if cut is not None:
                keep = ts <= cut
                if not keep.all():
                    complete = False
                ts, rows = ts[keep], rows[keep]
            read.append((f, group))
            chosen_ts = np.concatenate([chosen_ts, ts])
            chosen_unit = np.concatenate([chosen_unit, np.full(len(ts), len(read) - 1, dtype=np.int64)])
            chosen_row = np.concatenate([chosen_row, rows])
            ties = int((chosen_ts == cut).sum()) if cut is not None else 0
            if len(chosen_ts) > limit + ties:  # keep the newest (every row of the limit-th newest time)
                kth = np.partition(chosen_ts, len(chosen_ts) - limit - ties)[len(chosen_ts) - limit - ties]
                keep = chosen_ts >= kth
                if not keep.all():
                    complete = False
                chosen_ts, chosen_unit, chosen_row = chosen_ts[keep], chosen_unit[keep], chosen_row[keep]
        out: list[Row] = []
        for u in sorted(set(chosen_unit.tolist())):  # (np.unique imports numpy.ma: 0.1-0.4 s cold)
            f, group = read[u]
            try:
                out.extend(self._unit_rows(f, group, np.sort(chosen_row[chosen_unit == u])))
            except DamagedDataFile as exc:  # its time column read, another column does not
                self.skip_damaged(exc.path, f"skipping: {exc}")
                complete = False
        out.sort(key=lambda r: (r[ts_name], r[self.spec.id_field]), reverse=True)
        return out, complete

    def _unit_micros(self, f: DataFile, group: int | None, ts_name: str) -> np.ndarray:
        """The time column of one unit (a file, or one row group of it) as int64 microseconds."""
        with self.delta._open(f) as pf:
            t = pf.read_row_group(group, columns=[ts_name]) if group is not None else pf.read(columns=[ts_name])
        col = t.column(0)
        if not col.num_chunks:
            return np.empty(0, dtype=np.int64)
        return np.concatenate([np.frombuffer(c.buffers()[1], dtype=np.int64)[c.offset : c.offset + len(c)]
                               for c in col.chunks])  # fmt: skip

    def _unit_rows(self, f: DataFile, group: int | None, rows: np.ndarray) -> list[Row]:
        """Rows ``rows`` (sorted indices within the unit) of one unit, in format 1's row shape."""
        with self.delta._open(f) as pf:
            names = [n for n in self.spec.schema.names if n in pf.schema_arrow.names]
            t = pf.read_row_group(group, columns=names) if group is not None else pf.read(columns=names)
        t = without_views(t)
        out: list[Row] = []
        # contiguous runs of rows as zero-copy slices (Table.take would import pyarrow.compute)
        starts = np.flatnonzero(np.diff(rows, prepend=-2) != 1)
        ends = np.append(starts[1:], len(rows))
        for a, b in zip(starts, ends, strict=True):
            out.extend(format1_rows(self.spec, t.slice(int(rows[a]), int(rows[b - 1] - rows[a] + 1)), f.kind))
        return out

    def _skip_damaged_file(self, path: str, problem: str) -> pa.Table:
        """An events (or ops) data file that cannot be read: noted, warned about naming it and
        ``aeg verify --repair``, and read as no rows (the log reads on past it)."""
        self.delta.damaged.add(path)
        self.skip_damaged(path, f"skipping: {DamagedDataFile(self.delta.path, path, problem)}")
        return pa.Table.from_batches([], schema=self.delta.schema)  # NOTE: empty_table() imports pandas

    def _row_group_ranges(self, part: Part) -> list[tuple[int, int]] | None:
        """A newest-first scan's units of one data file: the file itself when its add action says it is
        one row group (its row count, and its max time from Delta's statistics +999 us: no footer read);
        else the footer's row groups (a compacted file)."""
        f = self._files.get(part.path)
        if f is not None and f.rows <= ROW_GROUP and f.max_ts is not None:
            return [(0, f.max_ts)] if f.rows else []
        return super()._row_group_ranges(part)

    def unreadable_parts(self, *, full: bool = False) -> list[str]:
        """Data files of the newest snapshot that are missing or whose footer (``full``: any page)
        cannot be read, and those a read of this process found damaged (``DeltaLakeTable.check_files``)."""
        bad = self.delta.check_files(full=full)
        if full:
            bad.extend(p for p in sorted(self.delta.damaged | self._damaged) if p not in bad and self.delta.listed(p))
        return bad

    def damaged_files(self, *, thorough: bool = True) -> list[str]:
        """Damaged data files (:meth:`unreadable_parts`, if ``thorough``), those reads met, and spools."""
        found = set(super().damaged_files(thorough=thorough))
        found.update(p for p in self.delta.damaged if self.delta.listed(p))
        return sorted(found)

    def drop_damaged(self, paths: Iterable[str], aside: str) -> list[dict[str, Any]]:
        """Take damaged data files out of the table with one Delta commit, a copy of each under ``aside``;
        returns what was lost (``DeltaLakeTable.drop_damaged``)."""
        lost = self.delta.drop_damaged(paths, aside, self.layout.root, self.spec.id_field)
        self._damaged.difference_update(e["file"] for e in lost)
        with self._uri_lock:
            for e in lost:
                self._uri_index.pop(e["file"], None)
        return lost

    def duplicates(self) -> dict[str, tuple[int, str, str]]:
        """Committed rows held more than once, by kind (``DeltaLakeTable.duplicates``); {} if none."""
        return self.delta.duplicates(self.spec.id_field) if self.delta.exists() else {}

    def drop_duplicates(self, kind: str, low: str, high: str) -> int:
        """Keep one row of each id of ``kind`` from ``low`` to ``high`` in one commit; returns the rows
        dropped (``DeltaLakeTable.drop_duplicates``; the caller holds the rewrite lock)."""
        return self.delta.drop_duplicates(self.spec.id_field, kind, low, high)

    def column_values(self, column: str) -> set[Any]:
        """Every value of ``column`` in any writer's spool (this one's too), then in the newest snapshot.

        Spools first: a row committed meanwhile is then in the snapshot read after (gc's sweep keeps
        the blob of every row an external reader may still see, ``core/maintenance.py``).
        """
        values: set[Any] = set()
        for path in self.spool_paths(include_own=True):
            values.update(r.get(column) for r in self.read_spool(path)[0])
        if self.delta.exists():
            values.update(self.delta.read([column]).column(0).to_pylist())
        values.discard(None)
        return values

    # -- inline content (format 2: content of at most INLINE_MAX bytes lives in its row) ------
    def inline_content(self, digest: str) -> bytes | None:
        """The inline content of the artifact row whose URI is ``cas://blake3/<digest>``, or None.

        Looks in this writer's rows not committed yet, then the data files of the last snapshot looked
        at (a lazily built ``uri -> row`` index per data file, from the ``uri`` column: data files never
        change), then other writers' spools, then the newest snapshot (a row committed meanwhile has left
        its spool). Only the row group holding the row found is read (its ``uri`` and ``content``).
        """
        uri = URI_PREFIX + digest
        for r in reversed(self.pending_rows):
            if r.get("uri") == uri and (data := row_content(r)) is not None:
                return data
        data = self._committed_content(uri, refresh=False)
        if data is not None:
            return data
        for path in self.spool_paths():
            for r in self.read_spool(path)[0]:
                if r.get("uri") == uri and (data := row_content(r)) is not None:
                    return data
        return self._committed_content(uri, refresh=True)

    def _committed_content(self, uri: str, *, refresh: bool) -> bytes | None:
        if self.spec.name != "artifacts":
            return None
        for attempt in range(2):
            try:
                with self._uri_lock:
                    files = self._uri_files
                    if refresh or attempt or files is None:
                        if not self.delta.exists():
                            return None
                        files = self._uri_files = self.delta.files()  # refreshes the snapshot
                    current = {f.path for f in files}
                    for gone in [p for p in self._uri_index if p not in current]:
                        del self._uri_index[gone]  # compacted away: its rows are in a newer file
                        self._group_starts.pop(gone, None)
                    for f in files:
                        for row in self._uri_index_of(f).rows(uri):
                            data = self._group_content(f, row).get(uri)
                            if data is not None:
                                return data
                return None
            except FileNotFoundError:  # a vacuum in another process: take the newest snapshot
                if attempt:
                    raise
        return None

    def uri_index(self, f: DataFile) -> UriIndex:
        """The ``uri -> rows`` index of one data file of this table (built once from its ``uri`` column,
        shared by inline reads and the catalog's URI lookups: ``ColumnarCatalog.by_uri``)."""
        with self._uri_lock:
            return self._uri_index_of(f)

    def _uri_index_of(self, f: DataFile) -> UriIndex:
        index = self._uri_index.get(f.path)
        if index is None:
            index = self._uri_index[f.path] = UriIndex.of_file(self.delta, f)
        return index

    def _group_content(self, f: DataFile, row: int) -> dict[str, bytes]:
        """uri -> inline content of the row group of ``f`` holding ``row``; the last groups read are kept
        (up to ``_GROUP_CACHE_BYTES`` of content): loading the artifacts of a list one by one decodes
        each 2,048-row group once, not once per artifact (~7 ms a group at load 12)."""
        starts = self._group_starts.get(f.path)
        if starts is None:
            with self.delta._open(f) as pf:
                meta = pf.metadata
                starts = [0]
                for g in range(meta.num_row_groups):
                    starts.append(starts[-1] + meta.row_group(g).num_rows)
            self._group_starts[f.path] = starts
        g = bisect.bisect_right(starts, row) - 1
        key = (f.path, g)
        got = self._groups.get(key)
        if got is not None:
            self._groups[key] = self._groups.pop(key)  # most recently used last
            return got
        with self.delta._open(f) as pf:
            t = pf.read_row_group(g, columns=["uri", "content"])
        got = {
            u: bytes(c) for u, c in zip(t.column(0).to_pylist(), t.column(1).to_pylist(), strict=True) if c is not None
        }
        self._groups[key] = got
        self._group_bytes += sum(map(len, got.values()))
        while self._group_bytes > _GROUP_CACHE_BYTES and len(self._groups) > 1:
            old = self._groups.pop(next(iter(self._groups)))
            self._group_bytes -= sum(map(len, old.values()))
        return got

    def inline_items(self) -> Iterator[tuple[str, bytes]]:
        """``(digest, content)`` of every row holding inline content: spools first, then the snapshot
        (``verify`` re-hashes them; gc lets a blob file go whose content is inline)."""
        for path in self.spool_paths(include_own=True):
            for r in self.read_spool(path)[0]:
                uri, data = r.get("uri"), row_content(r)
                if isinstance(uri, str) and data is not None:
                    yield uri.rsplit("/", 1)[-1], data
        if self.spec.name != "artifacts" or not self.delta.exists():
            return
        for f in self.delta.files():
            try:
                t = self.delta.read_file(f, ["uri", "content"])
            except (FileNotFoundError, DamagedDataFile):  # (verify reports a damaged one)
                continue
            for uri, data in zip(t.column(0).to_pylist(), t.column(1).to_pylist(), strict=True):
                if data is not None and isinstance(uri, str):
                    yield uri.rsplit("/", 1)[-1], bytes(data)

    def partition_kinds(self) -> list[str]:
        """The kinds that have data files in the snapshot."""
        if not self.delta.exists():
            return []
        return sorted({f.kind for f in self.delta.files()})


class UriIndex:
    """The rows of one data file by URI: the first 16 hex digits of each content address as a sorted
    ``uint64`` array (16 bytes a row with the row numbers: 16 MB at 1M rows, where a dict of the URIs
    would take ~150 MB), built from the ``uri`` column in one vectorized pass; a file whose URIs are not
    all ``cas://blake3/<64 hex>`` falls back to a dict.

    Example:
        >>> UriIndex(pa.array(["cas://blake3/" + "ab" * 32])).rows("cas://blake3/" + "ab" * 32)
        [0]
    """

    _LEN = len(URI_PREFIX) + 64

    def __init__(self, uris: pa.Array | pa.ChunkedArray) -> None:
        arr = uris.combine_chunks() if isinstance(uris, pa.ChunkedArray) else uris
        self._dict: dict[str, list[int]] | None = None
        keys = _hex_keys(arr, self._LEN, len(URI_PREFIX))
        if keys is None:
            self._dict = {}
            for i, u in enumerate(arr.to_pylist()):
                self._dict.setdefault(u, []).append(i)
            return
        self._order = np.argsort(keys, kind="stable")
        self._keys = keys[self._order]

    @classmethod
    def of_file(cls, delta: DeltaLakeTable, f: DataFile) -> UriIndex:
        """The index of one data file, its ``uri`` column read a row group at a time (at 1M rows the whole
        column is ~80 MB of text; the index is 16 MB): the keys of each group are kept, not its text."""
        keys: list[np.ndarray] = []
        with delta._open(f) as pf:
            for g in range(pf.metadata.num_row_groups):
                col = without_views(pf.read_row_group(g, columns=["uri"])).column(0).combine_chunks()
                k = _hex_keys(col, cls._LEN, len(URI_PREFIX)) if len(col) else np.empty(0, np.uint64)
                if k is None:  # odd URIs: the dict of the whole column
                    return cls(delta.read_file(f, ["uri"]).column(0))
                keys.append(k)
        index = cls.__new__(cls)
        index._dict = None
        all_keys = np.concatenate(keys) if keys else np.empty(0, np.uint64)
        index._order = np.argsort(all_keys, kind="stable")
        index._keys = all_keys[index._order]
        return index

    def rows(self, uri: str) -> list[int]:
        """Rows that may hold ``uri`` (the caller compares the URI cells: 16 hex digits can collide)."""
        if self._dict is not None:
            return self._dict.get(uri, [])
        if len(uri) != self._LEN:
            return []
        try:
            key = np.uint64(int(uri[len(URI_PREFIX) : len(URI_PREFIX) + 16], 16))
        except ValueError:
            return []
        lo, hi = np.searchsorted(self._keys, key, "left"), np.searchsorted(self._keys, key, "right")
        return sorted(int(r) for r in self._order[lo:hi])


def _hex_keys(arr: pa.Array, width: int, start: int) -> np.ndarray | None:
    """uint64 of the 16 hex digits at ``start`` of each string of ``arr``, if every one is ``width`` long."""
    if len(arr) == 0 or arr.null_count or arr.type != pa.string():
        return None
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int32)[arr.offset : arr.offset + len(arr) + 1]
    if not (np.diff(offsets) == width).all():
        return None
    raw = np.frombuffer(arr.buffers()[2], dtype=np.uint8)[offsets[0] : offsets[-1]].reshape(-1, width)
    nibbles = _HEX[raw[:, start : start + 16]]
    if (nibbles > 15).any():  # not lower-case hex
        return None
    octets = np.ascontiguousarray((nibbles[:, 0::2] << 4) | nibbles[:, 1::2])
    return octets.view(">u8").ravel().astype(np.uint64)


_HEX = np.full(256, 255, dtype=np.uint8)
_HEX[np.frombuffer(b"0123456789abcdef", dtype=np.uint8)] = np.arange(16, dtype=np.uint8)


_COMMITTERS: dict[str, tuple[CommitProcess, int]] = {}  # store root -> (its commit process, tables using it)
_COMMITTERS_LOCK = threading.Lock()


def _acquire_committer(root: str) -> CommitProcess:
    """The commit process of the store at ``root`` (one per store, shared by its tables' flushers)."""
    with _COMMITTERS_LOCK:
        proc, users = _COMMITTERS.get(root, (None, 0))
        if proc is None:
            proc = CommitProcess()
        _COMMITTERS[root] = (proc, users + 1)
        return proc


def _release_committer(root: str) -> None:
    with _COMMITTERS_LOCK:
        proc, users = _COMMITTERS.pop(root, (None, 0))
        if proc is not None and users > 1:
            _COMMITTERS[root] = (proc, users - 1)
            return
    if proc is not None:
        proc.close()


def to_format1(spec: TableSpec, table: pa.Table, *, columns: list[str] | None = None) -> pa.Table:
    """Typed format-2 columns of one data file -> format 1's schema (JSON text for nested values);
    ``columns``: only these of format 1's columns, in this order."""
    n = table.num_rows
    names = set(table.column_names)
    cols: dict[str, Any] = {}
    fields = list(spec.schema) if columns is None else [spec.schema.field(c) for c in columns]
    for f in fields:
        if f.name not in names:
            cols[f.name] = pa.nulls(n, f.type)
            continue
        col = table.column(f.name)
        if col.type == f.type:
            cols[f.name] = col
        elif f.name == "labels":
            cols[f.name] = pa.array([_json(labels_from_entries(v)) for v in col.to_pylist()], pa.string())
        elif f.name == "inputs" and spec.name == "artifacts":  # list<string> of ids -> JSON text
            cols[f.name] = pa.array([json.dumps(v) if v else None for v in col.to_pylist()], pa.string())
        elif f.name in ("metrics",):
            cols[f.name] = _metrics_text(col)
        elif f.name in ("inputs", "outputs"):
            cols[f.name] = pa.array([_values_text(v) for v in col.to_pylist()], pa.string())
        elif f.name == "tags":
            cols[f.name] = pa.array([None if v is None else json.dumps(v) for v in col.to_pylist()], pa.string())
        else:
            cols[f.name] = col.cast(f.type)
    return pa.table(cols, schema=spec.schema if columns is None else pa.schema(fields))


def _metrics_text(col: pa.Array | pa.ChunkedArray) -> pa.Array:
    """A ``map<string, double>`` column as JSON text; only non-empty maps go through Python (events
    mostly carry none: a 1M-event file was 1M ``json.dumps`` of ``{}``)."""
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    lengths = np.diff(np.asarray(col.offsets.to_numpy(zero_copy_only=False), dtype=np.int64))
    text = np.where(col.is_null().to_numpy(zero_copy_only=False), None, "{}").astype(object)
    for i in np.flatnonzero(lengths > 0):
        text[i] = _json(dict(col[int(i)].as_py()))
    return pa.array(text, pa.string())


def format1_rows(spec: TableSpec, table: pa.Table, kind: str) -> list[Row]:
    """Typed format-2 rows of one data file -> format 1's rows (what ``Table.arrow_to_rows`` gives for
    :func:`to_format1` of the same rows: nested values as JSON text, times as int microseconds), without
    building Arrow arrays from Python values (which imports pandas): for the few rows a query returns."""
    names = set(table.column_names)
    cols: list[tuple[str, list[Any]]] = []
    n = table.num_rows
    for f in spec.schema:
        if f.name not in names:
            cols.append((f.name, [None] * n))
            continue
        col = table.column(f.name)
        micros = f.name == spec.ts_field and pa.types.is_timestamp(col.type)  # as arrow_to_rows gives it
        values = as_micros(col).to_pylist() if micros else col.to_pylist()
        if col.type == f.type or micros:
            pass
        elif f.name == "labels":
            values = [_json(labels_from_entries(v)) for v in values]
        elif f.name == "inputs" and spec.name == "artifacts":
            values = [json.dumps(v) if v else None for v in values]
        elif f.name == "metrics":
            values = [None if v is None else _json(dict(v)) for v in values]
        elif f.name in ("inputs", "outputs"):
            values = [_values_text(v) for v in values]
        elif f.name == "tags":
            values = [None if v is None else json.dumps(v) for v in values]
        cols.append((f.name, values))
    out: list[Row] = []
    keys = [c[0] for c in cols]
    for vals in zip(*(c[1] for c in cols), strict=True):
        r = dict(zip(keys, vals, strict=True))
        r["kind"] = kind
        out.append(r)
    return out


def _group_maxima(meta: Any, ts_name: str, file_max: int) -> list[tuple[int, int]]:
    """``[(row group, newest time)]`` of a Parquet footer from its statistics (``file_max`` without them)."""
    try:
        col = meta.schema.names.index(ts_name)
    except ValueError:
        return [(g, file_max) for g in range(meta.num_row_groups)]
    out = []
    for g in range(meta.num_row_groups):
        st = meta.row_group(g).column(col).statistics
        # max_raw: the stored int64 (`.max` boxes a timestamp through pandas, importing it)
        out.append((g, int(st.max_raw) if st is not None and st.has_min_max else file_max))
    return out


def _json(obj: dict[str, Any]) -> str:
    return json.dumps(obj, ensure_ascii=False) if obj else "{}"


def _values_text(values: list[dict[str, Any]] | None) -> str | None:
    if values is None:
        return None
    return json.dumps([{"name": v["name"], "kind": v["kind"], "value": json.loads(v["value"])} for v in values])


__all__ = ["DeltaSpoolTable", "to_format1"]
