"""pandas DataFrames for people: the only module that builds DataFrames.

Columns are stable (docs/architecture.md, "Frames"): fixed columns first, then one ``label.<key>`` /
``metric.<name>`` (artifacts) or ``data.<key>`` / ``metric.<name>`` / ``out.<name>`` (events)
column per key that occurs.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..base.models import Artifact, Event
from ..base.times import datetime_to_us

if TYPE_CHECKING:
    import pandas as pd

    from .runs import RunSummary

ARTIFACT_COLUMNS = [
    "artifact_id", "kind", "name", "uri", "created_at", "run_id", "graph_id", "node_id", "pinned", "size",
]  # fmt: skip
EVENT_COLUMNS = ["event_id", "ts", "kind", "topic", "run_id", "graph_id", "node_id", "text"]
_NAT = -(2**63)  # numpy's NaT as int64
RUN_COLUMNS = ["run_id", "graph_id", "first", "last", "artifacts", "events"]  # runs_frame adds "name" second


def artifacts_frame(arts: Sequence[Artifact]) -> pd.DataFrame:
    """Artifacts -> DataFrame, in the given order.

    Example:
        >>> artifacts_frame(await arts.search(kind="checkpoint"))   # doctest: +SKIP
    """
    import numpy as np

    n = len(arts)
    cols: dict[str, Any] = _str_columns(arts, ("artifact_id", "kind", "name", "uri", "run_id", "graph_id", "node_id"))
    cols["created_at"] = _utc_micros([_micros_or_nat(a.created_at) for a in arts])
    cols["pinned"] = np.fromiter((bool(a.pinned) for a in arts), dtype=bool, count=n)
    cols["size"] = np.fromiter((a.size for a in arts), dtype=np.int64, count=n)
    cols = {c: cols[c] for c in ARTIFACT_COLUMNS}  # the documented column order
    extra: dict[str, list[Any]] = {}
    for i, a in enumerate(arts):
        for k, v in a.labels.items():
            extra.setdefault(f"label.{k}", [None] * n)[i] = v
        for k, v in a.metrics.items():
            extra.setdefault(f"metric.{k}", [None] * n)[i] = v
    for c in sorted(c for c in extra if c.startswith("label.")):
        cols[c] = _objects(extra[c])
    for c in sorted(c for c in extra if c.startswith("metric.")):
        cols[c] = np.array(extra[c], dtype="float64")
    return frame_of(cols, n)


def events_frame(events: Sequence[Event], *, newest_first: bool = True) -> pd.DataFrame:
    """Events -> DataFrame; newest first by default (``recent`` lists are oldest first)."""
    import numpy as np

    evs = list(reversed(events)) if newest_first else list(events)
    n = len(evs)
    cols: dict[str, Any] = {
        **_str_columns(evs, ("event_id", "kind", "topic", "run_id", "graph_id", "node_id", "text")),
        "ts": _utc_micros([_iso_micros(e.ts) for e in evs]),
    }
    cols = {c: cols[c] for c in EVENT_COLUMNS}  # the documented column order
    extra: dict[str, list[Any]] = {}
    for i, e in enumerate(evs):
        data = e.data
        if isinstance(data, dict):
            for k, v in data.items():
                extra.setdefault(f"data.{k}", [None] * n)[i] = v
        for k, v in (e.metrics or {}).items():
            extra.setdefault(f"metric.{k}", [None] * n)[i] = v
        for v in e.outputs or ():
            extra.setdefault(f"out.{v.name}", [None] * n)[i] = v.value
    for prefix in ("data.", "metric.", "out."):
        for c in sorted(c for c in extra if c.startswith(prefix)):
            cols[c] = np.array(extra[c], dtype="float64") if prefix == "metric." else _objects(extra[c])
    return frame_of(cols, n)


def frame_of(cols: dict[str, Any], n: int) -> pd.DataFrame:
    """A DataFrame of ``n`` rows from finished columns (numpy 1-D arrays or pandas extension arrays,
    each of its final dtype), in the given order.

    NOTE: ``pd.DataFrame(dict)`` costs ~40 us a column in pandas 3 (sanitizing, inferring, consolidating:
    ~1.3 ms for a 10-row, 14-column frame, whose budget is 1 ms, docs/architecture.md). The columns
    here are final, so the frame is made from them as blocks (``pandas.api.internals``, pandas >= 3):
    ~4x faster. Neighbouring numpy columns of one dtype (the ``metric.*`` floats, the ``label.*``
    objects) go in one 2-D block, as pandas itself would consolidate them, and the column index of a
    given list of names is made once. pandas 2 takes the dict.
    """
    import numpy as np
    import pandas as pd

    index = pd.RangeIndex(n)
    make = _from_blocks()
    if make is None:
        return pd.DataFrame(
            {c: pd.Series(v, index=index, copy=False) if isinstance(v, np.ndarray) and v.dtype == object else v
             for c, v in cols.items()},
            index=index, copy=False,
        )  # fmt: skip
    blocks = []
    run: list[np.ndarray] = []  # numpy columns of one dtype in a row, waiting to become one block
    start = 0

    def close_run() -> None:
        if run:
            values = run[0].reshape(1, n) if len(run) == 1 else np.vstack(run)
            blocks.append((values, np.arange(start, start + len(run), dtype=np.intp)))
            run.clear()

    for i, v in enumerate(cols.values()):
        if isinstance(v, np.ndarray):
            if run and v.dtype != run[0].dtype:
                close_run()
            if not run:
                start = i
            run.append(v)
            continue
        close_run()
        blocks.append((v, np.array([i], dtype=np.intp)))
    close_run()
    # a view of the shared index: `df.columns.name = ...` sets the name of this frame's own object
    columns = _column_index(tuple(cols)).view()
    return make(blocks, index=index, columns=columns)  # type: ignore[no-any-return]


@functools.lru_cache(maxsize=256)
def _column_index(names: tuple[str, ...]) -> pd.Index:
    """The column index of ``names``: ``pd.Index`` of strings costs ~60 us in pandas 3; its values are
    immutable, so frames with the same columns share them (each frame gets a view, ~1 us)."""
    import pandas as pd

    return pd.Index(list(names))


@functools.cache
def _from_blocks() -> Any:
    """``pandas.api.internals.create_dataframe_from_blocks`` (pandas >= 3), or None."""
    try:
        from pandas.api.internals import create_dataframe_from_blocks
    except ImportError:
        return None
    return create_dataframe_from_blocks


def _micros_or_nat(dt: datetime | None) -> int:
    return datetime_to_us(dt) if dt is not None else _NAT


def _iso_micros(ts: str) -> int:
    return datetime_to_us(datetime.fromisoformat(ts))


def _utc_micros(micros: list[int]) -> Any:
    """int microseconds since the epoch (``_NAT`` for none) -> a ``datetime64[us, UTC]`` pandas array."""
    import numpy as np
    import pandas as pd

    arr = np.array(micros, dtype=np.int64).view("datetime64[us]")
    return pd.DatetimeIndex(arr).tz_localize("UTC").array


def _str_columns(items: Sequence[Any], names: Sequence[str]) -> dict[str, Any]:
    """The string attributes ``names`` of ``items`` as pandas arrays of the default string dtype.

    NOTE: they are converted as one Arrow array and sliced: pandas 3 has a fixed cost per converted
    list, whatever its length (~80 us for ``pd.array`` of 70 strings, ~10 us for ``pa.array``), and a
    10-row frame has a 1 ms budget (docs/architecture.md).
    """
    import pandas as pd

    n = len(items)
    values = [getattr(x, name) for name in names for x in items]
    if int(pd.__version__.split(".")[0]) < 3:  # pandas 2: object columns
        whole = pd.array(values, dtype=object)
        return {name: whole[i * n : (i + 1) * n] for i, name in enumerate(names)}
    import pyarrow as pa

    dtype = pd.StringDtype("pyarrow", na_value=float("nan"))  # what dtype="str" means in pandas 3
    try:
        whole = pa.array(values, type=pa.large_string())
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # a value that is not a str: let pandas convert it
        whole = pa.array([None if v is None else str(v) for v in values], type=pa.large_string())
    return {name: pd.arrays.ArrowStringArray(whole.slice(i * n, n), dtype=dtype) for i, name in enumerate(names)}


def _objects(values: list[Any]) -> Any:
    """A column of Python objects kept as they are (no string or number inference)."""
    import numpy as np

    arr = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):  # one by one: a list value must stay one cell
        arr[i] = v
    return arr


def runs_frame(runs: Sequence[RunSummary]) -> pd.DataFrame:
    """Run summaries (:func:`aeg_jupyter.core.runs.summarize_runs`) -> DataFrame, in the given order.

    Example:
        >>> runs_frame(summarize_runs(store))[["run_id", "artifacts", "events"]]   # doctest: +SKIP
    """
    import pandas as pd

    from .runs import run_name

    df = pd.DataFrame({c: [getattr(r, c) for r in runs] for c in RUN_COLUMNS}, columns=RUN_COLUMNS)
    df.insert(1, "name", pd.Series([run_name(r.run_id) for r in runs], dtype=object))
    for c in ("first", "last"):
        df[c] = pd.to_datetime(df[c], utc=True)
    for c in ("artifacts", "events"):
        df[c] = df[c].astype("int64")
    return df


def leaderboard_frame(
    ranked: Sequence[Artifact], *, metric: str, group_by: str | None = None, now: datetime | None = None
) -> pd.DataFrame:
    """Ranked artifacts (best first) -> DataFrame: ``rank``, ``short_id``, the artifact columns, ``age``.

    ``metric.<metric>`` (and ``label.<group_by>``) exist even when no row has them, so the columns
    of a leaderboard are stable. ``age`` is ``now - created_at`` (a Timedelta).

    Example:
        >>> leaderboard_frame(ranked(index, kind="checkpoint", metric="val_acc"), metric="val_acc")  # doctest: +SKIP
    """
    import pandas as pd

    df = artifacts_frame(ranked)
    df.insert(0, "rank", pd.Series(range(1, len(df) + 1), dtype="int64"))
    df.insert(1, "short_id", pd.Series([a.short_id for a in ranked], dtype=object))
    stamp = pd.Timestamp.now(tz="UTC") if now is None else pd.Timestamp(now)
    if stamp.tzinfo is None:
        stamp = stamp.tz_localize("UTC")
    df.insert(df.columns.get_loc("created_at") + 1, "age", stamp - df["created_at"])
    if metric and f"metric.{metric}" not in df.columns:
        df[f"metric.{metric}"] = pd.Series([None] * len(df), dtype="float64")
    if group_by is not None and f"label.{group_by}" not in df.columns:
        df[f"label.{group_by}"] = pd.Series([None] * len(df), dtype=object)
    fixed = [c for c in df.columns if not c.startswith(("label.", "metric."))]
    labels = sorted(c for c in df.columns if c.startswith("label."))
    metrics = sorted(c for c in df.columns if c.startswith("metric."))
    return df[fixed + labels + metrics]


def artifacts_view(
    arts: Sequence[Artifact],
    *,
    metric: str | None = None,
    group_by: str | None = None,
    ranked: bool = False,
    now: datetime | None = None,
) -> pd.DataFrame:
    """Artifacts as a table for people: what was asked first, short ids, human ages, rounded metrics.

    Columns: ``rank`` (when ``ranked``), ``short_id`` (the last 8 characters), ``metric.<metric>``
    and ``label.<group_by>`` (when given), ``name``, ``kind`` (when more than one), the other
    ``label.*`` and ``metric.*`` columns, ``age`` ("4 min ago"), ``created`` (local time, to the
    second) and ``run`` (the run's name, :func:`~aeg_jupyter.core.runs.run_name`). Metrics are rounded
    to 4 significant digits. The full columns are :func:`artifacts_frame`'s (``--all-columns``).

    Example:
        >>> artifacts_view(ranked(index, kind="checkpoint", metric="val_acc"), metric="val_acc", ranked=True)  # doctest: +SKIP
           rank  short_id  metric.val_acc  name  ...        age              created  run
    """
    import pandas as pd

    from .runs import run_name

    full = artifacts_frame(arts)
    cols: dict[str, Any] = {}
    if ranked:
        cols["rank"] = pd.Series(range(1, len(arts) + 1), dtype="int64")
    cols["short_id"] = pd.Series([a.short_id for a in arts], dtype=object)
    lead = [c for c in (f"metric.{metric}" if metric else None, f"label.{group_by}" if group_by else None) if c]
    for c in lead:
        cols[c] = full[c] if c in full.columns else pd.Series([None] * len(arts), dtype=object)
    cols["name"] = full["name"]
    if len({a.kind for a in arts}) > 1:
        cols["kind"] = full["kind"]
    for prefix in ("label.", "metric."):
        for c in full.columns:
            if c.startswith(prefix) and c not in cols:
                cols[c] = full[c]
    stamp = datetime.now().astimezone() if now is None else now
    cols["age"] = pd.Series([human_age(a.created_at, stamp) for a in arts], dtype=object)
    cols["created"] = _local_seconds(full["created_at"])
    cols["run"] = pd.Series([run_name(a.run_id) for a in arts], dtype=object)
    df = pd.DataFrame(cols)
    return _round_metrics(df)


def events_view(events: Sequence[Event], *, now: datetime | None = None) -> pd.DataFrame:
    """Events as a table for people, newest first: ``age``, ``time`` (local), ``kind``, ``topic`` (when any),
    the ``data.*``, ``metric.*`` and ``out.*`` columns, ``text`` only for events whose data is text (not the
    JSON of ``data.*`` again), and ``run``. The full columns are :func:`events_frame`'s (``--all-columns``).

    Example:
        >>> events_view(event_log.recent(kinds=["train_log"], limit=5))   # doctest: +SKIP
    """
    import pandas as pd

    from .runs import run_name

    full = events_frame(events)
    evs = list(reversed(events))
    stamp = datetime.now().astimezone() if now is None else now
    cols: dict[str, Any] = {
        "age": pd.Series([human_age(datetime.fromisoformat(e.ts), stamp) for e in evs], dtype=object),
        "time": _local_seconds(full["ts"]),
        "kind": full["kind"],
    }
    if any(e.topic for e in evs):
        cols["topic"] = full["topic"]
    for prefix in ("data.", "metric.", "out."):
        for c in full.columns:
            if c.startswith(prefix):
                cols[c] = full[c]
    texts = [e.data if isinstance(e.data, str) else "" for e in evs]
    if any(texts):
        cols["text"] = pd.Series(texts, dtype=object)
    cols["run"] = pd.Series([run_name(e.run_id) for e in evs], dtype=object)
    return _round_metrics(pd.DataFrame(cols))


def _local_seconds(column: Any) -> Any:
    """UTC timestamps as local time, to the second (what people read)."""
    local = datetime.now().astimezone().tzinfo
    return column.dt.tz_convert(local).dt.floor("s")


def _round_metrics(df: pd.DataFrame) -> pd.DataFrame:
    """Float ``metric.*`` / ``out.*`` columns rounded to 4 significant digits (0.912345 -> 0.9123)."""
    import numpy as np

    for c in df.columns:
        if c.startswith(("metric.", "out.")) and df[c].dtype.kind == "f":
            v = df[c].to_numpy(dtype="float64", copy=True)
            with np.errstate(divide="ignore", invalid="ignore"):
                mag = np.where(np.isfinite(v) & (v != 0), np.floor(np.log10(np.abs(v))), 0)
            df[c] = np.round(v * 10.0 ** (3 - mag)) / 10.0 ** (3 - mag)
    return df


def human_age(then: datetime | None, now: datetime | None = None) -> str:
    """How long ago, for people: ``"just now"``, ``"42 s ago"``, ``"4 min ago"``, ``"3 h ago"``, ``"2 days ago"``.

    Example:
        >>> from datetime import UTC, timedelta
        >>> now = datetime(2026, 1, 2, tzinfo=UTC)
        >>> human_age(now - timedelta(minutes=4, seconds=8), now), human_age(now - timedelta(days=1), now)
        ('4 min ago', '1 day ago')
    """
    if then is None:
        return ""
    from datetime import UTC

    secs = max(0.0, ((now or datetime.now(UTC)) - then).total_seconds())
    if secs < 1:
        return "just now"
    for unit, size in (("day", 86400), ("h", 3600), ("min", 60)):
        if secs >= size:
            n = int(secs // size)
            return f"{n} {unit}{'s' if unit == 'day' and n != 1 else ''} ago"
    return f"{int(secs)} s ago"


def gc_frame(doomed: Sequence[Any], *, now: datetime | None = None) -> pd.DataFrame:
    """What ``gc`` deletes (or would): ``short_id, kind, name, age, size, why not kept, artifact_id``, oldest first.

    ``doomed`` are :class:`~aeg_jupyter.core.retention.Doomed` (an artifact and a reason).

    Example:
        >>> gc_frame(report.doomed)[["short_id", "why not kept"]]   # doctest: +SKIP
    """
    import pandas as pd

    from ..base.models import _human_size

    cols = ["short_id", "kind", "name", "age", "size", "why not kept", "artifact_id"]
    rows = [
        [
            d.artifact.short_id, d.artifact.kind, d.artifact.name or "", human_age(d.artifact.created_at, now),
            _human_size(d.artifact.size), d.reason, d.artifact.artifact_id,
        ]
        for d in doomed
    ]  # fmt: skip
    return pd.DataFrame(rows, columns=cols, dtype=object)


def table_head(
    path: str | io.BytesIO, *, fmt: str, rows: int = 10, max_columns: int = 30
) -> tuple[pd.DataFrame, int | None, int]:
    """The first ``rows`` rows and ``max_columns`` columns of a Parquet or CSV file (a path, or the bytes
    of content held inline in its row), read boundedly.

    Returns ``(frame, total_rows, total_columns)``; ``total_rows`` is ``None`` when unknown without
    reading the whole file (CSV). Parquet reads the first record batch of the chosen columns; CSV
    parses only the first block (1 MiB).

    Example:
        >>> df, n_rows, n_cols = table_head("metrics.parquet", fmt="parquet", rows=5)   # doctest: +SKIP
    """
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pf = pq.ParquetFile(path)
        names = pf.schema_arrow.names
        cols = names[:max_columns]
        batch = next(pf.iter_batches(batch_size=max(rows, 1), columns=cols), None)
        table = pa.Table.from_batches([batch]) if batch is not None else pf.schema_arrow.empty_table().select(cols)
        return table.slice(0, rows).to_pandas(), pf.metadata.num_rows, len(names)
    if fmt in ("csv", "tsv"):
        import pyarrow.csv as pacsv

        reader = pacsv.open_csv(
            path,
            read_options=pacsv.ReadOptions(block_size=1 << 20),
            parse_options=pacsv.ParseOptions(delimiter="\t" if fmt == "tsv" else ","),
        )
        names = reader.schema.names
        batch = reader.read_next_batch()
        reader.close()
        return batch.select(list(range(min(len(names), max_columns)))).slice(0, rows).to_pandas(), None, len(names)
    raise ValueError(f"table_head reads 'parquet', 'csv' or 'tsv', not {fmt!r}")


LINEAGE_COLUMNS = [
    "depth", "artifact_id", "kind", "name", "run_id", "graph_id", "node_id", "source_path", "cell_id",
    "execution_count", "source_hash", "inputs", "python", "git_commit", "source", "uri",
]  # fmt: skip


def lineage_frame(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """A lineage as a table (``Lineage.df``): one row per artifact, the root at depth 0, inputs at
    1, 2, ..., what was made from it at -1."""
    import pandas as pd

    return pd.DataFrame([{c: r.get(c) for c in LINEAGE_COLUMNS} for r in rows], columns=LINEAGE_COLUMNS)
