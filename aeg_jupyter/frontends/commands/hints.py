"""What a subcommand says when it finds nothing: the kinds, metrics and labels that do exist (with a
did-you-mean, as mistyped subcommands get), and how many matches another scope holds.

A KIND, METRIC or ``--by`` LABEL that no artifact has is a mistake: :func:`check_ranked` and
:func:`check_label` raise :class:`~aeg_jupyter.base.errors.NotFoundError` (a one-line ``UsageError``
in the magics, exit status 1 in the CLI) naming what exists. An empty answer to a good question is
not a mistake: the subcommand returns its usual value (``None``, or a DataFrame with its documented
columns and no rows) and :func:`nothing_found` is the one-line note it prints, naming the matches in
``--scope all``. Everything here runs only once an answer came back empty: the checks walk a kind's
artifacts, which an answer that found something never pays for.

Example:
    >>> nothing_found(session, "search", "run", kind="config")                # doctest: +SKIP
    "%aeg search: nothing in scope 'run'; 2 match in scope 'all' (other runs or notebooks): add `--scope all`"
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...api.artifacts import count_in_all
from ...base.errors import NotFoundError
from .parsing import did_you_mean
from .session import Session


def _names(names: list[str], what: str) -> str:
    return f"{what}: {', '.join(names[:20])}{', ...' if len(names) > 20 else ''}" if names else f"no {what} yet"


def check_ranked(s: Session, kind: str, metric: str) -> None:
    """Refuse a KIND no artifact has, or a METRIC no artifact of KIND has, naming what exists.

    Example:
        >>> check_ranked(session, "chekpoint", "val_acc")                  # doctest: +SKIP
        NotFoundError: no artifacts of kind 'chekpoint'; did you mean 'checkpoint'? (kinds: checkpoint, config)
    """
    kinds = s.artifacts.kinds()
    if kind not in kinds:
        raise NotFoundError(f"no artifacts of kind {kind!r}; {did_you_mean(kind, kinds)}({_names(kinds, 'kinds')})")
    metrics = s.artifacts.metric_names(kind)
    if metric not in metrics:
        raise NotFoundError(
            f"no {kind!r} artifact has the metric {metric!r}; {did_you_mean(metric, metrics)}"
            f"({_names(metrics, f'metrics of {kind!r}')})"
        )


def check_label(s: Session, kind: str | None, key: str, why: str) -> None:
    """Refuse a label key no artifact of ``kind`` has (``--by``), naming the keys that exist.

    Example:
        >>> check_label(session, "checkpoint", "nosuchlabel", "to group by")   # doctest: +SKIP
        NotFoundError: no 'checkpoint' artifact has the label 'nosuchlabel' to group by; (labels: exp, lr)
    """
    keys = _label_keys(s, kind)
    if key not in keys:
        what = f"{kind!r} artifact" if kind else "artifact"
        raise NotFoundError(
            f"no {what} has the label {key!r} {why}; {did_you_mean(key, keys)}({_names(keys, 'labels')})"
        )


def _label_keys(s: Session, kind: str | None) -> list[str]:
    from ...core.leaderboard import label_keys

    return label_keys(s.artifacts, kind=kind)


def nothing_found(
    s: Session,
    cmd: str,
    scope: str,
    *,
    kind: str | None = None,
    metric: str | None = None,
    labels: Mapping[str, Any] | None = None,
) -> str:
    """The one-line note for an empty answer: what is missing, and what ``--scope all`` holds.

    Example:
        >>> nothing_found(session, "search", "run", kind="config")              # doctest: +SKIP
        "%aeg search: nothing in scope 'run'; 2 match in scope 'all' (other runs or notebooks): add `--scope all`"
    """
    asked = s.typed(cmd)
    if kind is not None and kind not in s.artifacts.kinds():
        kinds = s.artifacts.kinds()
        return f"{asked}: no artifacts of kind {kind!r}; {did_you_mean(kind, kinds)}({_names(kinds, 'kinds')})"
    if metric is not None and kind is not None and metric not in s.artifacts.metric_names(kind):
        metrics = s.artifacts.metric_names(kind)
        return (
            f"{asked}: no {kind!r} artifact has the metric {metric!r}; {did_you_mean(metric, metrics)}"
            f"({_names(metrics, f'metrics of {kind!r}')})"
        )
    missing = [k for k in (labels or {}) if k not in _label_keys(s, kind)]
    if missing:
        keys = _label_keys(s, kind)
        what = f"{kind!r} artifact" if kind else "artifact"
        return (
            f"{asked}: no {what} has the label {missing[0]!r}; {did_you_mean(missing[0], keys)}"
            f"({_names(keys, 'labels')})"
        )
    if scope != "all":
        n = count_in_all(s.artifacts, kind=kind, metric=metric, labels=labels)
        if n:
            return (
                f"{asked}: nothing in scope {scope!r}; {n} match in scope 'all' (other runs or notebooks): "
                "add `--scope all`"
            )
    what = f" of kind {kind!r}" if kind else ""
    what += f" with the metric {metric!r}" if metric else ""
    what += (
        f"{' and' if metric else ' with'} labels {', '.join(f'{k}={v}' for k, v in labels.items())}" if labels else ""
    )
    return f"{asked}: no artifacts{what} in scope {scope!r}"


__all__ = ["check_label", "check_ranked", "nothing_found"]
