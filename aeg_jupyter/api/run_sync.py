"""Run a coroutine from synchronous code, whether or not an event loop runs in this thread.

Jupyter kernels run an asyncio loop in the main thread, so ``asyncio.run`` fails there and
nesting loops needs global patching (nest-asyncio, which breaks ``asyncio.current_task()`` on
Python 3.12+). Instead the coroutine runs on a private loop in a daemon thread.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")
_loop: asyncio.AbstractEventLoop | None = None
_lock = threading.Lock()


def _private_loop() -> asyncio.AbstractEventLoop:
    global _loop
    with _lock:
        if _loop is None or _loop.is_closed():
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="aeg-sync-loop", daemon=True).start()
            _loop = loop
        return _loop


def run_sync(coro: Coroutine[Any, Any, T], *, timeout: float | None = None) -> T:
    """Run ``coro`` to completion and return its result (exceptions propagate).

    Example:
        >>> arts = aeg_jupyter.connect().artifacts()
        >>> art = run_sync(arts.save_text("hello"))   # doctest: +SKIP
    """
    if not asyncio.iscoroutine(coro):
        raise TypeError(f"run_sync needs a coroutine, got {type(coro).__name__}")
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro) if timeout is None else asyncio.run(asyncio.wait_for(coro, timeout))
    if running is _loop:
        # Called from a coroutine that itself runs on the private loop: waiting on that loop
        # would deadlock, so this one gets a fresh loop on a fresh thread.
        return _run_on_new_thread(coro, timeout)
    future = asyncio.run_coroutine_threadsafe(coro, _private_loop())
    try:
        return future.result(timeout)
    except BaseException:  # timeout or KeyboardInterrupt: do not leave it running
        future.cancel()
        raise


def _run_on_new_thread(coro: Coroutine[Any, Any, T], timeout: float | None) -> T:
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = asyncio.run(coro if timeout is None else asyncio.wait_for(coro, timeout))
        except BaseException as exc:
            box["error"] = exc

    t = threading.Thread(target=target, name="aeg-sync-nested", daemon=True)
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box["result"]
