"""What lineage costs: ``python bench/provenance_bench.py [--quick]`` (issue 16's budgets).

Budgets: the per-cell hook (``pre_run_cell``, which now also hands the cell to the context) <= 50 us;
what provenance adds to a ``record`` <= 2 us (``await mem.record`` in a cell vs with only the scope
ids, on two stores side by side, calls interleaved, in rounds; the median of the rounds' medians).
Also measured, without a budget: a read's tracking, the first write of a cell (its source kept as an
``aeg.cell`` row), keeping a cell that wrote nothing (later, at the next write), capturing the
environment (in a thread at ``%load_ext``) and ``%load_ext`` itself. Prints a table and writes
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


def drive(coro: Any) -> Any:
    """Run a coroutine that never awaits (the facade's ``record``) to its end, without an event loop."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    raise RuntimeError("the coroutine awaited")  # pragma: no cover


def interleaved_us(fa: Any, fb: Any, n: int) -> tuple[float, float]:
    """Median time of one call of ``fa`` and of ``fb``, in microseconds: calls interleaved, the one
    going first alternating (drift and the cost of going first hit both alike).

    NOTE: a median, not a mean: both stores flush their spool to Parquet on the same call (every
    10k rows, ~0.2-1 s each under load), and that noise would swamp a microsecond in a mean."""
    clock = time.perf_counter
    ta, tb = [], []
    for i in range(n):
        first, second, t_first, t_second = (fa, fb, ta, tb) if i & 1 else (fb, fa, tb, ta)
        t0 = clock()
        first()
        t1 = clock()
        second()
        t2 = clock()
        t_first.append(t1 - t0)
        t_second.append(t2 - t1)
    return statistics.median(ta) * 1e6, statistics.median(tb) * 1e6


def record_with_and_without_provenance(tmp: str, n: int, rounds: int) -> dict[str, Any]:
    """What a cell's provenance adds to ``await mem.record(...)`` (the facade's own code, run without
    an event loop), per round: the medians, the difference, and an A/A control round (both stores
    without provenance) that shows what the setup itself tilts."""
    from aeg_jupyter.api.context import KernelContext
    from aeg_jupyter.core.store import Store

    source = "for epoch in range(100):\n    await mem.record(kind='train_log', data={'epoch': epoch})\n"
    stores = [Store(os.path.join(tmp, name)) for name in ("with-provenance", "scope-ids-only", "control")]
    path = os.path.join(tmp, "notebooks", "train.ipynb")  # a notebook's path, as a kernel has it
    cell = KernelContext(stores[0], graph_id=path, node_id="3f9a6c1e-8d2b-4b7e-9c55-1a2b3c4d5e6f")
    bare = KernelContext(stores[1], graph_id=path, node_id="3f9a6c1e-8d2b-4b7e-9c55-1a2b3c4d5e6f")
    control = KernelContext(stores[2], graph_id=path, node_id="3f9a6c1e-8d2b-4b7e-9c55-1a2b3c4d5e6f")
    for ctx in (cell, bare, control):
        ctx.script = False  # no script path either: only the scope ids
    cell.begin_cell(source, cell_id="3f9a6c1e-8d2b-4b7e-9c55-1a2b3c4d5e6f", execution_count=7)
    mem_cell, mem_bare, mem_control = cell.memory(), bare.memory(), control.memory()
    data = {"epoch": 1, "loss": 0.25}
    drive(mem_cell.record(kind="train_log", data=data))  # the cell's first write keeps its source
    assert cell.origin.source_hash and not bare.origin.source_hash

    def with_prov() -> None:
        drive(mem_cell.record(kind="train_log", data=data))

    def without() -> None:
        drive(mem_bare.record(kind="train_log", data=data))

    def control_call() -> None:
        drive(mem_control.record(kind="train_log", data=data))

    per_round = []
    for r in range(rounds):
        if r == rounds // 2:  # the A/A control, mid-run
            a, b = interleaved_us(control_call, without, n)
            control_added = a - b
        w, wo = interleaved_us(with_prov, without, n)
        per_round.append({"with": w, "without": wo, "added": w - wo})
    for ctx in (cell, bare, control):
        ctx.close()
    for st in stores:
        st.close()
    return {
        "record_rounds": rounds,
        "record_added_per_round_us": [round(x["added"], 3) for x in per_round],
        "record_with_provenance_us": statistics.median(x["with"] for x in per_round),
        "record_scope_ids_only_us": statistics.median(x["without"] for x in per_round),
        "record_added_us": statistics.median(x["added"] for x in per_round),
        "record_control_added_us": control_added,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer calls (seconds)")
    ap.add_argument("--out", default=os.path.join(BENCH_DIR, "results"))
    args = ap.parse_args(argv)
    n = 2000 if args.quick else 20000

    from IPython.core.interactiveshell import ExecutionInfo, InteractiveShell
    from traitlets.config import Config

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

        # a record with a cell's provenance vs one with only the scope ids: two stores side by side
        # (each event log keeps its origin's JSON cached per cell; one log fed both origins in turn
        # would rebuild it on every call, which no kernel does), calls interleaved, order alternated
        res.update(record_with_and_without_provenance(tmp, n, rounds=5 if args.quick else 9))
        res["origin_property_us"] = per_call_us(lambda: ctx.origin, n)
        mem = ctx.memory()
        data = {"epoch": 1, "loss": 0.25}

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

        # cells that wrote nothing: begin_cell notes them (in the hook's time above); they are kept
        # at the next write, a diff or close, one small save each (its time, per cell)
        kept_each = []
        for batch in range(5 if args.quick else 20):
            for i in range(10):
                ctx.begin_cell(f"y{batch}_{i} = {i}  # computes only\n" + source, execution_count=1000 + i)
            ctx.begin_cell("pass", execution_count=2000)  # the tenth is now pending too
            t = time.perf_counter()
            kept = ctx.keep_cells()
            kept_each.append((time.perf_counter() - t) * 1e6 / max(kept, 1))
        res["keep_a_cell_that_wrote_nothing_us"] = statistics.median(kept_each)

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
