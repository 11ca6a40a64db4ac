"""The columnar catalog of a format-2 store: queries answered from Arrow columns and numpy arrays.

Opening reads the artifacts table's snapshot (its log and the list of its files) and folds the ops
table (pin / unpin / delete); no artifact column is read until a query needs it, and then only that
column, only for the kinds asked about, once (later queries reuse it). ``best`` is an argmax over a
metric's values, ``search`` a boolean mask over labels and scope columns; an ``Artifact`` is built
only for the rows a call returns, from the row groups that hold them. Rows not yet committed (spools)
are few and kept as ``Artifact`` objects beside the columns. See ``docs/format2.md``.

Same answers as format 1's :class:`~.search.ArtifactSearch`: deleted artifacts never answer, a
missing or NaN metric never wins, ties go to the newest, labels match by value and type (``True``
is not ``1``; ``1`` matches ``1.0``).
"""

from __future__ import annotations

import functools
import json
import math
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa

from ..base.errors import AnswerExpiredError, InvalidInputError
from ..base.models import Artifact, ScopeFilter
from ..base.times import datetime_to_us
from ..base.validate import Mode, check_kind, check_labels, check_limit, check_mode
from ..storage.arrays import bool_scalar, float_scalar, int64_array, numpy_view, string_array, string_scalar
from ..storage.delta import DataFile, DeltaLakeTable
from ..storage.delta_table import UriIndex
from ..storage.schemas import Row
from ..storage.schemas2 import (
    ARTIFACT_COLUMNS,
    FLAT_NAME,
    METRIC_COLUMN,
    artifact_rows_to_arrow,
    artifacts_from_arrow,
    label_column,
    parse_label_column,
)


class _Compute:
    """``pyarrow.compute``, imported on first use: its import builds a wrapper per kernel (80-130 ms CPU
    here), and ``%load_ext`` (an open and a count) needs none of it. Methods of arrays that call it
    (``cast``) are kept off the open path too (``view`` for timestamps)."""

    def __getattr__(self, name: str) -> Any:
        import pyarrow.compute

        globals()["pc"] = pyarrow.compute
        return getattr(pyarrow.compute, name)


pc: Any = _Compute()
_MISSING = object()
_BUILT_MAX = 10_000  # Artifacts kept per kind for warm calls
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


_F = TypeVar("_F", bound=Callable[..., Any])


def _retried(method: _F) -> _F:
    """A query that reads files: when one of them is gone (a vacuum in another process removed it
    after a compaction we had not seen yet), take the newest snapshot and ask once more."""

    @functools.wraps(method)
    def run(self: ColumnarCatalog, *args: Any, **kw: Any) -> Any:
        try:
            return method(self, *args, **kw)
        except FileNotFoundError:
            with self._lock:
                self._version = -1  # the file list is read again, whatever the version says
                self.refresh()
            return method(self, *args, **kw)

    return run  # type: ignore[return-value]


@dataclass
class _Segment:
    """The committed rows of one kind: its files, their row offsets, and the columns read so far."""

    files: list[DataFile]
    starts: np.ndarray  # starts[i]: the first row of files[i]; starts[-1]: the row count
    columns: dict[str, pa.ChunkedArray] = field(default_factory=dict)
    arrays: dict[Any, np.ndarray] = field(default_factory=dict)  # derived numpy arrays, by key
    built: dict[int, Artifact] = field(default_factory=dict)  # Artifacts returned before, by row (warm calls)

    @property
    def rows(self) -> int:
        return int(self.starts[-1])


class _PendingRows(dict[str, Artifact]):
    """The pending rows by id (a ``dict``), with an index by kind and by (kind, label, value) kept as
    rows come and go, so a query over them is proportional to the rows it could match (the first
    search after a save walked every one, ~600 us with a few thousand). Both indexes keep arrival order."""

    def __init__(self) -> None:
        super().__init__()
        self.by_kind: dict[str, dict[str, Artifact]] = {}
        self.by_label: dict[tuple[str, str, bool, Any], dict[str, Artifact]] = {}

    def __setitem__(self, aid: str, art: Artifact) -> None:
        if aid in self:
            del self[aid]
        super().__setitem__(aid, art)
        self.by_kind.setdefault(art.kind, {})[aid] = art
        for k, v in art.labels.items():
            key = _pending_key(art.kind, k, v)
            if key is not None:
                self.by_label.setdefault(key, {})[aid] = art

    def __delitem__(self, aid: str) -> None:
        art = self[aid]
        super().__delitem__(aid)
        same = self.by_kind[art.kind]
        del same[aid]
        if not same:
            del self.by_kind[art.kind]
        for k, v in art.labels.items():
            key = _pending_key(art.kind, k, v)
            posting = self.by_label.get(key) if key is not None else None
            if posting is not None:
                posting.pop(aid, None)
                if not posting:
                    del self.by_label[key]  # type: ignore[arg-type]

    def candidates(self, kind: str | None, items: list[tuple[str, Any]]) -> Any:
        """Rows that may match ``kind`` and labels ``items`` (a superset, in arrival order)."""
        if kind is None:
            return self.values()
        pool = self.by_kind.get(kind)
        if pool is None:
            return ()
        for k, v in items:
            key = _pending_key(kind, k, v)
            if key is None:
                continue
            posting = self.by_label.get(key)
            if posting is None:
                return ()
            if len(posting) < len(pool):
                pool = posting
        return pool.values()


def _pending_key(kind: str, key: str, value: Any) -> tuple[str, str, bool, Any] | None:
    """A label's key in :class:`_PendingRows`' index (``1`` and ``1.0`` share one, ``True`` does not);
    None for a value that is not hashable (a list: such rows are found by the kind's index)."""
    try:
        hash(value)
    except TypeError:
        return None
    return (kind, key, type(value) is bool, value)


