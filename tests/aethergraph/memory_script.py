"""AetherGraph's memory facade reading a timeline from the hot cache, in a child interpreter (tests/aethergraph).

``python memory_script.py OUT.json --backend aeg --store ROOT``

A timeline's records interleaved with AetherGraph's occurrence events (its saves) and another
timeline's records: every ``recent`` / ``query`` answer must equal what a fresh memory log (no cache:
the newest-first read of the store) gives, while the cache answered it (the same cache object, not a
new read), also after another process appended to the timeline (while it is open and after it
closed) and after more events than the event log's hot window holds. OUT.json gets each step's
comparison and timings.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from typing import Any

OTHER = """
import asyncio, os, sys, time
import aeg_jupyter
from aethergraph.services.memory.factory import MemoryFactory
from aeg_jupyter.aethergraph import AegHotLog, AegMemoryLog, AegPersistence
root, hold, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
ctx = aeg_jupyter.connect(root)
log = AegMemoryLog(ctx.store.event_log, ctx.store.artifacts, hot_limit=30, watch=ctx.store)
mem = MemoryFactory(hotlog=AegHotLog(log), persistence=AegPersistence(log), artifacts=None,
                    hot_limit=30).for_session("run-m", graph_id="g", node_id="other")
async def go():
    for i in range(n):
        await mem.record(kind="from_other", data={"i": i})
asyncio.run(go())
if hold != "-":
    open(hold + ".written", "w").close()
    while not os.path.exists(hold):
        time.sleep(0.02)
log.close()
ctx.close()
"""

HOT = 30  # the timeline's hot window (AetherGraph's memory.hot_limit)


async def main(out_path: str, root: str) -> None:
    from aethergraph.services.artifacts.facade import ArtifactFacade
    from aethergraph.services.memory.factory import MemoryFactory

    import aeg_jupyter
    from aeg_jupyter.aethergraph import AegArtifactIndex, AegArtifactStore, AegHotLog, AegMemoryLog, AegPersistence

    ctx = aeg_jupyter.connect(root)
    store = AegArtifactStore(ctx.store.artifacts, staging_dir=os.path.join(os.path.dirname(out_path), "staging"))
    index = AegArtifactIndex(store, ctx.store.event_log, watch=ctx.store)
    log = AegMemoryLog(ctx.store.event_log, ctx.store.artifacts, hot_limit=HOT, watch=ctx.store)
    hot = AegHotLog(log)
    factory = MemoryFactory(hotlog=hot, persistence=AegPersistence(log), artifacts=store, hot_limit=HOT)
    mem = factory.for_session("run-m", graph_id="g", node_id="n1")
    side = factory.for_session("run-side", graph_id="g", node_id="n2")  # another timeline
    arts = ArtifactFacade(
        run_id="run-m", graph_id="g", node_id="n1", tool_name="t", tool_version="0", art_store=store, art_index=index
    )
    out: dict[str, Any] = {"steps": {}}

    def fresh() -> AegHotLog:  # no cache: its first read of a timeline is the newest-first read of the store
        return AegHotLog(AegMemoryLog(ctx.store.event_log, ctx.store.artifacts, hot_limit=HOT))

    def fresh_facade() -> Any:
        flog = AegMemoryLog(ctx.store.event_log, ctx.store.artifacts, hot_limit=HOT)
        f = MemoryFactory(hotlog=AegHotLog(flog), persistence=AegPersistence(flog), artifacts=store, hot_limit=HOT)
        return f.for_session("run-m", graph_id="g", node_id="n1")

    async def interleave(n: int, tag: str) -> None:
        for i in range(n):
            await mem.record(kind="train_log", data={"tag": tag, "i": i})
            await arts.save_json({"tag": tag, "i": i}, kind="checkpoint", labels={"exp": tag})  # an occurrence event
            await side.record(kind="side_log", data={"tag": tag, "i": i})

    def ids(events: list[Any]) -> list[str]:
        return [e.event_id for e in events]

    async def step(name: str) -> None:
        timelines = list(log._timelines)
        assert len(timelines) <= 2, timelines
        tl = mem.timeline_id
        cache_before = log._timelines.get(tl)
        t0 = time.perf_counter()
        got = await hot.recent(tl, limit=50)
        t1 = time.perf_counter()
        q = await hot.query(tl, kinds=["train_log"], limit=10)
        want = await fresh().recent(tl, limit=50)
        t2 = time.perf_counter()
        want_q = await fresh().query(tl, kinds=["train_log"], limit=10)
        facade = ids(await mem.recent(limit=20)) == ids(await fresh_facade().recent(limit=20))
        out["steps"][name] = {
            "equal": ids(got) == ids(want) and ids(q) == ids(want_q),
            "n": len(got),
            "kinds": sorted({e.kind for e in got}),
            "facade_equal": facade,
            "from_cache": cache_before is not None and log._timelines.get(tl) is cache_before,
            "cached_ms": round((t1 - t0) * 1e3, 3),
            "fresh_ms": round((t2 - t1) * 1e3, 3),
        }

    await interleave(20, "a")
    out["timeline_id"] = mem.timeline_id
    # the store's newest events: the timeline's records among occurrence events and another timeline's
    out["interleaved_kinds"] = sorted({e.kind for e in ctx.store.event_log.recent(limit=3 * HOT)})
    await step("first")  # (builds the cache: not from it)
    await step("again")
    await interleave(15, "b")
    await step("after_interleaved_writes")
    # another process appends to the timeline and stays open: its events show in the next read
    hold = os.path.join(os.path.dirname(out_path), "hold")
    proc = subprocess.Popen([sys.executable, "-c", OTHER, root, hold, "7"])
    deadline = time.monotonic() + 300
    while not os.path.exists(hold + ".written"):
        assert proc.poll() in (None, 0) and time.monotonic() < deadline, "the other process did not write"
        time.sleep(0.05)
    out["stamp_with_other"] = log._stamp.now() is not None
    await step("other_open")
    await interleave(3, "c")
    await step("other_open_then_ours")
    open(hold, "w").close()
    assert proc.wait(timeout=300) == 0
    await step("other_closed")
    quick = subprocess.Popen([sys.executable, "-c", OTHER, root, "-", "4"])
    assert quick.wait(timeout=300) == 0
    await step("other_came_and_went")
    # more events since the last look than the event log's hot window holds: read again, same answer
    hot_limit = ctx.store.event_log.hot.limit
    for i in range(hot_limit + 50):
        await side.record(kind="side_log", data={"flood": i})
    time.sleep(2.2)  # spool/ old enough to trust again: this process is the only writer
    out["stamp_alone"] = log._stamp.now() is not None
    await step("after_a_flood")
    await step("after_a_flood_again")
    await interleave(2, "d")
    await step("alone_after_writes")
    log.close()
    store.close()
    index.close()
    ctx.close()
    with open(out_path, "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--backend", choices=["aeg"], required=True)
    ap.add_argument("--store", required=True)
    a = ap.parse_args()
    asyncio.run(main(a.out, a.store))
