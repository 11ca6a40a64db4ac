"""StoreStamp: when the AetherGraph index may keep a search's answer (no AetherGraph needed here)."""

from __future__ import annotations

import os
import time

from aeg_jupyter.aethergraph.index import StoreStamp
from aeg_jupyter.core.store import Store


def _age(store: Store, seconds: float = 60) -> None:
    """Make spool/ look as if nothing came or went for ``seconds`` (a store open for a while)."""
    t = time.time() - seconds
    os.utime(store.layout.spool, (t, t))


def test_the_stamp_moves_with_this_process_saves_pins_and_deletes_not_events(tmp_path):
    store = Store(str(tmp_path / "s"))
    try:
        stamp = StoreStamp(store)
        assert stamp.now() is None  # spool/ just changed (this writer came): too recent to trust
        _age(store)
        s0 = stamp.now()
        assert s0 is not None and stamp.now() == s0
        store.event_log.record("note", "events do not change artifacts")
        assert stamp.now() == s0
        art = store.artifacts.save_json({"a": 1}, kind="checkpoint")
        s1 = stamp.now()
        assert s1 not in (None, s0)
        store.artifacts.pin(art.artifact_id)
        s2 = stamp.now()
        assert s2 not in (None, s1)
        store.artifacts.pin(art.artifact_id, False)
        store.artifacts.delete(art.artifact_id)
        assert stamp.now() not in (None, s2)
        stamp.close()
        before = stamp.now()
        store.artifacts.save_json({"b": 2}, kind="checkpoint")
        assert stamp.now() == before  # closed: no longer listening
    finally:
        store.close()


def test_no_stamp_while_another_writer_is_there_and_a_new_one_after_it_left(tmp_path):
    root = str(tmp_path / "s")
    store = Store(root)
    try:
        stamp = StoreStamp(store)
        _age(store)
        alone = stamp.now()
        assert alone is not None
        other = Store(root)  # another writer (another process would hold the same kind of folder)
        assert stamp.now() is None
        _age(store)
        assert stamp.now() is None  # still there, however old spool/ is
        other.close()
        assert stamp.now() is None  # it just left: too recent
        _age(store, 30)
        after = stamp.now()
        assert after is not None and after != alone
    finally:
        store.close()


def test_no_stamp_for_format_2(tmp_path):
    store = Store(str(tmp_path / "s2"), format=2)
    try:
        stamp = StoreStamp(store)
        _age(store)
        assert stamp.now() is None
    finally:
        store.close()