class ColumnarCatalog:
    """The live artifacts of a format-2 store as columns.

    Args:
        artifacts: the artifacts table.
        ops: the ops table (pin / unpin / delete), or None for a store without one yet.

    Example:
        >>> cat = ColumnarCatalog(artifacts_table, ops_table)                      # doctest: +SKIP
        >>> cat.best(kind="checkpoint", metric="val_acc", filters={"exp": "A"})    # doctest: +SKIP
        Artifact(artifact_id='01J...', ...)
    """

    def __init__(
        self,
        artifacts: DeltaLakeTable,
        ops: DeltaLakeTable | None = None,
        *,
        uri_index: Callable[[DataFile], UriIndex] | None = None,
    ) -> None:
        self.table = artifacts
        self.ops = ops
        # a data file's uri -> rows index (``by_uri``); the store passes its artifacts table's, which
        # inline reads share (one index per file in the process)
        self._uri_index = uri_index or self._own_uri_index
        self._uri_indexes: dict[str, UriIndex] = {}
        self._lock = threading.RLock()
        self._segments: dict[str, _Segment] = {}
        self._pending = _PendingRows()  # uncommitted rows (spools), by id, indexed by kind and label
        self._state: dict[str, tuple[int, str, str]] = {}  # artifact id -> (ts, op_id, op) of its last op
        self._deleted: set[str] = set()
        self._table_state: dict[str, tuple[int, str, str]] = {}  # the ops table's fold alone
        self._pending_ops: dict[str, tuple[int, str, str, str]] = {}  # uncommitted ops: op_id -> (ts, op_id, op, id)
        self._version = -1
        self._ops_version = -1
        self.refresh()

    # -- following the tables ----------------------------------------------------------------
    def refresh(self) -> bool:
        """Take the newest snapshot of both tables; returns True if anything changed.

        After appends, the columns read so far are extended with the new files only; a kind whose files
        were rewritten (a compaction, a fold) drops them (read again by the next query that needs them).
        """
        with self._lock:
            first = self._version < 0 and self._ops_version < 0
            # a table object this process loaded before (its flusher's commits) may be behind the newest
            # version: only one loaded here and now is known to be at it (no second look at the log)
            stale = self.table.loaded
            stale_ops = self.ops is not None and self.ops.loaded
            if first and self.ops is not None and _exists(self.ops) and _exists(self.table):
                # the two logs load at once (delta-rs releases the GIL): ~20 ms of a cold open
                opener = threading.Thread(target=self.ops.create, name="aeg-open-ops", daemon=True)
                opener.start()
                self.table.create()
                opener.join()
            changed = self._refresh_ops(stale=stale_ops)
            if not _exists(self.table):
                return changed
            version = self.table.snapshot(refresh=not first or stale).version()
            if version == self._version:
                return changed
            self._version = version
            by_kind: dict[str, list[DataFile]] = {}
            for f in self.table.files(refresh=False):
                by_kind.setdefault(f.kind, []).append(f)
            segments, fresh = {}, {}
            for kind, files in by_kind.items():
                old = self._segments.get(kind)
                segments[kind] = self._segment(old, files)
                known = {f.path for f in old.files} if old is not None and segments[kind] is not old else set()
                if old is None or segments[kind] is not old:
                    fresh[kind] = [f for f in segments[kind].files if f.path not in known]
            self._segments = segments
            for aid in self._committed_pending(fresh=fresh):
                del self._pending[aid]
            return True

    def _segment(self, old: _Segment | None, files: list[DataFile]) -> _Segment:
        """The segment of ``files``; when they are ``old``'s files and new ones (appends), the columns
        read so far are kept and only the new files are read for them."""
        paths = {f.path for f in files}
        if old is not None and all(f.path in paths for f in old.files):
            known = {f.path for f in old.files}
            added = [f for f in files if f.path not in known]
            if not added:
                return old
            files = old.files + added
        else:
            old, added = None, files
        counts = np.fromiter((f.rows for f in files), dtype=np.int64, count=len(files))
        seg = _Segment(files, np.concatenate(([0], np.cumsum(counts))))
        if old is not None:
            for key, col in old.columns.items():
                name, _, leaves = key.partition(":")
                new = [c for f in added for c in self._read(f, name, tuple(leaves.split(",")) if leaves else ()).chunks]
                seg.columns[key] = pa.chunked_array(list(col.chunks) + new, type=col.type)
        return seg

    def _committed_pending(
        self, only: set[str] | None = None, fresh: dict[str, list[DataFile]] | None = None
    ) -> list[str]:
        """Ids of pending rows (of ``only``, if given) that the snapshot now holds (one ``is_in`` per kind).

        ``fresh``: a refresh's files new since the last one, by kind. A pending row was not in the
        snapshot when it became pending (a tailed row is checked then, against the whole kind), so
        only those files can hold it: their ids are read, not the kind's whole id column (at 1M rows
        ~0.1 s and 40 MB, after every commit of this writer's flusher otherwise).
        """
        by_kind: dict[str, list[str]] = {}
        for aid, art in self._pending.items():
            if art.kind in self._segments and (only is None or aid in only) and (fresh is None or art.kind in fresh):
                by_kind.setdefault(art.kind, []).append(aid)
        done: list[str] = []
        for kind, ids in by_kind.items():
            seg = self._segments[kind]
            if fresh is None or "artifact_id" in seg.columns:
                chunks = self._column(kind, "artifact_id").chunks
            else:
                chunks = [c for f in fresh[kind] for c in self._read(f, "artifact_id", ()).chunks]
            if not chunks:
                continue
            found = pc.is_in(string_array(ids), value_set=pa.concat_arrays(chunks))
            done.extend(i for i, hit in zip(ids, _bools(found).tolist(), strict=True) if hit)
        return done

    def _refresh_ops(self, *, stale: bool = True) -> bool:
        if self.ops is None or not _exists(self.ops):
            return False
        version = self.ops.snapshot(refresh=self._ops_version >= 0 or stale).version()
        if version == self._ops_version:
            return False
        self._ops_version = version
        # a damaged ops file is left out with a StoreWarning (the store still opens, so that `aeg verify
        # --repair` can run); its pins and deletes are unknown until then, and gc and delete refuse
        ops = self.ops.read(["op_id", "ts", "kind", "artifact_id"], skip_damaged=True)
        ts = [t for c in ops.column("ts").chunks for t in c.view(pa.int64()).to_pylist()]  # (no cast: see _Compute)
        state: dict[str, tuple[int, str, str]] = {}
        committed: set[str] = set()
        for t, oid, op, aid in zip(
            ts, *(ops.column(c).to_pylist() for c in ("op_id", "kind", "artifact_id")), strict=True
        ):
            committed.add(oid)
            prev = state.get(aid)
            if prev is None or (t, oid) > prev[:2]:
                state[aid] = (t, oid, op)
        self._table_state = state
        for oid in [o for o in self._pending_ops if o in committed]:
            del self._pending_ops[oid]
        self._fold_ops()
        return True

    def _fold_ops(self) -> None:
        """``_state`` and ``_deleted``: the ops table's fold with the pending ops on top (the last op wins)."""
        state = dict(self._table_state)
        for t, oid, op, aid in self._pending_ops.values():
            prev = state.get(aid)
            if prev is None or (t, oid) > prev[:2]:
                state[aid] = (t, oid, op)
        deleted = {aid for aid, st in state.items() if st[2] == "delete"}
        self._state = state
        if deleted != self._deleted:
            self._deleted = deleted
            for seg in self._segments.values():  # what depends on deletes
                for key in [k for k in seg.arrays if k == "live" or (isinstance(k, tuple) and k[0] == "best")]:
                    del seg.arrays[key]

    def add_ops(self, rows: list[Row]) -> None:
        """Rows of the ops table not committed yet (this writer's pins and deletes, other writers' spools)."""
        if not rows:
            return
        with self._lock:
            for r in rows:
                self._pending_ops[r["op_id"]] = (_as_us(r["ts"]), r["op_id"], r["kind"], r["artifact_id"])
            self._fold_ops()

    def add_rows(self, rows: list[Row]) -> None:
        """Rows of the artifacts table not committed yet (this writer's and other writers' spools).

        A row the snapshot holds already (its writer committed it and had not removed its spool yet
        when we read it) is left out.
        """
        if not rows:
            return
        with self._lock:
            new = [a for a in artifacts_from_arrow(artifact_rows_to_arrow(rows)) if a.artifact_id not in self._pending]
            for art in new:
                self._pending[art.artifact_id] = art
            for aid in self._committed_pending({a.artifact_id for a in new}):
                del self._pending[aid]

    def add_artifact(self, art: Artifact) -> None:
        """This process's new save (its row is in this writer's spool until a flush commits it)."""
        with self._lock:
            self._pending[art.artifact_id] = art

    def newest_micros(self) -> int | None:
        """An upper bound of the newest ``created_at`` committed (file statistics, no column read)."""
        with self._lock:
            stamps = [f.max_ts for seg in self._segments.values() for f in seg.files if f.max_ts is not None]
            return max(stamps) if stamps else None

    # -- columns -----------------------------------------------------------------------------
    def _column(self, kind: str, name: str, leaves: tuple[str, ...] = ()) -> pa.ChunkedArray:
        """Column ``name`` of ``kind`` (only its nested ``leaves``, if given), read on first use."""
        seg = self._segments[kind]
        key = name if not leaves else f"{name}:{','.join(leaves)}"
        col = seg.columns.get(key)
        if col is None:
            chunks = [self._read(f, name, leaves) for f in seg.files]
            field_type = chunks[0].type if chunks else self.table.schema.field(name).type
            col = pa.chunked_array([c for ch in chunks for c in ch.chunks], type=field_type)
            seg.columns[key] = col
        return col

    def _prefetch(self, kind: str, names: list[str]) -> None:
        """Read the plain columns ``names`` of ``kind`` not read yet, all of a file's at once (one open
        per file, and pyarrow decodes the columns in parallel), before a query asks for them one by one."""
        seg = self._segments[kind]
        want = list(dict.fromkeys(n for n in names if n not in seg.columns))
        if len(want) < 2:
            return  # one column: _column reads it as well
        per_file: list[dict[str, pa.ChunkedArray]] = []
        for f in seg.files:
            present = [n for n in want if n in self.table.file_columns(f)]
            got: dict[str, pa.ChunkedArray] = {}
            if present:
                table = self.table.read_file(f, present, dictionary=[n for n in present if _dictionary_column(n)])
                got = {
                    n: _as_dictionary(table.column(n)) if _dictionary_column(n) else table.column(n) for n in present
                }
            for n in want:
                if n not in got:
                    got[n] = self._read(f, n, ())  # a file without the column: from the map (or nulls)
            per_file.append(got)
        for n in want:
            chunks = [c for got in per_file for c in got[n].chunks]
            if chunks:
                seg.columns[n] = pa.chunked_array(chunks, type=chunks[0].type)

    def _query_columns(
        self, items: list[tuple[str, Any]], where: ScopeFilter, metric: str | None, *, created: bool = True
    ) -> list[str]:
        """The plain columns a query over labels ``items``, scope ``where`` and ``metric`` reads
        (``created=False``: not ``created_at``, which ``best`` reads only for its tied rows)."""
        names = ["created_at"] if created else []
        if metric is not None and FLAT_NAME.match(metric):
            names.append(METRIC_COLUMN + metric)
        for key, want in items:
            if not FLAT_NAME.match(key) or (type(want) is int and not _INT64_MIN <= want <= _INT64_MAX):
                continue
            if isinstance(want, bool):
                names.append(label_column(key, "b"))
            elif isinstance(want, str):
                names.append(label_column(key, "s"))
            else:
                names.extend((label_column(key, "i"), label_column(key, "f")))
        names.extend(n for n in ("run_id", "graph_id", "node_id") if getattr(where, n) is not None)
        if self._deleted:
            names.append("artifact_id")
        return names

    def _read(self, f: DataFile, name: str, leaves: tuple[str, ...]) -> pa.ChunkedArray:
        if leaves:
            return self.table.read_leaves(f, name, leaves)
        if name.startswith(METRIC_COLUMN) and name not in self.table.file_columns(f):
            return _metric_from_map(self.table.read_file(f, ["metrics"]).column(0), name[len(METRIC_COLUMN) :])
        flat = parse_label_column(name)
        if flat is not None and name not in self.table.file_columns(f):
            # a file without the column: written before the key (of this type) first came, or holding
            # no row with it (delta-rs writes only a batch's own columns): the map answers
            key, field = flat
            labels = self.table.read_leaves(f, "labels", ("key_value.key", f"key_value.value.{field}"))
            col = _label_from_map(labels, key, field)
            return _as_dictionary(col) if _dictionary_column(name) else col
        if _dictionary_column(name):
            return _as_dictionary(self.table.read_file(f, [name], dictionary=[name]).column(0))
        return self.table.read_file(f, [name]).column(0)

    def _micros(self, kind: str) -> np.ndarray:
        seg = self._segments[kind]
        arr = seg.arrays.get("created_at")
        if arr is None:
            col = self._column(kind, "created_at")
            arr = np.concatenate([numpy_view(c) for c in col.chunks]) if col.num_chunks else np.empty(0, np.int64)
            seg.arrays["created_at"] = arr
        return arr

    def _groups(self, kind: str) -> np.ndarray | None:
        """The row groups of ``kind``'s files from their footers: one row (file index, group index, first
        row in the segment, rows, min and max ``created_at`` in us) each; None when a group has no
        ``created_at`` statistics (then queries read the whole column). Kept per segment."""
        seg = self._segments[kind]
        if "groups" in seg.arrays:
            return seg.arrays["groups"]
        out: list[tuple[int, int, int, int, int, int]] | None = []
        for fi, f in enumerate(seg.files):
            meta = self.table.footer(f)
            j = next((j for j in range(meta.num_columns) if meta.schema.column(j).path == "created_at"), None)
            if j is None or "timeUnit=microseconds" not in str(meta.schema.column(j).logical_type):
                out = None
                break
            start = int(seg.starts[fi])
            for g in range(meta.num_row_groups):
                rg = meta.row_group(g)
                st = rg.column(j).statistics
                if st is None or not st.has_min_max:
                    out = None
                    break
                out.append((fi, g, start, rg.num_rows, int(st.min_raw), int(st.max_raw)))
                start += rg.num_rows
            if out is None or start != int(seg.starts[fi + 1]):
                out = None
                break
        arr = np.array(out, dtype=np.int64).reshape(-1, 6) if out is not None else None
        seg.arrays["groups"] = arr  # type: ignore[assignment]
        return arr

    def _group_micros(self, kind: str, picks: np.ndarray) -> list[np.ndarray]:
        """``created_at`` (us) of the row groups ``picks`` (rows of :meth:`_groups`), read at once per
        file and kept per group."""
        seg = self._segments[kind]
        missing: dict[int, list[int]] = {}
        for fi, g in picks[:, :2].tolist():
            if ("group_ts", fi, g) not in seg.arrays:
                missing.setdefault(fi, []).append(g)
        for fi, gs in missing.items():
            col = self.table.read_groups(seg.files[fi], gs, ["created_at"]).column(0)
            ts = np.concatenate([numpy_view(c) for c in col.chunks]) if col.num_chunks else np.empty(0, np.int64)
            meta = self.table.footer(seg.files[fi])
            at = 0
            for g in gs:
                n = meta.row_group(g).num_rows
                seg.arrays[("group_ts", fi, g)] = ts[at : at + n]
                at += n
        return [seg.arrays[("group_ts", fi, g)] for fi, g in picks[:, :2].tolist()]

    def _micros_at(self, kind: str, rows: np.ndarray) -> np.ndarray:
        """``created_at`` (us) of a few rows of ``kind``: from the row groups holding them when the
        whole column was not read (``best`` needs it for its tied rows only)."""
        seg = self._segments[kind]
        groups = None if "created_at" in seg.arrays or len(rows) > 256 else self._groups(kind)
        if groups is None:
            return self._micros(kind)[rows]
        at = np.searchsorted(groups[:, 2], rows, side="right") - 1
        picks = _distinct(at)
        if len(picks) > 16:
            return self._micros(kind)[rows]
        parts = dict(zip(picks.tolist(), self._group_micros(kind, groups[picks]), strict=True))
        return np.array([parts[a][r - groups[a, 2]] for a, r in zip(at.tolist(), rows.tolist(), strict=True)], np.int64)

    def _newest(self, kind: str, mask: np.ndarray | None, limit: int) -> tuple[np.ndarray, np.ndarray] | None:
        """The ``limit`` newest rows of ``kind`` that ``mask`` keeps, with their ``created_at``, newest
        first (ties: the later row first, as :meth:`_order`), reading ``created_at`` only of the row
        groups that can hold them: groups in descending order of their max statistic, until the next
        group's max is below the ``limit``-th newest found. None: no statistics (read the column)."""
        groups = self._groups(kind)
        if groups is None or limit <= 0:
            return None
        todo = groups[np.argsort(-groups[:, 5], kind="stable")]
        rows_out: list[np.ndarray] = []
        ts_out: list[np.ndarray] = []
        found, kth, at, step = 0, None, 0, 1
        while at < len(todo):
            if found >= limit and kth is not None and todo[at, 5] < kth:
                break  # every row left is older than the limit-th newest found
            batch = todo[at : at + step]
            for (_fi, _g, start, n, _lo, _hi), ts in zip(batch.tolist(), self._group_micros(kind, batch), strict=True):
                local = np.arange(n) if mask is None else np.flatnonzero(mask[start : start + n])
                if len(local):
                    rows_out.append(local + start)
                    ts_out.append(ts[local])
                    found += len(local)
            if found >= limit:
                all_ts = np.concatenate(ts_out)
                kth = int(np.partition(all_ts, len(all_ts) - limit)[len(all_ts) - limit])
            at += len(batch)
            step *= 4
        if not rows_out:
            return np.empty(0, np.int64), np.empty(0, np.int64)
        rows, ts = np.concatenate(rows_out), np.concatenate(ts_out)
        pick = np.lexsort((-rows, -ts))[:limit]
        return rows[pick], ts[pick]

    def _entries(self, kind: str, name: str, leaves: tuple[str, ...] = ()) -> tuple[np.ndarray, pa.Array, pa.Array]:
        """A map column of ``kind`` flattened: (row of each entry, keys, items); see :func:`_flatten`."""
        seg = self._segments[kind]
        cached = seg.arrays.get(("entries", name, leaves))
        if cached is None:
            col = self._column(kind, name, leaves)
            m = pa.concat_arrays(col.chunks) if col.num_chunks != 1 else col.chunk(0)
            cached = seg.arrays[("entries", name, leaves)] = _flatten(m)  # type: ignore[assignment]
        return cached  # type: ignore[return-value]

    def _metric(self, kind: str, metric: str) -> np.ndarray:
        """``metric`` of every row of ``kind`` as float64 (NaN where missing).

        Read from the flat ``metric.<name>`` column (one double column); a file written before that
        column existed, or a name with no flat column, is read from the ``metrics`` map instead.
        """
        seg = self._segments[kind]
        key = ("metric", metric)
        arr = seg.arrays.get(key)
        if arr is None:
            if FLAT_NAME.match(metric):
                col = self._column(kind, METRIC_COLUMN + metric)
                parts = [_floats(c) for c in col.chunks]
                arr = np.concatenate(parts) if parts else np.empty(0)
            else:
                rows, keys, items = self._entries(kind, "metrics")
                arr = _scatter_first(rows, keys, items, metric, seg.rows)
            seg.arrays[key] = arr
        return arr

    def _label_mask(self, kind: str, key: str, want: Any) -> np.ndarray:
        """Rows of ``kind`` whose label ``key`` equals ``want`` (type-exact as format 1's catalog)."""
        seg = self._segments[kind]
        cache_key = ("label", key, type(want) is bool, want)
        arr = seg.arrays.get(cache_key)
        big = type(want) is int and not _INT64_MIN <= want <= _INT64_MAX  # kept as JSON text (``j``)
        if arr is None and FLAT_NAME.match(key) and not big:
            # the flat columns label.<key>.<type>: one plain column per type the value could match
            if isinstance(want, bool):
                arr = _bools(pc.equal(self._column(kind, label_column(key, "b")), bool_scalar(want)))
            elif isinstance(want, str):
                arr = _string_equal(self._column(kind, label_column(key, "s")), want)
            else:  # a number: 1 matches 1.0, as in format 1
                num = float_scalar(float(want))
                ints = self._column(kind, label_column(key, "i")).cast(pa.float64(), safe=False)
                arr = _bools(pc.equal(ints, num)) | _bools(pc.equal(self._column(kind, label_column(key, "f")), num))
            seg.arrays[cache_key] = arr
        if arr is None:
            # only the value field(s) of the label's type are read (a label query reads 2 of 6 leaves)
            fields = ("b",) if isinstance(want, bool) else ("s",) if isinstance(want, str) else ("i", "f")
            rows, keys, items = self._entries(
                kind, "labels", ("key_value.key", *(f"key_value.value.{f}" for f in (("j",) if big else fields)))
            )
            if big:
                hit = pc.equal(pc.struct_field(items, "j"), string_scalar(json.dumps(want)))
            elif isinstance(want, bool):
                hit = pc.equal(pc.struct_field(items, "b"), bool_scalar(want))
            elif isinstance(want, str):
                hit = pc.equal(pc.struct_field(items, "s"), string_scalar(want))
            else:  # a number: 1 matches 1.0, as in format 1
                hit = pc.or_kleene(
                    pc.equal(pc.struct_field(items, "i").cast(pa.float64(), safe=False), float_scalar(float(want))),
                    pc.equal(pc.struct_field(items, "f"), float_scalar(float(want))),
                )
            entry = _bools(pc.equal(keys, string_scalar(key))) & _bools(hit)
            arr = np.zeros(seg.rows, bool)
            arr[rows[entry]] = True
            seg.arrays[cache_key] = arr
        return arr

    def _equal_mask(self, kind: str, name: str, want: str) -> np.ndarray:
        seg = self._segments[kind]
        key = ("eq", name, want)
        arr = seg.arrays.get(key)
        if arr is None:
            col = self._column(kind, name)
            arr = _bools(pc.equal(col, string_scalar(want)))
            seg.arrays[key] = arr
        return arr

    def _live(self, kind: str) -> np.ndarray | None:
        """Rows of ``kind`` not deleted (None: every row is live, no column was read)."""
        if not self._deleted:
            return None
        seg = self._segments[kind]
        arr = seg.arrays.get("live")
        if arr is None:
            ids = self._column(kind, "artifact_id")
            arr = ~_bools(pc.is_in(ids, string_array(sorted(self._deleted))))
            seg.arrays["live"] = arr
        return arr

    def _mask(self, kind: str, items: list[tuple[str, Any]], where: ScopeFilter) -> np.ndarray | None:
        mask: np.ndarray | None = self._live(kind)
        for key, want in items:
            m = self._label_mask(kind, key, want)
            mask = m if mask is None else mask & m
        for name in ("run_id", "graph_id", "node_id"):
            want = getattr(where, name)
            if want is not None:
                m = self._equal_mask(kind, name, want)
                mask = m if mask is None else mask & m
        return mask

    def _order(self, kind: str, metric: str | None, sign: float) -> np.ndarray:
        """Rows of ``kind`` best first by ``metric`` (rows lacking it left out), or newest first
        (``metric=None``); ties go to the newest. Kept for warm calls."""
        seg = self._segments[kind]
        key = ("order", metric, sign)
        order = seg.arrays.get(key)
        if order is None:
            created = self._micros(kind)
            if metric is None:
                if len(created) < 2 or bool(np.all(created[1:] >= created[:-1])):  # the usual case: rows in time order
                    order = np.arange(len(created) - 1, -1, -1, dtype=np.int64)
                else:  # ties: the later row first, as in the sorted case (and _newest)
                    order = np.lexsort((-np.arange(len(created)), -created))
            else:
                vals = self._metric(kind, metric) * sign
                rows = np.flatnonzero(~np.isnan(vals))
                order = rows[np.lexsort((-created[rows], -vals[rows]))]
            seg.arrays[key] = order
        return order

    # -- building the answers ----------------------------------------------------------------
    def _artifacts(
        self,
        kind: str,
        rows: list[int],
        seg: _Segment | None = None,
        states: dict[str, tuple[int, str, str]] | None = None,
    ) -> list[Artifact]:
        """``Artifact`` objects for rows of one kind's segment, in the order given, pins applied (``seg``,
        ``states``: an earlier segment of the kind and fold of the ops, which a :class:`SearchAnswer` holds)."""
        seg = self._segments[kind] if seg is None else seg
        got = {r: seg.built[r] for r in rows if r in seg.built}
        missing = [r for r in rows if r not in got]
        if missing:
            files = np.searchsorted(seg.starts, np.asarray(missing, dtype=np.int64), side="right") - 1
            by_file: dict[int, list[int]] = {}
            for r, fi in zip(missing, files.tolist(), strict=True):
                by_file.setdefault(fi, []).append(r)
            for fi, rs in by_file.items():
                local = [r - int(seg.starts[fi]) for r in rs]
                table = self.table.read_rows(seg.files[fi], local, ARTIFACT_COLUMNS)
                got.update(zip(rs, artifacts_from_arrow(table, kind), strict=True))
            # the warm cache is bounded: emptied when it would pass _BUILT_MAX (this answer is in `got`)
            if len(seg.built) + len(missing) > _BUILT_MAX:
                seg.built.clear()
            seg.built.update((r, got[r]) for r in missing)
        return [self._with_ops(got[r], states) for r in rows]

    def _with_ops(self, art: Artifact, states: dict[str, tuple[int, str, str]] | None = None) -> Artifact:
        """``art`` with its pin state as of the last op (of ``states``: an earlier fold, if given)."""
        state = (self._state if states is None else states).get(art.artifact_id)
        if state is not None and state[2] != "delete" and art.pinned != (state[2] == "pin"):
            return replace(art, pinned=state[2] == "pin")
        return art

    def _pending_matches(self, kind: str | None, items: list[tuple[str, Any]], where: ScopeFilter) -> list[Artifact]:
        """Pending rows matching a query, in the order they came: only those of the kind's (or of its
        rarest label's) index are looked at, not every row this writer has not committed yet."""
        out = []
        for a in self._pending.candidates(kind, items):
            if (
                (kind is None or a.kind == kind)
                and a.artifact_id not in self._deleted
                and where.matches(a)
                and all(_label_equal(a.labels.get(k, _MISSING), v) for k, v in items)
            ):
                out.append(self._with_ops(a))
        return out

    # -- queries -----------------------------------------------------------------------------
    @_retried
    def kinds(self) -> list[str]:
        """Kinds with at least one live (committed or pending) artifact."""
        with self._lock:
            return sorted(k for k in set(self._segments) | {a.kind for a in self._pending.values()} if self.count(k))

    @_retried
    def count(self, kind: str | None = None) -> int:
        """Live artifacts (of one kind, or of all)."""
        with self._lock:
            if kind is None:
                return len(self)
            n = 0
            if kind in self._segments:
                live = self._live(kind)
                n = self._segments[kind].rows if live is None else int(live.sum())
            return n + sum(1 for aid in self._pending.by_kind.get(kind, ()) if aid not in self._deleted)

    @_retried
    def metric_names(self, kind: str | None = None) -> list[str]:
        """Metric names used by live artifacts (of one kind, or of all): the keys of the ``metrics`` map."""
        with self._lock:
            names: set[str] = set()
            for k in [kind] if kind is not None else list(self._segments):
                if k not in self._segments:
                    continue
                rows, keys, _items = self._entries(k, "metrics")
                live = self._live(k)
                if live is not None:
                    keys = pc.filter(keys, pa.array(live[rows]))
                names.update(pc.unique(keys).to_pylist())
            names.update(
                m
                for a in self._pending.values()
                if (kind is None or a.kind == kind) and a.artifact_id not in self._deleted
                for m in a.metrics
            )
            return sorted(names)

    @_retried
    def find(
        self,
        *,
        ids: list[str] | None = None,
        prefix: str | None = None,
        suffix: str | None = None,
        deleted: bool = False,
    ) -> list[Artifact]:
        """Artifacts by exact ids, an id prefix or an id suffix (live ones; ``deleted=True``: deleted ones),
        each built from its row. Reads the ``artifact_id`` column of every kind (kept for later lookups)."""
        with self._lock:

            def hit(aid: str) -> bool:
                if (aid in self._deleted) != deleted:
                    return False
                if ids is not None:
                    return aid in want
                if prefix is not None:
                    return aid.startswith(prefix)
                return suffix is not None and aid.endswith(suffix)

            want = set(ids or ())
            out = [self._with_ops(a) for aid, a in self._pending.items() if hit(aid)]
            for kind in sorted(self._segments):
                col = self._column(kind, "artifact_id")
                if ids is not None:
                    if not want:
                        continue
                    mask = _bools(pc.is_in(col, string_array(sorted(want))))
                elif prefix is not None:
                    mask = _bools(pc.starts_with(col, pattern=prefix))
                elif suffix is not None:
                    mask = _bools(pc.ends_with(col, pattern=suffix))
                else:
                    continue
                live = self._live(kind)
                if live is not None:
                    mask &= ~live if deleted else live
                rows = np.flatnonzero(mask).tolist()
                if rows:
                    out.extend(self._artifacts(kind, rows))
            return out

    def _own_uri_index(self, f: DataFile) -> UriIndex:
        index = self._uri_indexes.get(f.path)
        if index is None:
            if len(self._uri_indexes) > 4096:
                self._uri_indexes.clear()
            index = self._uri_indexes[f.path] = UriIndex.of_file(self.table, f)
        return index

    @_retried
    def by_uri(self, uri: str) -> Artifact | None:
        """The newest live artifact whose URI is ``uri`` (``cas://blake3/<hex>``), or None.

        No artifact is built but the candidates: pending rows are compared directly; of the committed
        files, those whose ``uri`` statistics cannot hold it are skipped, and each other file answers
        from its ``uri -> rows`` index (the first 16 hex digits, built once per file from its ``uri``
        column: ~16 bytes a row), so a lookup costs a binary search per file and the row group of each
        hit, not a walk over every artifact.
        """
        with self._lock:
            hits = [
                self._with_ops(a) for a in self._pending.values() if a.uri == uri and a.artifact_id not in self._deleted
            ]
            full = len(uri)
            for kind in sorted(self._segments):
                seg = self._segments[kind]
                rows: list[int] = []
                for fi, f in enumerate(seg.files):
                    # a truncated statistic (shorter than a URI) bounds nothing: the file is looked at
                    if f.min_uri is not None and len(f.min_uri) == full and uri < f.min_uri:
                        continue
                    if f.max_uri is not None and len(f.max_uri) == full and uri > f.max_uri:
                        continue
                    start = int(seg.starts[fi])
                    rows.extend(start + r for r in self._uri_index(f).rows(uri))
                if rows:
                    hits.extend(
                        a for a in self._artifacts(kind, rows) if a.uri == uri and a.artifact_id not in self._deleted
                    )
            return max(hits, key=lambda a: (_micros_of(a), a.artifact_id)) if hits else None

    @_retried
    def all(self, kind: str | None = None, *, skip: set[str] | frozenset[str] = frozenset()) -> list[Artifact]:
        """Every live artifact (of one kind, or of all), oldest first by (created_at, id): whole files
        read and built at once (gc, lineage and a run's summary walk everything). ``skip``: data files
        left out (damaged ones ``verify`` reports)."""
        with self._lock:
            out: list[Artifact] = []
            for k in [kind] if kind is not None else sorted(self._segments):
                seg = self._segments.get(k)
                if seg is None:
                    continue
                for f in seg.files:
                    if f.path in skip:
                        continue
                    arts = artifacts_from_arrow(self.table.read_file(f, ARTIFACT_COLUMNS), k)
                    out.extend(self._with_ops(a) for a in arts if a.artifact_id not in self._deleted)
            out.extend(
                self._with_ops(a)
                for a in self._pending.values()
                if (kind is None or a.kind == kind) and a.artifact_id not in self._deleted
            )
            out.sort(key=lambda a: (_micros_of(a), a.artifact_id))
            return out

    @_retried
    def best(
        self,
        *,
        kind: str,
        metric: str,
        mode: Mode = "max",
        where: ScopeFilter = ScopeFilter(),
        filters: Mapping[str, Any] | None = None,
    ) -> Artifact | None:
        """The artifact of ``kind`` with the best ``metric``; NaN never wins, ties go to the newest."""
        check_kind(kind)
        if not isinstance(metric, str) or not metric:
            raise InvalidInputError(f"metric must be a metric name such as 'val_acc', got {metric!r}")
        check_mode(mode)
        items = list(check_labels(filters).items()) if filters else []
        sign = 1.0 if mode == "max" else -1.0
        with self._lock:
            found: tuple[float, int, int] | None = None  # (value, created_at, row) of the best committed row
            memo = ("best", metric, sign, tuple((k, type(v) is bool, v) for k, v in items), where)
            if kind in self._segments and memo in self._segments[kind].arrays:
                found = self._segments[kind].arrays[memo]  # type: ignore[assignment]
            elif kind in self._segments:
                self._prefetch(kind, self._query_columns(items, where, metric, created=False))
                vals = self._metric(kind, metric)
                mask = self._mask(kind, items, where)
                cand = np.flatnonzero(mask) if mask is not None else None  # a filter keeps few rows: only theirs
                v = (vals if cand is None else vals[cand]) * sign
                ok = ~np.isnan(v)
                if ok.any():
                    top = np.max(v[ok])
                    tied = np.flatnonzero(ok & (v == top))
                    tied = tied if cand is None else cand[tied]
                    created = self._micros_at(kind, tied)  # one row group's, unless many rows tie
                    newest = int(created.max())
                    tied = tied[created == newest]
                    row = int(tied[0])
                    if len(tied) > 1:  # the same microsecond: the greater id is the newer
                        ids = self._ids(kind, tied.tolist())
                        row = int(tied[max(range(len(ids)), key=ids.__getitem__)])
                    found = (float(top), newest, row)
                self._segments[kind].arrays[memo] = found  # type: ignore[assignment]
            winner: Artifact | None = None
            winner_key: tuple[float, int, str] | None = None
            for a in self._pending_matches(kind, items, where):
                v = a.metrics.get(metric)
                if v is not None and not math.isnan(v):
                    key = (v * sign, _micros_of(a), a.artifact_id)
                    if winner_key is None or key > winner_key:
                        winner, winner_key = a, key
            if winner is not None and (found is None or self._beats(winner, metric, sign, kind, found)):
                return winner
            if found is None:
                return None
            return self._artifacts(kind, [found[2]])[0]

    def _beats(self, a: Artifact, metric: str, sign: float, kind: str, found: tuple[float, int, int]) -> bool:
        key = (a.metrics[metric] * sign, _micros_of(a))
        if key != found[:2]:
            return key > found[:2]
        return a.artifact_id > self._ids(kind, [found[2]])[0]

    def _ids(self, kind: str, rows: list[int]) -> list[str]:
        """The ids of a few rows of one kind (the id column is read only if already loaded or needed)."""
        return pc.take(self._column(kind, "artifact_id"), int64_array(rows)).to_pylist()  # type: ignore[no-any-return]

    @_retried
    def search(
        self,
        *,
        kind: str | None = None,
        labels: Mapping[str, Any] | None = None,
        metric: str | None = None,
        mode: Mode | None = None,
        where: ScopeFilter = ScopeFilter(),
        limit: int | None = None,
        skip_prefix: str | None = None,
    ) -> SearchAnswer:
        """Artifacts matching ``kind``, every label in ``labels`` (exact) and the scope, as a
        :class:`SearchAnswer` (rows found, ``Artifact`` objects built when asked for).

        Without ``metric``: newest first. With ``metric``: ranked by it (``mode`` "max" by default),
        artifacts lacking the metric left out, ties broken by the newest. ``skip_prefix``: without a
        ``kind``, kinds starting with it are left out (the store's own ``aeg.*`` kinds).
        """
        if kind is not None:
            check_kind(kind)
        items = list(check_labels(labels).items()) if labels else []
        limit = check_limit(limit, allow_none=True)
        if mode is not None:
            check_mode(mode)
        sign = 1.0 if (mode or "max") == "max" else -1.0
        with self._lock:
            # candidates as arrays (no Python object per row): sort keys, source (a kind's index in
            # `kinds`, or -1 for a pending row) and row (in the kind's segment, or in `pending`)
            kinds: list[str] = []
            segs: list[_Segment] = []
            scores: list[np.ndarray] = []
            stamps_all: list[np.ndarray] = []
            rows_all: list[np.ndarray] = []
            for k in [kind] if kind is not None else sorted(self._segments):
                if k not in self._segments or (kind is None and skip_prefix and k.startswith(skip_prefix)):
                    continue
                seg = self._segments[k]
                # newest first with a limit, the order not built yet: the row groups' created_at
                # statistics say which groups can hold the answer (only theirs is read)
                pruned = metric is None and limit is not None and ("order", None, sign) not in seg.arrays
                pruned = pruned and "created_at" not in seg.arrays
                self._prefetch(k, self._query_columns(items, where, metric, created=not pruned))
                mask = self._mask(k, items, where)
                newest = self._newest(k, mask, limit) if pruned and limit is not None else None
                if newest is not None:
                    order, stamps = newest
                else:
                    order = _first(self._order(k, metric, sign), mask, limit)
                    stamps = self._micros(k)[order]
                kinds.append(k)
                segs.append(seg)
                scores.append(np.zeros(len(order)) if metric is None else self._metric(k, metric)[order] * sign)
                stamps_all.append(np.asarray(stamps, dtype=np.int64))
                rows_all.append(np.asarray(order, dtype=np.int64))
            pending: list[Artifact] = []
            p_score: list[float] = []
            for a in self._pending_matches(kind, items, where):
                if kind is None and skip_prefix and a.kind.startswith(skip_prefix):
                    continue
                v = 0.0 if metric is None else a.metrics.get(metric)
                if v is not None and not math.isnan(v):
                    pending.append(a)
                    p_score.append(v * sign)
            sources = [np.full(len(r), i, dtype=np.int32) for i, r in enumerate(rows_all)]
            if pending:
                scores.append(np.array(p_score, dtype=np.float64))
                stamps_all.append(np.array([_micros_of(a) for a in pending], dtype=np.int64))
                rows_all.append(np.arange(len(pending), dtype=np.int64))
                sources.append(np.full(len(pending), -1, dtype=np.int32))
            if not rows_all:
                return SearchAnswer(self, [], [], np.empty(0, np.int32), np.empty(0, np.int64), [])
            src, rows = np.concatenate(sources), np.concatenate(rows_all)
            if len(rows_all) > 1 or pending:  # a kind's part is in order already; ties keep part order
                pick = np.lexsort((-np.concatenate(stamps_all), -np.concatenate(scores)))  # (stable)
                src, rows = src[pick], rows[pick]
            if limit is not None:
                src, rows = src[:limit], rows[:limit]
            return SearchAnswer(self, kinds, segs, src, rows, pending)

    @_retried
    def __len__(self) -> int:
        with self._lock:
            committed = sum(seg.rows for seg in self._segments.values())
            if self._deleted:
                committed -= sum(int((~live).sum()) for k in self._segments if (live := self._live(k)) is not None)
            return committed + sum(1 for a in self._pending.values() if a.artifact_id not in self._deleted)


