"""What the panel's four tabs share: the :class:`PanelTab` base and the small widget helpers.

A tab builds its widgets once in ``__init__``, wires ``observe(..., names="value")`` to ask the
panel for a redraw, and recomputes everything it shows in one :meth:`PanelTab.refresh`. The panel
decides when a tab is drawn (only when shown, never twice at once) and shows every error on its
status line.

Example:
    >>> class Hello(PanelTab):
    ...     name = "hello"
    ...     def refresh(self) -> None:
    ...         self.children = [widgets.HTML("hello")]
    >>> Hello(context, redraw=lambda: None, say=print).refresh()   # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar, Protocol

import ipywidgets as widgets

from ...api.context import KernelContext
from ...base.errors import AegError

SCOPE_OPTIONS = [("all", "all"), ("this run", "run"), ("this notebook", "graph"), ("this cell", "node")]
SCOPE_NAMES = {value: label for label, value in SCOPE_OPTIONS}
NONE = ""  # the "(all)" / "(none)" choice of a dropdown
WIDE = {"description_width": "initial"}  # a widget style: the description is never cut


class Say(Protocol):
    """The panel's status line: ``say("pinned 1a2b3c4d")``, ``say("bad filter", error=True)``."""

    def __call__(self, message: str, *, error: bool = False) -> None: ...


class PanelTab(widgets.VBox):
    """One tab of the panel: its widgets, built once, and :meth:`refresh`, which redraws them all.

    Args:
        context: the kernel's context (store, run id, scopes).
        redraw: asks the panel to draw this tab (at once if it is shown, else when it is shown).
        say: the panel's status line; every message and error of the tab goes there.

    Example:
        >>> tab = RunsTab(context, redraw=lambda: None, say=print)   # doctest: +SKIP
        >>> tab.refresh()                                           # doctest: +SKIP
    """

    name: ClassVar[str] = ""  # the tab's name in Panel.show() / Panel.active_tab

    def __init__(self, context: KernelContext, *, redraw: Callable[[], None], say: Say) -> None:
        super().__init__()
        self.context = context
        self._redraw = redraw
        self._say = say
        self._quiet_depth = 0

    def refresh(self) -> None:
        """Recompute everything the tab shows from the store (the panel calls it; errors raise AegError)."""
        raise NotImplementedError

    def detached(self) -> list[widgets.Widget]:
        """Widgets the tab owns that may not be on screen now (closed with the panel)."""
        return []

    @contextmanager
    def quiet(self) -> Iterator[None]:
        """Widget values set inside do not trigger redraws (the code setting them redraws once).

        Example:
            >>> with tab.quiet():        # doctest: +SKIP
            ...     tab.kind.value = ""
        """
        self._quiet_depth += 1
        try:
            yield
        finally:
            self._quiet_depth -= 1

    def _redraw_on_change(self, *controls: widgets.Widget) -> None:
        for w in controls:
            w.observe(self._changed, names="value")

    def _changed(self, _change: dict[str, Any]) -> None:
        if not self._quiet_depth:
            self._redraw()

    @contextmanager
    def _reporting(self) -> Iterator[None]:
        """An AegError raised inside (by a click or a toggle) goes to the status line."""
        try:
            yield
        except AegError as exc:
            self._say(str(exc), error=True)


@contextmanager
def working(button: widgets.Button) -> Iterator[None]:
    """The button is disabled while the block runs, and enabled again however it ends.

    Example:
        >>> with working(panel.refresh_button):   # doctest: +SKIP
        ...     panel.artifacts.catch_up()
    """
    button.disabled = True
    try:
        yield
    finally:
        button.disabled = False


def pick(
    current: str | None, wanted: str | None, options: Sequence[str], *, prefer: Any = None, fallback: bool = True
) -> str | None:
    """The dropdown value to show: what was asked for, else what is shown, else the first preferred option.

    Example:
        >>> pick("b", None, ["a", "b"]), pick(None, "x", ["a", "b"], prefer=lambda o: o == "b")
        ('b', 'b')
    """
    for candidate in (wanted, current):
        if candidate and candidate in options:
            return candidate
    if not fallback or not options:
        return None
    if prefer is not None:
        for o in options:
            if prefer(o):
                return o
    return options[0]


def set_options(dropdown: widgets.Dropdown, options: Sequence[Any], value: Any) -> None:
    """Replace a dropdown's options only when they changed (each change is a message to the browser).

    Example:
        >>> set_options(tab.kind, [("(all)", ""), ("plot", "plot")], "plot")   # doctest: +SKIP
    """
    if tuple(dropdown.options) != tuple(options):
        dropdown.options = list(options)
    values = [o[1] if isinstance(o, tuple) else o for o in options]
    dropdown.value = value if value in values else (values[0] if values else None)


def descendants(root: widgets.Widget) -> Iterator[widgets.Widget]:
    """``root`` and every widget below it (through ``children``).

    Example:
        >>> len(list(descendants(widgets.VBox([widgets.HTML()]))))
        2
    """
    stack = [root]
    while stack:
        w = stack.pop()
        yield w
        stack.extend(getattr(w, "children", ()) or ())


__all__ = [
    "NONE",
    "SCOPE_NAMES",
    "SCOPE_OPTIONS",
    "WIDE",
    "PanelTab",
    "Say",
    "descendants",
    "pick",
    "set_options",
    "working",
]
