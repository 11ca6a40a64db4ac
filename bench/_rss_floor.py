"""The RSS floor of logging events into a Delta table from the logging process, nothing of ours.

A fresh interpreter imports pyarrow and deltalake, commits one event (a kernel's first write maps
delta-rs's writer code and starts its runtime), then appends ``events`` events the way a store's
flusher does: a JSON-lines spool of ``batch`` lines parsed by ``pyarrow.json.read_json`` and appended
with ``write_deltalake`` (partitioned by kind), and the partition's small files compacted by delta-rs's
``optimize.compact`` (one task, 16 MiB target) after every 32 commits, as ``compact_small`` keeps a
partition to a few files, in a one-shot child process as the store's merger does (``--in-process``:
here; a merge in the logging process leaves it +28 MB at 1M events and +59 MB at 10M). Its peak RSS
above the state after the first write is what any Delta writer of these events in the logging process
holds: the floor of the bench's "RSS while logging" rows.

``measure(events, tmp)`` runs it and returns ``{"events", "batch", "commits", "rss_above_idle_mb",
"idle_rss_mb", "peak_rss_mb", "merge_peak_rss_mb", "seconds"}``. Standalone: ``python bench/_rss_floor.py EVENTS DIR [BATCH] [--in-process]``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

BATCH = 10_000  # the flusher's flush_rows
COMPACT_EVERY = 32  # commits between compactions (storage/delta_table.COMPACT_AT small files)
# the merge, run by a child interpreter that prints its peak RSS (MB, ru_maxrss in KiB: Linux)
_MERGE = (
    "import resource, sys; from deltalake import DeltaTable; DeltaTable(sys.argv[1]).optimize.compact("
    "partition_filters=[('kind', '=', 'train_log')], target_size=16 << 20, max_concurrent_tasks=1); "
    "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)"
)


def _spool(path: str, lo: int, hi: int) -> None:
    """Events ``lo..hi`` as a spool's lines (the fields a plain ``record(kind, data)`` writes)."""
    with open(path, "w", encoding="utf-8") as f:
        for i in range(lo, hi):
            text = json.dumps(json.dumps({"epoch": i, "loss": 0.25, "acc": 0.91}))
            f.write(
                f'{{"event_id":"01KBF6Z8W7{i:016d}","ts":{1_764_680_000_000_000 + i},"kind":"train_log",'
                f'"severity":2,"version":1,"text":{text}}}\n'
            )


def _run(events: int, tmp: str, batch: int, in_process: bool = False) -> dict[str, Any]:
    import pyarrow.json as pj
    from _util import rss_mb  # (run as a script: bench/ is on the path)
    from deltalake import DeltaTable, write_deltalake

    os.makedirs(tmp, exist_ok=True)
    table, spool = os.path.join(tmp, "floor-table"), os.path.join(tmp, "floor-spool.jsonl")
    _spool(spool, 0, 1)
    write_deltalake(table, pj.read_json(spool), mode="append", partition_by=["kind"])  # the first write
    idle = peak = rss_mb()
    t = time.perf_counter()
    commits = 0
    merge_peak = 0.0
    for lo in range(1, events + 1, batch):
        _spool(spool, lo, min(lo + batch, events + 1))
        write_deltalake(table, pj.read_json(spool), mode="append", partition_by=["kind"])
        commits += 1
        if commits % COMPACT_EVERY == 0 and in_process:
            DeltaTable(table).optimize.compact(
                partition_filters=[("kind", "=", "train_log")], target_size=16 << 20, max_concurrent_tasks=1
            )
        elif commits % COMPACT_EVERY == 0:
            out = subprocess.run([sys.executable, "-c", _MERGE, table], capture_output=True, text=True, check=True)
            merge_peak = max(merge_peak, float(out.stdout.split()[-1]))
        peak = max(peak, rss_mb())
    return {
        "events": events,
        "batch": batch,
        "commits": commits,
        "idle_rss_mb": round(idle, 1),
        "peak_rss_mb": round(peak, 1),
        "rss_above_idle_mb": round(peak - idle, 1),
        "merge_peak_rss_mb": round(merge_peak, 1),
        "merge_in_process": in_process,
        "seconds": round(time.perf_counter() - t, 1),
    }


def measure(events: int, tmp: str, *, batch: int = BATCH, timeout: float = 3600) -> dict[str, Any]:
    """Run the floor in a fresh interpreter; its JSON result (see the module)."""
    proc = subprocess.run(
        [sys.executable, os.path.abspath(__file__), str(events), tmp, str(batch)],
        capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"RSS floor child failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--in-process"]
    n, where = int(args[0]), args[1]
    print(json.dumps(_run(n, where, int(args[2]) if len(args) > 2 else BATCH, "--in-process" in sys.argv)))
