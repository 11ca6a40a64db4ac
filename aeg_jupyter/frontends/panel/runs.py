"""The Runs tab: every run of the store, newest first, with its notebook, activity and counts.

The table is :func:`~aeg_jupyter.core.runs.summarize_runs`; this kernel's run is highlighted.

Example:
    >>> panel.show("runs")            # doctest: +SKIP
    >>> panel.runs_tab.table.value    # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import ipywidgets as widgets

from ...api.context import KernelContext
from ...base.html import html_table
from ...core.runs import run_name, summarize_runs
from .style import fmt_age
from .tab import PanelTab, Say

MAX_RUNS = 50
COLUMNS = ["run", "run id", "notebook", "started", "last activity", "artifacts", "events"]
EMPTY_NOTE = "<i>No runs yet: a run appears once it saves an artifact or records an event.</i>"


class RunsTab(PanelTab):
    """The runs of the store (at most ``MAX_RUNS``), this kernel's highlighted.

    Args:
        context, redraw, say: see :class:`~aeg_jupyter.frontends.panel.tab.PanelTab`.

    Example:
        >>> "(this kernel)" in panel.runs_tab.table.value   # doctest: +SKIP
        True
    """

    name = "runs"

    def __init__(self, context: KernelContext, *, redraw: Callable[[], None], say: Say) -> None:
        super().__init__(context, redraw=redraw, say=say)
        self.table = widgets.HTML()
        self.table.add_class("aeg-ru-table")
        self.children = [self.table]

    def refresh(self) -> None:
        """Summarize the runs (a scan of the events table) and show them as one table."""
        mine_id = self.context.run_id
        runs = summarize_runs(self.context.store)[:MAX_RUNS]
        now = datetime.now(UTC)
        rows = [
            [
                run_name(r.run_id) + ("  (this kernel)" if r.run_id == mine_id else ""), r.run_id or "(no run id)",
                r.graph_id or "", r.first.astimezone().strftime("%Y-%m-%d %H:%M:%S"), f"{fmt_age(r.last, now)} ago",
                r.artifacts, r.events,
            ]
            for r in runs
        ]  # fmt: skip
        if not rows:
            self.table.value = EMPTY_NOTE
            return
        mine = next((i for i, r in enumerate(runs) if r.run_id == mine_id), None)
        self.table.value = html_table(COLUMNS, rows, css_class="aeg-runs", highlight=mine)


__all__ = ["MAX_RUNS", "RunsTab"]
