"""Attacks with odd input: non-ASCII names past the hot window, deep JSON, strings and paths
that are not valid Unicode or UTF-8, nonsense durations, a spool that is a file (issue 13: 9, 15, 16)."""

from __future__ import annotations

import os

import pytest

import aeg_jupyter
from aeg_jupyter import AegError

NAMES = ["précision", "损失", "acc🔥", 'q"uote\\back', "tab\tnl\n"]


@pytest.mark.parametrize("name", NAMES)
def test_last_by_name_finds_non_ascii_names_outside_the_hot_window(store_root, name):
    """Attack 9: an output name that JSON escapes differently with and without ensure_ascii."""
    store = aeg_jupyter.Store(store_root, hot_limit=2)
    store.event_log.record_tool_result("train.step", outputs=[{"name": name, "kind": "number", "value": 0.75}])
    for i in range(10):
        store.event_log.record("filler", {"i": i})
    store.close()
    again = aeg_jupyter.Store(store_root, hot_limit=2)  # reopened: the value is only in a Parquet part
    assert not again.event_log.hot.complete and name not in again.event_log.hot.last_values
    assert again.event_log.last_by_name(name) == 0.75
    again.close()


DEEP = "[" * 100_000 + "]" * 100_000  # valid JSON, nested 100k levels


def test_deep_json_in_an_event_reads_as_text_everywhere(store_root, capsys):
    """Attack 15: one event whose text is deeply nested JSON, read by recent_data, `aeg recent` and the Memory tab."""
    from aeg_jupyter.core.frames import events_frame
    from aeg_jupyter.frontends.cli import main
    from aeg_jupyter.frontends.panel import Panel

    ctx = aeg_jupyter.connect(store_root, graph_id="deep")
    log = ctx.store.event_log
    log.record("log", DEEP, origin=ctx.origin)
    log.record("log", {"ok": 1}, origin=ctx.origin)
    assert log.recent_data(kinds="log", limit=5) == [DEEP, {"ok": 1}]  # shown as the text it is
    assert len(events_frame(log.recent(limit=5))) == 2
    p = Panel(ctx, tab="memory")
    assert len(p.memory_tab.frame) == 2 and "ok" in p.memory_tab.table.value
    p.close()
    ctx.close()
    assert main(["--store", store_root, "recent", "log"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3  # a header and both events


def test_deep_json_artifact_load_json_says_what_to_do(store_root, ipython_shell, monkeypatch):
    """Attack 15: load_json and `%aeg load` of an artifact holding deeply nested JSON."""
    store = aeg_jupyter.Store(store_root)
    art = store.artifacts.save_bytes(DEEP.encode(), kind="deep", name="deep.json", mime="application/json")
    with pytest.raises(AegError, match="load_text"):
        store.artifacts.load_json(art)
    assert store.artifacts.load_text(art) == DEEP
    store.close()
    monkeypatch.setenv("AEG_STORE", store_root)
    ipython_shell.run_line_magic("load_ext", "aeg_jupyter")
    assert ipython_shell.run_line_magic("aeg", f"load {art.artifact_id}") == DEEP


LONE = "\ud800"  # a lone surrogate: a valid Python str that UTF-8 cannot store


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.artifacts.save_text("x", kind=LONE),
        lambda s: s.artifacts.save_text("x", kind="note", name=f"a{LONE}.txt"),
        lambda s: s.artifacts.save_bytes(b"x", kind="note", name=LONE),
        lambda s: s.artifacts.save_json({"a": 1}, kind="note", labels={LONE: 1}),
        lambda s: s.artifacts.save_json({"a": 1}, kind="note", metrics={f"acc{LONE}": 1.0}),
        lambda s: s.event_log.record(f"log{LONE}", {"a": 1}),
        lambda s: s.event_log.last_by_name(LONE),
    ],
    ids=["kind", "name", "bytes-name", "label", "metric", "event-kind", "last_by_name"],
)
def test_lone_surrogates_are_refused_with_what_to_do(store_root, call):
    """Attack 16: a kind or a name holding a lone surrogate."""
    store = aeg_jupyter.Store(store_root)
    with pytest.raises(AegError, match="surrogate"):
        call(store)
    store.close()
    again = aeg_jupyter.Store(store_root)  # nothing half-stored
    assert len(again.artifacts) == 0 and again.event_log.recent(limit=5) == []
    again.close()


def test_a_source_file_name_that_is_not_utf8(store_root, tmp_path):
    """Attack 16: save_file / save_dir of paths whose names are not UTF-8 (bytes with 0xff)."""
    store = aeg_jupyter.Store(store_root)
    top = os.fsencode(tmp_path)
    bad = os.path.join(top, b"bad\xffname.txt")
    with open(bad, "wb") as f:
        f.write(b"payload")
    for path in (bad, os.fsdecode(bad)):
        with pytest.raises(AegError, match="name="):
            store.artifacts.save_file(path, kind="k")
    art = store.artifacts.save_file(bad, kind="k", name="renamed.txt")  # the way out the message names
    assert store.artifacts.load_bytes(art) == b"payload" and art.name == "renamed.txt"
    ok = os.path.join(top, b"fine.txt")
    with open(ok, "wb") as f:
        f.write(b"fine")
    assert store.artifacts.get(store.artifacts.save_file(ok, kind="k")).name == "fine.txt"  # a bytes path works
    tree = os.path.join(top, b"tree")
    os.makedirs(tree)
    with open(os.path.join(tree, b"x\xfe.bin"), "wb") as f:
        f.write(b"x")
    d = store.artifacts.save_dir(os.fsdecode(tree), kind="d")  # entries keep their bytes names
    assert os.listdir(os.fsencode(store.artifacts.local_dir(d))) == [b"x\xfe.bin"]
    store.close()


@pytest.mark.parametrize("older_than", [float("nan"), float("inf"), 1e300, -1.0, "99999999999999999999d"])
def test_gc_refuses_durations_it_cannot_mean(store_root, older_than):
    """Attack 16: gc(older_than=nan), 1e300, inf, negative, a huge text duration."""
    store = aeg_jupyter.Store(store_root)
    store.artifacts.save_text("keep me", kind="note")
    for dry_run in (True, False):
        with pytest.raises(AegError, match=r"older_than|duration"):
            store.artifacts.gc(dry_run=dry_run, older_than=older_than)
    assert len(store.artifacts) == 1
    store.close()


@pytest.mark.parametrize("folder", ["spool", "tmp", "blobs", "tables", "files"])
def test_a_store_folder_replaced_by_a_file_or_a_link(store_root, tmp_path, folder):
    """Attack 16 (and 11): spool/ (or another folder of the store) replaced by a file, or by a link out of the root."""
    aeg_jupyter.Store(store_root).close()
    path = os.path.join(store_root, folder)
    os.rename(path, path + ".moved")
    with open(path, "w") as f:
        f.write("not a folder")
    with pytest.raises(AegError, match="move it away"):
        aeg_jupyter.Store(store_root)
    os.unlink(path)
    os.symlink(tmp_path, path)
    with pytest.raises(AegError, match="symlink"):
        aeg_jupyter.Store(store_root)
    os.unlink(path)
    os.rename(path + ".moved", path)
    aeg_jupyter.Store(store_root).close()  # opens again once the folder is back
