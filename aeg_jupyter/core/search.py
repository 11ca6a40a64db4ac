"""Artifact queries: search, rank, best and list, planned over the catalog's indexes.

Each query picks the shortest list that must hold every answer (``_pool``: a run's or a
label's posting list, else the kind), and a ranked query with a limit walks the kind's
:class:`~.ranking.Ranking` when that visits fewer artifacts than scoring the pool.
"""

from __future__ import annotations

import heapq
import itertools
import math
import operator
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from ..base.errors import InvalidInputError
from ..base.models import RESERVED_KIND_PREFIX, Artifact, ScopeFilter
from ..base.validate import Mode, check_kind, check_labels, check_limit, check_mode
from . import ranking
from .catalog import Catalog, label_keys, order_key

if TYPE_CHECKING:
    from .catalog2 import DeltaCatalog

_MISSING = object()


class ArtifactList(list[Artifact]):
    """A list of artifacts that also renders as a table: ``.df`` is a pandas DataFrame."""

    @property
    def df(self) -> Any:
        """The artifacts as a DataFrame, in list order."""
        from .frames import artifacts_frame

        return artifacts_frame(list(self))  # (a lazy list built once, not once per column)

    def _repr_html_(self) -> str:
        if not self:
            return "<p><i>no artifacts</i></p>"
        return self.df.to_html(max_rows=50, escape=True)


class _Answer(Protocol):
    """What :class:`LazyArtifactList` reads (``columnar.SearchAnswer``)."""

    def __len__(self) -> int: ...

    def build(self, at: Any) -> list[Artifact]: ...


_CHUNK = 1024  # artifacts built at once while iterating a lazy answer


def _materialized(method: Callable[..., Any]) -> Callable[..., Any]:
    """A list method of :class:`LazyArtifactList` that needs the whole list: built once, then list's own."""

    def run(self: LazyArtifactList, *args: Any, **kw: Any) -> Any:
        self._materialize()
        return method(self, *args, **kw)

    run.__name__ = method.__name__
    run.__doc__ = method.__doc__
    return run


class LazyArtifactList(ArtifactList):
    """An :class:`ArtifactList` whose ``Artifact`` objects are built when they are looked at (format 2's
    answers: 10,000 hits cost their rows' arrays, not 10,000 objects, until iterated).

    ``len``, ``bool``, an index or a slice build only what they return; iterating builds a chunk at a
    time; anything else (``==``, ``repr``, ``+``, ``in``, every change) builds the whole list once, after
    which it is a plain list. It is a ``list``: ``isinstance(hits, list)`` holds.
    """

    __slots__ = ("_answer",)

    def __init__(self, answer: _Answer) -> None:
        super().__init__()
        self._answer: _Answer | None = answer

    def _materialize(self) -> None:
        if self._answer is not None:
            answer, self._answer = self._answer, None
            list.extend(self, answer.build(slice(None)))

    def __len__(self) -> int:
        return len(self._answer) if self._answer is not None else list.__len__(self)

    def __bool__(self) -> bool:
        return len(self) > 0

    def __getitem__(self, at: Any) -> Any:
        if self._answer is None:
            return list.__getitem__(self, at)
        n = len(self._answer)
        if isinstance(at, slice):
            return ArtifactList(self._answer.build(at) if n else [])
        i = operator.index(at)
        if not -n <= i < n:
            raise IndexError("list index out of range")
        return self._answer.build([i % n])[0]

    def __iter__(self) -> Iterator[Artifact]:
        if self._answer is None:
            yield from list.__iter__(self)
            return
        answer = self._answer
        for start in range(0, len(answer), _CHUNK):
            yield from answer.build(slice(start, start + _CHUNK))

    def __reversed__(self) -> Iterator[Artifact]:
        self._materialize()
        return list.__reversed__(self)

    def __reduce__(self) -> Any:
        return (ArtifactList, (list(self),))

    def __copy__(self) -> ArtifactList:
        return ArtifactList(self)

    __eq__ = _materialized(list.__eq__)
    __ne__ = _materialized(list.__ne__)
    __lt__ = _materialized(list.__lt__)
    __le__ = _materialized(list.__le__)
    __gt__ = _materialized(list.__gt__)
    __ge__ = _materialized(list.__ge__)
    __hash__ = None  # type: ignore[assignment]
    __repr__ = _materialized(list.__repr__)
    __contains__ = _materialized(list.__contains__)
    __add__ = _materialized(list.__add__)
    __mul__ = _materialized(list.__mul__)
    __rmul__ = _materialized(list.__rmul__)
    __iadd__ = _materialized(list.__iadd__)
    __imul__ = _materialized(list.__imul__)
    __setitem__ = _materialized(list.__setitem__)
    __delitem__ = _materialized(list.__delitem__)
    append = _materialized(list.append)
    extend = _materialized(list.extend)
    insert = _materialized(list.insert)
    pop = _materialized(list.pop)
    remove = _materialized(list.remove)
    clear = _materialized(list.clear)
    sort = _materialized(list.sort)
    reverse = _materialized(list.reverse)
    index = _materialized(list.index)
    count = _materialized(list.count)
    copy = _materialized(list.copy)


