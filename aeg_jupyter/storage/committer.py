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

Protocol: one JSON object a line each way. Request ``{"dir", "table", "writer", "seq", "path"}`` (``dir``
a table URI and ``options`` its deltalake ``storage_options`` for an ``s3://`` root);
answer ``{"ok": true, "rows": n}`` or ``{"ok": false, "error": "..."}``.
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

COMPACT_AT = 32  # data files in one partition before a commit merges them (as format 1's flush does)


class CommitProcess:
    """This process's handle on one commit child (started on first use, restarted if it died).

    Example:
        >>> p = CommitProcess()                                                           # doctest: +SKIP
        >>> p.commit(dir="/s/tables/events", table="events", writer="p1x2", seq=0, path="/s/spool/p1x2/events-000000.jsonl")
        120
    """

    def __init__(self) -> None:
        self._proc: subprocess.Popen[str] | None = None
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
    ) -> int:
        """Have the child commit spool ``path`` (``seq`` of ``writer``) into the table at ``dir``; returns
        the rows it committed (0: committed before).

        Raises:
            StoreWriteError: the commit failed (the child's message), or the child could not start or died.
        """
        request: dict[str, Any] = {"dir": dir, "table": table, "writer": writer, "seq": seq, "path": path}
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
                raise StoreWriteError(
                    f"the commit process of this store exited ({code}); the rows stay in the spool and "
                    "the flusher tries again"
                )
        reply = json.loads(answer)
        if not reply.get("ok"):
            raise StoreWriteError(str(reply.get("error")))
        return int(reply.get("rows", 0))

    def _start(self) -> subprocess.Popen[str]:
        if self._proc is not None and self._proc.poll() is None:
            return self._proc
        package_parent = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env = dict(os.environ)
        env["PYTHONPATH"] = package_parent + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "aeg_jupyter.storage.committer"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                text=True, env=env, close_fds=True, start_new_session=True,
            )  # fmt: skip
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


def serve(stdin: IO[str], stdout: IO[str]) -> None:
    """The child's loop: one request line in, one answer line out, until the pipe closes."""
    from .delta import DeltaLakeTable, read_spool_rows
    from .schemas import ARTIFACTS, EVENTS, OPS
    from .schemas2 import ROWS_TO_ARROW, SCHEMAS2

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
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a damaged line is skipped (the writer's readers warn of it)
                rows = read_spool_rows(req["path"])
            done = 0
            if rows and table.commit(ROWS_TO_ARROW[name](rows), app_id=req["writer"], seq=int(req["seq"])):
                done = len(rows)
                for kind in {r["kind"] for r in rows}:  # keep partitions to a few files (reads open each)
                    try:
                        if len(table.files([kind])) > COMPACT_AT:
                            table.compact(kinds=[kind])
                    except Exception:  # the rows are committed: a merge can wait for the next commit
                        pass
            answer: dict[str, Any] = {"ok": True, "rows": done}
        except Exception as exc:
            answer = {"ok": False, "error": f"{exc}"}
        stdout.write(json.dumps(answer) + "\n")
        stdout.flush()


if __name__ == "__main__":
    serve(sys.stdin, sys.stdout)
