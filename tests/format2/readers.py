"""What external engines read from a format-2 store's artifacts table, and what the API lists.

Shared by tests/format2/test_maintain.py and test_external_readers.py. Each reader goes through the
Delta log (deltalake's snapshot): DuckDB over ``DeltaTable.to_pyarrow_dataset()``, Polars ``scan_delta``
and ``deltalake`` itself. Labels come back as ``map<string, struct<s, i, f, b, j>>``: decoded here to
the one field that is set, so a comparison with the API is type-exact (True is not 1, 1 is not 1.0).
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

from deltalake import DeltaTable

import aeg_jupyter

COLUMNS = ["artifact_id", "kind", "pinned", "uri", "labels", "metrics"]
READERS = ("deltalake", "duckdb", "polars")


def artifacts_path(root: str) -> str:
    return os.path.join(root, "tables", "artifacts")


def _label(v: dict[str, Any]) -> Any:
    for field in ("s", "i", "f", "b"):
        if v[field] is not None:
            return v[field]
    return json.loads(v["j"]) if v["j"] is not None else None


def _pairs(m: Any) -> dict[str, Any]:
    if m is None:
        return {}
    return dict(m)  # deltalake: [(k, v)]; DuckDB / Polars: {k: v}


def normalize(row: dict[str, Any]) -> tuple[Any, ...]:
    """One artifact as a comparable tuple: (id, kind, pinned, uri, labels typed, metrics)."""
    labels = {k: _label(v) for k, v in _pairs(row["labels"]).items()}
    return (row["artifact_id"], row["kind"], bool(row["pinned"]), row["uri"], labels, _pairs(row["metrics"]))


def read(root: str, reader: str) -> list[tuple[Any, ...]]:
    """Every row of the artifacts table as ``reader`` returns it (duplicates kept: the tests look for them)."""
    path = artifacts_path(root)
    if reader == "deltalake":
        rows = DeltaTable(path).to_pyarrow_table(columns=COLUMNS).to_pylist()
    elif reader == "duckdb":
        import duckdb

        con = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
        con.register("artifacts", DeltaTable(path).to_pyarrow_dataset())
        rel = con.sql(f"SELECT {', '.join(COLUMNS)} FROM artifacts")
        rows = [dict(zip(COLUMNS, r, strict=True)) for r in rel.fetchall()]
    elif reader == "polars":
        import polars as pl

        rows = pl.scan_delta(path).select(COLUMNS).collect().to_dicts()
    else:
        raise ValueError(reader)
    return [normalize(r) for r in rows]


def ids_of(rows: list[tuple[Any, ...]]) -> list[str]:
    return [r[0] for r in rows]


def api_view(root: str) -> list[tuple[Any, ...]]:
    """``await arts.list(scope="all")`` in a fresh context, as the same tuples."""
    old = os.environ.get("AEG_STORE_FORMAT")
    os.environ["AEG_STORE_FORMAT"] = "2"
    try:
        ctx = aeg_jupyter.connect(root)
    finally:
        if old is None:
            del os.environ["AEG_STORE_FORMAT"]
        else:
            os.environ["AEG_STORE_FORMAT"] = old
    try:
        found = asyncio.run(ctx.artifacts().list(scope="all"))
        return [(a.artifact_id, a.kind, a.pinned, a.uri, dict(a.labels), dict(a.metrics)) for a in found]
    finally:
        ctx.close()


def best_by_duckdb(root: str, kind: str, metric: str) -> str | None:
    """The issue's query, as written: no JSON functions."""
    import duckdb

    con = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    con.register("artifacts", DeltaTable(artifacts_path(root)).to_pyarrow_dataset())
    got = con.sql(
        f"SELECT artifact_id FROM artifacts WHERE kind='{kind}' ORDER BY metrics['{metric}'] DESC, "
        "created_at DESC, artifact_id DESC LIMIT 1"
    ).fetchall()
    return got[0][0] if got else None


def best_by_polars(root: str, kind: str, metric: str) -> str | None:
    import polars as pl

    got = (
        pl.scan_delta(artifacts_path(root))
        .filter(pl.col("kind") == kind)
        .sort([pl.col("metrics").map.get(metric), "created_at", "artifact_id"], descending=True, nulls_last=True)
        .select("artifact_id")
        .head(1)
        .collect()
    )
    return got.item() if got.height else None