class SearchAnswer:
    """The answer of :meth:`ColumnarCatalog.search` as rows: a kind's segment and row (or a pending
    artifact) per answer, in answer order; ``Artifact`` objects are built by :meth:`build`, for the
    answers asked for only (``core/search.py``'s ``LazyArtifactList`` is the list people get).

    It holds the segments it was found in and the fold of the ops at the time (a list answer does not
    change after it was given): a refresh since (new files, a compaction) does not move its rows, a pin
    since does not show. Their files stay on disk for the vacuum's retention (24 h by default); an
    answer looked at after a vacuum removed one of them raises :class:`AnswerExpiredError` (run the
    query again).
    """

    __slots__ = ("_catalog", "_kinds", "_pending", "_rows", "_segs", "_src", "_states")

    def __init__(
        self,
        catalog: ColumnarCatalog,
        kinds: list[str],
        segs: list[_Segment],
        src: np.ndarray,
        rows: np.ndarray,
        pending: list[Artifact],
    ) -> None:
        self._catalog, self._kinds, self._segs = catalog, kinds, segs
        self._src, self._rows, self._pending = src, rows, pending
        self._states = catalog._state  # (a fold replaces the dict, never changes it)

    def __len__(self) -> int:
        return len(self._rows)

    def __iter__(self) -> Iterator[Artifact]:
        for start in range(0, len(self._rows), 1024):
            yield from self.build(slice(start, start + 1024))

    def __getitem__(self, at: int | slice) -> Any:
        if isinstance(at, slice):
            return self.build(at)
        if not -len(self._rows) <= at < len(self._rows):
            raise IndexError("answer index out of range")
        return self.build([at])[0]

    def build(self, at: slice | np.ndarray | list[int]) -> list[Artifact]:
        """The ``Artifact`` objects of answers ``at`` (a slice, or positions), in that order."""
        src, rows = self._src[at], self._rows[at]
        out: list[Artifact | None] = [None] * len(rows)
        with self._catalog._lock:
            for ki in _distinct(src).tolist():
                sel = np.flatnonzero(src == ki)
                if ki < 0:
                    got = [self._pending[r] for r in rows[sel].tolist()]  # (pins applied when found)
                else:
                    kind = self._kinds[ki]
                    try:
                        got = self._catalog._artifacts(kind, rows[sel].tolist(), self._segs[ki], self._states)
                    except FileNotFoundError:
                        # its snapshot's file is gone (a damaged one raises DamagedDataFile instead); the rows
                        # are not re-found on the newest snapshot: their ids may never have been read. The
                        # catalog takes the newest snapshot, so that the query asked again answers from it
                        self._catalog._version = -1
                        self._catalog.refresh()
                        raise AnswerExpiredError(
                            f"this answer's {kind!r} artifacts were in a data file that maintenance has removed "
                            "since the query ran (a compaction, then a vacuum past the retention, by this or "
                            "another process): run the query again (search / list / best) for a current answer"
                        ) from None
                for j, a in zip(sel.tolist(), got, strict=True):
                    out[j] = a
        return out  # type: ignore[return-value]


