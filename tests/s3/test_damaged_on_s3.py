"""A data file of an s3:// root's table missing on the bucket (deleted by hand, a half-restored bucket),
on a real SeaweedFS on loopback: another machine (its own ``AEG_CACHE``, so no local copy) opens the store;
a query that needs the file raises ``DamagedDataFile`` naming it and ``aeg verify --repair``, ``verify``
reports it, ``verify --repair`` takes it out of the table (one Delta commit), then everything answers.
As on a local root (tests/reliability/test_damaged_delta.py); the check costs nothing while the bucket
is whole: the snapshot is asked again (one log listing) only when a download of a data file gets 404.
"""

from __future__ import annotations

import warnings
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from aeg_jupyter.base.errors import CorruptionError, StoreWarning
from aeg_jupyter.core.store import Store

from .conftest import SeaweedServer


def _data_keys(server: SeaweedServer, bucket: str, table: str) -> list[str]:
    client = server.client()
    keys = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"team/tables/{table}/"):
        keys.extend(o["Key"] for o in page.get("Contents", []) if o["Key"].endswith(".parquet"))
    return sorted(keys)


def test_a_data_object_missing_on_the_bucket_is_damage_named_reported_and_repaired(
    s3_server: SeaweedServer, s3_bucket: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = f"s3://{s3_bucket}/team"
    ids: dict[str, list[str]] = {"ckpt": [], "note": []}
    with Store(root) as store:
        for commit in range(2):
            for i in range(4):
                ids["ckpt"].append(store.artifacts.save_json({"c": commit, "i": i}, kind="ckpt").artifact_id)
                ids["note"].append(store.artifacts.save_text(f"n{commit}{i}", kind="note").artifact_id)
            store.event_log.record("log", {"commit": commit})
            store.flush()
    keys = _data_keys(s3_server, s3_bucket, "artifacts")
    assert len(keys) == 4  # two commits of two kinds
    victim = next(k for k in keys if "kind=ckpt" in k)
    s3_server.client().delete_object(Bucket=s3_bucket, Key=victim)

    monkeypatch.setenv("AEG_CACHE", str(tmp_path / "machine2"))  # another machine: no local copies
    with warnings.catch_warnings():
        warnings.simplefilter("error", StoreWarning)  # the open reads no artifact file: no warning
        store = Store(root)
    try:
        arts = store.artifacts
        assert {a.artifact_id for a in arts.search(kind="note")} == set(ids["note"])  # the other kind answers
        with pytest.raises(CorruptionError, match="aeg verify --repair") as err:
            list(arts.search(kind="ckpt"))
        assert victim.rsplit("/", 1)[1] in str(err.value) and "is missing" in str(err.value)
        report = arts.verify()
        assert not report.ok and [p.rsplit("/", 1)[1] for p in report.bad_parts] == [victim.rsplit("/", 1)[1]]
        fixed = arts.verify(repair=True)
        assert [(e["table"], e["rows"]) for e in fixed.lost] == [("artifacts", 4)]
        assert len(_data_keys(s3_server, s3_bucket, "artifacts")) == 3
        survivors = {a.artifact_id for a in arts.search(kind="ckpt")}
        assert len(survivors) == 4 and survivors < set(ids["ckpt"])
        assert arts.verify().ok
    finally:
        store.close()


def test_an_events_object_missing_on_the_bucket_is_skipped_at_open_with_a_warning_naming_it(
    s3_server: SeaweedServer, s3_bucket: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The events table is read at open: a data object the bucket lacks is skipped with a StoreWarning
    naming it and `aeg verify --repair` (the store opens, the other commit's events answer)."""
    root = f"s3://{s3_bucket}/team"
    with Store(root) as store:
        for commit in range(2):
            for i in range(3):
                store.event_log.record("log", {"commit": commit, "i": i})
            store.flush()
    keys = _data_keys(s3_server, s3_bucket, "events")
    assert len(keys) == 2
    client = s3_server.client()
    body = client.get_object(Bucket=s3_bucket, Key=keys[0])["Body"].read()
    lost = set(pq.read_table(pa.BufferReader(body), columns=["event_id"]).column(0).to_pylist())
    assert len(lost) == 3
    client.delete_object(Bucket=s3_bucket, Key=keys[0])

    monkeypatch.setenv("AEG_CACHE", str(tmp_path / "machine2"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        store = Store(root)
        try:
            got = store.event_log.recent(kinds=["log"], limit=10)
            bad = store.artifacts.verify()
        finally:
            store.close()
    said = [str(w.message) for w in caught if issubclass(w.category, StoreWarning)]
    name = keys[0].rsplit("/", 1)[1]
    assert said and all(name in m and "aeg verify --repair" in m for m in said)
    assert len(got) == 3 and not {e.event_id for e in got} & lost  # the other commit's events
    assert [p.rsplit("/", 1)[1] for p in bad.bad_parts] == [name]
