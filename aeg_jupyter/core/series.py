"""Series to chart, read columnar from the event log and the artifact catalog (no plotting here).

- :func:`event_series`: for the events of one kind, ``y`` (a ``data`` key, else a metric) against
  ``x`` (a ``data`` key; default the step/epoch-like key if there is one, else time), one series per
  run or per value of a label. The events are read as Arrow columns (parts of the kind's partition,
  then every writer's spool) and the numbers are cut out of the JSON text without decoding each row
  (:func:`numbers`); rows whose JSON is not flat fall back to ``json.loads``.
- :func:`artifact_points`: for the artifacts of one kind, a metric against a label or another metric.
- :func:`downsample`: min/max per pixel column; the points kept are true points of the series.
- :func:`smooth`: a trailing rolling mean.
- :class:`LiveSeries`: the same series kept current from the hot window (for the panel's live chart;
  ``record`` does no work for it: the chart reads the window when it redraws).

Example:
    >>> s = event_series(store.event_log, "train_log", y="loss")      # doctest: +SKIP
    >>> s.x_key, [x.name for x in s.series]                            # doctest: +SKIP
    ('step', ['run-20260102-030405-a1b2'])
"""

from __future__ import annotations

import bisect
import functools
import json
import math
import os
import threading
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..base.errors import InvalidInputError, NotFoundError
from ..base.models import Artifact, Event, ScopeFilter
from ..base.times import iso_to_us
from ..base.validate import check_kind
from ..storage.schemas import as_micros

if TYPE_CHECKING:
    from .artifacts import ArtifactStore
    from .events import EventLog

TIME = "time"  # the x key meaning "when the event was recorded"
RUN = "run"  # the grouping by run id
STEP_KEYS = ("step", "global_step", "iteration", "iter", "it", "epoch", "batch", "round", "trial", "i")
MAX_POINTS = 2000  # points per series sent to the browser (min/max per pixel column of a ~1000 px chart)
NO_VALUE = "(none)"  # the group of events without a run id / without the label
_COLUMNS = ("event_id", "ts", "run_id", "graph_id", "node_id", "topic", "text", "metrics")
_SCHEMA = pa.schema(
    [("event_id", pa.string()), ("ts", pa.int64()), ("run_id", pa.string()), ("graph_id", pa.string()),
     ("node_id", pa.string()), ("topic", pa.string()), ("text", pa.string()), ("metrics", pa.string())]
)  # fmt: skip
_SAMPLE = 256  # rows (first and last) whose JSON is decoded to learn which keys exist


@dataclass(frozen=True, slots=True)
class Series:
    """One line (or one group of points): its name, x and y as numpy arrays, and where they came from.

    ``x`` holds floats, or int64 microseconds since the epoch when the x axis is time; ``ids`` (the
    artifact ids of an artifact scatter, else ``None``) and ``hover`` (one text per point) go with
    the points. ``count`` is the number of points before downsampling.
    """

    name: str
    x: np.ndarray
    y: np.ndarray
    count: int
    ids: list[str] | None = None
    hover: list[str] | None = None


@dataclass(frozen=True, slots=True)
class SeriesSet:
    """What one chart shows: the series and what their axes mean.

    Example:
        >>> s = event_series(log, "train_log", y="loss")      # doctest: +SKIP
        >>> s.source, s.kind, s.y_key, s.x_key, s.by           # doctest: +SKIP
        ('events', 'train_log', 'loss', 'step', 'run')
    """

    source: Literal["events", "artifacts"]
    kind: str
    y_key: str
    x_key: str
    by: str
    series: list[Series] = field(default_factory=list)

    @property
    def x_is_time(self) -> bool:
        return self.x_key == TIME and self.source == "events"

    @property
    def points(self) -> int:
        """Points over all series before downsampling."""
        return sum(s.count for s in self.series)


