"""Memory, synchronous core: the event and tool-result log with a per-kernel hot window.

Every event is appended to the events table (spool, then Parquet). The :class:`HotWindow`
keeps the newest events of the whole store in memory, plus the latest value of every named
output, so "what's the latest?" is answered without touching Parquet; when it cannot answer
exactly, the query falls back to a newest-first scan that stops as soon as it has enough.
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from ..base.errors import InvalidInputError
from ..base.ids import new_ts_id, observe
from ..base.jsoncodec import json_chunk_encoder, json_encoder
from ..base.models import Event, Provenance, ScopeFilter, Value
from ..base.times import DIGITS3, iso_to_us, ts_to_iso
from ..base.validate import MAX_NAME_CHARS, check_kind, check_limit, check_metrics, check_name
from ..storage.schemas import (
    Row,
    event_row,
    json_str,
    optional_json,
    row_to_event,
    values_from_text,
    values_to_text,
)
from ..storage.tables import Table
from .guard import WriteGuard
from .hotwindow import HotWindow, Key

RowFilter = Callable[[Row], bool]
_NO_ORIGIN = Provenance()


class EventLog:
    """The memory of one store, as one process sees it."""

    def __init__(self, table: Table, guard: WriteGuard, *, hot_limit: int = 1000) -> None:
        self.table = table
        self._guard = guard
        self.hot = HotWindow(hot_limit)
        self._seen_parts: set[str] = set()
        self._absent_names: set[str] = set()
        # the last origin seen by `record`, its non-null fields and their spool-line JSON
        self._origin_cache: tuple[Provenance, tuple[dict[str, str | int], str]] = (_NO_ORIGIN, ({}, ""))
        self._absent_topics: set[str] = set()
        self._last_kind: object = None  # the last kind `record` checked
        self._kind_json = ""  # its JSON string
        # the last second `record` stamped: (its first microsecond, its ISO text up to the '.')
        self._iso_second: tuple[int, str] = (-(2**62), "")
        self._fill()

    # -- filling and following ---------------------------------------------------------------
    def _fill(self) -> None:
        rows, _ = self.table.tail_others()  # spools first, then parts (see ArtifactStore._load)
        self._seen_parts = {p.path for p in self.table.list_parts()}
        need = self.hot.limit
        stopped = False
        newest: list[Key] = []  # min-heap of the newest `need` keys

        def enough(max_ts: int) -> bool:
            nonlocal stopped
            if len(newest) >= need and newest[0][0] > max_ts:
                stopped = True
            return stopped

        def push(batch: Iterable[Row]) -> None:
            for r in batch:
                k = (r["ts"], r["event_id"])
                if len(newest) < need:
                    heapq.heappush(newest, k)
                elif k > newest[0]:
                    heapq.heapreplace(newest, k)

        push(rows)
        newest_rows = getattr(self.table, "newest_rows", None)  # format 2: DeltaSpoolTable.newest_rows
        if newest_rows is not None:  # the newest `need` rows from the Delta statistics, only those decoded
            batch, whole = newest_rows(need, whole_below=2 * need)
            stopped = not whole
            rows.extend(batch)
            push(batch)
        else:
            for batch in self.table.iter_newest(stop=enough):
                rows.extend(batch)
                push(batch)
        unique = {r["event_id"]: r for r in rows}
        ordered = sorted(unique.values(), key=lambda r: (r["ts"], r["event_id"]))
        if ordered:  # what other writers stamped: our next stamps come after it (base/ids.observe)
            observe(ordered[-1]["ts"])
        complete = not stopped and len(ordered) <= 2 * need
        for r in ordered if complete else ordered[-need:]:
            self.hot.add(r)
        self.hot.complete = complete

    def catch_up(self) -> None:
        """Take in what other processes recorded since the last call (new spool bytes only)."""
        table = self.table
        rows, rotated = table.tail_others()
        if rotated:
            # Some writer flushed its spool: rows it wrote after our last tail are now in a part.
            horizon = self.hot.oldest[0] if not self.hot.complete else 0
            for part in table.list_parts():
                if part.path in self._seen_parts:
                    continue
                self._seen_parts.add(part.path)
                if part.name.max_ts < horizon:
                    continue
                rows.extend(table.read_part(part) or [])
        if rows:
            rows.sort(key=lambda r: (r["ts"], r["event_id"]))
            observe(rows[-1]["ts"])  # our next stamps come after what we have now seen
            with self._guard.lock:
                for r in rows:
                    self.hot.add(r)

    # -- recording ---------------------------------------------------------------------------
    def record(
        self,
        kind: str,
        data: Any = None,
        topic: str | None = None,
        tags: Sequence[str] | None = None,
        severity: int = 2,
        stage: str | None = None,
        metrics: Mapping[str, Any] | None = None,
        inputs: Sequence[Value | Mapping[str, Any]] | None = None,
        outputs: Sequence[Value | Mapping[str, Any]] | None = None,
        origin: Provenance = _NO_ORIGIN,
    ) -> Event:
        """Append one event; ``data`` is stored as JSON text (a ``str`` as it is).

        Every parameter after ``data`` is meant by name (``topic=``, ``tags=``, ...); they also take
        positions, in this order, so that the async facade's call and this one are a single frame each
        (the ``record`` budget).

        Example:
            >>> log.record("train_log", {"epoch": 1, "loss": 0.25}).data   # doctest: +SKIP
            {'epoch': 1, 'loss': 0.25}
        """
        kind_json = self._kind_json
        if kind is not self._last_kind:  # a loop records one kind: checked once (str is immutable)
            check_kind(kind)
            kind_json = self._kind_json = json_str(kind)
            self._last_kind = kind
        if data is None or isinstance(data, str):
            text = data
        else:  # _dumps(data, "data") inlined (one frame less: the `record` budget)
            try:
                text = _join(_encode_chunks(data, 0))
            except (TypeError, ValueError, RecursionError) as exc:
                raise _not_json(exc, "data") from None
        # hot path (`record` budget, docs/format2.md "record"): `x is None` fast paths throughout
        if (
            topic is None and tags is None and stage is None and metrics is None and inputs is None
            and outputs is None and severity.__class__ is int and text is not None
        ):  # fmt: skip
            # the common call, `record(kind, data)`: the row and its line built here (event_row's work,
            # without its call), the data's JSON escaped once into the line (one C call)
            ts, eid = new_ts_id()
            cached = self._origin_cache
            if cached[0] is not origin:
                cached = self._cache_origin(origin)
            row: Row = cached[1][0].copy()
            row["event_id"], row["ts"], row["kind"], row["severity"], row["version"], row["text"] = (
                eid, ts, kind, severity, 1, text,
            )  # fmt: skip
            line = (
                f'{{"event_id":"{eid}","ts":{ts},"kind":{kind_json},"severity":{severity},"version":1'
                f'{cached[1][1]},"text":{json_str(text)}}}\n'
            )
            tag_list: list[str] = []
            metrics_ = None
            ins: list[Value] = []
            outs: list[Value] = []
        else:
            if topic is not None and not isinstance(topic, str):
                raise InvalidInputError(f"topic must be a string, got {type(topic).__name__}")
            tag_list = _check_tags(tags) if tags is not None else []
            if severity.__class__ is not int:
                if isinstance(severity, bool) or not isinstance(severity, int):
                    raise InvalidInputError(f"severity must be an int (0 debug .. 4 critical), got {severity!r}")
                severity = int(severity)
            if stage is not None and not isinstance(stage, str):
                raise InvalidInputError(f"stage must be a string, got {type(stage).__name__}")
            metrics_ = (check_metrics(metrics) or None) if metrics is not None else None
            ins = _check_values(inputs, "inputs") if inputs is not None else []
            outs = _check_values(outputs, "outputs") if outputs is not None else []
            ts, eid = new_ts_id()
            cached = self._origin_cache  # (one tuple, swapped whole: safe with threads)
            if cached[0] is not origin:  # the facade passes the same Provenance until a cell or run changes
                cached = self._cache_origin(origin)
            row, line = event_row(
                eid, ts, kind, severity, cached[1], text, topic,
                values_to_text(ins, _dumps_values) if ins else None,
                values_to_text(outs, _dumps_values) if outs else None,
                _encode_ascii(metrics_) if metrics_ else None,
                _encode_ascii(tag_list) if tag_list else None,
                stage,
            )  # fmt: skip
        # ts_to_iso inlined (the `record` budget): the second's text cached with its first microsecond,
        # the six digits after it two lookups (no divmod, no format spec)
        iso = self._iso_second
        us = ts - iso[0]
        if not 0 <= us < 1_000_000:
            base = ts - ts % 1_000_000
            iso = self._iso_second = (base, ts_to_iso(base)[:20])
            us = ts - base
        ev = Event(
            eid, f"{iso[1]}{DIGITS3[us // 1000]}{DIGITS3[us % 1000]}+00:00", kind, topic, ins or None, outs or None,
            metrics_, text, 1,
            origin.run_id, origin.graph_id, origin.node_id, tag_list or None, severity, stage,
            origin.source_path, origin.cell_id, origin.execution_count, origin.source_hash,
        )  # fmt: skip
        guard = self._guard
        hot = self.hot
        lock = guard.lock
        lock.acquire()  # (not `with`: ~65 ns less, the `record` budget; the finally releases it)
        try:
            if guard.closed or guard.read_only is not None:
                guard.check_open()  # raises, saying why
            self.table.append(row, line)
            items = hot.items
            if items and ts > items[-1]["ts"] and not outs and len(items) < 2 * hot.limit:
                # HotWindow.add's common case inlined: our stamp is newer than all held (base/ids.observe);
                # the window keeps the row, which the gc does not track (core/hotwindow.py), not `ev`
                items.append(row)
            else:
                hot.add(row, outs)
        finally:
            lock.release()
        if guard._listeners:  # (notify's own test, without its call: the `record` budget)
            guard.notify("events")
        return ev

    def _cache_origin(self, origin: Provenance) -> tuple[Provenance, tuple[dict[str, str | int], str]]:
        """``origin``'s non-null fields and their spool-line JSON, cached until the next origin."""
        fields = {
            "run_id": origin.run_id, "graph_id": origin.graph_id, "node_id": origin.node_id,
            "source_path": origin.source_path, "cell_id": origin.cell_id,
            "execution_count": origin.execution_count, "source_hash": origin.source_hash,
        }  # fmt: skip
        cached = (origin, ({k: v for k, v in fields.items() if v is not None}, optional_json(fields)))
        self._origin_cache = cached
        return cached

    def record_tool_result(
        self,
        tool: str,
        *,
        inputs: Sequence[Value | Mapping[str, Any]] | None = None,
        outputs: Sequence[Value | Mapping[str, Any]] | None = None,
        tags: Sequence[str] | None = None,
        metrics: Mapping[str, Any] | None = None,
        message: str | None = None,
        severity: int = 2,
        origin: Provenance = _NO_ORIGIN,
    ) -> Event:
        """Record what a tool (a step, a function) took and produced: ``kind="tool_result"``, ``topic=tool``."""
        check_tool(tool, message)
        return self.record("tool_result", message, tool, tags, severity, None, metrics, inputs, outputs, origin)

    # -- recalling ---------------------------------------------------------------------------
    def recent(
        self,
        *,
        kinds: Iterable[str] | str | None = None,
        limit: int = 50,
        where: ScopeFilter = ScopeFilter(),
        topic: str | None = None,
    ) -> list[Event]:
        """The newest ``limit`` events matching, in chronological order (the most recent last)."""
        kind_set = _kind_set(kinds)
        limit_ = check_limit(limit)
        assert limit_ is not None
        if limit_ == 0:
            return []
        self.catch_up()
        hot = self.hot
        plain = not where and topic is None  # no row filter but the kinds
        match = _row_filter(kind_set, where, topic)
        found: list[Event] = []
        for r in reversed(hot.items):
            if (kind_set is None or r["kind"] in kind_set) and (plain or match(r)):
                found.append(hot.event(r))
                if len(found) >= limit_:
                    break
        if len(found) < limit_ and not hot.complete:
            # (plain: the table can pick the newest rows itself)
            found.extend(self._scan(kind_set, match, limit_ - len(found), before=hot.oldest, plain=plain))
        found.reverse()
        return found

    def _scan(
        self, kinds: set[str] | None, match: RowFilter, limit: int, *, before: Key, plain: bool = False
    ) -> list[Event]:
        """Newest-first scan of spools and Parquet for events older than ``before`` (``plain``: ``match``
        filters nothing but ``kinds``, so a format-2 table reads only the newest rows of its files)."""
        heap: list[tuple[Key, Row]] = []  # min-heap of the best `limit` rows, each id once
        held: set[str] = set()  # the ids in `heap`

        def take(rows: Iterable[Row]) -> None:
            # NOTE: a row can be met twice (in a spool and in the part it was just flushed to, or
            # in a part and the merged part replacing it): held once, or it would take two of the
            # `limit` places (a short answer) and tie with itself in the heap (comparing dicts)
            for r in rows:
                k = (r["ts"], r["event_id"])
                if k >= before or k[1] in held or (kinds is not None and r["kind"] not in kinds) or not match(r):
                    continue
                if len(heap) < limit:
                    heapq.heappush(heap, (k, r))
                elif k > heap[0][0]:
                    held.discard(heapq.heapreplace(heap, (k, r))[0][1])
                else:
                    continue
                held.add(k[1])

        take(self.table.pending_rows)
        for path in self.table.spool_paths():
            take(self.table.read_spool(path)[0])

        def enough(max_ts: int) -> bool:
            return len(heap) >= limit and heap[0][0][0] > max_ts

        newest_rows = getattr(self.table, "newest_rows", None)
        if plain and newest_rows is not None:
            take(newest_rows(limit, kinds, before=before)[0])
        else:
            for batch in self.table.iter_newest(kinds, stop=enough):
                take(batch)
        return [row_to_event(r) for _k, r in sorted(heap, key=lambda t: t[0], reverse=True)]

    def recent_data(
        self, *, kinds: Iterable[str] | str | None = None, limit: int = 50, where: ScopeFilter = ScopeFilter()
    ) -> list[Any]:
        """The decoded ``data`` of :meth:`recent`, same order."""
        return [ev.data for ev in self.recent(kinds=kinds, limit=limit, where=where)]

    def recent_tool_results(self, *, tool: str, limit: int = 10, where: ScopeFilter = ScopeFilter()) -> list[Event]:
        """The newest results of one tool, chronological."""
        if not isinstance(tool, str) or not tool:
            raise InvalidInputError(f"tool must be a tool name such as 'train.step', got {tool!r}")
        return self.recent(kinds=["tool_result"], limit=limit, where=where, topic=tool)

    def last_by_name(self, name: str) -> Any:
        """The latest output value called ``name`` across tool results (``None`` if there is none)."""
        check_name(name, "output")
        self.catch_up()
        hit = self.hot.last_values.get(name)
        if hit is not None:
            return hit[1]
        if self.hot.complete or name in self._absent_names:
            return None
        # The name as `values_to_text` writes it (UTF-8, not \u escapes), and as an ASCII-escaped
        # writer would have: a cheap substring test before decoding a row's outputs.
        needles = {json_str(name), json.dumps(name)}

        def has(r: Row) -> bool:
            out = r.get("outputs")
            return bool(out) and any(n in out for n in needles) and any(v.name == name for v in values_from_text(out))

        found = self._scan(None, has, 1, before=self.hot.oldest)
        if not found:
            self._absent_names.add(name)
            return None
        ev = found[0]
        assert ev.outputs is not None
        self.hot.note_outputs(_key_of(ev), ev.topic, ev.outputs)
        return self.hot.last_values[name][1]

    def last_outputs_by_topic(self, topic: str) -> dict[str, Any]:
        """``{name: value}`` of the latest result of tool ``topic`` (empty if none)."""
        if not isinstance(topic, str) or not topic:
            raise InvalidInputError(f"topic must be a tool name such as 'train.step', got {topic!r}")
        self.catch_up()
        hit = self.hot.last_outputs.get(topic)
        if hit is not None:
            return dict(hit[1])
        if self.hot.complete or topic in self._absent_topics:
            return {}
        found = self._scan(
            None, lambda r: r.get("topic") == topic and bool(r.get("outputs")), 1, before=self.hot.oldest
        )
        if not found:
            self._absent_topics.add(topic)
            return {}
        ev = found[0]
        assert ev.outputs is not None
        self.hot.note_outputs(_key_of(ev), ev.topic, ev.outputs)
        return dict(self.hot.last_outputs[topic][1])

    def kinds(self) -> list[str]:
        """Event kinds present in the store."""
        self.catch_up()
        kinds = set(self.table.partition_kinds())
        kinds.update(r["kind"] for r in self.hot.items)
        return sorted(kinds)


