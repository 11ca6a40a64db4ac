"""Shared helpers of the benchmark suite: timing, memory, child processes, repo path."""

from __future__ import annotations

import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH_DIR)
if REPO not in sys.path:
    sys.path.insert(0, REPO)  # the bench runs from a checkout, installed or not

Stats = dict[str, Any]


def summarize(samples_ns: list[int]) -> Stats:
    """Median, p99, mean and min (microseconds) of per-call times in nanoseconds."""
    if not samples_ns:
        return {"n": 0}
    s = sorted(samples_ns)
    n = len(s)
    p99 = s[min(n - 1, int(n * 0.99))]
    return {
        "n": n,
        "median_us": round(statistics.median(s) / 1000, 3),
        "p99_us": round(p99 / 1000, 3),
        "mean_us": round(sum(s) / n / 1000, 3),
        "min_us": round(s[0] / 1000, 3),
    }


def sleep_5ms() -> None:
    """What a notebook loop does between two calls while it waits on I/O: the CPU idles for 5 ms."""
    time.sleep(0.005)


_COMPUTE: dict[str, Any] = {}


def compute_5ms() -> None:
    """What a training loop does between two calls: 5 ms of numpy work on a 2 MiB working set
    (it evicts the caller's code and data from the CPU caches, as real compute does)."""
    import numpy as np

    if not _COMPUTE:
        rng = np.random.default_rng(0)
        _COMPUTE["x"] = rng.random((512, 512))
        _COMPUTE["w"] = rng.random((512, 512)) / 512
    x, w = _COMPUTE["x"], _COMPUTE["w"]
    end = time.perf_counter() + 0.005
    while time.perf_counter() < end:
        x = np.tanh(x @ w)


GAPS: dict[str, Callable[[], None] | None] = {"back to back": None, "after 5 ms sleep": sleep_5ms,
                                              "after 5 ms compute": compute_5ms}  # fmt: skip


def time_calls(fn: Callable[[int], Any], n: int, *, warmup: int = 0, gap: Callable[[], None] | None = None) -> Stats:
    """Call ``fn(i)`` ``n`` times (after ``warmup`` untimed calls) and summarize each call's time;
    ``gap()`` (untimed) runs before each timed call: the spaced loop a notebook lives in."""
    for i in range(warmup):
        fn(i)
    out = []
    clock = time.perf_counter_ns
    for i in range(n):
        if gap is not None:
            gap()
        t = clock()
        fn(i)
        out.append(clock() - t)
    return summarize(out)


def time_pair(
    fa: Callable[[int], Any],
    fb: Callable[[int], Any],
    n: int,
    *,
    warmup: int = 0,
    gap: Callable[[], None] | None = None,
) -> tuple[Stats, Stats]:
    """Time ``fa(i)`` and ``fb(i)`` alternately, so both see the same machine (a noisy disk hits both);
    with ``gap``, it runs (untimed) before each of the two calls."""
    for i in range(warmup):
        fa(i)
        fb(i)
    a, b = [], []
    clock = time.perf_counter_ns
    for i in range(n):
        if gap is not None:
            gap()
        t = clock()
        fa(i)
        t2 = clock()
        if gap is not None:
            gap()
            t2b = clock()
        else:
            t2b = t2
        fb(i)
        t3 = clock()
        a.append(t2 - t)
        b.append(t3 - t2b)
    return summarize(a), summarize(b)


async def time_calls_async(
    fn: Callable[[int], Any], n: int, *, warmup: int = 0, gap: Callable[[], None] | None = None
) -> Stats:
    """``time_calls`` for a coroutine function, awaited in the running loop (``gap`` blocks the loop,
    as a cell's compute does)."""
    for i in range(warmup):
        await fn(i)
    out = []
    clock = time.perf_counter_ns
    for i in range(n):
        if gap is not None:
            gap()
        t = clock()
        await fn(i)
        out.append(clock() - t)
    return summarize(out)


def time_once(fn: Callable[[], Any]) -> tuple[float, Any]:
    """(seconds, result) of one call."""
    t = time.perf_counter()
    r = fn()
    return time.perf_counter() - t, r


def median_of(fn: Callable[[], Any], repeat: int) -> float:
    """Median seconds of ``repeat`` calls."""
    return statistics.median(time_once(fn)[0] for _ in range(repeat))


def rss_mb() -> float:
    """Resident set size of this process now, in MiB (from /proc)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return peak_rss_mb()


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = REPO + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("PYTHONHASHSEED", "0")
    return env


def run_child(code: str, *args: str, timeout: float = 600) -> tuple[float, dict[str, Any]]:
    """Run ``python -c code args...`` in a fresh interpreter; (wall seconds, JSON of its last stdout line)."""
    t = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=timeout, env=child_env()
    )
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise RuntimeError(f"bench child failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    last = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")][-1]
    return wall, json.loads(last)


def collect() -> None:
    """Before a timed section: a full garbage collection and the disk's dirty pages written back
    (so one section's garbage and write-back do not bill the next, for us and peers alike)."""
    gc.collect()
    os.sync()


def dir_bytes(path: str) -> tuple[int, int]:
    """(file count, total bytes) under ``path``."""
    files = total = 0
    for dirpath, _dirs, names in os.walk(path):
        for n in names:
            try:
                total += os.lstat(os.path.join(dirpath, n)).st_size
                files += 1
            except FileNotFoundError:
                pass
    return files, total


def fmt_us(us: float | None) -> str:
    """A latency for tables: µs below 1 ms, ms below 10 s, else s."""
    if us is None:
        return "n/a"
    if us < 1000:
        return f"{us:.1f} µs"
    if us < 10_000_000:
        return f"{us / 1000:.2f} ms"
    return f"{us / 1e6:.1f} s"


def fmt_ratio(r: float | None) -> str:
    if r is None:
        return "n/a"
    return f"{r:,.0f}x" if r >= 10 else f"{r:.2f}x"


# The start of every "new process" measurement: time the imports and the open, and report the
# process's own peak RSS. The measuring script appended to it uses t0..t2, hwm() and ctx.
COLD_OPEN_PRELUDE = r"""
import json, sys, time
t0 = time.perf_counter()
def hwm():  # this process's peak RSS in MiB (ru_maxrss would count the parent's, kept across exec)
    with open("/proc/self/status") as f:
        return next(int(ln.split()[1]) for ln in f if ln.startswith("VmHWM")) / 1024
import aeg_jupyter
t1 = time.perf_counter()
ctx = aeg_jupyter.connect(sys.argv[1])
t2 = time.perf_counter()
"""