def _not_reserved(a: Artifact) -> bool:
    return not a.kind.startswith(RESERVED_KIND_PREFIX)


def _both(f: Callable[[Artifact], bool], g: Callable[[Artifact], bool]) -> Callable[[Artifact], bool]:
    return lambda a: f(a) and g(a)


class ArtifactSearch:
    """The read side of the artifacts: every query answers from the catalog, never from disk.

    Example:
        >>> search = ArtifactSearch(catalog)                                   # doctest: +SKIP
        >>> search.best(kind="checkpoint", metric="val_acc", mode="max")       # doctest: +SKIP
    """

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog

    def _pool(
        self, kind: str | None, items: Iterable[tuple[str, Any]] = (), where: ScopeFilter = ScopeFilter()
    ) -> list[Artifact]:
        """Artifacts in (created_at, id) order that include every answer to a query (maybe more)."""
        best: list[Artifact] | None = None
        if where.run_id is not None:
            best = self._catalog.postings.get((kind, where.run_id), [])
        if kind is not None:
            for key in label_keys(kind, items):
                lst = self._catalog.postings.get(key, [])
                if best is None or len(lst) < len(best):
                    best = lst
        if best is not None:
            return best
        if kind is not None:
            return self._catalog.by_kind.get(kind, [])
        if len(self._catalog.by_kind) == 1:
            return next(iter(self._catalog.by_kind.values()))
        return sorted(self._catalog.by_id.values(), key=order_key)

    def search(
        self,
        *,
        kind: str | None = None,
        labels: Mapping[str, Any] | None = None,
        metric: str | None = None,
        mode: Mode | None = None,
        where: ScopeFilter = ScopeFilter(),
        limit: int | None = None,
    ) -> ArtifactList:
        """Artifacts matching ``kind``, every label in ``labels`` (exact) and the scope.

        Without ``metric``: newest first. With ``metric``: ranked by it (``mode`` "max" by
        default), artifacts lacking the metric left out, ties broken by the newest.
        """
        if kind is not None:
            check_kind(kind)
        want = check_labels(labels) if labels else {}
        limit = check_limit(limit, allow_none=True)
        if mode is not None:
            check_mode(mode)
        self._catalog.catch_up()
        items = list(want.items())
        pool = self._pool(kind, items, where)
        match = match_fn(where, items)
        if kind is None and any(k.startswith(RESERVED_KIND_PREFIX) for k in self._catalog.by_kind):
            # the store's own aeg.* kinds (cell sources, environments) are listed when asked for by name
            match = _not_reserved if match is None else _both(match, _not_reserved)
        out = ArtifactList()
        if metric is None and kind is not None and len(items) == 1 and not where:
            keys = label_keys(kind, items)
            if keys:  # one label, no scope: its posting list is the answer, already in order
                hits = reversed(self._catalog.postings.get(keys[0], []))
                out.extend(hits if limit is None else itertools.islice(hits, limit))
                return out
        if metric is None:
            if limit is None:  # the loop in C: only the predicate runs in Python
                out.extend(reversed(pool) if match is None else filter(match, reversed(pool)))
                return out
            for a in reversed(pool):
                if match is None or match(a):
                    out.append(a)
                    if len(out) >= limit:
                        break
            return out
        if limit is not None and kind is not None:
            ranked = self._ranked(kind, metric, mode or "max", match, limit, pool)
            if ranked is not None:
                out.extend(ranked)
                return out
        scored = []
        for a in reversed(pool):  # newest first, so a stable sort keeps newest first on ties
            v = a.metrics.get(metric)
            if v is None or math.isnan(v):
                continue
            if match is None or match(a):
                scored.append((v, a))
        reverse = (mode or "max") == "max"
        if limit is not None and limit < len(scored):  # only the top: a heap, not a sort of all
            top = heapq.nsmallest if not reverse else heapq.nlargest
            out.extend(a for _, a in top(limit, scored, key=lambda t: t[0]))
            return out
        scored.sort(key=lambda t: t[0], reverse=reverse)
        out.extend(a for _, a in (scored if limit is None else scored[:limit]))
        return out

    def iter_ranked(
        self,
        *,
        kind: str,
        metric: str,
        mode: Mode = "max",
        where: ScopeFilter = ScopeFilter(),
        labels: Mapping[str, Any] | None = None,
    ) -> Iterator[Artifact]:
        """``search(kind=, labels=, metric=, mode=, where=)`` one artifact at a time, best first.

        For a consumer that stops early on its own rule (a leaderboard keeping the best artifact
        per label value): a big kind is walked off its ranking instead of scored and sorted whole.
        """
        check_kind(kind)
        check_mode(mode)
        items = list(check_labels(labels).items()) if labels else []
        self._catalog.catch_up()
        pool = self._pool(kind, items, where)
        if len(pool) < ranking.RANKING_MIN:
            yield from self.search(kind=kind, labels=labels, metric=metric, mode=mode, where=where)
            return
        yield from (a for a in self._walk(kind, metric, mode, match_fn(where, items)) if a is not None)

    def _walk(
        self, kind: str, metric: str, mode: Mode, match: Callable[[Artifact], bool] | None
    ) -> Iterator[Artifact | None]:
        """The kind's ranking, best first: each artifact that matches, and None for each that
        does not (or was deleted since it was ranked), so a caller can count its steps."""
        by_id = self._catalog.by_id
        for aid in self._catalog.ranking(kind, metric, mode).best_first():
            a = by_id.get(aid)
            yield a if a is not None and a.kind == kind and (match is None or match(a)) else None

    def _ranked(
        self,
        kind: str,
        metric: str,
        mode: Mode,
        match: Callable[[Artifact], bool] | None,
        limit: int,
        pool: list[Artifact],
    ) -> list[Artifact] | None:
        """The best ``limit`` artifacts of ``kind`` by ``metric`` that ``match``, read off the
        kind's ranking; ``None`` when scoring ``pool`` is the cheaper way.

        Walking the ranking visits about ``limit * len(kind) / len(pool)`` artifacts (the pool is
        the shortest posting list holding every answer); scoring the pool visits all of it. The
        walk is tried when it should be shorter, and given up (``None``) past 8x its estimate,
        e.g. when two labels, each common, are rarely set together.
        """
        size = len(self._catalog.by_kind.get(kind, ()))
        if len(pool) < ranking.RANKING_MIN or len(pool) * len(pool) < limit * size:
            return None
        budget = max(1000, 8 * limit * size // max(len(pool), 1))
        found: list[Artifact] = []
        for steps, a in enumerate(self._walk(kind, metric, mode, match)):
            if steps >= budget:
                return None
            if a is not None:
                found.append(a)
                if len(found) >= limit:
                    break
        return found

    def best(
        self,
        *,
        kind: str,
        metric: str,
        mode: Mode = "max",
        where: ScopeFilter = ScopeFilter(),
        filters: Mapping[str, Any] | None = None,
    ) -> Artifact | None:
        """The artifact of ``kind`` with the best ``metric``; NaN never wins, ties go to the newest."""
        check_kind(kind)
        if not isinstance(metric, str) or not metric:
            raise InvalidInputError(f"metric must be a metric name such as 'val_acc', got {metric!r}")
        check_mode(mode)
        items = list(check_labels(filters).items()) if filters else []
        self._catalog.catch_up()
        pool = self._pool(kind, items, where)
        found = self._ranked(kind, metric, mode, match_fn(where, items), 1, pool)
        if found is not None:
            return found[0] if found else None
        sign = 1.0 if mode == "max" else -1.0
        best: Artifact | None = None
        best_v = -math.inf
        for a in reversed(pool):
            v = a.metrics.get(metric)
            if v is None or math.isnan(v):
                continue
            v *= sign
            if v > best_v and (not where or where.matches(a)) and labels_match(a.labels, items):
                best, best_v = a, v
        return best

    def list(
        self, *, kind: str | None = None, where: ScopeFilter = ScopeFilter(), limit: int | None = None
    ) -> ArtifactList:
        """Live artifacts in scope, newest first."""
        return self.search(kind=kind, where=where, limit=limit)


def match_fn(where: ScopeFilter, items: list[tuple[str, Any]]) -> Callable[[Artifact], bool] | None:
    """One predicate for a scope and a label filter, built once per query (``None``: all match).

    Same test as ``where.matches(a) and labels_match(a.labels, items)``, without re-checking
    the scope's truth value and re-entering the label loop for every artifact.
    """
    labels_ok: Callable[[Artifact], bool] | None = None
    if len(items) == 1:
        ((key, want),) = items
        want_bool = isinstance(want, bool)

        def labels_ok(a: Artifact) -> bool:
            got = a.labels.get(key, _MISSING)
            return got is not _MISSING and got == want and isinstance(got, bool) == want_bool

    elif items:

        def labels_ok(a: Artifact) -> bool:
            return labels_match(a.labels, items)

    if not where:
        return labels_ok
    run, graph, node = where.run_id, where.graph_id, where.node_id

    def match(a: Artifact) -> bool:
        return (
            (run is None or a.run_id == run)
            and (graph is None or a.graph_id == graph)
            and (node is None or a.node_id == node)
            and (labels_ok is None or labels_ok(a))
        )

    return match


def labels_match(labels: Mapping[str, Any], items: list[tuple[str, Any]]) -> bool:
    for k, v in items:
        got = labels.get(k, _MISSING)
        if got is _MISSING or got != v or isinstance(got, bool) != isinstance(v, bool):
            return False
    return True


class ColumnarSearch:
    """:class:`ArtifactSearch` for a format-2 store: every query answered by the columnar catalog
    (``core/columnar.py``), with format 1's answers (tests/format2/test_catalog2.py compares them).

    Example:
        >>> search = ColumnarSearch(delta_catalog)                             # doctest: +SKIP
        >>> search.best(kind="checkpoint", metric="val_acc", mode="max")       # doctest: +SKIP
    """

    def __init__(self, catalog: DeltaCatalog) -> None:
        self._catalog = catalog

    def search(
        self,
        *,
        kind: str | None = None,
        labels: Mapping[str, Any] | None = None,
        metric: str | None = None,
        mode: Mode | None = None,
        where: ScopeFilter = ScopeFilter(),
        limit: int | None = None,
    ) -> ArtifactList:
        """Artifacts matching ``kind``, every label in ``labels`` (exact) and the scope (see
        :meth:`ArtifactSearch.search`); the store's own ``aeg.*`` kinds only when asked for by name."""
        self._catalog.catch_up()
        found = self._catalog.columns.search(
            kind=kind, labels=labels, metric=metric, mode=mode, where=where, limit=limit,
            skip_prefix=RESERVED_KIND_PREFIX,
        )  # fmt: skip
        return LazyArtifactList(found)

    def iter_ranked(
        self,
        *,
        kind: str,
        metric: str,
        mode: Mode = "max",
        where: ScopeFilter = ScopeFilter(),
        labels: Mapping[str, Any] | None = None,
    ) -> Iterator[Artifact]:
        """Ranked ``search`` one artifact at a time, best first: pages of growing size off the
        catalog's cached ranking, so a consumer that stops early builds few artifacts."""
        check_kind(kind)
        check_mode(mode)
        check_labels(labels)
        self._catalog.catch_up()
        done, page = 0, 64
        while True:
            got = self._catalog.columns.search(
                kind=kind, labels=labels, metric=metric, mode=mode, where=where, limit=done + page
            )
            yield from got.build(slice(done, None))
            if len(got) < done + page:
                return
            done, page = len(got), page * 4

    def best(
        self,
        *,
        kind: str,
        metric: str,
        mode: Mode = "max",
        where: ScopeFilter = ScopeFilter(),
        filters: Mapping[str, Any] | None = None,
    ) -> Artifact | None:
        """The artifact of ``kind`` with the best ``metric``; NaN never wins, ties go to the newest."""
        self._catalog.catch_up()
        return self._catalog.columns.best(kind=kind, metric=metric, mode=mode, where=where, filters=filters)

    def list(
        self, *, kind: str | None = None, where: ScopeFilter = ScopeFilter(), limit: int | None = None
    ) -> ArtifactList:
        """Live artifacts in scope, newest first."""
        return self.search(kind=kind, where=where, limit=limit)
