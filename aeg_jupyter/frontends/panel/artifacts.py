"""The Artifacts tab: a filtered list of artifacts, and the selected one's details, preview, pin and path.

The list is the core query :func:`~aeg_jupyter.core.browse.find_artifacts`, the preview
:func:`~aeg_jupyter.core.browse.preview` (bounded: it never reads a whole large file).

Example:
    >>> panel.select_artifact(best.artifact_id)     # doctest: +SKIP
    >>> panel.artifacts_tab.preview.value           # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import ipywidgets as widgets

from ...api.context import KernelContext
from ...base.html import esc, fmt_value, html_table, kv_table
from ...base.models import Artifact, Scope
from ...base.models import _human_size as fmt_size
from ...core.browse import Preview, find_artifacts, parse_label_filter
from ...core.browse import preview as preview_of
from ...core.runs import run_name
from .style import LIST_HEADER, display_cell, option_label
from .tab import NONE, SCOPE_OPTIONS, WIDE, PanelTab, Say, set_options, working

MAX_LIST = 200  # artifacts listed in the browser


class ArtifactsTab(PanelTab):
    """Browse artifacts: filter by kind, labels, text and scope; select one to see it.

    Args:
        context, redraw, say: see :class:`~aeg_jupyter.frontends.panel.tab.PanelTab`.
        scope: the scope shown first.

    Example:
        >>> tab = panel.artifacts_tab                   # doctest: +SKIP
        >>> tab.labels.value = "exp=A"                  # doctest: +SKIP
        >>> tab.listing.value = tab.listing.options[0][1]  # doctest: +SKIP
    """

    name = "artifacts"

    def __init__(self, context: KernelContext, *, redraw: Callable[[], None], say: Say, scope: Scope = "all") -> None:
        super().__init__(context, redraw=redraw, say=say)
        self.artifacts = context.store.artifacts
        self.selected: Artifact | None = None

        self.kind = widgets.Dropdown(description="kind", options=[("(all)", NONE)], style=WIDE)
        self.labels = widgets.Text(
            description="labels", placeholder="exp=A, seed=3", continuous_update=False, style=WIDE
        )
        self.search = widgets.Text(
            description="search", placeholder="name, id, run, label", continuous_update=False, style=WIDE
        )
        self.scope = widgets.Dropdown(description="scope", options=SCOPE_OPTIONS, value=scope, style=WIDE)
        # Option labels are plain text: the front end sets them with textContent, so they are not escaped.
        self.listing = widgets.Select(options=[], rows=10, layout=widgets.Layout(width="100%"))
        self.listing.add_class("aeg-ar-list")
        self.list_header = widgets.HTML(f"<div class='aeg-ar-head'>{esc(LIST_HEADER)}</div>")
        self.details = widgets.HTML()
        self.lineage = widgets.VBox()  # the selected artifact's inputs (buttons that select them), its cell's source
        self.lineage.add_class("aeg-ar-lineage")
        self.image = widgets.Image(
            layout=widgets.Layout(max_width="480px", max_height="360px", display="none", align_self="flex-start")
        )
        self.image.add_class("aeg-ar-image")
        self.preview = widgets.HTML()
        self.preview.add_class("aeg-ar-preview")
        self.pin = widgets.ToggleButton(value=False, description="pin", icon="thumb-tack", disabled=True)
        self.copy = widgets.Button(description="Copy path", icon="copy", disabled=True)
        self.path = widgets.Text(description="path", style=WIDE, layout=widgets.Layout(width="60%", display="none"))
        self.clip = widgets.HTML()
        self.children = [
            widgets.HBox([self.kind, self.scope], layout=widgets.Layout(flex_flow="row wrap")),
            widgets.HBox([self.labels, self.search], layout=widgets.Layout(flex_flow="row wrap")),
            self.list_header,
            self.listing,
            widgets.HBox([self.pin, self.copy, self.path, self.clip], layout=widgets.Layout(flex_flow="row wrap")),
            widgets.HBox(
                [
                    widgets.VBox(
                        [self.details, self.lineage], layout=widgets.Layout(flex="1 1 340px", min_width="300px")
                    ),
                    widgets.VBox([self.image, self.preview], layout=widgets.Layout(flex="1 1 420px")),
                ],
                layout=widgets.Layout(flex_flow="row wrap", align_items="flex-start"),
            ),
        ]
        self.add_class("aeg-artifacts")

        self._redraw_on_change(self.kind, self.labels, self.search, self.scope)
        self.listing.observe(self._on_select, names="value")
        self.pin.observe(self._on_pin, names="value")
        self.copy.on_click(self._on_copy)

    def refresh(self) -> None:
        """List the artifacts that pass the filters; keep the selection if it is still listed.

        Raises:
            InvalidInputError: the labels filter is not ``key=value, ...`` (the panel shows it).
        """
        index = self.artifacts
        kinds = index.kinds()
        with self.quiet():
            set_options(self.kind, [("(all)", NONE), *((k, k) for k in kinds)], self.kind.value or NONE)
        labels = parse_label_filter(self.labels.value)
        arts = find_artifacts(
            index, kind=self.kind.value or None, labels=labels, text=self.search.value,
            where=self.context.scope(self.scope.value), limit=MAX_LIST,
        )  # fmt: skip
        now = datetime.now(UTC)
        options = [(option_label(a, now), a.artifact_id) for a in arts]
        keep = self.listing.value if any(v == self.listing.value for _, v in options) else None
        with self.quiet():
            if list(self.listing.options) != options:
                self.listing.options = options
            self.listing.value = keep
        if keep is None:
            self._show(None)
        elif self.selected is not None:
            fresh = index.get(keep)
            if fresh.pinned != self.selected.pinned:
                self._show(keep)

    def clear_filters(self) -> None:
        """Every filter back to "everything" (no redraw: the caller draws once)."""
        with self.quiet():
            self.kind.value = NONE
            self.labels.value = ""
            self.search.value = ""
            self.scope.value = "all"

    def select(self, art: Artifact) -> None:
        """Select ``art`` in the list (added on top if it is older than the newest ``MAX_LIST``) and show it.

        Example:
            >>> panel.artifacts_tab.select(art)   # doctest: +SKIP
        """
        if all(value != art.artifact_id for _, value in self.listing.options):
            with self.quiet():
                self.listing.options = [(option_label(art, datetime.now(UTC)), art.artifact_id), *self.listing.options]
        self.listing.value = art.artifact_id

    def copy_path(self) -> str | None:
        """Materialize the selected artifact as a read-only local path and show it (with a clipboard button).

        Example:
            >>> panel.artifacts_tab.copy_path()   # doctest: +SKIP
            '/work/.aeg/files/92f8.../curve.png'
        """
        art = self.selected
        if art is None:
            return None
        with working(self.copy):
            path = self.artifacts.local_dir(art) if art.is_dir else self.artifacts.local_file(art)
        self.path.value = path
        self.path.layout.display = ""
        self.clip.value = (
            f"<button class='aeg-copy' data-path='{esc(path)}' title='copy to the clipboard' "
            "onclick='navigator.clipboard &amp;&amp; navigator.clipboard.writeText(this.dataset.path);"
            'this.textContent="copied"\'>📋 copy</button>'
        )
        return path

    def _show(self, artifact_id: str | None) -> None:
        """The details, preview and buttons of one artifact (``None``: nothing selected)."""
        self.path.layout.display = "none"
        self.path.value = ""
        self.clip.value = ""
        self.image.layout.display = "none"
        if artifact_id is None:
            self.selected = None
            self.details.value = ""
            self.preview.value = ""
            self.pin.disabled = self.copy.disabled = True
            self.lineage.children = ()
            return
        art = self.artifacts.get(artifact_id)
        self.selected = art
        with self.quiet():
            self.pin.value = art.pinned
        self._show_pin(art.pinned)
        self.pin.disabled = self.copy.disabled = False
        self.details.value = details_html(art)
        self._show_lineage(art)
        self._show_preview(preview_of(self.artifacts, art))

    def _show_lineage(self, art: Artifact) -> None:
        """The artifacts ``art`` was made from, as buttons that select them, and its producing cell's source."""
        from ...core.lineage import cell_source

        parts: list[widgets.Widget] = []
        if art.inputs:
            buttons = []
            for input_id in art.inputs:
                found = self.artifacts.catalog.by_id.get(input_id)
                label = f"{found.kind} {found.short_id}" if found is not None else f"{input_id[-8:]} (gone)"
                button = widgets.Button(description=label, tooltip=input_id, disabled=found is None)
                button.add_class("aeg-ar-input")
                button.on_click(lambda _b, i=input_id: self._select_input(i))
                buttons.append(button)
            parts += [
                widgets.HTML("<b>made from</b>"),
                widgets.HBox(buttons, layout=widgets.Layout(flex_flow="row wrap")),
            ]
        source = cell_source(self.artifacts, art.source_hash)
        if source is not None:
            where = f"In[{art.execution_count}]" if art.execution_count is not None else (art.cell_id or "the script")
            parts.append(
                widgets.HTML(
                    f"<details open><summary>made by {esc(where)}</summary>"
                    f"<pre class='aeg-pre aeg-ar-source'>{esc(source)}</pre></details>"
                )
            )
        self.lineage.children = parts

    def _select_input(self, artifact_id: str) -> None:
        with self._reporting():
            self.select(self.artifacts.get(artifact_id))

    def _show_preview(self, p: Preview) -> None:
        note = f"<div class='aeg-note'>{esc(p.note)}</div>" if p.note else ""
        if p.kind == "image" and p.image is not None:
            self.image.format = p.image_format or "png"
            self.image.value = p.image
            self.image.layout.display = ""
            self.preview.value = note
        elif p.kind in ("text", "json"):
            self.preview.value = f"<pre class='aeg-pre aeg-preview-text'>{esc(p.text or '')}</pre>{note}"
        elif p.kind == "table" and p.frame is not None:
            frame = p.frame
            rows = [[display_cell(v) for v in rec] for rec in frame.itertuples(index=False, name=None)]
            self.preview.value = html_table([str(c) for c in frame.columns], rows, css_class="aeg-preview-table") + note
        elif p.kind == "dir":
            rows = [[e.get("path", ""), fmt_value(e.get("size")) if e.get("blob") else "dir"] for e in p.entries]
            self.preview.value = html_table(["path", "size"], rows, css_class="aeg-preview-dir") + note
        else:
            self.preview.value = (
                f"<p class='aeg-preview-other'>{esc(p.note)}. Use <b>Copy path</b> for a read-only local file.</p>"
            )

    def _show_pin(self, pinned: bool) -> None:
        self.pin.description = "pinned" if pinned else "pin"
        self.pin.button_style = "warning" if pinned else ""

    def _on_select(self, change: dict[str, Any]) -> None:
        if self._quiet_depth:
            return
        with self._reporting():
            self._show(change["new"])

    def _on_pin(self, change: dict[str, Any]) -> None:
        if self._quiet_depth or self.selected is None:
            return
        with self._reporting():
            self.selected = self.artifacts.pin(self.selected.artifact_id, bool(change["new"]))
            self._show_pin(self.selected.pinned)
            self._say(f"{'pinned' if change['new'] else 'unpinned'} {self.selected.short_id}")

    def _on_copy(self, _button: widgets.Button) -> None:
        with self._reporting():
            self.copy_path()


