"""The :class:`Session` a subcommand runs against: the kernel context and the front end's settings.

Example:
    >>> session = Session(aeg_jupyter.connect("/tmp/store"), prefix="aeg")    # doctest: +SKIP
    >>> session.typed("best")                                                  # doctest: +SKIP
    'aeg best'
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO

from .parsing import CommandParser

if TYPE_CHECKING:
    from ...api.context import KernelContext
    from ...base.models import ScopeFilter
    from ...core.artifacts import ArtifactStore
    from ...core.events import EventLog


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
        notes: where one-line notes go (an empty answer's hint): stdout, or stderr in the CLI.

    Example:
        >>> Session(None, prefix="aeg").typed("gc")
        'aeg gc'
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
    notes: TextIO | None = None
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

    def note(self, text: str) -> None:
        """Print a one-line note (why an answer is empty) where this front end shows notes."""
        print(text, file=self.notes or sys.stdout)

    def typed(self, cmd: str) -> str:
        """How ``cmd`` is typed in this front end, e.g. ``%aeg best``."""
        if cmd == "track":
            return "%%aeg track"
        return f"{self.prefix} {cmd}"


__all__ = ["Session"]
