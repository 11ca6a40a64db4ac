"""Chart subcommands: ``plot`` (a metric of an event kind over steps, or an artifact scatter) and
``compare`` (runs overlaid, their labels and metrics side by side).

Both return the plotly figure itself: it renders in place in JupyterLab, Notebook 7 and VS Code,
and ``fig.write_html("loss.html")`` saves it. plotly is imported only when a chart is asked for
(this package imports no UI library at import time).

Example (in a notebook)::

    %aeg plot train_log --y loss --smooth 20 --log
    %aeg plot checkpoint --y val_acc --x lr --by exp
    %aeg compare run-a run-b --y loss
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from ...base.errors import NotFoundError
from ...base.models import ScopeFilter
from .parsing import CommandError, CommandParser, _scope, non_negative_int
from .registry import subcommand
from .session import Session

if TYPE_CHECKING:
    from ...core.series import EventColumns

# NOTE: numpy, pyarrow.compute, core.series and plotly are imported inside the runners: `%load_ext`
# imports this module, and none of them is needed until a chart is asked for.


def _chart_args(p: CommandParser) -> None:
    p.add_argument("--x", metavar="FIELD", help="x axis: a data key (default: step/epoch if present, else time)")
    p.add_argument("--smooth", type=non_negative_int, default=0, metavar="N", help="rolling mean over N points")
    p.add_argument("--log", action="store_true", help="logarithmic y axis")


def _plot_args(p: CommandParser) -> None:
    p.add_argument("kind", metavar="KIND", help="an event kind (lines) or an artifact kind (points)")
    p.add_argument("--y", required=True, metavar="METRIC", help="a data key or metric (artifacts: a metric)")
    _chart_args(p)
    p.add_argument("--by", metavar="run|LABEL", help="one line per run (default) or per value of a label")
    _scope(p)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--events", dest="source", action="store_const", const="events", help="KIND is an event kind")
    g.add_argument(
        "--artifacts", dest="source", action="store_const", const="artifacts", help="KIND is an artifact kind"
    )


@subcommand(
    "plot", "chart a metric: events of a kind over steps, or artifacts of a kind as points",
    "plot train_log --y loss --smooth 20", _plot_args, cli=False,
    details="Returns the plotly figure (fig.to_dict() holds the plotted data; fig.write_html saves it).",
)  # fmt: skip
def run_plot(s: Session, a: argparse.Namespace) -> Any:
    """A line per run of ``--y`` over steps (events), or a scatter of artifacts; returns the figure.

    Example: ``%aeg plot train_log --y loss --by run --smooth 20 --log``
    """
    from ...core.series import RUN, artifact_points, event_series, read_event_columns
    from ..charts import series_figure

    where = s.where(a.scope)
    source = a.source or _source_of(s, a.kind)
    if source == "artifacts":
        x = a.x or _default_artifact_x(s, a.kind, a.y, where)
        ss = artifact_points(s.artifacts, a.kind, y=a.y, x=x, by=a.by, where=where)
        return series_figure(ss, log=a.log)
    by = a.by or RUN
    cols = read_event_columns(s.event_log, a.kind, where, by=by)  # read once: the smoothed and the raw lines
    ss = event_series(s.event_log, a.kind, y=a.y, x=a.x, by=by, where=where, smooth_points=a.smooth, columns=cols)
    raw = event_series(s.event_log, a.kind, y=a.y, x=a.x, by=by, where=where, columns=cols) if a.smooth > 1 else None
    title = f"{a.kind}: {a.y} over {ss.x_key}" + (f" (mean of {a.smooth})" if a.smooth > 1 else "")
    return series_figure(ss, raw=raw, log=a.log, title=title)


def _source_of(s: Session, kind: str) -> str:
    events = s.event_log.kinds()
    if kind in events:
        return "events"
    arts = s.artifacts.kinds()
    if kind in arts:
        return "artifacts"
    raise NotFoundError(
        f"no events or artifacts of kind {kind!r}; event kinds: {', '.join(events) or 'none'}"
        f"; artifact kinds: {', '.join(arts) or 'none'}"
    )


def _default_artifact_x(s: Session, kind: str, y: str, where: ScopeFilter) -> str:
    arts = s.artifacts.list(kind=kind, where=where)
    labels = sorted({k for art in arts for k in art.labels if not k.startswith("_")})
    if labels:
        return labels[0]
    others = sorted({m for art in arts for m in art.metrics if m != y})
    if others:
        return others[0]
    raise CommandError(
        f"{s.typed('plot')}: {kind} artifacts have no label or other metric to plot {y} against; "
        f"give one with --x, e.g. `{s.typed('plot')} {kind} --y {y} --x lr`"
    )


def _compare_args(p: CommandParser) -> None:
    p.add_argument("runs", nargs="+", metavar="RUN", help="run ids (or unique prefixes), two or more")
    p.add_argument("--kind", metavar="KIND", help="the event kind (default: the one these runs recorded most)")
    p.add_argument("--y", metavar="METRIC", help="the metric (default: the kind's first non-step number)")
    _chart_args(p)


@subcommand(
    "compare", "runs side by side: curves overlaid, labels and final metrics in a table",
    "compare run-a run-b --y loss", _compare_args, cli=False,
)  # fmt: skip
def run_compare(s: Session, a: argparse.Namespace) -> Any:
    """Two or more runs in one view: their curves overlaid, their labels and metrics side by side.

    Example: ``%aeg compare run-20260102-030405-a1b2 run-20260102-041500-c3d4 --y loss``
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    from ...core.series import STEP_KEYS, EventColumns, event_series, kind_keys, read_event_columns
    from ..charts import compare_figure

    if len(a.runs) < 2:
        raise CommandError(f"{s.typed('compare')}: give two runs or more, e.g. `{s.typed('compare')} RUN_A RUN_B`")
    runs = _resolve_runs(s, a.runs)
    kind = a.kind or _busiest_kind(s, runs)
    cols = read_event_columns(s.event_log, kind)
    cols = EventColumns(cols.table.filter(pc.is_in(cols.table.column("run_id"), value_set=pa.array(runs))))
    if len(cols) == 0:
        raise NotFoundError(f"runs {', '.join(runs)} recorded no {kind!r} events; choose a kind with --kind")
    keys = kind_keys(cols)
    y = a.y or next((k for k in keys.all if k not in STEP_KEYS), None)
    if y is None:
        raise NotFoundError(f"{kind} events of these runs hold no numbers to plot")
    ss = event_series(s.event_log, kind, y=y, x=a.x, columns=cols, smooth_points=a.smooth)
    order = {r: i for i, r in enumerate(runs)}
    ss.series.sort(key=lambda x: order.get(x.name, len(order)))
    return compare_figure(ss, _run_table(s, runs, cols, keys.all, y), log=a.log)


