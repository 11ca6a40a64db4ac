"""Per-``record`` cost with and without the panel's live chart shown (issue 18).

    python bench/live_chart_record.py            # 20k records back to back, 3 alternating trials

In a running asyncio loop (as in a kernel), a cell that records N events back to back into a
format-2 store: the median and p99 of each ``EventLog.record`` call, once with no panel and once
with a :class:`~aeg_jupyter.frontends.panel.Panel` open on its Charts tab (its live chart listens
to the store), alternating, each trial on a fresh store with history (``--flushes`` commits of 400 events in 5 kinds). The mean
per call includes the redraws a long cell's writes trigger (at most one per ``LIVE_INTERVAL``).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import shutil
import statistics
import sys
import tempfile
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import aeg_jupyter


def _one(n: int, live: bool, seed_flushes: int) -> dict[str, Any]:
    root = tempfile.mkdtemp(prefix="aeg-live-")
    ctx = aeg_jupyter.connect(os.path.join(root, "store"), graph_id="bench")
    log = ctx.store.event_log
    try:
        for run in range(seed_flushes):  # a store with history: one Delta commit (data files) per flush
            ctx.new_run(f"r{run}")
            for step in range(200):
                log.record("train_log", {"step": step, "loss": 1.0 / (step + 1)}, origin=ctx.origin)
                log.record(f"note{step % 4}", {"i": step}, origin=ctx.origin)
            ctx.store.flush()
        files = len(log.table.delta.files()) if hasattr(log.table, "delta") else -1
        ctx.new_run("live")

        draws: list[int] = []

        async def cell() -> tuple[list[int], int]:
            panel = None
            if live:
                from aeg_jupyter.frontends.panel import Panel

                panel = Panel(ctx, tab="charts")
                assert panel.charts_tab.figure is not None
                draw = panel.live._draw

                def timed_draw(*args: Any) -> None:  # the redraw's own cost, inside the record that triggers it
                    t = time.perf_counter_ns()
                    draw(*args)
                    draws.append(time.perf_counter_ns() - t)

                panel.live._draw = timed_draw
            renders0 = panel.renders if panel else 0
            out: list[int] = []
            clock = time.perf_counter_ns
            origin = ctx.origin
            gc.disable()
            try:
                for step in range(n):  # the cell's loop: the event loop does not run until it ends
                    t0 = clock()
                    log.record("train_log", {"step": step, "loss": 1.0 / (step + 1)}, origin=origin)
                    out.append(clock() - t0)
            finally:
                gc.enable()
            await asyncio.sleep(0.3)  # the scheduled redraw runs after the cell
            renders = (panel.renders - renders0) if panel else 0
            if panel is not None:
                panel.close()
            return out, renders

        ns, renders = asyncio.run(cell())
    finally:
        ctx.close()
        shutil.rmtree(root, ignore_errors=True)
    ns.sort()
    return {
        "median_us": statistics.median(ns) / 1e3,
        "p99_us": ns[int(len(ns) * 0.99)] / 1e3,
        "total_ms": sum(ns) / 1e6,
        "mean_us": sum(ns) / len(ns) / 1e3,
        "renders": renders,
        "files": files,
        "redraw_ms": statistics.median(draws) / 1e6 if draws else 0.0,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=20_000)
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--flushes", type=int, default=30, help="flushes of history before the timed cell")
    args = ap.parse_args()
    print(f"load {os.getloadavg()[0]:.2f}; {args.n} records back to back per trial")
    for trial in range(args.trials):
        for live in (False, True):
            r = _one(args.n, live, args.flushes)
            print(
                f"trial {trial + 1} {'live chart' if live else 'no panel  '}: median {r['median_us']:.2f} us,"
                f" mean {r['mean_us']:.2f} us, p99 {r['p99_us']:.1f} us, total {r['total_ms']:.0f} ms,"
                f" redraws {r['renders']} (median {r['redraw_ms']:.2f} ms), events data files {r['files']}"
            )


if __name__ == "__main__":
    main()