def _key_of(ev: Event) -> Key:
    return (iso_to_us(ev.ts), ev.event_id)


def _kind_set(kinds: Iterable[str] | str | None) -> set[str] | None:
    if kinds is None:
        return None
    if isinstance(kinds, str):
        kinds = [kinds]
    try:
        out = set(kinds)
    except TypeError:
        raise InvalidInputError(f"kinds must be a list of strings such as ['train_log'], got {kinds!r}") from None
    for k in out:
        check_kind(k)
    return out


def _row_filter(kinds: set[str] | None, where: ScopeFilter, topic: str | None) -> RowFilter:
    def match(r: Row) -> bool:
        return where.matches_row(r) and (topic is None or r.get("topic") == topic)

    return match


_encode_ascii = json_encoder(ascii=True)  # = json.dumps(obj)
# = json.dumps(obj, ensure_ascii=False) as chunks: `_dumps` joins them itself (one frame less a record)
_encode_chunks = json_chunk_encoder()
_join = "".join


def _dumps(obj: Any, what: str) -> str:
    try:
        return _join(_encode_chunks(obj, 0))
    except (TypeError, ValueError, RecursionError) as exc:
        raise _not_json(exc, what) from None


def _not_json(exc: Exception, what: str) -> InvalidInputError:
    """The error for a value json's encoder refused (``exc``), saying what to do."""
    if isinstance(exc, TypeError):
        return InvalidInputError(f"{what} cannot be stored as JSON: {exc}; convert it to dict/list/str/number first")
    return InvalidInputError(f"{what} cannot be stored as JSON ({type(exc).__name__}: nested too deeply or circular)")


