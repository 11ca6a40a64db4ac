"""Kinds on format 2 are Delta partition folders (`kind=<percent-encoded>`): one whose folder name would pass
255 bytes is refused before anything is spooled (its commit would fail forever), and every kind that fits is
stored, committed and found again. Real stores in tmp_path; the folder names checked on disk."""

from __future__ import annotations

import os
from typing import Any

import pytest

from aeg_jupyter.base.errors import InvalidInputError, StoreFormatError
from aeg_jupyter.core.store import Store
from aeg_jupyter.storage.delta_table import check_partition_value
from aeg_jupyter.storage.migrate import migrate

TOO_LONG = {
    "cjk": "中" * 28,  # 9 bytes each once percent-encoded: 5 + 252 = 257
    "emoji": "😀" * 21,  # 12 bytes each: 257
    "slash": "/" * 84,  # %2F: 257
    "accent": "é" * 42,  # %C3%A9: 257
}
# (check_kind keeps a kind to 120 characters: ASCII letters always fit)
LONGEST = {"cjk": "中" * 27, "slash": "/" * 83 + "a", "ascii": "k" * 120}


@pytest.mark.parametrize("name", sorted(TOO_LONG))
def test_a_kind_too_long_for_a_partition_folder_is_refused_and_nothing_is_spooled(tmp_path: Any, name: str) -> None:
    kind = TOO_LONG[name]
    with Store(str(tmp_path / "s"), format=2) as store:
        with pytest.raises(InvalidInputError, match=r"too long for a table partition \(257 bytes") as e:
            store.artifacts.save_json({"a": 1}, kind=kind)
        assert "use a shorter kind" in str(e.value)
        with pytest.raises(InvalidInputError, match="too long for a table partition"):
            store.event_log.record(kind, {"x": 1})
        store.event_log.record("ok", {"x": 2})  # the store goes on
        assert list(store.artifacts.list()) == []
        assert store.artifact_table.pending_rows == [] and len(store.event_table.pending_rows) <= 1
        store.maintain()
    with Store(str(tmp_path / "s"), format=2) as store:
        assert [e.data for e in store.event_log.recent(limit=5)] == [{"x": 2}]


def test_the_longest_kinds_that_fit_are_committed_and_found(tmp_path: Any) -> None:
    root = str(tmp_path / "s")
    with Store(root, format=2) as store:
        ids = {name: store.artifacts.save_json({"k": name}, kind=kind).artifact_id for name, kind in LONGEST.items()}
        store.maintain()  # committed to Delta: the folder was made
    folders = os.listdir(os.path.join(root, "tables", "artifacts"))
    assert max(len(f.encode()) for f in folders if f.startswith("kind=")) == 255
    with Store(root, format=2) as store:
        for name, kind in LONGEST.items():
            assert [a.artifact_id for a in store.artifacts.search(kind=kind)] == [ids[name]]


def test_check_partition_value_counts_what_delta_rs_encodes() -> None:
    assert check_partition_value("a~b.c_d-e") == "a~b.c_d-e"
    assert check_partition_value("中" * 27) == "中" * 27
    with pytest.raises(InvalidInputError):
        check_partition_value("%" * 84)


def test_migrate_refuses_a_format_1_store_with_such_a_kind_before_writing_anything(tmp_path: Any) -> None:
    root = str(tmp_path / "old")
    with Store(root, format=1) as store:  # format 1 keeps long kinds under a digest-named partition
        store.artifacts.save_json({"a": 1}, kind=TOO_LONG["cjk"])
    with pytest.raises(StoreFormatError, match=r"1 kind\(s\) of this store are too long .* nothing was changed"):
        migrate(root)
    assert not os.path.exists(os.path.join(root, "migrate"))
    with Store(root, format=1) as store:  # still format 1, still whole
        assert [a.kind for a in store.artifacts.list()] == [TOO_LONG["cjk"]]
