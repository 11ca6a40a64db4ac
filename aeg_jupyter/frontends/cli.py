"""``aeg``: the store from a shell, with the same subcommands and options as ``%aeg``.

```
aeg [--store PATH] [--run RUN_ID] [--graph GRAPH_ID] SUBCOMMAND [options]
aeg ls checkpoint -n 5
aeg recent train_log
aeg best checkpoint --metric val_acc
aeg gc --older-than 7d --keep-last 3 --dry-run
aeg verify
aeg status
```

The store is ``--store``, else ``$AEG_STORE``, else ``./.aeg``; the global options may come before
or after the subcommand. Commands in a shell share a run: ``--run``, else ``$AEG_RUN``, else the
newest ``cli-...`` run of the store that wrote within ``RUN_WINDOW_MIN`` (30) minutes, else a new
``cli-...`` run, so three ``aeg log`` in a row are one run. ``aeg runs | head`` stops quietly when
the pipe closes. Argument parsing is
:mod:`aeg_jupyter.frontends.commands`, shared with the magics; this module only prints results as text and
turns mistakes into exit codes: 0 success, 1 the store refused or found nothing (``best`` without
a match, ``verify`` finding damage), 2 a mistyped command.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from ..api.context import KernelContext, connect, default_root, new_run_id
from ..base.errors import AegError
from ..base.models import Artifact, Event
from ..core.artifacts import GcReport, VerifyReport
from ..storage.layout import META_NAME
from ..storage.objectstore import is_url
from .commands import (
    ALIASES,
    CommandError,
    HelpShown,
    Session,
    StoreStatus,
    describe_artifact,
    find_command,
    overview,
    parser_for,
)

PREFIX = "aeg"
RUN_WINDOW_MIN = 30  # a `cli-...` run that wrote this recently is the shell's current run
CLI_RUN = "cli"
_GLOBAL_WITH_VALUE = ("--store", "--run", "--graph")
_CREATES_STORE = {"save", "log"}
_ARTIFACT_VIEW = ["artifact_id", "kind", "name", "created_at", "size", "pinned"]
_EVENT_VIEW = ["event_id", "ts", "kind", "topic"]


def _global_parser() -> argparse.ArgumentParser:
    from ..base.version import __version__

    parser = argparse.ArgumentParser(
        prog=PREFIX,
        usage=f"{PREFIX} [--store PATH] [--run RUN_ID] [--graph GRAPH_ID] SUBCOMMAND [options]",
        description="Durable artifacts and event memory of aeg_jupyter stores, from a shell. "
        "--store, --run and --graph may also follow the subcommand.",
        epilog=overview(PREFIX, in_kernel=False) + MIGRATE_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--store", metavar="PATH", help="the store directory (default: $AEG_STORE or ./.aeg)")
    parser.add_argument(
        "--run",
        metavar="RUN_ID",
        help=f"the run writes go to and `--scope run` means (default: $AEG_RUN, else the newest `cli-...` run "
        f"active within {RUN_WINDOW_MIN} min, else a new one)",
    )
    parser.add_argument("--graph", metavar="GRAPH_ID", help="the notebook that `--scope graph` means")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


def split_globals(argv: list[str]) -> tuple[list[str], list[str]]:
    """The global options (before or after the subcommand) apart from the subcommand and its options.

    Example:
        >>> split_globals(["--store", "s", "ls", "-n", "3", "--run=r1"])
        (['--store', 's', '--run=r1'], ['ls', '-n', '3'])
    """
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        i += 2 if argv[i] in _GLOBAL_WITH_VALUE else 1
    head, rest = argv[:i], []
    j = i
    while j < len(argv):
        word = argv[j]
        if word == "--":
            rest += argv[j:]
            break
        if word in _GLOBAL_WITH_VALUE:
            head += argv[j : j + 2]
            j += 2
        elif "=" in word and word.split("=", 1)[0] in _GLOBAL_WITH_VALUE:
            head.append(word)
            j += 1
        else:
            rest.append(word)
            j += 1
    return head, rest


def current_cli_run(context: KernelContext, *, now: datetime | None = None) -> str:
    """The shell's run: the newest ``cli-...`` run that wrote within ``RUN_WINDOW_MIN`` minutes, else a new one.

    Example:
        >>> current_cli_run(aeg_jupyter.connect("/tmp/store"))      # doctest: +SKIP
        'cli-20261201-101500-a1b2'
    """
    from ..core.runs import summarize_runs

    since = (now or datetime.now(UTC)) - timedelta(minutes=RUN_WINDOW_MIN)
    for run in summarize_runs(context.store):  # the most recently active first
        if run.last < since:
            break
        if run.run_id and run.run_id.startswith(f"{CLI_RUN}-"):
            return run.run_id
    return new_run_id(CLI_RUN)


def for_shell(message: str) -> str:
    """A core message's advice in shell form: ``%aeg list`` -> ``aeg list``, API calls dropped.

    Example:
        >>> for_shell("no artifact with id 'ZZ'; list them with arts.list(scope='all') or `%aeg list`")
        "no artifact with id 'ZZ'; list them with `aeg list`"
    """
    message = re.sub(r"`?(?:arts|mem|context)\.\w+\([^)]*\)`? or ", "", message)
    return message.replace("`%aeg ", f"`{PREFIX} ")


def main(argv: list[str] | None = None) -> int:
    """Run one ``aeg`` command; returns the exit status (the console script exits with it).

    A closed pipe (``aeg runs | head -5``) ends the command quietly.

    Example:
        >>> main(["--store", "/tmp/store", "status"])     # doctest: +SKIP
        0
    """
    try:
        status = _main(argv)
        sys.stdout.flush()  # NOTE: inside the try: a pipe closed early fails here, not at exit
    except BrokenPipeError:
        # The reader went away (`| head`): point stdout at /dev/null so the interpreter's own
        # flush at exit does not print a second traceback, and stop as `head` expects.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return 0
    return status


def _main(argv: list[str] | None) -> int:

    argv = list(sys.argv[1:] if argv is None else argv)
    head, rest = split_globals(argv)
    opts = _global_parser().parse_args(head)  # prints help / version / mistakes and exits itself
    if not rest:
        print(overview(PREFIX, in_kernel=False))  # the same as `aeg help` (`aeg --help` names migrate too)
        return 0
    if rest[0] == "migrate":  # not a store command: it converts a store no `connect()` opens
        return migrate_main(rest[1:], opts.store)
    # Parse first (help and mistakes need no store), then open the store and run.
    parsing = Session(cast(KernelContext, None), prefix=PREFIX)
    name = rest[0]
    try:
        cmd = find_command(parsing, name)
        args = parser_for(parsing, cmd).parse_args(rest[1:])
    except HelpShown:
        return 0
    except CommandError as exc:
        print(exc, file=sys.stderr)
        return 2
    if cmd.name == "help":
        try:
            cmd.run(parsing, args)
        except CommandError as exc:
            print(exc, file=sys.stderr)
            return 2
        return 0
    root = opts.store or default_root()
    if cmd.name not in _CREATES_STORE and not is_url(root) and not os.path.exists(os.path.join(root, META_NAME)):
        print(
            f"{PREFIX} {cmd.name}: no store at {os.path.abspath(root)!r}; pass --store PATH or set AEG_STORE",
            file=sys.stderr,
        )
        return 1
    run_id = opts.run or os.environ.get("AEG_RUN") or None
    try:
        context = connect(root, run_id=run_id or new_run_id(CLI_RUN), graph_id=opts.graph)
        if run_id is None and (cmd.name in _CREATES_STORE or getattr(args, "scope", None) == "run"):
            context.run_id = current_cli_run(context)
    except AegError as exc:
        print(f"{PREFIX}: {for_shell(str(exc))}", file=sys.stderr)
        return 1
    session = Session(context, prefix=PREFIX, default_scope="all", notes=sys.stderr, _parsers=parsing._parsers)
    try:
        result = cmd.run(session, args)
    except CommandError as exc:
        print(exc, file=sys.stderr)
        return 2
    except (AegError, OSError) as exc:
        print(f"{PREFIX} {cmd.name}: {for_shell(str(exc))}", file=sys.stderr)
        return 1
    finally:
        context.close()
    return render(result, ALIASES.get(name, name))


MIGRATE_HELP = "\n`aeg migrate [ROOT]` converts a format-1 store to format 2 (`aeg migrate -h`)."
_PROGRESS_SECONDS = 1.0


def migrate_main(argv: list[str], store: str | None) -> int:
    """``aeg migrate [ROOT] [--abort]``: convert a format-1 store to format 2 (storage/migrate.py).

    Progress (rows done / total) goes to stderr about once a second; the summary to stdout. Exit 0 when
    the store is format 2 (migrated now or before), 1 when it was refused (open elsewhere, damaged,
    verification found a difference), 2 for a mistyped command.

    Example:
        >>> migrate_main(["/tmp/old-store"], None)     # doctest: +SKIP
        0
    """
    import time

    from ..storage.migrate import migrate

    parser = argparse.ArgumentParser(
        prog=f"{PREFIX} migrate",
        description="Convert a format-1 store to format 2 (Delta Lake tables, docs/format2.md). Crash-safe: "
        "killed at any point, running it again finishes; the old tables stay until the new ones are verified "
        "field by field. Every process using the store must be closed first.",
    )
    parser.add_argument("root", nargs="?", help="the store (default: --store, $AEG_STORE or ./.aeg)")
    parser.add_argument(
        "--abort", action="store_true", help="give up an unfinished migration: the store stays format 1"
    )
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # help (0) or a mistake (2): argparse printed it
        return int(exc.code or 0)
    root = args.root or store or default_root()
    shown = [0.0]

    def progress(done: int, total: int, table: str) -> None:
        now = time.monotonic()
        if done == total or now - shown[0] >= _PROGRESS_SECONDS:
            shown[0] = now
            print(f"{PREFIX} migrate: {done:,} / {total:,} rows ({table})", file=sys.stderr, flush=True)

    try:
        report = migrate(root, progress=progress, abort=args.abort)
    except AegError as exc:
        print(f"{PREFIX} migrate: {exc}", file=sys.stderr)
        return 1
    print(report)
    return 0


def render(result: Any, command: str) -> int:
    """Print a command's result as text; return the exit status it implies."""
    if result is None:
        return 1 if command == "best" else 0
    if isinstance(result, Artifact):
        print(describe_artifact(result))
    elif isinstance(result, Event):
        print(f"recorded {result.kind} event {result.event_id} in run {result.run_id}")
    elif isinstance(result, GcReport | VerifyReport | StoreStatus):
        print(result)
        if isinstance(result, VerifyReport) and not result.ok:
            return 1
    elif hasattr(result, "to_string"):
        print(_table(result))
    else:
        print(result)
    return 0


def _table(df: Any) -> str:
    """A DataFrame as terminal text: the readable columns only, full ids kept."""
    import pandas as pd

    if df.empty:
        return "(no rows)"
    if "artifact_id" in df.columns:
        view = _ARTIFACT_VIEW + [c for c in df.columns if c.startswith(("label.", "metric."))]
    elif "event_id" in df.columns:
        view = _EVENT_VIEW + [c for c in df.columns if c.startswith(("data.", "out.", "metric."))]
    else:
        view = list(df.columns)
    width = shutil.get_terminal_size((160, 24)).columns
    with pd.option_context("display.width", width, "display.max_columns", None, "display.max_colwidth", 40):
        return df[view].to_string(index=False)


if __name__ == "__main__":
    sys.exit(main())
