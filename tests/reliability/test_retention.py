"""gc retention rules: older-than, keep-last, keep-best; pins; dry run equals the real run."""

from __future__ import annotations

import os
import time

import pytest

import aeg_jupyter
import aeg_jupyter.core.maintenance as maintenance_mod
from aeg_jupyter import InvalidInputError


@pytest.fixture(autouse=True)
def no_grace(monkeypatch):
    monkeypatch.setattr(maintenance_mod, "GC_GRACE_SECONDS", -1.0)


def _disk(root: str) -> tuple[int, int]:
    files = size = 0
    for dirpath, _d, names in os.walk(os.path.join(root, "blobs")):
        for n in names:
            files += 1
            size += os.path.getsize(os.path.join(dirpath, n))
    return files, size


def test_keep_best_and_keep_last_and_pins(store_root):
    store = aeg_jupyter.Store(store_root)
    idx = store.artifacts
    accs = [0.5, 0.9, 0.6, 0.7, 0.8]
    ckpts = [idx.save_text(f"ckpt {a}", kind="ckpt", metrics={"acc": a}) for a in accs]
    pinned = idx.save_text("keep", kind="ckpt", pin=True)
    notes = [idx.save_text(f"note {i}", kind="note") for i in range(3)]
    dry = idx.gc(keep_last=1, keep_best={"ckpt": "acc"})
    expected = {ckpts[0].artifact_id, ckpts[2].artifact_id, ckpts[3].artifact_id, ckpts[4].artifact_id}
    expected |= {notes[0].artifact_id, notes[1].artifact_id}
    assert set(dry.artifacts) == expected  # newest ckpt is the pinned one; best (0.9) kept
    files_before, bytes_before = _disk(store_root)
    real = idx.gc(dry_run=False, keep_last=1, keep_best={"ckpt": "acc"})
    files_after, bytes_after = _disk(store_root)
    assert (real.artifacts, real.blobs, real.bytes_freed) == (dry.artifacts, dry.blobs, dry.bytes_freed)
    assert (files_before - files_after, bytes_before - bytes_after) == (len(real.blobs), real.bytes_freed)
    left = {a.artifact_id for a in idx.list()}
    assert left == {ckpts[1].artifact_id, pinned.artifact_id, notes[2].artifact_id}
    assert idx.gc(dry_run=False, keep_last=0).artifacts == [notes[2].artifact_id]  # the leader of ckpt/acc stays
    assert idx.gc(dry_run=False, keep_last=0, keep_best=0).artifacts == [ckpts[1].artifact_id]  # 0: leaders go too
    assert [a.artifact_id for a in idx.list()] == [pinned.artifact_id]  # pinned survives keep_last=0
    assert idx.load_text(pinned) == "keep"
    store.close()


def test_older_than_only_collects_old_artifacts(store_root):
    store = aeg_jupyter.Store(store_root)
    old = store.artifacts.save_text("old")
    time.sleep(3.0)
    new = store.artifacts.save_text("new")
    # old is at least 3 s old at gc's cutoff whatever the machine's speed; new would be only if gc's
    # recover and checks before the cutoff took 3 s
    report = store.artifacts.gc(dry_run=False, older_than=3.0)
    assert report.artifacts == [old.artifact_id]
    assert [a.artifact_id for a in store.artifacts.list()] == [new.artifact_id]
    store.close()


def test_unreferenced_blobs_of_deleted_artifacts_and_materialized_files_go(store_root, tmp_path):
    store = aeg_jupyter.Store(store_root)
    f = tmp_path / "model.bin"
    f.write_bytes(b"m" * 5000)  # a blob file on either format (format 2 keeps up to INLINE_MAX in the row)
    art = store.artifacts.save_file(f, kind="model")
    local = store.artifacts.local_file(art)
    store.artifacts.delete(art)
    report = store.artifacts.gc(dry_run=False)
    assert report.blobs == [art.blob_id] and report.bytes_freed == 5000
    assert not os.path.exists(local)
    store.close()


def test_directory_blobs_stay_while_the_directory_artifact_lives(store_root, tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    (d / "x.txt").write_text("x")
    store = aeg_jupyter.Store(store_root)
    art = store.artifacts.save_dir(d, kind="dir")
    assert store.artifacts.gc(dry_run=False).blobs == []
    with open(os.path.join(store.artifacts.local_dir(art), "x.txt")) as fh:
        assert fh.read() == "x"
    store.close()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"older_than": "soon"}, "not a duration"),
        ({"keep_last": -1}, "non-negative integer"),
        ({"keep_last": 1, "keep_best": {"ckpt": ("acc", "best")}}, "keep_best['ckpt']"),
        ({"keep_last": 1, "keep_best": ["ckpt"]}, "keep_best must be a dict"),
    ],
)
def test_bad_retention_rules_are_clear(store_root, kwargs, message):
    store = aeg_jupyter.Store(store_root)
    store.artifacts.save_text("x", kind="ckpt")
    with pytest.raises(InvalidInputError, match=message.replace("[", r"\[").replace("]", r"\]")):
        store.artifacts.gc(dry_run=False, **kwargs)
    assert len(store.artifacts.list()) == 1
    store.close()


def test_blobs_of_deleted_artifacts_go_at_once_but_orphans_wait(store_root, monkeypatch):
    monkeypatch.setattr(maintenance_mod, "GC_GRACE_SECONDS", 120.0)
    store = aeg_jupyter.Store(store_root)
    text = "delete me " * 500  # a blob file on either format (format 2 keeps up to INLINE_MAX in the row)
    gone = store.artifacts.save_text(text)
    orphan = store.blobs.put_bytes(b"an interrupted save: a blob with no artifact")
    store.artifacts.delete(gone)
    report = store.artifacts.gc(dry_run=False)
    assert report.blobs == [gone.blob_id]  # freed right away; the orphan is inside the grace period
    assert store.blobs.exists(orphan.digest)
    again = store.artifacts.save_text(text)  # the same bytes saved again later: stored afresh
    assert store.artifacts.load_text(again) == text
    store.close()


def test_a_blob_reused_by_a_newer_save_is_kept(store_root, monkeypatch):
    monkeypatch.setattr(maintenance_mod, "GC_GRACE_SECONDS", 120.0)
    store = aeg_jupyter.Store(store_root)
    old = store.artifacts.save_text("shared bytes")
    store.artifacts.delete(old)
    time.sleep(0.01)
    store.blobs.touch(old.blob_id)  # what a concurrent save of the same bytes does before its row lands
    assert store.artifacts.gc(dry_run=False).blobs == []
    store.close()
