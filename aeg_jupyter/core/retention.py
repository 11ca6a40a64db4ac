"""Retention: which artifacts ``gc`` lets go, and why each one is not kept. Policy only;
:mod:`.maintenance` does the deleting.

The rules read as what they do. An artifact goes only if no keep rule protects it:

* ``keep_last=N``: the N newest artifacts of each kind are kept.
* ``older_than=AGE``: artifacts younger than AGE are kept.
* ``keep_best=N``: the top N of every leaderboard are kept (a leaderboard is a kind ranked by one
  of its metrics, in the metric's direction: :mod:`.direction`; a metric of unknown direction
  keeps its top N at both ends). ``keep_best={"checkpoint": "val_acc"}`` (or ``("loss", "min")``)
  keeps the best of the leaderboards named.
* Pinned artifacts are always kept.
* The current leader of every leaderboard is kept, unless ``keep_best=0`` says otherwise.

Which artifacts a rule speaks of: ``keep_last`` and ``older_than`` every kind, ``keep_best=N`` the
kinds that have metrics, a ``keep_best`` dict the kinds it names. With no rule at all nothing is
selected (``gc()`` then frees only blobs no artifact uses).

Example:
    >>> rules = RetentionRules.make(keep_last=2, keep_best={"checkpoint": "loss"})
    >>> rules.keep_last, rules.named
    (2, {'checkpoint': ('loss', 'min')})
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from ..base.errors import InvalidInputError
from ..base.models import RESERVED_KIND_PREFIX, Artifact
from ..base.validate import Mode, check_kind, check_limit
from .catalog import Catalog
from .direction import collect_recorded, infer_direction
from .search import ArtifactSearch

KeepBest = int | Mapping[str, str | tuple[str, Mode]] | None


@dataclass(frozen=True, slots=True)
class Doomed:
    """An artifact a retention rule lets go, and why it is not kept (``"not among the 2 newest checkpoint"``)."""

    artifact: Artifact
    reason: str


@dataclass(frozen=True, slots=True)
class RetentionRules:
    """The rules of one ``gc`` call (see the module docstring); build them with :meth:`make`."""

    older_than: timedelta | None = None
    keep_last: int | None = None
    keep_best: int | None = None  # top N of every leaderboard (None: not given)
    named: dict[str, tuple[str, Mode | None]] = field(default_factory=dict)  # kind -> (metric, mode)

    @classmethod
    def make(
        cls, *, older_than: timedelta | None = None, keep_last: int | None = None, keep_best: KeepBest = None
    ) -> RetentionRules:
        """Check and build the rules; a ``keep_best`` metric given without a mode takes its inferred direction.

        Raises:
            InvalidInputError: a rule that is not one of the forms above (the message shows them).
        """
        keep_last = check_limit(keep_last, allow_none=True)
        if keep_best is None or isinstance(keep_best, Mapping):
            return cls(older_than, keep_last, None, best_rules(keep_best))
        if isinstance(keep_best, bool) or not isinstance(keep_best, int):
            raise InvalidInputError(
                "keep_best must be a dict such as {'checkpoint': 'val_acc'} or {'ckpt': ('loss', 'min')}, "
                f"or a number N (the top N of every leaderboard), got {keep_best!r}"
            )
        return cls(older_than, keep_last, check_limit(keep_best), {})

    @property
    def selects(self) -> bool:
        """Whether any rule selects artifacts (without one, gc only frees unused blobs)."""
        return (
            self.older_than is not None or self.keep_last is not None or self.keep_best is not None or bool(self.named)
        )

    @property
    def keep_leaders(self) -> bool:
        """Every leaderboard's leader is kept unless ``keep_best=0`` was asked for."""
        return self.keep_best != 0


