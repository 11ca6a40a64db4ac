"""AetherGraph's ``AsyncArtifactIndex`` over this store's catalog, with its default index's rules.

Search, best, list, get and pin answer from our catalog the way AetherGraph's default (SQLite)
index does (see :meth:`AegArtifactIndex.search`), so AetherGraph's facade gives the same answers on
either backend. Occurrences (its lineage log) are events of kind ``aethergraph.occurrence``.

Rows are immutable: an ``upsert`` that changes an artifact's labels or metrics (a streamed writer's
scope labels arrive that way) commits a new row for the same bytes, retires the old one, and gives
the ``Artifact`` it was handed the new id.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..base.errors import AegError, NotFoundError
from ..base.ids import new_ts_id
from ..base.models import Artifact as AegArtifact
from ..base.models import Provenance, ScopeFilter
from ..base.validate import check_labels
from ..core.events import EventLog
from . import codec
from .artifacts import AegArtifactStore, AetherGraphBackendError, artifact_cls, normalize_tags

if TYPE_CHECKING:
    from ..core.store import Store

OCCURRENCE_KIND = "aethergraph.occurrence"  # the lineage log: one event per artifact occurrence
_TENANT_COLUMNS = ("org_id", "user_id", "client_id", "app_id", "session_id", "run_id")
_CACHE_SIZE = 50_000  # AetherGraph Artifacts kept for the artifacts asked about most recently
_EVERY = 1 << 62  # "all of them" as a limit of our recent()
_RESULTS = 256  # unranked searches whose answers are kept while nothing changes
_PLAIN = frozenset((str, int, float, bool, type(None)))  # label values a kept answer can be keyed on
# one encoder for every occurrence (json.dumps with options builds a new JSONEncoder per call)
_encode_occurrence = json.JSONEncoder(ensure_ascii=False, default=str).encode
_RACY_NS = 2_000_000_000  # a directory mtime this recent may not move on the next change (clock ticks)


class StoreStamp:
    """A stamp that moves whenever the artifacts of a store may have changed, for one ``stat``.

    This process's saves, pins and deletes move a counter (the store's change listeners); other
    processes can only change the store while they hold a writer directory in ``spool/``, and
    one coming or going moves ``spool/``'s mtime. :meth:`now` is ``None`` (nothing may be cached)
    while any other writer directory is there, for a store that is not a local folder, and while
    ``spool/``'s mtime is too recent to trust (it moves once per clock tick, so a change in the
    same tick as the last look would not show: the racy-git rule).

    Both formats: on format 2 this process's background flusher commits its own spooled rows to
    the Delta tables (and maintenance folds pins and deletes in), which changes files but not the
    artifacts a search sees; another process's commits, maintenance or recovery of a dead
    writer's spool all run while it holds its own writer directory in ``spool/``.

    Example:
        >>> stamp = StoreStamp(store)                  # doctest: +SKIP
        >>> stamp.now() == stamp.now()                 # doctest: +SKIP
        True
    """

    def __init__(self, store: Store) -> None:
        self._spool = store.layout.spool
        self._writer = store.writer
        self._usable = os.path.isdir(self._spool)
        self._version = 0
        self._alone_at: int | None = None  # spool/'s mtime when only this writer was in it
        self._unsubscribe = store.subscribe(self._changed) if self._usable else None
        # spool/ held open: an fstat costs no path walk (a search's one system call); a spool/
        # removed under us has no links left, and nothing may be cached then
        self._fd: int | None = None
        if self._usable:
            try:
                self._fd = os.open(self._spool, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
            except OSError:  # (a platform that cannot open a directory: stat by path)
                self._fd = None

    def _changed(self, table: str) -> None:
        if table != "events":
            self._version += 1

    def close(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._usable = False

    def now(self) -> tuple[int, int] | None:
        """The stamp, or None when other writers may be changing the store."""
        if not self._usable:
            return None
        try:
            if self._fd is not None:
                st = os.fstat(self._fd)
                if not st.st_nlink:
                    return None
            else:
                st = os.stat(self._spool)
        except OSError:
            return None
        mtime = st.st_mtime_ns
        if mtime != self._alone_at:
            self._alone_at = None
            checked = time.time_ns()
            try:
                with os.scandir(self._spool) as it:
                    others = any(e.name != self._writer for e in it)
            except OSError:
                return None
            if others or checked - mtime < _RACY_NS:
                return None
            self._alone_at = mtime
        return mtime, self._version


class AegArtifactIndex:
    """AetherGraph's artifact index contract (``aethergraph/contracts/storage/artifact_index.py``),
    answered from our catalog with the rules of AetherGraph's default (SQLite) index."""

    def __init__(self, store: AegArtifactStore, events: EventLog, *, watch: Store | None = None) -> None:
        """``watch``: the core store underneath; with it, the answers of unranked searches are kept
        while its :class:`StoreStamp` stays the same (AetherGraph's facades ask the same searches
        again and again; an answer costs a catch-up with other writers and the walk)."""
        self._store = store  # for its URI aliases
        self._arts = store.artifacts
        self._events = events
        self._cls = artifact_cls()
        self._ag_cache: dict[str, tuple[AegArtifact, Any]] = {}
        self._nonfinite: dict[tuple[str, str], tuple[tuple[int, int], bool]] = {}
        self._stamp = StoreStamp(watch) if watch is not None else None
        self._results: dict[tuple[Any, ...], list[Any]] = {}
        self._results_at: tuple[int, int] | None = None

    def close(self) -> None:
        """Stop watching the store (see ``watch``)."""
        if self._stamp is not None:
            self._stamp.close()
        self._results.clear()

    def _ag(self, art: AegArtifact) -> Any:
        # our artifacts are immutable (a pin is a new object): one AetherGraph Artifact per object
        hit = self._ag_cache.get(art.artifact_id)
        if hit is not None and hit[0] is art:
            return hit[1]
        ag = codec.to_ag_artifact(art, self._cls)
        cache = self._ag_cache
        cache[art.artifact_id] = (art, ag)
        if len(cache) > _CACHE_SIZE:
            cache.pop(next(iter(cache)))
        return ag

    def _ours(self, artifact_id: str) -> AegArtifact | None:
        """Our artifact with exactly this id (not a prefix or short id, as ``get`` also takes), or None."""
        if not isinstance(artifact_id, str) or not artifact_id:
            return None
        try:
            art = self._arts.get(artifact_id)
        except AegError:  # not found, ambiguous, not an id at all
            return None
        return art if art.artifact_id == artifact_id else None

    async def upsert(self, a: Any) -> None:
        """Take in an artifact: one this backend's store saved is already a row (a changed pin is a pin,
        changed labels or metrics a new row for the same bytes); a foreign one needs its bytes here."""
        ours = self._store.just_saved(a.artifact_id) or self._ours(a.artifact_id)
        want_labels = codec.encode_labels(
            a.labels,
            sha256=a.sha256,
            tool_name=a.tool_name,
            tool_version=a.tool_version,
            mime=a.mime,
            preview_uri=a.preview_uri,
            metrics=a.metrics,
            tenant={k: getattr(a, k, None) for k in codec.TENANT},
        )
        want_metrics = codec.split_metrics(a.metrics)
        if ours is not None and ours.uri == a.uri:
            same = dict(ours.labels) == check_labels(want_labels) and dict(ours.metrics) == {
                k: float(v) for k, v in want_metrics.items()
            }
            if same:
                if ours.pinned != bool(a.pinned):
                    self._arts.pin(ours.artifact_id, bool(a.pinned))
                return
        if not a.uri:
            raise AetherGraphBackendError(f"AegArtifactIndex.upsert: artifact {a.artifact_id!r} has no uri")
        try:
            uri = self._store.resolve(a.uri)
            base = self._arts.get(uri) if ours is None else ours
        except (NotFoundError, AetherGraphBackendError) as exc:
            raise AetherGraphBackendError(
                f"AegArtifactIndex.upsert: the bytes of {a.uri!r} are not in this store ({exc}); "
                "save them through context.artifacts() first"
            ) from None
        origin = Provenance(a.run_id, a.graph_id, a.node_id)
        kw: dict[str, Any] = {
            "kind": a.kind or base.kind,
            "labels": want_labels,
            "metrics": want_metrics,
            "name": base.name,
            "pin": bool(a.pinned),
            "origin": origin,
        }
        if base.is_dir:
            new = self._arts.save_dir(self._arts.local_dir(base.uri), **kw)
        else:
            new = self._arts.save_file(self._arts.local_file(base.uri), **kw)
        if ours is not None:
            if ours.pinned:
                self._arts.pin(ours.artifact_id, False)
            self._arts.delete(ours.artifact_id)
        a.artifact_id = new.artifact_id  # the facade hands this object back to the graph
        a.uri = new.uri

    async def get(self, artifact_id: str) -> Any:
        ours = self._ours(artifact_id)
        return None if ours is None else self._ag(ours)

    async def list_for_run(self, run_id: str) -> list[Any]:
        return [self._ag(a) for a in reversed(self._arts.list(where=ScopeFilter(run_id=run_id)))]

    # -- search with the default index's rules --------------------------------------------------
    def _core_filters(self, labels: Mapping[str, Any] | None) -> tuple[dict[str, Any], ScopeFilter]:
        """What our catalog can filter on exactly (string labels, the run); the rest is checked after."""
        core: dict[str, Any] = {}
        run_id = None
        for k, v in (labels or {}).items():
            if k == "run_id":
                run_id = str(v)
            elif k != "tags" and k not in _TENANT_COLUMNS and isinstance(v, str) and not k.startswith(codec.PREFIX):
                core[k] = v
        return core, ScopeFilter(run_id=run_id)

    def _sql_match(self, labels: Mapping[str, Any] | None):
        """The default index's WHERE clause: tenant columns equal ``str(v)``; other labels match when
        the stored label is that string (its ``labels_json LIKE '%"k": "v"%'``)."""
        items = [(k, v) for k, v in (labels or {}).items() if k != "tags"]

        def match(a: AegArtifact) -> bool:
            lab = a.labels
            for k, v in items:
                if k == "run_id":
                    if a.run_id != str(v):
                        return False
                elif k in _TENANT_COLUMNS:
                    if lab.get(codec.PREFIX + k) != str(v):
                        return False
                elif lab.get(k) != str(v):
                    return False
            return True

        return match

    async def search(
        self,
        *,
        kind: str | None = None,
        labels: dict[str, Any] | None = None,
        metric: str | None = None,
        mode: str | None = None,
        limit: int | None = None,
        offset: int = 0,
        pinned: bool | None = None,
    ) -> list[Any]:
        stamper = self._stamp
        if stamper is not None and (not metric or not mode) and limit != 0:
            # the facades' common case first: an unranked search asked before, nothing changed since
            # (one stat, one dict look-up: no filter parsing, no catch-up, no conversion)
            key = _result_key(kind, labels, limit, offset, pinned)
            if key is not None:
                stamp = stamper.now()
                if stamp is not None and stamp == self._results_at:
                    hit = self._results.get(key)
                    if hit is not None:
                        return hit.copy()  # (a new list: a caller may sort or extend it)
                return self._search(
                    kind=kind, labels=labels, metric=metric, mode=mode, limit=limit, offset=offset, pinned=pinned,
                    kept=(key, stamp),
                )  # fmt: skip
        return self._search(
            kind=kind, labels=labels, metric=metric, mode=mode, limit=limit, offset=offset, pinned=pinned
        )

    def _search(
        self,
        *,
        kind: str | None,
        labels: Mapping[str, Any] | None,
        metric: str | None,
        mode: str | None,
        limit: int | None,
        offset: int = 0,
        pinned: bool | None = None,
        kept: tuple[tuple[Any, ...], tuple[int, int] | None] | None = None,
    ) -> list[Any]:
        """``kept``: the search's key in the kept answers and the stamp :meth:`search` took already."""
        key = stamp = None
        if kept is not None:
            key, stamp = kept
        elif (not metric or not mode) and limit != 0 and self._stamp is not None:
            # an unranked search asked before, with nothing changed since: the same answer
            key = _result_key(kind, labels, limit, offset, pinned)
            stamp = self._stamp.now() if key is not None else None
        if key is not None and stamp is not None:
            if stamp != self._results_at:
                self._results.clear()
                self._results_at = stamp
            hit = self._results.get(key)
            if hit is not None:
                return list(hit)
        core, where = self._core_filters(labels)
        # every filter but the tags is one our catalog applies exactly: no row needs a second look
        exact = pinned is None and all(k == "tags" or k == "run_id" or k in core for k in (labels or {}))
        sql = (lambda a: True) if exact else self._sql_match(labels)
        tag_filter = normalize_tags((labels or {}).get("tags")) if labels and "tags" in labels else None

        def ok(a: AegArtifact) -> bool:
            return (pinned is None or a.pinned == bool(pinned)) and sql(a)

        def tags_ok(a: AegArtifact) -> bool:
            if not tag_filter:
                return True
            have = set(normalize_tags(codec.tags_of(codec.decode_labels(a.labels))) or [])
            return all(t in have for t in tag_filter)

        if not metric or not mode:
            # ORDER BY created_at DESC LIMIT/OFFSET, then the tag filter (in that order, as the default index)
            if limit == 0:
                return []
            out: list[AegArtifact] = []
            skip = offset
            cap = limit + offset if exact and limit is not None else None
            for a in self._arts.search(kind=kind, labels=core or None, where=where, limit=cap):
                if not ok(a):
                    continue
                if skip:
                    skip -= 1
                    continue
                out.append(a)
                if limit is not None and len(out) >= limit:
                    break
            rows = [self._ag(a) for a in out if tags_ok(a)]
            if key is not None and stamp is not None and stamp == self._results_at:  # (taken before the walk)
                if len(self._results) >= _RESULTS:
                    self._results.clear()
                self._results[key] = rows
                return list(rows)
            return rows
        if kind is not None:
            # our ranking is the default index's order while every value of the metric is a finite
            # number (a stable sort of newest-first rows: ties go to the newest)
            if limit == 0:
                return []
            need = None if limit is None else limit + offset
            found: list[AegArtifact] = []
            for a in self._arts.iter_ranked(kind=kind, metric=metric, mode=mode, where=where, labels=core or None):
                if ok(a) and tags_ok(a):
                    found.append(a)
                    if need is not None and len(found) >= need:
                        break
            if not self._has_nonfinite(kind, metric):  # (asked after the walk caught up with other writers)
                return [self._ag(a) for a in found[offset:]]
        # NaN or inf among the values (or no kind): the default index's own sort, on the same rows
        rows = [
            self._ag(a) for a in self._arts.search(kind=kind, labels=core or None, where=where) if ok(a) and tags_ok(a)
        ]
        rows = [r for r in rows if metric in (r.metrics or {})]
        rows.sort(key=lambda r: r.metrics[metric], reverse=(mode == "max"))
        if offset:
            rows = rows[offset:]
        return rows if limit is None else rows[:limit]

    def _has_nonfinite(self, kind: str, metric: str) -> bool:
        """Does any artifact of ``kind`` hold a NaN/inf ``metric``? Asked again only when the store
        changed (its size, or a NaN save here) since the last answer; a query catches up first."""
        stamp = (len(self._arts), self._store.nonfinite_saves)
        hit = self._nonfinite.get((kind, metric))
        if hit is not None and hit[0] == stamp:
            return hit[1]
        found = bool(self._arts.search(kind=kind, labels={codec.NONFINITE + metric: True}, limit=1))
        self._nonfinite[(kind, metric)] = ((len(self._arts), self._store.nonfinite_saves), found)
        return found

    async def best(self, *, kind: str, metric: str, mode: str, filters: dict[str, Any] | None = None) -> Any:
        rows = self._search(kind=kind, labels=filters, metric=metric, mode=mode, limit=1)
        return rows[0] if rows else None

    async def pin(self, artifact_id: str, pinned: bool = True) -> None:
        ours = self._ours(artifact_id)
        if ours is None:
            return  # as the default index: an UPDATE that matches no row
        self._arts.pin(ours.artifact_id, pinned)

    # -- occurrences: an append-only lineage log, as events of our store ------------------------
    async def record_occurrence(self, a: Any, extra_labels: dict | None = None) -> None:
        labels = {**(a.labels or {}), **(extra_labels or {})}
        occ = {
            # any unique string (the default index's is a uuid4's hex): a ULID costs no urandom call
            "occurrence_id": str(a.occurrence_id or new_ts_id()[1]),
            "artifact_id": a.artifact_id,
            "run_id": a.run_id,
            "graph_id": a.graph_id,
            "node_id": a.node_id,
            "tool_name": a.tool_name,
            "tool_version": a.tool_version,
            "created_at": _iso(a.created_at),
            "labels": labels,
            "kind": a.kind,
            "mime": a.mime,
            "bytes": a.bytes,
            "uri": a.uri,
            "preview_uri": a.preview_uri,
            "session_id": a.session_id,
        }
        self._events.record(
            OCCURRENCE_KIND,
            _encode_occurrence(occ),
            topic=a.session_id or None,
            origin=Provenance(a.run_id, a.graph_id, a.node_id),
        )

    def _occurrences(self, match, limit: int | None, offset: int) -> list[Any]:
        evs = self._events.recent(kinds=[OCCURRENCE_KIND], limit=_EVERY)
        out = []
        for ev in reversed(evs):  # newest first, as the default index
            occ = json.loads(ev.text or "{}")
            if match(occ):
                out.append(occ)
        out = out[offset:] if offset else out
        out = out if limit is None else out[:limit]
        return [self._occurrence_artifact(o) for o in out]

    def _occurrence_artifact(self, o: dict[str, Any]) -> Any:
        cur = self._ours(o["artifact_id"])
        cur_ag = self._ag(cur) if cur is not None else None
        labels = dict(o.get("labels") or {})
        return self._cls(
            artifact_id=o["artifact_id"],
            run_id=o.get("run_id"),
            graph_id=o.get("graph_id"),
            node_id=o.get("node_id"),
            tool_name=o.get("tool_name"),
            tool_version=o.get("tool_version"),
            kind=o.get("kind") or (cur_ag.kind if cur_ag else None),
            sha256=cur_ag.sha256 if cur_ag else o["artifact_id"],
            bytes=o.get("bytes") if o.get("bytes") is not None else (cur_ag.bytes if cur_ag else None),
            mime=o.get("mime") or (cur_ag.mime if cur_ag else None),
            created_at=o.get("created_at"),
            labels=labels or (cur_ag.labels if cur_ag else {}),
            tags=codec.tags_of(labels),
            metrics=cur_ag.metrics if cur_ag else None,
            pinned=cur_ag.pinned if cur_ag else False,
            uri=o.get("uri") or (cur_ag.uri if cur_ag else None),
            preview_uri=o.get("preview_uri") or (cur_ag.preview_uri if cur_ag else None),
            session_id=o.get("session_id"),
            occurrence_id=o.get("occurrence_id"),
        )

    async def list_occurrences_for_run(self, run_id: str, *, limit: int | None = None, offset: int = 0) -> list[Any]:
        return self._occurrences(lambda o: o.get("run_id") == run_id, limit, offset)

    async def list_occurrences_for_session(
        self, session_id: str, *, limit: int | None = None, offset: int = 0
    ) -> list[Any]:
        return self._occurrences(lambda o: o.get("session_id") == session_id, limit, offset)


def _result_key(
    kind: str | None, labels: Mapping[str, Any] | None, limit: int | None, offset: int, pinned: bool | None
) -> tuple[Any, ...] | None:
    """A search's key in the kept answers, or None for labels that are not plain values."""
    if not labels:
        return kind, (), (), limit, offset, pinned
    types = tuple(map(type, labels.values()))
    if not _PLAIN.issuperset(types):
        return None
    # (the types too: True == 1, but the default index matches str(True) and str(1) apart)
    return kind, tuple(labels.items()), types, limit, offset, pinned


def _iso(v: Any) -> Any:
    return v.isoformat() if hasattr(v, "isoformat") else v


__all__ = ["OCCURRENCE_KIND", "AegArtifactIndex", "StoreStamp"]
