"""AetherGraph's memory persistence and hot log over this store's event log.

AetherGraph's ``MemoryFacade`` writes every event twice, to its hot log (``HotLog.append``) and to
its persistence (``Persistence.append_event``). Here both are one event of our store: the hot log's
append writes it, and the persistence's append of that same object is the same write. Each of our
events keeps AetherGraph's whole event (ids, timeline, tenant, signal, data) as its JSON ``text``;
its kind, topic, tags, severity, stage, metrics, inputs and outputs are also our columns, and its
run / graph / node ids our scopes, so ``%aeg recent`` and ``last_by_name`` read them as any other.

Reads follow AetherGraph's default backend: the hot log sees the newest ``hot_limit`` events of a
timeline, the persistence all of them; both newest first, filtered by AetherGraph's own
``event_matches_filters``. Decoded events are cached by our (immutable) event id.

The hot log's reads answer from a per-timeline cache (:class:`_Timeline`: the timeline's newest
events, filled by one read of the store and then by this process's writes) while it is known to be
complete for the asked window. Our event log's own hot window holds the newest events of the whole
store, so when other events are interleaved (AetherGraph's occurrence events of its saves, other
timelines) the timeline's newest ``hot_limit`` reach past it, into a Parquet scan. Before it
answers, the cache catches up with the newest events of the store (our event log's ``recent``,
which takes in other processes' new events): every event newer than the last look is taken in
(while this process is the store's only writer, :class:`~aeg_jupyter.aethergraph.index.StoreStamp`)
or every event less than ``_MARGIN_US`` older than it (another writer's event can show up late:
it is stamped before it is written); when that many are more than the event log's hot window
holds, the cache is dropped and the timeline read again.
"""

from __future__ import annotations

import bisect
import dataclasses
import json
import math
from collections import OrderedDict, deque
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..base.errors import InvalidInputError, NotFoundError
from ..base.models import Event as AegEvent
from ..base.models import Provenance, ScopeFilter
from ..base.times import iso_to_us, ts_to_iso
from ..core.artifacts import ArtifactStore
from ..core.events import EventLog
from . import codec
from .index import StoreStamp

if TYPE_CHECKING:
    from ..core.store import Store

MEMDOC_KIND = "aethergraph.memdoc"  # summaries and other JSON documents of AetherGraph's memory
MEMDOC_ID = codec.PREFIX + "memdoc_id"
_CACHE_SIZE = 20_000
_ALL = 1 << 62  # "every event": our recent() reads newest first until it has this many
_TIMELINES = 64  # timelines with a hot cache (the ones read most recently)
_MARGIN_US = 5_000_000  # how much older than the newest event seen another writer's event may show up
_PEEK = 16  # the newest events of the store a catch-up looks at first (then 4x, up to the hot window)
_NO_KEY = ("", "")

Key = tuple[str, str]  # (our event's ts, ISO text of fixed width, so it sorts as the time; our event id)


class _Timeline:
    """The newest events of one timeline, oldest first, as of ``mark`` (the newest event of the
    store seen then): every event of the timeline newer than ``items[0]`` is here, and all of its
    events when ``whole``."""

    __slots__ = ("alone", "cap", "ids", "items", "mark", "whole")

    def __init__(self, items: list[tuple[Key, Any]], *, whole: bool, mark: Key, alone: int | None, cap: int) -> None:
        self.items = items
        self.ids = {k[1] for k, _ in items}
        self.whole = whole
        self.mark = mark
        self.alone = alone  # spool/'s mtime when this process was the only writer at `mark`, else None
        self.cap = cap

    def add(self, key: Key, evt: Any) -> None:
        if key[1] in self.ids:
            return
        items = self.items
        if not items or key > items[-1][0]:
            items.append((key, evt))
        elif self.whole or key > items[0][0]:
            bisect.insort(items, (key, evt), key=lambda t: t[0])
        else:
            return  # older than what is held of an incomplete timeline: it does not belong here
        self.ids.add(key[1])
        if len(items) > 2 * self.cap:
            for k, _ in items[: -self.cap]:
                self.ids.discard(k[1])
            del items[: -self.cap]
            self.whole = False


