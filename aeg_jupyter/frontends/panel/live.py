"""Live updates for the panel: this kernel's writes redraw it, coalesced; other kernels' on opt-in auto-refresh.

- Writes of this kernel: :class:`LiveUpdates` subscribes to the store (:meth:`Store.subscribe`). The
  listener runs inside every ``record``, so it only notes which table was written (a set add) and
  looks at the clock: a write redraws at once if the last redraw is older than ``interval``
  (:data:`LIVE_INTERVAL`, 0.25 s), else one redraw is scheduled on the kernel's asyncio loop
  (``call_later``): a loop writing a million events costs at most four redraws a second, and a
  redraw with nothing written since is skipped. A slow redraw spaces the next ones out: the next
  starts at least ``1 / LIVE_SHARE`` (20) times the last redraw's duration after it, so redraws of
  up to 0.1 s take about a twentieth of a writing loop's time; the gap is at most ``LIVE_MAX_GAP`` (2 s),
  so a chart whose redraws take longer still moves every 2 s (and takes a larger share). The redraw is handed the
  tables written since the last one (a live chart over events need not look at artifacts). Writes
  from worker threads (``save_file`` runs in ``asyncio.to_thread``) are handed to the loop; no
  thread ever touches a widget.
- Other kernels' writes: opt-in auto-refresh, an asyncio task on the kernel loop (never a thread)
  that refreshes every few seconds.

Example:
    >>> live = LiveUpdates(context.store, on_write=mark_stale, draw=lambda tables: redraw(), busy=lambda: False, say=print)  # doctest: +SKIP
    >>> live.start_auto(refresh, every=lambda: 5.0, enabled=lambda: True)   # doctest: +SKIP
    True
    >>> live.close()   # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Callable

from ...core.store import Store
from .tab import Say

LIVE_INTERVAL = 0.25  # seconds between two live redraws (at most ~4 a second)
# the most of a writing loop's time live redraws take (the next starts d / LIVE_SHARE after one of d s):
# a twentieth. At a tenth, on a 2-core machine where redraws of ~10,000 new events took ~50 ms, a live
# Charts tab added +6.1 us to each `record` (bench: "record with a live Charts tab"); at a twentieth +4.2 us
LIVE_SHARE = 0.05
LIVE_MAX_GAP = 2.0  # the longest the next live redraw waits, however slow the last one was


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class LiveUpdates:
    """Turns the store's write notifications into few redraws, and runs the opt-in auto-refresh task.

    Args:
        store: the store listened to (from now until :meth:`close`).
        on_write: called once per redraw (or :meth:`take_writes`) that follows writes, in the kernel's
            thread, before ``draw`` (mark stale).
        draw: the redraw, given the tables written since the last one; only ever called in the thread
            that made this object (the kernel's).
        busy: true while a redraw is running (a write then schedules one for later).
        say: where a failed auto-refresh is reported.
        interval: the least time between two live redraws, in seconds (0: every write redraws, at
            once); the gap is also at least the last redraw's duration / :data:`LIVE_SHARE`.

    Example:
        >>> live = LiveUpdates(store, on_write=lambda: None, draw=lambda tables: None, busy=lambda: False, say=print)  # doctest: +SKIP
    """

    def __init__(
        self,
        store: Store,
        *,
        on_write: Callable[[], None],
        draw: Callable[[frozenset[str]], None],
        busy: Callable[[], bool],
        say: Say,
        interval: float = LIVE_INTERVAL,
    ) -> None:
        self._interval = float(interval)
        self._spent = 0.0  # the last redraw's duration
        self._last = 0.0  # when it started
        self._due = 0.0  # the earliest time of the next live redraw
        self._on_write = on_write
        self._draw = draw
        self._busy = busy
        self._say = say
        self._closed = False
        self._pending = False
        self._written: set[str] = set()  # tables written since the last redraw (the listener's only work)
        self._owner = threading.get_ident()
        self._loop = _running_loop()
        self._auto_task: asyncio.Task[None] | concurrent.futures.Future[None] | None = None
        self._unsubscribe = store.subscribe(self.on_store_change)

    @property
    def interval(self) -> float:
        """The least time between two live redraws, in seconds."""
        return self._interval

    @interval.setter
    def interval(self, seconds: float) -> None:
        self._interval = float(seconds)
        self._set_due()

    def _set_due(self) -> None:
        gap = max(self._interval, min(self._spent / LIVE_SHARE, LIVE_MAX_GAP)) if self._interval > 0 else 0.0
        self._due = self._last + gap

    @property
    def auto_task(self) -> asyncio.Task[None] | concurrent.futures.Future[None] | None:
        """The auto-refresh task while auto-refresh is on, else ``None``."""
        return self._auto_task

    def on_store_change(self, table: str) -> None:
        """Store listener: runs in the writing thread inside every write, so O(1): it notes the table,
        looks at the clock and at most schedules a redraw; it never touches widgets off-thread."""
        if self._closed:
            return
        self._written.add(table)
        if time.monotonic() >= self._due and threading.get_ident() == self._owner and not self._busy():
            # Drawn in the writing call: a long cell that keeps writing (the loop cannot run until it
            # ends) still shows progress, at most once per interval.
            self._live_draw()
            return
        if self._pending:
            return
        loop = self._loop if self._loop is not None and self._loop.is_running() else None
        if loop is None:
            return  # no loop to schedule on: the next write, Refresh or a tab switch draws it
        self._pending = True
        loop.call_soon_threadsafe(self._fire)

    def take_writes(self) -> frozenset[str]:
        """The tables written since the last redraw (emptied; ``on_write`` called if there were any).

        The panel calls it when it draws for another reason (a tab switch), so that the writes mark
        every tab stale. Kernel thread only.
        """
        if not self._written:
            return frozenset()
        tables = frozenset(self._written)
        # (not a swap of the set: a worker thread's add lands in the set either way; one it made after
        # the copy of a table copied is taken by the draw that follows, which reads after it)
        self._written.difference_update(tables)
        self._on_write()
        return tables

    def _fire(self) -> None:
        wait = self._due - time.monotonic()
        if wait > 0 or self._busy():
            asyncio.get_running_loop().call_later(max(wait, 0.01), self._fire)
            return
        self._pending = False
        self._live_draw()

    def _live_draw(self) -> None:
        if self._closed:
            return
        tables = self.take_writes()
        if not tables:  # nothing written since the last redraw (an in-call draw took it): nothing to do,
            return  # and the clock is not restarted (the next write draws when it is due)
        self._last = started = time.monotonic()
        self._set_due()  # (before the draw: a write made by the draw itself does not draw again)
        try:
            self._draw(tables)
        finally:
            self._spent = time.monotonic() - started
            self._set_due()

    def start_auto(
        self, refresh: Callable[[], None], *, every: Callable[[], float], enabled: Callable[[], bool]
    ) -> bool:
        """Start calling ``refresh`` every ``every()`` seconds on the kernel loop, while ``enabled()``.

        Returns ``False`` (and starts nothing) when there is no running event loop to run it on.

        Example:
            >>> live.start_auto(panel.refresh, every=lambda: 5.0, enabled=lambda: True)   # doctest: +SKIP
            True
        """
        loop = _running_loop() or (self._loop if self._loop is not None and self._loop.is_running() else None)
        if loop is None:
            return False
        self.stop_auto()
        if _running_loop() is loop:
            self._auto_task = loop.create_task(self._auto_refresh(refresh, every, enabled))
        else:
            self._auto_task = asyncio.run_coroutine_threadsafe(self._auto_refresh(refresh, every, enabled), loop)
        return True

    def stop_auto(self) -> None:
        """Cancel the auto-refresh task, if any."""
        if self._auto_task is not None:
            self._auto_task.cancel()
            self._auto_task = None

    async def _auto_refresh(
        self, refresh: Callable[[], None], every: Callable[[], float], enabled: Callable[[], bool]
    ) -> None:
        """The opt-in interval refresh: an asyncio task on the kernel loop (never a thread)."""
        while not self._closed:
            await asyncio.sleep(float(every()))
            if self._closed or not enabled():
                return
            try:
                refresh()
            except Exception as exc:  # keep refreshing; say what went wrong
                self._say(f"refresh failed: {type(exc).__name__}: {exc}", error=True)

    def close(self) -> None:
        """Stop listening to the store and stop auto-refresh."""
        self._closed = True
        self._unsubscribe()
        self.stop_auto()


__all__ = ["LIVE_INTERVAL", "LIVE_SHARE", "LiveUpdates"]
