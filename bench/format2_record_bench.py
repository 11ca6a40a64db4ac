"""Format 2's ``record`` with the background flusher: tail latency, the spaced median, cold ``recent``.

    python bench/format2_record_bench.py            # short: 200k events, 100k for recent (~1-2 min)
    python bench/format2_record_bench.py --full     # the issue's sizes: 2M events of 1 KiB, 10M for recent

Sections (issue 18's budgets, docs/format2.md):

1. tail: every single ``EventLog.record`` while logging N events with 1 KiB payloads into a format-2
   store (flushes and commits on the flusher thread and its commit process): p50 / p99 / p99.9 / max;
   beside it, alternating in chunks of 100,000 calls (ten of a store's own commits each, and every store
   committed to the end after its chunk, untimed, so that no commit runs into another store's chunk),
   the same records into a store that commits only between chunks (untimed) and a raw ``os.write`` of
   the same JSON line (what the machine gives any write). Budget: p99.9 <= 100 us, max <= 20 ms.
2. median: ``record`` against a raw ``os.write`` of one JSON line, alternating, 300 calls each, back to
   back, after a 5 ms sleep and after 5 ms of numpy compute. Budget: ratio <= 1.5x in each loop.
3. recent: a store of M events (written by the API, flushed by the flusher), then a fresh process:
   ``connect`` excluded, the first ``recent(limit=10)`` timed, and the Parquet files it opened counted;
   the RSS of the logging process above its idle RSS after open, sampled while it logs, and beside it
   the floor: a bare pyarrow.json + delta-rs writer of the same events (``bench/_rss_floor.py``).
   Budget: <= 150 ms, < 100 MB above idle.

Writes ``bench/results/format2_record_bench.json`` and ``.md`` (``--out DIR`` elsewhere).
"""

from __future__ import annotations

import argparse
import bisect
import gc
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import textwrap
import time
from typing import Any

import numpy as np

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCH_DIR)

import _rss_floor  # noqa: E402
from _util import REPO, rss_mb, run_child  # noqa: E402

from aeg_jupyter.core.store import Store  # noqa: E402

PAYLOAD = "x" * 1000  # + the row's other fields: a ~1.1 KiB spool line
BUDGET = {"p999_us": 100.0, "max_ms": 20.0, "median_ratio": 1.5, "recent_ms": 150.0, "rss_above_idle_mb": 100.0}


def _pct(a: np.ndarray, q: float) -> float:
    return float(np.percentile(a, q))


def _tail_stats(ns: list[int]) -> dict[str, float]:
    a = np.asarray(ns, dtype=np.float64) / 1e3
    return {
        "n": int(a.size),
        "p50_us": round(_pct(a, 50), 2),
        "p99_us": round(_pct(a, 99), 2),
        "p999_us": round(_pct(a, 99.9), 2),
        "max_ms": round(float(a.max()) / 1e3, 3),
        "over_100us": int((a > 100).sum()),
        "over_20ms": int((a > 20_000).sum()),
    }


