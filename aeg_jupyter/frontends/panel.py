"""The live panel: leaderboards, an artifact browser with previews, the memory feed and runs.

Plain ipywidgets (no server, no iframe, no lab extension), so it works in JupyterLab, Notebook 7,
VS Code and on Binder. The widgets are thin: every table is a core query (:func:`~aeg_jupyter.
leaderboard.ranked`, :func:`~aeg_jupyter.core.browse.find_artifacts` / :func:`~aeg_jupyter.core.browse.
preview`, :meth:`EventLog.recent`, :func:`~aeg_jupyter.core.runs.summarize_runs`) rendered as HTML in
which every user string is escaped.

Updates:

- Writes of this kernel: the panel subscribes to the store (:meth:`Store.subscribe`). A write
  redraws the visible tab at once if the last redraw is older than ``live_interval`` (0.25 s),
  else one redraw is scheduled on the kernel's asyncio loop (``call_later``): a loop writing a
  million events costs at most four redraws a second. Writes from worker threads (``save_file``
  runs in ``asyncio.to_thread``) are handed to the loop; no thread ever touches a widget.
- Other kernels' writes: the Refresh button, or opt-in "auto-refresh", an asyncio task on the
  kernel loop that refreshes every few seconds.

Example (in a notebook)::

    from aeg_jupyter.frontends.panel import Panel
    Panel(context, kind="checkpoint", metric="val_acc")
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import html
import json
import math
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import ipywidgets as widgets

from ..api.context import KernelContext
from ..base.errors import AegError
from ..base.models import Artifact, Scope
from ..core.artifacts import Mode
from ..core.browse import Preview, find_artifacts, parse_label_filter, preview
from ..core.frames import events_frame, leaderboard_frame
from ..core.leaderboard import label_keys, ranked
from ..core.runs import summarize_runs

TABS = ("leaderboard", "artifacts", "memory", "runs")
TAB_TITLES = ("Leaderboard", "Artifacts", "Memory", "Runs")
SCOPE_OPTIONS = [("all", "all"), ("this run", "run"), ("this notebook", "graph"), ("this cell", "node")]
MAX_ROWS = 100  # leaderboard rows (top-N upper bound)
MAX_LIST = 200  # artifacts listed in the browser
MAX_EVENTS = 500
MAX_RUNS = 50
LIVE_INTERVAL = 0.25  # seconds between two live redraws (at most ~4 a second)
_NONE = ""  # the "(all)" / "(none)" choice of a dropdown
_SCOPE_NAMES = {value: label for label, value in SCOPE_OPTIONS}

# One style sheet, sent once with the panel's title; every table refers to it by class.
CSS = (
    "<style>"
    ".aeg-table{border-collapse:collapse;font-size:12px}"
    ".aeg-table td,.aeg-table th{overflow:hidden;text-overflow:ellipsis;white-space:nowrap;padding:2px 6px;"
    "text-align:left;max-width:260px}"
    ".aeg-table th{border-bottom:1px solid #999}"
    ".aeg-table td{border-bottom:1px solid #eee}"
    ".aeg-fixed{table-layout:fixed}"
    ".aeg-best td{background:#fff1b8;color:#222;font-weight:600}"
    ".aeg-note{color:#666;font-size:11px}"
    ".aeg-pre{max-height:320px;overflow:auto;font-size:12px;background:rgba(128,128,128,.1);padding:6px}"
    "</style>"
)


def esc(value: Any) -> str:
    """Text -> HTML text (``<``, ``>``, ``&`` and quotes escaped): every user string goes through this.

    Example:
        >>> esc("<img src=x onerror=alert(1)>")
        '&lt;img src=x onerror=alert(1)&gt;'
    """
    return html.escape(value if isinstance(value, str) else str(value), quote=True)


def fmt_value(value: Any, width: int = 80) -> str:
    """A cell value as short text: numbers with 4 significant digits, JSON for containers, cut to ``width``.

    Example:
        >>> fmt_value(0.912345), fmt_value({"a": [1, 2]}), fmt_value(None)
        ('0.9123', '{"a": [1, 2]}', '')
    """
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.4g}"
    if isinstance(value, bool | int | str):
        text = str(value)
    else:
        try:
            text = json.dumps(value, ensure_ascii=False, default=str)
        except (TypeError, ValueError):
            text = str(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def fmt_age(then: datetime | None, now: datetime | None = None) -> str:
    """How long ago: ``"12s"``, ``"5m"``, ``"3h"``, ``"2d"``.

    Example:
        >>> from datetime import timedelta
        >>> now = datetime(2026, 1, 2, tzinfo=UTC)
        >>> fmt_age(now - timedelta(minutes=5), now)
        '5m'
    """
    if then is None:
        return ""
    secs = max(0.0, ((now or datetime.now(UTC)) - then).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if secs >= size:
            return f"{int(secs // size)}{unit}"
    return f"{int(secs)}s"


def html_table(
    columns: Sequence[str], rows: Sequence[Sequence[Any]], *, css_class: str = "", highlight: int | None = None
) -> str:
    """An HTML table of text cells; headers and cells are escaped, long cells cut (full text on hover).

    Example:
        >>> "&lt;b&gt;" in html_table(["k"], [["<b>"]])
        True
    """
    head = "".join(f"<th>{esc(c)}</th>" for c in columns)
    body = []
    for i, row in enumerate(rows):
        cls = "aeg-row aeg-best" if i == highlight else "aeg-row"
        cells = "".join(f"<td title='{esc(fmt_value(v, 2000))}'>{esc(fmt_value(v))}</td>" for v in row)
        body.append(f"<tr class='{cls}'>{cells}</tr>")
    return f"<table class='aeg-table {esc(css_class)}'><tr>{head}</tr>{''.join(body)}</table>"


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class _LeaderRow:
    """One pooled leaderboard row: a pin toggle and the row's cells (reused across redraws)."""

    def __init__(self, panel: Panel) -> None:
        self.artifact_id: str | None = None
        self.pin = widgets.ToggleButton(
            value=False, description="", icon="thumb-tack", tooltip="pin (gc never collects a pinned artifact)",
            layout=widgets.Layout(width="36px", height="26px", padding="0"),
        )  # fmt: skip
        self.pin.add_class("aeg-lb-pin")
        self.cells = widgets.HTML()
        self.box = widgets.HBox([self.pin, self.cells], layout=widgets.Layout(align_items="center"))
        self.pin.observe(lambda change: panel._pin_row(self, change["new"]), names="value")