# -- reading the event log as columns ------------------------------------------------------------
class EventColumns:
    """The events of one kind as Arrow columns, in time order, one row per event.

    The rows are kept as read (``raw``) with ``order``, the permutation that puts them in time order
    (Delta files hold a few sorted runs each): the numbers of a column are cut out of the raw text
    and permuted as floats (:meth:`numbers`), so a 1M-event chart never copies its JSON text to sort it.
    :attr:`table` is the sorted table, built on first use.
    """

    __slots__ = ("_sorted", "order", "raw", "spans")

    def __init__(self, table: pa.Table, order: np.ndarray | None = None, spans: Sequence[tuple[Any, int]] = ()) -> None:
        self.raw = table
        self.order = order
        #: ``(key, rows)`` per run of ``raw``'s rows from one data file (``key``: what the numbers of its rows
        #: are cached by, :data:`_NUMBERS`), else ``(None, rows)``; empty: one run, not cached
        self.spans = spans
        self._sorted: pa.Table | None = table if order is None else None

    @property
    def table(self) -> pa.Table:
        if self._sorted is None:
            self._sorted = self.raw.take(pa.array(self.order))
        return self._sorted

    def __len__(self) -> int:
        return self.raw.num_rows

    def column(self, name: str) -> pa.Array:
        col = self.raw.column(name)
        col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
        return col if self.order is None else col.take(pa.array(self.order))

    def sample(self, name: str) -> list[Any]:
        """The first and last :data:`_SAMPLE` values of column ``name`` (all of them if few), in time order."""
        n = len(self)
        rows = np.arange(n) if n <= 2 * _SAMPLE else np.r_[0:_SAMPLE, n - _SAMPLE : n]
        if self.order is not None:
            rows = self.order[rows]
        return self.raw.column(name).take(pa.array(rows)).to_pylist()  # type: ignore[no-any-return]

    def numbers(self, name: str, key: str) -> np.ndarray:
        """:func:`numbers` of column ``name`` (JSON text), in time order; those of a data file's rows are
        cut out once and kept (:data:`_NUMBERS`): a data file never changes, so a plot drawn again (other
        options, another ``--y``) parses only the rows of files it has not seen."""
        col = self.raw.column(name)
        if not self.spans:
            values = numbers(col, key)
        else:
            starts = np.cumsum([0, *(n for _k, n in self.spans)]).tolist()
            got: list[np.ndarray | None] = [
                _NUMBERS.get((k, name, key)) if k is not None else None for k, _n in self.spans
            ]
            todo = [i for i, v in enumerate(got) if v is None]
            cut = lambda i: numbers(col.slice(starts[i], self.spans[i][1]), key)  # noqa: E731
            # files at once on the pool's threads, unless one is big enough to be cut on them itself (the
            # pool's threads never wait for the pool)
            rows = [self.spans[i][1] for i in todo]
            threads = len(todo) > 1 and sum(rows) >= _PARALLEL_ROWS and max(rows) < _PARALLEL_ROWS
            for i, v in zip(todo, _pool().map(cut, todo) if threads else map(cut, todo), strict=True):
                got[i] = v
                if self.spans[i][0] is not None:
                    _NUMBERS.put((self.spans[i][0], name, key), v)
            values = np.concatenate(got) if got else np.full(0, np.nan)  # type: ignore[arg-type]
        return values if self.order is None else values[self.order]

    def codes(self, name: str) -> tuple[np.ndarray, list[Any]]:
        """``(codes, values)``: column ``name`` dictionary-encoded (-1 for null), codes in time order."""
        col = self.raw.column(name)
        col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
        encoded = col.dictionary_encode()
        codes = np.asarray(pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False), dtype=np.int64)
        return (codes if self.order is None else codes[self.order]), encoded.dictionary.to_pylist()

    @property
    def ts(self) -> np.ndarray:
        ts = np.asarray(self.raw.column("ts").to_numpy(), dtype=np.int64)
        return ts if self.order is None else ts[self.order]


def _conform(t: pa.Table, schema: pa.Schema, read: Sequence[str]) -> pa.Table:
    """A data file's columns ``t`` in ``schema``: ``ts`` in microseconds, each column of its type, one
    not ``read`` (or not in an older file) as nulls."""
    n = t.num_rows
    return pa.table(
        [as_micros(t.column("ts")) if f.name == "ts" else
         t.column(f.name).cast(f.type) if f.name in read and f.name in t.column_names else pa.nulls(n, f.type)
         for f in schema],
        schema=schema,
    )  # fmt: skip


def _in_scope(t: pa.Table, where: ScopeFilter) -> pa.ChunkedArray | None:
    """The rows of ``t`` in the scope's run / graph / node (null: out), or None for every row."""
    mask = None
    for name, value in (("run_id", where.run_id), ("graph_id", where.graph_id), ("node_id", where.node_id)):
        if value is not None:
            m = pc.fill_null(pc.equal(t.column(name), value), False)
            mask = m if mask is None else pc.and_(mask, m)
    return mask


def read_event_columns(
    log: EventLog, kind: str, where: ScopeFilter = ScopeFilter(), *, by: str = "run", ids: bool = False
) -> EventColumns:
    """Every event of ``kind`` in scope, as columns (every spool, then the Parquet parts of the kind).

    Only the columns a chart needs are read from the parts (time, run, data and metrics; the
    column ``by`` groups on; those of the scope's filters; ``event_id`` with ``ids=True``), the
    others come back as nulls: Parquet is columnar, so a 1M-event plot never decodes the rest. A
    row both in a spool and in a part (a writer that died between the two, or a flush meanwhile) is
    taken once: the parts that may hold a spooled row (by their newest time) are read with their ids.

    Example:
        >>> len(read_event_columns(store.event_log, "train_log"))   # doctest: +SKIP
        100000
    """
    check_kind(kind)
    table = log.table
    spooled: list[dict[str, Any]] = []
    for path in table.spool_paths(include_own=True):
        spooled.extend({c: r.get(c) for c in _COLUMNS} for r in table.read_spool(path)[0] if r.get("kind") == kind)
    unique = {r["event_id"]: r for r in spooled}
    ids_spooled = pa.array(list(unique), pa.string())
    oldest_spooled = min((int(r["ts"]) for r in unique.values() if isinstance(r["ts"], int)), default=None)
    need = ["ts", "run_id", "text", "metrics"]
    need += [c for c, on in (("graph_id", where.graph_id is not None or by == "graph"),
                             ("node_id", where.node_id is not None or by == "node"),
                             ("topic", by == "topic"), ("event_id", ids)) if on]  # fmt: skip

    scope = (where.run_id, where.graph_id, where.node_id)

    def read(part: Any) -> tuple[Any, pa.Table] | None:
        overlaps = oldest_spooled is not None and part.name.max_ts >= oldest_spooled
        cols = need if ("event_id" in need or not overlaps) else [*need, "event_id"]
        t = table.read_part_table(part, columns=cols)
        if t is None or t.num_rows == 0:
            return None
        t = _conform(t, _SCHEMA, cols)
        # the file's rows in scope are the same rows each time (a data file never changes), unless some
        # are dropped as spooled too: only then are its numbers not kept
        key = None
        if overlaps and len(ids_spooled):
            t = t.filter(pc.invert(pc.is_in(t.column("event_id"), value_set=ids_spooled)))
        else:
            key = (part.path, _file_stamp(part.path), scope)
        if (mask := _in_scope(t, where)) is not None:
            t = t.filter(mask)
        return key, t

    parts = list(reversed(table.list_parts([kind])))  # oldest first: the rows come out mostly in time order
    # Parquet decoding releases the GIL: the parts are read on the pool's threads at once
    read_all = _pool().map(read, parts) if len(parts) > 1 and (os.cpu_count() or 1) > 1 else map(read, parts)
    pieces = [kt for kt in read_all if kt is not None]
    if unique:
        spooled_t = pa.Table.from_pylist(list(unique.values()), schema=_SCHEMA)
        if (mask := _in_scope(spooled_t, where)) is not None:
            spooled_t = spooled_t.filter(mask)
        pieces.append((None, spooled_t))
    t = pa.concat_tables([p for _k, p in pieces]) if pieces else _SCHEMA.empty_table()
    spans = [(k, p.num_rows) for k, p in pieces]
    ts = np.asarray(t.column("ts").to_numpy(), dtype=np.int64)
    if len(ts) > 1 and not bool(np.all(ts[1:] >= ts[:-1])):
        return EventColumns(t, np.argsort(ts, kind="stable"), spans)
    return EventColumns(t, spans=spans)


