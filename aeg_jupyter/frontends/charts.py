"""Plotly figures from :mod:`aeg_jupyter.core.series`: curves, artifact scatters, run comparisons, parallel coordinates.

Plotly draws in JupyterLab, Notebook 7 (its renderer extension ships in the wheel), VS Code and Binder
without a server or a network; the panel's live charts send these figures again at each coalesced
redraw (frontends/panel/charts.py). See the README's design notes. Every user string in a figure (run ids, label values, keys, kinds) is escaped with
:func:`~aeg_jupyter.base.html.esc`, because plotly renders a subset of HTML in legends, titles, tick
labels, table cells and hover text; user strings reach hover templates only through ``meta`` /
``text`` (data), never inside the template, so a ``%{...}`` in a name stays text.

Example:
    >>> from aeg_jupyter.core.series import event_series
    >>> fig = series_figure(event_series(log, "train_log", y="loss"))    # doctest: +SKIP
    >>> fig.to_dict()["data"][0]["name"]                                  # doctest: +SKIP
    'run-20260102-030405-a1b2'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..base.html import esc
from ..base.models import Artifact
from ..core.series import NO_VALUE, Series, SeriesSet

HEIGHT = 420
LINE_HOVER = "%{meta[0]}<br>%{meta[1]}=%{x}<br>%{meta[2]}=%{y:.6g}<extra></extra>"
POINT_HOVER = "%{text}<br>%{meta[1]}=%{x}<br>%{meta[2]}=%{y:.6g}<extra></extra>"
SELECTED_COLOR = "#d62728"
# plotly_white's look, spelled out: a named template is copied and validated on every figure (0.2 s)
AXIS = {"gridcolor": "#ebebeb", "zerolinecolor": "#ebebeb", "linecolor": "#c8c8c8", "showline": True}


def _x_values(s: Series, ss: SeriesSet) -> Any:
    if ss.x_is_time:
        return np.asarray(s.x, dtype=np.int64).astype("datetime64[us]")
    if s.x.dtype == object:  # categories (label values of an artifact scatter)
        return [esc(v) for v in s.x]
    return s.x


def _axis_title(key: str, ss: SeriesSet) -> str:
    return "time" if ss.x_is_time else esc(key)


def trace_keys(ss: SeriesSet, *, raw: SeriesSet | None = None) -> list[tuple[str, str, Any, Any]]:
    """``(uid, name, x, y)`` of each line :func:`series_traces` draws, in its order (for live updates)."""
    raw_of = {s.name: s for s in raw.series} if raw is not None else {}
    out = []
    for i, s in enumerate(ss.series):
        r = raw_of.get(s.name)
        if r is not None:
            out.append((f"raw-{i}", esc(s.name), _x_values(r, ss), r.y))
        out.append((f"line-{i}", esc(s.name), _x_values(s, ss), s.y))
    return out


def line_dicts(ss: SeriesSet, *, raw: SeriesSet | None = None) -> list[dict[str, Any]]:
    """The lines of an events :class:`SeriesSet` as plain plotly trace dicts (arrays stay numpy).

    ``raw``: the unsmoothed lines, drawn faint behind, without a legend entry of their own.
    """
    traces: list[dict[str, Any]] = []
    meta_axes = [_axis_title(ss.x_key, ss), esc(ss.y_key)]
    colors: dict[str, str] = {}
    for uid, name, x, y in trace_keys(ss, raw=raw):
        color = colors.setdefault(name, _color(len(colors)))
        trace = {
            "type": "scatter", "x": x, "y": y, "mode": "lines", "name": name, "legendgroup": name,
            "meta": [name, *meta_axes], "hovertemplate": LINE_HOVER, "uid": uid,
            "line": {"width": 2, "color": color},
        }  # fmt: skip
        if uid.startswith("raw-"):
            trace.update(showlegend=False, opacity=0.25, line={"width": 1, "color": color})
        traces.append(trace)
    return traces


def series_traces(ss: SeriesSet, *, raw: SeriesSet | None = None) -> list[go.Scatter]:
    """One line per series of an events :class:`SeriesSet` (``raw``: the unsmoothed lines, drawn faint).

    Example:
        >>> [t.name for t in series_traces(event_series(log, "train_log", y="loss"))]   # doctest: +SKIP
        ['run-20260102-030405-a1b2']
    """
    return [go.Scatter(t) for t in line_dicts(ss, raw=raw)]


_TEMPLATES: dict[str, Any] = {}


def mime_bundle(data: list[dict[str, Any]], layout_: dict[str, Any]) -> dict[str, Any]:
    """Plotly's mime bundle (``application/vnd.plotly.v1+json``) for traces and a layout, built directly.

    The same JSON ``plotly.io`` sends, without validating the figure again (a live redraw builds
    one every quarter second): float arrays go as base64 typed arrays, times as ISO text.

    Example:
        >>> b = mime_bundle([{"type": "scatter", "y": np.array([1.0, 2.0])}], {})
        >>> b["application/vnd.plotly.v1+json"]["data"][0]["y"]
        {'dtype': 'f8', 'bdata': 'AAAAAAAA8D8AAAAAAAAAQA=='}
    """
    import base64

    def encode(v: Any) -> Any:
        if isinstance(v, np.ndarray):
            if v.dtype.kind == "M":
                return np.datetime_as_string(v, unit="ms").tolist()
            if v.dtype.kind in "fiu":
                a = np.ascontiguousarray(v, dtype=np.float64)
                return {"dtype": "f8", "bdata": base64.b64encode(a.tobytes()).decode("ascii")}
            return v.tolist()
        if isinstance(v, dict):
            return {k: encode(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [encode(x) for x in v]
        return v

    lay = dict(layout_)
    name = lay.get("template")
    if isinstance(name, str):
        if name not in _TEMPLATES:
            import plotly.io as pio

            _TEMPLATES[name] = pio.templates[name].to_plotly_json()
        lay["template"] = _TEMPLATES[name]
    figure = {"data": [encode(t) for t in data], "layout": encode(lay), "config": {"plotlyServerURL": ""}}
    return {"application/vnd.plotly.v1+json": figure, "text/plain": f"<plotly figure: {len(data)} traces>"}


def _color(i: int) -> str:
    palette = (
        "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
    )  # fmt: skip
    return palette[i % len(palette)]


def layout(ss: SeriesSet, *, log: bool = False, title: str | None = None) -> dict[str, Any]:
    """The layout of a chart of ``ss``: escaped title and axis titles, a log y axis if asked."""
    what = f"{ss.y_key} by {ss.x_key}" if ss.source == "artifacts" else f"{ss.y_key} over {ss.x_key}"
    text = title if title is not None else f"{ss.kind}: {what}"
    return {
        "title": {"text": esc(text)},
        "xaxis": {"title": {"text": _axis_title(ss.x_key, ss)}, **AXIS},
        "yaxis": {"title": {"text": esc(ss.y_key)}, "type": "log" if log else "linear", **AXIS},
        "legend": {"title": {"text": esc(ss.by)}} if ss.by else {},
        "height": HEIGHT,
        "margin": {"l": 60, "r": 20, "t": 50, "b": 50},
        "plot_bgcolor": "white",
        "hovermode": "closest",
    }


def series_figure(
    ss: SeriesSet,
    *,
    raw: SeriesSet | None = None,
    log: bool = False,
    title: str | None = None,
) -> go.Figure:
    """A figure of an events series set (lines) or an artifacts one (points, with their ids).

    Example:
        >>> fig = series_figure(event_series(log, "train_log", y="loss"), log=True)   # doctest: +SKIP
        >>> fig.layout.yaxis.type                                                      # doctest: +SKIP
        'log'
    """
    traces = series_traces(ss, raw=raw) if ss.source == "events" else point_traces(ss)
    return go.Figure(data=traces, layout=layout(ss, log=log, title=title))


def point_traces(ss: SeriesSet) -> list[go.Scatter]:
    """One group of points per series of an artifacts :class:`SeriesSet`; ``customdata`` holds the ids.

    A click or a box/lasso selection in the browser gives the points' ``customdata``: the artifact ids.
    """
    traces = []
    for i, s in enumerate(ss.series):
        name = esc(s.name)
        traces.append(
            go.Scatter(
                x=_x_values(s, ss), y=s.y, mode="markers", name=name, marker={"size": 9, "color": _color(i)},
                customdata=s.ids, text=[esc(h).replace("\n", "<br>") for h in s.hover or []],
                meta=[name, esc(ss.x_key), esc(ss.y_key)], hovertemplate=POINT_HOVER, uid=f"points-{i}",
            )
        )  # fmt: skip
    return traces


def compare_figure(ss: SeriesSet, table: Mapping[str, Mapping[str, Any]], *, log: bool = False) -> go.Figure:
    """Runs side by side: their curves overlaid (left) and a table of their labels and metrics (right).

    ``table`` is ``{run_id: {field: value}}`` (labels and final metrics, in the order to show).

    Example:
        >>> fig = compare_figure(ss, {"run-a": {"lr": 0.1}, "run-b": {"lr": 0.01}})   # doctest: +SKIP
    """
    fig = make_subplots(
        rows=1, cols=2, column_widths=[0.62, 0.38], horizontal_spacing=0.04,
        specs=[[{"type": "xy"}, {"type": "table"}]],
    )  # fmt: skip
    for t in series_traces(ss):
        fig.add_trace(t, row=1, col=1)
    runs = list(table)
    fields: list[str] = []
    for values in table.values():
        fields.extend(f for f in values if f not in fields)
    cells = [[esc(f) for f in fields]]
    for run in runs:
        cells.append([esc(_cell(table[run].get(f))) for f in fields])
    fig.add_trace(
        go.Table(
            header={"values": ["", *(esc(r) for r in runs)], "align": "left", "fill": {"color": "#eee"}},
            cells={"values": cells, "align": "left"},
        ),
        row=1, col=2,
    )  # fmt: skip
    base = layout(ss, log=log, title=f"{ss.kind}: {ss.y_key}, {len(runs)} runs")
    fig.update_layout(
        title=base["title"], legend=base["legend"], height=HEIGHT, margin=base["margin"], plot_bgcolor="white"
    )
    fig.update_xaxes(title_text=base["xaxis"]["title"]["text"], row=1, col=1)
    fig.update_yaxes(title_text=base["yaxis"]["title"]["text"], type=base["yaxis"]["type"], row=1, col=1)
    return fig


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def parallel_figure(
    arts: Sequence[Artifact],
    *,
    metric: str,
    labels: Sequence[str],
    selected: Sequence[str] = (),
    title: str | None = None,
) -> go.Figure:
    """Parallel coordinates of artifacts: one axis per label (hyperparameter), the metric last.

    Lines are colored by the metric; when ``selected`` (artifact ids) is not empty, the selected
    lines are drawn red and the others grey. Label values that are not numbers become categories.

    Example:
        >>> fig = parallel_figure(arts, metric="val_acc", labels=["lr", "bs"], selected=[best_id])   # doctest: +SKIP
    """
    rows = [a for a in arts if metric in a.metrics]
    dims: list[dict[str, Any]] = []
    for key in labels:
        values = [a.labels.get(key) for a in rows]
        if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
            dims.append({"label": esc(key), "values": [float(v) for v in values]})  # type: ignore[arg-type]
        else:
            texts = [NO_VALUE if v is None else (v if isinstance(v, str) else str(v)) for v in values]
            cats = sorted(set(texts))
            dims.append(
                {"label": esc(key), "values": [cats.index(t) for t in texts], "tickvals": list(range(len(cats))),
                 "ticktext": [esc(c) for c in cats]}
            )  # fmt: skip
    dims.append({"label": esc(metric), "values": [a.metrics[metric] for a in rows]})
    chosen = set(selected)
    if chosen:
        line = {
            "color": [1.0 if a.artifact_id in chosen else 0.0 for a in rows],
            "colorscale": [[0.0, "#c8c8c8"], [1.0, SELECTED_COLOR]], "cmin": 0.0, "cmax": 1.0,
        }  # fmt: skip
    else:
        line = {"color": [a.metrics[metric] for a in rows], "colorscale": "Viridis", "showscale": True}
    text = title if title is not None else f"{metric} against labels ({len(rows)} artifacts)"
    return go.Figure(
        data=[go.Parcoords(dimensions=dims, line=line, uid="parallel")],
        layout={"title": {"text": esc(text)}, "height": 360, "margin": {"l": 60, "r": 60, "t": 70, "b": 30}},
    )


def empty_figure(message: str) -> go.Figure:
    """A figure with no data and a message in the middle (escaped)."""
    return go.Figure(
        layout={
            "height": 200, "plot_bgcolor": "white", "xaxis": {"visible": False}, "yaxis": {"visible": False},
            "annotations": [{"text": esc(message), "showarrow": False, "font": {"size": 14, "color": "#666"}}],
        }
    )  # fmt: skip


__all__ = [
    "HEIGHT",
    "compare_figure",
    "empty_figure",
    "layout",
    "line_dicts",
    "mime_bundle",
    "parallel_figure",
    "point_traces",
    "series_figure",
    "series_traces",
    "trace_keys",
]