def _event_cls() -> type:
    from aethergraph.contracts.services.memory import Event

    return Event


class AegMemoryLog:
    """What the hot log and the persistence share: writing and reading AetherGraph events."""

    def __init__(
        self, events: EventLog, artifacts: ArtifactStore, *, hot_limit: int = 1000, watch: Store | None = None
    ) -> None:
        """``watch``: the core store underneath; with it, a timeline's cache knows when this process is
        its only writer (and needs to look only at the events newer than its last look)."""
        self.events = events
        self.artifacts = artifacts
        self.hot_limit = int(hot_limit)
        self._cls = _event_cls()
        self._fields = frozenset(f.name for f in dataclasses.fields(self._cls))
        self._cache: OrderedDict[str, tuple[str | None, Any]] = OrderedDict()
        self._written: deque[Any] = deque(maxlen=64)  # objects the hot log wrote (by identity)
        self._limits: dict[str, int] = {}
        self._timelines: OrderedDict[str, _Timeline] = OrderedDict()
        self._stamp = StoreStamp(watch) if watch is not None else None

    def close(self) -> None:
        """Stop watching the store (see ``watch``) and drop the timelines' caches."""
        if self._stamp is not None:
            self._stamp.close()
            self._stamp = None
        self._timelines.clear()

    # -- writing -----------------------------------------------------------------------------
    def write(self, timeline_id: str, evt: Any) -> None:
        payload = dataclasses.asdict(evt)
        payload["timeline_id"] = timeline_id
        text = json.dumps(payload, ensure_ascii=False, default=str)
        metrics = {
            k: v
            for k, v in (evt.metrics or {}).items()
            if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
        }
        kw: dict[str, Any] = {
            "topic": evt.topic if isinstance(evt.topic, str) and evt.topic else None,
            "tags": [str(t) for t in evt.tags] if evt.tags else None,
            "severity": int(evt.severity) if isinstance(evt.severity, int | float) else 2,
            "stage": evt.stage if isinstance(evt.stage, str) else None,
            "metrics": metrics or None,
            "inputs": codec.to_values(evt.inputs),
            "outputs": codec.to_values(evt.outputs),
            "origin": Provenance(evt.run_id, evt.graph_id, evt.node_id),
        }
        kind = evt.kind if isinstance(evt.kind, str) and evt.kind else "memory"
        try:
            ours = self.events.record(kind, text, **kw)
        except InvalidInputError:  # values our columns refuse: they stay in the JSON text only
            kw.update(inputs=None, outputs=None, metrics=None)
            ours = self.events.record(kind, text, **kw)
        kept = dataclasses.replace(evt)
        self._remember(ours.event_id, timeline_id, kept)
        hot = self._timelines.get(timeline_id)
        if hot is not None:
            hot.add((ours.ts, ours.event_id), kept)

    def _remember(self, key: str, timeline_id: str | None, evt: Any) -> None:
        cache = self._cache
        cache[key] = (timeline_id, evt)
        if len(cache) > _CACHE_SIZE:
            cache.popitem(last=False)

    # -- reading -----------------------------------------------------------------------------
    def _decode(self, ev: AegEvent) -> tuple[str | None, Any]:
        hit = self._cache.get(ev.event_id)
        if hit is not None:
            return hit
        try:
            payload = json.loads(ev.text or "")
        except ValueError:
            payload = None
        if not isinstance(payload, dict) or "event_id" not in payload:
            out: tuple[str | None, Any] = (None, None)  # not an AetherGraph event: never on a timeline
        else:
            fields = {k: v for k, v in payload.items() if k in self._fields}
            out = (payload.get("timeline_id"), self._cls(**fields))
        self._remember(ev.event_id, *out)
        return out

    def timeline(
        self,
        timeline_id: str,
        *,
        window: int | None,
        kinds: list[str] | None = None,
        where: ScopeFilter = ScopeFilter(),
        topic: str | None = None,
    ) -> list[Any]:
        """The events of a timeline, newest first: its newest ``window`` (None: all), of which
        those our columns can pick out (``kinds``, scopes, topic: only when ``window`` is None)."""
        want = _ALL if window is None else max(window, 1)
        hot = window is not None and kinds is None and topic is None and not where
        if hot:
            cached = self._cached(timeline_id, want)
            if cached is not None:
                return cached
            before = self.events.recent(limit=1)  # the mark: what the read below sees at least
            mark = (before[-1].ts, before[-1].event_id) if before else _NO_KEY
            alone = self._alone()
        fetch = min(want, 4096) if window is not None else _ALL
        while True:
            evs = self.events.recent(kinds=kinds, limit=fetch, where=where, topic=topic)
            out = []
            keys: list[Key] = []
            for ev in reversed(evs):
                tl, agev = self._decode(ev)
                if agev is not None and tl == timeline_id:
                    out.append(agev)
                    keys.append((ev.ts, ev.event_id))
                    if len(out) >= want:
                        break
            if len(out) >= want or len(evs) < fetch or fetch >= _ALL:
                break
            fetch *= 4
        if hot:
            items = list(zip(reversed(keys), reversed(out), strict=True))
            self._keep(timeline_id, _Timeline(items, whole=len(out) < want, mark=mark, alone=alone, cap=want))
        return out

    # -- the timelines' caches ------------------------------------------------------------------
    def _alone(self) -> int | None:
        """spool/'s mtime while this process is the store's only writer (see StoreStamp), else None."""
        now = self._stamp.now() if self._stamp is not None else None
        return None if now is None else now[0]

    def _keep(self, timeline_id: str, hot: _Timeline) -> None:
        timelines = self._timelines
        timelines[timeline_id] = hot
        timelines.move_to_end(timeline_id)
        if len(timelines) > _TIMELINES:
            timelines.popitem(last=False)

    def _cached(self, timeline_id: str, want: int) -> list[Any] | None:
        """The newest ``want`` events of the timeline, newest first, from its cache caught up with
        the store; None when the cache cannot answer (none, or it holds fewer than asked)."""
        hot = self._timelines.get(timeline_id)
        if hot is None:
            return None
        if not self._catch_up(timeline_id, hot):
            del self._timelines[timeline_id]
            return None
        self._timelines.move_to_end(timeline_id)
        items = hot.items
        if len(items) < want and not hot.whole:
            return None
        hot.cap = max(hot.cap, want)
        return [e for _k, e in items[: -want - 1 : -1]]

    def _catch_up(self, timeline_id: str, hot: _Timeline) -> bool:
        """Take in the store's events since ``hot.mark`` (False: too many to tell from memory)."""
        alone = self._alone()
        if alone is not None and alone == hot.alone:
            low = hot.mark  # this process alone since the last look: nothing older can show up
        else:
            low = (ts_to_iso(iso_to_us(hot.mark[0]) - _MARGIN_US), "") if hot.mark[0] else _NO_KEY
        events = self.events
        peek, cap = _PEEK, max(_PEEK, events.hot.limit)
        while True:
            evs = events.recent(limit=peek)
            if len(evs) < peek or not evs or (evs[0].ts, evs[0].event_id) <= low:
                break
            if peek >= cap:
                return False
            peek = min(4 * peek, cap)
        ids = hot.ids
        for ev in reversed(evs):  # newest first, down to `low`
            key = (ev.ts, ev.event_id)
            if key <= low:
                break
            if key[1] in ids:
                continue
            tl, agev = self._decode(ev)
            if agev is not None and tl == timeline_id:
                hot.add(key, agev)
        if evs:
            hot.mark = max(hot.mark, (evs[-1].ts, evs[-1].event_id))
        hot.alone = alone
        return True

    def hot_window(self, timeline_id: str) -> int:
        return self._limits.get(timeline_id, self.hot_limit)


