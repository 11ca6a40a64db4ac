"""The columnar catalog's warm cache of built `Artifact`s is bounded (`columnar._BUILT_MAX`): an answer whose rows
span several data files and pass the bound is still whole (it once lost the rows of the files read before the
cache was emptied: KeyError). Real format-2 stores in tmp_path."""

from __future__ import annotations

from typing import Any

import pytest

from aeg_jupyter.core import columnar
from aeg_jupyter.core.store import Store


def test_an_answer_larger_than_the_warm_cache_across_data_files_is_whole(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = str(tmp_path / "s")
    saved = []
    with Store(root, format=2) as store:
        store.artifact_table.background = False  # no flusher: the three flushes are the commits
        for batch in range(3):  # three commits: three data files of the kind
            saved += [store.artifacts.save_json({"b": batch, "i": i}, kind="ckpt") for i in range(4)]
            store.flush()
        assert len(store.artifact_table.delta.files(["ckpt"])) == 3
    monkeypatch.setattr(columnar, "_BUILT_MAX", 5)
    with Store(root, format=2) as store:
        for _ in range(2):  # cold, then warm (the cache emptied and refilled)
            got = store.artifacts.list(kind="ckpt")
            assert [a.artifact_id for a in got] == [a.artifact_id for a in reversed(saved)]
            assert [a.uri for a in got] == [a.uri for a in reversed(saved)]
