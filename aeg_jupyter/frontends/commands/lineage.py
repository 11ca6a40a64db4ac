"""Lineage subcommands: ``lineage ID`` (where an artifact came from, what was made from it) and
``diff RUN_A RUN_B`` (what differs between two runs).

Example (in a notebook)::

    %aeg lineage 7X2KQ9PA --depth 2
    %aeg diff sweep-1 sweep-2
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from .parsing import CommandParser, non_negative_int
from .registry import subcommand
from .session import Session


def _lineage_args(p: CommandParser) -> None:
    p.add_argument("artifact", metavar="ID", help="artifact id, short id (last 8), unique prefix, or cas:// URI")
    p.add_argument("--depth", type=non_negative_int, default=None, metavar="N", help="levels of inputs (default: all)")
    p.add_argument("--json", action="store_true", help="the graph as data: nodes, edges, downstream, missing")


@subcommand(
    "lineage",
    "where an artifact came from: its inputs (and theirs), the cell that made it, its run's environment",
    "lineage 01J8Z3QK --depth 2",
    _lineage_args,
    takes_id=True,
    details="Inputs are the stored artifacts the producing cell read before saving (load_*, as_local_*, "
    "%aeg load/path) plus inputs=[...] given to the save; 'made from it' lists the artifacts that name it.",
)
def run_lineage(s: Session, a: argparse.Namespace) -> Any:
    """The :class:`~aeg_jupyter.core.lineage.Lineage` of an artifact (``--json``: its graph as JSON text).

    Example: ``%aeg lineage 7X2KQ9PA``
    """
    from ...core.lineage import lineage

    found = lineage(s.artifacts, a.artifact, depth=a.depth)
    return json.dumps(found.to_dict(), indent=1, default=str) if a.json else found


def _diff_args(p: CommandParser) -> None:
    for name in ("run_a", "run_b"):
        p.add_argument(name, metavar=name.upper(), help="run id, unique prefix, run name, or an artifact id (its run)")
    p.add_argument("--json", action="store_true", help="the differences as data")


@subcommand(
    "diff",
    "what differs between two runs: labels, configs, best metrics, edited cells, packages, git",
    "diff sweep-1 sweep-2",
    _diff_args,
    details="Only differences are listed. Cells are every cell a run ran (cells of only %aeg commands left "
    "out), compared by cell id, else by position; a kernel keeps a cell that wrote nothing at its next write, "
    "a %aeg diff, or its exit. The environment is what each run recorded at its first write in a kernel.",
)
def run_diff(s: Session, a: argparse.Namespace) -> Any:
    """The :class:`~aeg_jupyter.core.rundiff.RunDiff` of two runs.

    Example: ``%aeg diff sweep-1 sweep-2``
    """
    from ...core.rundiff import diff_runs

    keep = getattr(s.context, "keep_cells", None)
    if keep is not None:  # this kernel's cells that wrote nothing yet are part of its run's code
        keep()
    found = diff_runs(s.artifacts, a.run_a, a.run_b, events=s.context.store.event_table)
    return json.dumps(found.to_dict(), indent=1, default=str) if a.json else found


__all__ = ["run_diff", "run_lineage"]
