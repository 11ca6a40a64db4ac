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
    ".aeg-note{color:var(--jp-ui-font-color1,#444);opacity:.8;font-size:12px}"
    ".aeg-title-note{color:var(--jp-ui-font-color1,#444);opacity:.8}"
    ".aeg-ar-list select,.aeg-ar-head{font-family:var(--jp-code-font-family,monospace);font-size:12px;"
    "white-space:pre}"
    ".aeg-ar-head{font-weight:600;padding:0 4px;overflow:hidden}"
    ".aeg-ar-details th{white-space:nowrap;vertical-align:top;padding-right:10px;text-align:left}"
    ".aeg-ar-details td{overflow-wrap:anywhere;word-break:break-all;text-align:left}"
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
    spec: Sequence[tuple[str, int | str]], cells: Sequence[str | tuple[str, str]], width: int, *, header: bool = False,
    best: bool = False, title: str = "",
) -> str:  # fmt: skip
    """One leaderboard row as a fixed-layout table, so the rows (separate widgets) line up as columns.

    ``spec`` is ``(column, width)`` per column: px (an int) for numbers and ids, or a share such as
    ``"40%"`` for names, labels and runs: the browser splits what the fixed columns leave in those
    proportions, so the table fills its box and a narrow output area cuts long cells with an
    ellipsis instead of pushing controls out of sight. ``width`` is the least width of the table in
    px. A cell is its text (also its tooltip), or ``(text, tooltip)``; every cell is escaped.

    Example:
        >>> "&lt;b&gt;" in row_table([("name", "100%")], ["<b>"], 80)
        True
    """
    cols = "".join(f"<col style='width:{w if isinstance(w, str) else f'{w}px'}'>" for _, w in spec)
    tag = "th" if header else "td"
    tds = "".join(
        f"<{tag} title='{esc(c[1] if isinstance(c, tuple) else c)}'>{esc(c[0] if isinstance(c, tuple) else c)}</{tag}>"
        for c in cells
    )
    cls = "aeg-table aeg-fixed " + ("aeg-lb-header" if header else "aeg-lb-row" + (" aeg-best" if best else ""))
    data = f" data-artifact-id='{esc(title)}'" if title else ""
    return (
        f"<table class='{cls}' style='width:100%;min-width:{width}px'{data}><colgroup>{cols}</colgroup>"
        f"<tr>{tds}</tr></table>"
    )


# The artifact list's columns: (title, width in characters; 0: the rest of the line). Padded with
# no-break spaces and shown in a monospace font, so the options line up as columns under LIST_HEADER.
LIST_COLUMNS = (("id", 8), ("kind", 12), ("name", 28), ("metrics", 24), ("age", 4), ("labels", 0))


def _cell(text: str, width: int) -> str:
    text = " ".join(text.split())
    if not width:
        return text
    text = text if len(text) <= width else text[: width - 1] + "…"
    return text + "\u00a0" * (width - len(text))


def _line(cells: Sequence[str]) -> str:
    return "\u00a0\u00a0".join(_cell(c, w) for c, (_, w) in zip(cells, LIST_COLUMNS, strict=True)).rstrip("\u00a0")


LIST_HEADER = _line([title for title, _ in LIST_COLUMNS])


def option_label(art: Artifact, now: datetime) -> str:
    """An artifact as one row of the artifact list: id, kind, name, metrics, age and labels in aligned columns.

    Plain text (the front end sets option labels with ``textContent``), so it is not escaped; the
    columns are padded with no-break spaces (a monospace font lines them up under ``LIST_HEADER``).

    Example:
        >>> option_label(art, datetime.now(UTC)).split()   # doctest: +SKIP
        ['1a2b3c4d', 'checkpoint', 'ckpt.json', 'val_acc=0.95', '3m', 'exp=A']
    """
    labels = ", ".join(f"{k}={fmt_value(v, 30)}" for k, v in list(art.labels.items())[:4])
    metrics = ", ".join(f"{k}={fmt_value(v)}" for k, v in list(art.metrics.items())[:3])
    return _line([art.short_id, art.kind, art.name or "", metrics, fmt_age(art.created_at, now), labels])


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


__all__ = ["CSS", "LIST_HEADER", "display_cell", "fmt_age", "fmt_value", "option_label", "row_table"]
