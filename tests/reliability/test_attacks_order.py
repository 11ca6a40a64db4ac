"""Attacks on ordering: threads saving while others walk the catalog, and a kernel whose clock runs
behind (issue 13: 14, 18)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import traceback

import aeg_jupyter


def test_verify_and_metric_names_while_other_threads_save(store_root):
    """Attack 14: verify() and metric_names() in a loop while 3 threads save artifacts with new kinds and metrics."""
    store = aeg_jupyter.Store(store_root)
    done = threading.Event()
    errors: list[BaseException] = []

    def saver(n: int) -> None:
        try:
            for i in range(400):
                store.artifacts.save_json({"n": n, "i": i}, kind=f"k{n}-{i % 50}", metrics={f"m{n}-{i}": float(i)})
        except BaseException as exc:
            errors.append(exc)

    def reader(walk) -> None:
        try:
            while not done.is_set() and not errors:
                walk()
        except BaseException as exc:
            errors.append(exc)

    savers = [threading.Thread(target=saver, args=(n,)) for n in range(3)]
    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as the interpreter can: the race shows at once
    walks = [store.artifacts.metric_names, lambda: store.artifacts.metric_names("k0-1"), store.artifacts.verify]
    readers = [threading.Thread(target=reader, args=(w,)) for w in walks]
    try:
        for t in savers + readers:
            t.start()
        for t in savers:
            t.join()
        done.set()
        for t in readers:
            t.join()
    finally:
        sys.setswitchinterval(old_interval)
    assert errors == [], "".join(traceback.format_exception(errors[0]))
    assert store.artifacts.verify().ok
    assert len(store.artifacts.metric_names()) == 1200
    store.close()


SLOW_KERNEL = """
import sys
import aeg_jupyter
store = aeg_jupyter.Store(sys.argv[1])  # opening reads what the other kernel wrote: it has seen it
store.event_log.record_tool_result("train.step", outputs=[{"name": "val_acc", "kind": "number", "value": 2.0}])
store.artifacts.save_text("written after the first", kind="ckpt", name="second.txt")
store.close()
"""


def test_a_slow_clock_never_orders_a_write_before_one_it_has_seen(store_root, tmp_path):
    """Attack 18: a second kernel whose clock runs an hour behind writes after reading the first kernel's rows."""
    from conftest import REPO

    first = aeg_jupyter.Store(store_root)
    first.event_log.record_tool_result("train.step", outputs=[{"name": "val_acc", "kind": "number", "value": 1.0}])
    a1 = first.artifacts.save_text("the first", kind="ckpt", name="first.txt")
    first.close()
    env = dict(os.environ, AEG_CLOCK_OFFSET_US=str(-3600 * 1_000_000), PYTHONPATH=REPO)
    subprocess.run([sys.executable, "-c", SLOW_KERNEL, store_root], env=env, check=True, timeout=120)
    store = aeg_jupyter.Store(store_root)
    assert store.event_log.last_by_name("val_acc") == 2.0  # the later write wins
    assert [e.outputs[0].value for e in store.event_log.recent(kinds="tool_result")] == [1.0, 2.0]
    newest = list(store.artifacts.list(kind="ckpt"))
    assert [a.name for a in newest] == ["second.txt", "first.txt"]
    gc = store.artifacts.gc(older_than="30m")  # nothing here is 30 minutes old
    assert gc.artifacts == [], gc
    assert a1.created_at < newest[0].created_at
    store.close()
