"""Attacks on ordering: threads saving while others walk the catalog, and a kernel whose clock runs
behind (issue 13: 14, 18)."""

from __future__ import annotations

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
