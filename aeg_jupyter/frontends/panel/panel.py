"""The :class:`Panel`: a header, five tabs and a status line, kept current by :mod:`.live`.

Each tab is built once and draws itself in its ``refresh()``; the panel decides when: only the tab
shown is drawn (a hidden one when it is shown), never two draws at once, and every error of a
draw goes to the status line.

Example (in a notebook)::

    from aeg_jupyter.frontends.panel import Panel
    Panel(context, kind="checkpoint", metric="val_acc")
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ipywidgets as widgets

from ...api.context import KernelContext
from ...base.errors import AegError
from ...base.html import esc
from ...base.models import Scope
from ...core.artifacts import Mode
from .artifacts import ArtifactsTab
from .charts import ChartsTab
from .leaderboard import LeaderboardTab
from .live import LIVE_INTERVAL, LiveUpdates
from .memory import MemoryTab
from .runs import RunsTab
from .style import CSS
from .tab import SCOPE_NAMES, WIDE, PanelTab, descendants, working

TABS = ("leaderboard", "artifacts", "memory", "runs", "charts")
TAB_TITLES = ("Leaderboard", "Artifacts", "Memory", "Runs", "Charts")


class Panel(widgets.VBox):
    """The aeg panel for a kernel context: Leaderboard, Artifacts, Memory, Runs and Charts tabs.

    Args:
        context: the kernel's context (``context`` after ``%load_ext aeg_jupyter``).
        kind: artifact kind ranked first (default: the first kind with metrics).
        metric: metric ranked by (default: the one a practitioner would pick: of known direction,
            validation before training, e.g. ``val_acc`` before ``loss`` and ``epoch``).
        mode: ``"max"`` or ``"min"`` (default: the metric's direction, recorded or from its name).
        scope: ``"all"`` (default), ``"run"``, ``"graph"`` or ``"node"``, for every tab.
        group_by: label key for "best per label" (e.g. ``"exp"``).
        limit: top-N rows of the leaderboard.
        tab: the tab shown first (``"leaderboard"``, ``"artifacts"``, ``"memory"``, ``"runs"``).
        live_interval: the least time between two live redraws, in seconds.

    The tabs are ``leaderboard_tab``, ``artifacts_tab``, ``memory_tab``, ``runs_tab`` and ``charts_tab``.

    Example:
        >>> Panel(context, kind="checkpoint", metric="val_acc", group_by="exp")   # doctest: +SKIP
    """

    def __init__(
        self,
        context: KernelContext,
        *,
        kind: str | None = None,
        metric: str | None = None,
        mode: Mode | None = None,
        scope: Scope = "all",
        group_by: str | None = None,
        limit: int = 10,
        tab: str = "leaderboard",
        live_interval: float = LIVE_INTERVAL,
    ) -> None:
        super().__init__()
        if tab not in TABS:
            raise ValueError(f"tab must be one of {', '.join(TABS)}, not {tab!r}")
        if scope not in SCOPE_NAMES:
            raise ValueError(f"scope must be one of {', '.join(SCOPE_NAMES)}, not {scope!r}")
        if mode not in ("max", "min", None):
            raise ValueError(f"mode must be 'max' or 'min', not {mode!r}")
        self.context = context
        self.artifacts = context.store.artifacts
        self.event_log = context.store.event_log
        self.renders = 0  # how many tab redraws so far (tests and debugging)
        self._busy = False
        self._closed = False
        self._stale: set[str] = set(TABS)

        # -- header ------------------------------------------------------------------------------
        self.title = widgets.HTML(
            f"{CSS}<b>aeg</b> <span class='aeg-title-note'>{esc(context.store.root)} · run {esc(context.run_id)}</span>"
        )
        self.status = widgets.HTML()
        self.uploads = widgets.HTML()  # an s3:// root: rows and blobs not uploaded yet, the last error
        self.uploads.add_class("aeg-uploads")
        self.refresh_button = widgets.Button(
            description="Refresh", icon="refresh", tooltip="read other kernels' writes and redraw",
            layout=widgets.Layout(width="100px"),
        )  # fmt: skip
        self.auto = widgets.Checkbox(value=False, description="auto-refresh every", indent=False, style=WIDE)
        self.every = widgets.BoundedFloatText(
            value=5.0, min=0.5, max=3600.0, step=0.5, layout=widgets.Layout(width="70px")
        )
        self.auto.add_class("aeg-auto")
        self.every.add_class("aeg-every")
        header = widgets.HBox(
            [self.title, self.uploads, self.refresh_button, self.auto, self.every, widgets.HTML("s"), self.status],
            layout=widgets.Layout(align_items="center", flex_flow="row wrap"),
        )

        # -- the tabs, built once ----------------------------------------------------------------
        self.leaderboard_tab = LeaderboardTab(
            context, redraw=self._redraw_of("leaderboard"), say=self._say,
            kind=kind, metric=metric, mode=mode, scope=scope, group_by=group_by, limit=limit,
        )  # fmt: skip
        self.artifacts_tab = ArtifactsTab(context, redraw=self._redraw_of("artifacts"), say=self._say, scope=scope)
        self.memory_tab = MemoryTab(context, redraw=self._redraw_of("memory"), say=self._say, scope=scope)
        self.runs_tab = RunsTab(context, redraw=self._redraw_of("runs"), say=self._say)
        self.charts_tab = ChartsTab(
            context, redraw=self._redraw_of("charts"), say=self._say, scope=scope,
            board=self.leaderboard_tab,
        )  # fmt: skip
        self.leaderboard_tab.on_select = self.charts_tab.select_artifacts  # ticked rows: their runs in Charts
        self._pages: dict[str, PanelTab] = {
            t.name: t
            for t in (self.leaderboard_tab, self.artifacts_tab, self.memory_tab, self.runs_tab, self.charts_tab)
        }
        self.tabs = widgets.Tab(children=[self._pages[name] for name in TABS], titles=TAB_TITLES)
        self.tabs.selected_index = TABS.index(tab)
        self.children = [header, self.tabs]
        self.add_class("aeg-panel")

        # -- wiring ------------------------------------------------------------------------------
        self.refresh_button.on_click(lambda _b: self.refresh())
        self.auto.observe(self._on_auto, names="value")
        self.tabs.observe(self._on_tab, names="selected_index")
        self.live = LiveUpdates(
            context.store, on_write=lambda: self._stale.update(TABS), draw=self._live_draw,
            busy=lambda: self._busy, say=self._say, interval=live_interval,
        )  # fmt: skip
        self.refresh()

    # -- public ------------------------------------------------------------------------------------
    @property
    def active_tab(self) -> str:
        """The name of the tab shown (``"leaderboard"``, ``"artifacts"``, ``"memory"`` or ``"runs"``)."""
        return TABS[self.tabs.selected_index or 0]

    @property
    def live_interval(self) -> float:
        """The least time between two live redraws, in seconds (``panel.live_interval = 1.0`` to slow down)."""
        return self.live.interval

    @live_interval.setter
    def live_interval(self, seconds: float) -> None:
        self.live.interval = float(seconds)

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
        self.live.take_writes()
        self._stale.update(TABS)
        self.charts_tab.forget_kinds()  # other kernels' kinds too: listed again
        with working(self.refresh_button):
            self.artifacts.catch_up()
            self.event_log.catch_up()
            self._draw(self.active_tab)

    def select_artifact(self, artifact_id: str) -> None:
        """Show one artifact in the Artifacts tab (switching to it), with its details and preview.

        Example:
            >>> panel.select_artifact(best.artifact_id)   # doctest: +SKIP
        """
        art = self.artifacts.get(artifact_id)
        self.artifacts_tab.clear_filters()
        self.show("artifacts")
        self._draw("artifacts")
        self.artifacts_tab.select(art)

    def copy_path(self) -> str | None:
        """Materialize the selected artifact as a read-only local path and show it (with a clipboard button).

        Example:
            >>> panel.copy_path()   # doctest: +SKIP
            '/work/.aeg/files/92f8.../curve.png'
        """
        return self.artifacts_tab.copy_path()

    def close(self) -> None:
        """Stop live updates and auto-refresh, and close every widget of the panel.

        Example:
            >>> panel.close()   # doctest: +SKIP
        """
        if self._closed:
            return
        self._closed = True
        self.live.close()
        roots = [self, *(w for page in self._pages.values() for w in page.detached())]
        owned = {id(w): w for root in roots for w in descendants(root)}
        for w in owned.values():
            if w is not self:
                w.close()
        super().close()

    # -- drawing -----------------------------------------------------------------------------------
    def _draw(self, tab: str, written: frozenset[str] | None = None) -> None:
        """Recompute one tab from the core (only if shown; a hidden tab is drawn when it is shown).

        ``written``: a live redraw's tables written by this kernel since the last one (the Charts tab
        then takes in only what they changed); ``None``: a full redraw.
        """
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
            self._show_uploads()
            self._stale.discard(tab)
            self._say("")
            page = self._pages[tab]
            if written is not None and page is self.charts_tab:
                self.charts_tab.refresh(written=written)
            else:
                page.refresh()
            self.renders += 1
        except AegError as exc:
            self._say(str(exc), error=True)
        finally:
            self._busy = False
            self.refresh_button.disabled = False

    def _redraw_of(self, tab: str) -> Callable[[], None]:
        return lambda: self._draw(tab)

    def _live_draw(self, written: frozenset[str]) -> None:
        tab = self.active_tab
        if tab != "runs":  # a runs summary scans the events table: only on Refresh or when shown
            self._draw(tab, written)

    # -- events from the header --------------------------------------------------------------------
    def _on_tab(self, _change: dict[str, Any]) -> None:
        tab = self.active_tab
        self.live.take_writes()  # writes since the last live redraw: every tab stale
        if tab in self._stale:
            self._draw(tab)

    def _on_auto(self, change: dict[str, Any]) -> None:
        if not change["new"]:
            self.live.stop_auto()
            return
        started = self.live.start_auto(
            self.refresh, every=lambda: float(self.every.value), enabled=lambda: bool(self.auto.value)
        )
        if not started:
            self.auto.value = False
            self._say("auto-refresh needs the kernel's event loop (run the panel in Jupyter); use Refresh")

    def _show_uploads(self) -> None:
        """The header's note of what this machine has not uploaded yet (s3:// roots; empty when all landed)."""
        pending = self.context.store.pending_uploads()
        if pending is None or pending.idle:
            self.uploads.value = ""
            return
        parts = []
        if pending.rows or pending.blobs:
            parts.append(f"pending upload: {pending.rows} row(s), {pending.blobs} blob(s)")
        note = f"<span class='aeg-title-note'>{esc(' · '.join(parts))}</span>" if parts else ""
        if pending.last_error:
            note += f" <span style='color:#b00' title='{esc(pending.last_error)}'>{esc(pending.last_error)}</span>"
        self.uploads.value = note

    def _say(self, message: str, *, error: bool = False) -> None:
        color = "#b00" if error else "#555"
        self.status.value = f"<span style='color:{color}'>{esc(message)}</span>" if message else ""


__all__ = ["TABS", "TAB_TITLES", "Panel"]