def _file_stamp(path: str) -> tuple[int, int] | None:
    """``(size, mtime_ns)`` of a data file (with its path, what its cached numbers are known by)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


class _NumbersCache:
    """The numbers cut out of data files' JSON text, by ``(file key, column, json key)``: the least
    recently used go first past :data:`NUMBERS_CACHE_BYTES` (8 bytes a row: 1M events' ``loss`` is 8 MB)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.bytes = 0
        self._items: dict[Any, np.ndarray] = {}  # (insertion order = use order: a hit is moved to the end)
        self._lock = threading.Lock()  # (a live chart's redraw and a plot may run on two threads)

    def get(self, key: Any) -> np.ndarray | None:
        with self._lock:
            v = self._items.pop(key, None)
            if v is not None:
                self._items[key] = v
            return v

    def put(self, key: Any, values: np.ndarray) -> None:
        if values.nbytes > self.limit:
            return
        values.flags.writeable = False  # (shared by every plot that reads the file: nobody may change it)
        with self._lock:
            old = self._items.pop(key, None)
            self.bytes += values.nbytes - (old.nbytes if old is not None else 0)
            self._items[key] = values
            while self.bytes > self.limit:
                first = next(iter(self._items))
                self.bytes -= self._items.pop(first).nbytes


NUMBERS_CACHE_BYTES = 64 * 2**20  # 8M numbers: a 1M-event chart's x and y four times over
_NUMBERS = _NumbersCache(NUMBERS_CACHE_BYTES)


# -- numbers out of JSON text ---------------------------------------------------------------------
def numbers(text: pa.Array | pa.ChunkedArray, key: str) -> np.ndarray:
    """The number under top-level ``key`` of each JSON object in ``text`` (NaN where there is none).

    The fast path finds ``"key": `` (as the store's JSON encoder writes it) before any nested
    object or list and parses the number after it, for all rows at once; a row where the key
    occurs otherwise is decoded with ``json.loads``. Booleans and strings are not numbers.

    Example:
        >>> numbers(pa.array(['{"step": 1, "loss": 0.5}', '{"step": 2}', None]), "loss")
        array([0.5, nan, nan])
    """
    if len(text) >= _PARALLEL_ROWS and (os.cpu_count() or 1) > 1:
        # zero-copy slices parsed on threads at once (Arrow's kernels release the GIL)
        pieces = _pieces(text, -(-len(text) // min(4, os.cpu_count() or 1)))
        return np.concatenate(list(_pool().map(lambda c: numbers(c, key), pieces)))
    if isinstance(text, pa.ChunkedArray):  # one part at a time: no copy of the whole column
        if text.num_chunks == 1:
            text = text.chunk(0)
        else:
            parts = [numbers(c, key) for c in text.chunks]
            return np.concatenate(parts) if parts else np.full(0, np.nan)
    if text.type == pa.large_string():
        text = text.cast(pa.string()) if len(text) < 2**20 else text
    n = len(text)
    out = np.full(n, np.nan)
    if n == 0:
        return out
    quoted = json.dumps(key, ensure_ascii=False)
    needle = quoted + ": "
    nb = len(needle.encode("utf-8"))
    pos = _find(text, needle)
    done = np.zeros(n, dtype=bool)
    rows = np.flatnonzero(pos >= 0)
    if len(rows):
        off_type = np.int64 if text.type == pa.large_string() else np.int32
        bufs = text.buffers()
        offsets = np.frombuffer(bufs[1], dtype=off_type)[text.offset : text.offset + n + 1].astype(np.int64)
        data = bufs[2]
        row_start, row_end = offsets[rows], offsets[rows + 1]
        key_at = row_start + pos[rows]
        # the key is at the top level if nothing before it opens a nested object or list
        top = np.ones(len(rows), dtype=bool)
        later = np.flatnonzero(pos[rows] > 1)  # the first key is always at the top level
        if len(later):
            before = _slices(data, row_start[later] + 1, key_at[later])
            top[later] = (_find(before, "{") < 0) & (_find(before, "[") < 0)
        value_at = key_at + nb
        rest = _slices(data, value_at, row_end)
        length = _find(rest, ",")
        last = np.flatnonzero(length < 0)  # the last key: its number ends at the closing brace
        if len(last):
            length[last] = _find(rest.take(pa.array(last)), "}")
        top &= length > 0
        rows, value_at, length = rows[top], value_at[top], length[top]
        if len(rows):
            tokens = _slices(data, value_at, value_at + length)
            try:
                values = pc.cast(tokens, pa.float64()).to_numpy(zero_copy_only=False)
            except pa.ArrowInvalid:  # a string, a boolean, null: not numbers
                values = np.array([_to_float(t) for t in tokens.to_pylist()])
            out[rows] = values
            done[rows] = True
    # rows that name the key but not in the form above (nested, compact spacing, a string): decode them
    todo = np.flatnonzero(~done)
    if len(todo):
        sub = text if len(todo) == n else text.take(pa.array(todo))
        hit = pc.fill_null(pc.match_substring(sub, quoted), False).to_numpy(zero_copy_only=False)
        ascii_quoted = json.dumps(key)
        if ascii_quoted != quoted:
            hit = hit | pc.fill_null(pc.match_substring(sub, ascii_quoted), False).to_numpy(zero_copy_only=False)
        for i in np.flatnonzero(hit):
            out[todo[i]] = _number_of(_loads(sub[int(i)].as_py()), key)
    return out


_PARALLEL_ROWS = 200_000  # below this a thread pool costs more than it saves


@functools.cache
def _pool() -> ThreadPoolExecutor:
    """Threads for parsing a column's parts at once (one per core, at most 4)."""
    return ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1)), thread_name_prefix="aeg-series")


