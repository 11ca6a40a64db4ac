"""Rows an s3:// root's table holds twice (two compactions of one snapshot, which delta-rs 1.6 commits
both), on a real SeaweedFS on loopback: ``verify`` names them and ``verify(repair=True)`` keeps one of
each under the bucket's maintenance lease, as on a local root (tests/format2/test_duplicates.py)."""

from __future__ import annotations

from typing import Any

import pyarrow.compute as pc
import pytest
from deltalake import DeltaTable

from aeg_jupyter.core.store import Store

from .conftest import SeaweedServer


def _rows(uri: str, opts: dict[str, str], column: str) -> tuple[int, int]:
    ids = DeltaTable(uri, storage_options=opts).to_pyarrow_dataset().to_table(columns=[column]).column(0)
    return len(ids), len(pc.unique(ids))


def test_rows_held_twice_on_a_bucket_are_found_and_kept_once(
    s3_server: SeaweedServer, s3_bucket: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = f"s3://{s3_bucket}/team"
    with Store(root, maintain_commits=0) as store:
        store.event_table._compact_small_files = lambda kinds: None  # type: ignore[method-assign]
        for commit in range(4):
            for i in range(5):
                store.event_log.record("tick", {"c": commit, "i": i})
            store.flush()
        uri, opts = store.event_table.delta.uri, dict(store.event_table.delta.storage_options or {})
    first, second = DeltaTable(uri, storage_options=opts), DeltaTable(uri, storage_options=opts)
    first.optimize.compact()
    second.optimize.compact()
    if _rows(uri, opts, "event_id") != (40, 20):
        pytest.skip("this deltalake no longer commits two compactions of the same files: no store to repair")

    monkeypatch.setenv("AEG_CACHE", str(tmp_path / "machine2"))  # another machine repairs it
    store = Store(root)
    try:
        report = store.artifacts.verify()
        assert not report.ok and [(d["table"], d["kind"], d["rows"]) for d in report.duplicates] == [
            ("events", "tick", 20)
        ]
        fixed = store.artifacts.verify(repair=True)
        assert fixed.ok and [(d["rows"], d["dropped"]) for d in fixed.duplicates] == [(20, 20)]
        assert _rows(uri, opts, "event_id") == (20, 20)
        got = store.event_log.recent(kinds=["tick"], limit=100)
        assert sorted((e.data["c"], e.data["i"]) for e in got) == [(c, i) for c in range(4) for i in range(5)]
        assert store.artifacts.verify().ok
    finally:
        store.close()
