"""Store-maintenance subcommands: ``gc`` (retention) and ``verify`` (re-hash every blob).

Example (in a shell)::

    aeg gc --keep-last 3 --dry-run
    aeg gc --older-than 7d --keep-best 2
    aeg verify --repair
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from .parsing import CommandError, CommandParser, duration, non_negative_int
from .registry import subcommand
from .session import Session

if TYPE_CHECKING:
    from ...core.artifacts import GcReport, VerifyReport


def keep_best_rule(text: str) -> int | tuple[str, tuple[str, str | None]]:
    """``3`` -> 3 (the top 3 of every leaderboard); ``checkpoint=val_acc`` -> ``("checkpoint", ("val_acc", None))``
    (the direction from the name); ``checkpoint=loss:min`` names the direction.

    Example:
        >>> keep_best_rule("checkpoint=loss:min"), keep_best_rule("2")
        (('checkpoint', ('loss', 'min')), 2)
    """
    if text.strip().isdigit():
        return int(text)
    kind, sep, rule = text.partition("=")
    metric, _, mode = rule.partition(":")
    if not sep or not kind or not metric or mode not in ("", "max", "min"):
        raise argparse.ArgumentTypeError(
            f"expected N, KIND=METRIC or KIND=METRIC:min such as 3 or checkpoint=val_acc, got {text!r}"
        )
    return kind, (metric, mode or None)


def _gc_args(p: CommandParser) -> None:
    p.add_argument("--dry-run", action="store_true", help="only list what would be deleted (a table: what and why)")
    p.add_argument("--keep-last", type=non_negative_int, metavar="N", help="keep the N newest artifacts of each kind")
    p.add_argument("--older-than", type=duration, metavar="AGE", help="keep artifacts younger than AGE (7d, 12h)")
    p.add_argument(
        "--keep-best", action="append", type=keep_best_rule, default=[], metavar="N|KIND=METRIC[:min]",
        help="keep the top N of every leaderboard, or the best of KIND by METRIC (repeatable); 0 lets leaders go",
    )  # fmt: skip


@subcommand(
    "gc", "delete the artifacts no keep rule protects (pins and leaders are kept), then unused blobs",
    "gc --keep-last 3 --dry-run", _gc_args,
    details="An artifact goes only if no rule keeps it: --keep-last N keeps the newest N of each kind, "
    "--older-than AGE keeps the younger ones, --keep-best N the top N of every leaderboard (a kind ranked by "
    "one of its metrics, the direction from the metric's name); pinned artifacts and each leaderboard's "
    "leader are always kept (--keep-best 0 lets leaders go). With no rule only unused blobs are freed. "
    "On a format-2 store (not with --dry-run) gc runs maintenance before it frees blobs: spools flushed, pins and deletes "
    "folded into the artifacts table (what DuckDB, Polars and Spark read), small files compacted, a checkpoint "
    "and a vacuum of files replaced more than 24 h ago; its summary follows gc's.",
)  # fmt: skip
def run_gc(s: Session, a: argparse.Namespace) -> GcReport:
    """Delete the artifacts no keep rule protects, then every unreferenced blob.

    Example: ``%aeg gc --keep-last 3 --dry-run``
    """
    counts = [r for r in a.keep_best if isinstance(r, int)]
    named = dict(r for r in a.keep_best if not isinstance(r, int))
    if counts and named:
        raise CommandError(
            f"{s.typed('gc')}: give --keep-best N (every leaderboard) or --keep-best KIND=METRIC, not both"
        )
    keep_best: Any = counts[-1] if counts else ({k: (m, mode) if mode else m for k, (m, mode) in named.items()} or None)
    return s.artifacts.gc(dry_run=a.dry_run, older_than=a.older_than, keep_last=a.keep_last, keep_best=keep_best)


def _verify_args(p: CommandParser) -> None:
    p.add_argument(
        "--repair",
        action="store_true",
        help="move corrupt blobs aside so a new save stores them again; keep rows held twice once",
    )


@subcommand("verify", "re-hash every blob; report corruption and rows held twice", "verify", _verify_args)
def run_verify(s: Session, a: argparse.Namespace) -> VerifyReport:
    """Re-hash every blob; report corrupt blobs, artifacts whose blob is missing and rows held twice.

    Example: ``%aeg verify``
    """
    return s.artifacts.verify(repair=a.repair)


__all__ = ["keep_best_rule"]
