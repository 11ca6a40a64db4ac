"""What another process sees while a writer flushes and compacts (issue 13, items 8 and 13).

Only the public API and what an external reader (DuckDB over ``tables/<table>/*/*.parquet``)
sees are checked, so these hold on either store format.
"""

from __future__ import annotations

import json
import time

import pytest
from conftest import run_child, spawn_child

import aeg_jupyter

WRITER = """
import os, sys, time, aeg_jupyter
store = aeg_jupyter.Store(sys.argv[1], flush_rows=int(sys.argv[3]))
print("R", flush=True)
go, deadline = os.path.join(os.path.dirname(sys.argv[1]), "go"), time.monotonic() + 120
while not os.path.exists(go) and time.monotonic() < deadline:  # the readers are looping first
    time.sleep(0.01)
def rounds(limit):  # how many rounds the reader of `limit` has done (it writes the count after each)
    try:
        with open(os.path.join(os.path.dirname(sys.argv[1]), f"rounds-{limit}")) as f:
            return int(f.read())
    except (OSError, ValueError):
        return 0
seen = {limit: rounds(limit) for limit in (300, 1500)}
for i in range(int(sys.argv[2])):
    store.event_log.record("log", {"i": i})
    if i % 1000 == 999:  # a slow machine: wait for a round of each reader, so that they race every 1000 rows
        wait = time.monotonic() + 60
        while any(rounds(n) <= seen[n] for n in seen) and time.monotonic() < wait:
            time.sleep(0.01)
        seen = {n: rounds(n) for n in seen}
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
    counter = os.path.join(os.path.dirname(root), f"rounds-{limit}")
    with open(counter + ".tmp", "w") as f:
        f.write(str(rounds))
    os.replace(counter + ".tmp", counter)
    if rounds == 1:
        open(os.path.join(os.path.dirname(root), f"ready-{limit}"), "w").close()
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
    deadline = time.monotonic() + 120
    while not all((tmp_path / f"ready-{n}").exists() for n in (300, 1500)) and time.monotonic() < deadline:
        time.sleep(0.01)  # both readers loop before the writer starts: they race it from its first row
    (tmp_path / "go").write_text("")
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
store = aeg_jupyter.Store(sys.argv[1], format=1)  # format 1's parts (format 2: test_flusher's kill points)
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
    rows in a live writer's spool and in a part (as a flush leaves them for an instant). Format 1's
    parts; on format 2 the moment is a commit before its spool's removal, whose ``txn`` makes readers
    skip the spool (tests/format2/test_flusher.py kills a writer there)."""
    import glob
    import shutil

    aeg_jupyter.Store(store_root, format=1).close()
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
store = aeg_jupyter.Store(sys.argv[1], hot_limit=1, format=1)
print(json.dumps([[e.data["i"] for e in store.event_log.recent(limit=n)] for n in (3, 8, 12, 50)]))
store.close()
""",
            store_root,
        )
        assert json.loads(out.stdout) == [list(range(9, 12)), list(range(4, 12)), list(range(12)), list(range(12))]
    finally:
        release.write_text("")
        holder.communicate(timeout=60)


COMPACT_KILLED = """
import os, signal, sys, aeg_jupyter
import aeg_jupyter.storage.compaction as compaction
root, n = sys.argv[1], int(sys.argv[2])
store = aeg_jupyter.Store(root, format=1)
steps = [0, False]  # file system changes made by the compaction so far; counting?


def killed_after(fn):
    def step(*args, **kwargs):
        out = fn(*args, **kwargs)
        if steps[1]:
            steps[0] += 1
            if steps[0] == n:
                os.kill(os.getpid(), signal.SIGKILL)  # right after this step
        return out
    return step


for name in ("link", "rename", "replace", "unlink", "rmdir"):
    setattr(os, name, killed_after(getattr(os, name)))
if hasattr(compaction, "exchange_dirs"):  # (one step, though not a call of os)
    compaction.exchange_dirs = killed_after(compaction.exchange_dirs)
steps[1] = True
merged = store.compact(min_parts=2)
steps[1] = False
print("done", merged, steps[0], flush=True)
os._exit(0)
"""


def _duckdb_rows(root: str) -> tuple[int, int]:
    import duckdb

    glob = f"{root}/tables/artifacts/*/*.parquet"
    [row] = duckdb.sql(
        f"select count(*), count(distinct artifact_id) from read_parquet('{glob}', hive_partitioning=true)"
    ).fetchall()
    return row  # type: ignore[no-any-return]


def test_a_compaction_killed_at_any_step_never_shows_duplicates_to_duckdb(store_root, tmp_path):
    """Item 13: the compacting process is SIGKILLed right after each of its file system steps in
    turn; at every such moment DuckDB over the artifacts folder sees every row exactly once, and
    so does the next open. Format 1's compaction of Hive parts; format 2's is one Delta commit, killed
    around it below."""
    import shutil

    base = str(tmp_path / "base")
    store = aeg_jupyter.Store(base, flush_rows=3, format=1)
    kind = "损" * 28  # a hashed partition: its _kind file is one more entry the swap keeps
    ids = {store.artifacts.save_text(f"t{i}", kind=kind).artifact_id for i in range(12)}
    store.close()  # 4 parts in one partition
    assert _duckdb_rows(base) == (12, 12)
    kills = 0
    for n in range(1, 60):
        root = str(tmp_path / f"s{n}")
        shutil.copytree(base, root)
        proc = run_child(COMPACT_KILLED, root, str(n), check=False)
        if proc.returncode == 0:
            assert proc.stdout.startswith("done 4"), proc.stdout  # every step had its kill
            break
        assert proc.returncode == -9, proc.stderr
        kills += 1
        assert _duckdb_rows(root) == (12, 12), f"killed after step {n}"
        store = aeg_jupyter.Store(root, format=1)
        assert {a.artifact_id for a in store.artifacts.list(limit=100)} == ids
        store.close()
        assert _duckdb_rows(root) == (12, 12), f"reopened after a kill after step {n}"
    assert kills >= 3


@pytest.mark.parametrize(("point", "seed"), [("compact-after-commit", 11), ("random", 5), ("random", 6)])
def test_a_format_2_compaction_killed_never_shows_duplicates_to_duckdb(tmp_path, point, seed):
    """Item 13 on format 2: a compaction is one Delta commit (remove + add), so the moments to kill it
    are around that commit; the harness of tests/format2/test_external_readers.py kills a writer right
    after it (and, ``random``, at a random moment of saves + maintenance). DuckDB over the table (and
    deltalake, Polars) never sees a row twice, and after the next maintenance each equals the API."""
    from format2.test_external_readers import _check_after_maintain, _final_states, _kill_at, _no_duplicates_anywhere

    root = str(tmp_path / "s")
    lines = _kill_at(root, point, seed=seed)
    _no_duplicates_anywhere(root)
    saved, deleted, pinned = _final_states(lines)
    assert saved
    _check_after_maintain(root, saved, deleted, pinned if point != "random" else None)
