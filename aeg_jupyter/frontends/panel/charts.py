"""The Charts tab: curves of the chosen runs over steps, live while a loop records, and a comparison
view of the leaderboard (parallel coordinates of labels against the metric, selected rows highlighted).

The curves are a plotly figure fed by :class:`~aeg_jupyter.core.series.LiveSeries`: one full read
when the kind or metric changes, then only the hot window's new events at each redraw (the panel
coalesces redraws, :mod:`.live`); ``record`` itself does nothing for the chart. The kinds are listed
from the data files once (and again on Refresh); a live redraw adds the kinds of the hot window's new
rows, recomputes the comparison view only after artifact writes, and sends the curves only when
they took in new points (:meth:`ChartsTab.refresh`). Each redraw sends the
figure as plotly's mime bundle into an ``Output`` widget (:func:`show`), at most
:data:`~aeg_jupyter.core.series.MAX_POINTS` points per run.
Ticking leaderboard rows (their checkboxes; the panel passes them to :meth:`ChartsTab.select_artifacts`)
selects their runs here and highlights them in the comparison view.

Example:
    >>> panel.show("charts")                                   # doctest: +SKIP
    >>> panel.charts_tab.metric.value = "loss"                 # doctest: +SKIP
    >>> [t.name for t in panel.charts_tab.figure.data]         # doctest: +SKIP
    ['run-20260102-030405-a1b2']
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import ipywidgets as widgets

from ...api.context import KernelContext
from ...base.errors import NotFoundError
from ...base.html import esc
from ...base.models import Scope
from ...core.leaderboard import label_keys
from ...core.series import STEP_KEYS, LiveSeries, kind_keys, read_event_columns
from .tab import SCOPE_OPTIONS, WIDE, PanelTab, Say, pick, set_options

MAX_RUNS = 10  # runs drawn when none is chosen (the most recently started)
RELIST_SECONDS = 5.0  # a live redraw that missed hot rows lists the kinds again, at most this often
EMPTY_NOTE = (
    "<i>No events with numbers yet. Record some in a loop, e.g. "
    "<code>await mem.record(kind='train_log', data={'step': i, 'loss': loss})</code>.</i>"
)


class Board(Protocol):
    """What the comparison view follows: the leaderboard's kind and metric dropdowns."""

    kind: widgets.Dropdown
    metric: widgets.Dropdown


