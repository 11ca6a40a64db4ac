"""Attacks with odd input: non-ASCII names past the hot window, deep JSON, strings and paths
that are not valid Unicode or UTF-8, nonsense durations, a spool that is a file (issue 13: 9, 15, 16)."""

from __future__ import annotations

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
