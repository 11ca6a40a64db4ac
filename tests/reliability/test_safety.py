"""Safety: read-only bytes, no symlink out of the root, escaped HTML everywhere."""

from __future__ import annotations

import os
import stat

import pytest

import aeg_jupyter
from aeg_jupyter import InvalidInputError
from aeg_jupyter.core.frames import events_frame

SCRIPT = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(1)>"


def test_blobs_and_materialized_files_are_read_only(store_root, tmp_path):
    store = aeg_jupyter.Store(store_root)
    f = tmp_path / "f.txt"
    f.write_text("x" * 5000)  # a blob file on either format (format 2 keeps up to INLINE_MAX in the row)
    art = store.artifacts.save_file(f, kind="k")
    for path in (store.blobs.path(art.blob_id), store.artifacts.local_file(art)):
        assert not os.stat(path).st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    store.close()


def test_never_follows_a_symlink_out_of_the_root(store_root, tmp_path):
    store = aeg_jupyter.Store(store_root)
    art = store.artifacts.save_text("secret")
    outside = tmp_path / "outside"
    outside.mkdir()
    files = os.path.join(store_root, "files")
    os.rmdir(files)
    os.symlink(outside, files)
    with pytest.raises(InvalidInputError, match="leads outside the store"):
        store.artifacts.local_file(art)
    assert list(outside.iterdir()) == []
    d = tmp_path / "d"
    d.mkdir()
    (d / "escape").symlink_to(tmp_path)
    dir_art = store.artifacts.save_dir(d, kind="dir")
    assert store.artifacts.manifest(dir_art) == []
    store.close()


def test_every_html_rendering_escapes_user_strings(store_root):
    store = aeg_jupyter.Store(store_root)
    art = store.artifacts.save_text(SCRIPT, kind=IMG, labels={IMG: SCRIPT}, name="<b>.txt")
    ev = store.event_log.record(IMG, {IMG: SCRIPT}, tags=[SCRIPT])
    tool = store.event_log.record_tool_result(SCRIPT, outputs=[{"name": IMG, "value": SCRIPT}])
    pages = [
        art._repr_html_(),
        store.artifacts.list()._repr_html_(),
        ev._repr_html_(),
        tool._repr_html_(),
        events_frame([ev, tool]).to_html(),
    ]
    for page in pages:
        assert "<script>" not in page and "<img" not in page and "<b>" not in page
        assert "&lt;script&gt;" in page or "&lt;img" in page
    store.close()
