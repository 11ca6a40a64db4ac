"""HTML text for notebooks: escaping, a table of rows and a table of key/value pairs.

Every user string that ends up in HTML goes through :func:`esc`; :func:`html_table` and
:func:`kv_table` escape every header and cell themselves. Standard library only, so any layer
(the records' ``_repr_html_``, the panel) can use it.

Example:
    >>> from aeg_jupyter.base.html import esc, kv_table
    >>> esc("<b>")
    '&lt;b&gt;'
    >>> kv_table([("kind", "<b>")])
    "<table><tr><th style='text-align:left'>kind</th><td style='text-align:left'>&lt;b&gt;</td></tr></table>"
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Iterable, Sequence
from typing import Any


def esc(value: Any) -> str:
    """Any value -> HTML text: ``str(value)`` with ``<``, ``>``, ``&`` and both quotes escaped.

    Example:
        >>> esc("<img src=x onerror=alert(1)>")
        '&lt;img src=x onerror=alert(1)&gt;'
        >>> esc(3.5), esc(None), esc("it's")
        ('3.5', 'None', 'it&#x27;s')
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


def html_table(
    columns: Sequence[str], rows: Sequence[Sequence[Any]], *, css_class: str = "", highlight: int | None = None
) -> str:
    """An HTML table of text cells; headers and cells are escaped, long cells cut (full text on hover).

    Cells are shown with :func:`fmt_value`; row ``highlight`` (an index) gets the ``aeg-best`` class.

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


def kv_table(pairs: Iterable[tuple[Any, Any]], *, css_class: str = "", caption: str = "") -> str:
    """A two-column HTML table, one ``key: value`` row per pair; keys and values shown whole, escaped.

    Example:
        >>> kv_table([("id", "a1"), ("size", 3)], css_class="aeg-artifact", caption="Artifact")[:55]
        "<table class='aeg-artifact'><caption>Artifact</caption>"
    """
    cls = f" class='{esc(css_class)}'" if css_class else ""
    head = f"<caption>{esc(caption)}</caption>" if caption else ""
    body = "".join(
        f"<tr><th style='text-align:left'>{esc(k)}</th><td style='text-align:left'>{esc(v)}</td></tr>" for k, v in pairs
    )
    return f"<table{cls}>{head}{body}</table>"


__all__ = ["esc", "fmt_value", "html_table", "kv_table"]