def tail(n: int, tmp: str, chunk: int = 100_000) -> dict[str, Any]:
    """Section 1: every record's time while logging ``n`` events of 1 KiB, in chunks alternating between
    a store that commits in its commit process, one that commits on its flusher thread (the spool read by
    pyarrow.json, then delta-rs), the same calls on a store whose flushes happen between chunks
    (untimed), and a raw os.write (so all see the same machine: on 2 shared cores, the load swings
    within a minute)."""
    line = (json.dumps({"event_id": "01" + "0" * 24, "ts": 1, "kind": "train_log", "text": PAYLOAD}) + "\n").encode()
    raw_path = os.path.join(tmp, "raw.jsonl")
    fd = os.open(raw_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    clock = time.perf_counter_ns
    stores = {
        "record": Store(os.path.join(tmp, "tail-process"), format=2),
        "record_thread": Store(os.path.join(tmp, "tail-thread"), format=2),
        "record_no_flush": Store(os.path.join(tmp, "tail-no-flush"), format=2, flush_rows=2**62),
    }
    stores["record"].event_table.commit_process = True
    stores["record_thread"].event_table.commit_process = False
    quiet = stores["record_no_flush"]
    quiet.event_table.background = False  # no flusher: its rows are committed between chunks, untimed
    commits: dict[str, list[int]] = {"record": [], "record_thread": []}
    spans: list[tuple[int, int, str]] = []  # (start, end, what): every commit and every gc pass, on one clock
    opened: dict[str, int] = {}

    def step(name: str, what: str, seq: int) -> None:
        if what == "committing":
            opened[name] = clock()
        elif what == "committed":
            commits[name].append(seq)
            if name in opened:
                spans.append((opened.pop(name), clock(), "commit"))

    for name in commits:
        stores[name].event_table.on_flush_step = lambda what, seq, name=name: step(name, what, seq)
    gc_at: list[int] = [0]

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            gc_at[0] = clock()
        else:
            spans.append((gc_at[0], clock(), f"gc{info['generation']}"))

    # The process as a kernel is when a logging cell runs: pandas imported (the magics' DataFrames) and
    # the imports' objects collected once (a fresh process's first full gc pass walks them all, whenever
    # it comes). From here on a record leaves nothing for the gc to promote (core/hotwindow.py), and a
    # commit imports nothing (storage/committer.py): a full pass now is the bench's own doing.
    try:
        import pandas  # noqa: F401
    except ImportError:
        pass
    stall_s = 2.0 if n >= 1_000_000 else 0.5  # (--quick and the short run: a glance)
    stalls_before = machine_stalls(stall_s)
    gc.collect()
    gc.callbacks.append(on_gc)
    starts: dict[str, list[int]] = {name: [] for name in ("record", "record_thread", "record_no_flush", "raw_os_write")}
    lat: dict[str, list[int]] = {"record": [], "record_thread": [], "record_no_flush": [], "raw_os_write": []}
    wall = {"record": 0.0, "record_thread": 0.0}
    for start in range(0, n, chunk):
        k = min(chunk, n - start)
        for name in lat:
            out = [0] * k
            if name == "raw_os_write":
                at = [0] * k
                for i in range(k):
                    t = at[i] = clock()
                    os.write(fd, line)
                    out[i] = clock() - t
                os.ftruncate(fd, 0)
                starts[name].extend(at)
            else:
                record = stores[name].event_log.record
                t0 = time.perf_counter()
                at = [0] * k
                for i in range(k):
                    t = at[i] = clock()
                    record("train_log", PAYLOAD)
                    out[i] = clock() - t
                starts[name].extend(at)
                if name in wall:
                    wall[name] += time.perf_counter() - t0
            lat[name].extend(out)
            if name != "raw_os_write":
                # untimed: this store's last commits end here, not in the next store's chunk (with chunks
                # of flush_rows, as before 2026-12-03, a store's commit ran in the chunk after its own,
                # and the control, which came next, took the flusher thread's waits)
                stores[name].flush()
    os.close(fd)
    gc.callbacks.remove(on_gc)
    stalls_after = machine_stalls(stall_s)
    close_s = {}
    for name in ("record", "record_thread"):
        t = time.perf_counter()
        stores[name].close()
        close_s[name] = round(time.perf_counter() - t, 3)
    quiet.close()
    return {
        "events": n,
        **{name: _tail_stats(v) for name, v in lat.items()},
        "wall_s": round(wall["record"], 2),
        "wall_thread_s": round(wall["record_thread"], 2),
        "commits_on_the_flusher": len(commits["record"]),
        "commits_on_the_flusher_thread": len(commits["record_thread"]),
        "close_s": close_s["record"],
        "close_thread_s": close_s["record_thread"],
        "slow_calls": {name: _attribute(starts[name], lat[name], spans) for name in lat},
        "gc_passes": {g: sum(1 for s in spans if s[2] == g) for g in ("gc0", "gc1", "gc2")},
        "gc2_ms": sorted(round((e - s) / 1e6, 1) for s, e, w in spans if w == "gc2"),
        "machine_stalls": [stalls_before, stalls_after],
    }


def _attribute(starts: list[int], ns: list[int], spans: list[tuple[int, int, str]]) -> dict[str, int]:
    """Calls over 1 ms by what ran meanwhile: a gc pass (of this process: the GIL holder stops every
    thread), a commit (of either store), both, or neither (the machine: the process was not scheduled)."""
    spans = sorted(spans)
    begins = [s for s, _e, _w in spans]
    out: dict[str, int] = {}
    for t, d in zip(starts, ns, strict=True):
        if d <= 1_000_000:
            continue
        end = t + d
        lo = bisect.bisect_left(begins, end)
        whats = {w.rstrip("012") for s, e, w in spans[max(0, lo - 64) : lo] if e > t}
        key = "+".join(sorted(whats)) or "neither"
        out[key] = out.get(key, 0) + 1
    return out


def machine_stalls(seconds: float = 2.0) -> dict[str, float]:
    """How often the machine stops a running thread of this process: a loop that only reads the clock,
    counting the gaps between two reads over 50 and over 100 us (a VM's timer tick, steal time,
    interrupts). A call of length L is hit by one about L x rate times: on this VM (one gap over 50 us
    every ~4 ms, the 250 Hz tick) a 14 us call is hit ~0.35% of the time, more than the 0.1% a
    p99.9 allows, and a hit costs it the gap plus cold caches after it (the spaced figures)."""
    clock = time.perf_counter_ns
    gaps: list[int] = []
    last = clock()
    end = last + int(seconds * 1e9)
    while last < end:
        t = clock()
        if t - last > 50_000:
            gaps.append(t - last)
        last = t
    g = np.asarray(gaps, dtype=np.float64) / 1e3
    return {
        "seconds": seconds,
        "over_50us_per_s": round(g.size / seconds, 1),
        "over_100us_per_s": round(float((g > 100).sum()) / seconds, 1),
        "median_gap_us": round(float(np.median(g)), 1) if g.size else 0.0,
    }


def _spin(seconds: float) -> None:
    a = np.random.default_rng(0).random(20_000)
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        a = np.sqrt(a * a + 1.0)


def median(calls: int, tmp: str) -> dict[str, Any]:
    """Section 2: record vs raw os.write, alternating, back to back and spaced."""
    root = os.path.join(tmp, "median")
    store = Store(root, format=2)
    record = store.event_log.record
    payload = {"step": 1, "loss": 0.25, "note": "a short train_log line"}
    fd = os.open(os.path.join(tmp, "raw2.jsonl"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    clock = time.perf_counter_ns
    out: dict[str, Any] = {}
    for loop, pause in (("back_to_back", None), ("after_5ms_sleep", time.sleep), ("after_5ms_compute", _spin)):
        a, b = [], []
        for i in range(calls + 20):
            if pause is not None:
                pause(0.005)
            t = clock()
            record("train_log", payload)
            t2 = clock()
            if pause is not None:
                pause(0.005)
            t3 = clock()
            # the floor: what a record's spool write is, with the same encoding work
            os.write(fd, (json.dumps({"ts": t3, "kind": "train_log", "data": payload}) + "\n").encode())
            t4 = clock()
            if i >= 20:  # warm-up calls dropped
                a.append(t2 - t)
                b.append(t4 - t3)
        ma, mb = statistics.median(a) / 1e3, statistics.median(b) / 1e3
        out[loop] = {"record_us": round(ma, 2), "raw_os_write_us": round(mb, 2), "ratio": round(ma / mb, 2)}
    os.close(fd)
    store.close()
    shutil.rmtree(root)
    return out


RECENT_CHILD = textwrap.dedent(
    """
    import builtins, json, os, sys, time
    import pyarrow.parquet as pq
    from aeg_jupyter.core.store import Store
    opened = []
    real = pq.ParquetFile.__init__
    def counting(self, source, *a, **kw):
        opened.append(str(source))
        real(self, source, *a, **kw)
    pq.ParquetFile.__init__ = counting
    store = Store(sys.argv[1], format=2, hot_limit=int(sys.argv[2]))
    at_open = len(opened)
    t = time.perf_counter()
    got = store.event_log.recent(limit=10)
    ms = (time.perf_counter() - t) * 1e3
    files = len(store.event_table.delta.files())
    store.close()
    print(json.dumps({"recent_ms": round(ms, 2), "got": len(got), "files_in_table": files,
                      "files_opened_at_open": at_open, "files_opened_by_recent": len(opened) - at_open}))
    """
)


def _commit_process_rss_mb(store: Store) -> float:
    committer = store.event_table._committer
    proc = committer._proc if committer is not None else None
    if proc is None:
        return 0.0
    try:
        with open(f"/proc/{proc.pid}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return 0.0


def recent(m: int, tmp: str) -> dict[str, Any]:
    """Section 3: log ``m`` events through the API (RSS sampled), then a fresh process's cold recent."""
    root = os.path.join(tmp, "recent")
    store = Store(root, format=2)
    record = store.event_log.record
    idle_before_first_write = rss_mb()
    # the idle kernel of the budget has written once, as in run.py's events row and the floor: the first
    # commit maps delta-rs's writer code (~40 MB of the deltalake library's pages) and starts its runtime,
    # once per process whatever is logged after (both are reported)
    record("bench_start", {"warm": True})
    store.flush()
    idle = rss_mb()
    peak = idle
    child_peak = 0.0
    start = time.perf_counter()
    for i in range(m):
        record("train_log", {"step": i, "loss": 1.0 / (i + 1)})
        if i % 20_000 == 0:
            peak = max(peak, rss_mb())
            child_peak = max(child_peak, _commit_process_rss_mb(store))
    wall = time.perf_counter() - start
    load = round(os.getloadavg()[0], 1)
    store.close()
    events = store.event_table
    out: dict[str, Any] = {
        "events": m,
        "logging_s": round(wall, 1),
        "load_while_logging": load,
        "idle_rss_mb": round(idle, 1),
        "idle_before_first_write_mb": round(idle_before_first_write, 1),
        "peak_rss_while_logging_mb": round(peak, 1),
        "rss_above_idle_mb": round(peak - idle, 1),
        "commit_process_peak_rss_mb": round(child_peak, 1),
        "child_merges": getattr(events, "child_merges", 0),
        "merge_child_peak_rss_mb": getattr(events, "merge_peak_mb", 0.0),
    }
    runs = []
    for hot in (1000, 1):  # the default hot window, and one so small that recent scans cold
        _wall, res = run_child(RECENT_CHILD, root, str(hot))
        res["hot_limit"] = hot
        runs.append(res)
    out["cold_recent"] = runs
    shutil.rmtree(root)
    out["floor"] = _rss_floor.measure(m, os.path.join(tmp, "rss-floor"))
    shutil.rmtree(os.path.join(tmp, "rss-floor"), ignore_errors=True)
    return out


def render(res: dict[str, Any]) -> str:
    lines = [
        "# Format 2: record with the background flusher",
        "",
        f"{res['when']}, {res['machine']}; load average at start {res['load_start']}, at end {res['load_end']}.",
        f"`python bench/format2_record_bench.py {res.get('argv', '--full' if res['full'] else '')}`".replace(" `", "`"),
        f"Commits: {res.get('commits', 'in the commit process')}.",
        "",
    ]
    if "tail" in res:
        t = res["tail"]
        rec, quiet, raw = t["record"], t["record_no_flush"], t["raw_os_write"]
        lines += [
            f"## 1. Every record while logging {t['events']:,} events of 1 KiB",
            "",
            "| | p50 us | p99 us | p99.9 us | max ms | calls > 100 us | calls > 20 ms |",
            "| --- | --- | --- | --- | --- | --- | --- |",
            f"| `record` (format 2, commits in the commit process) | {rec['p50_us']} | {rec['p99_us']} | "
            f"{rec['p999_us']} | {rec['max_ms']} | {rec['over_100us']} | {rec['over_20ms']} |",
        ]
        if "record_thread" in t:
            th = t["record_thread"]
            lines.append(
                f"| `record` (format 2, commits on the flusher thread) | {th['p50_us']} | {th['p99_us']} | "
                f"{th['p999_us']} | {th['max_ms']} | {th['over_100us']} | {th['over_20ms']} |"
            )
        lines += [
            f"| `record`, no flush during the timed calls (same chunks) | {quiet['p50_us']} | {quiet['p99_us']} | "
            f"{quiet['p999_us']} | {quiet['max_ms']} | {quiet['over_100us']} | {quiet['over_20ms']} |",
            f"| raw `os.write` of one line (floor, same chunks) | {raw['p50_us']} | {raw['p99_us']} | "
            f"{raw['p999_us']} | {raw['max_ms']} | {raw['over_100us']} | {raw['over_20ms']} |",
            "",
            f"Budget: p99.9 <= {BUDGET['p999_us']:.0f} us, max <= {BUDGET['max_ms']:.0f} ms. "
            f"{t['commits_on_the_flusher']} commits by the commit process during {t['wall_s']} s of logging, "
            f"{t.get('commits_on_the_flusher_thread', '-')} on the flusher thread during "
            f"{t.get('wall_thread_s', '-')} s; close (the last commit) {t['close_s']} s / "
            f"{t.get('close_thread_s', '-')} s. The rows alternate in chunks of 100,000 calls "
            "(each flushing store commits ten times in its own chunk, and is committed to the end after it, "
            "untimed); the control store commits its rows between its chunks (untimed): what the machine "
            "gives a record that no flush touches. Before the timed calls the process imports pandas and runs one full gc "
            "pass (a kernel's state when a logging cell runs: see `tail`).",
            "",
        ]
        if "slow_calls" in t:
            lines += [
                "Calls over 1 ms by what ran meanwhile (gc: a collection of this process, which stops every "
                "thread; commit: either store's flusher; neither: the process was not scheduled): "
                + "; ".join(
                    f"{name.replace('_', ' ')} " + (", ".join(f"{k} {v}" for k, v in sorted(d.items())) or "none")
                    for name, d in t["slow_calls"].items()
                )
                + f". gc passes meanwhile {t['gc_passes']}, generation 2 ones took {t['gc2_ms']} ms.",
                "",
            ]
        if "machine_stalls" in t:
            st = t["machine_stalls"]
            share = 100 * quiet["p50_us"] * 1e-6 * max(x["over_50us_per_s"] for x in st)
            lines += [
                f"The machine's own stalls (a loop that only reads the clock, {st[0]['seconds']:g} s before and after the timed "
                "calls: gaps between two reads): "
                + "; ".join(
                    f"{x['over_50us_per_s']}/s over 50 us ({x['over_100us_per_s']}/s over 100 us, median gap "
                    f"{x['median_gap_us']} us)"
                    for x in st
                )
                + f". A call as long as the control's median ({quiet['p50_us']} us) is hit by one about "
                f"{share:.2f}% of the time: a p99.9 allows 0.1%, and a hit costs the gap plus the cold caches "
                "after it (compare the spaced medians below).",
                "",
            ]
    if "median" in res:
        lines += [
            "## 2. record median against a raw os.write of one JSON line (alternating)",
            "",
            "| loop | record us | raw os.write us | ratio (budget 1.5x) |",
            "| --- | --- | --- | --- |",
        ]
        for loop, v in res["median"].items():
            lines.append(f"| {loop.replace('_', ' ')} | {v['record_us']} | {v['raw_os_write_us']} | {v['ratio']}x |")
        lines.append("")
    if "recent" in res:
        r = res["recent"]
        lines += [
            f"## 3. {r['events']:,} events: cold recent(limit=10), RSS while logging",
            "",
            f"Logging took {r['logging_s']} s (load average {r.get('load_while_logging', '?')}); RSS "
            f"{r['idle_rss_mb']} MB idle after open and a first write ({r.get('idle_before_first_write_mb', '?')} MB "
            f"before it), peak {r['peak_rss_while_logging_mb']} MB while logging: "
            f"{r['rss_above_idle_mb']} MB above idle (budget < {BUDGET['rss_above_idle_mb']:.0f} MB). The store's "
            "commit process (a separate interpreter: pyarrow + deltalake, what it commits in hand; 0 when commits "
            f"run on the flusher thread) peaked at {r['commit_process_peak_rss_mb']} MB. The "
            f"{r.get('child_merges', 0)} merges of small files ran in one-shot child processes, which peaked at "
            f"{r.get('merge_child_peak_rss_mb', 0.0)} MB and exit after each merge.",
            "",
        ]
        fl = r.get("floor")
        if fl:
            lines += [
                f"The floor (`bench/_rss_floor.py`: a fresh interpreter appending the same {fl['events']:,} events "
                f"to a Delta table with `pyarrow.json.read_json` + `write_deltalake`, {fl['batch']:,} a commit, the "
                f"partition compacted every 32 commits by a one-shot child as the store does; nothing of ours): {fl['rss_above_idle_mb']} MB above its "
                f"state after its first write ({fl['commits']} commits, {fl['seconds']} s)"
                + (
                    ": the floor alone is over the budget."
                    if fl["rss_above_idle_mb"] >= BUDGET["rss_above_idle_mb"]
                    else "."
                ),
                "",
            ]
        lines += [
            "| hot window | first recent(limit=10) ms (budget 150) | data files in the table | files opened by the open "
            "| by recent |",
            "| --- | --- | --- | --- | --- |",
        ]
        for c in r["cold_recent"]:
            lines.append(
                f"| {c['hot_limit']} | {c['recent_ms']} | {c['files_in_table']} | {c['files_opened_at_open']} | "
                f"{c['files_opened_by_recent']} |"
            )
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true", help="2M events for the tail, 10M for recent")
    ap.add_argument("--events", type=int, default=None, help="events for the tail section")
    ap.add_argument("--recent-events", type=int, default=None, help="events for the recent section")
    ap.add_argument("--calls", type=int, default=300, help="calls per loop of the median section")
    ap.add_argument(
        "--sections", default="tail,median,recent", help="comma-separated subset of tail,median,recent (default all)"
    )
    ap.add_argument("--out", default=os.path.join(REPO, "bench", "results"))
    ap.add_argument("--tmp", default=None, help="scratch directory for the stores")
    args = ap.parse_args()
    n = args.events or (2_000_000 if args.full else 200_000)
    m = args.recent_events or (10_000_000 if args.full else 100_000)
    tmp = tempfile.mkdtemp(prefix="aeg-record-bench-", dir=args.tmp)
    res: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "load_start": round(os.getloadavg()[0], 1),
        "full": args.full,
        "argv": " ".join(  # without --out / --tmp and their values (paths of this machine)
            a
            for i, a in enumerate(sys.argv[1:])
            if not a.startswith(("--out", "--tmp")) and sys.argv[i] not in ("--out", "--tmp")
        ),
        "budget": BUDGET,
        "commits": "in the commit process (AEG_COMMIT_PROCESS=1)"
        if os.environ.get("AEG_COMMIT_PROCESS", "0") == "1"
        else "on the flusher thread (the default; section 1 runs both)",
    }
    sections = set(args.sections.split(","))
    try:
        if "tail" in sections:
            res["tail"] = tail(n, tmp)
            print(json.dumps(res["tail"]), flush=True)
        if "median" in sections:
            res["median"] = median(args.calls, tmp)
            print(json.dumps(res["median"]), flush=True)
        if "recent" in sections:
            res["recent"] = recent(m, tmp)
            print(json.dumps(res["recent"]), flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    res["load_end"] = round(os.getloadavg()[0], 1)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "format2_record_bench.json"), "w") as f:
        json.dump(res, f, indent=2)
    with open(os.path.join(args.out, "format2_record_bench.md"), "w") as f:
        f.write(render(res))
    print(render(res))


if __name__ == "__main__":
    main()