def check_tool(tool: object, message: object) -> None:
    """A tool name is a non-empty string; a message is a string or None."""
    if not isinstance(tool, str) or not tool:
        raise InvalidInputError(f"tool must be a non-empty string such as 'train.step', got {tool!r}")
    if message is not None and not isinstance(message, str):
        raise InvalidInputError(f"message must be a string, got {type(message).__name__}")


def _check_tags(tags: Sequence[str] | None) -> list[str]:
    if tags is None:
        return []
    if isinstance(tags, str) or not all(isinstance(t, str) for t in tags):
        raise InvalidInputError(f"tags must be a list of strings such as ['eval'], got {tags!r}")
    return list(tags)


def _check_values(values: Sequence[Value | Mapping[str, Any]] | None, what: str) -> list[Value]:
    if values is None:
        return []
    if values.__class__ is not list and isinstance(values, str | bytes | Mapping):
        raise InvalidInputError(
            f"{what} must be a list of {{'name', 'kind', 'value'}} dicts or Values, got {type(values).__name__}"
        )
    out = []
    for i, v in enumerate(values):
        if v.__class__ is dict and len(v) == 3 and "name" in v and "kind" in v and "value" in v:
            val = Value(v["name"], v["kind"], v["value"])  # the common case first
        elif isinstance(v, Value):
            val = v
        elif isinstance(v, Mapping):
            if "name" not in v:
                raise InvalidInputError(
                    f"{what}[{i}] has no 'name'; write it like {{'name': 'val_acc', 'kind': 'number', 'value': 0.9}}"
                )
            val = Value(v["name"], v.get("kind", "json"), v.get("value"))
        else:
            raise InvalidInputError(f"{what}[{i}] must be a dict or Value, got {type(v).__name__}")
        name = val.name
        if name.__class__ is not str or not name or len(name) > MAX_NAME_CHARS or "\x00" in name:
            check_name(name, "output" if what == "outputs" else "input")
        if val.kind.__class__ is not str and not isinstance(val.kind, str):
            raise InvalidInputError(f"{what}[{i}] kind must be a string such as 'number' or 'uri'")
        out.append(val)
    return out


def _dumps_values(value: Any) -> str:
    return _dumps(value, "a value")