class Panel(widgets.VBox):
    """The aeg panel for a kernel context: Leaderboard, Artifacts, Memory and Runs tabs.

    Args:
        context: the kernel's context (``context`` after ``%load_ext aeg_jupyter``).
        kind: artifact kind ranked first (default: the first kind with metrics).
        metric: metric ranked by (default: the kind's first metric).
        mode: ``"max"`` or ``"min"``.
        scope: ``"all"`` (default), ``"run"``, ``"graph"`` or ``"node"``, for every tab.
        group_by: label key for "best per label" (e.g. ``"exp"``).
        limit: top-N rows of the leaderboard.
        tab: the tab shown first (``"leaderboard"``, ``"artifacts"``, ``"memory"``, ``"runs"``).
        live_interval: the least time between two live redraws, in seconds.

    Example:
        >>> Panel(context, kind="checkpoint", metric="val_acc", group_by="exp")   # doctest: +SKIP
    """

    def __init__(
        self,
        context: KernelContext,
        *,
        kind: str | None = None,
        metric: str | None = None,
        mode: Mode = "max",
        scope: Scope = "all",
        group_by: str | None = None,
        limit: int = 10,
        tab: str = "leaderboard",
        live_interval: float = LIVE_INTERVAL,
    ) -> None:
        super().__init__()
        if tab not in TABS:
            raise ValueError(f"tab must be one of {', '.join(TABS)}, not {tab!r}")
        if scope not in _SCOPE_NAMES:
            raise ValueError(f"scope must be one of {', '.join(_SCOPE_NAMES)}, not {scope!r}")
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', not {mode!r}")
        self.context = context
        self.artifacts = context.store.artifacts
        self.event_log = context.store.event_log
        self.live_interval = float(live_interval)
        self.renders = 0  # how many tab redraws so far (tests and debugging)
        self.lb_frame = leaderboard_frame([], metric=metric or "")
        self.me_frame = events_frame([])
        self._want: dict[str, str | None] = {"kind": kind, "metric": metric}  # asked for, not yet in the store
        self._quiet_depth = 0
        self._busy = False
        self._closed = False
        self._stale: set[str] = set(TABS)
        self._live_pending = False
        self._last_live = 0.0
        self._owner = threading.get_ident()
        self._loop = _running_loop()
        self._auto_task: asyncio.Task[None] | concurrent.futures.Future[None] | None = None
        self._lb_pool: list[_LeaderRow] = []
        self._lb_ids: list[str] = []
        self._selected: Artifact | None = None

        wide = {"description_width": "initial"}
        # -- header ------------------------------------------------------------------------------
        self.title = widgets.HTML(
            f"{CSS}<b>aeg</b> <span style='color:#666'>{esc(context.store.root)} · run {esc(context.run_id)}</span>"
        )
        self.status = widgets.HTML()
        self.refresh_button = widgets.Button(
            description="Refresh", icon="refresh", tooltip="read other kernels' writes and redraw",
            layout=widgets.Layout(width="100px"),
        )  # fmt: skip
        self.auto = widgets.Checkbox(value=False, description="auto-refresh every", indent=False, style=wide)
        self.every = widgets.BoundedFloatText(
            value=5.0, min=0.5, max=3600.0, step=0.5, layout=widgets.Layout(width="70px")
        )
        self.auto.add_class("aeg-auto")
        self.every.add_class("aeg-every")
        header = widgets.HBox(
            [self.title, self.refresh_button, self.auto, self.every, widgets.HTML("s"), self.status],
            layout=widgets.Layout(align_items="center", flex_flow="row wrap"),
        )

        # -- leaderboard -------------------------------------------------------------------------
        self.lb_kind = widgets.Dropdown(description="kind", options=[], style=wide)
        self.lb_metric = widgets.Dropdown(description="metric", options=[], style=wide)
        self.lb_mode = widgets.ToggleButtons(
            options=[("max", "max"), ("min", "min")], value=mode,
            style={"button_width": "56px"}, tooltips=["higher is better", "lower is better"],
        )  # fmt: skip
        self.lb_scope = widgets.Dropdown(description="scope", options=SCOPE_OPTIONS, value=scope, style=wide)
        self.lb_group = widgets.Dropdown(description="best per", options=[("(none)", _NONE)], style=wide)
        self.lb_limit = widgets.BoundedIntText(
            value=max(1, min(int(limit), MAX_ROWS)), min=1, max=MAX_ROWS, description="top", style=wide,
            layout=widgets.Layout(width="110px"),
        )  # fmt: skip
        for w, cls in (
            (self.lb_kind, "aeg-lb-kind"), (self.lb_metric, "aeg-lb-metric"), (self.lb_mode, "aeg-lb-mode"),
            (self.lb_scope, "aeg-lb-scope"), (self.lb_group, "aeg-lb-group"), (self.lb_limit, "aeg-lb-limit"),
        ):  # fmt: skip
            w.add_class(cls)
        self.lb_header = widgets.HTML()
        self.lb_note = widgets.HTML()
        self.lb_body = widgets.VBox(layout=widgets.Layout(overflow="auto"))
        self._want["group"] = group_by
        leaderboard = widgets.VBox(
            [
                widgets.HBox([self.lb_kind, self.lb_metric, self.lb_mode], layout=widgets.Layout(flex_flow="row wrap")),
                widgets.HBox(
                    [self.lb_scope, self.lb_group, self.lb_limit], layout=widgets.Layout(flex_flow="row wrap")
                ),
                self.lb_note,
                widgets.HBox([widgets.HTML(layout=widgets.Layout(width="36px", margin="0 2px")), self.lb_header]),
                self.lb_body,
            ]
        )
        leaderboard.add_class("aeg-leaderboard")

        # -- artifacts ---------------------------------------------------------------------------
        self.ar_kind = widgets.Dropdown(description="kind", options=[("(all)", _NONE)], style=wide)
        self.ar_labels = widgets.Text(
            description="labels", placeholder="exp=A, seed=3", continuous_update=False, style=wide
        )
        self.ar_text = widgets.Text(
            description="search", placeholder="name, id, run, label", continuous_update=False, style=wide
        )
        self.ar_scope = widgets.Dropdown(description="scope", options=SCOPE_OPTIONS, value=scope, style=wide)
        # Option labels are plain text: the front end sets them with textContent, so they are not escaped.
        self.ar_list = widgets.Select(options=[], rows=10, layout=widgets.Layout(width="100%"))
        self.ar_list.add_class("aeg-ar-list")
        self.ar_details = widgets.HTML()
        self.ar_image = widgets.Image(
            layout=widgets.Layout(max_width="480px", max_height="360px", display="none", align_self="flex-start")
        )
        self.ar_image.add_class("aeg-ar-image")
        self.ar_preview = widgets.HTML()
        self.ar_preview.add_class("aeg-ar-preview")
        self.ar_pin = widgets.ToggleButton(value=False, description="pin", icon="thumb-tack", disabled=True)
        self.ar_copy = widgets.Button(description="Copy path", icon="copy", disabled=True)
        self.ar_path = widgets.Text(description="path", style=wide, layout=widgets.Layout(width="60%", display="none"))
        self.ar_clip = widgets.HTML()
        artifacts = widgets.VBox(
            [
                widgets.HBox([self.ar_kind, self.ar_scope], layout=widgets.Layout(flex_flow="row wrap")),
                widgets.HBox([self.ar_labels, self.ar_text], layout=widgets.Layout(flex_flow="row wrap")),
                self.ar_list,
                widgets.HBox([self.ar_pin, self.ar_copy, self.ar_path, self.ar_clip]),
                widgets.HBox(
                    [
                        widgets.Box([self.ar_details], layout=widgets.Layout(flex="1 1 340px", min_width="300px")),
                        widgets.VBox([self.ar_image, self.ar_preview], layout=widgets.Layout(flex="1 1 420px")),
                    ],
                    layout=widgets.Layout(flex_flow="row wrap", align_items="flex-start"),
                ),
            ]
        )
        artifacts.add_class("aeg-artifacts")

        # -- memory ------------------------------------------------------------------------------
        self.me_kind = widgets.Dropdown(description="kind", options=[("(all)", _NONE)], style=wide)
        self.me_scope = widgets.Dropdown(description="scope", options=SCOPE_OPTIONS, value=scope, style=wide)
        self.me_limit = widgets.BoundedIntText(
            value=50, min=1, max=MAX_EVENTS, description="last", style=wide, layout=widgets.Layout(width="110px")
        )
        self.me_table = widgets.HTML()
        self.me_table.add_class("aeg-me-table")
        memory = widgets.VBox([widgets.HBox([self.me_kind, self.me_scope, self.me_limit]), self.me_table])

        # -- runs --------------------------------------------------------------------------------
        self.ru_table = widgets.HTML()
        self.ru_table.add_class("aeg-ru-table")
        runs = widgets.VBox([self.ru_table])

        self.tabs = widgets.Tab(children=[leaderboard, artifacts, memory, runs], titles=TAB_TITLES)
        self.tabs.selected_index = TABS.index(tab)
        self.children = [header, self.tabs]
        self.add_class("aeg-panel")

        # -- wiring ------------------------------------------------------------------------------
        self.refresh_button.on_click(lambda _b: self.refresh())
        self.auto.observe(self._on_auto, names="value")
        self.tabs.observe(self._on_tab, names="selected_index")
        self.lb_kind.observe(self._on_lb_kind, names="value")
        for w in (self.lb_metric, self.lb_mode, self.lb_scope, self.lb_group, self.lb_limit):
            w.observe(self._on_change("leaderboard"), names="value")
        for w in (self.ar_kind, self.ar_labels, self.ar_text, self.ar_scope):
            w.observe(self._on_change("artifacts"), names="value")
        self.ar_list.observe(self._on_select, names="value")
        self.ar_pin.observe(self._on_ar_pin, names="value")
        self.ar_copy.on_click(lambda _b: self.copy_path())
        for w in (self.me_kind, self.me_scope, self.me_limit):
            w.observe(self._on_change("memory"), names="value")
        self._unsubscribe = context.store.subscribe(self._on_store_change)
        self.refresh()

    # -- public ------------------------------------------------------------------------------------
    @property
    def active_tab(self) -> str:
        """The name of the tab shown (``"leaderboard"``, ``"artifacts"``, ``"memory"`` or ``"runs"``)."""
        return TABS[self.tabs.selected_index or 0]

    def show(self, tab: str) -> None:
        """Switch to a tab by name. ``panel.show("memory")``"""
        self.tabs.selected_index = TABS.index(tab)

    def refresh(self) -> None:
        """Take in other kernels' writes and redraw the visible tab (the others redraw when shown).

        Example:
            >>> panel.refresh()   # doctest: +SKIP
        """
        if self._closed:
            return
        self._stale.update(TABS)
        self.refresh_button.disabled = True
        try:
            self.artifacts.catch_up()
            self.event_log.catch_up()
            self._draw(self.active_tab)
        finally:
            self.refresh_button.disabled = False

    def select_artifact(self, artifact_id: str) -> None:
        """Show one artifact in the Artifacts tab (switching to it), with its details and preview.

        Example:
            >>> panel.select_artifact(best.artifact_id)   # doctest: +SKIP
        """
        art = self.artifacts.get(artifact_id)
        with self._quiet():
            self.ar_kind.value = _NONE
            self.ar_labels.value = ""
            self.ar_text.value = ""
            self.ar_scope.value = "all"
        self.show("artifacts")
        self._draw("artifacts")
        if all(value != art.artifact_id for _, value in self.ar_list.options):  # older than the newest MAX_LIST
            with self._quiet():
                self.ar_list.options = [(_option_label(art, datetime.now(UTC)), art.artifact_id), *self.ar_list.options]
        self.ar_list.value = art.artifact_id

    def copy_path(self) -> str | None:
        """Materialize the selected artifact as a read-only local path and show it (with a clipboard button).

        Example:
            >>> panel.copy_path()   # doctest: +SKIP
            '/work/.aeg/files/92f8.../curve.png'
        """
        art = self._selected
        if art is None:
            return None
        with self._working(self.ar_copy):
            path = self.artifacts.local_dir(art) if art.is_dir else self.artifacts.local_file(art)
        self.ar_path.value = path
        self.ar_path.layout.display = ""
        self.ar_clip.value = (
            f"<button class='aeg-copy' data-path='{esc(path)}' title='copy to the clipboard' "
            "onclick='navigator.clipboard &amp;&amp; navigator.clipboard.writeText(this.dataset.path);"
            'this.textContent="copied"\'>📋 copy</button>'
        )
        return path

    def close(self) -> None:
        """Stop live updates and auto-refresh, and close every widget of the panel.

        Example:
            >>> panel.close()   # doctest: +SKIP
        """
        if self._closed:
            return
        self._closed = True
        self._unsubscribe()
        self._stop_auto()
        owned = {id(w): w for root in (self, *(r.box for r in self._lb_pool)) for w in _descendants(root)}
        for w in owned.values():
            if w is not self:
                w.close()
        super().close()

    # -- live updates ------------------------------------------------------------------------------
    def _on_store_change(self, table: str) -> None:
        """Store listener: runs in the writing thread right after a write; never touches widgets off-thread."""
        if self._closed:
            return
        self._stale.update(TABS)
        wait = self._last_live + self.live_interval - time.monotonic()
        if wait <= 0 and not self._busy and threading.get_ident() == self._owner:
            # Drawn in the writing call: a long cell that keeps writing (the loop cannot run until it
            # ends) still shows progress, at most once per live_interval.
            self._live_draw()
            return
        if self._live_pending:
            return
        loop = self._loop if self._loop is not None and self._loop.is_running() else None
        if loop is None:
            return  # no loop to schedule on: the next write, Refresh or a tab switch draws it
        self._live_pending = True
        loop.call_soon_threadsafe(self._live_fire)

    def _live_fire(self) -> None:
        wait = self._last_live + self.live_interval - time.monotonic()
        if wait > 0 or self._busy:
            asyncio.get_running_loop().call_later(max(wait, 0.01), self._live_fire)
            return
        self._live_pending = False
        self._live_draw()

    def _live_draw(self) -> None:
        self._last_live = time.monotonic()
        if self._closed:
            return
        tab = self.active_tab
        if tab != "runs":  # a runs summary scans the events table: only on Refresh or when shown
            self._draw(tab)

    def _on_auto(self, change: dict[str, Any]) -> None:
        if change["new"]:
            self._start_auto()
        else:
            self._stop_auto()

    def _start_auto(self) -> None:
        loop = _running_loop() or (self._loop if self._loop is not None and self._loop.is_running() else None)
        if loop is None:
            with self._quiet():
                self.auto.value = False
            self._say("auto-refresh needs the kernel's event loop (run the panel in Jupyter); use Refresh")
            return
        self._stop_auto()
        if _running_loop() is loop:
            self._auto_task = loop.create_task(self._auto_refresh())
        else:
            self._auto_task = asyncio.run_coroutine_threadsafe(self._auto_refresh(), loop)

    def _stop_auto(self) -> None:
        if self._auto_task is not None:
            self._auto_task.cancel()
            self._auto_task = None

    async def _auto_refresh(self) -> None:
        """The opt-in interval refresh: an asyncio task on the kernel loop (never a thread)."""
        while not self._closed:
            await asyncio.sleep(float(self.every.value))
            if self._closed or not self.auto.value:
                return
            try:
                self.refresh()
            except Exception as exc:  # keep refreshing; say what went wrong
                self._say(f"refresh failed: {type(exc).__name__}: {exc}", error=True)

    # -- events from the widgets -------------------------------------------------------------------
    def _on_change(self, tab: str) -> Any:
        def handler(_change: dict[str, Any]) -> None:
            if self._quiet_depth:
                return
            self._stale.add(tab)
            self._draw(tab)

        return handler

    def _on_tab(self, _change: dict[str, Any]) -> None:
        tab = self.active_tab
        if tab in self._stale:
            self._draw(tab)

    def _on_lb_kind(self, _change: dict[str, Any]) -> None:
        if self._quiet_depth:
            return
        self._want["metric"] = None
        self._draw("leaderboard")

    def _on_select(self, change: dict[str, Any]) -> None:
        if self._quiet_depth:
            return
        self._show_artifact(change["new"])

    def _on_ar_pin(self, change: dict[str, Any]) -> None:
        if self._quiet_depth or self._selected is None:
            return
        self._selected = self.artifacts.pin(self._selected.artifact_id, bool(change["new"]))
        self._show_pin(self._selected.pinned)
        self._say(f"{'pinned' if change['new'] else 'unpinned'} {self._selected.short_id}")

    def _pin_row(self, row: _LeaderRow, pinned: bool) -> None:
        if self._quiet_depth or row.artifact_id is None:
            return
        art = self.artifacts.pin(row.artifact_id, bool(pinned))
        row.pin.button_style = "warning" if art.pinned else ""
        self._say(f"{'pinned' if pinned else 'unpinned'} {art.short_id}")

    # -- drawing -----------------------------------------------------------------------------------
    def _draw(self, tab: str) -> None:
        """Recompute one tab from the core (only if shown; a hidden tab is drawn when it is shown)."""
        if self._closed:
            return
        if tab != self.active_tab:
            self._stale.add(tab)
            return
        if self._busy:  # a redraw asked for while drawing (e.g. by a pin): draw once more later
            self._stale.add(tab)
            return
        self._busy = True
        self.refresh_button.disabled = True
        try:
            self._stale.discard(tab)
            self._say("")
            getattr(self, f"_draw_{tab}")()
            self.renders += 1
        except AegError as exc:
            self._say(str(exc), error=True)
        finally:
            self._busy = False
            self.refresh_button.disabled = False

    def _draw_leaderboard(self) -> None:
        index = self.artifacts
        kinds = index.kinds()
        kind = _pick(self.lb_kind.value, self._want.get("kind"), kinds, prefer=lambda k: bool(index.metric_names(k)))
        metrics = index.metric_names(kind) if kind else []
        metric = _pick(self.lb_metric.value, self._want.get("metric"), metrics)
        scope = self.context.scope(self.lb_scope.value)
        groups = label_keys(index, kind=kind) if kind else []
        group = _pick(self.lb_group.value or None, self._want.get("group"), groups, fallback=False)
        with self._quiet():
            _set_options(self.lb_kind, kinds, kind)
            _set_options(self.lb_metric, metrics, metric)
            _set_options(self.lb_group, [("(none)", _NONE), *((g, g) for g in groups)], group or _NONE)
        if kind == self._want.get("kind"):
            self._want["kind"] = None
        if metric == self._want.get("metric"):
            self._want["metric"] = None
        if group == self._want.get("group"):
            self._want["group"] = None
        if kind is None or metric is None:
            self.lb_frame = leaderboard_frame([], metric=metric or "")
            self._lb_show([], [], metric or "")
            if kind is None:
                self.lb_note.value = (
                    "<i>No artifacts yet. Save one with metrics, e.g. "
                    "<code>await arts.save_json(w, kind='checkpoint', metrics={'val_acc': 0.9})</code>.</i>"
                )
            else:
                self.lb_note.value = f"<i>No artifact of kind <b>{esc(kind)}</b> has metrics to rank by.</i>"
            return
        mode = self.lb_mode.value
        rows = ranked(
            index, kind=kind, metric=metric, mode=mode, where=scope, group_by=group, limit=self.lb_limit.value
        )
        self.lb_frame = leaderboard_frame(rows, metric=metric, group_by=group)
        label_cols = ([group] if group else []) + [k for k in groups if k != group][:5]
        self._lb_show(rows, label_cols, metric)
        where = _SCOPE_NAMES[self.lb_scope.value]
        per = f", best per <b>{esc(group)}</b>" if group else ""
        if rows:
            self.lb_note.value = (
                f"<span style='color:#555'>{len(rows)} {esc(kind)} by <b>{esc(metric)}</b> "
                f"({'higher' if mode == 'max' else 'lower'} is better{per}), scope: {esc(where)}</span>"
            )
        else:
            self.lb_note.value = f"<i>No {esc(kind)} with metric {esc(metric)} in scope “{esc(where)}”{per}.</i>"

    def _lb_show(self, rows: list[Artifact], label_cols: list[str], metric: str) -> None:
        others = sorted({m for a in rows for m in a.metrics if m != metric})[:5]
        spec: list[tuple[str, int]] = [("#", 32), ("id", 92), ("name", 140), (metric, 84)]
        spec += [(m, 76) for m in others] + [(k, 90) for k in label_cols] + [("age", 48), ("run", 190)]
        width = sum(w for _, w in spec)
        self.lb_header.value = _row_table(spec, [name for name, _ in spec], width, header=True)
        while len(self._lb_pool) < len(rows):
            self._lb_pool.append(_LeaderRow(self))
        now = datetime.now(UTC)
        with self._quiet():
            for i, (row, art) in enumerate(zip(self._lb_pool, rows, strict=False)):
                cells = [
                    str(i + 1), art.short_id, art.name or "", fmt_value(art.metrics.get(metric)),
                    *(fmt_value(art.metrics.get(m)) for m in others),
                    *(fmt_value(art.labels.get(k)) for k in label_cols),
                    fmt_age(art.created_at, now), art.run_id or "",
                ]  # fmt: skip
                row.artifact_id = art.artifact_id
                row.pin.value = art.pinned
                row.pin.button_style = "warning" if art.pinned else ""
                row.cells.value = _row_table(spec, cells, width, best=i == 0, title=art.artifact_id)
        self._lb_ids = [a.artifact_id for a in rows]
        self.lb_body.children = [r.box for r in self._lb_pool[: len(rows)]]

    @property
    def lb_rows(self) -> list[_LeaderRow]:
        """The leaderboard rows shown, best first (each has ``artifact_id``, ``pin`` and ``cells``)."""
        return self._lb_pool[: len(self._lb_ids)]

    def _draw_artifacts(self) -> None:
        index = self.artifacts
        kinds = index.kinds()
        with self._quiet():
            _set_options(self.ar_kind, [("(all)", _NONE), *((k, k) for k in kinds)], self.ar_kind.value or _NONE)
        try:
            labels = parse_label_filter(self.ar_labels.value)
        except AegError as exc:
            self._say(str(exc), error=True)
            return
        arts = find_artifacts(
            index, kind=self.ar_kind.value or None, labels=labels, text=self.ar_text.value,
            where=self.context.scope(self.ar_scope.value), limit=MAX_LIST,
        )  # fmt: skip
        now = datetime.now(UTC)
        options = [(_option_label(a, now), a.artifact_id) for a in arts]
        keep = self.ar_list.value if any(v == self.ar_list.value for _, v in options) else None
        with self._quiet():
            if list(self.ar_list.options) != options:
                self.ar_list.options = options
            self.ar_list.value = keep
        if keep is None:
            self._show_artifact(None)
        elif self._selected is not None:
            fresh = index.get(keep)
            if fresh.pinned != self._selected.pinned:
                self._show_artifact(keep)

    def _show_artifact(self, artifact_id: str | None) -> None:
        self.ar_path.layout.display = "none"
        self.ar_path.value = ""
        self.ar_clip.value = ""
        self.ar_image.layout.display = "none"
        if artifact_id is None:
            self._selected = None
            self.ar_details.value = ""
            self.ar_preview.value = ""
            self.ar_pin.disabled = self.ar_copy.disabled = True
            return
        art = self.artifacts.get(artifact_id)
        self._selected = art
        with self._quiet():
            self.ar_pin.value = art.pinned
        self._show_pin(art.pinned)
        self.ar_pin.disabled = self.ar_copy.disabled = False
        self.ar_details.value = art._repr_html_()  # escapes every field
        self._show_preview(preview(self.artifacts, art))

    def _show_preview(self, p: Preview) -> None:
        note = f"<div class='aeg-note'>{esc(p.note)}</div>" if p.note else ""
        if p.kind == "image" and p.image is not None:
            self.ar_image.format = p.image_format or "png"
            self.ar_image.value = p.image
            self.ar_image.layout.display = ""
            self.ar_preview.value = note
        elif p.kind in ("text", "json"):
            self.ar_preview.value = f"<pre class='aeg-pre aeg-preview-text'>{esc(p.text or '')}</pre>{note}"
        elif p.kind == "table" and p.frame is not None:
            frame = p.frame
            rows = [[_cell(v) for v in rec] for rec in frame.itertuples(index=False, name=None)]
            self.ar_preview.value = (
                html_table([str(c) for c in frame.columns], rows, css_class="aeg-preview-table") + note
            )
        elif p.kind == "dir":
            rows = [[e.get("path", ""), fmt_value(e.get("size")) if e.get("blob") else "dir"] for e in p.entries]
            self.ar_preview.value = html_table(["path", "size"], rows, css_class="aeg-preview-dir") + note
        else:
            self.ar_preview.value = (
                f"<p class='aeg-preview-other'>{esc(p.note)}. Use <b>Copy path</b> for a read-only local file.</p>"
            )

    def _draw_memory(self) -> None:
        log = self.event_log
        kinds = log.kinds()
        with self._quiet():
            _set_options(self.me_kind, [("(all)", _NONE), *((k, k) for k in kinds)], self.me_kind.value or _NONE)
        kind = self.me_kind.value or None
        events = log.recent(
            kinds=[kind] if kind else None, limit=self.me_limit.value, where=self.context.scope(self.me_scope.value)
        )
        frame = events_frame(events)  # newest first
        self.me_frame = frame
        extra = [c for c in frame.columns if c.startswith(("data.", "metric.", "out."))][:16]
        text_col = any(not isinstance(e.data, dict) and e.text is not None for e in events)
        columns = ["time", "kind", "topic", *(c.split(".", 1)[1] if c.startswith("data.") else c for c in extra)]
        columns += ["text"] * text_col + ["run", "cell"]
        now = datetime.now(UTC)
        values = {c: frame[c].tolist() for c in extra}
        rows = []
        for i, ev in enumerate(reversed(events)):
            row = [f"{fmt_age(datetime.fromisoformat(ev.ts), now)} ago", ev.kind, ev.topic or ""]
            row += [_cell(values[c][i]) for c in extra]
            if text_col:
                row.append("" if isinstance(ev.data, dict) else ev.text or "")
            row += [ev.run_id or "", ev.node_id or ""]
            rows.append(row)
        if not rows:
            self.me_table.value = (
                "<i>No events yet. Record one with <code>await mem.record(kind='note', data={...})</code>.</i>"
            )
            return
        self.me_table.value = html_table(columns, rows, css_class="aeg-events")

    def _draw_runs(self) -> None:
        runs = summarize_runs(self.context.store)[:MAX_RUNS]
        now = datetime.now(UTC)
        rows = [
            [
                (r.run_id or "(no run id)") + ("  (this kernel)" if r.run_id == self.context.run_id else ""),
                r.graph_id or "", r.first.strftime("%Y-%m-%d %H:%M:%S"), f"{fmt_age(r.last, now)} ago",
                r.artifacts, r.events,
            ]
            for r in runs
        ]  # fmt: skip
        mine = next((i for i, r in enumerate(runs) if r.run_id == self.context.run_id), None)
        if not rows:
            self.ru_table.value = "<i>No runs yet: a run appears once it saves an artifact or records an event.</i>"
            return
        self.ru_table.value = html_table(
            ["run", "notebook", "started (UTC)", "last activity", "artifacts", "events"], rows,
            css_class="aeg-runs", highlight=mine,
        )  # fmt: skip

    # -- helpers -----------------------------------------------------------------------------------
    def _show_pin(self, pinned: bool) -> None:
        self.ar_pin.description = "pinned" if pinned else "pin"
        self.ar_pin.button_style = "warning" if pinned else ""

    @contextmanager
    def _quiet(self) -> Iterator[None]:
        """Widget values set inside do not trigger redraws (the code setting them redraws once)."""
        self._quiet_depth += 1
        try:
            yield
        finally:
            self._quiet_depth -= 1

    @contextmanager
    def _working(self, button: widgets.Button) -> Iterator[None]:
        button.disabled = True
        try:
            yield
        finally:
            button.disabled = False

    def _say(self, message: str, *, error: bool = False) -> None:
        color = "#b00" if error else "#555"
        self.status.value = f"<span style='color:{color}'>{esc(message)}</span>" if message else ""


