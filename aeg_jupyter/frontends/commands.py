"""The ``%aeg`` subcommands, shared by the magics and the ``aeg`` console script.

Each subcommand is a small function behind the dispatch table :data:`COMMANDS`, with its own
argparse parser (so each has ``-h``). Front ends differ only in how they report mistakes: the
parser class's ``error()`` raises :class:`CommandError` here, ``UsageError`` in the magics, and
the CLI prints the message and exits with status 2. Functions return values (DataFrames,
:class:`~aeg_jupyter.base.models.Artifact`, reports); they never only print, except ``help``.

This module imports no IPython: it runs the same way inside and outside a kernel.

Example:
    >>> session = Session(aeg_jupyter.connect("/tmp/store"), prefix="aeg")    # doctest: +SKIP
    >>> run_command(session, ["recent", "train_log", "-n", "3"])               # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import difflib
import json
import math
import os
import shlex
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from ..base.errors import PickleNotAllowedError
from ..base.hashing import hash_bytes
from ..base.models import SCOPES, Artifact
from ..base.validate import parse_duration
from ..core.serialize import SAVABLE, decode, encode, is_pickle

if TYPE_CHECKING:
    from ..api.context import KernelContext
    from ..base.models import ScopeFilter
    from ..core.artifacts import ArtifactStore
    from ..core.events import EventLog


class CommandError(Exception):
    """A subcommand was typed wrong; the one-line message says what to type instead."""


class HelpShown(Exception):
    """``-h`` printed a subcommand's help; there is nothing else to do."""


class CommandParser(argparse.ArgumentParser):
    """An argparse parser whose mistakes raise :class:`CommandError` instead of exiting.

    Subclasses change only :meth:`error` (the magics raise IPython's ``UsageError``).

    Example:
        >>> p = CommandParser(prog="aeg best", example="aeg best checkpoint --metric val_acc")
        >>> p.explain("the following arguments are required: KIND")
        'aeg best: the following arguments are required: KIND; e.g. `aeg best checkpoint --metric val_acc` (`aeg best -h` lists the options)'
    """

    def __init__(self, *args: Any, example: str = "", **kwargs: Any) -> None:
        kwargs.setdefault("add_help", True)
        super().__init__(*args, **kwargs)
        self.example = example

    def explain(self, message: str) -> str:
        """One line: what went wrong, an example of what to type instead, where the options are."""
        hint = f"; e.g. `{self.example}`" if self.example else ""
        return f"{self.prog}: {message}{hint} (`{self.prog} -h` lists the options)"

    def error(self, message: str) -> NoReturn:
        raise CommandError(self.explain(message))

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        # Only the help action gets here (error() never calls exit).
        if message:
            print(message, end="")
        raise HelpShown()


@dataclass
class Session:
    """What a subcommand runs against: the kernel context and how the front end is set up.

    Args:
        context: the store, run, graph and node to read and write.
        prefix: how commands are typed here (``"%aeg"`` in a notebook, ``"aeg"`` in a shell);
            used in help and error messages.
        user_ns: the notebook's namespace (``save VARIABLE``); ``None`` outside a kernel.
        display_limit: rows returned when ``-n`` is not given.
        default_scope: scope of queries when ``--scope`` is not given.
        parser_class: the parser class whose ``error()`` reports mistakes for this front end.
        cell: the cell body for ``%%aeg track`` (``None`` for a line).
        execute: runs a cell body and returns its value (given by the magics).
    """

    context: KernelContext
    prefix: str = "%aeg"
    user_ns: dict[str, Any] | None = None
    display_limit: int = 20
    default_scope: str = "all"
    parser_class: type[CommandParser] = CommandParser
    cell: str | None = None
    execute: Callable[[str], Any] | None = None
    cell_raised: bool = False
    _parsers: dict[str, CommandParser] = field(default_factory=dict, repr=False)

    @property
    def artifacts(self) -> ArtifactStore:
        """The store's artifact index (sync core)."""
        return self.context.store.artifacts

    @property
    def event_log(self) -> EventLog:
        """The store's event log (sync core)."""
        return self.context.store.event_log

    @property
    def in_kernel(self) -> bool:
        return self.user_ns is not None

    def where(self, scope: str | None) -> ScopeFilter:
        """The filter for ``scope`` (``None``: the default scope) relative to the context."""
        return self.context.scope(scope or self.default_scope)

    def limit(self, n: int | None) -> int:
        """``-n`` if given, else the display limit."""
        return self.display_limit if n is None else n

    def typed(self, cmd: str) -> str:
        """How ``cmd`` is typed in this front end, e.g. ``%aeg best``."""
        if cmd == "track":
            return "%%aeg track"
        return f"{self.prefix} {cmd}"


