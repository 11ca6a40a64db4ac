"""The live panel: leaderboards, an artifact browser with previews, the memory feed and runs.

Plain ipywidgets (no server, no iframe, no lab extension), so it works in JupyterLab, Notebook 7,
VS Code and on Binder. The widgets are thin: every table is a core query
(:func:`~aeg_jupyter.core.leaderboard.ranked`, :func:`~aeg_jupyter.core.browse.find_artifacts` /
:func:`~aeg_jupyter.core.browse.preview`, :meth:`EventLog.recent`,
:func:`~aeg_jupyter.core.runs.summarize_runs`) rendered as HTML in which every user string is escaped.

Modules: :mod:`.panel` (the :class:`Panel`: header, tabs, status line), one per tab
(:mod:`.leaderboard`, :mod:`.artifacts`, :mod:`.memory`, :mod:`.runs`, on :mod:`.tab`),
:mod:`.live` (live redraws and auto-refresh) and :mod:`.style` (CSS and cell texts).

Example (in a notebook)::

    from aeg_jupyter.frontends.panel import Panel
    panel = Panel(context, kind="checkpoint", metric="val_acc")
    panel.leaderboard_tab.frame      # what the leaderboard shows, as a DataFrame
"""

from __future__ import annotations

from ...base.html import esc, html_table
from .panel import Panel
from .style import fmt_age, fmt_value

__all__ = ["Panel", "esc", "fmt_age", "fmt_value", "html_table"]
