"""The Memory tab: the newest events of the log, newest first, one column per recorded field.

The table is :meth:`EventLog.recent <aeg_jupyter.core.events.EventLog.recent>` through
:func:`~aeg_jupyter.core.frames.events_frame`, rendered with every string escaped.

Example:
    >>> panel.show("memory")                     # doctest: +SKIP
    >>> panel.memory_tab.frame["kind"].iloc[0]   # doctest: +SKIP
    'tool_result'
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import ipywidgets as widgets

from ...api.context import KernelContext
from ...base.html import html_table
from ...base.models import Scope
from ...core.frames import events_frame
from ...core.runs import run_name
from .style import display_cell, fmt_age
from .tab import NONE, SCOPE_OPTIONS, WIDE, PanelTab, Say, set_options

MAX_EVENTS = 500
EMPTY_NOTE = "<i>No events yet. Record one with <code>await mem.record(kind='note', data={...})</code>.</i>"


class MemoryTab(PanelTab):
    """The memory feed: the last N events of one kind (or all) in a scope.

    Args:
        context, redraw, say: see :class:`~aeg_jupyter.frontends.panel.tab.PanelTab`.
        scope: the scope shown first.

    Example:
        >>> panel.memory_tab.kind.value = "train_log"   # doctest: +SKIP
        >>> list(panel.memory_tab.frame["data.epoch"])  # doctest: +SKIP
        [2, 1, 0]
    """

    name = "memory"

    def __init__(self, context: KernelContext, *, redraw: Callable[[], None], say: Say, scope: Scope = "all") -> None:
        super().__init__(context, redraw=redraw, say=say)
        self.event_log = context.store.event_log
        self.frame = events_frame([])  # what is shown, newest first, as a DataFrame
        self.kind = widgets.Dropdown(description="kind", options=[("(all)", NONE)], style=WIDE)
        self.scope = widgets.Dropdown(description="scope", options=SCOPE_OPTIONS, value=scope, style=WIDE)
        self.limit = widgets.BoundedIntText(
            value=50, min=1, max=MAX_EVENTS, description="last", style=WIDE, layout=widgets.Layout(width="110px")
        )
        self.table = widgets.HTML()
        self.table.add_class("aeg-me-table")
        self.children = [widgets.HBox([self.kind, self.scope, self.limit]), self.table]
        self._redraw_on_change(self.kind, self.scope, self.limit)

    def refresh(self) -> None:
        """Read the newest events that pass the filters and show them as one table."""
        log = self.event_log
        kinds = log.kinds()
        with self.quiet():
            set_options(self.kind, [("(all)", NONE), *((k, k) for k in kinds)], self.kind.value or NONE)
        kind = self.kind.value or None
        events = log.recent(
            kinds=[kind] if kind else None, limit=self.limit.value, where=self.context.scope(self.scope.value)
        )
        frame = events_frame(events)  # newest first
        self.frame = frame
        extra = [c for c in frame.columns if c.startswith(("data.", "metric.", "out."))][:16]
        text_col = any(not isinstance(e.data, dict) and e.text is not None for e in events)
        columns = ["time", "kind", "topic", *(c.split(".", 1)[1] if c.startswith("data.") else c for c in extra)]
        columns += ["text"] * text_col + ["run", "cell"]
        now = datetime.now(UTC)
        values = {c: frame[c].tolist() for c in extra}
        rows = []
        for i, ev in enumerate(reversed(events)):
            row = [f"{fmt_age(datetime.fromisoformat(ev.ts), now)} ago", ev.kind, ev.topic or ""]
            row += [display_cell(values[c][i]) for c in extra]
            if text_col:
                row.append("" if isinstance(ev.data, dict) else ev.text or "")
            row += [run_name(ev.run_id), ev.node_id or ""]
            rows.append(row)
        self.table.value = html_table(columns, rows, css_class="aeg-events") if rows else EMPTY_NOTE


__all__ = ["MAX_EVENTS", "MemoryTab"]