@dataclass(frozen=True, slots=True)
class Command:
    """One subcommand: its name, one-line summary, an example, its arguments and its function."""

    name: str
    summary: str
    example: str
    add_arguments: Callable[[CommandParser], None]
    run: Callable[[Session, argparse.Namespace], Any]
    cli: bool = True
    aliases: tuple[str, ...] = ()
    takes_id: bool = False
    details: str = ""


# -- argument types ------------------------------------------------------------------------------
def _reject_constant(name: str) -> NoReturn:
    raise ValueError(name)


def parse_value(raw: str) -> Any:
    """A typed value: JSON where it parses (``3``, ``0.5``, ``true``, ``[1, 2]``, ``"x"``), else the text.

    Example:
        >>> parse_value("0.25"), parse_value("A"), parse_value("[1, 2]")
        (0.25, 'A', [1, 2])
    """
    try:
        return json.loads(raw, parse_constant=_reject_constant)
    except ValueError:
        return raw


def label_pair(text: str) -> tuple[str, Any]:
    """``exp=A`` -> ``("exp", "A")``; numbers and booleans are typed (``seed=3`` -> 3)."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE such as exp=A, got {text!r}")
    value = parse_value(raw)
    if not isinstance(value, str | int | float | bool):
        value = raw
    return key, value


def metric_pair(text: str) -> tuple[str, float]:
    """``val_acc=0.91`` -> ``("val_acc", 0.91)``."""
    key, sep, raw = text.partition("=")
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not sep or not key or not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected METRIC=NUMBER such as val_acc=0.91, got {text!r}")
    return key, value


def positive_int(text: str) -> int:
    """A row count: an integer >= 1."""
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of rows >= 1, got {text!r}")
    return n


def non_negative_int(text: str) -> int:
    """An integer >= 0."""
    try:
        n = int(text)
    except ValueError:
        n = -1
    if n < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}")
    return n


def duration(text: str) -> str:
    """A duration such as ``30m``, ``12h``, ``7d`` or ``2w`` (checked, returned as typed)."""
    try:
        parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _scope(p: CommandParser) -> None:
    p.add_argument(
        "--scope", choices=SCOPES, help="run (this kernel session), graph (this notebook), node (this cell), all"
    )


def _limit(p: CommandParser) -> None:
    p.add_argument("-n", "--limit", type=positive_int, metavar="N", help="rows to return (default: display_limit)")


def _labels(p: CommandParser, what: str) -> None:
    p.add_argument("--label", action="append", type=label_pair, default=[], metavar="K=V", help=what)


# -- subcommands ---------------------------------------------------------------------------------
def _save_args(p: CommandParser) -> None:
    p.add_argument("target", metavar="NAME_OR_PATH", help="a variable name, or a path to a file or directory")
    p.add_argument("--kind", help="artifact kind (default: by type: text, json, dataframe, ...; file or dir)")
    _labels(p, "a label to filter by later (repeatable)")
    p.add_argument(
        "--metric", action="append", type=metric_pair, default=[], metavar="M=V", help="a metric (repeatable)"
    )
    p.add_argument("--name", help="the stored file name (default: the variable's name plus an extension)")
    p.add_argument("--pin", action="store_true", help="pin it so gc never collects it")
    p.add_argument("--pickle", action="store_true", help="pickle objects that have no safe format")


def run_save(s: Session, a: argparse.Namespace) -> Artifact:
    """Save a variable (by type) or a file or directory; returns the new artifact.

    Example: ``%aeg save df --kind table``
    """
    labels, metrics = dict(a.label), dict(a.metric)
    target: str = a.target
    ns = s.user_ns
    origin = s.context.origin
    if ns is not None and target.isidentifier() and target in ns:
        enc = encode(ns[target], allow_pickle=a.pickle)
        return s.artifacts.save_bytes(
            enc.data, kind=a.kind or enc.kind, labels=labels, metrics=metrics, name=a.name or target + enc.ext,
            mime=enc.mime, pin=a.pin, origin=origin,
        )  # fmt: skip
    path = os.path.expanduser(target)
    if os.path.isdir(path):
        return s.artifacts.save_dir(
            path, kind=a.kind or "dir", labels=labels, metrics=metrics, name=a.name, pin=a.pin, origin=origin
        )
    if os.path.exists(path):
        return s.artifacts.save_file(
            path, kind=a.kind or "file", labels=labels, metrics=metrics, name=a.name, pin=a.pin, origin=origin
        )
    if ns is None:
        raise CommandError(f"{s.typed('save')}: no such file or directory: {target!r}; give the path of one")
    raise CommandError(
        f"{s.typed('save')}: {target!r} is neither a variable nor a file or directory; "
        f"type `{s.typed('save')} VARIABLE` or `{s.typed('save')} path/to/file`"
    )


def _id_arg(p: CommandParser) -> None:
    p.add_argument("id", metavar="ID", help="an artifact id, unique id prefix, short id (last 8) or cas:// URI")


def _load_args(p: CommandParser) -> None:
    _id_arg(p)
    p.add_argument("--allow-pickle", action="store_true", help="unpickle (runs code from the artifact: trust it)")


def run_load(s: Session, a: argparse.Namespace) -> Any:
    """The Python object back: the inverse of ``save`` (a directory gives its local path).

    Example: ``%aeg load 01J8Z3QK``
    """
    art = s.artifacts.get(a.id)
    if art.is_dir:
        return Path(s.artifacts.local_dir(art))
    if is_pickle(art.mime, art.name) and not a.allow_pickle:
        raise PickleNotAllowedError(
            f"artifact {art.short_id} is a pickle, and unpickling runs code from it; if you trust it, "
            f"type `{s.typed('load')} {a.id} --allow-pickle`"
        )
    return decode(s.artifacts.load_bytes(art), mime=art.mime, name=art.name, allow_pickle=a.allow_pickle)


def run_path(s: Session, a: argparse.Namespace) -> str:
    """A read-only local path to the artifact (a directory for a directory artifact).

    Example: ``%aeg path 01J8Z3QK``
    """
    art = s.artifacts.get(a.id)
    return s.artifacts.local_dir(art) if art.is_dir else s.artifacts.local_file(art)


def run_show(s: Session, a: argparse.Namespace) -> Artifact:
    """The artifact's record (id, kind, name, uri, size, scope, labels, metrics, pinned).

    Example: ``%aeg show 01J8Z3QK``
    """
    return s.artifacts.get(a.id)


def _recent_args(p: CommandParser) -> None:
    p.add_argument("kinds", nargs="*", metavar="KIND", help="event kinds (default: every kind)")
    _limit(p)
    p.add_argument("--tool", help="only the results of this tool (record_tool_result)")
    _scope(p)


def run_recent(s: Session, a: argparse.Namespace) -> Any:
    """The newest events as a DataFrame, newest first.

    Example: ``%aeg recent train_log -n 5``
    """
    from ..core.frames import events_frame

    where, limit = s.where(a.scope), s.limit(a.limit)
    if a.tool is not None:
        if a.kinds:
            raise CommandError(
                f"{s.typed('recent')}: --tool picks tool results; drop the kinds, e.g. `{s.typed('recent')} --tool {a.tool}`"
            )
        events = s.event_log.recent_tool_results(tool=a.tool, limit=limit, where=where)
    else:
        events = s.event_log.recent(kinds=a.kinds or None, limit=limit, where=where)
    return events_frame(events)


def _log_args(p: CommandParser) -> None:
    p.add_argument("kind", metavar="KIND", help="the event kind, e.g. train_log")
    p.add_argument("pairs", nargs="*", metavar="KEY=VALUE", help="data fields; values are JSON where they parse")


def run_log(s: Session, a: argparse.Namespace) -> Any:
    """Record an event whose data is ``{KEY: VALUE, ...}`` (or one message without ``=``).

    Example: ``%aeg log train_log epoch=1 loss=0.25``
    """
    data: Any = None
    if a.pairs:
        with_eq = [p for p in a.pairs if "=" in p and not p.startswith("=")]
        if not with_eq:
            data = " ".join(a.pairs)
        elif len(with_eq) != len(a.pairs):
            bad = next(p for p in a.pairs if p not in with_eq)
            raise CommandError(
                f"{s.typed('log')}: {bad!r} is not KEY=VALUE; write every field as key=value, "
                f"e.g. `{s.typed('log')} {a.kind} epoch=1 loss=0.25`"
            )
        else:
            data = {}
            for p in a.pairs:
                k, _, raw = p.partition("=")
                data[k] = parse_value(raw)
    return s.event_log.record(a.kind, data, origin=s.context.origin)


def _mode(p: CommandParser, default: str | None) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--max", dest="mode", action="store_const", const="max", default=default, help="higher is better")
    g.add_argument("--min", dest="mode", action="store_const", const="min", help="lower is better")


def _best_args(p: CommandParser) -> None:
    p.add_argument("kind", metavar="KIND", help="artifact kind, e.g. checkpoint")
    p.add_argument("--metric", required=True, metavar="M", help="the metric to rank by, e.g. val_acc")
    _mode(p, "max")
    _scope(p)
    _labels(p, "only artifacts with this label (repeatable)")


def run_best(s: Session, a: argparse.Namespace) -> Artifact | None:
    """The best artifact of KIND by a metric, or ``None`` (with a one-line note) if none has it.

    Example: ``%aeg best checkpoint --metric val_acc --max``
    """
    scope = a.scope or s.default_scope
    art = s.artifacts.best(
        kind=a.kind, metric=a.metric, mode=a.mode, where=s.where(scope), filters=dict(a.label) or None
    )
    if art is None:
        print(f"no {a.kind!r} artifact has the metric {a.metric!r} in scope {scope!r}")
    return art


def _search_args(p: CommandParser) -> None:
    p.add_argument("kind", nargs="?", metavar="KIND", help="artifact kind (default: every kind)")
    _labels(p, "exact label match (repeatable)")
    p.add_argument("--metric", metavar="M", help="rank by this metric (artifacts without it are left out)")
    _mode(p, None)
    _scope(p)
    _limit(p)


def run_search(s: Session, a: argparse.Namespace) -> Any:
    """Artifacts matching kind, labels and scope as a DataFrame; ranked when ``--metric`` is given.

    Example: ``%aeg search checkpoint --label exp=A --metric val_acc``
    """
    from ..core.frames import artifacts_frame

    if a.mode is not None and a.metric is None:
        raise CommandError(
            f"{s.typed('search')}: --{a.mode} ranks by a metric; add one, e.g. "
            f"`{s.typed('search')} {a.kind or 'checkpoint'} --metric val_acc --{a.mode}`"
        )
    found = s.artifacts.search(
        kind=a.kind, labels=dict(a.label) or None, metric=a.metric, mode=a.mode, where=s.where(a.scope),
        limit=s.limit(a.limit),
    )  # fmt: skip
    return artifacts_frame(found)


def _list_args(p: CommandParser) -> None:
    p.add_argument("kind", nargs="?", metavar="KIND", help="artifact kind (default: every kind)")
    _scope(p)
    _limit(p)


def run_list(s: Session, a: argparse.Namespace) -> Any:
    """Artifacts in scope as a DataFrame, newest first.

    Example: ``%aeg list checkpoint -n 10``
    """
    from ..core.frames import artifacts_frame

    return artifacts_frame(s.artifacts.list(kind=a.kind, where=s.where(a.scope), limit=s.limit(a.limit)))


def run_pin(s: Session, a: argparse.Namespace) -> Artifact:
    """Pin an artifact: gc never collects it.

    Example: ``%aeg pin 01J8Z3QK``
    """
    return s.artifacts.pin(a.id, True)


def run_unpin(s: Session, a: argparse.Namespace) -> Artifact:
    """Unpin an artifact.

    Example: ``%aeg unpin 01J8Z3QK``
    """
    return s.artifacts.pin(a.id, False)


def _gc_args(p: CommandParser) -> None:
    p.add_argument("--dry-run", action="store_true", help="only report what would be freed")
    p.add_argument("--older-than", type=duration, metavar="AGE", help="collect unpinned artifacts older than AGE (7d)")
    p.add_argument("--keep-last", type=non_negative_int, metavar="N", help="but keep the newest N of each kind")
    p.add_argument(
        "--keep-best", action="append", type=keep_best_rule, default=[], metavar="KIND=METRIC[:min]",
        help="and always keep the best artifact of KIND by METRIC (repeatable)",
    )  # fmt: skip


def keep_best_rule(text: str) -> tuple[str, tuple[str, str]]:
    """``checkpoint=val_acc`` -> ``("checkpoint", ("val_acc", "max"))``; ``:min`` ranks lower-is-better."""
    kind, sep, rule = text.partition("=")
    metric, _, mode = rule.partition(":")
    if not sep or not kind or not metric or mode not in ("", "max", "min"):
        raise argparse.ArgumentTypeError(
            f"expected KIND=METRIC or KIND=METRIC:min such as checkpoint=val_acc, got {text!r}"
        )
    return kind, (metric, mode or "max")


def run_gc(s: Session, a: argparse.Namespace) -> Any:
    """Collect unpinned artifacts by the retention rule, then every unreferenced blob.

    Example: ``%aeg gc --older-than 7d --keep-last 3 --dry-run``
    """
    return s.artifacts.gc(
        dry_run=a.dry_run, older_than=a.older_than, keep_last=a.keep_last, keep_best=dict(a.keep_best) or None
    )


def _verify_args(p: CommandParser) -> None:
    p.add_argument("--repair", action="store_true", help="move corrupt blobs aside so a new save stores them again")


def run_verify(s: Session, a: argparse.Namespace) -> Any:
    """Re-hash every blob; report corrupt blobs and artifacts whose blob is missing.

    Example: ``%aeg verify``
    """
    return s.artifacts.verify(repair=a.repair)


def run_runs(s: Session, a: argparse.Namespace) -> Any:
    """Every run that wrote something, most recently active first, as a DataFrame.

    Example: ``%aeg runs -n 5``
    """
    from ..core.frames import runs_frame
    from ..core.runs import summarize_runs

    return runs_frame(summarize_runs(s.context.store)[: s.limit(a.limit)])


def _leaderboard_args(p: CommandParser) -> None:
    _best_args(p)  # the same KIND --metric M [--min|--max] [--scope] [--label] as `best`
    p.add_argument("--by", metavar="LABEL", help="best artifact per value of this label, e.g. exp")
    _limit(p)


def run_leaderboard(s: Session, a: argparse.Namespace) -> Any:
    """The top artifacts of KIND by a metric as a ranked DataFrame (optionally best per label).

    Example: ``%aeg leaderboard checkpoint --metric val_acc --by exp``
    """
    from ..core.leaderboard import leaderboard

    return leaderboard(
        s.artifacts, kind=a.kind, metric=a.metric, mode=a.mode, where=s.where(a.scope), labels=dict(a.label) or None,
        group_by=a.by, limit=s.limit(a.limit),
    )  # fmt: skip


def _panel_args(p: CommandParser) -> None:
    p.add_argument("--kind", metavar="K", help="the leaderboard's kind (default: the first with metrics)")
    p.add_argument("--metric", metavar="M", help="the leaderboard's metric")
    _mode(p, "max")
    _scope(p)
    p.add_argument("--by", metavar="LABEL", help="best artifact per value of this label")


def run_panel(s: Session, a: argparse.Namespace) -> Any:
    """The live panel: leaderboard, artifact browser with previews, memory feed, runs.

    Example: ``%aeg panel --kind checkpoint --metric val_acc``
    """
    from .panel import Panel

    return Panel(s.context, kind=a.kind, metric=a.metric, mode=a.mode, scope=a.scope or s.default_scope, group_by=a.by)


def _run_args(p: CommandParser) -> None:
    p.add_argument("action", nargs="?", choices=["new"], help="`new` starts a new run")
    p.add_argument("name", nargs="?", metavar="NAME", help="the new run's name (its id starts with it)")


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
    """Where the store is, which run / notebook / cell writes now, and how much it holds."""

    root: str
    run_id: str
    graph_id: str
    node_id: str
    artifacts: int
    events: int
    artifact_kinds: list[str]
    event_kinds: list[str]
    writer: str

    def line(self) -> str:
        """One line: ``aeg_jupyter: store /x/.aeg | run run-... | 3 artifacts, 12 events``."""
        return (
            f"aeg_jupyter: store {self.root} | run {self.run_id} | "
            f"{_plural(self.artifacts, 'artifact')}, {_plural(self.events, 'event')}"
        )

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
    from ..core.runs import count_events

    store = context.store
    return StoreStatus(
        root=store.root, run_id=context.run_id, graph_id=context.graph_id, node_id=context.node_id,
        artifacts=len(store.artifacts), events=count_events(store), artifact_kinds=store.artifacts.kinds(),
        event_kinds=store.event_log.kinds(), writer=store.writer,
    )  # fmt: skip


def run_status(s: Session, a: argparse.Namespace) -> StoreStatus:
    """Store path, current run / notebook / cell, artifact and event counts.

    Example: ``%aeg status``
    """
    return store_status(s.context)


def _help_args(p: CommandParser) -> None:
    p.add_argument("sub", nargs="?", metavar="SUB", help="a subcommand")


def run_help(s: Session, a: argparse.Namespace) -> None:
    """Print the list of subcommands, or one subcommand's options.

    Example: ``%aeg help best``
    """
    if a.sub is None:
        print(overview(s.prefix, in_kernel=s.in_kernel))
        return None
    print(parser_for(s, find_command(s, a.sub)).format_help(), end="")
    return None


def _track_args(p: CommandParser) -> None:
    p.add_argument("kind", metavar="KIND", help="the event kind to record, e.g. train_step")
    p.add_argument(
        "--metric", action="append", type=metric_pair, default=[], metavar="M=V", help="a metric (repeatable)"
    )


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


COMMANDS: dict[str, Command] = {
    c.name: c
    for c in [
        Command(
            "save", "save a variable (by type) or a file or directory as an artifact", "save df --kind table",
            _save_args, run_save,
            details=f"A variable is stored by type: {SAVABLE}; anything else only with --pickle. "
            "A variable wins over a file of the same name: write ./NAME for the file.",
        ),
        Command("load", "load an artifact back as a Python object (inverse of save)", "load 01J8Z3QK", _load_args,
                run_load, cli=False, takes_id=True),
        Command("path", "a read-only local path to an artifact's bytes (no copy)", "path 01J8Z3QK", _id_arg, run_path,
                takes_id=True),
        Command("show", "show one artifact's record", "show 01J8Z3QK", _id_arg, run_show, takes_id=True),
        Command("recent", "the newest events as a DataFrame, newest first", "recent train_log -n 5", _recent_args,
                run_recent),
        Command("log", "record an event: KIND key=value ... (values parsed as JSON)", "log train_log epoch=1 loss=0.25",
                _log_args, run_log),
        Command("best", "the best artifact of KIND by a metric", "best checkpoint --metric val_acc --max", _best_args,
                run_best),
        Command("search", "artifacts by kind, labels and scope, optionally ranked by a metric",
                "search checkpoint --label exp=A --metric val_acc", _search_args, run_search),
        Command("list", "artifacts in scope as a DataFrame, newest first", "list checkpoint -n 10", _list_args,
                run_list, aliases=("ls",)),
        Command("pin", "pin an artifact so gc never collects it", "pin 01J8Z3QK", _id_arg, run_pin, takes_id=True),
        Command("unpin", "unpin an artifact", "unpin 01J8Z3QK", _id_arg, run_unpin, takes_id=True),
        Command("gc", "delete unpinned artifacts by age / count, then unreferenced blobs",
                "gc --older-than 7d --keep-last 3 --dry-run", _gc_args, run_gc),
        Command("verify", "re-hash every blob and report corruption", "verify", _verify_args, run_verify),
        Command("leaderboard", "the top artifacts of KIND by a metric, optionally best per label",
                "leaderboard checkpoint --metric val_acc --by exp", _leaderboard_args, run_leaderboard),
        Command("panel", "the live widget panel: leaderboard, artifacts, memory, runs",
                "panel --kind checkpoint --metric val_acc", _panel_args, run_panel, cli=False),
        Command("runs", "every run that wrote something, most recent first", "runs -n 5", _limit, run_runs),
        Command("run", "the current run id; `run new NAME` starts a new run", "run new sweep-2", _run_args, run_run,
                cli=False),
        Command("status", "store path, current run / notebook / cell, counts", "status", lambda p: None, run_status),
        Command("help", "list the subcommands, or show one subcommand's options", "help best", _help_args, run_help),
        Command("track", "(cell magic) run the cell and record its duration, outcome and source hash",
                "%%aeg track train_step --metric lr=0.001", _track_args, run_track, cli=False),
    ]
}  # fmt: skip
ALIASES: dict[str, str] = {alias: c.name for c in COMMANDS.values() for alias in c.aliases}


def commands_for(s: Session) -> list[Command]:
    """The subcommands this front end offers (the CLI has no kernel: no load, run or track)."""
    return [c for c in COMMANDS.values() if c.cli or s.in_kernel]


def find_command(s: Session, name: str) -> Command:
    """The subcommand called ``name`` (or an alias); a mistake suggests the nearest name."""
    cmd = COMMANDS.get(ALIASES.get(name, name))
    if cmd is not None and (cmd.cli or s.in_kernel):
        return cmd
    if cmd is not None:
        where = "%%aeg track KIND" if cmd.name == "track" else f"%aeg {cmd.name}"
        raise CommandError(f"{s.prefix}: `{name}` needs a notebook kernel; in a notebook type `{where}`")
    names = [c.name for c in commands_for(s)] + [a for a, n in ALIASES.items() if COMMANDS[n] in commands_for(s)]
    close = difflib.get_close_matches(name, names, n=1)
    guess = f"did you mean `{s.prefix} {close[0]}`? " if close else ""
    raise CommandError(f"{s.prefix}: unknown subcommand {name!r}; {guess}`{s.prefix} help` lists them")


def parser_for(s: Session, cmd: Command) -> CommandParser:
    """The (cached) parser of one subcommand for this front end."""
    parser = s._parsers.get(cmd.name)
    if parser is None:
        prog = s.typed(cmd.name)
        example = cmd.example if cmd.example.startswith("%") else f"{s.prefix} {cmd.example}"
        description = cmd.summary[0].upper() + cmd.summary[1:] + "." + (f" {cmd.details}" if cmd.details else "")
        parser = s.parser_class(prog=prog, description=description, epilog=f"example: {example}", example=example)
        cmd.add_arguments(parser)
        s._parsers[cmd.name] = parser
    return parser


def overview(prefix: str = "%aeg", *, in_kernel: bool = True) -> str:
    """The text of ``help`` with no argument: every subcommand with its one-line summary.

    Example:
        >>> print(overview("aeg", in_kernel=False).splitlines()[0])
        aeg SUBCOMMAND [options]: durable artifacts and event memory (aeg_jupyter)
    """
    lines = [f"{prefix} SUBCOMMAND [options]: durable artifacts and event memory (aeg_jupyter)", ""]
    for c in COMMANDS.values():
        if c.cli or in_kernel:
            name = c.name + (f" ({', '.join(c.aliases)})" if c.aliases else "")
            lines.append(f"  {name:<10} {c.summary}")
    lines += ["", f"`{prefix} help SUB` or `{prefix} SUB -h` shows a subcommand's options."]
    if in_kernel:
        lines.append("Lines expand $var and {expr} like other magics (write {{ and }} for literal braces).")
    return "\n".join(lines)


def split_line(line: str, prefix: str = "%aeg") -> list[str]:
    """Split a command line like a shell does (quotes group words).

    Example:
        >>> split_line('log note "hello world"')
        ['log', 'note', 'hello world']
    """
    try:
        return shlex.split(line)
    except ValueError as exc:
        raise CommandError(f"{prefix}: cannot split this line ({exc}); close the quote or escape it") from None


def run_command(s: Session, argv: list[str]) -> Any:
    """Parse ``argv`` (``[SUBCOMMAND, args...]``) and run it; an empty line prints the overview.

    Raises:
        CommandError: (or the parser class's error) for a mistyped command.
        AegError: from the core, for a request it refuses (the message says why).
    """
    if not argv:
        print(overview(s.prefix, in_kernel=s.in_kernel))
        return None
    cmd = find_command(s, argv[0])
    parser = parser_for(s, cmd)
    try:
        args = parser.parse_args(argv[1:])
    except HelpShown:
        return None
    return cmd.run(s, args)


def describe_artifact(art: Artifact) -> str:
    """A few plain-text lines about an artifact (the CLI's rendering of ``show``).

    Example:
        >>> print(describe_artifact(art))        # doctest: +SKIP
        01J8Z3QK...  checkpoint  ckpt.json  1.2 KiB  pinned
    """
    rows = [
        ("id", art.artifact_id),
        ("kind", art.kind),
        ("name", art.name or ""),
        ("uri", art.uri),
        ("size", str(art.size)),
        ("created", art.created_at.isoformat(timespec="seconds") if art.created_at else ""),
        ("run", art.run_id or ""),
        ("graph", art.graph_id or ""),
        ("node", art.node_id or ""),
        ("labels", _kv(art.labels)),
        ("metrics", _kv(art.metrics)),
        ("pinned", "yes" if art.pinned else "no"),
    ]
    return "\n".join(f"{k:<8} {v}" for k, v in rows)


def _kv(d: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in d.items())


__all__ = [
    "ALIASES",
    "COMMANDS",
    "Command",
    "CommandError",
    "CommandParser",
    "HelpShown",
    "Session",
    "StoreStatus",
    "describe_artifact",
    "find_command",
    "overview",
    "parse_value",
    "parser_for",
    "run_command",
    "split_line",
    "store_status",
]
