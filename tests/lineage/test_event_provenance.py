"""Events carry their cell's provenance (source path, cell id, execution count, source hash) as
artifacts do: on the event `record` returns, from the hot window, from the cold scan past it (spool
and Parquet), and from a store opened afresh, in format 1 and format 2."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import run

from aeg_jupyter.api.context import KernelContext
from aeg_jupyter.base.hashing import hash_bytes
from aeg_jupyter.core.store import Store

SOURCE = "for epoch in range(5):\n    await mem.record(kind='train_log', data={'epoch': epoch})\n"
WHERE = ("/nb/train.ipynb", "cell-7f3a", 12, hash_bytes(SOURCE.encode()))


def _provenance(ev: Any) -> tuple[Any, ...]:
    return (ev.source_path, ev.cell_id, ev.execution_count, ev.source_hash)


def _record_in_a_cell(store: Store) -> tuple[KernelContext, list[Any]]:
    ctx = KernelContext(store, graph_id="/nb/train.ipynb")
    ctx.script = False
    mem = ctx.memory()
    outside = run(mem.record(kind="setup", data="before any cell"))  # no cell yet: no provenance
    ctx.begin_cell(SOURCE, cell_id="cell-7f3a", execution_count=12)
    made = [run(mem.record(kind="train_log", data={"epoch": i})) for i in range(5)]
    made.append(run(mem.record_tool_result("eval", outputs=[{"name": "acc", "kind": "number", "value": 0.9}])))
    return ctx, [outside, *made]


@pytest.mark.parametrize("fmt", [1, 2])
def test_events_expose_the_cells_provenance_from_the_hot_window_and_the_cold_scan(tmp_path: Any, fmt: int) -> None:
    root = str(tmp_path / "store")
    store = Store(root, hot_limit=2, format=fmt)  # a window of 2: the older events come from the scan
    ctx, made = _record_in_a_cell(store)
    assert _provenance(made[0]) == (None, None, None, None)
    assert all(_provenance(ev) == WHERE for ev in made[1:])  # what `record` returned

    log = store.event_log
    hot = log.recent(limit=2)  # answered by the hot window alone
    assert [e.event_id for e in hot] == [e.event_id for e in made[-2:]]
    assert all(_provenance(ev) == WHERE for ev in hot)
    assert not log.hot.complete
    spooled = log.recent(limit=10)  # the window, then the scan of this writer's spool rows
    assert [e.event_id for e in spooled] == [e.event_id for e in made]
    assert [_provenance(e) for e in spooled] == [_provenance(e) for e in made]
    assert spooled[-1].topic == "eval" and spooled[-1].outputs and spooled[-1].outputs[0].name == "acc"

    store.flush()  # now in Parquet (format 1) / the Delta table (format 2)
    assert [_provenance(e) for e in log.recent(limit=10)] == [_provenance(e) for e in made]
    ctx.close()
    store.close()

    again = Store(root, hot_limit=2, format=fmt)  # a fresh process's view: the window filled from disk
    try:
        fresh = again.event_log.recent(limit=10)
        assert [e.event_id for e in fresh] == [e.event_id for e in made]
        assert [_provenance(e) for e in fresh] == [_provenance(e) for e in made]
        assert "cell-7f3a In[12]" in fresh[-1]._repr_html_()
        assert "made by" not in fresh[0]._repr_html_()  # recorded outside any cell
    finally:
        again.close()