def best_rules(keep_best: Mapping[str, str | tuple[str, Mode]] | None) -> dict[str, tuple[str, Mode | None]]:
    """``{"checkpoint": "val_acc", "ckpt": ("loss", "min")}`` checked; a metric alone gets its inferred mode.

    Example:
        >>> best_rules({"checkpoint": "loss", "ckpt": ("acc", "min")})
        {'checkpoint': ('loss', 'min'), 'ckpt': ('acc', 'min')}
    """
    if not keep_best:
        return {}
    if not isinstance(keep_best, Mapping):
        raise InvalidInputError(
            "keep_best must be a dict such as {'checkpoint': 'val_acc'} or {'ckpt': ('loss', 'min')}, "
            "or a number N (the top N of every leaderboard)"
        )
    rules: dict[str, tuple[str, Mode | None]] = {}
    for kind, rule in keep_best.items():
        if isinstance(rule, str):
            metric, mode = rule, infer_direction(rule)  # None: decided by a recorded direction, or both ends
        else:
            metric, mode = tuple(rule) if isinstance(rule, tuple | list) and len(rule) == 2 else (rule, "?")
        if mode not in ("max", "min", None) or not isinstance(metric, str) or not metric:
            raise InvalidInputError(f"keep_best[{kind!r}] must be a metric name or (metric, 'max'|'min'), got {rule!r}")
        rules[check_kind(kind)] = (metric, mode)  # type: ignore[assignment]
    return rules


def select_for_deletion(catalog: Catalog, search: ArtifactSearch, rules: RetentionRules) -> list[Doomed]:
    """The artifacts no keep rule protects, oldest first, each with the reason it is not kept.

    Example:
        >>> [d.reason for d in select_for_deletion(catalog, search, RetentionRules.make(keep_last=1))]  # doctest: +SKIP
        ['not among the 1 newest checkpoint']
    """
    if not rules.selects:
        return []
    cutoff = datetime.now().astimezone() - rules.older_than if rules.older_than is not None else None
    out: list[Doomed] = []
    every_kind = rules.older_than is not None or rules.keep_last is not None
    top = rules.keep_best if rules.keep_best is not None else 1  # leaders only, unless keep_best=N
    for kind, lst in sorted(catalog.by_kind.items()):
        lst = list(lst)  # oldest first
        boards = _leaderboards(kind, lst, rules)
        if not (every_kind or kind in rules.named or (rules.keep_best and boards)):
            continue  # no rule given speaks of this kind
        if kind.startswith(RESERVED_KIND_PREFIX) and kind not in rules.named:
            continue  # cell sources and run environments: what lineage and diff read; small, deduplicated
        kept_by_rank: set[str] = set()
        for metric, mode in boards:
            for m in ("max", "min") if mode is None else (mode,):
                kept_by_rank.update(a.artifact_id for a in search.search(kind=kind, metric=metric, mode=m, limit=top))
        newest = {a.artifact_id for a in lst[-rules.keep_last :]} if rules.keep_last else set()
        for a in lst:
            if a.pinned or a.artifact_id in newest or a.artifact_id in kept_by_rank:
                continue
            if cutoff is not None and a.created_at is not None and a.created_at >= cutoff:
                continue
            out.append(Doomed(a, _reason(kind, boards, rules)))
    out.sort(key=lambda d: d.artifact.artifact_id)  # ids grow with time: oldest first
    return out


def _leaderboards(kind: str, lst: list[Artifact], rules: RetentionRules) -> list[tuple[str, Mode | None]]:
    """The leaderboards of ``kind`` the rules protect: ``(metric, mode)``, ``mode`` None when unknown."""
    if kind in rules.named:
        metric, mode = rules.named[kind]
        if mode is None:
            mode = collect_recorded(a.labels for a in reversed(lst)).get(metric)
        return [(metric, mode)]
    if not rules.keep_leaders:
        return []
    names = sorted({m for a in lst for m in a.metrics})
    recorded = collect_recorded(a.labels for a in reversed(lst)) if names else {}
    return [(m, recorded.get(m) or infer_direction(m)) for m in names]


def _reason(kind: str, boards: list[tuple[str, Mode | None]], rules: RetentionRules) -> str:
    parts = []
    if rules.older_than is not None:
        parts.append(f"older than {_span(rules.older_than)}")
    if rules.keep_last is not None:
        parts.append(f"not among the {rules.keep_last} newest {kind}" if rules.keep_last else "keep-last 0")
    if boards:
        metrics = ", ".join(m for m, _ in boards)
        n = max(rules.keep_best or 0, 1)
        parts.append(f"not the best by {metrics}" if n == 1 else f"not in the top {n} by {metrics}")
    elif rules.keep_best == 0:
        parts.append("keep-best 0: leaders not protected")
    parts.append("not pinned")
    return "; ".join(parts)


def _span(d: timedelta) -> str:
    secs = d.total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if secs >= size and secs % size == 0:
            return f"{int(secs // size)}{unit}"
    return f"{secs:g}s"


__all__ = ["Doomed", "KeepBest", "RetentionRules", "best_rules", "select_for_deletion"]
