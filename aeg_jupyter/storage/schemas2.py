"""Store format 2's table schemas (typed columns) and their row <-> Arrow codecs.

Format 2 keeps format 1's rows (flat dicts, as a spool line holds them) and gives the tables
typed columns: labels as a map to a one-field-set struct (the exact type survives a round trip),
metrics as ``map<string, double>``, timestamps as UTC microseconds, small content inline. Every
column is documented in ``docs/format2.md`` as an external engine sees it.

A spool row may carry ``labels`` / ``metrics`` as dicts or as format 1's JSON text (a migrated or
older row), and inline content as ``content`` bytes or ``content_b64`` text (a JSON line holds no
bytes); :func:`artifact_rows_to_arrow` takes either.
"""

from __future__ import annotations

import base64
import json
import math
import re
import warnings
from collections.abc import Iterable, Mapping
from typing import Any

import pyarrow as pa

from ..base.errors import StoreWarning
from ..base.models import Artifact
from ..base.times import ts_to_datetime
from .schemas import Row, as_micros

INLINE_MAX = 4096  # content up to this many bytes lives in the artifact row (docs/format2.md)
PARTITION = "kind"

_TS = pa.timestamp("us", tz="UTC")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1

LABEL_VALUE = pa.struct(
    [
        ("s", pa.string()),  # str
        ("i", pa.int64()),  # int
        ("f", pa.float64()),  # float
        ("b", pa.bool_()),  # bool
        ("j", pa.string()),  # JSON text of anything else (an int outside int64)
    ]
)
LABELS = pa.map_(pa.string(), LABEL_VALUE)
METRICS = pa.map_(pa.string(), pa.float64())

