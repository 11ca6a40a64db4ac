"""Store-maintenance subcommands: ``gc`` (retention) and ``verify`` (re-hash every blob).

Example (in a shell)::

    aeg gc --older-than 7d --keep-last 3 --dry-run
    aeg verify --repair
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from .parsing import CommandParser, duration, non_negative_int
from .registry import subcommand
from .session import Session

if TYPE_CHECKING:
    from ...core.artifacts import GcReport, VerifyReport


def keep_best_rule(text: str) -> tuple[str, tuple[str, str]]:
    """``checkpoint=val_acc`` -> ``("checkpoint", ("val_acc", "max"))``; ``:min`` ranks lower-is-better.

    Example:
        >>> keep_best_rule("checkpoint=loss:min")
        ('checkpoint', ('loss', 'min'))
    """
    kind, sep, rule = text.partition("=")
    metric, _, mode = rule.partition(":")
    if not sep or not kind or not metric or mode not in ("", "max", "min"):
        raise argparse.ArgumentTypeError(
            f"expected KIND=METRIC or KIND=METRIC:min such as checkpoint=val_acc, got {text!r}"
        )
    return kind, (metric, mode or "max")


def _gc_args(p: CommandParser) -> None:
    p.add_argument("--dry-run", action="store_true", help="only report what would be freed")
    p.add_argument("--older-than", type=duration, metavar="AGE", help="collect unpinned artifacts older than AGE (7d)")
    p.add_argument("--keep-last", type=non_negative_int, metavar="N", help="but keep the newest N of each kind")
    p.add_argument(
        "--keep-best", action="append", type=keep_best_rule, default=[], metavar="KIND=METRIC[:min]",
        help="and always keep the best artifact of KIND by METRIC (repeatable)",
    )  # fmt: skip


@subcommand(
    "gc", "delete unpinned artifacts by age / count, then unreferenced blobs",
    "gc --older-than 7d --keep-last 3 --dry-run", _gc_args,
)  # fmt: skip
def run_gc(s: Session, a: argparse.Namespace) -> GcReport:
    """Collect unpinned artifacts by the retention rule, then every unreferenced blob.

    Example: ``%aeg gc --older-than 7d --keep-last 3 --dry-run``
    """
    return s.artifacts.gc(
        dry_run=a.dry_run, older_than=a.older_than, keep_last=a.keep_last, keep_best=dict(a.keep_best) or None
    )


def _verify_args(p: CommandParser) -> None:
    p.add_argument("--repair", action="store_true", help="move corrupt blobs aside so a new save stores them again")


@subcommand("verify", "re-hash every blob and report corruption", "verify", _verify_args)
def run_verify(s: Session, a: argparse.Namespace) -> VerifyReport:
    """Re-hash every blob; report corrupt blobs and artifacts whose blob is missing.

    Example: ``%aeg verify``
    """
    return s.artifacts.verify(repair=a.repair)


__all__ = ["keep_best_rule"]
