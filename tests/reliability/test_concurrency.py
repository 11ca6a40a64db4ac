"""Four writers, two readers, a compactor and a gc on one store at the same time."""

from __future__ import annotations

import json

from conftest import spawn_child

import aeg_jupyter

WRITER = """
import sys, os, aeg_jupyter
root, name, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
store = aeg_jupyter.Store(root, flush_rows=7)
kept, deleted, events = [], [], []
for i in range(n):
    data = {"w": name, "i": i, "pad": "x" * 5000}  # a blob file on either format (format 2 inlines <= 4 KiB)
    a = store.artifacts.save_json(data, kind="ckpt", labels={"w": name}, metrics={"acc": i / n})
    if i % 4 == 3:
        store.artifacts.delete(a)
        deleted.append(a.artifact_id)
    else:
        kept.append(a.artifact_id)
    events.append(store.event_log.record("log", {"w": name, "i": i}).event_id)
store.close()
print(json.dumps({"kept": kept, "deleted": deleted, "events": events}))
""".replace("import sys, os, aeg_jupyter", "import sys, os, json, aeg_jupyter")

READER = """
import os, sys, time, aeg_jupyter
store = aeg_jupyter.Store(sys.argv[1])
print("ready", flush=True)
errors, loops = [], 0
give_up = time.time() + 150
while not os.path.exists(sys.argv[2]) and time.time() < give_up:  # the test makes it once the writers are done
    try:
        store.event_log.recent(kinds=["log"], limit=20)
        store.artifacts.search(kind="ckpt", labels={"w": "w0"})
        store.artifacts.best(kind="ckpt", metric="acc")
        loops += 1
    except Exception as exc:
        errors.append(repr(exc))
store.close()
print(loops, len(errors), errors[:3])
"""

MAINTAINER = """
import os, sys, time, aeg_jupyter, aeg_jupyter.core.artifacts
aeg_jupyter.core.maintenance.GC_GRACE_SECONDS = 0.5
store = aeg_jupyter.Store(sys.argv[1])
print("ready", flush=True)
give_up = time.time() + 150
merged = freed = during = 0
while time.time() < give_up:
    writers_done = os.path.exists(sys.argv[2])  # then one more round, over everything they wrote
    during += not writers_done  # rounds begun while a writer was still alive
    merged += store.compact(min_parts=2)
    report = store.artifacts.gc(dry_run=False)  # format 2: its maintenance run compacts too
    merged += sum(t.compacted for t in report.maintenance.tables) if report.maintenance else 0
    freed += len(report.blobs)
    if writers_done:
        break
    time.sleep(0.05)
store.close()
print(merged, freed, during)
"""


def test_writers_readers_compaction_and_gc_at_once(store_root, tmp_path):
    aeg_jupyter.Store(store_root).close()
    done = str(tmp_path / "writers-done")
    others = [spawn_child(READER, store_root, done) for _ in range(2)] + [spawn_child(MAINTAINER, store_root, done)]
    for p in others:  # the readers and the maintainer run before the first write and after the last
        assert p.stdout is not None and p.stdout.readline() == "ready\n", p.communicate()[1]
    writers = [spawn_child(WRITER, store_root, f"w{i}", "60") for i in range(4)]
    results = [p.communicate(timeout=180) for p in writers]
    open(done, "w").close()
    results += [p.communicate(timeout=180) for p in others]
    for p, (_out, err) in zip(writers + others, results, strict=True):
        assert p.returncode == 0, err
    written = [json.loads(out) for out, _ in results[:4]]
    for out, _ in results[4:6]:
        loops, n_errors, errors = out.split(maxsplit=2)
        assert int(loops) > 0 and n_errors == "0", errors
    merged, freed, during = map(int, results[6][0].split())
    # compaction and gc ran from before the first write to after the last (on format 2, what the writers
    # commit may land only at their close, so the merges themselves can all come in the last round)
    assert during > 0 and merged > 0 and freed > 0, (during, merged, freed)
    store = aeg_jupyter.Store(store_root, hot_limit=10)
    live = {a.artifact_id: a for a in store.artifacts.list()}
    kept = {x for w in written for x in w["kept"]}
    assert set(live) == kept  # no lost rows, no deleted row resurrected
    for a in live.values():
        store.artifacts.load_bytes(a, verify=True)  # no blob of a live artifact was collected
    events = [e.event_id for e in store.event_log.recent(kinds=["log"], limit=10_000)]
    assert len(events) == len(set(events)) == 240  # every event exactly once
    assert set(events) == {x for w in written for x in w["events"]}
    assert store.artifacts.verify().ok
    store.close()
