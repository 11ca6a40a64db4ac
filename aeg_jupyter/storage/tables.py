"""Append-only tables: a JSONL spool per writer, flushed into Hive-partitioned Parquet parts.

A row is acknowledged once its JSON line is in the writer's spool (one ``os.write``), so it
survives a crash of the process that wrote it. Spools are flushed into Parquet parts
(``kind=<k>/<max_ts>-<writer>-<seq>.parquet``) every ``flush_rows`` rows, on close and at exit;
a dead writer's spool is flushed by the next process that opens the store. Part names are a
pure function of the spool they came from, so flushing the same spool twice rewrites the same
files, and readers de-duplicate rows by id in any case.

Parts go through one ``pyarrow.fs`` filesystem; the spool is a local write-ahead log by nature
(an appended line must be atomic), so it uses ``os`` directly.
"""

from __future__ import annotations

import concurrent.futures.thread  # noqa: F401  (see NOTE below)
import errno
import json
import os
import warnings
from collections.abc import Callable, Iterable, Iterator

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from ..base.errors import InvalidInputError, StoreWarning, StoreWriteError
from ..base.times import to_us
from .compaction import SWAP_LOCK, compact_partition
from .fsops import atomic, file_lock, fsync_path, make_dirs, unlink_quietly
from .layout import (
    KIND_FILE,
    PART_SUFFIX,
    Layout,
    Part,
    PartName,
    decode_kind,
    encode_kind,
    is_hashed_kind,
    parse_spool_name,
)
from .schemas import ARTIFACTS, EVENTS, OPS, Row, TableSpec, as_micros, bad_row, conform, encode_row, schema_problem

# NOTE: pyarrow imports pandas the first time it builds an array. When that first time is the
# flush at interpreter exit, pandas' import of concurrent.futures.thread would register an
# atexit hook after shutdown began and fail; importing that module up front avoids it.

ROW_GROUP = 65_536


SURROGATES = (
    "the text holds unpaired surrogate characters, which UTF-8 cannot store; "
    "clean it first, e.g. s.encode('utf-8', 'replace').decode()"
)
COMPACT_AT = 32  # parts in one partition before a flush merges the small ones
_LOCAL = pafs.LocalFileSystem()