def _flatten(m: pa.Array) -> tuple[np.ndarray, pa.Array, pa.Array]:
    """A map array as (row of each entry, keys, items).

    NOTE: ``pyarrow.compute.map_lookup`` costs ~2.5 us a row here (0.25 s for 100k rows); comparing
    the flat keys at once and scattering by row is ~50x faster.
    """
    offsets = numpy_view(m.offsets)
    lo, hi = int(offsets[0]), int(offsets[-1])
    rows = np.repeat(np.arange(len(m), dtype=np.int64), np.diff(offsets))
    return rows, m.keys.slice(lo, hi - lo), m.items.slice(lo, hi - lo)


def _scatter_first(rows: np.ndarray, keys: pa.Array, items: pa.Array, name: str, n: int) -> np.ndarray:
    """float64 per row: the item of the first entry whose key is ``name`` (NaN where none)."""
    hit = np.flatnonzero(_bools(pc.equal(keys, string_scalar(name))))[::-1]  # reversed: the first wins
    out = np.full(n, np.nan)
    out[rows[hit]] = _floats(items)[hit]
    return out


def _metric_from_map(col: pa.ChunkedArray, name: str) -> pa.ChunkedArray:
    """A flat ``metric.<name>`` column computed from one file's ``metrics`` map (NaN where missing)."""
    m = pa.concat_arrays(col.chunks) if col.num_chunks != 1 else col.chunk(0)
    out = _scatter_first(*_flatten(m), name, len(m))
    return pa.chunked_array([pa.Array.from_buffers(pa.float64(), len(out), [None, pa.py_buffer(out)])])


