"""pandas DataFrames for people: the only module that builds DataFrames.

Columns are stable (DESIGN.md section 6): fixed columns first, then one ``label.<key>`` /
``metric.<name>`` (artifacts) or ``data.<key>`` / ``metric.<name>`` / ``out.<name>`` (events)
column per key that occurs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .models import Artifact, Event

if TYPE_CHECKING:
    import pandas as pd

ARTIFACT_COLUMNS = [
    "artifact_id", "kind", "name", "uri", "created_at", "run_id", "graph_id", "node_id", "pinned", "size",
]  # fmt: skip
EVENT_COLUMNS = ["event_id", "ts", "kind", "topic", "run_id", "graph_id", "node_id", "text"]


def artifacts_frame(arts: Sequence[Artifact]) -> pd.DataFrame:
    """Artifacts -> DataFrame, in the given order.

    Example:
        >>> artifacts_frame(await arts.search(kind="checkpoint"))   # doctest: +SKIP
    """
    import pandas as pd

    base: dict[str, list[Any]] = {c: [] for c in ARTIFACT_COLUMNS}
    extra: dict[str, list[Any]] = {}
    for i, a in enumerate(arts):
        base["artifact_id"].append(a.artifact_id)
        base["kind"].append(a.kind)
        base["name"].append(a.name)
        base["uri"].append(a.uri)
        base["created_at"].append(a.created_at)
        base["run_id"].append(a.run_id)
        base["graph_id"].append(a.graph_id)
        base["node_id"].append(a.node_id)
        base["pinned"].append(a.pinned)
        base["size"].append(a.size)
        for k, v in a.labels.items():
            extra.setdefault(f"label.{k}", [None] * i).append(v)
        for k, v in a.metrics.items():
            extra.setdefault(f"metric.{k}", [None] * i).append(v)
        for col in extra.values():
            if len(col) < i + 1:
                col.append(None)
    df = pd.DataFrame(base)
    df["created_at"] = pd.to_datetime(df["created_at"], utc=True)
    df["size"] = df["size"].astype("int64")
    df["pinned"] = df["pinned"].astype(bool)
    labels = sorted(c for c in extra if c.startswith("label."))
    metrics = sorted(c for c in extra if c.startswith("metric."))
    for c in labels:
        df[c] = pd.Series(extra[c], dtype=object)
    for c in metrics:
        df[c] = pd.Series(extra[c], dtype="float64")
    return df


def events_frame(events: Sequence[Event], *, newest_first: bool = True) -> pd.DataFrame:
    """Events -> DataFrame; newest first by default (``recent`` lists are oldest first)."""
    import pandas as pd

    evs = list(reversed(events)) if newest_first else list(events)
    base: dict[str, list[Any]] = {c: [] for c in EVENT_COLUMNS}
    extra: dict[str, list[Any]] = {}
    for i, e in enumerate(evs):
        base["event_id"].append(e.event_id)
        base["ts"].append(e.ts)
        base["kind"].append(e.kind)
        base["topic"].append(e.topic)
        base["run_id"].append(e.run_id)
        base["graph_id"].append(e.graph_id)
        base["node_id"].append(e.node_id)
        base["text"].append(e.text)
        data = e.data
        if isinstance(data, dict):
            for k, v in data.items():
                extra.setdefault(f"data.{k}", [None] * i).append(v)
        for k, v in (e.metrics or {}).items():
            extra.setdefault(f"metric.{k}", [None] * i).append(v)
        for v in e.outputs or ():
            extra.setdefault(f"out.{v.name}", [None] * i).append(v.value)
        for col in extra.values():
            if len(col) < i + 1:
                col.append(None)
    df = pd.DataFrame(base)
    df["ts"] = pd.to_datetime(df["ts"], utc=True, format="ISO8601")
    for prefix in ("data.", "metric.", "out."):
        for c in sorted(c for c in extra if c.startswith(prefix)):
            df[c] = pd.Series(extra[c], dtype="float64" if prefix == "metric." else object)
    return df