def _pieces(text: pa.Array | pa.ChunkedArray, rows: int) -> list[pa.Array]:
    """``text`` as zero-copy slices of at most ``rows`` rows, in order (below the parallel threshold each)."""
    chunks = text.chunks if isinstance(text, pa.ChunkedArray) else [text]
    rows = max(1, min(rows, _PARALLEL_ROWS - 1))
    return [c.slice(i, rows) for c in chunks for i in range(0, len(c), rows)]


def _slices(data: pa.Buffer, starts: np.ndarray, ends: np.ndarray) -> pa.Array:
    """Strings ``data[starts[i]:ends[i]]`` (non-overlapping, in order), copied out by Arrow's take."""
    n = len(starts)
    offs = np.empty(2 * n + 1, dtype=np.int64)
    offs[0:-1:2] = starts
    offs[1::2] = ends
    offs[-1] = ends[-1] if n else 0
    both = pa.LargeStringArray.from_buffers(2 * n, pa.py_buffer(offs), data)
    return pc.take(both, pa.array(np.arange(0, 2 * n, 2)))


def _find(strings: pa.Array, needle: str) -> np.ndarray:
    """Where ``needle`` first occurs in each string (-1: nowhere), as a writable int64 array."""
    found = pc.fill_null(pc.find_substring(strings, needle), -1).to_numpy(zero_copy_only=False)
    return np.array(found, dtype=np.int64)


def _to_float(token: str | None) -> float:
    try:
        return float(token) if token is not None else math.nan
    except ValueError:
        return math.nan


def _string_array(values: Any) -> pa.Array:
    """``values`` (a list of str / None, or an Arrow array) as one Arrow string array."""
    if isinstance(values, pa.ChunkedArray):
        return values.combine_chunks() if values.num_chunks else pa.array([], pa.string())
    return values if isinstance(values, pa.Array) else pa.array(values, pa.string())


def _row_key(r: dict[str, Any]) -> tuple[int, str]:
    return (r["ts"], r["event_id"])


def _loads(raw: str | None) -> Any:
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def _number_of(obj: Any, key: str) -> float:
    if isinstance(obj, dict):
        v = obj.get(key)
        if isinstance(v, int | float) and not isinstance(v, bool):
            return float(v)
    return math.nan


def numeric_keys(texts: Iterable[str | None]) -> list[str]:
    """Top-level keys holding numbers in these JSON texts, in first-seen order.

    Example:
        >>> numeric_keys(['{"step": 1, "loss": 0.5, "tag": "a"}', '{"acc": 1}'])
        ['step', 'loss', 'acc']
    """
    seen: dict[str, None] = {}
    for raw in texts:
        obj = _loads(raw)
        if isinstance(obj, dict):
            for k, v in obj.items():
                if isinstance(v, int | float) and not isinstance(v, bool):
                    seen.setdefault(k, None)
    return list(seen)


@dataclass(frozen=True, slots=True)
class KindKeys:
    """The numeric ``data`` keys and metric names of one event kind (from a sample of its events)."""

    data: list[str]
    metrics: list[str]

    @property
    def all(self) -> list[str]:
        return self.data + [m for m in self.metrics if m not in self.data]

    @property
    def step(self) -> str | None:
        """The step/epoch-like key, if the events have one."""
        return next((k for k in STEP_KEYS if k in self.data), None)


