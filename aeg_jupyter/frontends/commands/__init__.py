"""The ``%aeg`` subcommands, shared by the magics and the ``aeg`` console script.

Each subcommand is a small function registered in :data:`COMMANDS` (``registry``), with its own
argparse parser (so each has ``-h``), in one module per group: ``artifacts`` (save, load, path,
show, best, search, list/ls, pin, unpin, leaderboard), ``memory`` (recent, log, track),
``maintenance`` (gc, verify), ``runs`` (runs, run, status), ``charts`` (plot, compare), ``lineage`` (lineage, diff) and ``help``. The magics register
``panel`` themselves: this package never imports the panel. Front ends differ only in how they
report mistakes: the parser class's ``error()`` raises :class:`CommandError` here, ``UsageError``
in the magics, and the CLI prints the message and exits with status 2. Functions return values
(DataFrames, :class:`~aeg_jupyter.base.models.Artifact`, reports); they never only print, except
``help``.

This package imports no IPython: it runs the same way inside and outside a kernel.

Example:
    >>> session = Session(aeg_jupyter.connect("/tmp/store"), prefix="aeg")    # doctest: +SKIP
    >>> run_command(session, ["recent", "train_log", "-n", "3"])               # doctest: +SKIP
"""

from __future__ import annotations

from . import artifacts, charts, help, lineage, maintenance, memory, runs  # noqa: F401  (each registers its subcommands)
from .artifacts import describe_artifact
from .expansion import expand_line
from .parsing import (
    CommandError,
    CommandParser,
    HelpShown,
    duration,
    label_pair,
    metric_pair,
    non_negative_int,
    parse_value,
    positive_int,
    split_line,
)
from .registry import (
    ALIASES,
    COMMANDS,
    KERNEL_REGISTERED,
    ORDER,
    Command,
    commands_for,
    find_command,
    overview,
    parser_for,
    register,
    run_command,
    subcommand,
)
from .runs import StoreStatus, store_status
from .session import Session

__all__ = [
    "ALIASES",
    "COMMANDS",
    "KERNEL_REGISTERED",
    "ORDER",
    "Command",
    "CommandError",
    "CommandParser",
    "HelpShown",
    "Session",
    "StoreStatus",
    "commands_for",
    "describe_artifact",
    "duration",
    "expand_line",
    "find_command",
    "label_pair",
    "metric_pair",
    "non_negative_int",
    "overview",
    "parse_value",
    "parser_for",
    "positive_int",
    "register",
    "run_command",
    "split_line",
    "store_status",
    "subcommand",
]
