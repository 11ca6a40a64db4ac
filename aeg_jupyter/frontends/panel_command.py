"""``%aeg panel``: the one subcommand that needs the panel, registered into the command registry.

It lives apart so that neither side imports the other: the command layer (shared with the ``aeg``
CLI) never imports the panel or ipywidgets, and the panel never imports the command layer.
The magics import this module (which imports the panel, and ipywidgets, only when ``%aeg panel``
runs); the CLI never does, and answers ``aeg panel`` with "needs a notebook kernel".
"""

from __future__ import annotations

import argparse
from typing import Any

from .commands import Command, CommandParser, Session, register
from .commands.parsing import _mode, _scope


def _panel_args(p: CommandParser) -> None:
    p.add_argument("--kind", metavar="K", help="the leaderboard's kind (default: the first with metrics)")
    p.add_argument("--metric", metavar="M", help="the leaderboard's metric")
    _mode(p, None)  # None: the metric's own direction (core/direction.py)
    _scope(p)
    p.add_argument("--by", metavar="LABEL", help="best artifact per value of this label")


def run_panel(s: Session, a: argparse.Namespace) -> Any:
    """The live panel: leaderboard, artifact browser with previews, memory feed, runs.

    Example: ``%aeg panel --kind checkpoint --metric val_acc``
    """
    from .panel import Panel  # ipywidgets only when a panel is asked for

    return Panel(s.context, kind=a.kind, metric=a.metric, mode=a.mode, scope=a.scope or s.default_scope, group_by=a.by)


PANEL = register(
    Command(
        "panel", "the live widget panel: leaderboard, artifacts, memory, runs",
        "panel --kind checkpoint --metric val_acc", _panel_args, run_panel, cli=False,
    )
)  # fmt: skip