def _label_from_map(labels: pa.ChunkedArray, key: str, field: str) -> pa.ChunkedArray:
    """A flat ``label.<key>.<field>`` column computed from one file's ``labels`` map (null where a row
    lacks the key or holds another type)."""
    m = pa.concat_arrays(labels.chunks) if labels.num_chunks != 1 else labels.chunk(0)
    rows, keys, items = _flatten(m)
    values = pc.struct_field(items, field)
    hit = np.flatnonzero(_bools(pc.equal(keys, string_scalar(key))))[::-1]  # reversed: the first wins
    idx = np.full(len(m), len(values), dtype=np.int64)  # the null appended below
    idx[rows[hit]] = hit
    padded = pa.concat_arrays([values, pa.nulls(1, values.type)])
    return pa.chunked_array([pc.take(padded, int64_array(idx))])


_DICT_TYPE = pa.dictionary(pa.int32(), pa.string())


def _distinct(a: np.ndarray) -> np.ndarray:
    """The sorted distinct values of ``a``: ``np.unique`` without its first call's import of
    ``numpy.ma`` (~15 ms, which a cold process's first ``best`` paid)."""
    if len(a) < 2:
        return a.copy()
    s = np.sort(a)
    return s[np.concatenate(([True], s[1:] != s[:-1]))]


