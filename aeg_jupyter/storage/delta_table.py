"""A format-1 :class:`~.tables.Table` whose flushes commit to a Delta table: format 2 behind a flag.

The spool, its tailing and recovery stay :class:`~.tables.Table`'s; only where spooled rows go
changes. ``write_parts(rows, writer, seq)`` (a flush, or the recovery of a dead writer's spool)
commits the rows with the application transaction ``(writer, seq)``, so a flush repeated after a
crash is not appended twice (``storage/delta.py``). The read side presents the snapshot's data files
as parts, their typed columns converted back to format 1's row shape (labels, metrics, values as
JSON text), so the format-1 catalog and event log run unchanged over a format-2 store while the
columnar catalog (``core/columnar.py``) is wired in. See ``docs/format2.md``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from .delta import DataFile, DeltaLakeTable
from .layout import Layout, Part, PartName
from .schemas import Row, TableSpec
from .schemas2 import ROWS_TO_ARROW, SCHEMAS2, labels_from_entries
from .tables import Table

_DELTA_WRITER = "delta"  # the writer field of the PartName given to a Delta data file


class DeltaSpoolTable(Table):
    """One table of a format-2 store: spooled like format 1, committed to Delta.

    Example:
        >>> t = DeltaSpoolTable(Layout(root), ARTIFACTS, writer="p1x2")      # doctest: +SKIP
        >>> t.append(row); t.flush()                                         # doctest: +SKIP
    """

    def __init__(self, layout: Layout, spec: TableSpec, *, writer: str, **kw: Any) -> None:
        super().__init__(layout, spec, writer=writer, **kw)
        self.delta = DeltaLakeTable(self.dir, SCHEMAS2[spec.name], ts_field=spec.ts_field)
        self._files: dict[str, DataFile] = {}

    # -- writing -----------------------------------------------------------------------------
    def write_parts(self, rows: list[Row], writer: str, seq: int) -> list[str]:
        """Commit ``rows`` (spool ``seq`` of ``writer``) in one Delta commit, unless it is in already."""
        self.delta.commit(ROWS_TO_ARROW[self.spec.name](rows), app_id=writer, seq=seq)
        return []  # nothing for format 1's per-partition compaction to look at

    def compact(self, kind: str, *, min_parts: int = 16, max_rows: int = 1_000_000) -> int:
        """Compact one partition with Delta's optimize (one commit); returns how many files it merged."""
        if not self.delta.exists() or len(self.delta.files([kind])) < min_parts:
            return 0
        return int(self.delta.compact(kinds=[kind]).get("numFilesRemoved", 0))

    # -- reading -----------------------------------------------------------------------------
    def list_parts(self, kinds: Iterable[str] | None = None) -> list[Part]:
        """The snapshot's data files as parts, newest first by their newest row."""
        if not self.delta.exists():
            return []
        files = self.delta.files(kinds)
        self._files = {f.path: f for f in files}
        parts = [
            Part(f.path, f.kind, PartName(f.max_ts if f.max_ts is not None else 2**62, _DELTA_WRITER, i))
            for i, f in enumerate(sorted(files, key=lambda f: f.path))
        ]
        parts.sort(key=lambda p: (p.name.max_ts, p.path), reverse=True)
        return parts

    def read_part_table(self, part: Part, *, row_groups: list[int] | None = None) -> pa.Table | None:
        """One data file as format 1's columns (``None`` if a vacuum removed it meanwhile)."""
        try:
            with pq.ParquetFile(part.path) as pf:
                table = pf.read_row_groups(row_groups) if row_groups is not None else pf.read()
        except FileNotFoundError:
            return None
        return to_format1(self.spec, table)

    def unreadable_parts(self, *, full: bool = False) -> list[str]:
        """Delta files are checked by delta-rs when the snapshot loads; none is reported here."""
        return []

    def column_values(self, column: str) -> set[Any]:
        """Every value of ``column`` in any writer's spool (this one's too), then in the newest snapshot.

        Spools first: a row committed meanwhile is then in the snapshot read after (gc's sweep keeps
        the blob of every row an external reader may still see, ``core/maintenance.py``).
        """
        values: set[Any] = set()
        for path in self.spool_paths(include_own=True):
            values.update(r.get(column) for r in self.read_spool(path)[0])
        if self.delta.exists():
            values.update(self.delta.read([column]).column(0).to_pylist())
        values.discard(None)
        return values

    def partition_kinds(self) -> list[str]:
        """The kinds that have data files in the snapshot."""
        if not self.delta.exists():
            return []
        return sorted({f.kind for f in self.delta.files()})


def to_format1(spec: TableSpec, table: pa.Table) -> pa.Table:
    """Typed format-2 columns of one data file -> format 1's schema (JSON text for nested values)."""
    n = table.num_rows
    names = set(table.column_names)
    cols: dict[str, Any] = {}
    for f in spec.schema:
        if f.name not in names:
            cols[f.name] = pa.nulls(n, f.type)
            continue
        col = table.column(f.name)
        if col.type == f.type:
            cols[f.name] = col
        elif f.name == "labels":
            cols[f.name] = pa.array([_json(labels_from_entries(v)) for v in col.to_pylist()], pa.string())
        elif f.name == "inputs" and spec.name == "artifacts":  # list<string> of ids -> JSON text
            cols[f.name] = pa.array([json.dumps(v) if v else None for v in col.to_pylist()], pa.string())
        elif f.name in ("metrics",):
            cols[f.name] = pa.array([None if v is None else _json(dict(v)) for v in col.to_pylist()], pa.string())
        elif f.name in ("inputs", "outputs"):
            cols[f.name] = pa.array([_values_text(v) for v in col.to_pylist()], pa.string())
        elif f.name == "tags":
            cols[f.name] = pa.array([None if v is None else json.dumps(v) for v in col.to_pylist()], pa.string())
        else:
            cols[f.name] = col.cast(f.type)
    return pa.table(cols, schema=spec.schema)


def _json(obj: dict[str, Any]) -> str:
    return json.dumps(obj, ensure_ascii=False) if obj else "{}"


def _values_text(values: list[dict[str, Any]] | None) -> str | None:
    if values is None:
        return None
    return json.dumps([{"name": v["name"], "kind": v["kind"], "value": json.loads(v["value"])} for v in values])


__all__ = ["DeltaSpoolTable", "to_format1"]
