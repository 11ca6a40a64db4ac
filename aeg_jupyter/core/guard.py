"""The store's one lock, its open/closed state and its change listeners, handed to every part that writes.

Parts of the core (ingest, the catalog, the event log) take a :class:`WriteGuard` instead of the
whole ``Store``: it is all they need of it, and it keeps the composition one-way.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable

from ..base.errors import InvalidInputError, StoreWriteError


class WriteGuard:
    """Serializes this process's writes to one store and tells listeners what changed.

    Example:
        >>> guard = WriteGuard()
        >>> seen = []
        >>> stop = guard.subscribe(seen.append)
        >>> guard.notify("events"); stop(); seen
        ['events']
    """

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.closed = False
        # why this process may not write, or None (a format-1 store opened by format-2 code: read-only)
        self.read_only: str | None = None
        self._listeners: list[Callable[[str], None]] = []

    def check_open(self) -> None:
        """Raise if the store was closed (a write after ``close()``) or is open read-only."""
        if self.closed:
            raise InvalidInputError("this store is closed; connect again with aeg_jupyter.connect()")
        if self.read_only is not None:
            raise StoreWriteError(f"cannot write: {self.read_only}")

    def subscribe(self, callback: Callable[[str], None]) -> Callable[[], None]:
        """Call ``callback(table)`` after each write of this process; returns the unsubscribe function.

        The callback runs in the writing thread right after the write, so it must be quick
        (mark dirty, schedule a redraw).
        """
        self._listeners.append(callback)

        def unsubscribe() -> None:
            if callback in self._listeners:
                self._listeners.remove(callback)

        return unsubscribe

    def notify(self, table: str) -> None:
        """Tell the listeners that this process wrote to ``table``; a failing listener never fails the write."""
        if not self._listeners:
            return
        for callback in tuple(self._listeners):
            try:
                callback(table)
            except Exception as exc:
                warnings.warn(f"aeg_jupyter: a store listener failed: {exc!r}", RuntimeWarning, stacklevel=3)