class ChartsTab(PanelTab):
    """Curves of a metric of an event kind, per run, live; and the leaderboard's parallel coordinates.

    Args:
        context, redraw, say: see :class:`~aeg_jupyter.frontends.panel.tab.PanelTab`.
        scope: the scope shown first.
        board: the leaderboard tab; the comparison view shows its kind and metric (and follows them).

    Attributes:
        figure: the curves as last drawn (a plotly ``Figure``; ``None`` until the tab is first drawn).
        parallel: the comparison view as last drawn (a ``Figure``, or ``None`` when there is nothing to compare).

    Example:
        >>> tab = panel.charts_tab                    # doctest: +SKIP
        >>> tab.runs.value = (context.run_id,)        # doctest: +SKIP
    """

    name = "charts"

    def __init__(
        self,
        context: KernelContext,
        *,
        redraw: Callable[[], None],
        say: Say,
        scope: Scope = "all",
        board: Board | None = None,
    ) -> None:
        super().__init__(context, redraw=redraw, say=say)
        self.event_log = context.store.event_log
        self.artifacts = context.store.artifacts
        self._board = board
        self.live: LiveSeries | None = None
        self._figure: Any = None  # built from _figure_parts when asked for
        self._figure_parts: tuple[list[dict[str, Any]], dict[str, Any]] | None = None
        self.parallel: Any = None
        self.selected_artifacts: list[str] = []
        self._parallel_key: tuple[Any, ...] | None = None
        self._chosen_by_user = False
        self._kinds: set[str] | None = None  # the kinds listed from the data files, plus the hot rows' since
        self._kinds_seen: tuple[int, str] = (0, "")  # the newest hot row whose kind is in _kinds
        self._kinds_listed = 0.0  # time.monotonic() of the last listing

        self.kind = widgets.Dropdown(description="kind", options=[], style=WIDE)
        self.metric = widgets.Dropdown(description="metric", options=[], style=WIDE)
        self.scope = widgets.Dropdown(description="scope", options=SCOPE_OPTIONS, value=scope, style=WIDE)
        self.smooth = widgets.BoundedIntText(
            value=0, min=0, max=10_000, description="smooth", style=WIDE, layout=widgets.Layout(width="130px")
        )
        self.log_y = widgets.Checkbox(value=False, description="log y", indent=False, style=WIDE)
        self.runs = widgets.SelectMultiple(
            description="runs", options=[], rows=4, style=WIDE, layout=widgets.Layout(width="420px")
        )
        for w, cls in (
            (self.kind, "aeg-ch-kind"), (self.metric, "aeg-ch-metric"), (self.scope, "aeg-ch-scope"),
            (self.smooth, "aeg-ch-smooth"), (self.log_y, "aeg-ch-log"), (self.runs, "aeg-ch-runs"),
        ):  # fmt: skip
            w.add_class(cls)
        self.note = widgets.HTML()
        self.curves = widgets.Output(layout=widgets.Layout(width="100%"))
        self.compare_note = widgets.HTML()
        self.compare = widgets.Output(layout=widgets.Layout(width="100%"))
        self.children = [
            widgets.HBox([self.kind, self.metric, self.scope], layout=widgets.Layout(flex_flow="row wrap")),
            widgets.HBox([self.runs, widgets.VBox([self.smooth, self.log_y])]),
            self.note,
            self.curves,
            self.compare_note,
            self.compare,
        ]
        self.add_class("aeg-charts")
        self.kind.observe(self._on_kind, names="value")
        self.runs.observe(self._on_runs, names="value")
        self._redraw_on_change(self.metric, self.scope, self.smooth, self.log_y)
        if board is not None:
            self._redraw_on_change(board.kind, board.metric)

    # -- public ------------------------------------------------------------------------------------
    @property
    def figure(self) -> Any:
        """The curves as last drawn, as a plotly ``Figure`` (``None`` before the first draw).

        Example:
            >>> [t.name for t in panel.charts_tab.figure.data]   # doctest: +SKIP
        """
        if self._figure is None and self._figure_parts is not None:
            import plotly.graph_objects as go

            data, look = self._figure_parts
            self._figure = go.Figure(data=[go.Scatter(t) for t in data], layout=look)
        return self._figure

    def select_artifacts(self, artifact_ids: Sequence[str]) -> None:
        """Highlight these artifacts in the comparison view and select their runs in the curves.

        Example:
            >>> panel.charts_tab.select_artifacts([best.artifact_id])   # doctest: +SKIP
        """
        self.selected_artifacts = list(artifact_ids)
        runs = []
        for aid in self.selected_artifacts:
            try:
                run = self.artifacts.get(aid).run_id
            except NotFoundError:
                continue
            if run and run not in runs:
                runs.append(run)
        if runs:
            self._chosen_by_user = True
            with self.quiet():
                known = [o[1] if isinstance(o, tuple) else o for o in self.runs.options]
                self.runs.options = list(self.runs.options) + [r for r in runs if r not in known]
                self.runs.value = tuple(runs)
        elif not self.selected_artifacts:  # nothing selected any more: the newest runs again
            self._chosen_by_user = False
            with self.quiet():
                self.runs.value = ()
        self._redraw()

    def forget_kinds(self) -> None:
        """The next draw lists the event kinds from the store again (the panel's Refresh: other kernels' kinds)."""
        self._kinds = None

    # -- drawing -----------------------------------------------------------------------------------
    def refresh(self, *, written: frozenset[str] | None = None) -> None:
        """Pick kind and metric, take in new events, redraw the curves and (if it changed) the comparison.

        ``written``: a live redraw after this kernel wrote these tables (the panel's :mod:`.live`): the
        curves are sent again only if they took in new points, the comparison view is recomputed only
        after artifact or pin/delete writes. ``None``: everything is drawn.
        """
        scope = self.context.scope(self.scope.value)
        kinds = self._kind_list()
        kind = pick(self.kind.value, None, kinds, prefer=lambda k: k != "tool_result")
        with self.quiet():
            set_options(self.kind, kinds, kind)
        live = self.live
        draw = True
        if kind is None:
            self.note.value = EMPTY_NOTE
            self.curves.outputs = ()
        elif (
            live is None
            or live.kind != kind
            or live.y != self.metric.value
            or live.where != scope
            or self.metric.value is None
        ):
            self._start(kind, scope)
        else:
            draw = live.update() > 0 or written is None or self._figure_parts is None
        if self.live is not None and draw:
            self._draw_curves()
        if written is None or not written.isdisjoint(("artifacts", "ops")):
            self._draw_parallel()

    def _kind_list(self) -> list[str]:
        """The event kinds, sorted: listed from the store once (data files and spools), then kept
        current from the hot window's rows newer than the last seen (no listing per redraw)."""
        log = self.event_log
        hot = log.hot
        now = time.monotonic()
        kinds = self._kinds
        if kinds is not None:
            items = hot.items
            seen = self._kinds_seen
            missed = items and not hot.complete and _row_key(items[0]) > seen  # rows left the window unseen
            if missed and now - self._kinds_listed >= RELIST_SECONDS:
                kinds = None  # (a fast loop): one of the rows missed may be of a new kind
            else:
                for r in reversed(items):  # newest first, down to the last seen
                    if _row_key(r) <= seen:
                        break
                    kinds.add(r["kind"])
                if items:
                    self._kinds_seen = max(seen, _row_key(items[-1]))
        if kinds is None:
            items = hot.items
            newest = _row_key(items[-1]) if items else (0, "")
            kinds = self._kinds = set(log.kinds())  # lists the data files, takes in other writers' spools
            self._kinds_seen = newest  # (rows added during the listing are looked at again next time)
            self._kinds_listed = now
        return sorted(kinds)

    def _start(self, kind: str, scope: Any) -> None:
        cols = read_event_columns(self.event_log, kind, scope)
        keys = kind_keys(cols)
        options = [k for k in keys.all if k not in STEP_KEYS] or keys.all
        metric = pick(self.metric.value, None, options)
        with self.quiet():
            set_options(self.metric, options, metric)
        if metric is None or len(cols) == 0:
            self.live = None
            self.curves.outputs = ()
            self.note.value = f"<i>No {esc(kind)} events with numbers in this scope.</i>"
            return
        self.live = LiveSeries(self.event_log, kind, y=metric, where=scope)

    def _chosen(self) -> list[str]:
        live = self.live
        assert live is not None
        names = live.names
        with self.quiet():
            wanted = tuple(self.runs.value)  # new options reset the value: keep what was chosen
            if tuple(self.runs.options) != tuple(reversed(names)):
                self.runs.options = list(reversed(names))  # the newest run first
            # the user's (or the leaderboard's) choice is kept; else the newest runs, a new one included
            chosen = [r for r in wanted if r in names] if self._chosen_by_user else names[-MAX_RUNS:]
            if tuple(self.runs.value) != tuple(chosen):
                self.runs.value = tuple(chosen)
        return chosen

    def _draw_curves(self) -> None:
        from ..charts import layout, line_dicts, mime_bundle

        live = self.live
        assert live is not None
        chosen = self._chosen()
        n = self.smooth.value
        ss = live.series_set(names=chosen, smooth_points=n)
        raw = live.series_set(names=chosen) if n > 1 else None
        title = f"{live.kind}: {live.y} over {ss.x_key}" + (f" (mean of {n})" if n > 1 else "")
        data, look = line_dicts(ss, raw=raw), layout(ss, log=self.log_y.value, title=title)
        self._figure = None
        self._figure_parts = (data, look)
        # hot path of a live redraw: plain dicts to JSON, no figure validation (see mime_bundle)
        self.curves.outputs = ({"output_type": "display_data", "data": mime_bundle(data, look), "metadata": {}},)
        points = ss.points
        self.note.value = (
            f"<span style='color:#555'>{len(ss.series)} of {len(live.names)} runs, {points:,} points"
            f"{f', mean of {n}' if n > 1 else ''}; at most 2,000 drawn per run</span>"
            if ss.series
            else "<i>Choose runs above.</i>"
        )

    def _draw_parallel(self) -> None:
        board = self._board
        kind, metric = (board.kind.value, board.metric.value) if board is not None else (None, None)
        if not kind or not metric:
            self.compare_note.value = ""
            self.compare.outputs = ()
            return
        scope = self.context.scope(self.scope.value)
        arts = [a for a in self.artifacts.list(kind=kind, where=scope) if metric in a.metrics]
        labels = [k for k in label_keys(self.artifacts, kind=kind, where=scope) if not k.startswith("_")][:8]
        key = (kind, metric, scope, len(arts), tuple(a.artifact_id for a in arts[:1]), tuple(self.selected_artifacts))
        if key == self._parallel_key and self.parallel is not None:
            return
        self._parallel_key = key
        if not arts or not labels:
            self.compare_note.value = (
                f"<i>The comparison view needs {esc(kind)} artifacts with labels and metric {esc(metric)}.</i>"
            )
            self.compare.outputs = ()
            return
        from ..charts import parallel_figure

        self.parallel = parallel_figure(arts, metric=metric, labels=labels, selected=self.selected_artifacts)
        show(self.compare, self.parallel)
        chosen = len(set(self.selected_artifacts) & {a.artifact_id for a in arts})
        self.compare_note.value = (
            f"<span style='color:#555'>{len(arts)} {esc(kind)} by labels against <b>{esc(metric)}</b>"
            + (f"; {chosen} selected on the leaderboard, in red" if chosen else "")
            + "</span>"
        )

    # -- events ------------------------------------------------------------------------------------
    def _on_kind(self, _change: dict[str, Any]) -> None:
        if not self._quiet_depth:
            self._redraw()  # the metric is kept if the new kind has it, else its first number

    def _on_runs(self, _change: dict[str, Any]) -> None:
        if self._quiet_depth:
            return
        self._chosen_by_user = True
        self._redraw()


def _row_key(r: dict[str, Any]) -> tuple[int, str]:
    return (r["ts"], r["event_id"])


def show(out: widgets.Output, fig: Any) -> None:
    """Show a plotly figure in an Output widget as plotly's own mime bundle (one message, no comm per figure).

    JupyterLab and Notebook 7 draw it with the renderer extension in the plotly wheel, VS Code
    natively. (``FigureWidget`` would take diffs instead, but drew empty plots in JupyterLab 4.6 with
    plotly 6.9 / 7.1 and anywidget 0.11 in our browser test; see the README's design notes.)
    """
    import plotly.io as pio

    bundle = pio.renderers["plotly_mimetype"].to_mimebundle(fig.to_dict())
    bundle["text/plain"] = f"<{type(fig).__name__} with {len(fig.data)} traces>"
    out.outputs = ({"output_type": "display_data", "data": bundle, "metadata": {}},)


__all__ = ["ChartsTab", "show"]
