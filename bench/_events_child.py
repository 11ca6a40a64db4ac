"""Child process of the bench: a "kernel" that logs events up to 1M, measuring as the store grows.

Run by ``bench/run.py`` in a fresh interpreter so that its RSS is the RSS of a process that only
logs (the budget: < 100 MB above the idle kernel while logging 1M events). At each checkpoint
(1k, 10k, 100k, 1M stored events) it flushes, times hot ``recent`` (list and DataFrame), a
Parquet fallback scan, ``last_by_name``, and starts new processes that open the store and ask
``recent(limit=10)`` cold. Prints one JSON line.

Usage: ``python bench/_events_child.py '{"root": ..., "checkpoints": [...], ...}'``
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from _util import COLD_OPEN_PRELUDE, collect, rss_mb, run_child, summarize, time_calls, time_calls_async

COLD = (
    COLD_OPEN_PRELUDE
    + r"""
evs = ctx.store.event_log.recent(limit=10)
t3 = time.perf_counter()
assert len(evs) == 10, len(evs)
print(json.dumps({"import_s": t1 - t0, "open_s": t2 - t1, "query_s": t3 - t2, "open_query_s": t3 - t1,
                  "in_process_s": t3 - t0, "peak_rss_mb": hwm(), "pandas_imported": "pandas" in sys.modules}))
"""
)

RARE_EVERY = 997  # a kind too rare for the hot window: its recent() falls back to Parquet
TOOL_EVERY = 10


def main() -> None:
    args = json.loads(sys.argv[1])
    root = args["root"]
    checkpoints: list[int] = args["checkpoints"]
    hot_n = args.get("hot_n", 2000)
    df_n = args.get("df_n", 300)
    lat_window = args.get("lat_window", 2000)
    cold_repeats = args.get("cold_repeats", 3)

    import aeg_jupyter
    from aeg_jupyter.core.frames import events_frame

    ctx = aeg_jupyter.connect(root, graph_id="bench")
    log = ctx.store.event_log
    mem = ctx.memory()
    events_frame([])  # pandas imported: a notebook kernel has it loaded anyway
    collect()
    idle_before_first_write = rss_mb()
    # The idle kernel of the budget has written once: the first commit maps delta-rs's writer code
    # (~40 MB of file-backed pages of the deltalake library) and starts its runtime threads, once per
    # process whatever is logged after; what logging adds is measured from there (both are reported).
    log.record("bench_start", {"warm": True})
    ctx.store.flush()
    collect()
    idle = rss_mb()
    peak = idle
    rss_trace: list[tuple[int, float]] = [(0, idle)]
    results: list[dict] = []
    record = log.record
    record_tool = log.record_tool_result
    clock = time.perf_counter_ns
    lat: list[int] = []
    lat_tool: list[int] = []
    n = 0
    t_start = time.perf_counter()
    logging_s = 0.0
    for cp in checkpoints:
        t_seg = time.perf_counter()
        while n < cp:
            timed = cp - n <= lat_window
            if n % RARE_EVERY == RARE_EVERY - 1:
                record("checkpoint_saved", {"step": n, "path": f"ckpt/{n}.pt"})
            elif n % TOOL_EVERY == TOOL_EVERY - 1:
                if timed:
                    t = clock()
                    record_tool("train.step", outputs=[{"name": "val_acc", "kind": "number", "value": n / 1e6}])
                    lat_tool.append(clock() - t)
                else:
                    record_tool("train.step", outputs=[{"name": "val_acc", "kind": "number", "value": n / 1e6}])
            elif timed:
                t = clock()
                record("train_log", {"epoch": n, "loss": 0.25, "acc": 0.91})
                lat.append(clock() - t)
            else:
                record("train_log", {"epoch": n, "loss": 0.25, "acc": 0.91})
            n += 1
            if n % 10_000 == 0:
                r = rss_mb()
                peak = max(peak, r)
                rss_trace.append((n, round(r, 1)))
        logging_s += time.perf_counter() - t_seg
        t = time.perf_counter()
        ctx.store.flush()
        flush_s = time.perf_counter() - t
        collect()
        point: dict = {"events": n, "flush_s": flush_s}
        point["record"] = summarize(lat)
        point["record_tool_result"] = summarize(lat_tool)
        lat, lat_tool = [], []
        point["recent_hot_list"] = time_calls(lambda i: log.recent(limit=10), hot_n, warmup=50)
        point["recent_hot_kinds"] = time_calls(lambda i: log.recent(kinds=["train_log"], limit=10), hot_n, warmup=50)
        point["last_by_name"] = time_calls(lambda i: log.last_by_name("val_acc"), hot_n, warmup=50)
        point["recent_df"] = time_calls(lambda i: events_frame(log.recent(limit=10)), df_n, warmup=10)
        point["recent_facade_list"] = asyncio.run(time_calls_async(lambda i: mem.recent(limit=10), hot_n, warmup=50))
        point["recent_facade_df"] = asyncio.run(time_calls_async(lambda i: mem.recent_df(limit=10), df_n, warmup=10))
        scan_n = max(5, min(50, 2_000_000 // max(n, 1)))
        point["recent_rare_scan"] = (
            time_calls(lambda i: log.recent(kinds=["checkpoint_saved"], limit=10), scan_n, warmup=1)
            if n >= 10 * RARE_EVERY
            else None
        )
        colds = []
        for _ in range(cold_repeats):
            wall, got = run_child(COLD, root)
            got["process_wall_s"] = wall
            colds.append(got)
        colds.sort(key=lambda c: c["open_query_s"])
        point["cold"] = colds[len(colds) // 2]
        point["cold_all_open_query_s"] = [round(c["open_query_s"], 4) for c in colds]
        r = rss_mb()
        peak = max(peak, r)
        point["rss_mb"] = round(r, 1)
        results.append(point)
    out = {
        "idle_rss_mb": round(idle, 1),
        "idle_before_first_write_mb": round(idle_before_first_write, 1),
        "peak_rss_mb": round(peak, 1),
        "rss_growth_mb": round(peak - idle, 1),
        "rss_trace": rss_trace,
        "events": n,
        "logging_s": round(logging_s, 2),
        "total_s": round(time.perf_counter() - t_start, 2),
        "hot_window": len(log.hot),
        "child_merges": getattr(ctx.store.event_table, "child_merges", 0),
        "merge_child_peak_rss_mb": getattr(ctx.store.event_table, "merge_peak_mb", 0.0),
        "checkpoints": results,
    }
    ctx.close()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
