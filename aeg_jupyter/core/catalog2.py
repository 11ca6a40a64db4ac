"""Format 2's artifact catalog: :class:`~.catalog.Catalog`'s interface over the columnar catalog.

A format-2 store does not build an ``Artifact`` per row at open: :class:`DeltaCatalog` holds a
:class:`~.columnar.ColumnarCatalog` (the Delta snapshot's file list and the folded ops; columns read
by the queries that need them) and offers what the rest of the core asks of a catalog: ``by_id``,
``by_kind`` and ``deleted`` as read-only mappings answered from the columns (an exact id, a kind's
artifacts, the deleted ones: built on demand, never all at open), ``insert`` / ``apply`` for this
process's saves and ops, ``catch_up`` for other processes'. Queries (search, best, list) go
through :class:`~.search.ColumnarSearch`.

Following other writers is format 1's way: their spools are tailed (``Table.tail_others``) into
the columnar catalog's pending rows and ops, and the snapshot is refreshed when a spool directory
changed (a writer committed and rotated its spool), when this writer's own spool rotated (the
background flusher committed), and at most ``REFRESH_SECONDS`` apart otherwise (maintenance by
another process commits without touching a spool). See ``docs/format2.md``.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

from ..base.ids import observe
from ..base.models import Artifact
from ..base.times import to_us
from ..storage.delta_table import DeltaSpoolTable
from ..storage.schemas import Row
from .columnar import ColumnarCatalog

REFRESH_SECONDS = 1.0  # the longest a catalog goes without looking at the tables' versions (~0.7 ms each)


class DeltaCatalog:
    """The live artifacts of a format-2 store, as this process sees them (see the module).

    Example:
        >>> catalog = DeltaCatalog(store.artifact_table, store.op_table, store.lock)   # doctest: +SKIP
        >>> catalog.by_id["01J..."].kind                                               # doctest: +SKIP
        'checkpoint'
    """

    def __init__(self, table: DeltaSpoolTable, ops: DeltaSpoolTable, lock: threading.RLock) -> None:
        self.table = table
        self.ops = ops
        self._lock = lock
        self.by_id = _ById(self)
        self.by_kind = _ByKind(self)
        self.deleted = _Deleted(self)
        self._own_spools = os.path.join(table.layout.spool, table.writer)
        self._own_mark: tuple[int, ...] | None = None
        self._checked = 0.0
        with lock:
            # spools first, then the snapshot: a row committed (and its spool removed) in between is
            # in the snapshot; one in both is dropped by add_rows
            rows, _ = table.tail_others()
            op_rows, _ = ops.tail_others()
            self.columns = ColumnarCatalog(table.delta, ops.delta, uri_index=table.uri_index)
            self._checked = time.monotonic()
            self._own_mark = self._mark()
            self._take(rows, op_rows)
            newest = self.columns.newest_micros()
            if newest is not None:
                observe(newest)  # this process's next stamps come after what others wrote

    # -- following ---------------------------------------------------------------------------
    def _mark(self) -> tuple[int, ...]:
        """What changes when this writer rotates a spool (the flusher committed): its spool folder."""
        mark: list[int] = []
        for t in (self.table, self.ops):
            try:
                mark.append(os.stat(os.path.join(t.layout.spool, t.writer)).st_mtime_ns)
            except FileNotFoundError:
                mark.append(0)
            mark.append(getattr(t, "_seq", 0))
        return tuple(mark)

    def _take(self, rows: list[Row], ops: list[Row]) -> None:
        if ops:
            self.columns.add_ops(ops)
            observe(max(to_us(op["ts"]) for op in ops))
        if rows:
            self.columns.add_rows(rows)
            observe(max(to_us(r["created_at"]) for r in rows))

    def catch_up(self) -> None:
        """Take in what other processes (and this one's flusher) committed or spooled since the last look."""
        with self._lock:
            rows, rotated_a = self.table.tail_others()
            ops, rotated_o = self.ops.tail_others()
            mark = self._mark()
            now = time.monotonic()
            if rotated_a or rotated_o or mark != self._own_mark or now - self._checked > REFRESH_SECONDS:
                self._own_mark = mark
                self._checked = now
                self.columns.refresh()
            self._take(rows, ops)

    def refresh(self) -> None:
        """Look at the tables now (after a flush or maintenance in this process)."""
        with self._lock:
            self._checked = time.monotonic()
            self._own_mark = self._mark()
            self.columns.refresh()

    # -- this process's writes ---------------------------------------------------------------
    def insert(self, art: Artifact) -> None:
        """Add this process's new save."""
        self.columns.add_artifact(art)

    def apply(self, arts: list[Artifact], ops: list[Row]) -> None:
        """This process's pins and deletes (and artifacts, if any)."""
        for art in arts:
            self.columns.add_artifact(art)
        self.columns.add_ops(ops)

    # -- what the rest of the core asks ------------------------------------------------------
    def __len__(self) -> int:
        self.catch_up()
        return self.columns.count()

    def count(self, kind: str | None = None) -> int:
        """Live artifacts of one kind (or of all)."""
        return self.columns.count(kind)

    def kinds(self) -> list[str]:
        """Kinds that have at least one live artifact."""
        self.catch_up()
        return self.columns.kinds()

    def metric_names(self, kind: str | None = None) -> list[str]:
        """Metric names used by live artifacts (of one kind, or of all)."""
        self.catch_up()
        return self.columns.metric_names(kind)

    def live(self, *, skip: set[str] | frozenset[str] = frozenset()) -> list[Artifact]:
        """Every live artifact, oldest first (built from whole files: gc, lineage, run summaries);
        ``skip``: data files left out (damaged ones, for ``verify``)."""
        return self.columns.all(skip=skip)

    def by_uri(self, uri: str) -> Artifact | None:
        """The newest live artifact with this URI, found by the ``uri`` column (no walk over every
        artifact: see :meth:`ColumnarCatalog.by_uri`)."""
        return self.columns.by_uri(uri)

    def id_index(self) -> _IdLookup:
        """Ids by prefix and by suffix, answered from the id columns."""
        return _IdLookup(self)


class _ById(Mapping[str, Artifact]):
    """``catalog.by_id``: an exact id's live artifact, found in the id columns (kept after the first
    lookup); iterating builds every artifact (gc and lineage walk them all)."""

    def __init__(self, catalog: DeltaCatalog) -> None:
        self._catalog = catalog
        self._found: dict[str, Artifact] = {}  # what the last prefix / suffix lookup built

    def __getitem__(self, aid: str) -> Artifact:
        art = self.get(aid)
        if art is None:
            raise KeyError(aid)
        return art

    def get(self, aid: str, default: Any = None) -> Any:  # type: ignore[override]
        if not isinstance(aid, str):
            return default
        found = self._found.pop(aid, None)
        if found is not None and found.artifact_id not in self._catalog.columns._deleted:
            # a pin / unpin since it was built is applied again
            return self._catalog.columns._with_ops(found)
        hits = self._catalog.columns.find(ids=[aid])
        return hits[0] if hits else default

    def __contains__(self, aid: object) -> bool:
        return isinstance(aid, str) and self.get(aid) is not None

    def __iter__(self) -> Iterator[str]:
        return iter([a.artifact_id for a in self._catalog.columns.all()])

    def __len__(self) -> int:
        return self._catalog.columns.count()

    def values(self) -> list[Artifact]:  # type: ignore[override]
        return self._catalog.columns.all()


class _ByKind(Mapping[str, list[Artifact]]):
    """``catalog.by_kind``: a kind's live artifacts, oldest first, built when asked for."""

    def __init__(self, catalog: DeltaCatalog) -> None:
        self._catalog = catalog

    def __getitem__(self, kind: str) -> list[Artifact]:
        if kind not in self._catalog.columns.kinds():
            raise KeyError(kind)
        return self._catalog.columns.all(kind)

    def __iter__(self) -> Iterator[str]:
        return iter(self._catalog.columns.kinds())

    def __len__(self) -> int:
        return len(self._catalog.columns.kinds())


class _Deleted(Mapping[str, Artifact]):
    """``catalog.deleted``: artifacts whose last op is a delete (their rows stay until maintenance's fold)."""

    def __init__(self, catalog: DeltaCatalog) -> None:
        self._catalog = catalog

    def __contains__(self, aid: object) -> bool:
        return isinstance(aid, str) and aid in self._catalog.columns._deleted

    def __getitem__(self, aid: str) -> Artifact:
        hits = self._catalog.columns.find(ids=[aid], deleted=True) if aid in self else []
        if not hits:
            raise KeyError(aid)
        return hits[0]

    def _all(self) -> list[Artifact]:
        cols = self._catalog.columns
        return cols.find(ids=sorted(cols._deleted), deleted=True) if cols._deleted else []

    def __iter__(self) -> Iterator[str]:
        return iter([a.artifact_id for a in self._all()])

    def __len__(self) -> int:
        return len(self._all())

    def values(self) -> list[Artifact]:  # type: ignore[override]
        return self._all()


class _IdLookup:
    """``catalog.id_index()`` for format 2: the live ids with a prefix or a suffix (their artifacts are
    built at once and handed to ``by_id``, so a lookup reads each row group once)."""

    def __init__(self, catalog: DeltaCatalog) -> None:
        self._catalog = catalog

    def _ids(self, arts: list[Artifact]) -> list[str]:
        found = self._catalog.by_id._found
        found.clear()
        found.update((a.artifact_id, a) for a in arts)
        return sorted(found)

    def with_prefix(self, prefix: str) -> list[str]:
        return self._ids(self._catalog.columns.find(prefix=prefix))

    def with_suffix(self, suffix: str) -> list[str]:
        return self._ids(self._catalog.columns.find(suffix=suffix))


__all__ = ["REFRESH_SECONDS", "DeltaCatalog"]