def kind_keys(cols: EventColumns) -> KindKeys:
    """Which keys can be plotted for these events.

    Example:
        >>> kind_keys(read_event_columns(log, "train_log")).data    # doctest: +SKIP
        ['step', 'loss']
    """
    return KindKeys(numeric_keys(cols.sample("text")), numeric_keys(cols.sample("metrics")))


def values_of(cols: EventColumns, key: str, keys: KindKeys | None = None) -> np.ndarray:
    """``key`` of each event: from ``data``, else from the metrics (NaN where neither has it)."""
    keys = keys or kind_keys(cols)
    if key in keys.data or key not in keys.metrics:
        y = cols.numbers("text", key)
        if key in keys.data or not np.isnan(y).all():
            return y
    return cols.numbers("metrics", key)


def _groups(cols: EventColumns, by: str) -> tuple[np.ndarray, list[str]]:
    """``(codes, names)``: the group of each event as an index into ``names`` (first seen first)."""
    column = {"run": "run_id", "graph": "graph_id", "node": "node_id", "topic": "topic"}.get(by)
    if column is not None:
        codes, values = cols.codes(column)
        names = [str(v) for v in values]
        if (codes < 0).any():
            codes = np.where(codes < 0, len(names), codes)
            names.append(NO_VALUE)
        return codes, names
    texts = cols.column("text")
    needle = json.dumps(by, ensure_ascii=False)
    has = pc.fill_null(pc.match_substring(texts, needle), False).to_numpy(zero_copy_only=False)
    index: dict[str, int] = {NO_VALUE: 0}
    codes = np.zeros(len(cols), dtype=np.int64)
    for i in np.flatnonzero(has):
        obj = _loads(texts[int(i)].as_py())
        if isinstance(obj, dict) and obj.get(by) is not None:
            v = obj[by]
            codes[i] = index.setdefault(v if isinstance(v, str) else json.dumps(v), len(index))
    return codes, list(index)


def _missing(kind: str, key: str, keys: Sequence[str], what: str) -> NotFoundError:
    have = ", ".join(keys) if keys else "none"
    return NotFoundError(f"no {kind} {what} has {key!r}; the numbers they have: {have}")


def event_series(
    log: EventLog,
    kind: str,
    *,
    y: str,
    x: str | None = None,
    by: str = RUN,
    where: ScopeFilter = ScopeFilter(),
    smooth_points: int = 0,
    max_points: int = MAX_POINTS,
    columns: EventColumns | None = None,
) -> SeriesSet:
    """``y`` against ``x`` for the events of ``kind``, one series per run (or per value of ``by``).

    Args:
        y: a ``data`` key or a metric name holding numbers.
        x: a ``data`` key; ``None``: the step/epoch-like key if the events have one, else ``"time"``.
        by: ``"run"``, ``"graph"``, ``"node"``, ``"topic"`` or a ``data`` key.
        smooth_points: a trailing rolling mean over this many points (0: none); the series then
            holds the smoothed values, and :func:`smooth` is not needed.
        max_points: downsample each series to at most this many points (0: keep every point).

    Raises:
        NotFoundError: no event of ``kind`` in scope, or none has ``y`` / ``x`` (the message names
            the keys that exist).

    Example:
        >>> event_series(log, "train_log", y="loss", x="step").series[0].y[:3]   # doctest: +SKIP
        array([1.  , 0.5 , 0.33])
    """
    cols = columns if columns is not None else read_event_columns(log, kind, where, by=by)
    if len(cols) == 0:
        raise NotFoundError(f"no {kind!r} events in this scope; record some, or try --scope all")
    keys = kind_keys(cols)
    yv = values_of(cols, y, keys)
    if np.isnan(yv).all():
        raise _missing(kind, y, keys.all, "event")
    x_key = x if x is not None else (keys.step or TIME)
    if x_key == TIME:
        xv = cols.ts.astype(np.float64)
    else:
        xv = values_of(cols, x_key, keys)
        if np.isnan(xv).all():
            raise _missing(kind, x_key, keys.all, "event")
    codes, names = _groups(cols, by)
    ok = ~np.isnan(yv) & ~np.isnan(xv)
    codes = np.where(ok, codes, -1)
    present = np.unique(codes[codes >= 0])
    if len(names) == 1 or len(present) == 1:  # the common case: one group, no mask per group
        sel_of = {int(c): ok for c in present}
    else:
        order = np.argsort(codes, kind="stable")
        bounds = [*np.searchsorted(codes[order], present, side="left").tolist(), len(order)]
        sel_of = {int(c): order[bounds[j] : bounds[j + 1]] for j, c in enumerate(present)}
    # series in the order their first point was recorded
    first = {c: int(np.argmax(sel)) if sel.dtype == bool else int(sel[0]) for c, sel in sel_of.items()}
    out: list[Series] = []
    for c in sorted(sel_of, key=first.__getitem__):
        sel = sel_of[c]
        out.append(make_series(names[c], xv[sel], yv[sel], smooth_points=smooth_points, max_points=max_points))
    return SeriesSet("events", kind, y, x_key, by, out)


