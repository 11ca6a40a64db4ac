"""Retention: which artifacts a rule lets go. Policy only; :mod:`.maintenance` does the deleting.

Example:
    >>> rules = best_rules({"checkpoint": ("loss", "min")})
    >>> rules
    {'checkpoint': ('loss', 'min')}
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from ..base.errors import InvalidInputError
from ..base.models import Artifact
from ..base.validate import Mode, check_kind
from .catalog import Catalog
from .search import ArtifactSearch


def best_rules(keep_best: Mapping[str, str | tuple[str, Mode]] | None) -> dict[str, tuple[str, Mode]]:
    if not keep_best:
        return {}
    if not isinstance(keep_best, Mapping):
        raise InvalidInputError(
            "keep_best must be a dict such as {'checkpoint': 'val_acc'} or {'ckpt': ('loss', 'min')}"
        )
    rules: dict[str, tuple[str, Mode]] = {}
    for kind, rule in keep_best.items():
        metric, mode = (rule, "max") if isinstance(rule, str) else tuple(rule)
        if mode not in ("max", "min") or not isinstance(metric, str):  # (check_mode's message would not name the rule)
            raise InvalidInputError(f"keep_best[{kind!r}] must be a metric name or (metric, 'max'|'min'), got {rule!r}")
        rules[check_kind(kind)] = (metric, mode)  # type: ignore[assignment]
    return rules


def select_for_deletion(
    catalog: Catalog,
    search: ArtifactSearch,
    older_than: timedelta | None,
    keep_last: int | None,
    keep_best: dict[str, tuple[str, Mode]],
) -> list[Artifact]:
    """The unpinned artifacts a retention rule lets go: older than ``older_than`` (if given), beyond the
    newest ``keep_last`` of their kind (if given), and not the best of a kind named in ``keep_best``.

    With neither ``older_than`` nor ``keep_last`` nothing is selected.
    """
    if older_than is None and keep_last is None:
        return []
    cutoff = datetime.now().astimezone() - older_than if older_than is not None else None
    protected: set[str] = set()
    for kind, (metric, mode) in keep_best.items():
        champion = search.best(kind=kind, metric=metric, mode=mode)
        if champion is not None:
            protected.add(champion.artifact_id)
    out = []
    for lst in list(catalog.by_kind.values()):
        newest = {a.artifact_id for a in lst[-keep_last:]} if keep_last else set()
        for a in lst:
            if a.pinned or a.artifact_id in newest or a.artifact_id in protected:
                continue
            if cutoff is not None and a.created_at is not None and a.created_at >= cutoff:
                continue
            out.append(a)
    return out