def _dictionary_column(name: str) -> bool:
    """True for the flat string label columns (``label.<key>.s``): read as dictionaries (a label takes
    few values: comparing the dictionary and gathering int32 codes beats decoding a string per row)."""
    return name.endswith(".s") and parse_label_column(name) is not None


def _as_dictionary(col: pa.ChunkedArray) -> pa.ChunkedArray:
    """``col`` as ``dictionary<int32, string>`` chunks sharing one dictionary (a file read plainly, or
    computed from the map, is encoded; a file's dictionary of ``string_view`` is cast)."""
    chunks = []
    for c in col.chunks:
        if not pa.types.is_dictionary(c.type):
            c = pc.dictionary_encode(c.cast(pa.string()) if c.type != pa.string() else c)
        if c.type != _DICT_TYPE:
            c = c.cast(_DICT_TYPE)
        chunks.append(c)
    return pa.chunked_array(chunks, type=_DICT_TYPE).unify_dictionaries()


def _string_equal(col: pa.ChunkedArray, want: str) -> np.ndarray:
    """Rows of a string (or dictionary of strings) column equal to ``want`` (False for null): for a
    dictionary, one comparison per distinct value and a gather of the codes."""
    if not pa.types.is_dictionary(col.type):
        return _bools(pc.equal(col, string_scalar(want)))
    if not col.num_chunks:
        return np.zeros(0, bool)
    col = col.unify_dictionaries()  # (a no-op when they are already one)
    hit = _bools(pc.equal(col.chunk(0).dictionary, string_scalar(want)))
    if not hit.any():
        return np.zeros(len(col), bool)
    codes = pa.concat_arrays([c.indices for c in col.chunks])
    if codes.null_count:  # a null slot's code is undefined: masked
        valid = _bools(pc.is_valid(codes))
        idx = np.frombuffer(codes.buffers()[1], dtype=np.int32, count=len(codes), offset=codes.offset * 4)
        return hit[np.where(valid, idx, 0)] & valid
    return hit[numpy_view(codes)]


