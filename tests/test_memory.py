"""Memory: record, tool results, recent/recent_data ordering and filters, hot window, persistence."""

from __future__ import annotations

import dataclasses

import pytest
from conftest import run, run_child

import aeg_jupyter
from aeg_jupyter import InvalidInputError, Value
from aeg_jupyter.core.frames import events_frame


def test_record_and_recent_are_chronological(context):
    mem = context.memory()
    for i in range(5):
        run(mem.record(kind="train_log", data={"epoch": i}))
        run(mem.record(kind="other", data=f"note {i}"))
    got = run(mem.recent(kinds=["train_log"], limit=3))
    assert [e.data["epoch"] for e in got] == [2, 3, 4]  # most recent last
    assert run(mem.recent_data(kinds=["train_log"], limit=2)) == [{"epoch": 3}, {"epoch": 4}]
    assert [e.kind for e in run(mem.recent(limit=4))] == ["train_log", "other", "train_log", "other"]
    assert run(mem.recent_data(kinds=["other"], limit=1)) == ["note 4"]
    assert run(mem.recent(kinds=["train_log"], limit=0)) == []
    assert len(run(mem.recent(limit=100))) == 10


def test_event_fields_text_and_data(context):
    mem = context.memory()
    ev = run(
        mem.record(
            "eval", {"acc": 0.9}, tags=["nightly"], severity=3, stage="test", metrics={"acc": 0.9},
            inputs=[{"name": "split", "value": "val"}], outputs=[Value("acc", "number", 0.9)],
        )
    )  # fmt: skip
    assert ev.text == '{"acc": 0.9}' and ev.data == {"acc": 0.9}
    assert ev.tags == ["nightly"] and ev.severity == 3 and ev.stage == "test" and ev.version == 1
    assert ev.inputs == [Value("split", "json", "val")] and ev.metrics == {"acc": 0.9}
    assert (ev.run_id, ev.graph_id) == (context.run_id, "tests")
    assert ev.ts.endswith("+00:00")
    assert run(mem.record("msg", "plain text")).text == "plain text"
    html = run(mem.record("x", "<script>alert(1)</script>"))._repr_html_()
    assert "<script>" not in html and "&lt;script&gt;" in html


def test_tool_results_last_by_name_and_topic(context):
    mem = context.memory()
    run(mem.record_tool_result(tool="train.step", outputs=[{"name": "val_acc", "kind": "number", "value": 0.5}]))
    run(
        mem.write_result(
            topic="train.step", outputs=[{"name": "val_acc", "kind": "number", "value": 0.7}], message="ok"
        )
    )
    run(mem.record_tool_result(tool="eval", outputs=[{"name": "f1", "value": 0.3}]))
    got = run(mem.recent_tool_results(tool="train.step", limit=10))
    assert [e.outputs[0].value for e in got] == [0.5, 0.7] and got[-1].text == "ok"
    assert run(mem.last_by_name("val_acc")) == 0.7
    assert run(mem.last_by_name("nope")) is None
    assert run(mem.last_outputs_by_topic("eval")) == {"f1": 0.3}
    assert run(mem.last_outputs_by_topic("nope")) == {}


def test_scope_filters(store_root):
    c1 = aeg_jupyter.connect(store_root, graph_id="a.ipynb")
    c2 = aeg_jupyter.connect(store_root, graph_id="b.ipynb")
    run(c1.memory().record("log", {"who": 1}))
    run(c2.memory().record("log", {"who": 2}))
    m1 = c1.memory()
    assert run(m1.recent_data(kinds=["log"])) == [{"who": 1}, {"who": 2}]  # memory defaults to "all"
    assert run(m1.recent_data(kinds=["log"], scope="run")) == [{"who": 1}]
    assert run(m1.recent_data(kinds=["log"], scope="graph")) == [{"who": 1}]
    c1.close()


