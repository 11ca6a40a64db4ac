"""Leaderboards: artifacts of one kind ranked by a metric, optionally the best one per label value.

A core query (no IPython, no widgets): the panel's Leaderboard tab and ``%aeg leaderboard`` both
call :func:`leaderboard`. Ranking is :meth:`ArtifactStore.search`'s: artifacts lacking the metric
(or with NaN) are left out, ties go to the newest.

Example:
    >>> index = aeg_jupyter.connect("/tmp/store").store.artifacts                      # doctest: +SKIP
    >>> leaderboard(index, kind="checkpoint", metric="val_acc", group_by="exp", limit=3)  # doctest: +SKIP
       rank  short_id  artifact_id ... label.exp  metric.val_acc
    0     1  7Q2M4K1Z  01J...          B                   0.93
    1     2  0R8T6W3C  01J...          A                   0.91
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..base.errors import InvalidInputError
from ..base.models import Artifact, ScopeFilter
from ..base.validate import check_kind, check_limit, check_mode, check_name
from .artifacts import ArtifactStore, Mode
from .direction import MODES_LABEL, collect_recorded, default_metric, infer_direction, recorded_modes

if TYPE_CHECKING:
    import pandas as pd


def ranked(
    index: ArtifactStore,
    *,
    kind: str,
    metric: str,
    mode: Mode = "max",
    where: ScopeFilter = ScopeFilter(),
    labels: Mapping[str, Any] | None = None,
    group_by: str | None = None,
    limit: int | None = 10,
) -> list[Artifact]:
    """The artifacts of a leaderboard, best first (what :func:`leaderboard` puts in rows).

    With ``group_by`` (a label key) only the best artifact of each value of that label is kept,
    e.g. the best checkpoint per ``exp``; artifacts without that label are left out.

    Example:
        >>> [a.labels["exp"] for a in ranked(index, kind="checkpoint", metric="val_acc", group_by="exp")]  # doctest: +SKIP
        ['B', 'A']
    """
    check_kind(kind)
    if not isinstance(metric, str) or not metric:
        raise InvalidInputError(f"metric must be a metric name such as 'val_acc', got {metric!r}")
    check_mode(mode)
    if group_by is not None:
        check_name(group_by, "label")
    limit = check_limit(limit, allow_none=True)
    if group_by is None:
        return list(index.search(kind=kind, metric=metric, mode=mode, where=where, labels=labels, limit=limit))
    out: list[Artifact] = []
    seen: set[str] = set()
    for art in index.iter_ranked(kind=kind, metric=metric, mode=mode, where=where, labels=labels):
        if limit is not None and len(out) >= limit:
            break
        if group_by not in art.labels:
            continue
        key = json.dumps(art.labels[group_by])  # "1", "1.0", "true" and '"1"' are different groups
        if key not in seen:
            seen.add(key)
            out.append(art)
    return out


def leaderboard(
    index: ArtifactStore,
    *,
    kind: str,
    metric: str,
    mode: Mode = "max",
    where: ScopeFilter = ScopeFilter(),
    labels: Mapping[str, Any] | None = None,
    group_by: str | None = None,
    limit: int | None = 10,
    now: datetime | None = None,
) -> pd.DataFrame:
    """A ranked table of the artifacts of ``kind`` by ``metric`` (the best row first).

    Args:
        index: the store's artifact index (``context.store.artifacts``).
        kind: artifact kind to rank, e.g. ``"checkpoint"``.
        metric: metric to rank by, e.g. ``"val_acc"``.
        mode: ``"max"`` (higher is better) or ``"min"``.
        where: scope filter (``context.scope("run")``; default: the whole store).
        labels: only artifacts with all these labels (exact values).
        group_by: a label key: keep only the best artifact per value of that label.
        limit: at most this many rows (``None``: all).
        now: the time ages are measured from (default: now).

    Returns:
        A DataFrame with ``rank`` (1 = best), ``short_id``, the artifact columns (docs/architecture.md, "Frames";
        with ``age`` after ``created_at``), one ``label.<key>`` column per label key
        and one ``metric.<name>`` column per metric; ``metric.<metric>`` is always present.

    Example:
        >>> df = leaderboard(context.store.artifacts, kind="checkpoint", metric="loss", mode="min")  # doctest: +SKIP
        >>> df[["rank", "short_id", "metric.loss"]]                                                 # doctest: +SKIP
    """
    from .frames import leaderboard_frame

    rows = ranked(
        index, kind=kind, metric=metric, mode=mode, where=where, labels=labels, group_by=group_by, limit=limit
    )
    return leaderboard_frame(rows, metric=metric, group_by=group_by, now=now)


def label_keys(index: ArtifactStore, *, kind: str | None = None, where: ScopeFilter = ScopeFilter()) -> list[str]:
    """Label keys used by live artifacts (of ``kind``, in scope), sorted: the "best per" choices.

    Example:
        >>> label_keys(index, kind="checkpoint")   # doctest: +SKIP
        ['exp', 'seed']
    """
    keys: set[str] = set()
    for art in index.list(kind=kind, where=where):
        keys.update(art.labels)
    keys.discard(MODES_LABEL)  # directions of metrics, not a grouping
    return sorted(keys)


def metric_modes(index: ArtifactStore, kind: str) -> dict[str, Mode | None]:
    """Every metric of ``kind`` and which way it is better: recorded, else inferred, else ``None``.

    A direction recorded with an artifact (the label ``metric_modes="loss:min"``,
    :mod:`.direction`) wins over the name; the newest artifact recording one decides.

    Example:
        >>> metric_modes(index, "checkpoint")   # doctest: +SKIP
        {'epoch': None, 'loss': 'min', 'val_acc': 'max'}
    """
    names = index.metric_names(kind)
    recorded = collect_recorded(a.labels for a in index.list(kind=kind))  # newest first
    return {n: recorded.get(n) or infer_direction(n) for n in names}


def metric_direction(index: ArtifactStore, kind: str, metric: str) -> Mode | None:
    """Which way ``metric`` is better for ``kind``: recorded with an artifact, else from its name, else ``None``.

    Example:
        >>> metric_direction(index, "checkpoint", "val_loss")   # doctest: +SKIP
        'min'
    """
    for art in index.list(kind=kind):  # newest first
        if MODES_LABEL in art.labels:
            mode = recorded_modes(art.labels).get(metric)
            if mode is not None:
                return mode
    return infer_direction(metric)


def default_ranking(index: ArtifactStore, kind: str) -> tuple[str | None, Mode | None]:
    """The metric a practitioner would rank ``kind`` by, and its direction (``(None, None)``: no metrics).

    A metric of known direction first, a validation metric (``val_*``) before a training one
    (:func:`.direction.default_metric`).

    Example:
        >>> default_ranking(index, "checkpoint")   # doctest: +SKIP
        ('val_acc', 'max')
    """
    modes = metric_modes(index, kind)
    metric = default_metric(modes, modes)
    return metric, (modes.get(metric) if metric is not None else None)


__all__ = ["default_ranking", "label_keys", "leaderboard", "metric_direction", "metric_modes", "ranked"]
