"""The hot window: the newest events of the store in memory, and the latest value of every named output.

"What's the latest?" is answered from here without touching disk; ``complete`` says whether the
window still holds every event the store has ever had (when it does not, a query that needs
older events falls back to a newest-first scan).

The window holds events as their table rows (``Row``: str, int and None values only), not as
:class:`Event` objects: the garbage collector does not track such a dict, so a logging loop that
keeps the newest thousands of events in memory gives it nothing to scan or promote (an ``Event``
per row did: each one outlived a young collection, and every ~60,000 records a full collection
walked the whole process, 35-130 ms in one ``record`` call; docs/format2.md, "record"). An
``Event`` is built when a query returns the row (:meth:`HotWindow.event`, kept for repeated recalls).
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from typing import Any

from ..base.models import Event, Value
from ..storage.schemas import Row, row_to_event, values_from_text

Key = tuple[int, str]
_NOTHING = (0, "")


def _key(r: Row) -> Key:
    return (r["ts"], r["event_id"])


class HotWindow:
    """The newest events of the store as rows, oldest first (at least ``limit`` once there are that many).

    ``complete`` is True while the window holds every event the store has ever had.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        #: rows sorted by (ts, event_id), newest last; between ``limit`` and ``2 * limit`` once trimmed
        self.items: list[Row] = []
        self.complete = True
        self.last_values: dict[str, tuple[Key, Any]] = {}
        self.last_outputs: dict[str, tuple[Key, dict[str, Any]]] = {}
        self._events: dict[str, Event] = {}  # the Events queries returned, by id (see `event`)

    @property
    def oldest(self) -> Key:
        return _key(self.items[0]) if self.items else _NOTHING

    @property
    def newest(self) -> Key:
        return _key(self.items[-1]) if self.items else _NOTHING

    def event(self, row: Row) -> Event:
        """The :class:`Event` of a row of the window, built once and kept while queries ask for it."""
        eid = row["event_id"]
        ev = self._events.get(eid)
        if ev is None:
            events = self._events
            if len(events) >= 2 * self.limit:  # bounded: the newest recalls are asked again, not the old ones
                events.clear()
            ev = events[eid] = row_to_event(row)
        return ev

    def add(self, row: Row, outputs: Sequence[Value] | None = None) -> None:
        """Insert one row (already-held rows and rows older than an incomplete window are skipped).

        ``outputs``: the row's outputs as values, when the caller has them (else read from the row).
        A row is found by its ``(ts, event_id)`` in the sorted rows (no set of ids to keep up: a
        ``record`` appends its row without this call, ``core/events.py``).
        """
        items = self.items
        ts = row["ts"]
        if not items or ts > items[-1]["ts"]:  # the common case: newer than everything held
            items.append(row)
        else:
            key = (ts, row["event_id"])
            if not self.complete and key < _key(items[0]):
                return
            i = bisect.bisect_left(items, key, key=_key)
            if i < len(items) and _key(items[i]) == key:
                return  # held already
            items.insert(i, row)
        if row.get("outputs"):
            self.note_outputs((ts, row["event_id"]), row.get("topic"), outputs or values_from_text(row["outputs"]))
        if len(items) > 2 * self.limit:
            self.trim()

    def trim(self) -> None:
        """Drop the oldest rows down to ``limit`` (the window is no longer complete)."""
        items = self.items
        drop = len(items) - self.limit
        if drop <= 0:
            return
        events = self._events
        if events:
            for r in items[:drop]:
                events.pop(r["event_id"], None)
        del items[:drop]
        self.complete = False

    def note_outputs(self, key: Key, topic: str | None, outputs: Sequence[Value]) -> None:
        """Remember ``outputs`` (of the event at ``key``, of tool ``topic``) as the latest by name and by topic
        if they are newer."""
        for v in outputs:
            prev = self.last_values.get(v.name)
            if prev is None or prev[0] < key:
                self.last_values[v.name] = (key, v.value)
        if topic is not None:
            prev_t = self.last_outputs.get(topic)
            if prev_t is None or prev_t[0] < key:
                self.last_outputs[topic] = (key, {v.name: v.value for v in outputs})

    def __len__(self) -> int:
        return len(self.items)
