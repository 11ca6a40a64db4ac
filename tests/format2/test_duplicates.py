"""Rows a table holds twice: ``verify`` finds them, ``verify(repair=True)`` keeps one of each.

Such rows came from a store that an earlier build compacted twice at once (delta-rs 1.6 lets two
compactions of the same files both commit, docs/format2.md "One rewrite at a time"). These tests
make them the same way, with two real ``DeltaTable`` compactions from one snapshot, and count rows
with deltalake itself (what DuckDB or Polars see) and through the API.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from typing import Any

import pyarrow.compute as pc
import pytest
from deltalake import DeltaTable

from aeg_jupyter.core.store import Store
from aeg_jupyter.frontends.cli import main

COMMITS = 6
EVENTS_PER_COMMIT = 7
ARTIFACTS = 4


def _filled(root: str) -> tuple[int, list[str]]:
    """A format-2 store with ``COMMITS`` small files of events of kind "tick" and ``ARTIFACTS`` artifacts
    in as many files; its own merges held back. Returns the events recorded and the artifact ids."""
    store = Store(root, format=2, maintain_commits=0)
    for table in (store.event_table, store.tables["artifacts"]):
        table._compact_small_files = lambda kinds: None  # type: ignore[method-assign]
    n = 0
    for _ in range(COMMITS):
        for _ in range(EVENTS_PER_COMMIT):
            store.event_log.record("tick", {"n": n})
            n += 1
        store.event_table.flush()
    ids = []
    for i in range(ARTIFACTS):
        ids.append(store.artifacts.save_json({"i": i}, kind="ckpt's", metrics={"acc": i / 10}).artifact_id)
        store.tables["artifacts"].flush()
    store.close()
    return n, ids


def _compact_twice(path: str) -> None:
    """Two compactions of one snapshot, one after the other: delta-rs commits both."""
    first, second = DeltaTable(path), DeltaTable(path)
    first.optimize.compact()
    second.optimize.compact()


def _rows(path: str, id_column: str) -> tuple[int, int]:
    """(rows, distinct ids) of a table as deltalake reads it."""
    ids = DeltaTable(path).to_pyarrow_dataset().to_table(columns=[id_column]).column(0)
    return len(ids), len(pc.unique(ids))


def _doubled(root: str) -> tuple[int, list[str]]:
    n, ids = _filled(root)
    for name in ("events", "artifacts"):
        _compact_twice(f"{root}/tables/{name}")
    if _rows(f"{root}/tables/events", "event_id") != (2 * n, n):
        pytest.skip("this deltalake no longer commits two compactions of the same files: no store to repair")
    assert _rows(f"{root}/tables/artifacts", "artifact_id") == (2 * ARTIFACTS, ARTIFACTS)
    return n, ids


def test_verify_finds_rows_held_twice_and_repair_keeps_one_of_each(tmp_path: Any, capsys: Any) -> None:
    root = str(tmp_path / "store")
    n, ids = _doubled(root)

    code = main(["--store", root, "verify"])
    out = capsys.readouterr().out
    assert code == 1, out
    assert f"{n} row(s) of the events table (kind 'tick') are held twice" in out
    assert f'{ARTIFACTS} row(s) of the artifacts table (kind "ckpt\'s") are held twice' in out
    assert "aeg verify --repair" in out

    store = Store(root)
    report = store.artifacts.verify(repair=True)
    assert report.ok, str(report)
    assert sorted((d["table"], d["kind"], d["rows"], d["dropped"]) for d in report.duplicates) == [
        ("artifacts", "ckpt's", ARTIFACTS, ARTIFACTS), ("events", "tick", n, n),
    ]  # fmt: skip
    assert "each is now held once" in str(report)
    # the truth external engines see, and the API's
    assert _rows(f"{root}/tables/events", "event_id") == (n, n)
    assert _rows(f"{root}/tables/artifacts", "artifact_id") == (ARTIFACTS, ARTIFACTS)
    events = store.event_log.recent(kinds=["tick"], limit=10 * n)
    assert sorted(e.data["n"] for e in events) == list(range(n))
    listed = store.artifacts.search(kind="ckpt's")
    assert sorted(a.artifact_id for a in listed) == sorted(ids)
    assert [a.metrics["acc"] for a in store.artifacts.search(kind="ckpt's", metric="acc")] == [0.3, 0.2, 0.1, 0.0]
    store.close()

    code = main(["--store", root, "verify"])
    out = capsys.readouterr().out
    assert code == 0 and "all intact" in out and "duplicates" not in out


# A writer in another process: logs kind "tick", committing every 5 rows, until the file `stop` exists.
_WRITER = textwrap.dedent(
    """
    import os, sys
    from aeg_jupyter.core.store import Store
    root, stop = sys.argv[1:]
    store = Store(root, format=2, maintain_commits=0)
    store.event_table._compact_small_files = lambda kinds: None
    i = 0
    while not os.path.exists(stop):
        store.event_log.record("tick", {"w": i})
        i += 1
        if i % 5 == 0:
            store.event_table.flush()
            if i == 5:
                print("committing", flush=True)
    store.close()
    print(i, flush=True)
    """
)


def test_a_repair_beside_a_writer_loses_nothing_and_keeps_nothing_twice(tmp_path: Any) -> None:
    root = str(tmp_path / "store")
    n, _ids = _doubled(root)
    stop = tmp_path / "stop"
    writer = subprocess.Popen([sys.executable, "-c", _WRITER, root, str(stop)], stdout=subprocess.PIPE, text=True)
    assert writer.stdout is not None and writer.stdout.readline().strip() == "committing"
    store = Store(root)
    report = store.artifacts.verify(repair=True)
    stop.touch()
    writes = int(writer.stdout.readline())
    assert writer.wait(timeout=120) == 0
    assert report.ok, str(report)
    store.close()
    # the writer committed before the repair's commit and after it: they ran at the same time
    modes = [h["operationParameters"].get("mode") for h in reversed(DeltaTable(f"{root}/tables/events").history())]
    at = modes.index("Overwrite")
    assert modes[at - 1] == "Append", modes  # (the compactions that doubled the rows came before the writer)
    assert "Append" in modes[at + 1 :], modes
    assert _rows(f"{root}/tables/events", "event_id") == (n + writes, n + writes)
    store = Store(root)
    events = store.event_log.recent(kinds=["tick"], limit=10 * (n + writes))
    assert sorted(e.data["n"] for e in events if "n" in e.data) == list(range(n))
    assert sorted(e.data["w"] for e in events if "w" in e.data) == list(range(writes))
    assert store.artifacts.verify().ok
    store.close()


def test_verify_without_repair_only_reports(tmp_path: Any) -> None:
    root = str(tmp_path / "store")
    n, _ids = _doubled(root)
    store = Store(root)
    version = DeltaTable(f"{root}/tables/events").version()
    report = store.artifacts.verify()
    assert not report.ok and {d["table"] for d in report.duplicates} == {"events", "artifacts"}
    assert all(d["dropped"] == 0 for d in report.duplicates)
    store.close()
    assert DeltaTable(f"{root}/tables/events").version() == version  # no commit
    assert _rows(f"{root}/tables/events", "event_id") == (2 * n, n)
