"""The Leaderboard tab: artifacts of one kind ranked by a metric, best first, each row with a pin toggle.

The table is the core query :func:`~aeg_jupyter.core.leaderboard.ranked`; each row is a pooled widget
(a selection checkbox, a pin toggle and one fixed-layout HTML table), reused across redraws. The rows
ticked are :attr:`LeaderboardTab.selected` (kept across redraws, by artifact id); each change is
passed to ``on_select`` (the panel selects their runs in the Charts tab).

Example:
    >>> panel.leaderboard_tab.metric.value = "loss"   # doctest: +SKIP
    >>> panel.leaderboard_tab.frame                   # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import ipywidgets as widgets

from ...api.context import KernelContext
from ...base.html import esc
from ...base.models import Artifact, Scope
from ...core.artifacts import Mode
from ...core.frames import leaderboard_frame
from ...core.leaderboard import default_ranking, label_keys, metric_modes, ranked
from ...core.runs import run_name
from .style import fmt_age, fmt_value, row_table
from .tab import NONE, SCOPE_NAMES, SCOPE_OPTIONS, WIDE, PanelTab, Say, pick, set_options

MAX_ROWS = 100  # leaderboard rows (top-N upper bound)
EMPTY_NOTE = (
    "<i>No artifacts yet. Save one with metrics, e.g. "
    "<code>await arts.save_json(w, kind='checkpoint', metrics={'val_acc': 0.9})</code>.</i>"
)


class LeaderRow:
    """One pooled leaderboard row: a selection checkbox, a pin toggle and the row's cells (reused across redraws).

    Example:
        >>> row = panel.leaderboard_tab.rows[0]   # doctest: +SKIP
        >>> row.artifact_id, row.pin.value        # doctest: +SKIP
        ('01J...', False)
        >>> row.select.value = True               # doctest: +SKIP
    """

    def __init__(self, on_pin: Callable[[LeaderRow, bool], None], on_select: Callable[[LeaderRow, bool], None]) -> None:
        self.artifact_id: str | None = None
        self.select = widgets.Checkbox(
            value=False, indent=False, description="", tooltip="select (its run is shown in the Charts tab)",
            layout=widgets.Layout(width="22px", flex="0 0 22px", margin="0 4px 0 2px"),
        )  # fmt: skip
        self.select.add_class("aeg-lb-select")
        self.pin = widgets.ToggleButton(
            value=False, description="", icon="thumb-tack", tooltip="pin (gc never collects a pinned artifact)",
            layout=widgets.Layout(width="36px", height="26px", padding="0"),
        )  # fmt: skip
        self.pin.add_class("aeg-lb-pin")
        self.pin.layout.flex = "0 0 36px"  # never squeezed away by a wide row
        self.cells = widgets.HTML(layout=widgets.Layout(flex="1 1 auto", min_width="0", overflow="hidden"))
        self.box = widgets.HBox(
            [self.select, self.pin, self.cells], layout=widgets.Layout(align_items="center", width="100%")
        )
        self.pin.observe(lambda change: on_pin(self, change["new"]), names="value")
        self.select.observe(lambda change: on_select(self, change["new"]), names="value")


class LeaderboardTab(PanelTab):
    """Rank artifacts: kind, metric, max/min, scope, "best per" label and top-N, as widgets.

    Args:
        context, redraw, say: see :class:`~aeg_jupyter.frontends.panel.tab.PanelTab`.
        kind, metric, group_by: asked for; shown as soon as the store has them. Without ``metric``
            the kind's default (:func:`~aeg_jupyter.core.leaderboard.default_ranking`: a metric of
            known direction, validation before training).
        mode: ``"max"`` or ``"min"``; ``None``: the metric's direction (recorded, else from its
            name; unknown: the toggle is left unset and the note asks to choose).
        scope: the scope shown first. limit: top-N rows.
        on_select: called with the selected artifact ids (best first) each time a row is ticked
            or unticked.

    The metric and direction chosen for a kind are kept: switching to another kind and back
    shows them again.

    Example:
        >>> tab = panel.leaderboard_tab                   # doctest: +SKIP
        >>> tab.mode.value = "min"; tab.frame["name"][0]  # doctest: +SKIP
        'ckpt-B-0.8.json'
    """

    name = "leaderboard"

    def __init__(
        self,
        context: KernelContext,
        *,
        redraw: Callable[[], None],
        say: Say,
        kind: str | None = None,
        metric: str | None = None,
        mode: Mode | None = None,
        scope: Scope = "all",
        group_by: str | None = None,
        limit: int = 10,
        on_select: Callable[[list[str]], None] | None = None,
    ) -> None:
        super().__init__(context, redraw=redraw, say=say)
        self.artifacts = context.store.artifacts
        self.on_select = on_select
        self._selected: list[str] = []  # artifact ids ticked, in the order ticked
        self.frame = leaderboard_frame([], metric=metric or "")  # what is shown, as a DataFrame
        self._want: dict[str, str | None] = {"kind": kind, "metric": metric, "group": group_by}  # not yet shown
        self._pool: list[LeaderRow] = []
        self._shown = 0
        self._want_mode: Mode | None = mode  # asked for at start: wins once, for the first metric shown
        self._metric_of: dict[str, str] = {}  # kind -> the metric last chosen for it
        self._mode_of: dict[tuple[str, str], Mode] = {}  # (kind, metric) -> the direction last chosen
        self._on: tuple[str | None, str | None] = (None, None)  # the (kind, metric) shown

        self.kind = widgets.Dropdown(description="kind", options=[], style=WIDE)
        self.metric = widgets.Dropdown(description="metric", options=[], style=WIDE)
        self.mode = widgets.ToggleButtons(
            options=[("max", "max"), ("min", "min")], value=mode,
            style={"button_width": "56px"}, tooltips=["higher is better", "lower is better"],
        )  # fmt: skip
        self.scope = widgets.Dropdown(description="scope", options=SCOPE_OPTIONS, value=scope, style=WIDE)
        self.group = widgets.Dropdown(description="best per", options=[("(none)", NONE)], style=WIDE)
        self.limit = widgets.BoundedIntText(
            value=max(1, min(int(limit), MAX_ROWS)), min=1, max=MAX_ROWS, description="top", style=WIDE,
            layout=widgets.Layout(width="110px"),
        )  # fmt: skip
        for w, cls in (
            (self.kind, "aeg-lb-kind"), (self.metric, "aeg-lb-metric"), (self.mode, "aeg-lb-mode"),
            (self.scope, "aeg-lb-scope"), (self.group, "aeg-lb-group"), (self.limit, "aeg-lb-limit"),
        ):  # fmt: skip
            w.add_class(cls)
        self.header = widgets.HTML(layout=widgets.Layout(flex="1 1 auto", min_width="0", overflow="hidden"))
        self.note = widgets.HTML()
        self.body = widgets.VBox(layout=widgets.Layout(overflow="auto"))
        self.children = [
            widgets.HBox([self.kind, self.metric, self.mode], layout=widgets.Layout(flex_flow="row wrap")),
            widgets.HBox([self.scope, self.group, self.limit], layout=widgets.Layout(flex_flow="row wrap")),
            self.note,
            widgets.HBox(
                [widgets.HTML(layout=widgets.Layout(flex="0 0 64px", margin="0 2px")), self.header],
                layout=widgets.Layout(width="100%"),
            ),
            self.body,
        ]
        self.add_class("aeg-leaderboard")

        self.kind.observe(self._on_kind, names="value")
        self.metric.observe(self._on_metric, names="value")
        self.mode.observe(self._on_mode, names="value")
        self._redraw_on_change(self.scope, self.group, self.limit)

    @property
    def rows(self) -> list[LeaderRow]:
        """The leaderboard rows shown, best first (each has ``artifact_id``, ``pin`` and ``cells``).

        Example:
            >>> [r.artifact_id for r in panel.leaderboard_tab.rows]   # doctest: +SKIP
        """
        return self._pool[: self._shown]

    @property
    def selected(self) -> list[str]:
        """The artifact ids of the rows ticked, best first (a ticked row that left the table stays selected).

        Example:
            >>> panel.leaderboard_tab.rows[0].select.value = True   # doctest: +SKIP
            >>> panel.leaderboard_tab.selected                       # doctest: +SKIP
            ['01J...']
        """
        shown = [r.artifact_id for r in self.rows if r.artifact_id in self._selected]
        return shown + [a for a in self._selected if a not in shown]

    def select(self, artifact_ids: list[str]) -> None:
        """Tick exactly these artifacts' rows (and tell ``on_select``).

        Example:
            >>> panel.leaderboard_tab.select([best.artifact_id])   # doctest: +SKIP
        """
        self._selected = list(dict.fromkeys(artifact_ids))
        with self.quiet():
            for r in self.rows:
                r.select.value = r.artifact_id in self._selected
        self._selection_changed()

    def detached(self) -> list[widgets.Widget]:
        """Every pooled row, shown or not."""
        return [r.box for r in self._pool]

    def refresh(self) -> None:
        """Fill the dropdowns from the store, rank, and show the rows and a note saying what is shown."""
        index = self.artifacts
        kinds = index.kinds()
        kind = pick(self.kind.value, self._want.get("kind"), kinds, prefer=lambda k: bool(index.metric_names(k)))
        modes = metric_modes(index, kind) if kind else {}
        metrics = list(modes)
        metric = self._metric_for(kind, metrics)
        mode = self._mode_for(kind, metric, modes)
        scope = self.context.scope(self.scope.value)
        groups = label_keys(index, kind=kind) if kind else []
        group = pick(self.group.value or None, self._want.get("group"), groups, fallback=False)
        with self.quiet():
            set_options(self.kind, kinds, kind)
            set_options(self.metric, metrics, metric)
            set_options(self.group, [("(none)", NONE), *((g, g) for g in groups)], group or NONE)
            self.mode.value = mode
        for key, shown in (("kind", kind), ("metric", metric), ("group", group)):
            if shown == self._want.get(key):
                self._want[key] = None
        if metric is not None:
            self._want_mode = None
        self._on = (kind, metric)
        if kind is None or metric is None:
            self.frame = leaderboard_frame([], metric=metric or "")
            self._show([], [], metric or "")
            if kind is None:
                self.note.value = EMPTY_NOTE
            else:
                self.note.value = f"<i>No artifact of kind <b>{esc(kind)}</b> has metrics to rank by.</i>"
            return
        if mode is None:
            self.frame = leaderboard_frame([], metric=metric)
            self._show([], [], metric)
            self.note.value = (
                f"<i>Is a higher or a lower <b>{esc(metric)}</b> better? The name does not say: choose "
                "<b>max</b> or <b>min</b> (or save the artifacts with the label "
                f'<code>metric_modes="{esc(metric)}:min"</code>).</i>'
            )
            return
        rows = ranked(index, kind=kind, metric=metric, mode=mode, where=scope, group_by=group, limit=self.limit.value)
        self.frame = leaderboard_frame(rows, metric=metric, group_by=group)
        varying = [k for k in groups if k != group and len({repr(a.labels.get(k)) for a in rows}) > 1]
        label_cols = ([group] if group else []) + varying[:3]  # a label all rows share tells nothing apart
        self._show(rows, label_cols, metric)
        where = SCOPE_NAMES[self.scope.value]
        per = f", best per <b>{esc(group)}</b>" if group else ""
        if rows:
            self.note.value = (
                f"<span class='aeg-note'>{len(rows)} {esc(kind)} by <b>{esc(metric)}</b> "
                f"({'higher' if mode == 'max' else 'lower'} is better{per}), scope: {esc(where)}</span>"
            )
        else:
            self.note.value = f"<i>No {esc(kind)} with metric {esc(metric)} in scope “{esc(where)}”{per}.</i>"

    def _metric_for(self, kind: str | None, metrics: list[str]) -> str | None:
        """The metric to show for ``kind``: asked for, else shown, else last chosen for it, else its default."""
        if kind is None or not metrics:
            return None
        shown = self.metric.value if self._on[0] == kind else None
        for candidate in (self._want.get("metric"), shown, self._metric_of.get(kind)):
            if candidate in metrics:
                return candidate
        return default_ranking(self.artifacts, kind)[0] or metrics[0]

    def _mode_for(self, kind: str | None, metric: str | None, modes: dict[str, Mode | None]) -> Mode | None:
        """The direction to rank by: asked for at start, else last chosen for (kind, metric), else the metric's own."""
        if kind is None or metric is None:
            return None
        if self._want_mode is not None:
            return self._want_mode
        if self._on == (kind, metric) and self.mode.value is not None:
            return self.mode.value  # type: ignore[no-any-return]
        return self._mode_of.get((kind, metric)) or modes.get(metric)

    def _show(self, rows: list[Artifact], label_cols: list[str], metric: str) -> None:
        others = sorted({m for a in rows for m in a.metrics if m != metric})[:3]
        # Numbers and ids get fixed widths; the name, labels and run share the rest of the row (the
        # name the most), and a narrow column cuts its text with an ellipsis (the whole text is each
        # cell's tooltip).
        spec: list[tuple[str, int | str]] = [("#", 30), ("id", 92), ("name", "40%"), (metric, 72)]
        spec += [(m, 64) for m in others] + [(k, "12%") for k in label_cols] + [("age", 48), ("run", "22%")]
        width = sum(w if isinstance(w, int) else 48 for _, w in spec)  # each shared column at least 48 px
        self.header.value = row_table(spec, [name for name, _ in spec], width, header=True)
        while len(self._pool) < len(rows):
            self._pool.append(LeaderRow(self._pin_row, self._select_row))
        now = datetime.now(UTC)
        with self.quiet():
            for i, (row, art) in enumerate(zip(self._pool, rows, strict=False)):
                cells = [
                    str(i + 1), art.short_id, art.name or "", fmt_value(art.metrics.get(metric)),
                    *(fmt_value(art.metrics.get(m)) for m in others),
                    *(fmt_value(art.labels.get(k)) for k in label_cols),
                    fmt_age(art.created_at, now), (run_name(art.run_id), art.run_id or ""),
                ]  # fmt: skip
                row.artifact_id = art.artifact_id
                row.select.value = art.artifact_id in self._selected
                row.pin.value = art.pinned
                row.pin.button_style = "warning" if art.pinned else ""
                row.cells.value = row_table(spec, cells, width, best=i == 0, title=art.artifact_id)
        self._shown = len(rows)
        self.body.children = [r.box for r in self._pool[: len(rows)]]

    def _on_kind(self, _change: dict[str, Any]) -> None:
        if self._quiet_depth:
            return
        self._want["metric"] = None  # a new kind: its own metric (last chosen or default), not the one asked at start
        self._want_mode = None
        self._redraw()

    def _on_metric(self, change: dict[str, Any]) -> None:
        if self._quiet_depth:
            return
        kind = self.kind.value
        if kind and change["new"]:
            self._metric_of[kind] = change["new"]
        self._want["metric"] = None
        self._want_mode = None
        self._on = (kind, None)  # a new metric: its own (or last chosen) direction
        self._redraw()

    def _on_mode(self, change: dict[str, Any]) -> None:
        if self._quiet_depth:
            return
        kind, metric = self.kind.value, self.metric.value
        if kind and metric and change["new"] in ("max", "min"):
            self._metric_of[kind] = metric
            self._mode_of[(kind, metric)] = change["new"]
        self._redraw()

    def _select_row(self, row: LeaderRow, on: bool) -> None:
        if self._quiet_depth or row.artifact_id is None:
            return
        aid = row.artifact_id
        if on and aid not in self._selected:
            self._selected.append(aid)
        elif not on and aid in self._selected:
            self._selected.remove(aid)
        self._selection_changed()

    def _selection_changed(self) -> None:
        if self.on_select is not None:
            with self._reporting():
                self.on_select(self.selected)

    def _pin_row(self, row: LeaderRow, pinned: bool) -> None:
        if self._quiet_depth or row.artifact_id is None:
            return
        with self._reporting():
            art = self.artifacts.pin(row.artifact_id, bool(pinned))
            row.pin.button_style = "warning" if art.pinned else ""
            self._say(f"{'pinned' if pinned else 'unpinned'} {art.short_id}")


__all__ = ["MAX_ROWS", "LeaderRow", "LeaderboardTab"]