class Table:
    """One table of one store, as seen (and written) by one writer.

    Example:
        >>> t = Table(Layout(root), EVENTS, writer="w1")               # doctest: +SKIP
        >>> t.append({"event_id": "01..", "ts": 1, "kind": "log"})     # doctest: +SKIP
        >>> t.flush()                                                  # doctest: +SKIP
    """

    def __init__(
        self,
        layout: Layout,
        spec: TableSpec,
        *,
        writer: str,
        flush_rows: int = 10_000,
        fsync: bool = False,
        fs: pafs.FileSystem = _LOCAL,
    ) -> None:
        self.layout = layout
        self.spec = spec
        self.writer = writer
        self.flush_rows = flush_rows
        self._flush_at = flush_rows  # pending rows that trigger a flush (moved on after a failed one)
        self.fsync = fsync
        self.fs = fs
        self.dir = layout.table_dir(spec.name)
        self._seq = 0
        self._fd: int | None = None
        self._spool_size = 0
        self._pending: list[Row] = []
        # tailing state for other writers' spools: path -> bytes consumed
        self._offsets: dict[str, int] = {}
        self._dir_mtimes: dict[str, tuple[int, tuple[str, ...]]] | None = (
            None  # other writers' spool dirs, at the last tail
        )
        # parts and spools a read had to skip (wholly or a line of them): they may hold rows that
        # matter (pins), so gc refuses to run while any of them is still there (see `damaged_files`)
        self._damaged: set[str] = set()

    # -- writing -----------------------------------------------------------------------------
    @property
    def pending_rows(self) -> list[Row]:
        """Rows of this writer still in its spool (not yet in Parquet)."""
        return self._pending

    def append(self, row: Row, line: str | None = None) -> None:
        """Append one row to this writer's spool: a single ``os.write`` of one JSON line.

        ``line`` is the row already encoded (one JSON object and a newline), for callers that can
        encode their rows faster than the generic encoder.

        Raises:
            StoreWriteError: the disk is full or not writable; the spool is left as it was.
        """
        try:
            data = (line if line is not None else encode_row(row) + "\n").encode()
        except UnicodeEncodeError:
            raise InvalidInputError(SURROGATES) from None
        if self._fd is None:
            try:
                self._open_spool()
            except OSError as exc:
                raise StoreWriteError(_cannot_write(self.spec.name, self.layout.root, exc)) from exc
        fd = self._fd
        assert fd is not None
        try:
            n = os.write(fd, data)
            if n != len(data):
                raise OSError(errno.ENOSPC, "short write")
            if self.fsync:
                os.fsync(fd)
        except OSError as exc:
            raise self._write_failed(fd, exc) from exc
        self._spool_size += n
        self._pending.append(row)
        if len(self._pending) >= self._flush_at:
            # The row is stored (its line is in the spool): a flush that fails now is not this
            # call's failure. The rows stay spooled and the next try waits for another batch.
            try:
                self.flush()
            except StoreWriteError as exc:
                self._flush_at = len(self._pending) + self.flush_rows
                warnings.warn(
                    f"{exc}; the rows stay in the spool (acknowledged) and are flushed later",
                    StoreWarning,
                    stacklevel=3,
                )

    def _write_failed(self, fd: int, exc: OSError) -> StoreWriteError:
        """After a failed spool write: no half line left behind (the spool cut back to its last whole
        row); the error to raise."""
        try:
            os.ftruncate(fd, self._spool_size)
        except OSError:
            pass
        return StoreWriteError(_cannot_write(self.spec.name, self.layout.root, exc))

    def _open_spool(self) -> None:
        path = self.layout.spool_file(self.writer, self.spec.name, self._seq)
        make_dirs(os.path.dirname(path))
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._spool_size = os.fstat(self._fd).st_size
        if self.fsync:  # the new file's directory entry must survive a power loss too
            fsync_path(os.path.dirname(path))

    def flush(self) -> int:
        """Move this writer's spooled rows into Parquet parts; returns how many rows moved."""
        if not self._pending:
            return 0
        rows = self._pending
        self.write_parts(rows, self.writer, self._seq)
        kinds = {r["kind"] for r in rows}
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        unlink_quietly(self.layout.spool_file(self.writer, self.spec.name, self._seq))
        self._seq += 1
        self._pending = []
        self._spool_size = 0
        self._flush_at = self.flush_rows
        for kind in kinds:  # keep partitions to a few files: reads list and open every part
            try:
                if len(os.listdir(self.layout.partition_dir(self.spec.name, kind))) > COMPACT_AT:
                    self.compact(kind, min_parts=COMPACT_AT // 2)
            except OSError as exc:  # the rows are in Parquet: a merge can wait for the next flush
                warnings.warn(
                    f"could not compact {self.spec.name} ({exc}); trying again later", StoreWarning, stacklevel=2
                )
        return len(rows)

    def close(self) -> None:
        """Flush and release the spool file."""
        self.flush()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def write_parts(self, rows: list[Row], writer: str, seq: int) -> list[str]:
        """Write ``rows`` as one part per kind; the names depend only on (rows, writer, seq)."""
        by_kind: dict[str, list[Row]] = {}
        for r in rows:
            by_kind.setdefault(r["kind"], []).append(r)
        written: list[str] = []
        make_dirs(self.dir)
        try:
            # shared: a compaction swapping a partition directory waits until these parts are in
            with file_lock(os.path.join(self.dir, SWAP_LOCK), shared=True):
                self._write_groups(by_kind, writer, seq, written)
        except BaseException:
            # a part of an earlier group would differ from the next try's (more rows, another
            # max_ts): remove it, the spool still holds its rows
            for path in written:
                unlink_quietly(path)
            raise
        return written

    def _write_groups(self, by_kind: dict[str, list[Row]], writer: str, seq: int, written: list[str]) -> None:
        for kind, group in by_kind.items():
            group.sort(key=self._order_key)
            max_ts = max(r[self.spec.ts_field] for r in group)
            pdir = self.layout.partition_dir(self.spec.name, kind)
            if is_hashed_kind(os.path.basename(pdir)):
                self._write_kind_file(pdir, kind)
            final = os.path.join(pdir, str(PartName(max_ts, writer, seq)))
            self.write_part_file(self.rows_to_arrow(group), final)
            written.append(final)

    def _write_kind_file(self, pdir: str, kind: str) -> None:
        """A hashed partition's ``_kind`` file, written before its first part (so no part is without it)."""
        path = os.path.join(pdir, KIND_FILE)
        if self._kind_of(pdir) == kind:
            return
        try:
            with (
                atomic(path, self.layout.writer_tmp_dir(self.writer), fsync=self.fsync, prefix="kind") as tmp,
                open(tmp, "w", encoding="utf-8", errors="surrogatepass") as f,
            ):
                f.write(kind)
        except OSError as exc:
            raise StoreWriteError(f"could not write a partition of {self.spec.name}: {exc}") from exc

    def _kind_of(self, pdir: str) -> str | None:
        """The kind of a partition directory (``None`` if it is not one, or a hashed one without ``_kind``)."""
        name = os.path.basename(pdir)
        if not is_hashed_kind(name):
            return decode_kind(name)
        try:
            with open(os.path.join(pdir, KIND_FILE), encoding="utf-8", errors="surrogatepass") as f:
                kind = f.read()
        except OSError:
            return None
        return kind if encode_kind(kind) == name else None

    def _order_key(self, r: Row) -> tuple[int, str]:
        return r[self.spec.ts_field], r[self.spec.id_field]

    def rows_to_arrow(self, rows: list[Row]) -> pa.Table:
        """Spool rows -> Arrow table with this table's schema (the partition column dropped)."""
        cols = {f.name: [r.get(f.name) for r in rows] for f in self.spec.schema}
        return pa.Table.from_pydict(cols, schema=self.spec.schema)

    def write_part_file(self, table: pa.Table | Iterable[pa.Table], final: str) -> None:
        """Write one part atomically: ``table``, or a stream of tables written one after another."""
        try:
            with atomic(final, self.layout.writer_tmp_dir(self.writer), fsync=self.fsync, prefix="part") as tmp:
                if isinstance(table, pa.Table):
                    pq.write_table(table, tmp, filesystem=self.fs, compression="zstd", row_group_size=ROW_GROUP)
                else:
                    with pq.ParquetWriter(tmp, self.spec.schema, filesystem=self.fs, compression="zstd") as w:
                        for t in table:
                            w.write_table(t, row_group_size=ROW_GROUP)
        except OSError as exc:
            raise StoreWriteError(f"could not write a Parquet part of {self.spec.name}: {exc}") from exc

    def row_groups(self, part: Part) -> Iterator[pa.Table]:
        """A part's rows one row group at a time (a compacted part can hold a million rows)."""
        with self.fs.open_input_file(part.path) as f:
            pf = pq.ParquetFile(f)
            for rg in range(pf.num_row_groups):
                yield conform(pf.read_row_group(rg), self.spec)

    # -- reading parts -----------------------------------------------------------------------
    def list_parts(self, kinds: Iterable[str] | None = None) -> list[Part]:
        """Parts of this table (all kinds, or only ``kinds``), newest first by their newest row."""
        dirs: list[tuple[str, str]] = []
        if kinds is None:
            try:
                infos = self.fs.get_file_info(pafs.FileSelector(self.dir, allow_not_found=True))
            except OSError:
                infos = []
            for info in infos:
                if info.type == pafs.FileType.Directory and (kind := self._kind_of(info.path)) is not None:
                    dirs.append((info.path, kind))
        else:
            dirs = [(self.layout.partition_dir(self.spec.name, k), k) for k in kinds]
        parts: list[Part] = []
        for path, kind in dirs:
            selector = pafs.FileSelector(path, allow_not_found=True)
            for info in self.fs.get_file_info(selector):
                name = PartName.parse(info.base_name)
                if name is not None and info.type == pafs.FileType.File:
                    parts.append(Part(info.path, kind, name))
        parts.sort(key=lambda p: (p.name.max_ts, p.name.writer, p.name.seq), reverse=True)
        return parts

    def read_part(self, part: Part, *, row_groups: list[int] | None = None) -> list[Row] | None:
        """Rows of one part (``None`` if it vanished, e.g. merged by a compaction meanwhile).

        A part that cannot be decoded is skipped with a warning naming the file.
        """
        table = self.read_part_table(part, row_groups=row_groups)
        return None if table is None else self.arrow_to_rows(table, part.kind)

    def read_part_table(
        self,
        part: Part,
        *,
        row_groups: list[int] | None = None,
        columns: list[str] | None = None,
        since_us: int | None = None,
    ) -> pa.Table | None:
        """One part as Arrow in this table's schema (``None`` if it vanished; an empty table, with a
        warning, if it is unreadable or its columns do not fit the schema).

        ``columns``: only these columns, in this order (a chart reads 4 of the events' 18; Parquet
        is columnar, so the others are never decoded). A subclass may return more columns.
        ``since_us``: only the rows with ``ts >= since_us`` (microseconds).
        """
        try:
            with self.fs.open_input_file(part.path) as f:
                pf = pq.ParquetFile(f)
                if row_groups is not None:
                    table = pf.read_row_groups(row_groups, columns=columns)
                else:
                    table = pf.read(columns=columns)
            table = conform(table, self.spec, columns=columns) if columns is not None else conform(table, self.spec)
            return table if since_us is None else rows_since(table, since_us)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, pa.ArrowException) as exc:
            if self.fs.get_file_info(part.path).type != pafs.FileType.File:
                return None
            self.skip_damaged(part.path, f"skipping unreadable Parquet part {part.path}: {exc}")
            return self.spec.schema.empty_table()

    def skip_damaged(self, path: str, message: str) -> None:
        """Note a part or spool that a read had to skip (all of it or a line), and warn naming it."""
        self._damaged.add(path)
        warnings.warn(message, StoreWarning, stacklevel=4)

    def damaged_files(self, *, thorough: bool = True) -> list[str]:
        """Parts and spools of this table that cannot be read, wholly or in part, and are still there.

        The parts whose footer or schema is bad (:meth:`unreadable_parts`, checked now) and every
        file a read of this process had to skip something of.
        """
        found = set(self.unreadable_parts(full=True)) if thorough else set()
        found.update(p for p in self._damaged if os.path.exists(p))
        return sorted(found)

    def arrow_to_rows(self, table: pa.Table, kind: str) -> list[Row]:
        """Arrow table of a part -> rows as the spool holds them (timestamps as int microseconds)."""
        ts = self.spec.ts_field
        if ts in table.column_names:
            idx = table.column_names.index(ts)
            # view, not cast: the same int64 microseconds without importing pyarrow.compute
            # (pyarrow.compute is not imported on a cold open)
            table = table.set_column(idx, ts, as_micros(table.column(ts)))
        rows = table.to_pylist()
        for r in rows:
            r["kind"] = kind
        return rows

    def iter_newest(
        self, kinds: Iterable[str] | None = None, *, stop: Callable[[int], bool] | None = None
    ) -> Iterator[list[Row]]:
        """Batches of part rows, newest parts and row groups first.

        ``stop(max_ts)`` is asked before each batch with the newest time the batch can hold;
        when it says True, iteration ends (the caller has every row newer than that).
        """
        for _attempt in range(10):
            parts = self.list_parts(kinds)
            # (max_ts, part, row_group) candidates, newest first
            units: list[tuple[int, Part, int | None]] = []
            vanished = False
            for part in parts:
                units.append((part.name.max_ts, part, None))
            units.sort(key=lambda u: u[0], reverse=True)
            i = 0
            while i < len(units):
                max_ts, part, rg = units[i]
                i += 1
                if stop is not None and stop(max_ts):
                    if vanished:  # a part newer than this one went (merged): its rows are not in yet
                        break
                    return
                if rg is None:
                    groups = self._row_group_ranges(part)
                    if groups is None:
                        vanished = True
                        continue
                    if len(groups) > 1:
                        # split the part into its row groups and re-queue them in order
                        extra = [(g_max, part, gi) for gi, g_max in groups]
                        units[i:] = sorted(units[i:] + extra, key=lambda u: u[0], reverse=True)
                        continue
                    rows = self.read_part(part)
                else:
                    rows = self.read_part(part, row_groups=[rg])
                if rows is None:
                    vanished = True
                    continue
                yield rows
            if not vanished:
                return
            # a compaction replaced parts while we read: the merged part holds the same rows
        return

    def _row_group_ranges(self, part: Part) -> list[tuple[int, int]] | None:
        """[(row_group_index, max_ts)] of a part, from its footer statistics."""
        try:
            with self.fs.open_input_file(part.path) as f:
                meta = pq.ParquetFile(f).metadata
        except FileNotFoundError:
            return None
        except (OSError, pa.ArrowException) as exc:
            self.skip_damaged(part.path, f"skipping unreadable Parquet part {part.path}: {exc}")
            return []
        try:
            col = meta.schema.names.index(self.spec.ts_field)
        except ValueError:
            return [(0, part.name.max_ts)] if meta.num_row_groups else []  # foreign: read_part says why
        if meta.schema.column(col).physical_type != "INT64":
            return [(0, part.name.max_ts)]
        out = []
        for gi in range(meta.num_row_groups):
            st = meta.row_group(gi).column(col).statistics
            # max_raw: the stored int64 microseconds (`.max` boxes a timestamp through pandas,
            # importing it: +0.4 s on a cold open)
            g_max = st.max_raw if st is not None and st.has_min_max else None
            if g_max is None:
                out.append((gi, part.name.max_ts))
            else:
                out.append((gi, to_us(g_max)))
        return out

    def read_all_parts(self) -> list[Row]:
        """Every row of every part (used for the small tables: artifacts and ops)."""
        rows: list[Row] = []
        for batch in self.iter_newest():
            rows.extend(batch)
        return rows

    def read_columns(self, columns: list[str]) -> Iterator[pa.Table]:
        """Only ``columns`` of every part, one Arrow table per part (for whole-table summaries).

        ``columns=[]`` reads footers only (``num_rows``). Parts that vanish meanwhile (merged by a
        compaction) are skipped; an undecodable part is skipped with a warning, as in ``read_part``.
        """
        for part in self.list_parts():
            try:
                with self.fs.open_input_file(part.path) as f:
                    table = pq.ParquetFile(f).read(columns=columns)
            except FileNotFoundError:
                continue
            except (OSError, pa.ArrowException) as exc:
                if self.fs.get_file_info(part.path).type == pafs.FileType.File:
                    self.skip_damaged(part.path, f"skipping unreadable Parquet part {part.path}: {exc}")
                continue
            try:
                yield conform(table, self.spec, columns=columns)
            except ValueError as exc:
                self.skip_damaged(part.path, f"skipping Parquet part {part.path}: {exc}")

    # -- reading spools ----------------------------------------------------------------------
    def spool_paths(
        self, *, include_own: bool = False, dir_mtimes: dict[str, tuple[int, tuple[str, ...]]] | None = None
    ) -> list[str]:
        """Every writer's spool files of this table (sorted), optionally with this writer's own.

        ``dir_mtimes``, if given, is filled with each listed writer directory's mtime.
        """
        out: list[str] = []
        try:
            if dir_mtimes is not None:
                # writers that came and went since the last look leave only this behind
                dir_mtimes[""] = (os.stat(self.layout.spool).st_mtime_ns, ())
            writers = os.scandir(self.layout.spool)
        except FileNotFoundError:
            return out
        with writers:
            for w in writers:
                if not w.is_dir(follow_symlinks=False) or (w.name == self.writer and not include_own):
                    continue
                try:
                    mtime = w.stat(follow_symlinks=False).st_mtime_ns
                    names = os.listdir(w.path)
                except FileNotFoundError:
                    continue
                mine = sorted(n for n in names if (p := parse_spool_name(n)) is not None and p[0] == self.spec.name)
                if dir_mtimes is not None:
                    # NOTE: the names too, since an mtime only moves once per clock tick
                    dir_mtimes[w.name] = (mtime, tuple(mine))
                out.extend(os.path.join(w.path, n) for n in mine)
        out.sort()
        return out

    def read_spool(self, path: str, offset: int = 0, *, bad: list[bytes] | None = None) -> tuple[list[Row], int]:
        """Whole JSON lines of a spool file from ``offset``: ``(rows, new_offset)``.

        A trailing line without its newline is not consumed (it is still being written); a line
        that is not valid JSON, or not a row of this table, is skipped with a warning naming the
        file (and, if ``bad`` is given, appended to it).
        """
        try:
            with open(path, "rb") as f:
                f.seek(offset)
                data = f.read()
        except FileNotFoundError:
            return [], offset
        end = data.rfind(b"\n")
        if end < 0:
            return [], offset
        rows: list[Row] = []
        for line in data[: end + 1].splitlines():
            if not line:
                continue
            try:
                row = json.loads(line)
            except ValueError:
                row = None
            problem = "not JSON" if row is None else bad_row(self.spec, row)
            if problem is None:
                rows.append(row)
                continue
            if bad is not None:
                bad.append(line)
            self.skip_damaged(path, f"skipping a damaged line in spool {path} ({problem})")
        return rows, offset + end + 1

    def tail_others(self) -> tuple[list[Row], bool]:
        """New rows in other writers' spools since the last call: ``(rows, rotated)``.

        ``rotated`` is True when rows may have moved into Parquet parts we have not read: some
        writer's spool directory changed (a spool flushed and replaced: its mtime moves) or
        writers came or went. The caller then reads the parts it has not seen. Appending rows
        changes no directory, so the common case costs one ``stat`` per writer.
        The first call reads every spool from the start.
        """
        rows: list[Row] = []
        dir_mtimes: dict[str, tuple[int, tuple[str, ...]]] = {}
        seen = set()
        for path in self.spool_paths(dir_mtimes=dir_mtimes):
            seen.add(path)
            offset = self._offsets.get(path, 0)
            try:
                size = os.stat(path).st_size
            except FileNotFoundError:
                continue
            if size < offset:  # rewritten from scratch (should not happen): read it again
                offset = 0
            if size > offset:
                new, offset = self.read_spool(path, offset)
                rows.extend(new)
            self._offsets[path] = offset
        rotated = self._dir_mtimes is not None and dir_mtimes != self._dir_mtimes
        self._dir_mtimes = dir_mtimes
        for gone in [p for p in self._offsets if p not in seen]:
            del self._offsets[gone]
            rotated = True
        return rows, rotated

    # -- maintenance -------------------------------------------------------------------------
    def compact(self, kind: str, *, min_parts: int = 16, max_rows: int = 1_000_000) -> int:
        """Merge the small parts of one partition into one; returns how many parts were merged.

        See :func:`~.compaction.compact_partition`.
        """
        return compact_partition(self, kind, min_parts=min_parts, max_rows=max_rows)

    def unreadable_parts(self, *, full: bool = False) -> list[str]:
        """Paths of parts whose footer or schema cannot be read (truncated, garbage, foreign).

        With ``full`` every part is read whole (its pages too), and any part a read of this
        process had to skip is included.
        """
        bad = []
        for part in self.list_parts():
            try:
                with self.fs.open_input_file(part.path) as f:
                    pf = pq.ParquetFile(f)
                    if schema_problem(pf.schema_arrow, self.spec) is not None:
                        bad.append(part.path)
                    elif full:
                        conform(pf.read(), self.spec)
            except FileNotFoundError:
                continue
            except (OSError, ValueError, pa.ArrowException):
                bad.append(part.path)
        if full:
            bad.extend(p for p in self._damaged if p.endswith(PART_SUFFIX) and p not in bad and os.path.exists(p))
        return bad

    def partition_kinds(self) -> list[str]:
        """The kinds that have a partition directory in this table."""
        try:
            names = os.listdir(self.dir)
        except FileNotFoundError:
            return []
        return sorted(k for k in (self._kind_of(os.path.join(self.dir, n)) for n in names) if k is not None)


def _cannot_write(table: str, root: str, exc: OSError) -> str:
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return (
            f"could not record to {table}: the store at {root!r} is read-only ({exc.strerror}); "
            "open a store you can write (connect(root=...))"
        )
    return f"could not record to {table}: {exc.strerror or exc}; free some disk space and retry"


def rows_since(table: pa.Table, since_us: int) -> pa.Table:
    """The rows of ``table`` with ``ts >= since_us`` (its ``ts`` a timestamp in microseconds)."""
    if not table.num_rows or "ts" not in table.column_names:
        return table
    keep = as_micros(table.column("ts")).to_numpy() >= since_us
    return table if bool(keep.all()) else table.filter(pa.array(keep))


__all__ = [
    "ARTIFACTS",
    "EVENTS",
    "OPS",
    "Part",
    "Row",
    "Table",
    "TableSpec",
    "encode_kind",
]
