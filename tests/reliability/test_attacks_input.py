"""Attacks with odd input: non-ASCII names past the hot window, deep JSON, strings and paths
that are not valid Unicode or UTF-8, nonsense durations, a spool that is a file (issue 13: 9, 15, 16)."""

from __future__ import annotations

import pytest

import aeg_jupyter

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
