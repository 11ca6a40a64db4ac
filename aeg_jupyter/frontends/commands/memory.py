"""Event-memory subcommands: ``recent``, ``log`` and the cell magic ``%%aeg track``.

Example (in a notebook)::

    %aeg log train_log epoch=1 loss=0.25
    df = %aeg recent train_log -n 5
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from ...base.hashing import hash_bytes
from .parsing import CommandError, CommandParser, _limit, _scope, metric_pair, parse_value
from .registry import subcommand
from .session import Session


def _recent_args(p: CommandParser) -> None:
    p.add_argument("kinds", nargs="*", metavar="KIND", help="event kinds (default: every kind)")
    _limit(p)
    p.add_argument("--tool", help="only the results of this tool (record_tool_result)")
    _scope(p)
    p.add_argument(
        "--all-columns",
        action="store_true",
        help="every column (ids, UTC times, the JSON text) instead of the readable ones",
    )


@subcommand("recent", "the newest events as a DataFrame, newest first", "recent train_log -n 5", _recent_args)
def run_recent(s: Session, a: argparse.Namespace) -> Any:
    """The newest events as a DataFrame, newest first.

    Example: ``%aeg recent train_log -n 5``
    """
    from ...core.frames import events_frame, events_view

    where, limit = s.where(a.scope), s.limit(a.limit)
    if a.tool is not None:
        if a.kinds:
            raise CommandError(
                f"{s.typed('recent')}: --tool picks tool results; drop the kinds, e.g. `{s.typed('recent')} --tool {a.tool}`"
            )
        events = s.event_log.recent_tool_results(tool=a.tool, limit=limit, where=where)
    else:
        events = s.event_log.recent(kinds=a.kinds or None, limit=limit, where=where)
    if a.all_columns or not s.in_kernel:  # the CLI picks its own columns from the full frame
        return events_frame(events)
    return events_view(events)


def _log_args(p: CommandParser) -> None:
    p.add_argument("kind", metavar="KIND", help="the event kind, e.g. train_log")
    p.add_argument("pairs", nargs="*", metavar="KEY=VALUE", help="data fields; values are JSON where they parse")


@subcommand(
    "log", "record an event: KIND key=value ... (values parsed as JSON)", "log train_log epoch=1 loss=0.25", _log_args,
    details="Every field is KEY=VALUE (a message too: text=\"training finished\"); KIND alone records an event "
    "without data.",
)  # fmt: skip
def run_log(s: Session, a: argparse.Namespace) -> Any:
    """Record an event whose data is ``{KEY: VALUE, ...}`` (``None`` without fields).

    One rule: every field is ``KEY=VALUE``; anything else is refused, nothing is recorded.

    Example: ``%aeg log train_log epoch=1 loss=0.25``
    """
    data: dict[str, Any] | None = None
    if a.pairs:
        data = {}
        for p in a.pairs:
            key, sep, raw = p.partition("=")
            if not sep or not key:
                raise CommandError(
                    f"{s.typed('log')}: {p!r} is not KEY=VALUE; every field is key=value, e.g. "
                    f'`{s.typed("log")} {a.kind} epoch=1 loss=0.25` (a message: `{s.typed("log")} {a.kind} text="..."`)'
                )
            if key in data:
                raise CommandError(
                    f"{s.typed('log')}: {key!r} is given twice; give each key once, e.g. "
                    f"`{s.typed('log')} {a.kind} {key}={raw}`"
                )
            data[key] = parse_value(raw)
    return s.event_log.record(a.kind, data, origin=s.context.origin)


def _track_args(p: CommandParser) -> None:
    p.add_argument("kind", metavar="KIND", help="the event kind to record, e.g. train_step")
    p.add_argument(
        "--metric", action="append", type=metric_pair, default=[], metavar="M=V", help="a metric (repeatable)"
    )


@subcommand(
    "track", "(cell magic) run the cell and record its duration, outcome and source hash",
    "%%aeg track train_step --metric lr=0.001", _track_args, cli=False,
)  # fmt: skip
def run_track(s: Session, a: argparse.Namespace) -> Any:
    """Run the cell; record an event with its duration, success or exception, and source hash.

    Example: ``%%aeg track train_step --metric lr=0.001``
    """
    if s.cell is None or s.execute is None:
        raise CommandError(f"%aeg track: `track` times a whole cell; make `%%aeg track {a.kind}` the cell's first line")
    cell = s.cell
    metrics = dict(a.metric)
    error: BaseException | None = None
    t0 = time.perf_counter()
    try:
        return s.execute(cell)
    except BaseException as exc:
        s.cell_raised = True
        error = exc
        raise
    finally:
        took = time.perf_counter() - t0
        data = {
            "ok": error is None,
            "duration_s": round(took, 6),
            "error": None if error is None else f"{type(error).__name__}: {error}"[:1000],
            "source_blake3": hash_bytes(cell.encode("utf-8")),
            "lines": len(cell.splitlines()),
        }
        s.event_log.record(
            a.kind, data, metrics={**metrics, "duration_s": took}, stage="cell", severity=2 if error is None else 3,
            origin=s.context.origin,
        )  # fmt: skip


__all__: list[str] = []
