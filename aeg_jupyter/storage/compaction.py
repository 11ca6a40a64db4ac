"""Compaction: merging a partition's small Parquet parts into one, without blocking writers.

No reader, ours or an external one (DuckDB over ``tables/<table>/*/*.parquet``), ever sees the
merged part beside the parts it replaces, even if the process is killed half-way: the new
partition directory (hard links to the parts that stay, plus the merged part) is built in this
writer's temp directory and swapped with the live one in one ``renameat2(RENAME_EXCHANGE)``;
the old directory, now in the temp directory, is removed after (or by recovery, after a kill).
Writers place parts under a shared lock on ``tables/<table>/.swap.lock`` and the swap takes it
exclusively, so no part lands in the old directory between the links and the swap. Where the
system cannot swap directories, the merged part is placed before the old parts are deleted and
our readers de-duplicate rows by id in the moment between.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Iterator
from typing import Protocol

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from .fsops import exchange_dirs, file_lock, fsync_path, make_dirs, remove_tree, try_lock
from .layout import Layout, Part, PartName
from .schemas import conform, schema_problem


class _Spec(Protocol):
    name: str
    schema: pa.Schema
    id_field: str
    ts_field: str


class PartTable(Protocol):
    """What compaction uses of a table (:class:`~.tables.Table` is one)."""

    dir: str
    fs: pafs.FileSystem
    layout: Layout
    spec: _Spec
    writer: str

    def list_parts(self, kinds: Iterable[str] | None = None) -> list[Part]: ...

    def write_part_file(self, table: pa.Table | Iterable[pa.Table], final: str) -> None: ...

    def row_groups(self, part: Part) -> Iterator[pa.Table]: ...


def compact_partition(table: PartTable, kind: str, *, min_parts: int = 16, max_rows: int = 1_000_000) -> int:
    """Merge the small parts of one partition into one; returns how many parts were merged.

    Runs under a lock file so two processes never compact the same table at once.
    """
    make_dirs(table.dir)
    fd = try_lock(os.path.join(table.dir, ".compact.lock"))
    if fd is None:
        return 0  # another process is compacting this table
    try:
        parts = [p for p in table.list_parts([kind])]
        small: list[Part] = []
        total = 0
        for p in sorted(parts, key=lambda p: p.name.max_ts):
            n = _part_rows(table.fs, p.path, table.spec)
            if n is None or n >= max_rows:  # unreadable or foreign parts stay for `verify --repair`
                continue
            if total + n > max_rows:
                break
            small.append(p)
            total += n
        if len(small) < min_parts:
            return 0
        max_ts = max(p.name.max_ts for p in small)
        seq = int.from_bytes(os.urandom(3), "big") % 1_000_000
        pdir = table.layout.partition_dir(table.spec.name, kind)
        name = str(PartName(max_ts, "compact" + table.writer, seq))
        staging = os.path.join(table.layout.writer_tmp_dir(table.writer), f"swap-{os.urandom(6).hex()}")
        make_dirs(staging)  # 0755 whatever the umask: it becomes the partition folder
        try:
            _merge(table, small, os.path.join(staging, name))
            with file_lock(os.path.join(table.dir, SWAP_LOCK), shared=False):
                if _swap_in(table, pdir, staging, small):
                    return len(small)
                os.replace(os.path.join(staging, name), os.path.join(pdir, name))
            for p in small:
                try:
                    table.fs.delete_file(p.path)
                except FileNotFoundError:
                    pass
            return len(small)
        finally:
            remove_tree(staging)
    finally:
        os.close(fd)


SWAP_LOCK = ".swap.lock"  # in tables/<table>/: shared while a part is placed, exclusive for a swap


def _swap_in(table: PartTable, pdir: str, staging: str, replaced: list[Part]) -> bool:
    """Make ``staging`` (holding the merged part) the partition ``pdir`` minus ``replaced``, in one step.

    The caller holds the swap lock exclusively. Returns False (``staging`` keeps only the merged
    part) where directories cannot be exchanged.
    """
    gone = {os.path.basename(p.path) for p in replaced}
    with os.scandir(pdir) as entries:
        keep = [e for e in entries if e.name not in gone]
    if any(not e.is_file(follow_symlinks=False) for e in keep):
        return False  # something that is not ours (a folder, a link): never swapped away
    linked = []
    for e in keep:
        os.link(e.path, os.path.join(staging, e.name))
        linked.append(e.name)
    if getattr(table, "fsync", False):
        fsync_path(staging)
    if exchange_dirs(staging, pdir):
        if getattr(table, "fsync", False):
            fsync_path(os.path.dirname(pdir))
        return True
    for n in linked:
        os.unlink(os.path.join(staging, n))
    return False


def _merge(table: PartTable, small: list[Part], final: str) -> None:
    """Write the rows of ``small`` as one sorted part at ``final`` (each id once)."""
    ranges = [_ts_range(table.fs, p.path, table.spec.ts_field) for p in small]
    if _disjoint(ranges):
        # The common case (parts of one writer, in time order): every part is sorted and
        # their time ranges do not overlap, so the merge is the parts one after another,
        # streamed one row group at a time (a merge in memory would hold every row at once).
        order = sorted(range(len(small)), key=lambda i: ranges[i][0])  # type: ignore[index]
        table.write_part_file((t for i in order for t in table.row_groups(small[i])), final)
    else:
        tables = []
        for p in small:
            with table.fs.open_input_file(p.path) as f:
                tables.append(conform(pq.ParquetFile(f).read(), table.spec))
        merged = pa.concat_tables(tables).combine_chunks()
        ids = merged.column(table.spec.id_field).to_pylist()
        keep, seen = [], set()
        for i, v in enumerate(ids):
            if v not in seen:
                seen.add(v)
                keep.append(i)
        if len(keep) != len(ids):
            merged = merged.take(pa.array(keep))
        merged = merged.sort_by([(table.spec.ts_field, "ascending"), (table.spec.id_field, "ascending")])
        table.write_part_file(merged.cast(table.spec.schema), final)


def _ts_range(fs: pafs.FileSystem, path: str, ts_field: str) -> tuple[int, int] | None:
    """(min, max) of a part's time column from its footer statistics; ``None`` if unknown."""
    try:
        with fs.open_input_file(path) as f:
            meta = pq.ParquetFile(f).metadata
        col = meta.schema.names.index(ts_field)
    except (OSError, ValueError, pa.ArrowException):
        return None
    lo = hi = None
    for gi in range(meta.num_row_groups):
        st = meta.row_group(gi).column(col).statistics
        if st is None or not st.has_min_max:
            return None
        lo = st.min_raw if lo is None else min(lo, st.min_raw)
        hi = st.max_raw if hi is None else max(hi, st.max_raw)
    return None if lo is None or hi is None else (int(lo), int(hi))


def _disjoint(ranges: list[tuple[int, int] | None]) -> bool:
    """True when every range is known and, sorted by start, each starts after the previous ends."""
    if any(r is None for r in ranges):
        return False
    known = sorted(r for r in ranges if r is not None)
    return all(b[0] > a[1] for a, b in itertools.pairwise(known))


def _part_rows(fs: pafs.FileSystem, path: str, spec: _Spec) -> int | None:
    """Rows of a part, from its footer; ``None`` if it is unreadable or its schema does not fit."""
    try:
        with fs.open_input_file(path) as f:
            pf = pq.ParquetFile(f)
            if schema_problem(pf.schema_arrow, spec) is not None:  # type: ignore[arg-type]
                return None
            return pf.metadata.num_rows
    except (OSError, pa.ArrowException):
        return None