ARTIFACTS2_SCHEMA = pa.schema(
    [
        pa.field("artifact_id", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("created_at", _TS, nullable=False),
        pa.field("uri", pa.string(), nullable=False),
        ("size", pa.int64()),
        ("name", pa.string()),
        ("mime", pa.string()),
        ("run_id", pa.string()),
        ("graph_id", pa.string()),
        ("node_id", pa.string()),
        pa.field("pinned", pa.bool_(), nullable=False),
        ("labels", LABELS),
        ("metrics", METRICS),
        ("preview_uri", pa.string()),
        ("content", pa.binary()),  # the content itself when size <= INLINE_MAX
        # lineage, as format 1 (docs/architecture.md, "Lineage"); `inputs` typed: the ids of the inputs
        ("source_path", pa.string()),
        ("cell_id", pa.string()),
        ("execution_count", pa.int64()),
        ("source_hash", pa.string()),
        ("inputs", pa.list_(pa.string())),
    ]
)
VALUES = pa.list_(pa.struct([("name", pa.string()), ("kind", pa.string()), ("value", pa.string())]))
EVENTS2_SCHEMA = pa.schema(
    [
        pa.field("event_id", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("ts", _TS, nullable=False),
        ("topic", pa.string()),
        ("run_id", pa.string()),
        ("graph_id", pa.string()),
        ("node_id", pa.string()),
        ("text", pa.string()),
        ("inputs", VALUES),  # value: JSON text
        ("outputs", VALUES),
        ("metrics", METRICS),
        ("tags", pa.list_(pa.string())),
        ("severity", pa.int32()),
        ("stage", pa.string()),
        ("version", pa.int32()),
        ("source_path", pa.string()),  # lineage, as format 1
        ("cell_id", pa.string()),
        ("execution_count", pa.int64()),
        ("source_hash", pa.string()),
    ]
)
OPS2_SCHEMA = pa.schema(
    [
        pa.field("op_id", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("ts", _TS, nullable=False),
        pa.field("artifact_id", pa.string(), nullable=False),
    ]
)
SCHEMAS2 = {"artifacts": ARTIFACTS2_SCHEMA, "events": EVENTS2_SCHEMA, "ops": OPS2_SCHEMA}

# One flat float64 column per metric name, and one per label key and value type, beside the maps: a
# flat column reads 5-10x faster than a map (docs/format2.md, "Measured"). Added by schema evolution
# when a batch brings a new name; names outside this pattern stay in the maps only (a Delta column
# name without column mapping is restricted).
# NOTE: lower case only. Delta column names are case-insensitive: a commit bringing `metric.Acc` to a
# table holding `metric.acc` is refused ("Duplicate field name (case-insensitive)"), so the spool
# would never commit. A name with a capital letter is read from the map (correct, slower).
METRIC_COLUMN = "metric."
LABEL_COLUMN = "label."
FLAT_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,63}$")
# the struct field of a label value -> the type of its flat column (``j``, JSON text, stays map-only)
LABEL_FLAT_TYPES = {"s": pa.string(), "i": pa.int64(), "f": pa.float64(), "b": pa.bool_()}


def label_column(key: str, field: str) -> str:
    """The flat column of label ``key``'s values of one type: ``label_column("seed", "i")`` -> ``label.seed.i``."""
    return f"{LABEL_COLUMN}{key}.{field}"


def parse_label_column(name: str) -> tuple[str, str] | None:
    """``label.seed.i`` -> ``("seed", "i")``; None for any other column name."""
    if not name.startswith(LABEL_COLUMN):
        return None
    key, _, field = name[len(LABEL_COLUMN) :].rpartition(".")
    return (key, field) if field in LABEL_FLAT_TYPES and FLAT_NAME.match(key) else None


# the columns an Artifact is built from (everything but the inline content)
ARTIFACT_COLUMNS = [f.name for f in ARTIFACTS2_SCHEMA if f.name not in ("kind", "content")]


# -- labels and metrics ----------------------------------------------------------------------------
def label_value(v: Any) -> dict[str, Any]:
    """One label value as the struct that keeps its type: ``True`` -> ``{"b": True}``, ``3`` -> ``{"i": 3}``."""
    cls = v.__class__
    if cls is str:
        return {"s": v}
    if cls is bool:
        return {"b": v}
    if cls is int:
        return {"i": v} if _INT64_MIN <= v <= _INT64_MAX else {"j": json.dumps(v)}
    if cls is float:
        return {"f": v}
    if isinstance(v, bool):
        return {"b": bool(v)}
    if isinstance(v, str):
        return {"s": str(v)}
    return {"j": json.dumps(v)}


def label_from_struct(d: Mapping[str, Any] | None) -> Any:
    """The label value a struct holds (the one field that is set; ``j`` is JSON text)."""
    if d is None:
        return None
    for f in ("s", "i", "f", "b"):
        v = d.get(f)
        if v is not None:
            return v
    j = d.get("j")
    return json.loads(j) if j is not None else None


def labels_to_entries(labels: Mapping[str, Any] | str | None) -> list[tuple[str, dict[str, Any]]]:
    """A labels dict (or format 1's JSON text) as map entries."""
    if isinstance(labels, str):
        labels = _json_object(labels)
    if not labels:
        return []
    return [(k, label_value(v)) for k, v in labels.items()]


def labels_from_entries(entries: Iterable[tuple[str, Mapping[str, Any] | None]] | None) -> dict[str, Any]:
    """Map entries (``to_pylist`` of a labels cell) back to the labels dict, types exact."""
    if not entries:
        return {}
    return {k: label_from_struct(v) for k, v in entries}


def clean_metrics(metrics: Mapping[str, Any] | str | None) -> dict[str, float]:
    """A metrics dict (or format 1's JSON text) with finite numbers only, as format 1 reads one: a damaged
    cell reads as ``{}`` and a value that is not a finite number (``{"acc": "high"}`` from a foreign
    writer's spool) is dropped, each with a ``StoreWarning``.

    Example:
        >>> clean_metrics('{"acc": 0.5}')
        {'acc': 0.5}
    """
    if isinstance(metrics, str):
        metrics = _json_object(metrics, "metrics")
    if not metrics:
        return {}
    out = {
        k: float(v)
        for k, v in metrics.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    }
    if len(out) != len(metrics):
        bad = [k for k in metrics if k not in out][:3]
        warnings.warn(f"non-numeric metrics {bad} in a spooled row are ignored", StoreWarning, stacklevel=2)
    return out


def metrics_to_entries(metrics: Mapping[str, Any] | str | None) -> list[tuple[str, float]]:
    """A metrics dict (or format 1's JSON text) as map entries (:func:`clean_metrics`)."""
    return list(clean_metrics(metrics).items())


def tags_from_json(tags: str | list[str] | None) -> list[str] | None:
    """An event's tags (a list, or JSON text); a damaged cell reads as null with a ``StoreWarning``."""
    if not isinstance(tags, str):
        return tags
    try:
        value = json.loads(tags)
    except (ValueError, RecursionError):
        value = None
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        warnings.warn("an event's damaged tags cell reads as null", StoreWarning, stacklevel=2)
        return None
    return value


def _json_object(text: str, what: str = "labels") -> dict[str, Any]:
    try:
        obj = json.loads(text) if text else {}
    except (ValueError, RecursionError):
        obj = None
    if not isinstance(obj, dict):
        warnings.warn(f"a damaged {what} cell in a spooled row reads as {{}}", StoreWarning, stacklevel=3)
        return {}
    return obj


# -- artifacts -------------------------------------------------------------------------------------
def row_content(row: Row) -> bytes | None:
    """The inline content of a spool row (``content`` bytes or ``content_b64`` text), if any."""
    content = row.get("content")
    if content is None and row.get("content_b64") is not None:
        content = base64.b64decode(row["content_b64"])
    return content  # type: ignore[no-any-return]


def artifact_rows_to_arrow(rows: list[Row]) -> pa.Table:
    """Spool rows of the artifacts table -> an Arrow table with :data:`ARTIFACTS2_SCHEMA`.

    Example:
        >>> t = artifact_rows_to_arrow([{"artifact_id": "01A", "kind": "note", "created_at": 1,
        ...     "uri": "cas://blake3/00", "labels": {"seed": 3}, "metrics": {"acc": 0.5}}])
        >>> t.column("labels").to_pylist()[0]
        [('seed', {'s': None, 'i': 3, 'f': None, 'b': None, 'j': None})]
    """
    cols: dict[str, list[Any]] = {f.name: [] for f in ARTIFACTS2_SCHEMA}
    metrics: list[dict[str, float]] = []
    for r in rows:
        cols["artifact_id"].append(r["artifact_id"])
        cols["kind"].append(r["kind"])
        cols["created_at"].append(r["created_at"])
        cols["uri"].append(r["uri"])
        cols["size"].append(r.get("size") or 0)
        for name in ("name", "mime", "run_id", "graph_id", "node_id", "preview_uri"):
            cols[name].append(r.get(name))
        cols["pinned"].append(bool(r.get("pinned")))
        cols["labels"].append(labels_to_entries(r.get("labels")))
        metrics.append(clean_metrics(r.get("metrics")))
        cols["metrics"].append(list(metrics[-1].items()))
        cols["content"].append(row_content(r))
        for name in ("source_path", "cell_id", "execution_count", "source_hash"):
            cols[name].append(r.get(name))
        cols["inputs"].append(_id_list(r.get("inputs")))
    table = pa.Table.from_pydict(cols, schema=ARTIFACTS2_SCHEMA)
    table = with_metric_columns(table, metrics)
    return with_label_columns(table, cols["labels"])


def _id_list(inputs: str | list[str] | None) -> list[str] | None:
    """An artifact row's ``inputs`` (format 1's JSON text, or a list) as a list of ids (None: no inputs)."""
    if isinstance(inputs, str):
        try:
            inputs = json.loads(inputs)
        except ValueError:
            return None
    return [str(i) for i in inputs] if isinstance(inputs, list) and inputs else None


def with_metric_columns(table: pa.Table, metrics: list[Mapping[str, float] | str | None]) -> pa.Table:
    """``table`` with a ``metric.<name>`` float64 column for each metric name its rows use (null where a row
    lacks it), in name order."""
    dicts = [_json_object(m) if isinstance(m, str) else (m or {}) for m in metrics]
    names = sorted({k for d in dicts for k in d if FLAT_NAME.match(k)})
    for name in names:
        values = [d.get(name) for d in dicts]
        table = table.append_column(
            pa.field(METRIC_COLUMN + name, pa.float64()),
            pa.array([None if v is None else float(v) for v in values], pa.float64()),
        )
    return table


def with_label_columns(table: pa.Table, entries: list[list[tuple[str, dict[str, Any]]]]) -> pa.Table:
    """``table`` with a ``label.<key>.<s|i|f|b>`` column for each label key (matching :data:`FLAT_NAME`) and
    value type its rows use (null where a row lacks the key or holds another type), in name order.

    A key's values may differ in type across rows (``seed=3`` here, ``seed="3"`` there): one column per
    type keeps each exact, as the map's struct does. Values that fit none (``j``) stay in the map only.
    """
    by_column: dict[tuple[str, str], dict[int, Any]] = {}
    for row, ents in enumerate(entries):
        for key, value in ents:
            if not FLAT_NAME.match(key):
                continue
            for field, v in value.items():
                if v is not None and field in LABEL_FLAT_TYPES:
                    by_column.setdefault((key, field), {})[row] = v
    n = table.num_rows
    for (key, field), values in sorted(by_column.items()):
        table = table.append_column(
            pa.field(label_column(key, field), LABEL_FLAT_TYPES[field]),
            pa.array([values.get(i) for i in range(n)], LABEL_FLAT_TYPES[field]),
        )
    return table


def artifacts_from_arrow(table: pa.Table, kinds: list[str] | str | None = None) -> list[Artifact]:
    """Artifacts from rows of the artifacts table (any subset of :data:`ARTIFACT_COLUMNS`, plus ``kind``
    or ``kinds`` given: one kind for all rows, or one per row)."""
    n, names = table.num_rows, set(table.column_names)
    if n == 0:
        return []

    def col(name: str) -> list[Any]:
        return table.column(name).to_pylist() if name in names else [None] * n

    if "kind" in names:
        kind_col = col("kind")
    elif isinstance(kinds, str) or kinds is None:
        kind_col = [kinds] * n
    else:
        kind_col = list(kinds)
    created = as_micros(table.column("created_at")).to_pylist() if "created_at" in names else [None] * n
    return [
        Artifact(
            artifact_id=aid, uri=uri, kind=kind, labels=labels_from_entries(lab), metrics=dict(met or ()),
            preview_uri=prev, pinned=bool(pin), created_at=ts_to_datetime(ts) if ts is not None else None,
            size=size or 0, name=name, mime=mime, run_id=run, graph_id=graph, node_id=node,
            source_path=spath, cell_id=cell, execution_count=count, source_hash=shash, inputs=tuple(ins or ()),
        )
        for aid, uri, kind, lab, met, prev, pin, ts, size, name, mime, run, graph, node, spath, cell, count, shash, ins
        in zip(
            col("artifact_id"), col("uri"), kind_col, col("labels"), col("metrics"), col("preview_uri"),
            col("pinned"), created, col("size"), col("name"), col("mime"), col("run_id"), col("graph_id"),
            col("node_id"), col("source_path"), col("cell_id"), col("execution_count"), col("source_hash"),
            col("inputs"), strict=True,
        )
    ]  # fmt: skip


# -- events and ops --------------------------------------------------------------------------------
def _values(text: str | list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    if text is None:
        return None
    raw = json.loads(text) if isinstance(text, str) else text
    return [{"name": d["name"], "kind": d.get("kind", "json"), "value": json.dumps(d.get("value"))} for d in raw]


def event_rows_to_arrow(rows: list[Row]) -> pa.Table:
    """Spool rows of the events table (format 1's row: JSON text columns) -> :data:`EVENTS2_SCHEMA`."""
    cols: dict[str, list[Any]] = {f.name: [] for f in EVENTS2_SCHEMA}
    for r in rows:
        for name in (
            "event_id",
            "kind",
            "ts",
            "topic",
            "run_id",
            "graph_id",
            "node_id",
            "text",
            "stage",
            "source_path",
            "cell_id",
            "execution_count",
            "source_hash",
        ):
            cols[name].append(r.get(name))
        cols["inputs"].append(_values(r.get("inputs")))
        cols["outputs"].append(_values(r.get("outputs")))
        cols["metrics"].append(metrics_to_entries(r.get("metrics")) if r.get("metrics") is not None else None)
        tags = r.get("tags")
        cols["tags"].append(tags_from_json(tags))
        cols["severity"].append(r.get("severity") if r.get("severity") is not None else 2)
        cols["version"].append(r.get("version") or 1)
    return pa.Table.from_pydict(cols, schema=EVENTS2_SCHEMA)


def op_rows_to_arrow(rows: list[Row]) -> pa.Table:
    """Spool rows of the ops table -> :data:`OPS2_SCHEMA`."""
    return pa.Table.from_pydict({f.name: [r[f.name] for r in rows] for f in OPS2_SCHEMA}, schema=OPS2_SCHEMA)


ROWS_TO_ARROW = {"artifacts": artifact_rows_to_arrow, "events": event_rows_to_arrow, "ops": op_rows_to_arrow}
