"""The artifact catalog: every live artifact of the store in memory, with the indexes queries use.

It is built from the artifacts table (spools and Parquet parts) folded with the ops table
(pin / unpin / delete), and kept current with other processes by tailing their spools
(:meth:`Catalog.catch_up`). Lists are kept in (created_at, id) order: ``by_kind`` per kind, and
``postings`` per (kind, run), (None, run) and (kind, label, value), so a query scans the shortest
list that must hold all its answers. Rankings (:mod:`.ranking`) are registered here so that every
insert reaches them.
"""

from __future__ import annotations

import bisect
import gc
import threading
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import datetime
from typing import Any

from ..base.ids import observe
from ..base.models import Artifact
from ..base.times import to_us
from ..storage.layout import Part
from ..storage.schemas import Row, artifacts_from_table, row_to_artifact
from ..storage.tables import Table
from .ranking import IdIndex, Mode, Ranking


class Catalog:
    """The live artifacts of one store as this process sees them.

    Example:
        >>> catalog = Catalog(artifact_table, op_table, threading.RLock())   # doctest: +SKIP
        >>> catalog.kinds()                                                   # doctest: +SKIP
        ['checkpoint', 'config']
    """

    def __init__(self, table: Table, ops: Table, lock: threading.RLock) -> None:
        self.table = table
        self.ops = ops
        self._lock = lock
        self.by_id: dict[str, Artifact] = {}
        self.by_kind: dict[str, list[Artifact]] = {}
        self.postings: dict[tuple[Any, ...], list[Artifact]] = {}
        self.deleted: dict[str, Artifact] = {}
        self._op_state: dict[str, tuple[int, str, str]] = {}  # id -> (ts, op_id, op)
        self._seen_parts: set[str] = set()
        self._id_index: IdIndex | None = None  # built by the first lookup of a partial id
        # (kind, metric, mode) -> that kind's artifacts ranked by the metric, built by the first
        # ranked query that needs it and kept current by `insert`
        self.rankings: dict[tuple[str, str, str], Ranking] = {}
        self._load()

    # -- filling and following ---------------------------------------------------------------
    def _load(self) -> None:
        # The catalog is built from hundreds of thousands of new objects, none of them garbage:
        # the cyclic GC would walk them again and again.
        gc_was_on = gc.isenabled()
        gc.disable()
        try:
            # Spools first, then parts: a spool flushed meanwhile is then found as a part.
            rows, _ = self.table.tail_others()
            ops, _ = self.ops.tail_others()
            arts = [row_to_artifact(r) for r in rows]
            arts.extend(self._new_parts(self.table, self._read_artifacts))
            ops.extend(self._new_parts(self.ops, self.ops.read_part))
            self.apply(arts, ops)
        finally:
            if gc_was_on:
                gc.enable()

    def _read_artifacts(self, part: Part) -> list[Artifact] | None:
        """The artifacts of one Parquet part (``None`` if it vanished, none if it is unreadable)."""
        table = self.table.read_part_table(part)
        return None if table is None else artifacts_from_table(table, part.kind, part.path)

    def _new_parts(self, table: Table, read: Callable[[Part], list[Any] | None]) -> list[Any]:
        """What the parts of ``table`` not read yet hold.

        A part that vanishes between the listing and the read was merged by a compaction: the
        listing is taken again (the merged part is then new to us), so no row is missed (``gc``
        trusts this view: a missed row would free a live artifact's blob).
        """
        out: list[Any] = []
        for _attempt in range(10):
            vanished = False
            for part in table.list_parts():
                if part.path in self._seen_parts:
                    continue
                got = read(part)
                if got is None:
                    vanished = True
                    continue
                self._seen_parts.add(part.path)
                out.extend(got)
            if not vanished:
                break
        return out

    def apply(self, arts: list[Artifact], ops: list[Row]) -> None:
        for op in ops:
            prev = self._op_state.get(op["artifact_id"])
            key = (op["ts"], op["op_id"], op["kind"])
            if prev is None or key[:2] > prev[:2]:
                self._op_state[op["artifact_id"]] = key
        arts.sort(key=order_key)
        # what other writers stamped: this process's next stamps come after it (base/ids.observe)
        if arts and arts[-1].created_at is not None:
            observe(to_us(arts[-1].created_at))
        if ops:
            observe(max(to_us(op["ts"]) for op in ops))
        by_id, deleted = self.by_id, self.deleted
        if not by_id and not deleted and not self.rankings and self._id_index is None:
            self._fill(arts)  # the first load: every list is built in order by appending
        else:
            for art in arts:
                if art.artifact_id not in by_id and art.artifact_id not in deleted:
                    self.insert(art)
        for op in ops:
            self._refold(op["artifact_id"])

    def _fill(self, arts: list[Artifact]) -> None:
        """``insert`` for an empty catalog and ``arts`` in (created_at, id) order: each artifact is
        appended to its lists, with no order checks (opening a store; budget in docs/architecture.md)."""
        by_id, by_kind, postings, op_state = self.by_id, self.by_kind, self.postings, self._op_state
        for art in arts:
            aid = art.artifact_id
            if aid in by_id:
                continue
            if aid in op_state:  # pinned, unpinned or deleted: the general path
                self.insert(art)
                continue
            by_id[aid] = art
            kind, run = art.kind, art.run_id
            lst = by_kind.get(kind)
            if lst is None:
                lst = by_kind[kind] = []
            lst.append(art)
            for key in ((kind, run), (None, run), *label_keys(kind, art.labels.items())):
                lst = postings.get(key)
                if lst is None:
                    lst = postings[key] = []
                lst.append(art)

    def insert(self, art: Artifact) -> None:
        """Add one artifact (this process's new save, or one read from another writer)."""
        state = self._op_state.get(art.artifact_id)
        if state is not None:
            if state[2] == "delete":
                self.deleted[art.artifact_id] = art
                return
            art = replace(art, pinned=state[2] == "pin")
        self.by_id[art.artifact_id] = art
        if self._id_index is not None:
            self._id_index.add(art.artifact_id)
        if self.rankings:
            for (kind, _metric, _mode), ranking in self.rankings.items():
                if kind == art.kind:
                    ranking.add(art)
        order = (art.created_at, art.artifact_id)
        postings = self.postings
        for lst in (self.by_kind.setdefault(art.kind, []), *(postings.setdefault(k, []) for k in posting_keys(art))):
            if not lst or (lst[-1].created_at, lst[-1].artifact_id) < order:  # the usual case: newest
                lst.append(art)
            else:
                bisect.insort(lst, art, key=order_key)

    def _replace(self, art: Artifact) -> None:
        self.by_id[art.artifact_id] = art
        order = order_key(art)
        for lst in [self.by_kind[art.kind]] + [self.postings[key] for key in posting_keys(art)]:
            i = bisect.bisect_left(lst, order, key=order_key)
            lst[i] = art

    def _remove(self, art: Artifact) -> None:
        del self.by_id[art.artifact_id]
        if self._id_index is not None:
            self._id_index.discard(art.artifact_id)
        order = order_key(art)
        lst = self.by_kind[art.kind]
        del lst[bisect.bisect_left(lst, order, key=order_key)]
        if not lst:
            del self.by_kind[art.kind]
        for key in posting_keys(art):
            lst = self.postings[key]
            del lst[bisect.bisect_left(lst, order, key=order_key)]
            if not lst:
                del self.postings[key]
        self.deleted[art.artifact_id] = art

    def _refold(self, artifact_id: str) -> None:
        art = self.by_id.get(artifact_id)
        state = self._op_state.get(artifact_id)
        if art is None or state is None:
            return
        if state[2] == "delete":
            self._remove(art)
        elif art.pinned != (state[2] == "pin"):
            self._replace(replace(art, pinned=state[2] == "pin"))

    def catch_up(self) -> None:
        """Bring the catalog up to date with other processes (new spool bytes, new parts)."""
        with self._lock:
            rows, rotated_a = self.table.tail_others()
            ops, rotated_o = self.ops.tail_others()
            arts = [row_to_artifact(r) for r in rows]
            if rotated_a or rotated_o:
                arts.extend(self._new_parts(self.table, self._read_artifacts))
                ops.extend(self._new_parts(self.ops, self.ops.read_part))
            if arts or ops:
                self.apply(arts, ops)

    def __len__(self) -> int:
        self.catch_up()
        return len(self.by_id)

    def count(self, kind: str | None = None) -> int:
        """Live artifacts of one kind (or of all), as last caught up."""
        with self._lock:
            return len(self.by_id) if kind is None else len(self.by_kind.get(kind, ()))

    def kinds(self) -> list[str]:
        """Kinds that have at least one live artifact."""
        self.catch_up()
        with self._lock:  # other threads insert while we walk
            return sorted(self.by_kind)

    def metric_names(self, kind: str | None = None) -> list[str]:
        """Metric names used by live artifacts (of one kind, or of all)."""
        self.catch_up()
        names: set[str] = set()
        with self._lock:  # other threads insert while we walk
            for a in self.by_kind.get(kind, ()) if kind is not None else self.by_id.values():
                names.update(a.metrics)
        return sorted(names)

    # -- indexes for queries -----------------------------------------------------------------
    def ranking(self, kind: str, metric: str, mode: Mode) -> Ranking:
        """The ranking of ``kind`` by ``metric`` (built on first use, then kept current)."""
        ranking = self.rankings.get((kind, metric, mode))
        if ranking is None:
            with self._lock:  # built from a list other threads insert into
                ranking = self.rankings.get((kind, metric, mode))
                if ranking is None:
                    ranking = Ranking(metric, mode, self.by_kind.get(kind, ()))
                    self.rankings[(kind, metric, mode)] = ranking
        return ranking

    def id_index(self) -> IdIndex:
        """Ids by prefix and by suffix (built on first use, then kept current)."""
        if self._id_index is None:
            with self._lock:  # built from the dict other threads insert into
                if self._id_index is None:
                    self._id_index = IdIndex(self.by_id)
        return self._id_index

    def live(self) -> list[Artifact]:
        """A snapshot of every live artifact (safe to iterate while other threads save)."""
        with self._lock:
            return list(self.by_id.values())


def order_key(a: Artifact) -> tuple[datetime, str]:
    return a.created_at, a.artifact_id  # type: ignore[return-value]


def label_keys(kind: str, items: Iterable[tuple[str, Any]]) -> list[tuple[Any, ...]]:
    """Posting keys of labels: a bool is its own value (True is not 1); 1 and 1.0 share a key."""
    keys = []
    for k, v in items:
        cls = v.__class__
        if cls is str or cls is int or cls is float:  # the usual label values, hashable
            keys.append((kind, k, False, v))
            continue
        key = (kind, k, cls is bool, v)
        try:
            hash(key)
        except TypeError:  # an unhashable value (a foreign writer's row) can match no query
            continue
        keys.append(key)
    return keys


def posting_keys(art: Artifact) -> list[tuple[Any, ...]]:
    """The posting lists ``art`` belongs to."""
    return [(art.kind, art.run_id), (None, art.run_id), *label_keys(art.kind, art.labels.items())]
