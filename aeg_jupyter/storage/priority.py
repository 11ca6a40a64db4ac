"""CPU work of the flusher that nothing waits on runs at the lowest priority (``nice`` 19, Linux).

A flusher-thread commit of 10,000 events of 1 KiB took ~42 ms of wall time in the spool's JSON parse (on
Arrow's thread pool) and ~37 ms in delta-rs's write (on its tokio threads), measured 2026-12-03. On 2 cores that
work takes the recording thread's core often enough that one ``record`` in a thousand waits for it.
:func:`run_yielding` runs the parse on one thread of its own at ``nice`` 19, serially: the scheduler hands
that core back as soon as the recording thread wakes (weight 15 against its 1024).

Only a thread that starts no other thread is lowered, because a thread's nice is inherited and cannot be
raised back without privileges. The tokio threads stay as they are: they serve the notebook's reads too,
and lowered (an experiment of 2026-12-03) a cold 180 ms read took 0.9-2.1 s while two CPU loops of the
same scheduler group (as a second kernel's training loop would be) kept both cores busy. Arrow's pool is not used by
the lowered parse at all. Within a group (Linux's autogroups, a systemd or container cgroup) a nice
counts only against the group's own threads, so other programs lose or gain nothing by it.

Example:
    >>> run_yielding(sum, [1, 2, 3])                                                       # doctest: +SKIP
    6
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")
LOWEST = 19
ENABLED = sys.platform.startswith("linux") and hasattr(os, "setpriority")

_executor: tuple[int, ThreadPoolExecutor] | None = None  # (the pid it belongs to: a forked child makes its own)
_executor_lock = threading.Lock()


def lower_this_thread() -> bool:
    """Run the calling thread (and the threads it starts from now on) at ``nice`` 19; False where the
    platform or a policy does not allow it (the thread then runs at its priority, as before)."""
    if not ENABLED:
        return False
    tid = threading.get_native_id()
    try:
        if os.getpriority(os.PRIO_PROCESS, tid) < LOWEST:
            os.setpriority(os.PRIO_PROCESS, tid, LOWEST)
    except OSError:
        return False
    return True


def run_yielding(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` on this process's lowest-priority thread, waiting for it (its exception is raised
    here); ``fn`` must start no thread (it would inherit the priority). Where threads cannot be lowered,
    ``fn`` runs on the calling thread."""
    if not ENABLED:
        return fn(*args)
    return _the_executor().submit(fn, *args).result()


def _the_executor() -> ThreadPoolExecutor:
    global _executor
    pid = os.getpid()
    with _executor_lock:
        if _executor is None or _executor[0] != pid:  # (after a fork the parent's thread is not here)
            pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="aeg-yield", initializer=lower_this_thread)
            _executor = (pid, pool)
        return _executor[1]