def test_hot_window_falls_back_to_parquet_exactly(store_root):
    store = aeg_jupyter.Store(store_root, hot_limit=10, flush_rows=25)
    log = store.event_log
    for i in range(100):
        log.record("tick", {"i": i})
        if i % 7 == 0:
            log.record("rare", {"i": i})
    assert len(log.hot) <= 20 and not log.hot.complete
    assert [e.data["i"] for e in log.recent(kinds=["tick"], limit=3)] == [97, 98, 99]  # hot
    rare = [e.data["i"] for e in log.recent(kinds=["rare"], limit=15)]  # needs the scan
    assert rare == [i for i in range(100) if i % 7 == 0]
    assert [e.data["i"] for e in log.recent(kinds=["tick"], limit=60)] == list(range(40, 100))
    store.close()
    store2 = aeg_jupyter.Store(store_root, hot_limit=10)
    assert [e.data["i"] for e in store2.event_log.recent(kinds=["tick"], limit=30)] == list(range(70, 100))
    store2.close()


def test_last_by_name_older_than_the_window(store_root):
    store = aeg_jupyter.Store(store_root, hot_limit=5, flush_rows=10)
    store.event_log.record_tool_result("t", outputs=[{"name": "old_value", "value": 42}])
    for i in range(50):
        store.event_log.record("noise", i)
    store.close()
    store2 = aeg_jupyter.Store(store_root, hot_limit=5)
    assert store2.event_log.last_by_name("old_value") == 42
    assert store2.event_log.last_outputs_by_topic("t") == {"old_value": 42}
    assert store2.event_log.last_by_name("never") is None
    store2.close()


def test_restart_in_a_new_process_recalls_everything(store_root):
    run_child(
        """
        import sys, asyncio, aeg_jupyter
        ctx = aeg_jupyter.connect(sys.argv[1])
        mem = ctx.memory()
        async def go():
            for i in range(3):
                await mem.record(kind="train_log", data={"epoch": i})
            await mem.record_tool_result(tool="train.step", outputs=[{"name": "val_acc", "value": 0.93}])
        asyncio.run(go())
        """,
        store_root,
    )
    ctx = aeg_jupyter.connect(store_root)
    mem = ctx.memory()
    assert run(mem.recent_data(kinds=["train_log"], limit=3)) == [{"epoch": 0}, {"epoch": 1}, {"epoch": 2}]
    assert run(mem.last_by_name("val_acc")) == 0.93
    assert run(mem.recent_tool_results(tool="train.step"))[0].outputs[0].value == 0.93
    ctx.close()


def test_recent_df_is_newest_first_with_columns(context):
    mem = context.memory()
    run(mem.record("train_log", {"epoch": 1, "loss": 0.5}, metrics={"lr": 0.1}))
    run(mem.record_tool_result(tool="t", outputs=[{"name": "acc", "value": 0.8}]))
    df = run(mem.recent_df())
    assert list(df["kind"]) == ["tool_result", "train_log"]
    for col in ("ts", "kind", "topic", "run_id", "graph_id", "node_id", "data.epoch", "metric.lr", "out.acc"):
        assert col in df.columns
    assert str(df["ts"].dt.tz) == "UTC"
    assert events_frame([]).empty


def _circular() -> dict[str, object]:
    d: dict[str, object] = {}
    d["self"] = d
    return d


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda m: m.recent(scope="everywhere"), "unknown scope 'everywhere'"),
        (lambda m: m.recent(limit=-1), "limit must be a non-negative integer"),
        (lambda m: m.recent(limit=2.5), "limit must be a non-negative integer"),
        (lambda m: m.record(kind=5, data={}), "kind must be a non-empty string"),
        (lambda m: m.record(kind="x", data={"f": object()}), "Object of type object is not JSON serializable"),
        (lambda m: m.record(kind="x", data=_circular()), "cannot be stored as JSON (RecursionError: nested too deeply"),
        (lambda m: m.record(kind="x", data=[object()], tags=["t"]), "data cannot be stored as JSON: Object of type"),
        (lambda m: m.record_tool_result(tool="t", outputs=[{"value": 1}]), "outputs[0] has no 'name'"),
        (lambda m: m.record_tool_result(tool="", outputs=[]), "tool must be a non-empty string"),
        (lambda m: m.record(kind="x", tags="a"), "tags must be a list of strings"),
        (lambda m: m.record(kind="x", metrics={"m": float("inf")}), "metrics must be finite"),
    ],
)
def test_bad_input_is_clear_and_writes_nothing(context, call, message):
    mem = context.memory()
    run(mem.record("baseline", 1))
    before = len(context.store.event_table.pending_rows)
    with pytest.raises(InvalidInputError) as err:
        run(call(mem))
    assert message in str(err.value)
    assert len(context.store.event_table.pending_rows) == before
    assert [e.kind for e in run(mem.recent())] == ["baseline"]