def _first(order: np.ndarray, mask: np.ndarray | None, limit: int | None) -> np.ndarray:
    """The first ``limit`` rows of ``order`` that ``mask`` keeps, looking at growing slices of
    ``order`` only (a warm ranked query with a filter costs what its answer needs, not the kind's size)."""
    if mask is None:
        return order if limit is None else order[:limit]
    if limit is None:
        return order[mask[order]]
    out: list[np.ndarray] = []
    found, start, step = 0, 0, max(1024, 16 * limit)
    while found < limit and start < len(order):
        part = order[start : start + step]
        hit = part[mask[part]]
        out.append(hit)
        found += len(hit)
        start += step
        step *= 4
    return np.concatenate(out)[:limit] if out else order[:0]


def _floats(arr: pa.Array) -> np.ndarray:
    """A float64 Arrow array as numpy, NaN for null.

    NOTE: ``to_numpy`` imports pandas (~0.5 s on a cold open; ``storage/arrays.py``): a view of the
    filled array's buffer instead.
    """
    return numpy_view(pc.fill_null(arr, float_scalar(math.nan)) if arr.null_count else arr)


def _bools(arr: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A boolean Arrow array (or chunked array) as a numpy bool array, False for null (see :func:`_floats`)."""
    filled = pc.cast(pc.fill_null(arr, bool_scalar(False)), pa.uint8())
    chunks = filled.chunks if isinstance(filled, pa.ChunkedArray) else [filled]
    if not chunks:
        return np.zeros(0, bool)
    return np.concatenate([numpy_view(c) for c in chunks]).view(bool)


def _exists(table: DeltaLakeTable) -> bool:
    """True once the table's first commit exists (a stat; ``DeltaTable.is_deltatable`` costs ~7 ms)."""
    return os.path.isfile(os.path.join(table.path, "_delta_log", "00000000000000000000.json")) or table.exists()


def _as_us(ts: Any) -> int:
    """A row's timestamp (int microseconds, or a datetime) as int microseconds."""
    return ts if isinstance(ts, int) else datetime_to_us(ts)


def _micros_of(a: Artifact) -> int:
    return datetime_to_us(a.created_at) if a.created_at is not None else 0


def _label_equal(got: Any, want: Any) -> bool:
    return got is not _MISSING and got == want and isinstance(got, bool) == isinstance(want, bool)


__all__ = ["ColumnarCatalog", "SearchAnswer"]
