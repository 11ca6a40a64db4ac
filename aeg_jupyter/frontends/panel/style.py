"""How the panel looks: its one style sheet and the short texts its tables and lists show.

The generic pieces (:func:`~aeg_jupyter.base.html.esc`, :func:`~aeg_jupyter.base.html.fmt_value`,
:func:`~aeg_jupyter.base.html.html_table`) live in :mod:`aeg_jupyter.base.html`; this module holds
what only the panel uses.

Example:
    >>> from aeg_jupyter.frontends.panel.style import fmt_value
    >>> fmt_value(0.912345)
    '0.9123'
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from ...base.html import esc, fmt_value
from ...base.models import Artifact

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


def row_table(
    spec: Sequence[tuple[str, int]], cells: Sequence[str], width: int, *, header: bool = False, best: bool = False,
    title: str = "",
) -> str:  # fmt: skip
    """One leaderboard row as a fixed-layout table, so the rows (separate widgets) line up as columns.

    ``spec`` is ``(column, width in px)`` per column; every cell is escaped.

    Example:
        >>> "&lt;b&gt;" in row_table([("name", 80)], ["<b>"], 80)
        True
    """
    cols = "".join(f"<col style='width:{w}px'>" for _, w in spec)
    tag = "th" if header else "td"
    tds = "".join(f"<{tag} title='{esc(c)}'>{esc(c)}</{tag}>" for c in cells)
    cls = "aeg-table aeg-fixed " + ("aeg-lb-header" if header else "aeg-lb-row" + (" aeg-best" if best else ""))
    data = f" data-artifact-id='{esc(title)}'" if title else ""
    return f"<table class='{cls}' style='width:{width}px'{data}><colgroup>{cols}</colgroup><tr>{tds}</tr></table>"


def option_label(art: Artifact, now: datetime) -> str:
    """An artifact as one line of the artifact list: id, kind, name, a few labels and metrics, age.

    Plain text (the front end sets option labels with ``textContent``), so it is not escaped.

    Example:
        >>> option_label(art, datetime.now(UTC))   # doctest: +SKIP
        '1a2b3c4d  ·  checkpoint  ·  ckpt.json  ·  exp=A  ·  val_acc=0.95  ·  3m'
    """
    labels = ", ".join(f"{k}={fmt_value(v, 30)}" for k, v in list(art.labels.items())[:4])
    metrics = ", ".join(f"{k}={fmt_value(v)}" for k, v in list(art.metrics.items())[:3])
    parts = [art.short_id, art.kind, art.name or "", labels, metrics, fmt_age(art.created_at, now)]
    return "  ·  ".join(p for p in parts if p)


def display_cell(value: Any) -> Any:
    """A DataFrame cell for display: missing values (None, NaN, NaT) as empty text.

    Example:
        >>> display_cell(float("nan")), display_cell(None), display_cell(3)
        ('', '', 3)
    """
    try:
        if value is None or (not isinstance(value, list | dict | str) and value != value):
            return ""
    except (TypeError, ValueError):
        pass
    return value


__all__ = ["CSS", "display_cell", "fmt_age", "fmt_value", "option_label", "row_table"]
