"""Run subcommands: ``runs`` (every run that wrote something), ``run`` (the current run, or a new
one) and ``status`` (:class:`StoreStatus`: where the store is and how much it holds).

Example (in a notebook)::

    %aeg run new sweep-2
    %aeg status
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .parsing import CommandError, CommandParser, _limit, _no_args
from .registry import subcommand
from .session import Session

if TYPE_CHECKING:
    from ...api.context import KernelContext
    from ...storage.uploads import PendingUploads


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
    artifacts: int
    events: int
    artifact_kinds: list[str]
    event_kinds: list[str]
    writer: str
    flush_errors: tuple[str, ...] = ()  # format 2: a table whose background commit failed, and why
    uploads: PendingUploads | None = None  # an s3:// root: rows and blobs not uploaded yet, the last error

    def line(self) -> str:
        """One line: ``aeg_jupyter: store /x/.aeg | run run-... | 3 artifacts, 12 events``."""
        line = (
            f"aeg_jupyter: store {self.root} | run {self.run_id} | "
            f"{_plural(self.artifacts, 'artifact')}, {_plural(self.events, 'event')}"
        )
        up = self.uploads
        if up is not None and (up.rows or up.blobs):
            line += f" | pending upload: {_plural(up.rows, 'row')}, {_plural(up.blobs, 'blob')}"
        return line

    def __str__(self) -> str:
        return "\n".join(
            [
                f"store      {self.root}",
                f"run        {self.run_id}",
                f"graph      {self.graph_id}",
                f"node       {self.node_id}",
                f"artifacts  {self.artifacts}"
                + (f"  ({', '.join(self.artifact_kinds)})" if self.artifact_kinds else ""),
                f"events     {self.events}" + (f"  ({', '.join(self.event_kinds)})" if self.event_kinds else ""),
                f"writer     {self.writer}",
                *(f"flush      {e}" for e in self.flush_errors),
                *([f"uploads    {self.uploads}"] if self.uploads is not None else []),
            ]
        )

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(str(self))


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def store_status(context: KernelContext) -> StoreStatus:
    """The :class:`StoreStatus` of a context's store.

    Example:
        >>> print(store_status(context).line())          # doctest: +SKIP
        aeg_jupyter: store /tmp/s | run run-20260102-030405-a1b2 | 0 artifacts, 0 events
    """
    from ...core.runs import count_events

    store = context.store
    return StoreStatus(
        root=store.root, run_id=context.run_id, graph_id=context.graph_id, node_id=context.node_id,
        artifacts=len(store.artifacts), events=count_events(store), artifact_kinds=store.artifacts.kinds(),
        event_kinds=store.event_log.kinds(), writer=store.writer,
        uploads=store.pending_uploads(),
        flush_errors=tuple(
            f"{name}: {err}; the rows are kept in the spool and the commit is retried"
            for name, t in store.tables.items() if (err := getattr(t, "flush_error", None)) is not None
        ),
    )  # fmt: skip


@subcommand("status", "store path, current run / notebook / cell, counts", "status", _no_args)
def run_status(s: Session, a: argparse.Namespace) -> StoreStatus:
    """Store path, current run / notebook / cell, artifact and event counts.

    Example: ``%aeg status``
    """
    return store_status(s.context)


__all__ = ["StoreStatus", "store_status"]
