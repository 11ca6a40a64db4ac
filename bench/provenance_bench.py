"""What lineage costs: ``python bench/provenance_bench.py [--quick]`` (issue 16's budgets).

Budgets: the per-cell hook (``pre_run_cell``, which now also hands the cell to the context) <= 50 us;
what provenance adds to a ``record`` <= 2 us. Also measured, without a budget: a read's tracking, the
first write of a cell (its source kept as an ``aeg.cell`` row), capturing the environment (in a
thread at ``%load_ext``) and ``%load_ext`` itself. Prints a table and writes
``bench/results/provenance.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from typing import Any

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))


def per_call_us(fn: Any, n: int, repeats: int = 5) -> float:
    """Median over ``repeats`` batches of the mean time of one call, in microseconds."""
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(n):
            fn()
        out.append((time.perf_counter() - t) / n * 1e6)
    return statistics.median(out)


def paired_median_us(fa: Any, fb: Any, n: int) -> tuple[float, float]:
    """Median time of one call of ``fa`` and of ``fb``, calls interleaved (the machine's drift hits both)."""
    clock = time.perf_counter
    ta, tb = [], []
    for _ in range(n):
        t0 = clock()
        fa()
        t1 = clock()
        fb()
        t2 = clock()
        ta.append(t1 - t0)
        tb.append(t2 - t1)
    return statistics.median(ta) * 1e6, statistics.median(tb) * 1e6


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer calls (seconds)")
    ap.add_argument("--out", default=os.path.join(BENCH_DIR, "results"))
    args = ap.parse_args(argv)
    n = 2000 if args.quick else 20000

    from IPython.core.interactiveshell import ExecutionInfo, InteractiveShell
    from traitlets.config import Config

    from aeg_jupyter.base.models import Provenance
    from aeg_jupyter.core.environment import capture_environment

    res: dict[str, Any] = {"calls": n}
    with tempfile.TemporaryDirectory(prefix="aeg-prov-bench-") as tmp:
        os.environ["AEG_STORE"] = os.path.join(tmp, "kernel-store")
        config = Config()
        config.HistoryManager.enabled = False
        shell = InteractiveShell.instance(config=config)
        t = time.perf_counter()
        shell.run_line_magic("load_ext", "aeg_jupyter")
        res["load_ext_ms"] = (time.perf_counter() - t) * 1e3
        magics = shell.magics_manager.registry["AegMagics"]
        ctx = magics.context
        source = "x = 1\n" * 40  # a 240-character cell
        info = ExecutionInfo(source, True, False, False, None)
        res["pre_run_cell_hook_us"] = per_call_us(lambda: magics._pre_run_cell(info), n)
        res["begin_cell_us"] = per_call_us(lambda: ctx.begin_cell(source, execution_count=3), n)

        # a record: the same call with full cell provenance vs only the scope ids
        log = ctx.store.event_log
        ctx.begin_cell(source, execution_count=4)
        full = ctx.origin
        bare = Provenance(full.run_id, full.graph_id, full.node_id)
        data = {"epoch": 1, "loss": 0.25}
        log.record("train_log", data, origin=full)
        with_prov, without = paired_median_us(
            lambda: log.record("train_log", data, origin=full), lambda: log.record("train_log", data, origin=bare), n
        )
        res["record_with_provenance_us"] = with_prov
        res["record_scope_ids_only_us"] = without
        res["record_added_us"] = with_prov - without
        res["origin_property_us"] = per_call_us(lambda: ctx.origin, n)
        mem = ctx.memory()

        async def facade_record() -> None:
            await mem.record(kind="train_log", data=data)

        loop = asyncio.new_event_loop()
        res["facade_record_us"] = per_call_us(lambda: loop.run_until_complete(facade_record()), n // 4)
        loop.close()

        # a read: what tracking adds to load_text (listener on vs off)
        arts = ctx.store.artifacts
        art = arts.save_text("hello", kind="note")
        listener = ctx._note_read
        res["read_listener_call_us"] = per_call_us(lambda: listener(art), n)
        res["load_text_us"] = per_call_us(lambda: arts.load_text(art), n // 4)

        # the first write of a new cell keeps its source (one small row); later writes do not
        firsts, laters = [], []
        for i in range(50 if args.quick else 300):
            ctx.begin_cell(f"# cell {i}\n" + source, execution_count=100 + i)
            t = time.perf_counter()
            arts.save_text("a", kind="note", origin=ctx.write_origin())
            firsts.append((time.perf_counter() - t) * 1e6)
            t = time.perf_counter()
            arts.save_text("b", kind="note", origin=ctx.write_origin())
            laters.append((time.perf_counter() - t) * 1e6)
        res["first_write_of_a_cell_us"] = statistics.median(firsts)
        res["later_write_in_the_cell_us"] = statistics.median(laters)

        t = time.perf_counter()
        env = capture_environment(git_dir=BENCH_DIR)
        res["capture_environment_ms"] = (time.perf_counter() - t) * 1e3
        res["packages"] = len(env["packages"])
        shell.run_line_magic("unload_ext", "aeg_jupyter")
        InteractiveShell.clear_instance()

    res["budgets"] = {
        "pre_run_cell hook <= 50 us": res["pre_run_cell_hook_us"] <= 50,
        "added per record <= 2 us": res["record_added_us"] <= 2,
    }
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "provenance.json"), "w", encoding="utf-8") as f:
        json.dump(res, f, indent=1)
    for k, v in res.items():
        if k != "budgets":
            print(f"{k:34} {v:10.2f}" if isinstance(v, float) else f"{k:34} {v}")
    for k, ok in res["budgets"].items():
        print(f"budget {k}: {'met' if ok else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
