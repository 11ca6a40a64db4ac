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

The store is ``--store``, else ``$AEG_STORE``, else ``./.aeg``. Argument parsing is
:mod:`aeg_jupyter.frontends.commands`, shared with the magics; this module only prints results as text and
turns mistakes into exit codes: 0 success, 1 the store refused or found nothing (``best`` without
a match, ``verify`` finding damage), 2 a mistyped command.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from typing import Any, cast

from ..api.context import KernelContext, connect, default_root
from ..base.errors import AegError
from ..base.models import Artifact, Event
from ..core.artifacts import GcReport, VerifyReport
from ..storage.layout import META_NAME
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
_GLOBAL_WITH_VALUE = ("--store", "--run", "--graph")
_CREATES_STORE = {"save", "log"}
_ARTIFACT_VIEW = ["artifact_id", "kind", "name", "created_at", "size", "pinned"]
_EVENT_VIEW = ["event_id", "ts", "kind", "topic"]


def _global_parser() -> argparse.ArgumentParser:
    from ..base.version import __version__

    parser = argparse.ArgumentParser(
        prog=PREFIX,
        usage=f"{PREFIX} [--store PATH] [--run RUN_ID] [--graph GRAPH_ID] SUBCOMMAND [options]",
        description="Durable artifacts and event memory of aeg_jupyter stores, from a shell.",
        epilog=overview(PREFIX, in_kernel=False),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--store", metavar="PATH", help="the store directory (default: $AEG_STORE or ./.aeg)")
    parser.add_argument("--run", metavar="RUN_ID", help="the run that `--scope run` means (default: a new run)")
    parser.add_argument("--graph", metavar="GRAPH_ID", help="the notebook that `--scope graph` means")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


def split_globals(argv: list[str]) -> tuple[list[str], list[str]]:
    """``["--store", "s", "ls", "-n", "3"]`` -> ``(["--store", "s"], ["ls", "-n", "3"])``.

    Example:
        >>> split_globals(["--store", "s", "ls", "-n", "3"])
        (['--store', 's'], ['ls', '-n', '3'])
    """
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        i += 2 if argv[i] in _GLOBAL_WITH_VALUE else 1
    return argv[:i], argv[i:]


def main(argv: list[str] | None = None) -> int:
    """Run one ``aeg`` command; returns the exit status (the console script exits with it).

    Example:
        >>> main(["--store", "/tmp/store", "status"])     # doctest: +SKIP
        0
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    head, rest = split_globals(argv)
    opts = _global_parser().parse_args(head)  # prints help / version / mistakes and exits itself
    if not rest:
        print(overview(PREFIX, in_kernel=False))
        return 0
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
    if cmd.name not in _CREATES_STORE and not os.path.exists(os.path.join(root, META_NAME)):
        print(
            f"{PREFIX} {cmd.name}: no store at {os.path.abspath(root)!r}; pass --store PATH or set AEG_STORE",
            file=sys.stderr,
        )
        return 1
    try:
        context = connect(root, run_id=opts.run, graph_id=opts.graph)
    except AegError as exc:
        print(f"{PREFIX}: {exc}", file=sys.stderr)
        return 1
    session = Session(context, prefix=PREFIX, default_scope="all", notes=sys.stderr, _parsers=parsing._parsers)
    try:
        result = cmd.run(session, args)
    except CommandError as exc:
        print(exc, file=sys.stderr)
        return 2
    except (AegError, OSError) as exc:
        print(f"{PREFIX} {cmd.name}: {exc}", file=sys.stderr)
        return 1
    finally:
        context.close()
    return render(result, ALIASES.get(name, name))


def render(result: Any, command: str) -> int:
    """Print a command's result as text; return the exit status it implies."""
    if result is None:
        return 1 if command == "best" else 0
    if isinstance(result, Artifact):
        print(describe_artifact(result))
    elif isinstance(result, Event):
        print(f"recorded {result.kind} event {result.event_id}")
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
