"""The commit process: commits closed spools to a format-2 store's Delta tables for this process's flushers.

A commit is CPU work that holds this interpreter's GIL for most of its 20-150 ms (rows -> Arrow in
Python, then delta-rs's write): on the flusher thread it stalled the notebook's ``record`` calls by up
to 35 ms (measured: 21 calls over 20 ms in 17 commits; bench/format2_record_bench.py). So the flusher
hands each closed spool to one child process per store (``python -m aeg_jupyter.storage.committer``,
started on the first commit) and waits for its answer on a pipe, which costs this process no GIL.

The child reads the closed spool file itself (every row is there: the writer appended it before the
spool was closed) and commits it with :meth:`~.delta.DeltaLakeTable.commit` (the idempotent
``(writer, seq)`` transaction); the writer's flusher removes the spool after the answer. A child
outliving its writer (SIGKILL) finishes at most the commit in hand and exits on the closed pipe: that
commit and a recovering process's commit of the same spool cannot both land (docs/format2.md).

The same child, started for one request and ended after it, merges a partition's small files for a
flusher's merger thread (``DeltaSpoolTable._merge_in_child``): the memory delta-rs and pyarrow take for
a merge goes back to the system when the child exits, where the logging process would keep most of it.

Protocol: one JSON object a line each way. Request ``{"dir", "table", "writer", "seq", "path"}`` (``dir``
a table URI and ``options`` its deltalake ``storage_options`` for an ``s3://`` root);
answer ``{"ok": true, "rows": n, "kinds": [...]}`` (the kinds committed: the writer's merger counts
their small files) or ``{"ok": false, "error": "..."}``. A merge request has ``"op":
"compact"``, ``kind``, ``min_files`` and ``target_size``; its answer ``small`` (files counted),
``merged`` (files merged away) and ``peak_mb`` (the child's peak RSS).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import warnings
from typing import IO, Any

from ..base.errors import StoreWriteError

# the events spool line's fields as pyarrow.json reads them (JSON text columns stay text here)
_EVENT_LINE = None  # built on first use (pyarrow is imported lazily: the parent may never commit here)


class CommitProcess:
    """This process's handle on one commit child (started on first use, restarted if it died).

    Example:
        >>> p = CommitProcess()                                                           # doctest: +SKIP
        >>> p.commit(dir="/s/tables/events", table="events", writer="p1x2", seq=0, path="/s/spool/p1x2/events-000000.jsonl")
        (120, ['train_log'])
    """

    def __init__(self, *, pass_fds: tuple[int, ...] = ()) -> None:
        self._proc: subprocess.Popen[str] | None = None
        self._pass_fds = pass_fds  # fds the child inherits (a merge child: the rewrite lock it works under)
        self._lock = threading.Lock()
        #: True once the child could not start (no interpreter to run): callers then commit themselves
        self.broken = False

    @property
    def running(self) -> bool:
        """True while the child is up (a caller other than the flusher uses it only then: no start wait)."""
        proc = self._proc
        return proc is not None and proc.poll() is None

    def commit(
        self, *, dir: str, table: str, writer: str, seq: int, path: str, storage_options: dict[str, str] | None = None
    ) -> tuple[int, list[str]]:
        """Have the child commit spool ``path`` (``seq`` of ``writer``) into the table at ``dir``; returns
        the rows it committed (0: committed before) and their kinds (the partitions to count for a merge).

        Raises:
            StoreWriteError: the commit failed (the child's message), or the child could not start or died.
        """
        request: dict[str, Any] = {"dir": dir, "table": table, "writer": writer, "seq": seq, "path": path}
        reply = self._ask(request, storage_options, "the rows stay in the spool and the flusher tries again")
        return int(reply["rows"]), [str(k) for k in reply.get("kinds", [])]

    def compact(
        self, *, dir: str, table: str, kind: str, min_files: int, target_size: int,
        storage_options: dict[str, str] | None = None,
    ) -> tuple[int, int, float]:  # fmt: skip
        """Have the child merge partition ``kind``'s small files if it has ``min_files`` of them
        (:meth:`~.delta.DeltaLakeTable.compact_small`); returns the small files it counted, those merged
        away, and the child's peak RSS in MB (0.0 where the system does not say).

        Raises:
            StoreWriteError: the merge failed (the child's message), or the child could not start or died.
        """
        request = {"op": "compact", "dir": dir, "table": table, "kind": kind, "min_files": min_files,
                   "target_size": target_size}  # fmt: skip
        reply = self._ask(request, storage_options, "the small files stay, merged after a later commit")
        return int(reply["small"]), int(reply["merged"]), float(reply["peak_mb"])

    def _ask(self, request: dict[str, Any], storage_options: dict[str, str] | None, meanwhile: str) -> dict[str, Any]:
        """Send one request and return its answer (``ok`` true), or raise ``StoreWriteError`` (``meanwhile``:
        what becomes of the work when the child is gone)."""
        if storage_options is not None:  # an s3:// table (credentials go over the pipe only, never logged)
            request["options"] = storage_options
        req = json.dumps(request)
        with self._lock:
            proc = self._start()
            assert proc.stdin is not None and proc.stdout is not None
            try:
                proc.stdin.write(req + "\n")
                proc.stdin.flush()
                answer = proc.stdout.readline()
            except OSError:
                answer = ""
            if not answer:
                code = proc.poll()
                self._proc = None
                raise StoreWriteError(f"the commit process of this store exited ({code}); {meanwhile}")
        reply: dict[str, Any] = json.loads(answer)
        if not reply.get("ok"):
            raise StoreWriteError(str(reply.get("error")))
        return reply

    def _start(self) -> subprocess.Popen[str]:
        if self._proc is not None and self._proc.poll() is None:
            return self._proc
        try:
            self._proc = start_python("aeg_jupyter.storage.committer", pass_fds=self._pass_fds)
        except OSError as exc:
            self.broken = True
            raise StoreWriteError(f"could not start the commit process ({exc}); the rows stay in the spool") from exc
        return self._proc

    def close(self) -> None:
        """End the child (it finishes the commit in hand first)."""
        with self._lock:
            proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            if proc.stdin is not None:
                proc.stdin.close()
            proc.wait(timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            proc.kill()
        finally:
            if proc.stdout is not None:
                proc.stdout.close()


# `python -m module args` at the lowest priority before anything is imported: the imports (1-2 s of CPU:
# pyarrow, deltalake, this package) and the work after them yield the cores to the kernel's process. On
# Linux a new session is a new scheduler autogroup, and a process's nice counts only inside its group:
# the group's own nice (/proc/self/autogroup) is what yields to the kernel's group. Before, a merge or
# maintenance child beside a 1M-event plot on 2 cores took it from 0.4 s to 2.5-3 s.
_NICED_MODULE = (
    "import os, runpy, sys\n"
    "try:\n    os.nice(19)\nexcept OSError:\n    pass\n"
    "try:\n    with open('/proc/self/autogroup', 'w') as f:\n        f.write('19')\nexcept OSError:\n    pass\n"
    "del sys.argv[0]\n"
    "runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)"
)


def start_python(
    module: str, *args: str, stderr: int = subprocess.DEVNULL, pass_fds: tuple[int, ...] = ()
) -> subprocess.Popen[str]:
    """``python -m module args`` in this interpreter at the lowest priority (``nice`` 19, from its
    first instruction), this package importable, in a session of its own (a Ctrl-C in the notebook's
    terminal does not reach it), stdin and stdout as text pipes; of this process's other fds it
    inherits only ``pass_fds``.

    Raises:
        OSError: no interpreter to run (an embedded Python whose ``sys.executable`` is not a program).
    """
    package_parent = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ)
    env["PYTHONPATH"] = package_parent + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return subprocess.Popen(
        [sys.executable, "-c", _NICED_MODULE, module, *args],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr,
        text=True, env=env, close_fds=True, pass_fds=pass_fds, start_new_session=True,
    )  # fmt: skip


def spool_to_arrow(name: str, path: str, use_threads: bool = True) -> Any:
    """The closed spool file ``path`` of table ``name`` as a format-2 Arrow table, or None when empty.

    Events (the table a notebook loop fills) are parsed by ``pyarrow.json.read_json`` (C++, which
    releases the GIL) and converted column by column: only the cells of the JSON text columns (inputs,
    outputs, metrics, tags) that are not null go through Python. So a commit on the flusher thread
    holds this process's GIL for well under a millisecond per 10,000 plain events instead of the
    ~20-100 ms of a row-by-row conversion. A spool that read_json refuses (a damaged line) and the
    other tables take the row path (``read_spool_rows`` + ``ROWS_TO_ARROW``), which skips damaged lines.
    ``use_threads=False`` parses on the calling thread alone, not on Arrow's pool (storage/priority.py).
    """
    from .delta import read_spool_rows
    from .schemas2 import ROWS_TO_ARROW

    if name == "events":
        try:
            return _events_from_json(path, use_threads)
        except FileNotFoundError:
            return None
        except Exception:  # a line read_json cannot take: the row path skips it (and says which)
            pass
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a damaged line is skipped (the writer's readers warn of it)
        rows = read_spool_rows(path)
    return ROWS_TO_ARROW[name](rows) if rows else None


def _events_from_json(path: str, use_threads: bool) -> Any:
    global _EVENT_LINE
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.json as pj

    from .schemas2 import EVENTS2_SCHEMA, _values, metrics_to_entries, tags_from_json

    if os.path.getsize(path) == 0:
        return None
    if _EVENT_LINE is None:
        ints = ("ts", "severity", "version", "execution_count")
        _EVENT_LINE = pa.schema([(f.name, pa.int64() if f.name in ints else pa.string()) for f in EVENTS2_SCHEMA])
    raw = pj.read_json(
        path,
        read_options=pj.ReadOptions(use_threads=use_threads),
        parse_options=pj.ParseOptions(explicit_schema=_EVENT_LINE, unexpected_field_behavior="ignore"),
    )
    n = raw.num_rows
    if n == 0:
        return None
    if raw.column("event_id").null_count or raw.column("kind").null_count or raw.column("ts").null_count:
        raise ValueError("a spool line without event_id, kind or ts")
    convert = {
        "inputs": _values,
        "outputs": _values,
        "metrics": metrics_to_entries,
        "tags": tags_from_json,
    }
    cols = []
    for f in EVENTS2_SCHEMA:
        col = raw.column(f.name)
        if f.name in convert:
            if col.null_count == n:
                col = pa.nulls(n, f.type)
            else:  # Python work for the cells that hold something only
                fn = convert[f.name]
                col = pa.array([None if v is None else fn(v) for v in col.to_pylist()], f.type)
        elif f.name in ("severity", "version"):
            # (a Python scalar imports pandas into pyarrow: ~40 MB and ~33,000 objects in a logging process
            # that has none; `record` writes both fields, so nulls come only from other writers' lines)
            if col.null_count:
                col = pc.fill_null(col, 2 if f.name == "severity" else 1)
            col = col.cast(f.type)
        elif col.type != f.type:
            col = col.cast(f.type)
        cols.append(col)
    return pa.Table.from_arrays(cols, schema=EVENTS2_SCHEMA)


def _commit(table: Any, name: str, req: dict[str, Any]) -> tuple[int, list[str]]:
    """Commit the spool of request ``req`` to ``table``; the rows committed (0: committed before) and
    their kinds. No merge here: the writer's merger merges under the rewrite lock (``delta.hold_rewrites``)."""
    data = spool_to_arrow(name, req["path"])
    if data is None or not table.commit(data, app_id=req["writer"], seq=int(req["seq"])):
        return 0, []
    return int(data.num_rows), sorted(data.column("kind").unique().to_pylist())


def _peak_rss_mb() -> float:
    """This process's peak RSS in MB (ru_maxrss: KiB on Linux, bytes on macOS), 0.0 without ``resource``."""
    try:
        import resource
    except ImportError:  # Windows
        return 0.0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1 << 20) if sys.platform == "darwin" else peak / 1024, 1)


