"""Run subcommands: ``runs`` (every run that wrote something), ``run`` (the current run, or a new
one) and ``status`` (:class:`StoreStatus`: where the store is and how much it holds).

Example (in a notebook)::

    %aeg run new sweep-2
    %aeg status
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from ...base.errors import CorruptionError
from .parsing import CommandError, CommandParser, _limit, _no_args
from .registry import subcommand
from .session import Session

if TYPE_CHECKING:
    from ...api.context import KernelContext
    from ...storage.uploads import PendingUploads

T = TypeVar("T")


@subcommand("runs", "every run that wrote something, most recent first", "runs -n 5", _limit)
def run_runs(s: Session, a: argparse.Namespace) -> Any:
    """Every run that wrote something, most recently active first, as a DataFrame.

    Example: ``%aeg runs -n 5``
    """
    from ...core.frames import runs_frame
    from ...core.runs import summarize_runs

    return runs_frame(summarize_runs(s.context.store)[: s.limit(a.limit)])


def _run_args(p: CommandParser) -> None:
    p.add_argument("action", nargs="?", choices=["new"], help="`new` starts a new run")
    p.add_argument("name", nargs="?", metavar="NAME", help="the new run's name (its id starts with it)")


@subcommand("run", "the current run id; `run new NAME` starts a new run", "run new sweep-2", _run_args, cli=False)
def run_run(s: Session, a: argparse.Namespace) -> str:
    """The current run id, or with ``new NAME`` a new run whose id is returned.

    Example: ``%aeg run new sweep-2``
    """
    if a.action is None:
        if a.name is not None:
            raise CommandError(f"{s.typed('run')}: to start a run type `{s.typed('run')} new {a.name}`")
        return s.context.run_id
    return s.context.new_run(a.name)


@dataclass(frozen=True, slots=True)
class StoreStatus:
    """Where the store is, which run / notebook / cell writes now, and how much it holds.

    Example:
        >>> print(store_status(context))           # doctest: +SKIP
        store      /tmp/s
        run        run-20260102-030405-a1b2
        ...
    """

    root: str
    run_id: str
    graph_id: str
    node_id: str
    artifacts: int | None  # None: unknown, a data file of the table cannot be read (see ``damaged``)
    events: int | None
    artifact_kinds: list[str]
    event_kinds: list[str]
    writer: str
    flush_errors: tuple[str, ...] = ()  # format 2: a table whose background commit failed, and why
    uploads: PendingUploads | None = None  # an s3:// root: rows and blobs not uploaded yet, the last error
    #: table -> its data files (or format-1 parts, spools) that are missing or cannot be read (format 2:
    #: ``DamagedDataFile``); ``%aeg status`` looks at every file's footer, the load line only at what reads met
    damaged: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def line(self) -> str:
        """One line: ``aeg_jupyter: store /x/.aeg | run run-... | 3 artifacts, 12 events``."""
        line = (
            f"aeg_jupyter: store {self.root} | run {self.run_id} | "
            f"{_plural(self.artifacts, 'artifact')}, {_plural(self.events, 'event')}"
        )
        up = self.uploads
        if up is not None and (up.rows or up.blobs):
            line += f" | pending upload: {_plural(up.rows, 'row')}, {_plural(up.blobs, 'blob')}"
        if self.damaged:
            line += f" | DAMAGED: {', '.join(t for t, _ in self.damaged)} (run `aeg verify --repair`)"
        return line

    def damage_lines(self) -> list[str]:
        """One line per damaged table: how many files, which, and what to do next."""
        out = []
        for table, files in self.damaged:
            shown = ", ".join(files[:3]) + (f" and {len(files) - 3} more" if len(files) > 3 else "")
            out.append(
                f"{table}: {_plural(len(files), 'data file')} missing or unreadable ({shown}); their rows cannot "
                "be read and queries that need them fail. Run `aeg verify` to see them, then `aeg verify --repair` "
                "(verify(repair=True)) to take them out of the table (a copy is kept in corrupt/, the rows lost "
                "are reported)"
            )
        return out

    def __str__(self) -> str:
        return "\n".join(
            [
                f"store      {self.root}",
                f"run        {self.run_id}",
                f"graph      {self.graph_id}",
                f"node       {self.node_id}",
                f"artifacts  {_count(self.artifacts)}"
                + (f"  ({', '.join(self.artifact_kinds)})" if self.artifact_kinds else ""),
                f"events     {_count(self.events)}"
                + (f"  ({', '.join(self.event_kinds)})" if self.event_kinds else ""),
                f"writer     {self.writer}",
                *(f"flush      {e}" for e in self.flush_errors),
                *(f"DAMAGED    {e}" for e in self.damage_lines()),
                *([f"uploads    {self.uploads}"] if self.uploads is not None else []),
            ]
        )

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(str(self))


def _count(n: int | None) -> str:
    return "? (a data file cannot be read)" if n is None else str(n)


def _plural(n: int | None, word: str) -> str:
    if n is None:
        return f"? {word}s (damaged)"
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def store_status(context: KernelContext, *, check_files: bool = False) -> StoreStatus:
    """The :class:`StoreStatus` of a context's store.

    ``check_files``: look at every data file of every table (missing, or its footer unreadable), as
    ``%aeg status`` does; without it only the damage this process's reads met is reported (the line
    printed at ``%load_ext`` reads nothing more).

    Example:
        >>> print(store_status(context).line())          # doctest: +SKIP
        aeg_jupyter: store /tmp/s | run run-20260102-030405-a1b2 | 0 artifacts, 0 events
    """
    from ...core.runs import count_events

    store = context.store
    # a damaged data file (CorruptionError) makes a count unknown (None), not the status (or %load_ext) fail
    artifacts = _unless_damaged(lambda: len(store.artifacts))
    artifact_kinds = _unless_damaged(store.artifacts.kinds)
    return StoreStatus(
        root=store.root, run_id=context.run_id, graph_id=context.graph_id, node_id=context.node_id,
        artifacts=artifacts, events=_unless_damaged(lambda: count_events(store)),
        artifact_kinds=artifact_kinds or [], event_kinds=_unless_damaged(store.event_log.kinds) or [],
        writer=store.writer,
        uploads=store.pending_uploads(),
        flush_errors=tuple(
            f"{name}: {store.scrub(str(err))}; the rows are kept in the spool and the commit is retried"
            for name, t in store.tables.items() if (err := getattr(t, "flush_error", None)) is not None
        ),
        damaged=_damaged_tables(store, check_files=check_files),
    )  # fmt: skip


def _unless_damaged(count: Callable[[], T]) -> T | None:
    try:
        return count()
    except CorruptionError:  # the file is noted as damaged by the read: reported in StoreStatus.damaged
        return None


def _damaged_tables(store: Any, *, check_files: bool) -> tuple[tuple[str, tuple[str, ...]], ...]:
    out = []
    for name, t in store.tables.items():
        found = set(t.damaged_files(thorough=False))  # what reads of this process met (cheap)
        if check_files:
            found.update(t.unreadable_parts())  # every data file: there, and its footer reads
        if found:
            out.append((name, tuple(sorted(found))))
    return tuple(out)


@subcommand("status", "store path, current run / notebook / cell, counts", "status", _no_args)
def run_status(s: Session, a: argparse.Namespace) -> StoreStatus:
    """Store path, current run / notebook / cell, artifact and event counts.

    Example: ``%aeg status``
    """
    return store_status(s.context, check_files=True)


__all__ = ["StoreStatus", "store_status"]