def _filtered(
    events: list[Any],
    *,
    tenant: Mapping[str, Any] | None = None,
    kinds: list[str] | None = None,
    tags: list[str] | None = None,
    since: Any = None,
    until: Any = None,
    session_id: str | None = None,
    run_id: str | None = None,
    agent_id: str | None = None,
    client_id: str | None = None,
    graph_id: str | None = None,
    node_id: str | None = None,
    topic: str | None = None,
    tool: str | None = None,
) -> list[Any]:
    """AetherGraph's ``event_matches_filters`` over a list (the cheap tests first, its own for time and tenant)."""
    from aethergraph.services.memory.storage_filters import event_matches_filters

    out = events
    if kinds:
        ks = set(kinds)
        out = [e for e in out if e.kind in ks]
    for attr, val in (
        ("session_id", session_id),
        ("run_id", run_id),
        ("agent_id", agent_id),
        ("client_id", client_id),
        ("graph_id", graph_id),
        ("node_id", node_id),
        ("topic", topic),
        ("tool", tool),
    ):
        if val is not None:
            out = [e for e in out if getattr(e, attr, None) == val]
    if tags:
        need = set(tags)
        out = [e for e in out if need.issubset(e.tags or [])]
    if tenant or since is not None or until is not None:
        out = [e for e in out if event_matches_filters(e, tenant=tenant, since=since, until=until)]  # type: ignore[arg-type]
    return out


