"""Events on Delta (format 2): ``recent`` keeps its hot window, and its cold newest-first scan orders data
files by the snapshot's add-action statistics (max ts, +999 us for Delta's millisecond truncation) and
stops as format 1 does, so a fresh process reads only the newest files. Real stores, real child processes;
Parquet opens are counted in the child."""

from __future__ import annotations

import json
import os
from typing import Any

from conftest import run_child

from aeg_jupyter.core.store import Store
from aeg_jupyter.storage.delta import DeltaLakeTable
from aeg_jupyter.storage.schemas2 import EVENTS2_SCHEMA, event_rows_to_arrow

FILES, PER_FILE = 20, 10

COUNTING_CHILD = """
import json, os, sys
import pyarrow as pa
import pyarrow.parquet as pq
from aeg_jupyter.core.store import Store
root, hot, limit, call = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
events_dir = os.path.join(root, "tables", "events")
opened = []  # events data files opened, each counted once per phase (a read may open a file twice:
real_init = pq.ParquetFile.__init__  # its time column, then the rows chosen)
def counting(self, source, *a, **kw):
    if str(source).startswith(events_dir):
        opened.append(os.path.basename(str(source)))
    real_init(self, source, *a, **kw)
pq.ParquetFile.__init__ = counting
real_osfile = pa.OSFile  # DeltaLakeTable._open hands ParquetFile an open file, not a path
def counting_osfile(path, *a, **kw):
    if str(path).startswith(events_dir):
        opened.append(os.path.basename(str(path)))
    return real_osfile(path, *a, **kw)
pa.OSFile = counting_osfile
store = Store(root, format=2, hot_limit=hot)
at_open = len(set(opened))
opened_at_open = len(opened)
log = store.event_log
if call == "recent":
    got = [e.event_id for e in log.recent(kinds=["log"], limit=limit)]
elif call == "recent_data":
    got = [d["i"] for d in log.recent_data(kinds=["log"], limit=limit)]
elif call == "tool":
    got = [e.event_id for e in log.recent_tool_results(tool="train.step", limit=limit)]
else:
    got = log.last_by_name(call)
files = len(store.event_table.delta.files())
store.close()
print(json.dumps({"got": got, "at_open": at_open, "by_call": len(set(opened[opened_at_open:])), "files": files}))
"""


def _count(root: str, hot: int, limit: int, call: str = "recent") -> dict[str, Any]:
    proc = run_child(COUNTING_CHILD, root, str(hot), str(limit), call)
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _store_of_many_files(root: str) -> list[str]:
    """FILES commits of PER_FILE events each (one data file each), oldest first; returns the ids in order."""
    ids: list[str] = []
    with Store(root, format=2) as store:
        store.event_table.background = False  # one commit per flush() below, nothing in between
        for f in range(FILES):
            for i in range(PER_FILE):
                n = f * PER_FILE + i
                outputs = [{"name": "old_only", "kind": "number", "value": n}] if n == 3 else None
                if n % 7 == 0:
                    ev = store.event_log.record_tool_result("train.step", outputs=outputs, message=f"{n}")
                    ids.append(ev.event_id)
                    continue
                ids.append(store.event_log.record("log", {"i": n}, outputs=outputs).event_id)
            store.flush()
    return ids


def test_a_fresh_process_reads_only_the_newest_files(tmp_path: Any) -> None:
    root = str(tmp_path / "s")
    ids = _store_of_many_files(root)
    log_ids = [i for n, i in enumerate(ids) if n % 7]
    # hot window of 10: the open fills it from the newest files (a log and a tool_result file); the
    # window's tool results leave recent(kinds=["log"], limit=10) a few short: the next log file or two
    res = _count(root, hot=10, limit=10)
    assert res["files"] == 2 * FILES  # a file per kind per commit (log, tool_result)
    assert res["got"] == log_ids[-10:]
    assert 1 <= res["at_open"] <= 3 and res["by_call"] <= 2, res
    # a window of 2: recent(limit=25) scans cold, newest files first, and stops after about 3 of 20
    res = _count(root, hot=2, limit=25)
    assert res["got"] == log_ids[-25:]
    assert res["at_open"] <= 2 and res["by_call"] <= 5, res
    # the same for recent_data and recent_tool_results (one in 7 events is a tool result)
    res = _count(root, hot=2, limit=12, call="recent_data")
    assert res["got"] == [n for n in range(FILES * PER_FILE) if n % 7][-12:]
    assert res["by_call"] <= 4, res
    res = _count(root, hot=2, limit=3, call="tool")
    assert res["got"] == [i for n, i in enumerate(ids) if n % 7 == 0][-3:]
    assert res["by_call"] <= 4, res
    # the default window of 1000 holds all 200: nothing more to read for any recent
    res = _count(root, hot=1000, limit=50)
    assert res["got"] == log_ids[-50:] and res["by_call"] == 0
    # last_by_name of a value only the oldest file has: the scan goes back to it, every file once
    res = _count(root, hot=2, limit=1, call="old_only")
    assert res["got"] == 3 and res["by_call"] <= 2 * FILES, res


def test_a_millisecond_tie_in_delta_statistics_does_not_hide_the_newest_event(tmp_path: Any) -> None:
    # Delta's statistics truncate timestamps to milliseconds: both files below say max = T (ms), while
    # the older commit holds the newest event (T + 900 us). The scan bounds each file by max + 999 us.
    root = str(tmp_path / "s")
    Store(root, format=2).close()
    t_ms = 1_767_225_600_000_000

    def row(n: int, us: int) -> dict[str, Any]:
        return {"event_id": f"01JAAAAAAAAAAAAAAAAAAAA{n:03d}", "ts": t_ms + us, "kind": "log", "text": f"{n}"}

    table = DeltaLakeTable(os.path.join(root, "tables", "events"), EVENTS2_SCHEMA, ts_field="ts")
    table.commit(event_rows_to_arrow([row(1, 100), row(2, 900)]), app_id="w", seq=0)
    table.commit(event_rows_to_arrow([row(3, 500)]), app_id="w", seq=1)
    stats = {f.max_ts for f in table.files()}
    assert stats == {t_ms + 999}  # both files: the truncated statistic + 999 us
    for hot in (1, 2):
        with Store(root, format=2, hot_limit=hot) as store:
            newest = store.event_log.recent(kinds=["log"], limit=1)
            assert [e.text for e in newest] == ["2"]
            assert [e.text for e in store.event_log.recent(kinds=["log"], limit=3)] == ["1", "3", "2"]