def _pick(
    current: str | None, wanted: str | None, options: Sequence[str], *, prefer: Any = None, fallback: bool = True
) -> str | None:
    """The dropdown value to show: what was asked for, else what is shown, else the first preferred option."""
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


def _set_options(dropdown: widgets.Dropdown, options: Sequence[Any], value: Any) -> None:
    """Replace a dropdown's options only when they changed (each change is a message to the browser)."""
    if tuple(dropdown.options) != tuple(options):
        dropdown.options = list(options)
    values = [o[1] if isinstance(o, tuple) else o for o in options]
    dropdown.value = value if value in values else (values[0] if values else None)


def _row_table(
    spec: Sequence[tuple[str, int]], cells: Sequence[str], width: int, *, header: bool = False, best: bool = False,
    title: str = "",
) -> str:  # fmt: skip
    """One leaderboard row as a fixed-layout table, so the rows (separate widgets) line up as columns."""
    cols = "".join(f"<col style='width:{w}px'>" for _, w in spec)
    tag = "th" if header else "td"
    tds = "".join(f"<{tag} title='{esc(c)}'>{esc(c)}</{tag}>" for c in cells)
    cls = "aeg-table aeg-fixed " + ("aeg-lb-header" if header else "aeg-lb-row" + (" aeg-best" if best else ""))
    data = f" data-artifact-id='{esc(title)}'" if title else ""
    return f"<table class='{cls}' style='width:{width}px'{data}><colgroup>{cols}</colgroup><tr>{tds}</tr></table>"


def _option_label(art: Artifact, now: datetime) -> str:
    labels = ", ".join(f"{k}={fmt_value(v, 30)}" for k, v in list(art.labels.items())[:4])
    metrics = ", ".join(f"{k}={fmt_value(v)}" for k, v in list(art.metrics.items())[:3])
    parts = [art.short_id, art.kind, art.name or "", labels, metrics, fmt_age(art.created_at, now)]
    return "  ·  ".join(p for p in parts if p)


def _cell(value: Any) -> Any:
    """A DataFrame cell for display: missing values (None, NaN, NaT) as empty text."""
    try:
        if value is None or (not isinstance(value, list | dict | str) and value != value):
            return ""
    except (TypeError, ValueError):
        pass
    return value


def _descendants(root: widgets.Widget) -> Iterator[widgets.Widget]:
    stack = [root]
    while stack:
        w = stack.pop()
        yield w
        stack.extend(getattr(w, "children", ()) or ())


__all__ = ["Panel", "esc", "fmt_age", "fmt_value", "html_table"]