def test_fsync_durability_writes_the_same_store(store_root):
    ctx = aeg_jupyter.connect(store_root, durability="fsync")
    run(ctx.memory().record("log", {"durable": True}))
    art = run(ctx.artifacts().save_text("durable"))
    ctx.close()
    store = aeg_jupyter.Store(store_root)
    assert store.event_log.recent_data(kinds=["log"]) == [{"durable": True}]
    assert store.artifacts.load_text(art) == "durable"
    store.close()
    with pytest.raises(InvalidInputError, match="durability must be 'flush' or 'fsync'"):
        aeg_jupyter.Store(store_root, durability="paranoid")


def test_every_field_survives_the_spool_line_and_parquet(store_root):
    """`record` writes its spool line by hand (for speed): another process must read back the same
    events from that line, and from Parquet after the flush."""
    from aeg_jupyter.base.models import Provenance

    log = aeg_jupyter.connect(store_root).store.event_log
    odd = 'quote " backslash \\ newline \n tab \t é \u2028 😀 </script>'
    origin = Provenance("run-" + odd, "nb.ipynb", "In[3]")
    made = [
        log.record("plain", None),
        log.record("msg", odd, topic=odd, tags=[odd, "b"], severity=4, stage=odd, origin=origin),
        log.record("json", {"k": [1, 2.5, None, True, odd]}, metrics={"loss": 0.25, "n": 3}),
        log.record_tool_result(
            odd,
            inputs=[{"name": "x", "value": {"nested": [odd]}}, Value("y", "number", -0.0)],
            outputs=[
                {"name": odd, "kind": "number", "value": 1e300},
                {"name": "inf", "kind": "number", "value": float("inf")},
                {"name": "big", "kind": "int", "value": 10**30},
                {"name": "flag", "kind": "bool", "value": False},
                {"name": "none", "kind": "json", "value": None},
            ],
            message=odd,
            origin=Provenance(None, "g", None),
        ),
    ]
    expected = repr([dataclasses.asdict(e) for e in made])
    child = """
        import dataclasses, sys, aeg_jupyter
        log = aeg_jupyter.connect(sys.argv[1]).store.event_log
        print(repr([dataclasses.asdict(e) for e in log.recent(limit=10)]))
    """
    assert run_child(child, store_root).stdout.strip() == expected  # from the spool
    log.table.flush()  # (format 2's background flusher may have committed some rows already)
    assert log.table.pending_rows == [] and not log.table.spool_paths()
    assert run_child(child, store_root).stdout.strip() == expected  # from Parquet


def test_threads_recording_with_different_origins_keep_their_own(store_root):
    """`record` caches the spool-line JSON of the last origin: two threads alternating origins
    must still stamp each event with its own (in memory and on disk)."""
    import threading

    from aeg_jupyter.base.models import Provenance

    store = aeg_jupyter.Store(store_root)
    log = store.event_log

    def work(name: str) -> None:
        origin = Provenance(f"run-{name}", "g", name)
        for i in range(2000):
            log.record("t", {"who": name, "i": i}, origin=origin)

    threads = [threading.Thread(target=work, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    events = log.recent(kinds=["t"], limit=10_000)
    assert len(events) == 4000
    assert all(e.run_id == f"run-{e.data['who']}" and e.node_id == e.data["who"] for e in events)
    store.close()
    reopened = aeg_jupyter.Store(store_root)
    on_disk = reopened.event_log.recent(kinds=["t"], limit=10_000)
    assert len(on_disk) == 4000 and all(e.run_id == f"run-{e.data['who']}" for e in on_disk)
    reopened.close()
