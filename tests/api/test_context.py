"""connect() shares one open store per root and process: what a second context may and may not change."""

from __future__ import annotations

import pytest

import aeg_jupyter
from aeg_jupyter import InvalidInputError


def test_asking_for_fsync_on_a_store_open_with_flush_is_refused_not_ignored(store_root: str) -> None:
    first = aeg_jupyter.connect(store_root)
    with pytest.raises(
        InvalidInputError, match=r"already open in this process with durability='flush'.*context\.close\(\)"
    ):
        aeg_jupyter.connect(store_root, durability="fsync")
    assert first.store.durability == "flush" and not first.store.closed
    first.close()
    strict = aeg_jupyter.connect(store_root, durability="fsync")  # once the other context is gone, it opens
    assert strict.store.durability == "fsync"
    lenient = aeg_jupyter.connect(store_root)  # a weaker wish is served by the stronger store
    assert lenient.store is strict.store
    lenient.close()
    strict.close()


def test_closing_a_second_context_leaves_the_kernels_store_open(store_root: str) -> None:
    kernel = aeg_jupyter.connect(store_root)
    other = aeg_jupyter.connect(store_root, run_id="other-run")
    assert other.store is kernel.store
    other.close()
    other.close()  # twice is harmless and does not release the kernel's share
    assert not kernel.store.closed
    art = kernel.store.artifacts.save_text("still writable", kind="note")
    assert kernel.store.artifacts.get(art.artifact_id).kind == "note"
    kernel.close()
    assert kernel.store.closed
    with pytest.raises(InvalidInputError, match="closed; connect again"):
        kernel.store.artifacts.save_text("after close", kind="note")
    reopened = aeg_jupyter.connect(store_root)
    assert [a.artifact_id for a in reopened.store.artifacts.list()] == [art.artifact_id]
    reopened.close()
