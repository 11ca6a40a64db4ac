"""``help``: the list of subcommands, or one subcommand's options (the same text as ``SUB -h``).

Example (in a shell)::

    aeg help
    aeg help gc
"""

from __future__ import annotations

import argparse

from .parsing import CommandParser
from .registry import find_command, overview, parser_for, subcommand
from .session import Session


def _help_args(p: CommandParser) -> None:
    p.add_argument("sub", nargs="?", metavar="SUB", help="a subcommand")


@subcommand("help", "list the subcommands, or show one subcommand's options", "help best", _help_args)
def run_help(s: Session, a: argparse.Namespace) -> None:
    """Print the list of subcommands, or one subcommand's options.

    Example: ``%aeg help best``
    """
    if a.sub is None:
        print(overview(s.prefix, in_kernel=s.in_kernel))
        return None
    print(parser_for(s, find_command(s, a.sub)).format_help(), end="")
    return None


__all__: list[str] = []