def details_html(art: Artifact) -> str:
    """The selected artifact's record as a key / value table: one row per field, keys never wrapped,
    long values (the URI, ids) wrapped whole rather than cut. Every value is escaped.

    Example:
        >>> "cas://" in details_html(art)   # doctest: +SKIP
        True
    """
    run = run_name(art.run_id)
    rows = [
        ("id", art.artifact_id),
        ("kind", art.kind),
        ("name", art.name or ""),
        ("uri", art.uri),
        ("size", fmt_size(art.size)),
        ("mime", art.mime or ""),
        ("created", art.created_at.astimezone().isoformat(sep=" ", timespec="seconds") if art.created_at else ""),
        ("run", f"{run}  ({art.run_id})" if run and run != art.run_id else art.run_id or ""),
        ("notebook", art.graph_id or ""),
        ("cell", art.node_id or ""),
        ("labels", ", ".join(f"{k}={fmt_value(v)}" for k, v in art.labels.items())),
        ("metrics", ", ".join(f"{k}={fmt_value(v)}" for k, v in art.metrics.items())),
        ("pinned", "yes" if art.pinned else "no"),
    ]
    return kv_table(rows, css_class="aeg-artifact aeg-ar-details", caption="Artifact")


__all__ = ["MAX_LIST", "ArtifactsTab", "details_html"]
