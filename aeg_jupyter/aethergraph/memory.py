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
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections import OrderedDict, deque
from collections.abc import Mapping
from typing import Any

from ..base.errors import InvalidInputError, NotFoundError
from ..base.models import Event as AegEvent
from ..base.models import Provenance, ScopeFilter
from ..core.artifacts import ArtifactStore
from ..core.events import EventLog
from . import codec

MEMDOC_KIND = "aethergraph.memdoc"  # summaries and other JSON documents of AetherGraph's memory
MEMDOC_ID = codec.PREFIX + "memdoc_id"
_CACHE_SIZE = 20_000
_ALL = 1 << 62  # "every event": our recent() reads newest first until it has this many


def _event_cls() -> type:
    from aethergraph.contracts.services.memory import Event

    return Event


class AegMemoryLog:
    """What the hot log and the persistence share: writing and reading AetherGraph events."""

    def __init__(self, events: EventLog, artifacts: ArtifactStore, *, hot_limit: int = 1000) -> None:
        self.events = events
        self.artifacts = artifacts
        self.hot_limit = int(hot_limit)
        self._cls = _event_cls()
        self._fields = frozenset(f.name for f in dataclasses.fields(self._cls))
        self._cache: OrderedDict[str, tuple[str | None, Any]] = OrderedDict()
        self._written: deque[Any] = deque(maxlen=64)  # objects the hot log wrote (by identity)
        self._limits: dict[str, int] = {}

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
        self._remember(ours.event_id, timeline_id, dataclasses.replace(evt))

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
        fetch = min(want, 4096) if window is not None else _ALL
        while True:
            evs = self.events.recent(kinds=kinds, limit=fetch, where=where, topic=topic)
            out = []
            for ev in reversed(evs):
                tl, agev = self._decode(ev)
                if agev is not None and tl == timeline_id:
                    out.append(agev)
                    if len(out) >= want:
                        return out
            if len(evs) < fetch or fetch >= _ALL:
                return out
            fetch *= 4

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
