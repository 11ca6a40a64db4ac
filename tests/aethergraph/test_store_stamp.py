"""StoreStamp: when the AetherGraph index may keep a search's answer (no AetherGraph needed here)."""

from __future__ import annotations

import os
import time

import pytest

from aeg_jupyter.aethergraph.index import StoreStamp
from aeg_jupyter.core.store import Store


def _age(store: Store, seconds: float = 60) -> None:
    """Make spool/ look as if nothing came or went for ``seconds`` (a store open for a while)."""
    t = time.time() - seconds
    os.utime(store.layout.spool, (t, t))


# not format 1's mechanics: the same guarantee on both formats, whatever AEG_STORE_FORMAT says
FORMATS = pytest.mark.parametrize("fmt", [1, 2])


@FORMATS
def test_the_stamp_moves_with_this_process_saves_pins_and_deletes_not_events(tmp_path, fmt):
    store = Store(str(tmp_path / "s"), format=fmt)
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
        s3 = stamp.now()
        assert s3 not in (None, s2)
        # committing this writer's spool (format 2: the flusher's Delta commits; format 1: Parquet
        # parts) and maintenance change files, not what a search sees: the stamp stays
        store.flush()
        store.maintain()
        assert stamp.now() == s3
        stamp.close()
        before = stamp.now()
        store.artifacts.save_json({"b": 2}, kind="checkpoint")
        assert stamp.now() == before  # closed: no longer listening
    finally:
        store.close()


@FORMATS
def test_no_stamp_while_another_writer_is_there_and_a_new_one_after_it_left(tmp_path, fmt):
    root = str(tmp_path / "s")
    store = Store(root, format=fmt)
    try:
        stamp = StoreStamp(store)
        _age(store)
        alone = stamp.now()
        assert alone is not None
        other = Store(root, format=fmt)  # another writer (another process would hold the same kind of folder)
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
