"""The tables' schemas and every row <-> model codec, in one place.

A row is a flat dict (str / int / bool / None; nested values are JSON text) as it stands in a
spool line and, column for column, in a Parquet part. ``docs/architecture.md`` shows each table
as an external engine sees it. Adding a column means: the schema here, the row builder here
(``artifact_row`` / ``event_row``), and the decoder here (``row_to_artifact`` /
``artifacts_from_table`` / ``row_to_event``).
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from ..base.errors import StoreWarning
from ..base.jsoncodec import json_decoder, json_encoder
from ..base.models import Artifact, Event, Provenance, Value
from ..base.times import ts_to_datetime, ts_to_iso

Row = dict[str, Any]

_TS = pa.timestamp("us", tz="UTC")
ARTIFACTS_SCHEMA = pa.schema(
    [
        ("artifact_id", pa.string()),
        ("created_at", _TS),
        ("uri", pa.string()),
        ("size", pa.int64()),
        ("name", pa.string()),
        ("mime", pa.string()),
        ("run_id", pa.string()),
        ("graph_id", pa.string()),
        ("node_id", pa.string()),
        ("pinned", pa.bool_()),
        ("labels", pa.string()),  # JSON object
        ("metrics", pa.string()),  # JSON object of finite floats
        ("preview_uri", pa.string()),
        # lineage (docs/architecture.md, "Lineage"); parts written before these columns read them as nulls
        ("source_path", pa.string()),
        ("cell_id", pa.string()),
        ("execution_count", pa.int64()),
        ("source_hash", pa.string()),  # blake3 hex of the cell's source: the aeg.cell artifact's digest
        ("inputs", pa.string()),  # JSON list of artifact ids
    ]
)
EVENTS_SCHEMA = pa.schema(
    [
        ("event_id", pa.string()),
        ("ts", _TS),
        ("topic", pa.string()),
        ("run_id", pa.string()),
        ("graph_id", pa.string()),
        ("node_id", pa.string()),
        ("text", pa.string()),
        ("inputs", pa.string()),  # JSON list of {name, kind, value}
        ("outputs", pa.string()),  # JSON list of {name, kind, value}
        ("metrics", pa.string()),  # JSON object
        ("tags", pa.string()),  # JSON list of strings
        ("severity", pa.int32()),
        ("stage", pa.string()),
        ("version", pa.int32()),
        ("source_path", pa.string()),
        ("cell_id", pa.string()),
        ("execution_count", pa.int64()),
        ("source_hash", pa.string()),
    ]
)
OPS_SCHEMA = pa.schema([("op_id", pa.string()), ("ts", _TS), ("artifact_id", pa.string())])


@dataclass(frozen=True, slots=True)
class TableSpec:
    """Name, Parquet schema, id column and time column of one table."""

    name: str
    schema: pa.Schema
    id_field: str
    ts_field: str


ARTIFACTS = TableSpec("artifacts", ARTIFACTS_SCHEMA, "artifact_id", "created_at")
EVENTS = TableSpec("events", EVENTS_SCHEMA, "event_id", "ts")
OPS = TableSpec("ops", OPS_SCHEMA, "op_id", "ts")


_encode_value = json_encoder(compact=True)


def as_micros(col: pa.ChunkedArray) -> pa.ChunkedArray:
    """A timestamp[us] column as its int64 microseconds: a view, not a cast (no pyarrow.compute
    import on a cold open)."""
    return pa.chunked_array([c.view(pa.int64()) for c in col.chunks], type=pa.int64())


def column_micros(table: pa.Table, name: str) -> list[int]:
    """A timestamp[us] column of ``table`` as Python ints (microseconds since the epoch)."""
    return as_micros(table.column(name)).to_pylist()  # type: ignore[no-any-return]


_encode_str = json.encoder.encode_basestring  # the C function json uses for ensure_ascii=False


def encode_row(row: Row) -> str:
    """One flat row as compact JSON, the same text ``json.dumps`` gives, ~4x faster.

    NOTE: rows are flat (str / int / bool / None; nested values are JSON text already) and their
    keys are this module's column names, so the generic encoder's type dispatch and key escaping
    can be skipped (hot path: the ``record`` budget, docs/architecture.md).
    """
    parts = []
    for k, v in row.items():
        cls = v.__class__
        if cls is str:
            parts.append(f'"{k}":{_encode_str(v)}')
        elif v is None:
            parts.append(f'"{k}":null')
        elif cls is int:
            parts.append(f'"{k}":{v}')
        else:  # bool, float, anything unusual: the generic encoder
            parts.append(f'"{k}":{_encode_value(v)}')
    return "{" + ",".join(parts) + "}"


SPECS = {spec.name: spec for spec in (ARTIFACTS, EVENTS, OPS)}


def _python_types(t: pa.DataType) -> tuple[type, ...]:
    if pa.types.is_string(t):
        return (str,)
    if pa.types.is_boolean(t):
        return (bool,)
    return (int,)  # int32, int64, timestamp[us] (microseconds)


_ROW_TYPES = {
    spec.name: {f.name: _python_types(f.type) for f in spec.schema} | {"kind": (str,)} for spec in SPECS.values()
}


def _fits(have: pa.DataType, want: pa.DataType) -> bool:
    """True when a column of type ``have`` reads as ``want`` without guessing (same kind of value)."""
    if have == want or pa.types.is_null(have):
        return True
    if pa.types.is_integer(want):
        return pa.types.is_integer(have)
    if pa.types.is_timestamp(want):
        return pa.types.is_timestamp(have)
    if pa.types.is_string(want):
        return pa.types.is_large_string(have)
    return False


def schema_problem(schema: pa.Schema, spec: TableSpec, columns: list[str] | None = None) -> str | None:
    """What keeps a part of this ``schema`` from being read as ``spec``'s table (``None``: it fits).

    A part must have the id and time columns; every column the schema knows must be of its type
    (or one that reads as it: int32 for int64, a null column); a missing column reads as nulls.
    ``columns`` checks only those (a read of some columns).
    """
    names = schema.names
    if columns is None:
        for key in (spec.id_field, spec.ts_field):
            if key not in names:
                return f"no {key!r} column"
    for f in spec.schema:
        if (columns is None or f.name in columns) and f.name in names:
            have = schema.field(names.index(f.name)).type
            if not _fits(have, f.type):
                return f"its column {f.name!r} is {have}, not {f.type}"
    return None


def conform(table: pa.Table, spec: TableSpec, *, columns: list[str] | None = None) -> pa.Table:
    """A part's Arrow table in ``spec``'s schema: missing columns as nulls, compatible types cast.

    Raises:
        ValueError: the part does not fit (a foreign schema, or rows without id or time); the
            message says why.
    """
    if columns is None:
        if not table.schema.equals(spec.schema):
            problem = schema_problem(table.schema, spec)
            if problem is not None:
                raise ValueError(problem)
            table = _with_fields(table, list(spec.schema))
        if table.column(spec.id_field).null_count or table.column(spec.ts_field).null_count:
            raise ValueError(f"rows without {spec.id_field!r} or {spec.ts_field!r}")
        return table
    if not columns or table.schema.equals(pa.schema([spec.schema.field(c) for c in columns])):
        return table
    problem = schema_problem(table.schema, spec, columns)
    if problem is not None:
        raise ValueError(problem)
    return _with_fields(table, [spec.schema.field(c) for c in columns])


def _with_fields(table: pa.Table, fields: list[pa.Field]) -> pa.Table:
    """``table`` with exactly ``fields``: columns cast to their type, missing ones as nulls."""
    arrays = []
    for f in fields:
        if f.name not in table.column_names:
            arrays.append(pa.nulls(table.num_rows, f.type))
            continue
        col = table.column(f.name)
        arrays.append(col if col.type == f.type else col.cast(f.type))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def bad_row(spec: TableSpec, row: Any) -> str | None:
    """What is wrong with a spool row of ``spec``'s table, or ``None`` if it fits the schema.

    A row must be an object with its id, kind and time, and every known column must hold its
    schema's type or null (unknown keys are a newer writer's and are ignored).

    Example:
        >>> bad_row(OPS, {"op_id": "x", "ts": 1, "kind": "pin", "artifact_id": "a"}) is None
        True
        >>> bad_row(OPS, {"op_id": "x", "ts": "yesterday", "kind": "pin"})
        "'ts' is str, not int"
    """
    if row.__class__ is not dict:
        return "not an object"
    for key in (spec.id_field, "kind", spec.ts_field):
        if row.get(key) is None:
            return f"no {key!r}"
    types = _ROW_TYPES[spec.name]
    for k, v in row.items():
        want = types.get(k)
        if want is not None and v is not None and v.__class__ not in want:
            return f"{k!r} is {type(v).__name__}, not {want[0].__name__}"
    return None if row["kind"] else "an empty 'kind'"


_encode = json_encoder()  # json.dumps(obj, ensure_ascii=False)
_encode_ascii = json_encoder(ascii=True)  # json.dumps(obj)
_decode = json_decoder()  # json.loads(text), for the store's own JSON columns


# -- artifacts -------------------------------------------------------------------------------------
def artifact_row(
    artifact_id: str,
    created_at: int,
    kind: str,
    uri: str,
    size: int,
    *,
    name: str | None,
    mime: str | None,
    origin: Provenance,
    pinned: bool,
    labels: Mapping[str, Any],
    metrics: Mapping[str, float],
) -> Row:
    """The artifacts-table row of a new artifact (labels and metrics as JSON text)."""
    return {
        "artifact_id": artifact_id,
        "created_at": created_at,
        "kind": kind,
        "uri": uri,
        "size": size,
        "name": name,
        "mime": mime,
        "run_id": origin.run_id,
        "graph_id": origin.graph_id,
        "node_id": origin.node_id,
        "pinned": bool(pinned),
        "labels": _encode(labels) if labels else "{}",
        "metrics": _encode_ascii(metrics) if metrics else "{}",
        "preview_uri": None,
        "source_path": origin.source_path,
        "cell_id": origin.cell_id,
        "execution_count": origin.execution_count,
        "source_hash": origin.source_hash,
        "inputs": _encode(list(origin.inputs)) if origin.inputs else None,
    }


def row_to_artifact(row: Row, where: str = "a spool") -> Artifact:
    """An artifact from one row (a spool line); a damaged labels/metrics cell reads as ``{}``."""
    return Artifact(
        artifact_id=row["artifact_id"],
        uri=row["uri"],
        kind=row["kind"],
        labels=decode_object(row.get("labels"), where),
        metrics=decode_metrics([row.get("metrics")], where)[0],
        preview_uri=row.get("preview_uri"),
        pinned=bool(row.get("pinned")),
        created_at=ts_to_datetime(row["created_at"]),
        size=row.get("size") or 0,
        name=row.get("name"),
        mime=row.get("mime"),
        run_id=row.get("run_id"),
        graph_id=row.get("graph_id"),
        node_id=row.get("node_id"),
        source_path=row.get("source_path"),
        cell_id=row.get("cell_id"),
        execution_count=row.get("execution_count"),
        source_hash=row.get("source_hash"),
        inputs=decode_inputs([row.get("inputs")])[0],
    )


def artifacts_from_table(table: pa.Table, kind: str, where: str) -> list[Artifact]:
    """The artifacts of one part's Arrow table, built column by column.

    NOTE: this is most of the time of opening a big store: whole columns become Python lists,
    the JSON columns are decoded as one array each, and there is one constructor call per row.
    """
    n, names = table.num_rows, set(table.column_names)
    if n == 0:
        return []

    def col(name: str) -> list[Any]:
        return table.column(name).to_pylist() if name in names else [None] * n

    micros = column_micros(table, "created_at")
    return list(
        map(
            Artifact,
            col("artifact_id"), col("uri"), [kind] * n,
            decode_objects(col("labels"), where), decode_metrics(col("metrics"), where),
            col("preview_uri"), [bool(p) for p in col("pinned")], [ts_to_datetime(t) for t in micros],
            [s or 0 for s in col("size")], col("name"), col("mime"),
            col("run_id"), col("graph_id"), col("node_id"),
            col("source_path"), col("cell_id"), col("execution_count"), col("source_hash"),
            decode_inputs(col("inputs")),
        )
    )  # fmt: skip


def decode_inputs(texts: list[str | None]) -> list[tuple[str, ...]]:
    """The ``inputs`` column (JSON lists of artifact ids, mostly null) -> tuples; damaged reads as ``()``."""
    if not any(texts):  # the common case: a part whose artifacts read nothing (opening a store)
        return [()] * len(texts)
    out: list[tuple[str, ...]] = []
    for t in texts:
        if not t:
            out.append(())
            continue
        try:
            ids = _decode(t)
        except ValueError:
            ids = None
        out.append(tuple(i for i in ids if i.__class__ is str) if ids.__class__ is list else ())
    return out


_CELL_SEP = ",-7,"  # between the cells of decode_objects' one parse: every second value must be this -7
_CELL_MARK = -7


def decode_objects(texts: list[str | None], where: str) -> list[dict[str, Any]]:
    """JSON-object column -> dicts (one parse of the whole column; a damaged cell becomes ``{}``).

    The cells are parsed as one JSON array with a marker value between every two. Damaged cells that
    parse together would otherwise keep the count and shift every value onto another cell. Two cases:
    an unterminated string swallows the next cell (``'{"x":"'`` then ``'"}'``), and one cell holds
    two objects (``'{},{}'``). Either swallows or displaces a marker, and then the column is parsed
    cell by cell, so each damaged cell reads as ``{}`` with a ``StoreWarning``.
    """
    n = len(texts)
    try:
        out = _decode("[" + _CELL_SEP.join([t or "{}" for t in texts]) + "]")
    except ValueError:
        out = None
    if out is not None and len(out) == max(2 * n - 1, 0) and out[1::2] == [_CELL_MARK] * (n - 1):
        objs = out[0::2]
        if all(type(d) is dict for d in objs):
            return objs  # type: ignore[no-any-return]
    return [decode_object(t, where) for t in texts]


# a metric value that is not a plain number: a string, true/false/null, a list or object, NaN/Infinity
_NOT_A_NUMBER = re.compile(r':\s*(?:["tfn\[{NI]|-I)')


def decode_metrics(texts: list[str | None], where: str) -> list[dict[str, float]]:
    """The ``metrics`` column -> dicts of numbers; a value that is not a finite number is dropped
    with a ``StoreWarning`` (a foreign writer's ``{"acc": "high"}`` must not reach a ranking).

    NOTE: one regex scan of the column decides that every value is a number (the store writes
    nothing else); only a column that fails it is checked value by value (opening a store).
    """
    out = decode_objects(texts, where)
    if not _NOT_A_NUMBER.search("".join(t for t in texts if t)):
        return out  # type: ignore[return-value]
    for i, d in enumerate(out):
        bad = [k for k, v in d.items() if v.__class__ not in (int, float) or v != v or v in (_INF, -_INF)]
        if bad:
            warnings.warn(f"non-numeric metrics {bad[:3]} in {where} are ignored", StoreWarning, stacklevel=4)
            out[i] = {k: v for k, v in d.items() if k not in bad}
    return out  # type: ignore[return-value]


_INF = float("inf")


def decode_object(text: str | None, where: str) -> dict[str, Any]:
    """One JSON-object cell -> dict; a damaged one reads as ``{}`` with a ``StoreWarning``."""
    if not text:
        return {}
    try:
        obj = _decode(text)
    except ValueError:
        obj = None
    if type(obj) is not dict:
        warnings.warn(f"a damaged labels/metrics cell in {where} reads as {{}}", StoreWarning, stacklevel=4)
        return {}
    return obj


def op_row(op_id: str, ts: int, op: str, artifact_id: str) -> Row:
    """An ops-table row: ``op`` is ``pin``, ``unpin`` or ``delete`` (the partition column ``kind``)."""
    return {"op_id": op_id, "ts": ts, "kind": op, "artifact_id": artifact_id}


# -- events ----------------------------------------------------------------------------------------
json_str = json.encoder.encode_basestring  # a str as a JSON string (the C function json uses)


def optional_json(fields: Mapping[str, str | int | None]) -> str:
    """``,"key":"value"`` for each string (or int) field that is not None (a spool line's optional tail)."""
    return "".join(
        f',"{k}":{v}' if v.__class__ is int else f',"{k}":{json_str(v)}' for k, v in fields.items() if v is not None
    )


def event_row(
    event_id: str,
    ts: int,
    kind: str,
    severity: int,
    origin: tuple[dict[str, str | int], str],
    text: str | None,
    topic: str | None,
    inputs: str | None,
    outputs: str | None,
    metrics: str | None,
    tags: str | None,
    stage: str | None,
) -> tuple[Row, str]:
    """An events-table row and its spool line, built together.

    ``origin`` is the non-null run/graph/node fields and their line tail (``optional_json``),
    cached by the caller. Every optional column is a string or absent (readers take a missing
    key as null), the id is a ULID and ts/severity are ints, so one f-string and an escape per
    string is the whole encoder (``record``'s budget: docs/architecture.md, "Hot paths").
    """
    # NOTE: a copy of the cached origin dict, then the keys: no resize of a growing dict (~0.4 us)
    row: Row = origin[0].copy()
    row["event_id"], row["ts"], row["kind"], row["severity"], row["version"] = event_id, ts, kind, severity, 1
    line = f'{{"event_id":"{event_id}","ts":{ts},"kind":{json_str(kind)},"severity":{severity},"version":1'
    if origin[0]:
        line += origin[1]
    if text is not None:
        row["text"] = text
        line += f',"text":{json_str(text)}'
    if topic is not None:
        row["topic"] = topic
        line += f',"topic":{json_str(topic)}'
    if inputs is not None:
        row["inputs"] = inputs
        line += f',"inputs":{json_str(inputs)}'
    if outputs is not None:
        row["outputs"] = outputs
        line += f',"outputs":{json_str(outputs)}'
    if metrics is not None:
        row["metrics"] = metrics
        line += f',"metrics":{json_str(metrics)}'
    if tags is not None:
        row["tags"] = tags
        line += f',"tags":{json_str(tags)}'
    if stage is not None:
        row["stage"] = stage
        line += f',"stage":{json_str(stage)}'
    return row, line + "}\n"


def values_to_text(values: list[Value], dumps: Any) -> str:
    """``json.dumps([v.to_dict() for v in values])``, the same text, with scalars encoded inline.

    NOTE: a number's JSON is its ``repr`` (finite floats; NaN and Infinity go through ``dumps`` for
    json's spelling) and a string's is one C call: ``record_tool_result`` encodes every output.
    """
    parts = []
    for v in values:
        value = v.value
        cls = value.__class__
        if cls is float and value - value == 0.0:  # finite
            enc = repr(value)
        elif cls is str:
            enc = json_str(value)
        elif cls is int:
            enc = int.__repr__(value)
        elif value is None:
            enc = "null"
        else:
            enc = dumps(value)
        parts.append(f'{{"name": {json_str(v.name)}, "kind": {json_str(v.kind)}, "value": {enc}}}')
    return "[" + ", ".join(parts) + "]"


def values_from_text(text: str | None) -> list[Value]:
    """The ``inputs`` / ``outputs`` column back as Values (a damaged cell reads as none)."""
    if not text:
        return []
    try:
        raw = json.loads(text)
        return [Value(d["name"], d.get("kind", "json"), d.get("value")) for d in raw]
    except (ValueError, KeyError, TypeError):
        return []


def _json_cell(text: str | None, want: type, r: Row) -> Any:
    """A JSON column of an event (``metrics`` object, ``tags`` list); damaged: None, with a warning."""
    if not text:
        return None
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        value = None
    if value.__class__ is not want:
        warnings.warn(f"event {r.get('event_id')}: a damaged JSON cell reads as null", StoreWarning, stacklevel=3)
        return None
    return value


def row_to_event(r: Row) -> Event:
    """An event from one events-table row (spool line or Parquet)."""
    return Event(
        event_id=r["event_id"],
        ts=ts_to_iso(r["ts"]),
        kind=r["kind"],
        topic=r.get("topic"),
        inputs=values_from_text(r.get("inputs")) or None,
        outputs=values_from_text(r.get("outputs")) or None,
        metrics=_json_cell(r.get("metrics"), dict, r),
        text=r.get("text"),
        version=r.get("version") or 1,
        run_id=r.get("run_id"),
        graph_id=r.get("graph_id"),
        node_id=r.get("node_id"),
        tags=_json_cell(r.get("tags"), list, r),
        severity=r.get("severity") if r.get("severity") is not None else 2,
        stage=r.get("stage"),
        source_path=r.get("source_path"),
        cell_id=r.get("cell_id"),
        execution_count=r.get("execution_count"),
        source_hash=r.get("source_hash"),
    )
