"""Runs, derived from what they wrote: one summary per ``run_id`` of the artifacts and events tables.

A run has no table of its own: it exists once it has saved an artifact or recorded an event.
The summary reads the live artifact catalog and only four columns of the events table (plus every
writer's spool), so it costs a column scan, never a full decode of the events.

Example:
    >>> [r.run_id for r in summarize_runs(store)]          # doctest: +SKIP
    ['run-20260102-030405-a1b2', 'run-20260101-120000-9f3e']
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

import pyarrow as pa

from ..base.times import datetime_to_us, ts_to_datetime

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ..base.models import Artifact
    from ..storage.tables import Table


class _Listing(Protocol):
    def list(self) -> Sequence[Artifact]: ...


class Store(Protocol):
    """What run summaries read of a store: its artifacts (``list()``) and its events table."""

    artifacts: _Listing
    event_table: Table


_EVENT_COLUMNS = ["event_id", "run_id", "graph_id", "ts"]
_EVENT_SCHEMA = pa.schema(
    [("event_id", pa.string()), ("run_id", pa.string()), ("graph_id", pa.string()), ("ts", pa.int64())]
)


@dataclass(frozen=True, slots=True)
class RunSummary:
    """What one run wrote: when it started and last wrote, and how many artifacts and events."""

    run_id: str | None
    graph_id: str | None
    first: datetime
    last: datetime
    artifacts: int
    events: int


@dataclass(slots=True)
class _Tally:
    graph_id: str | None
    first: int
    last: int
    artifacts: int = 0
    events: int = 0

    def see(self, graph_id: str | None, first: int, last: int) -> None:
        self.first = min(self.first, first)
        if last >= self.last:  # the graph of a run's latest write names it
            self.graph_id, self.last = graph_id, last


def summarize_runs(store: Store) -> list[RunSummary]:
    """Every run that wrote something to ``store``, the most recently active first.

    Live artifacts count (deleted ones do not); events are counted once each, even when a row is
    briefly both in a spool and in a Parquet part.

    Example:
        >>> runs = summarize_runs(aeg_jupyter.connect("/tmp/store").store)   # doctest: +SKIP
        >>> runs[0].artifacts, runs[0].events                                 # doctest: +SKIP
        (3, 12)
    """
    acc: dict[str | None, _Tally] = {}
    for art in store.artifacts.list():
        ts = datetime_to_us(art.created_at) if art.created_at is not None else 0
        tally = acc.setdefault(art.run_id, _Tally(art.graph_id, ts, ts))
        tally.see(art.graph_id, ts, ts)
        tally.artifacts += 1
    for run_id, graph_id, first, last, count in _event_stats(store):
        tally = acc.setdefault(run_id, _Tally(graph_id, first, last))
        tally.see(graph_id, first, last)
        tally.events = count
    out = [
        RunSummary(run_id, t.graph_id, ts_to_datetime(t.first), ts_to_datetime(t.last), t.artifacts, t.events)
        for run_id, t in acc.items()
    ]
    out.sort(key=lambda r: (r.last, r.run_id or ""), reverse=True)
    return out


def _event_stats(store: Store) -> list[tuple[str | None, str | None, int, int, int]]:
    """``(run_id, graph_id, first_us, last_us, distinct events)`` per run of the events table."""
    table = store.event_table
    pieces = []
    for part in table.read_columns(_EVENT_COLUMNS):
        idx = part.column_names.index("ts")
        pieces.append(part.set_column(idx, "ts", part.column("ts").cast(pa.int64())).cast(_EVENT_SCHEMA))
    spooled = []
    for path in table.spool_paths(include_own=True):
        spooled.extend({c: r.get(c) for c in _EVENT_COLUMNS} for r in table.read_spool(path)[0])
    if spooled:
        pieces.append(pa.Table.from_pylist(spooled, schema=_EVENT_SCHEMA))
    if not pieces:
        return []
    grouped = (
        pa.concat_tables(pieces)
        .group_by("run_id", use_threads=False)
        .aggregate([("event_id", "count_distinct"), ("ts", "min"), ("ts", "max"), ("graph_id", "max")])
    )
    cols = grouped.to_pydict()
    return list(
        zip(
            cols["run_id"], cols["graph_id_max"], cols["ts_min"], cols["ts_max"], cols["event_id_count_distinct"],
            strict=True,
        )
    )  # fmt: skip


_RUN_ID = re.compile(r"^(?P<name>.+)-(?P<date>\d{8})-(?P<time>\d{6})-(?P<tag>[0-9a-f]{4})$")


def run_name(run_id: str | None) -> str:
    """What tells a run apart, for tables: the name given to ``%aeg run new NAME``, else the id's time and tag.

    Run ids are ``<name>-<YYYYMMDD>-<HHMMSS>-<tag>`` (``run`` when no name was given); ids of other
    shapes are shown whole.

    Example:
        >>> run_name("sweep-2-20261201-140305-a1b2"), run_name("run-20261201-140305-a1b2"), run_name("mine")
        ('sweep-2', '1201-140305-a1b2', 'mine')
    """
    if not run_id:
        return ""
    m = _RUN_ID.match(run_id)
    if m is None:
        return run_id
    if m["name"] != "run":
        return m["name"]
    return f"{m['date'][4:]}-{m['time']}-{m['tag']}"


def count_events(store: Store) -> int:
    """How many events the store holds, from Parquet footers and spools (no row is decoded from Parquet).

    A row caught between its spool and its Parquet part (a crash window) may count twice.

    Example:
        >>> count_events(store)          # doctest: +SKIP
        1204
    """
    table = store.event_table
    n = sum(part.num_rows for part in table.read_columns([]))
    for path in table.spool_paths(include_own=True):
        n += len(table.read_spool(path)[0])
    return n


__all__ = ["RunSummary", "count_events", "run_name", "summarize_runs"]
