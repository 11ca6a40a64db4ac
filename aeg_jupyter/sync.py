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
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    return asyncio.run_coroutine_threadsafe(coro, _private_loop()).result(timeout)