def _ordered(events: list[Any], order_dir: str, offset: int, limit: int | None) -> list[Any]:
    if str(order_dir).lower() == "asc":
        events = events[::-1]
    if offset:
        events = events[offset:]
    return events if limit is None else events[:limit]


class AegHotLog:
    """AetherGraph's ``HotLog`` (``contracts/services/memory.py``): the newest events of a timeline.

    The store keeps every event, so the window is a view (the newest ``limit`` events of the
    timeline), and ``ttl_s`` does not expire anything: the store's retention does that.
    """

    def __init__(self, log: AegMemoryLog) -> None:
        self._log = log

    @property
    def log(self) -> AegMemoryLog:
        """The memory log it reads and writes (shared with the persistence)."""
        return self._log

    async def append(self, timeline_id: str, evt: Any, *, ttl_s: int, limit: int) -> None:
        log = self._log
        log._limits[timeline_id] = int(limit)
        log.write(timeline_id, evt)
        log._written.append(evt)

    async def recent(self, timeline_id: str, *, kinds: list[str] | None = None, limit: int = 50) -> list[Any]:
        window = self._log.timeline(timeline_id, window=self._log.hot_window(timeline_id))
        if kinds:
            window = [e for e in window if e.kind in kinds]
        return window[:limit][::-1]  # the newest `limit`, oldest first (a buffer's tail)

    async def query(
        self, timeline_id: str, *, limit: int = 50, offset: int = 0, order_dir: str = "desc", **filters: Any
    ) -> list[Any]:
        """The hot window of a timeline, filtered: ``filters`` are AetherGraph's (``tenant``, ``kinds``,
        ``tags``, ``since``, ``until``, ``session_id``, ``run_id``, ``agent_id``, ``client_id``,
        ``graph_id``, ``node_id``, ``topic``, ``tool``; another name is a ``TypeError``)."""
        window = self._log.timeline(timeline_id, window=self._log.hot_window(timeline_id))
        return _ordered(_filtered(window, **filters), order_dir, offset, limit)