def _resolve_runs(s: Session, wanted: list[str]) -> list[str]:
    from ...core.runs import summarize_runs

    known = [r.run_id for r in summarize_runs(s.context.store) if r.run_id]
    out = []
    for w in wanted:
        if w in known:
            out.append(w)
            continue
        hits = [r for r in known if r.startswith(w) or r.endswith(w)]
        if len(hits) != 1:
            what = "matches no run" if not hits else f"matches {len(hits)} runs"
            raise NotFoundError(f"{w!r} {what}; `{s.typed('runs')}` lists them, e.g. {', '.join(known[:3]) or 'none'}")
        out.append(hits[0])
    return out


def _busiest_kind(s: Session, runs: list[str]) -> str:
    import pyarrow as pa
    import pyarrow.compute as pc

    from ...core.series import read_event_columns

    best: tuple[int, str] | None = None
    for kind in s.event_log.kinds():
        cols = read_event_columns(s.event_log, kind)
        n = int(pc.sum(pc.is_in(cols.table.column("run_id"), value_set=pa.array(runs))).as_py() or 0)
        if n and (best is None or n > best[0]):
            best = (n, kind)
    if best is None:
        raise NotFoundError(f"runs {', '.join(runs)} recorded no events; `{s.typed('recent')}` shows what there is")
    return best[1]


def _run_table(s: Session, runs: list[str], cols: EventColumns, keys: list[str], y: str) -> dict[str, dict[str, Any]]:
    import numpy as np

    from ...core.series import values_of

    run_ids = np.array(cols.column("run_id").to_pylist(), dtype=object)
    values = {k: values_of(cols, k) for k in keys}
    table: dict[str, dict[str, Any]] = {}
    for run in runs:
        row: dict[str, Any] = {}
        labels: dict[str, list[Any]] = {}
        for art in s.artifacts.list(where=ScopeFilter(run_id=run)):
            for k, v in art.labels.items():
                if not k.startswith("_") and v not in labels.setdefault(k, []):
                    labels[k].append(v)
        for k, vs in sorted(labels.items()):
            row[k] = " | ".join(str(v) for v in vs)
        mine = run_ids == run
        row["events"] = int(mine.sum())
        for k in keys:
            v = values[k][mine]
            v = v[~np.isnan(v)]
            if len(v):
                row[f"last {k}"] = float(v[-1])
                if k == y:
                    row[f"min {k}"] = float(v.min())
                    row[f"max {k}"] = float(v.max())
        table[run] = row
    return table


__all__: list[str] = []