def serve(stdin: IO[str], stdout: IO[str]) -> None:
    """The child's loop: one request line in, one answer line out, until the pipe closes."""
    # At the lowest priority (start_python): on a machine with few cores, delta-rs's writer threads in
    # here compete with the writer's `record` calls for a core, and the scheduler could leave a record
    # waiting a whole time slice (tens of ms); niced, they yield the core to it (2M records of 1 KiB on
    # 2 cores: p99.9 95.9 us and max 48 ms in the run before, 76-95 us and 12-38 ms in 4 runs with it)
    from .delta import DeltaLakeTable
    from .schemas import ARTIFACTS, EVENTS, OPS
    from .schemas2 import SCHEMAS2

    ts_fields = {s.name: s.ts_field for s in (ARTIFACTS, EVENTS, OPS)}
    tables: dict[str, DeltaLakeTable] = {}
    for line in stdin:
        try:
            req: dict[str, Any] = json.loads(line)
            name = req["table"]
            table = tables.get(req["dir"])
            if table is None:
                table = tables[req["dir"]] = DeltaLakeTable(
                    req["dir"],
                    SCHEMAS2[name],
                    ts_field=ts_fields[name],
                    uri=req["dir"],
                    storage_options=req.get("options"),
                )
            answer: dict[str, Any] = {"ok": True}
            if req.get("op") == "compact":  # a one-shot merge child (DeltaSpoolTable's merger)
                small = table.small_files(req["kind"], target_size=int(req["target_size"]))
                answer["small"] = len(small)
                answer["merged"] = table.compact_small(
                    req["kind"], min_files=int(req["min_files"]), target_size=int(req["target_size"]), small=small
                )
                answer["peak_mb"] = _peak_rss_mb()
            else:
                answer["rows"], answer["kinds"] = _commit(table, name, req)
        except Exception as exc:
            answer = {"ok": False, "error": f"{exc}"}
        stdout.write(json.dumps(answer) + "\n")
        stdout.flush()


if __name__ == "__main__":
    serve(sys.stdin, sys.stdout)
