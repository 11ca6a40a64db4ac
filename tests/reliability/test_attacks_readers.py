"""What another process sees while a writer flushes and compacts (issue 13, items 8 and 13).

Only the public API and what an external reader (DuckDB over ``tables/<table>/*/*.parquet``)
sees are checked, so these hold on either store format.
"""

from __future__ import annotations

import json

from conftest import run_child, spawn_child

import aeg_jupyter

WRITER = """
import sys, aeg_jupyter
store = aeg_jupyter.Store(sys.argv[1], flush_rows=int(sys.argv[3]))
print("R", flush=True)
for i in range(int(sys.argv[2])):
    store.event_log.record("log", {"i": i})
store.close()
print("D", flush=True)
"""

READER = """
import json, os, sys, time, aeg_jupyter
root, limit = sys.argv[1], int(sys.argv[2])
store = aeg_jupyter.Store(root, hot_limit=int(sys.argv[3]))
bad, rounds, done = [], 0, os.path.join(os.path.dirname(root), "done")
while True:
    finished = os.path.exists(done)
    try:
        got = [e.data["i"] for e in store.event_log.recent(kinds=["log"], limit=limit)]
    except Exception as exc:
        bad.append(f"{type(exc).__name__}: {exc}")
        got = None
    if got is not None and got:
        want = list(range(max(0, got[-1] + 1 - limit), got[-1] + 1))
        if got != want:
            bad.append(f"asked {limit}, got {len(got)} ending at {got[-1]}")
    rounds += 1
    if finished:
        break
print(json.dumps({"bad": bad[:20], "n_bad": len(bad), "rounds": rounds, "last": got[-1] if got else None}))
store.close()
"""


def test_recent_in_another_process_is_exact_while_a_writer_flushes_and_compacts(store_root, tmp_path):
    """Item 8: a reader looping on recent(limit=N) (a hot window smaller than N, so it reads spools
    and parts) gets exactly the newest N events every time, while the writer flushes every 40
    rows and compacts every 32 parts; no TypeError from equal heap keys, no short answers."""
    aeg_jupyter.Store(store_root).close()
    total = 6000
    writer = spawn_child(WRITER, store_root, str(total), "40")
    assert writer.stdout is not None and writer.stdout.readline().strip() == "R"
    readers = [spawn_child(READER, store_root, str(limit), "20") for limit in (300, 1500)]
    _out, err = writer.communicate(timeout=300)
    assert writer.returncode == 0, err
    (tmp_path / "done").write_text("")
    for reader in readers:
        rout, rerr = reader.communicate(timeout=300)
        assert reader.returncode == 0, rerr
        res = json.loads(rout)
        assert res["n_bad"] == 0, res
        assert res["last"] == total - 1 and res["rounds"] > 5, res


HOLDER = """
import os, sys, time, aeg_jupyter
store = aeg_jupyter.Store(sys.argv[1])
for i in range(6):
    store.event_log.record("log", {"i": i})
store.flush()  # a part with rows 0-5 ...
for i in range(6, 12):
    store.event_log.record("log", {"i": i})
print("R", flush=True)
while not os.path.exists(sys.argv[2]):
    time.sleep(0.05)
store.close()
"""


def test_recent_is_exact_in_the_moment_a_row_is_both_in_a_spool_and_in_a_part(store_root, tmp_path):
    """Item 8, the moment between a flush's part and its spool's removal, held still: the same
    rows in a live writer's spool and in a part (as a flush leaves them for an instant)."""
    import glob
    import shutil

    aeg_jupyter.Store(store_root).close()
    release = tmp_path / "release"
    holder = spawn_child(HOLDER, store_root, str(release))
    assert holder.stdout is not None
    try:
        assert holder.stdout.readline().strip() == "R"
        [spool] = glob.glob(f"{store_root}/spool/*/events-*.jsonl")
        with open(spool) as f:
            rows = [json.loads(line) for line in f]
        import pyarrow as pa
        import pyarrow.parquet as pq

        from aeg_jupyter.storage.schemas import EVENTS

        cols = {f.name: [r.get(f.name) for r in rows] for f in EVENTS.schema}
        [first] = glob.glob(f"{store_root}/tables/events/kind=log/*.parquet")
        twin = first.replace("-000000.parquet", "-000001.parquet")
        pq.write_table(pa.Table.from_pydict(cols, schema=EVENTS.schema), twin + ".tmp")
        shutil.move(twin + ".tmp", twin)
        out = run_child(
            """
import json, sys, aeg_jupyter
store = aeg_jupyter.Store(sys.argv[1], hot_limit=1)
print(json.dumps([[e.data["i"] for e in store.event_log.recent(limit=n)] for n in (3, 8, 12, 50)]))
store.close()
""",
            store_root,
        )
        assert json.loads(out.stdout) == [list(range(9, 12)), list(range(4, 12)), list(range(12)), list(range(12))]
    finally:
        release.write_text("")
        holder.communicate(timeout=60)
