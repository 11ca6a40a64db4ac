"""The one argparse subclass of the command layer, the shared argument types and option helpers.

:class:`CommandParser` turns argparse's mistakes into :class:`CommandError` (one line: what went
wrong, an example, where the options are); a front end subclasses it to change only ``error()``
(the magics raise IPython's ``UsageError``). The argument types (:func:`label_pair`,
:func:`metric_pair`, :func:`positive_int`, :func:`duration`, ...) and the option helpers
(``_scope``, ``_limit``, ``_labels``, ``_mode``) give every subcommand the same spelling of the
same option.

Example:
    >>> p = CommandParser(prog="aeg recent", example="aeg recent train_log -n 5")
    >>> _limit(p)
    >>> p.parse_args(["-n", "3"]).limit
    3
"""

from __future__ import annotations

import argparse
import difflib
import json
import math
import shlex
from collections.abc import Iterable
from typing import Any, NoReturn

from ...base.models import SCOPES
from ...base.validate import parse_duration


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


def did_you_mean(name: str, choices: Iterable[str], *, quote: str = "'") -> str:
    """``"did you mean 'x'? "`` for the nearest of ``choices``, or ``""`` when none is near.

    Example:
        >>> did_you_mean("val_accuracy", ["loss", "val_acc"])
        "did you mean 'val_acc'? "
    """
    close = difflib.get_close_matches(name, list(choices), n=1)
    return f"did you mean {quote}{close[0]}{quote}? " if close else ""


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
    """``exp=A`` -> ``("exp", "A")``; numbers and booleans are typed (``seed=3`` -> 3).

    Example:
        >>> label_pair("exp=A"), label_pair("seed=3")
        (('exp', 'A'), ('seed', 3))
    """
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE such as exp=A, got {text!r}")
    value = parse_value(raw)
    if not isinstance(value, str | int | float | bool):
        value = raw
    return key, value


def metric_pair(text: str) -> tuple[str, float]:
    """``val_acc=0.91`` -> ``("val_acc", 0.91)``.

    Example:
        >>> metric_pair("val_acc=0.91")
        ('val_acc', 0.91)
    """
    key, sep, raw = text.partition("=")
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not sep or not key or not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected METRIC=NUMBER such as val_acc=0.91, got {text!r}")
    return key, value


def positive_int(text: str) -> int:
    """A row count: an integer >= 1.

    Example:
        >>> positive_int("5")
        5
    """
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of rows >= 1, got {text!r}")
    return n


def non_negative_int(text: str) -> int:
    """An integer >= 0.

    Example:
        >>> non_negative_int("0")
        0
    """
    try:
        n = int(text)
    except ValueError:
        n = -1
    if n < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}")
    return n


def duration(text: str) -> str:
    """A duration such as ``30m``, ``12h``, ``7d`` or ``2w`` (checked, returned as typed).

    Example:
        >>> duration("7d")
        '7d'
    """
    try:
        parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


# -- option helpers shared by several subcommands (and the magics' `panel`) ----------------------
def _scope(p: CommandParser) -> None:
    p.add_argument(
        "--scope", choices=SCOPES, help="run (this kernel session), graph (this notebook), node (this cell), all"
    )


def _limit(p: CommandParser) -> None:
    p.add_argument("-n", "--limit", type=positive_int, metavar="N", help="rows to return (default: display_limit)")


def _labels(p: CommandParser, what: str) -> None:
    p.add_argument("--label", action="append", type=label_pair, default=[], metavar="K=V", help=what)


def _mode(p: CommandParser, default: str | None) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--max", dest="mode", action="store_const", const="max", default=default, help="higher is better")
    g.add_argument("--min", dest="mode", action="store_const", const="min", help="lower is better")


def _no_args(p: CommandParser) -> None:
    """For a subcommand that takes only ``-h``."""


__all__ = [
    "CommandError",
    "CommandParser",
    "HelpShown",
    "did_you_mean",
    "duration",
    "label_pair",
    "metric_pair",
    "non_negative_int",
    "parse_value",
    "positive_int",
    "split_line",
]
