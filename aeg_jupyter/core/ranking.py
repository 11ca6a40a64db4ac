"""Rankings and id indexes: the structures that make ranked queries and short-id lookups cheap.

A :class:`Ranking` holds one kind's artifact ids sorted by one metric; the catalog keeps every
ranking current as artifacts are saved. An :class:`IdIndex` finds ids by prefix or suffix.
"""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Iterable, Iterator
from datetime import datetime

from ..base.models import Artifact
from ..base.validate import Mode

RANKING_MIN = 512  # smaller pools are scored directly (cheap enough)


class Ranking:
    """One kind's artifacts ranked by one metric: best first, ties to the newest, NaN left out.

    Sorted once when a ranked query first needs it; new artifacts wait in a small unsorted list
    merged in at query time (and folded into the sorted list past ``FOLD`` of them), so a save
    costs an append. It holds ids: deletes and pins are seen through the catalog at query time.
    """

    FOLD = 1024

    def __init__(self, metric: str, mode: Mode, arts: Iterable[Artifact]) -> None:
        self.metric = metric
        self.sign = 1.0 if mode == "max" else -1.0
        self._sorted = [k for a in arts if (k := self._key(a)) is not None]
        self._sorted.sort(reverse=True)
        self._pending: list[tuple[float, datetime, str]] = []

    def _key(self, a: Artifact) -> tuple[float, datetime, str] | None:
        v = a.metrics.get(self.metric)
        if (v.__class__ is not float and v.__class__ is not int) or v != v:  # missing, NaN, foreign junk
            return None
        return (v * self.sign, a.created_at, a.artifact_id)  # type: ignore[return-value]

    def add(self, a: Artifact) -> None:
        key = self._key(a)
        if key is None:
            return
        self._pending.append(key)
        if len(self._pending) > self.FOLD:
            # new lists, not in place: a walk in progress keeps reading the ones it started on
            # (two sorted runs: timsort merges them in O(n))
            self._sorted = sorted(self._sorted + self._pending, reverse=True)
            self._pending = []

    def best_first(self) -> Iterator[str]:
        """Artifact ids, best first."""
        if self._pending:
            merged = heapq.merge(self._sorted, sorted(self._pending, reverse=True), reverse=True)
        else:
            merged = iter(self._sorted)
        return (k[2] for k in merged)


class IdIndex:
    """Artifact ids by prefix (a sorted list) and by suffix (their last ``TAIL`` characters), so
    ``get`` of a short id is a lookup, not a scan of every id."""

    TAIL = 6  # the shortest suffix `get` accepts

    def __init__(self, ids: Iterable[str]) -> None:
        self._sorted = sorted(ids)
        self._tails: dict[str, list[str]] = {}
        for aid in self._sorted:
            self._tails.setdefault(aid[-self.TAIL :], []).append(aid)

    def add(self, aid: str) -> None:
        if not self._sorted or aid > self._sorted[-1]:
            self._sorted.append(aid)
        else:
            bisect.insort(self._sorted, aid)
        self._tails.setdefault(aid[-self.TAIL :], []).append(aid)

    def discard(self, aid: str) -> None:
        i = bisect.bisect_left(self._sorted, aid)
        if i < len(self._sorted) and self._sorted[i] == aid:
            del self._sorted[i]
        same = self._tails.get(aid[-self.TAIL :], [])
        if aid in same:
            same.remove(aid)

    def with_prefix(self, prefix: str) -> list[str]:
        i = bisect.bisect_left(self._sorted, prefix)
        out = []
        while i < len(self._sorted) and self._sorted[i].startswith(prefix):
            out.append(self._sorted[i])
            i += 1
        return out

    def with_suffix(self, suffix: str) -> list[str]:
        return [aid for aid in self._tails.get(suffix[-self.TAIL :], []) if aid.endswith(suffix)]