class AegPersistence:
    """AetherGraph's memory ``Persistence`` (``contracts/services/memory.py``): every event of a
    timeline, and its JSON documents (summaries) as artifacts of kind ``aethergraph.memdoc``."""

    def __init__(self, log: AegMemoryLog, *, uri_prefix: str = "memdoc://") -> None:
        self._log = log
        self._prefix = uri_prefix

    async def append_event(self, timeline_id: str, evt: Any) -> None:
        log = self._log
        if any(w is evt for w in log._written):  # the hot log's append just wrote this very event
            return
        log.write(timeline_id, evt)

    async def query_events(
        self, timeline_id: str, *, limit: int | None = None, offset: int = 0, order_dir: str = "desc", **filters: Any
    ) -> list[Any]:
        """Every event of a timeline, filtered (``filters`` as :meth:`AegHotLog.query`'s); the scope
        ids, kinds and topic narrow the read itself."""
        get = filters.get
        where = ScopeFilter(run_id=get("run_id"), graph_id=get("graph_id"), node_id=get("node_id"))
        rows = self._log.timeline(timeline_id, window=None, kinds=get("kinds") or None, where=where, topic=get("topic"))
        return _ordered(_filtered(rows, **filters), order_dir, offset, limit)

    async def query_events_view(
        self, timeline_id: str, *, scope: Any = None, level: Any = None, **kw: Any
    ) -> list[Any]:
        from aethergraph.services.memory.facade.utils import event_matches_level

        limit, offset = kw.pop("limit", None), kw.pop("offset", 0)
        events = await self.query_events(timeline_id, **kw)
        if level and level != "scope":
            events = [e for e in events if event_matches_level(e, scope, level=level)]
        return _ordered(events, "desc", offset, limit)

    async def get_events_by_ids(
        self, timeline_id: str, event_ids: list[str], tenant: Mapping[str, Any] | None = None
    ) -> list[Any]:
        if not event_ids:
            return []
        by_id: dict[str, Any] = {}
        for e in self._log.timeline(timeline_id, window=None):  # newest first: as its default, the oldest wins
            by_id[e.event_id] = e
        found = [by_id[i] for i in event_ids if i in by_id]
        if tenant:
            found = _filtered(found, tenant=tenant)
        return found

    # -- JSON documents ----------------------------------------------------------------------
    def _doc_id(self, uri: str) -> str:
        if uri.startswith(self._prefix):
            return uri[len(self._prefix) :]
        import hashlib

        return "memdoc/" + hashlib.sha1(uri.encode("utf-8")).hexdigest()

    async def save_json(self, uri: str, obj: dict[str, Any]) -> str:
        doc_id = self._doc_id(uri)
        self._log.artifacts.save_json(obj, kind=MEMDOC_KIND, labels={MEMDOC_ID: doc_id}, name="memdoc.json")
        return doc_id if doc_id.startswith("memdoc://") else self._prefix + doc_id

    async def load_json(self, uri: str) -> dict[str, Any]:
        hits = self._log.artifacts.search(kind=MEMDOC_KIND, labels={MEMDOC_ID: self._doc_id(uri)}, limit=1)
        if not hits:
            raise FileNotFoundError(f"Memory JSON not found for URI: {uri}")
        return self._log.artifacts.load_json(hits[0].artifact_id)

    async def query_summaries(
        self,
        *,
        scope_id: str | None = None,
        timeline_id: str | None = None,
        tenant: Mapping[str, Any] | None = None,
        summary_tag: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        from aethergraph.services.memory.storage_filters import summary_matches_filters

        latest: dict[str, Any] = {}
        for a in reversed(self._log.artifacts.list(kind=MEMDOC_KIND)):  # oldest first: a re-save replaces
            latest[str(a.labels.get(MEMDOC_ID))] = a
        docs = []
        for a in latest.values():
            try:
                doc = self._log.artifacts.load_json(a.artifact_id)
            except NotFoundError:
                continue
            if not isinstance(doc, dict):
                continue
            if timeline_id is not None and doc.get("timeline_id") not in (None, timeline_id):
                continue
            if summary_matches_filters(doc, tenant=tenant, scope_id=scope_id, summary_tag=summary_tag):  # type: ignore[arg-type]
                docs.append(doc)
        docs.sort(key=lambda d: str(d.get("ts") or d.get("created_at") or ""))
        return _ordered(docs, "asc", offset, limit)


__all__ = ["MEMDOC_KIND", "AegHotLog", "AegMemoryLog", "AegPersistence"]
