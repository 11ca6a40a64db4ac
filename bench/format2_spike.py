# ruff: noqa: E402
"""Format 2 spike: deltalake append latency, open + read, app transactions, map columns in DuckDB and Polars,
compact + vacuum against an old snapshot. Figures are quoted in docs/format2.md.

    python bench/format2_spike.py
"""

import os
import shutil
import statistics
import tempfile
import time

import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake

d = tempfile.mkdtemp(prefix="dlspike")
uri = os.path.join(d, "artifacts")
MAPT = pa.map_(pa.string(), pa.float64())
schema = pa.schema(
    [
        ("artifact_id", pa.string()),
        ("kind", pa.string()),
        ("created_at", pa.timestamp("us", tz="UTC")),
        ("metrics", MAPT),
        ("labels", pa.map_(pa.string(), pa.string())),
        ("inline", pa.binary()),
    ]
)


def batch(n, start):
    return pa.table(
        {
            "artifact_id": [f"a{start + i:09d}" for i in range(n)],
            "kind": ["checkpoint" if i % 2 else "config" for i in range(n)],
            "created_at": pa.array([1_700_000_000_000_000 + start + i for i in range(n)], pa.timestamp("us", tz="UTC")),
            "metrics": pa.array(
                [[("val_acc", ((start + i) * 7919 % 1000) / 1000.0), ("loss", 1.0)] for i in range(n)], MAPT
            ),
            "labels": pa.array([[("lr", "0.1")] for i in range(n)], pa.map_(pa.string(), pa.string())),
            "inline": pa.array([b'{"x": 1}' for i in range(n)], pa.binary()),
        },
        schema=schema,
    )


# append latency of small batches
lat = []
for k in range(30):
    t = batch(10, k * 10)
    t0 = time.perf_counter()
    write_deltalake(
        uri,
        t,
        mode="append",
        partition_by=["kind"],
        commit_properties=CommitProperties(app_transactions=[Transaction("w1", k)]),
    )
    lat.append(time.perf_counter() - t0)
print(f"append 10 rows: median {statistics.median(lat) * 1e3:.1f} ms, max {max(lat) * 1e3:.1f} ms (30 commits)")
dt = DeltaTable(uri)
print("version", dt.version(), "txn w1 =", dt.transaction_version("w1"), "txn w2 =", dt.transaction_version("w2"))
# larger batch
t = batch(10_000, 1_000_000)
t0 = time.perf_counter()
write_deltalake(uri, t, mode="append", partition_by=["kind"])
print(f"append 10k rows: {(time.perf_counter() - t0) * 1e3:.1f} ms")

# open + read time with a checkpoint vs without
for label in ["no checkpoint (32 commits)", "after checkpoint"]:
    t0 = time.perf_counter()
    dt = DeltaTable(uri)
    t1 = time.perf_counter()
    ds = dt.to_pyarrow_dataset()
    t15 = time.perf_counter()
    tab = ds.to_table(columns=["artifact_id", "metrics"])
    t2 = time.perf_counter()
    print(f"  dataset {1e3 * (t15 - t1):.1f} ms, {len(dt.file_uris())} files")
    print(
        f"{label}: open {1e3 * (t1 - t0):.1f} ms, to_pyarrow_dataset+read {tab.num_rows} rows {1e3 * (t2 - t1):.1f} ms"
    )
    if label.startswith("no"):
        dt.create_checkpoint()
print("txn after checkpoint w1 =", DeltaTable(uri).transaction_version("w1"))

# idempotent check: concurrent commit with same app id from stale snapshot
dt_stale = DeltaTable(uri)
write_deltalake(
    uri,
    batch(1, 5_000_000),
    mode="append",
    partition_by=["kind"],
    commit_properties=CommitProperties(app_transactions=[Transaction("w9", 0)]),
)
try:
    write_deltalake(
        dt_stale,
        batch(1, 5_000_000),
        mode="append",
        partition_by=["kind"],
        commit_properties=CommitProperties(app_transactions=[Transaction("w9", 0)]),
    )
    print(
        "stale snapshot, same app id: COMMITTED (no conflict detected) ->",
        DeltaTable(uri).to_pyarrow_table(filters=[("artifact_id", "=", "a005000000")]).num_rows,
        "rows",
    )
except Exception as e:
    print("stale snapshot, same app id: refused:", type(e).__name__, str(e)[:200])
# different app id, stale snapshot: appends commute?
dt_stale = DeltaTable(uri)
write_deltalake(
    uri,
    batch(1, 6_000_000),
    mode="append",
    partition_by=["kind"],
    commit_properties=CommitProperties(app_transactions=[Transaction("wa", 0)]),
)
try:
    write_deltalake(
        dt_stale,
        batch(1, 6_000_001),
        mode="append",
        partition_by=["kind"],
        commit_properties=CommitProperties(app_transactions=[Transaction("wb", 0)]),
    )
    print("stale snapshot, other app id: committed (appends commute)")
except Exception as e:
    print("stale snapshot, other app id: refused:", type(e).__name__, str(e)[:200])

# DuckDB
import duckdb

ds = DeltaTable(uri).to_pyarrow_dataset()
con = duckdb.connect()
con.register("artifacts", ds)
print(
    "duckdb map:",
    con.sql(
        "SELECT artifact_id, metrics['val_acc'] FROM artifacts WHERE kind='checkpoint' ORDER BY metrics['val_acc'] DESC, artifact_id LIMIT 1"
    ).fetchall(),
)
try:
    con.sql("INSTALL delta; LOAD delta")
    print("delta_scan:", con.sql(f"SELECT count(*) FROM delta_scan('{uri}')").fetchall())
except Exception as e:
    print("delta_scan unavailable:", type(e).__name__, str(e).splitlines()[0][:200])
import polars as pl

lf = pl.scan_delta(uri)
print(
    "polars:",
    lf.filter(pl.col("kind") == "checkpoint")
    .with_columns(v=pl.col("metrics").map.get("val_acc"))
    .sort(["v", "artifact_id"], descending=[True, False])
    .select("artifact_id", "v")
    .head(1)
    .collect(),
)
print(pl.scan_delta(uri).collect_schema())

# compact / vacuum with a reader holding an old snapshot
old = DeltaTable(uri)
old_files = old.file_uris()
n_old = old.count() if hasattr(old, "count") else None
t0 = time.perf_counter()
m = DeltaTable(uri).optimize.compact()
print(f"compact {1e3 * (time.perf_counter() - t0):.0f} ms", {k: m[k] for k in ("numFilesAdded", "numFilesRemoved")})
print("old snapshot still readable after compact:", old.to_pyarrow_table().num_rows)
dt = DeltaTable(uri)
print("vacuum default dry-run (7 days):", len(dt.vacuum()))
gone = dt.vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)
print("vacuum retention 0 removed", len(gone))
try:
    print("old snapshot after vacuum 0:", old.to_pyarrow_table().num_rows)
except Exception as e:
    print("old snapshot after vacuum 0: FAILS:", type(e).__name__, str(e)[:150])
print("current after vacuum:", DeltaTable(uri).to_pyarrow_table().num_rows)
print("history ops:", [h["operation"] for h in DeltaTable(uri).history()][:5])
print("txn retained after compact/vacuum: w1 =", DeltaTable(uri).transaction_version("w1"))
print("protocol", DeltaTable(uri).protocol())
shutil.rmtree(d)