def make_series(
    name: str, x: np.ndarray, y: np.ndarray, *, smooth_points: int = 0, max_points: int = MAX_POINTS
) -> Series:
    """One series: sorted by x (stable), smoothed, then downsampled.

    Example:
        >>> make_series("a", np.array([2.0, 1.0]), np.array([20.0, 10.0])).y
        array([10., 20.])
    """
    if len(x) > 1 and not bool(np.all(x[1:] >= x[:-1])):
        order = np.argsort(x, kind="stable")
        x, y = x[order], y[order]
    if smooth_points > 1:
        y = smooth(y, smooth_points)
    count = len(x)
    if max_points and count > max_points:
        keep = downsample(x, y, max_points)
        x, y = x[keep], y[keep]
    return Series(name, x, y, count)


# -- display arithmetic -------------------------------------------------------------------------
def downsample(x: np.ndarray, y: np.ndarray, max_points: int = MAX_POINTS) -> np.ndarray:
    """Indices of at most ``max_points`` points of a series sorted by ``x``: the first, the last, and
    the lowest and highest point of each of ``(max_points - 2) // 2`` equal-width x buckets.

    Every kept point is a true point (the tooltip shows real values), and every peak and dip
    the chart's pixel columns could show is kept.

    Example:
        >>> x = np.arange(10_000.0); y = np.sin(x / 100)
        >>> idx = downsample(x, y, 200); len(idx) <= 200, y[idx].max() == y.max()
        (True, True)
    """
    n = len(x)
    if n <= max_points:
        return np.arange(n)
    buckets = max(1, (max_points - 2) // 2)
    xf = np.asarray(x, dtype=np.float64)
    span = xf[-1] - xf[0]
    if span > 0 and math.isfinite(span):
        b = np.minimum(((xf - xf[0]) * (buckets / span)).astype(np.int64), buckets - 1)
    else:
        b = np.arange(n) * buckets // n
    starts = np.concatenate(([0], np.flatnonzero(np.diff(b)) + 1))
    seg = np.repeat(np.arange(len(starts)), np.diff(np.append(starts, n)))
    keep = [np.array([0, n - 1])]
    for reduce in (np.minimum, np.maximum):
        best = reduce.reduceat(y, starts)
        hits = np.flatnonzero(y == best[seg])
        first = np.concatenate(([True], seg[hits][1:] != seg[hits][:-1]))
        keep.append(hits[first])
    return np.unique(np.concatenate(keep))


def smooth(y: np.ndarray, points: int) -> np.ndarray:
    """A trailing rolling mean over ``points`` points (the first ones average what there is).

    Example:
        >>> smooth(np.array([1.0, 3.0, 5.0, 7.0]), 2)
        array([1., 2., 4., 6.])
    """
    if points <= 1 or len(y) == 0:
        return np.asarray(y, dtype=np.float64)
    c = np.cumsum(np.asarray(y, dtype=np.float64))
    out = c.copy()
    out[points:] = c[points:] - c[:-points]
    counts = np.minimum(np.arange(1, len(y) + 1), points)
    return out / counts


# -- artifacts --------------------------------------------------------------------------------------
def artifact_points(
    artifacts: ArtifactStore,
    kind: str,
    *,
    y: str,
    x: str,
    by: str | None = None,
    where: ScopeFilter = ScopeFilter(),
) -> SeriesSet:
    """A scatter of the artifacts of ``kind``: metric ``y`` against label or metric ``x``.

    One series per value of label ``by`` (or one series); each point carries its artifact id
    and a hover text (short id, name, labels, metrics). Label values that are not numbers are
    plotted as categories (``x`` holds their text then).

    Raises:
        NotFoundError: no artifact of ``kind`` in scope has metric ``y`` or ``x`` (the message
            names the metrics and labels that exist).

    Example:
        >>> artifact_points(store.artifacts, "checkpoint", y="val_acc", x="lr").series[0].ids  # doctest: +SKIP
        ['01J...', '01J...']
    """
    check_kind(kind)
    arts = sorted(artifacts.list(kind=kind, where=where), key=lambda a: a.artifact_id)  # oldest first
    if not arts:
        raise NotFoundError(f"no {kind!r} artifacts in this scope; save some with metrics, or try --scope all")
    have_metrics = sorted({m for a in arts for m in a.metrics})
    have_labels = sorted({k for a in arts for k in a.labels})
    if y not in have_metrics:
        raise NotFoundError(
            f"no {kind} artifact has metric {y!r}; metrics: {', '.join(have_metrics) or 'none'}"
            f"; labels: {', '.join(have_labels) or 'none'}"
        )
    if x not in have_metrics and x not in have_labels:
        raise NotFoundError(
            f"no {kind} artifact has a metric or label {x!r}; metrics: {', '.join(have_metrics) or 'none'}"
            f"; labels: {', '.join(have_labels) or 'none'}"
        )
    groups: dict[str, list[tuple[Any, float, Artifact]]] = {}
    for a in arts:
        yv = a.metrics.get(y)
        xv = a.metrics[x] if x in a.metrics else a.labels.get(x)
        if yv is None or xv is None:
            continue
        name = NO_VALUE if by is None else _label_text(a.labels.get(by))
        groups.setdefault(name if by is not None else y, []).append((xv, float(yv), a))
    numeric = all(isinstance(p[0], int | float) and not isinstance(p[0], bool) for pts in groups.values() for p in pts)
    out = []
    for name, pts in groups.items():
        xs = np.array([float(p[0]) for p in pts]) if numeric else np.array([_label_text(p[0]) for p in pts], object)
        out.append(
            Series(
                name, xs, np.array([p[1] for p in pts]), len(pts),
                ids=[p[2].artifact_id for p in pts], hover=[artifact_hover(p[2]) for p in pts],
            )
        )  # fmt: skip
    return SeriesSet("artifacts", kind, y, x, by or "", out)


def _label_text(v: Any) -> str:
    if v is None:
        return NO_VALUE
    return v if isinstance(v, str) else json.dumps(v)


def artifact_hover(a: Artifact) -> str:
    """Plain text (not markup) describing one artifact: short id, name, labels, metrics, one per line."""
    lines = [a.short_id + (f"  {a.name}" if a.name else "")]
    lines += [f"{k}={_label_text(v)}" for k, v in sorted(a.labels.items())]
    lines += [f"{k}={v:.6g}" for k, v in sorted(a.metrics.items())]
    return "\n".join(lines)


# -- live ------------------------------------------------------------------------------------------
class LiveSeries:
    """:func:`event_series` kept current: a full read once, then only the hot window's new events.

    :meth:`update` takes the events recorded since the last call from the event log's hot window
    (no disk read); when the window has moved past what was seen (more events than it holds came
    in between), it reads only the rows newer than what it has, from the data files that hold
    them and this writer's rows not committed yet. ``record`` does no work for a live chart.

    Example:
        >>> live = LiveSeries(log, "train_log", y="loss")      # doctest: +SKIP
        >>> live.update(); live.series_set().series[0].count   # doctest: +SKIP
        12
    """

    def __init__(
        self, log: EventLog, kind: str, *, y: str, x: str | None = None, where: ScopeFilter = ScopeFilter()
    ) -> None:
        self.log = log
        self.kind = kind
        self.y = y
        self.x = x
        self.where = where
        self.reloads = 0
        self._x_key = TIME
        self._data: dict[str, tuple[list[np.ndarray], list[np.ndarray]]] = {}
        self._cursor: tuple[int, str] = (0, "")
        self._reload()

    def _reload(self) -> None:
        self.reloads += 1
        cursor = self.log.hot.newest
        cols = read_event_columns(self.log, self.kind, self.where, ids=True)
        if len(cols) == 0:
            raise NotFoundError(f"no {self.kind!r} events in this scope; record some, or try --scope all")
        s = event_series(self.log, self.kind, y=self.y, x=self.x, where=self.where, max_points=0, columns=cols)
        self._x_key = s.x_key
        self._data = {ser.name: ([ser.x], [ser.y]) for ser in s.series}
        last = cols.ts[-1]
        # the newest of what was read, or the window's newest if that is newer (nothing to take twice)
        self._cursor = max(cursor, (int(last), cols.column("event_id")[len(cols) - 1].as_py()))

    @property
    def x_key(self) -> str:
        return self._x_key

    def update(self) -> int:
        """Take in events recorded since the last call; returns how many points were added.

        From the hot window when it still holds everything since the last call; else (a fast loop
        recorded more than the window holds) from this writer's unflushed rows and the Parquet
        parts flushed since: only new rows are read either way.
        """
        hot = self.log.hot
        # a copy: another thread's record appends to the window and trims it in place (the cursor then
        # moves to the newest row of this copy, and a row recorded meanwhile is taken next time)
        items = list(hot.items)
        cursor = self._cursor
        if not items or _row_key(items[-1]) <= cursor:
            return 0
        if not hot.complete and _row_key(items[0]) > cursor:
            t = self._since(cursor)
            newest = max(cursor, _row_key(items[-1]))
            ts = np.asarray(t.column("ts").to_numpy(), dtype=np.int64)
            if len(ts):
                newest = max(newest, (int(ts[-1]), t.column("event_id")[len(ts) - 1].as_py()))
            self._cursor = newest
            metrics = t.column("metrics")
            return self._take(ts, t.column("run_id"), t.column("text"), lambda i: _loads(metrics[i].as_py()))
        lo = bisect.bisect_right(items, cursor, key=_row_key)  # the first row newer than the cursor
        where = self.where
        new = [
            r for r in items[lo:]
            if r["kind"] == self.kind and (not where or where.matches_row(r))
        ]  # fmt: skip
        self._cursor = _row_key(items[-1])
        metrics = [r.get("metrics") for r in new]
        return self._take(
            [r["ts"] for r in new], [r.get("run_id") for r in new], [r.get("text") for r in new],
            lambda i: _loads(metrics[i]),
        )  # fmt: skip

    def _since(self, cursor: tuple[int, str]) -> pa.Table:
        """Events of this kind in scope newer than ``cursor``, as columns sorted by ``(ts, event_id)``, each
        once: the data files that hold rows from ``cursor`` on, then this writer's rows not committed yet.

        Columnar (Arrow filters, no dict per row): a redraw after a loop of 25,000 records took ~90 ms
        through ``to_pylist`` (~4 us a row, most of a live chart's cost to ``record``)."""
        table = self.log.table
        c_ts, c_id = cursor
        where = self.where
        names = ["event_id", "ts", "run_id", "text", "metrics"]
        names += [c for c, on in (("graph_id", where.graph_id), ("node_id", where.node_id)) if on is not None]
        schema = pa.schema([_SCHEMA.field(n) for n in names])
        kind = self.kind
        # this writer's rows not committed yet, before the data files: a commit leaves them only once
        # its file is in the table, so a row committed between the two reads is in the files listed
        # after (read in the other order, it would be in neither, and missed for good)
        rows = [r for r in table.pending_rows if r.get("kind") == kind and r["ts"] >= c_ts]
        pieces = []
        for part in table.list_parts([self.kind]):
            if part.name.max_ts < c_ts:
                continue
            t = table.read_part_table(part, columns=names, since_us=c_ts)
            if t is None or t.num_rows == 0:
                continue
            pieces.append(_conform(t, schema, names))
        if rows:
            pieces.append(pa.table([[r.get(c) for r in rows] for c in names], schema=schema))
        if not pieces:
            return schema.empty_table()
        t = pa.concat_tables(pieces)
        ts, ids = t.column("ts"), t.column("event_id")
        keep = pc.fill_null(pc.or_(pc.greater(ts, c_ts), pc.and_(pc.equal(ts, c_ts), pc.greater(ids, c_id))), False)
        if (scope := _in_scope(t, self.where)) is not None:
            keep = pc.and_(keep, scope)
        t = t.filter(keep).sort_by([("ts", "ascending"), ("event_id", "ascending")])
        n = t.num_rows
        if n > 1:  # a row both committed and still in a closed spool (a commit meanwhile): once
            ids = t.column("event_id").combine_chunks()
            again = pc.fill_null(pc.equal(ids.slice(1), ids.slice(0, n - 1)), False)
            t = t.filter(pa.concat_arrays([pa.array([True]), pc.invert(again)]))
        return t

    def _take(self, ts: Sequence[int] | np.ndarray, runs: Any, texts: Any, metrics_of: Any) -> int:
        """Append the points of new events (``ts``, and ``runs`` / ``texts`` as lists or Arrow arrays)."""
        if not len(ts):
            return 0
        # the numbers of all new events at once (Arrow string kernels), not json.loads per event
        arr = _string_array(texts)
        yv = self._values(arr, metrics_of, self.y)
        xv = np.array(ts, dtype=np.float64) if self._x_key == TIME else self._values(arr, metrics_of, self._x_key)
        ok = ~np.isnan(yv) & ~np.isnan(xv)
        # the groups by dictionary code, in the order they first show up ("" and null: NO_VALUE)
        run_ids = _string_array(runs)
        run_ids = pc.if_else(pc.fill_null(pc.equal(run_ids, ""), True), pa.scalar(None, pa.string()), run_ids)
        encoded = run_ids.dictionary_encode()
        codes = np.asarray(pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False), dtype=np.int64)
        labels = [*encoded.dictionary.to_pylist(), NO_VALUE]  # (code -1: the last)
        present, first = np.unique(codes[ok], return_index=True)
        n = 0
        for code in present[np.argsort(first)].tolist():
            sel = ok & (codes == code)
            bx, by_ = self._data.setdefault(labels[code], ([], []))
            bx.append(xv[sel])
            by_.append(yv[sel])
            n += int(sel.sum())
        return n

    @staticmethod
    def _values(texts: pa.Array, metrics_of: Any, key: str) -> np.ndarray:
        values = numbers(texts, key)
        for i in np.flatnonzero(np.isnan(values)):  # not in data: a metric of that name, if any
            metrics = metrics_of(int(i))
            if isinstance(metrics, dict) and isinstance(metrics.get(key), int | float):
                values[i] = float(metrics[key])
        return values

    @property
    def count(self) -> int:
        return sum(sum(len(a) for a in xs) for xs, _ys in self._data.values())

    @property
    def names(self) -> list[str]:
        """The groups (run ids) seen so far."""
        return list(self._data)

    def series_set(
        self, *, names: Sequence[str] | None = None, smooth_points: int = 0, max_points: int = MAX_POINTS
    ) -> SeriesSet:
        """The series of the groups ``names`` (default: all), smoothed and downsampled for display."""
        out = []
        for name in names if names is not None else self.names:
            if name not in self._data:
                continue
            xs, ys = self._data[name]
            if len(xs) > 1:  # keep one array per group: the next call concatenates only what is new
                xs[:] = [np.concatenate(xs)]
                ys[:] = [np.concatenate(ys)]
            out.append(make_series(name, xs[0], ys[0], smooth_points=smooth_points, max_points=max_points))
        return SeriesSet("events", self.kind, self.y, self._x_key, RUN, out)


def event_time_us(ev: Event) -> int:
    """An event's time in microseconds since the epoch."""
    return iso_to_us(ev.ts)


def check_points(n: int) -> int:
    """A smoothing window or point budget: an int >= 0."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise InvalidInputError(f"expected a whole number >= 0, got {n!r}")
    return n


__all__ = [
    "MAX_POINTS",
    "NO_VALUE",
    "RUN",
    "STEP_KEYS",
    "TIME",
    "EventColumns",
    "KindKeys",
    "LiveSeries",
    "Series",
    "SeriesSet",
    "artifact_hover",
    "artifact_points",
    "downsample",
    "event_series",
    "kind_keys",
    "make_series",
    "numbers",
    "numeric_keys",
    "read_event_columns",
    "smooth",
    "values_of",
]
