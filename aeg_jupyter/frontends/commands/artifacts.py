"""Artifact subcommands: ``save``, ``load``, ``path``, ``show``, ``best``, ``search``, ``list`` (``ls``),
``pin``, ``unpin`` and ``leaderboard``; and :func:`describe_artifact`, the CLI's text for one artifact.

Example (in a notebook)::

    art = %aeg save df --kind table
    df = %aeg load {art.short_id}
    best = %aeg best checkpoint --metric val_acc
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ...base.errors import PickleNotAllowedError
from ...base.html import fmt_value
from ...base.models import Artifact
from ...base.models import _human_size as human_size
from ...base.validate import Mode, check_mode
from ...core.serialize import SAVABLE, decode, encode, is_pickle
from .hints import check_label, check_ranked, nothing_found
from .parsing import CommandError, CommandParser, _labels, _limit, _mode, _scope, metric_pair
from .registry import subcommand
from .session import Session


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


@subcommand(
    "save", "save a variable (by type) or a file or directory as an artifact", "save df --kind table", _save_args,
    details=f"A variable is stored by type: {SAVABLE}; anything else only with --pickle. "
    "A variable wins over a file of the same name: write ./NAME for the file.",
)  # fmt: skip
def run_save(s: Session, a: argparse.Namespace) -> Artifact:
    """Save a variable (by type) or a file or directory; returns the new artifact.

    Example: ``%aeg save df --kind table``
    """
    labels, metrics = dict(a.label), dict(a.metric)
    target: str = a.target
    ns = s.user_ns
    origin = s.context.write_origin()  # the cell's reads are its inputs
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


@subcommand(
    "load", "load an artifact back as a Python object (inverse of save)", "load 01J8Z3QK", _load_args, cli=False,
    takes_id=True,
)  # fmt: skip
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


@subcommand("path", "a read-only local path to an artifact's bytes (no copy)", "path 01J8Z3QK", _id_arg, takes_id=True)
def run_path(s: Session, a: argparse.Namespace) -> str:
    """A read-only local path to the artifact (a directory for a directory artifact).

    Example: ``%aeg path 01J8Z3QK``
    """
    art = s.artifacts.get(a.id)
    return s.artifacts.local_dir(art) if art.is_dir else s.artifacts.local_file(art)


@subcommand("show", "show one artifact's record", "show 01J8Z3QK", _id_arg, takes_id=True)
def run_show(s: Session, a: argparse.Namespace) -> Artifact:
    """The artifact's record (id, kind, name, uri, size, scope, labels, metrics, pinned).

    Example: ``%aeg show 01J8Z3QK``
    """
    return s.artifacts.get(a.id)


def _best_args(p: CommandParser) -> None:
    p.add_argument("kind", metavar="KIND", help="artifact kind, e.g. checkpoint")
    p.add_argument("--metric", required=True, metavar="M", help="the metric to rank by, e.g. val_acc")
    _mode(p, None)  # None: from the metric's name or its recorded direction (core/direction.py)
    _scope(p)
    _labels(p, "only artifacts with this label (repeatable)")


@subcommand("best", "the best artifact of KIND by a metric", "best checkpoint --metric val_acc --max", _best_args)
def run_best(s: Session, a: argparse.Namespace) -> Artifact | None:
    """The best artifact of KIND by a metric, or ``None`` (with a one-line note) if none has it.

    Example: ``%aeg best checkpoint --metric val_acc --max``
    """
    scope = a.scope or s.default_scope
    mode = _direction(s, a, "best")
    art = s.artifacts.best(kind=a.kind, metric=a.metric, mode=mode, where=s.where(scope), filters=dict(a.label) or None)
    if art is None:
        check_ranked(s, a.kind, a.metric)  # a kind or metric no artifact has: say which exist
        s.note(nothing_found(s, "best", scope, kind=a.kind, metric=a.metric, labels=dict(a.label) or None))
    return art


def _search_args(p: CommandParser) -> None:
    p.add_argument("kind", nargs="?", metavar="KIND", help="artifact kind (default: every kind)")
    _labels(p, "exact label match (repeatable)")
    p.add_argument("--metric", metavar="M", help="rank by this metric (artifacts without it are left out)")
    _mode(p, None)
    _scope(p)
    _limit(p)
    _all_columns(p)


@subcommand(
    "search", "artifacts by kind, labels and scope, optionally ranked by a metric",
    "search checkpoint --label exp=A --metric val_acc", _search_args,
)  # fmt: skip
def run_search(s: Session, a: argparse.Namespace) -> Any:
    """Artifacts matching kind, labels and scope as a DataFrame; ranked when ``--metric`` is given.

    Example: ``%aeg search checkpoint --label exp=A --metric val_acc``
    """
    from ...core.frames import artifacts_frame, artifacts_view

    if a.mode is not None and a.metric is None:
        raise CommandError(
            f"{s.typed('search')}: --{a.mode} ranks by a metric; add one, e.g. "
            f"`{s.typed('search')} {a.kind or 'checkpoint'} --metric val_acc --{a.mode}`"
        )
    mode = a.mode
    if a.metric is not None and mode is None:  # the metric's own direction (recorded, else its name), else max
        from ...core.direction import infer_direction
        from ...core.leaderboard import metric_direction

        mode = (metric_direction(s.artifacts, a.kind, a.metric) if a.kind else infer_direction(a.metric)) or "max"
    found = s.artifacts.search(
        kind=a.kind, labels=dict(a.label) or None, metric=a.metric, mode=mode, where=s.where(a.scope),
        limit=s.limit(a.limit),
    )  # fmt: skip
    if not found:
        scope = a.scope or s.default_scope
        s.note(nothing_found(s, "search", scope, kind=a.kind, metric=a.metric, labels=dict(a.label) or None))
    if _full(s, a):
        return artifacts_frame(found)
    return artifacts_view(found, metric=a.metric, ranked=a.metric is not None)


def _list_args(p: CommandParser) -> None:
    p.add_argument("kind", nargs="?", metavar="KIND", help="artifact kind (default: every kind)")
    _scope(p)
    _limit(p)
    _all_columns(p)


@subcommand(
    "list", "artifacts in scope as a DataFrame, newest first", "list checkpoint -n 10", _list_args, aliases=("ls",)
)
def run_list(s: Session, a: argparse.Namespace) -> Any:
    """Artifacts in scope as a DataFrame, newest first.

    Example: ``%aeg list checkpoint -n 10``
    """
    from ...core.frames import artifacts_frame, artifacts_view

    found = s.artifacts.list(kind=a.kind, where=s.where(a.scope), limit=s.limit(a.limit))
    if not found:
        s.note(nothing_found(s, "list", a.scope or s.default_scope, kind=a.kind))
    return artifacts_frame(found) if _full(s, a) else artifacts_view(found)


@subcommand("pin", "pin an artifact so gc never collects it", "pin 01J8Z3QK", _id_arg, takes_id=True)
def run_pin(s: Session, a: argparse.Namespace) -> Artifact:
    """Pin an artifact: gc never collects it.

    Example: ``%aeg pin 01J8Z3QK``
    """
    return s.artifacts.pin(a.id, True)


@subcommand("unpin", "unpin an artifact", "unpin 01J8Z3QK", _id_arg, takes_id=True)
def run_unpin(s: Session, a: argparse.Namespace) -> Artifact:
    """Unpin an artifact.

    Example: ``%aeg unpin 01J8Z3QK``
    """
    return s.artifacts.pin(a.id, False)


def _leaderboard_args(p: CommandParser) -> None:
    _best_args(p)  # the same KIND --metric M [--min|--max] [--scope] [--label] as `best`
    p.add_argument("--by", metavar="LABEL", help="best artifact per value of this label, e.g. exp")
    _limit(p)
    _all_columns(p)


@subcommand(
    "leaderboard", "the top artifacts of KIND by a metric, optionally best per label",
    "leaderboard checkpoint --metric val_acc --by exp", _leaderboard_args,
)  # fmt: skip
def run_leaderboard(s: Session, a: argparse.Namespace) -> Any:
    """The top artifacts of KIND by a metric as a ranked DataFrame (optionally best per label).

    Example: ``%aeg leaderboard checkpoint --metric val_acc --by exp``
    """
    from ...core.frames import artifacts_view
    from ...core.leaderboard import leaderboard, ranked

    query: dict[str, Any] = dict(
        kind=a.kind, metric=a.metric, mode=_direction(s, a, "leaderboard"), where=s.where(a.scope),
        labels=dict(a.label) or None, group_by=a.by, limit=s.limit(a.limit),
    )  # fmt: skip
    board = (
        leaderboard(s.artifacts, **query)
        if _full(s, a)
        else artifacts_view(ranked(s.artifacts, **query), metric=a.metric, group_by=a.by, ranked=True)
    )
    if board.empty:  # only then: the checks walk the kind's artifacts
        check_ranked(s, a.kind, a.metric)
        if a.by is not None:
            check_label(s, a.kind, a.by, "to group by (--by)")
        scope = a.scope or s.default_scope
        s.note(nothing_found(s, "leaderboard", scope, kind=a.kind, metric=a.metric, labels=dict(a.label) or None))
    return board


def _all_columns(p: CommandParser) -> None:
    p.add_argument(
        "--all-columns",
        action="store_true",
        help="every column (full ids, uri, UTC times) instead of the readable ones",
    )


def _full(s: Session, a: argparse.Namespace) -> bool:
    """The full DataFrame (``--all-columns``, or the CLI, which picks its own columns) or the one for people."""
    return bool(a.all_columns) or not s.in_kernel


def _direction(s: Session, a: argparse.Namespace, command: str) -> Mode:
    """``--max``/``--min`` if given, else the metric's recorded or inferred direction; unknown: a UsageError.

    A metric no artifact of the kind has is not asked about: the answer is empty either way.
    """
    if a.mode is not None:
        return check_mode(a.mode)
    from ...core.leaderboard import metric_direction

    mode = metric_direction(s.artifacts, a.kind, a.metric)
    if mode is None and a.metric not in s.artifacts.metric_names(a.kind):
        return "max"
    if mode is None:
        raise CommandError(
            f"{s.typed(command)}: is a higher or a lower {a.metric!r} better? The name does not say: add --max "
            f"or --min, e.g. `{s.typed(command)} {a.kind} --metric {a.metric} --max` (or record it with the "
            f"artifacts: --label metric_modes={a.metric}:max)"
        )
    return mode


def describe_artifact(art: Artifact) -> str:
    """A few plain-text lines about an artifact (the CLI's rendering of ``show``).

    Example:
        >>> print(describe_artifact(art).splitlines()[1])        # doctest: +SKIP
        kind     checkpoint
    """
    rows = [
        ("id", art.artifact_id),
        ("kind", art.kind),
        ("name", art.name or ""),
        ("uri", art.uri),
        ("size", f"{human_size(art.size)} ({art.size} bytes)" if art.size >= 1024 else f"{art.size} B"),
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
    return ", ".join(f"{k}={fmt_value(v)}" for k, v in d.items())  # metrics to 4 significant digits


__all__ = ["describe_artifact"]
