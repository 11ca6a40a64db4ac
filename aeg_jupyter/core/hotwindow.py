"""The hot window: the newest events of the store in memory, and the latest value of every named output.

"What's the latest?" is answered from here without touching disk; ``complete`` says whether the
window still holds every event the store has ever had (when it does not, a query that needs
older events falls back to a newest-first scan).
"""

from __future__ import annotations

import bisect
from typing import Any

from ..base.models import Event

Key = tuple[int, str]
_NOTHING = (0, "")


class HotWindow:
    """The newest events of the store (at least ``limit`` of them once there are that many).

    ``complete`` is True while the window holds every event the store has ever had.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.items: list[tuple[int, str, Event]] = []
        self._ids: set[str] = set()
        self.complete = True
        self.last_values: dict[str, tuple[Key, Any]] = {}
        self.last_outputs: dict[str, tuple[Key, dict[str, Any]]] = {}

    @property
    def oldest(self) -> Key:
        return (self.items[0][0], self.items[0][1]) if self.items else _NOTHING

    def add(self, ts: int, ev: Event) -> None:
        """Insert one event (already-seen ids and events older than an incomplete window are skipped)."""
        eid = ev.event_id
        ids = self._ids
        if eid in ids:
            return
        items = self.items
        if not items or ts > items[-1][0]:  # the common case: newer than everything held
            items.append((ts, eid, ev))
        else:
            key = (ts, eid)
            if not self.complete and key < (items[0][0], items[0][1]):
                return
            if key > (items[-1][0], items[-1][1]):
                items.append((ts, eid, ev))
            else:
                bisect.insort(items, (ts, eid, ev), key=lambda t: (t[0], t[1]))
        ids.add(eid)
        if ev.outputs:
            self.note_outputs((ts, eid), ev)
        if len(items) > 2 * self.limit:
            drop = len(items) - self.limit
            for _ts, old, _ev in items[:drop]:
                self._ids.discard(old)
            del items[:drop]
            self.complete = False

    def note_outputs(self, key: Key, ev: Event) -> None:
        """Remember ``ev``'s outputs as the latest by name (and by topic) if they are newer."""
        assert ev.outputs is not None
        for v in ev.outputs:
            prev = self.last_values.get(v.name)
            if prev is None or prev[0] < key:
                self.last_values[v.name] = (key, v.value)
        if ev.topic is not None:
            prev_t = self.last_outputs.get(ev.topic)
            if prev_t is None or prev_t[0] < key:
                self.last_outputs[ev.topic] = (key, {v.name: v.value for v in ev.outputs})

    def __len__(self) -> int:
        return len(self.items)
