"""A format-2 search answer builds its ``Artifact`` objects when they are looked at, and behaves as the
list it replaced (issue 18: 10,000 hits cost 10,000 objects before any was asked for)."""

from __future__ import annotations

import copy
import pickle
from typing import Any

import pytest

from aeg_jupyter.core.search import ArtifactList, LazyArtifactList
from aeg_jupyter.core.store import Store


def _fill(store: Store, n: int) -> None:
    for i in range(n):
        store.artifacts.save_json(
            {"i": i}, kind="checkpoint" if i % 4 else "config", labels={"exp": f"E{i % 3}", "seed": i % 2},
            metrics={"val_acc": i / n},
        )  # fmt: skip


@pytest.mark.parametrize("flushed", [True, False], ids=["committed", "pending"])
def test_a_search_answer_is_lazy_and_behaves_as_its_list(tmp_path: Any, flushed: bool) -> None:
    with Store(str(tmp_path / "s"), format=2) as store:
        _fill(store, 60)
        if flushed:
            store.flush()
            store.artifacts.catalog.refresh()
        hits = store.artifacts.search(kind="checkpoint", labels={"exp": "E1"})
        assert isinstance(hits, LazyArtifactList) and isinstance(hits, list)
        assert len(hits) == 15 and bool(hits) and hits._answer is not None  # nothing built for len / bool
        first, last = hits[0], hits[-1]
        assert hits._answer is not None  # an index builds its row only
        whole = [a for a in hits]  # iteration builds by chunks
        assert whole[0] == first and whole[-1] == last
        assert [a.artifact_id for a in whole] == sorted((a.artifact_id for a in whole), reverse=True)  # newest first
        assert all(a.kind == "checkpoint" and a.labels["exp"] == "E1" for a in whole)
        assert isinstance(hits[2:5], ArtifactList) and hits[2:5] == whole[2:5] and hits[::-1] == whole[::-1]
        with pytest.raises(IndexError):
            hits[15]
        assert hits.df["artifact_id"].tolist() == [a.artifact_id for a in whole]
        # the answer is the one given: a pin after it does not show in it (format 1's list does not change)
        store.artifacts.pin(whole[3].artifact_id)
        assert hits[3].pinned is False
        assert store.artifacts.search(kind="checkpoint", labels={"exp": "E1"})[3].pinned is True
        assert hits == whole and whole == hits and whole[3] in hits and repr(hits) == repr(whole)
        assert hits._answer is None  # == built the whole list once: from now on a plain list
        hits.append(whole[0])
        assert len(hits) == 16
        assert pickle.loads(pickle.dumps(hits)) == hits and copy.copy(hits) == hits
        empty = store.artifacts.search(kind="checkpoint", labels={"exp": "nope"})
        assert not empty and empty == [] and len(empty) == 0 and empty.df.empty


def test_pending_rows_are_found_by_kind_and_label_index(tmp_path: Any) -> None:
    with Store(str(tmp_path / "s"), format=2) as store:
        _fill(store, 40)
        pending = store.artifacts.catalog.columns._pending
        assert len(pending) == 40 and set(pending.by_kind) == {"checkpoint", "config"}
        assert len(list(pending.candidates("checkpoint", [("exp", "E1"), ("seed", 1)]))) <= 10
        assert list(pending.candidates("checkpoint", [("exp", "nope")])) == []
        # 1 matches 1.0, True does not match 1 (as format 1)
        ones = store.artifacts.search(kind="checkpoint", labels={"seed": 1.0})
        assert len(ones) == 20 and not store.artifacts.search(kind="checkpoint", labels={"seed": True})
        best = store.artifacts.best(kind="checkpoint", metric="val_acc", filters={"exp": "E2"})
        assert best is not None and best.labels["exp"] == "E2"
        assert best.metrics["val_acc"] == max(
            a.metrics["val_acc"] for a in store.artifacts.search(kind="checkpoint", labels={"exp": "E2"})
        )
        store.flush()
        store.artifacts.catalog.refresh()
        assert not pending and not pending.by_kind and not pending.by_label
        assert len(store.artifacts.search(kind="checkpoint", labels={"seed": 1})) == 20


def test_an_answer_looked_at_after_a_vacuum_removed_its_files_says_to_run_the_query_again(tmp_path: Any) -> None:
    """The answer's rows are in the data files of its snapshot; compaction + a vacuum with retention 0
    (the store's maintenance) removes them: looking at the answer then raises AnswerExpiredError (not a
    raw FileNotFoundError), the same query answers again, and the rows built before stay readable."""
    from aeg_jupyter.base.errors import AegError, AnswerExpiredError

    with Store(str(tmp_path / "s"), format=2, flush_rows=5) as store:
        for _ in range(4):  # several small commits: the compaction rewrites them into one file
            _fill(store, 10)
            store.flush()
        store.artifacts.catalog.refresh()
        hits = store.artifacts.search(kind="checkpoint")
        n = len(hits)
        first = hits[0]  # built now: kept by the answer's segment
        report = store.maintain(vacuum_hours=0)
        assert sum(t.vacuumed for t in report.tables) > 0
        with pytest.raises(AnswerExpiredError, match="run the query again") as err:
            hits[n - 1]
        assert isinstance(err.value, AegError)
        with pytest.raises(AnswerExpiredError):
            list(hits)
        assert hits[0] == first
        again = store.artifacts.search(kind="checkpoint")
        assert len(again) == n and again[0] == first and [a.kind for a in again] == ["checkpoint"] * n


def test_an_answer_of_a_reader_whose_files_another_store_vacuumed_expires_and_the_query_answers_again(
    tmp_path: Any,
) -> None:
    """A reader's answer, then another Store on the same root compacts and vacuums with retention 0:
    the answer raises AnswerExpiredError, after which the reader's same query answers from the newest
    snapshot (the error made its catalog take it) with the same artifacts."""
    from aeg_jupyter.base.errors import AnswerExpiredError

    root = str(tmp_path / "s")
    with Store(root, format=2, flush_rows=5) as writer:
        for _ in range(4):
            _fill(writer, 10)
            writer.flush()
        reader = Store(root, format=2)
        try:
            hits = reader.artifacts.search(kind="config", labels={"exp": "E0"})
            n = len(hits)
            assert n > 0
            writer.maintain(vacuum_hours=0)
            with pytest.raises(AnswerExpiredError, match="run the query again"):
                hits[0]
            again = reader.artifacts.search(kind="config", labels={"exp": "E0"})
            want = writer.artifacts.search(kind="config", labels={"exp": "E0"})
            assert len(again) == n and [a.artifact_id for a in again] == [a.artifact_id for a in want]
        finally:
            reader.close()
