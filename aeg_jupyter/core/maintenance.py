"""Maintenance: ``gc`` and ``verify``.

``gc`` is three steps, each its own function: retention picks the artifacts a rule lets go
(:func:`~.retention.select_for_deletion`, policy only), reachability finds the blobs that the
remaining artifacts still use (:func:`referenced`), and the sweep deletes the rest
(:meth:`Maintenance.sweep`, which knows nothing of policy). A dry run stops before the sweep.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import subprocess
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pyarrow as pa

from ..base.errors import CorruptionError, NotFoundError, StoreWarning, StoreWriteError
from ..base.hashing import hash_bytes
from ..base.models import Artifact
from ..base.models import _human_size as human_size
from ..base.validate import check_limit, parse_duration
from ..storage.blobs import BlobStore
from ..storage.committer import start_python
from ..storage.delta import VACUUM_HOURS, CommitConflict, DamagedDataFile, DeltaLakeTable, sql_text
from ..storage.delta_table import DeltaSpoolTable
from ..storage.fsops import move_aside
from ..storage.root import StoreRoot
from ..storage.schemas2 import PARTITION
from ..storage.tables import Table
from .catalog import Catalog
from .guard import WriteGuard
from .lookup import Lookup
from .retention import Doomed, KeepBest, RetentionRules, select_for_deletion
from .search import ArtifactSearch

GC_GRACE_SECONDS = 120.0  # unreferenced blobs younger than this may belong to a save in flight
Manifest = Callable[[Artifact], list[dict[str, object]]]
_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)  # a write that failed for want of space


@dataclass(slots=True)
class GcReport:
    """What ``gc`` collected (or, on a dry run, would collect).

    ``artifacts`` are the ids, ``doomed`` the artifacts with the reason each is not kept: the same
    list on a dry run and on the real run. ``df`` is that list as a table (short id, kind, name,
    age, size, why not kept); a notebook shows it.
    """

    dry_run: bool
    artifacts: list[str] = field(default_factory=list)
    blobs: list[str] = field(default_factory=list)
    bytes_freed: int = 0
    doomed: list[Doomed] = field(default_factory=list)
    maintenance: MaintainReport | None = None  # format 2: what the maintenance run before the sweep did

    @property
    def df(self) -> Any:
        """The artifacts that go (or would go) as a DataFrame, oldest first (``frames.gc_frame``)."""
        from .frames import gc_frame

        return gc_frame(self.doomed)

    def summary(self) -> str:
        """One line: ``gc would free 3 artifacts (1.2 KiB), 3 blobs, 1.2 KiB``."""
        verb = "would free" if self.dry_run else "freed"
        return (
            f"gc {verb} {len(self.artifacts)} artifacts, {len(self.blobs)} blobs, {human_size(self.bytes_freed)}"
            f" ({self.bytes_freed} bytes)"
        )

    def __str__(self) -> str:
        text = self.summary() if not self.doomed else self.summary() + ":\n" + self.df.to_string(index=False)
        return text if self.maintenance is None else f"{text}\n{self.maintenance}"

    def _repr_html_(self) -> str:
        from ..base.html import esc

        head = f"<p>{esc(self.summary())}{':' if self.doomed else ''}</p>"
        tail = "" if self.maintenance is None else self.maintenance._repr_html_()
        return head + (self.df.to_html(index=False, escape=True) if self.doomed else "") + tail


_DAMAGED_RETRIES = 16  # verify's duplicate check: damaged files taken out one at a time, then it gives up


@dataclass(slots=True)
class VerifyReport:
    """What ``verify`` found: blobs checked, corrupt blobs, and artifacts whose blob is missing.

    ``partial`` lists damaged blobs that no artifact refers to (the leftovers of a save that was
    interrupted, or is still writing): they do not make the report fail, and ``gc`` frees them.
    """

    checked: int = 0
    corrupt: list[str] = field(default_factory=list)
    missing: list[tuple[str, str]] = field(default_factory=list)
    bad_parts: list[str] = field(default_factory=list)
    moved_aside: list[str] = field(default_factory=list)
    partial: list[str] = field(default_factory=list)  # unreferenced, incomplete: left to `gc`
    #: format 2: damaged data files a repair took out of their table: ``table``, ``file``, ``rows`` (the
    #: log's count), ``ids`` (None where unreadable), ``moved_to`` (the copy under corrupt/)
    lost: list[dict[str, Any]] = field(default_factory=list)
    #: format 2: rows a table held more than once: ``table``, ``kind``, ``rows`` (the copies beyond the
    #: first) and ``dropped`` (by a repair: each id kept once)
    duplicates: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing an artifact needs is damaged or missing, and no row is held twice."""
        twice = any(d["dropped"] < d["rows"] for d in self.duplicates)
        return not self.corrupt and not self.missing and not self.bad_parts and not twice

    def __str__(self) -> str:
        if self.ok:
            text = f"verify: {self.checked} blobs checked, all intact"
            if self.partial:
                text += f" ({len(self.partial)} unreferenced partial blobs of interrupted saves, for gc)"
            return text + self._duplicates_text()
        text = (
            f"verify: {self.checked} blobs checked, {len(self.corrupt)} corrupt, "
            f"{len(self.missing)} artifacts missing their blob, {len(self.bad_parts)} unreadable Parquet parts"
        )
        if self.moved_aside:
            text += f"; {len(self.moved_aside)} bad files moved aside"
        elif self.corrupt or self.bad_parts:
            text += "; run verify with repair=True (`aeg verify --repair`) to move them aside"
        text += self._duplicates_text()
        for e in self.lost:
            ids = e["ids"]
            more = " ..." if ids is not None and len(ids) > 10 else ""
            shown = "ids unreadable" if ids is None else "ids " + ", ".join(ids[:10]) + more
            text += (
                f"\n  lost: {e['rows']} rows of the {e['table']} table in {e['file']} ({shown}); "
                f"removed from the table{', a copy in ' + e['moved_to'] if e['moved_to'] else ''}"
            )
        return text

    def _duplicates_text(self) -> str:
        text = ""
        for d in self.duplicates:
            where = f"{d['rows']:,} row(s) of the {d['table']} table (kind {d['kind']!r})"
            if d["dropped"] >= d["rows"]:
                text += f"\n  duplicates: {where} were held twice; each is now held once"
            else:
                text += (
                    f"\n  duplicates: {where} are held twice (a compaction race of an earlier build); "
                    "run verify with repair=True (`aeg verify --repair`) to keep one of each"
                )
        return text


class Maintenance:
    """Collects garbage and checks the store's bytes.

    Example:
        >>> maintenance.gc(dry_run=True, older_than="7d").artifacts     # doctest: +SKIP
        ['01J8...']
    """

    def __init__(
        self,
        *,
        catalog: Catalog,
        search: ArtifactSearch,
        lookup: Lookup,
        blobs: BlobStore,
        tables: Mapping[str, Table],
        root: StoreRoot,
        guard: WriteGuard,
        delete: Callable[[str], None],
    ) -> None:
        self._catalog = catalog
        self._search = search
        self._lookup = lookup
        self._blobs = blobs
        self._tables = tables
        self._root = root
        self._guard = guard
        self._delete = delete  # appends a delete op for an artifact id

    def gc(
        self,
        *,
        dry_run: bool = True,
        older_than: str | float | timedelta | None = None,
        keep_last: int | None = None,
        keep_best: KeepBest = None,
    ) -> GcReport:
        """Delete the artifacts no keep rule protects, then every unreferenced blob.

        The rules (:mod:`.retention`): ``keep_last=N`` keeps the N newest of each kind;
        ``older_than`` ("7d", seconds, timedelta) keeps what is younger; ``keep_best=N`` keeps
        the top N of every leaderboard (kind x metric, in the metric's direction), or
        ``keep_best={"checkpoint": "val_acc"}`` / ``{"checkpoint": ("loss", "min")}`` the best of
        those named. Pinned artifacts and every leaderboard's current leader are always kept
        (``keep_best=0`` lets leaders go). With no rule only blobs that no live artifact
        references (deleted artifacts, interrupted saves) are freed. ``dry_run=True`` (the
        default) only reports; the report's ``df`` lists what goes and why.

        Example:
            >>> maintenance.gc(dry_run=False, keep_last=3, keep_best={"checkpoint": "val_acc"})  # doctest: +SKIP
        """
        rules = RetentionRules.make(
            older_than=parse_duration(older_than), keep_last=check_limit(keep_last, allow_none=True),
            keep_best=keep_best,
        )  # fmt: skip
        catalog = self._catalog
        if not dry_run:
            self._refuse_if_read_only("gc(dry_run=False)")
        with self._guard.lock:
            if not dry_run:
                self._root.recover(self._tables)  # temp files of dead writers
            catalog.catch_up()
            self.refuse_if_damaged("gc")
            started = time.time()
            plan = select_for_deletion(catalog, self._search, rules)
            doomed = [d.artifact for d in plan]
            doomed_ids = {a.artifact_id for a in doomed}
            live = [a for a in catalog.by_id.values() if a.artifact_id not in doomed_ids]
            refs = referenced(live, self._lookup.manifest)
            last_use = last_used(list(doomed) + list(catalog.deleted.values()), self._lookup.manifest)
            report = GcReport(dry_run=dry_run, artifacts=sorted(doomed_ids), doomed=plan)
            sizes: dict[str, int] = {}
            inline = self._inline_only()  # format 2: content intact in its row, so its blob file may go
            for digest, size, mtime in self._blobs.iter_blobs():
                if digest in refs and digest not in inline:
                    continue
                sizes[digest] = size
                # NOTE: every save refreshes its blob's mtime just before its row is appended. A
                # blob not touched since the newest (deleted) artifact using it was created has
                # no save in flight and goes now; any other unreferenced blob (an interrupted
                # save, or one a concurrent save is reusing) must first age past the grace period.
                used = last_use.get(digest)
                if digest in inline or (used is not None and mtime <= used) or mtime < started - GC_GRACE_SECONDS:
                    report.blobs.append(digest)
                    report.bytes_freed += size
            if dry_run:
                return report
            for a in doomed:
                self._delete(a.artifact_id)
        delta = self._delta_maintenance()
        if delta is not None:
            # format 2: the deletes reach the artifacts table (fold) before any blob of theirs goes
            try:
                report.maintenance = delta.run()
            except StoreWriteError as exc:
                if getattr(exc.__cause__, "errno", None) not in _FULL:
                    raise
                # a full disk: the blobs of rows the fold could not remove stay (the sweep keeps every
                # blob a row refers to); the rest of gc frees what it can, which is what makes space
                warnings.warn(
                    f"gc: maintenance could not finish ({exc}); the blobs of deleted artifacts whose rows "
                    "are still in the tables are freed by the next gc with free space",
                    StoreWarning,
                    stacklevel=3,
                )
        # outside the store's lock: the sweep takes the save gate first, as every save does
        kept = set(self.sweep(report.blobs))
        if kept:  # saved again by another kernel meanwhile
            report.blobs = [d for d in report.blobs if d not in kept]
            report.bytes_freed -= sum(sizes[d] for d in kept)
        return report

    def _inline_only(self) -> set[str]:
        """Format 2: digests whose content is intact in an artifact row (spooled or committed) and that
        no directory manifest names as a file: their blob files (a migrated store's small blobs) may go,
        the content stays readable from the row. Empty on format 1."""
        table = self._tables.get("artifacts")
        if not isinstance(table, DeltaSpoolTable):
            return set()
        inline = {d for d, data in table.inline_items() if hash_bytes(data) == d}
        if not inline:
            return inline
        catalog = self._catalog
        for a in list(catalog.live()) + list(catalog.deleted.values()):
            if a.is_dir:  # a directory's files are read from blob files: keep them
                try:
                    inline.difference_update(str(e["blob"]) for e in self._lookup.manifest(a) if e["blob"])
                except (NotFoundError, CorruptionError):
                    pass
        return inline

    def _delta_maintenance(self) -> DeltaMaintenance | None:
        """Format 2's maintenance of this store, or None on format 1."""
        if not isinstance(self._tables.get("artifacts"), DeltaSpoolTable):
            return None
        return DeltaMaintenance(tables=self._tables, root=self._root, guard=self._guard)

    def _refuse_if_read_only(self, what: str) -> None:
        if self._root.read_only == "read-only":
            raise StoreWriteError(
                f"{what} cannot run: the store at {self._root.path!r} is read-only; it can only report "
                "(gc(dry_run=True), verify()): open it where you can write to change it"
            )

    def refuse_if_damaged(self, what: str, *, thorough: bool = True) -> None:
        """Raise while a part or spool that may hold pins or artifact rows cannot be read.

        Such a file may pin an artifact or reference a blob: deleting by what the readable rest
        says could free data it protects. ``verify(repair=True)`` moves the damage aside first.
        ``thorough`` reads every part again (gc); without it, the damage this process's reads
        met is enough (a ``delete``: the catalog read every part when it loaded).

        Raises:
            CorruptionError: naming the files and ``verify --repair``.
        """
        damaged = [
            p
            for name in ("artifacts", "ops")
            if name in self._tables
            for p in self._tables[name].damaged_files(thorough=thorough)
        ]
        if damaged:
            shown = ", ".join(damaged[:3]) + (" ..." if len(damaged) > 3 else "")
            raise CorruptionError(
                f"{what} refused: {len(damaged)} data file(s), part(s) or spool(s) of the store cannot be read "
                f"({shown}) and may hold pins or rows that keep blobs; run `aeg verify --repair` "
                f"(verify(repair=True)) to move them aside, then {what} again"
            )

    def sweep(self, digests: Iterable[str]) -> list[str]:
        """Delete these blobs and the local paths handed out for them, unless a save took one
        up again since they were chosen; returns the digests kept for that reason.

        NOTE: the protocol that makes this safe against every concurrent save, in any process
        (:class:`~..storage.root.SaveGate`): saves hold the gate shared from their blob to their
        row; here it is held exclusively while every writer's new rows are read and each blob is
        checked once more against the live artifacts, so a save that found a blob before this
        point has its row seen now, and one after finds the blob gone and stores it again.
        """
        digests = list(digests)
        if not digests:
            return []
        delta = self._delta_maintenance()
        with self._root.save_gate.exclusive(), self._guard.lock:
            self._catalog.catch_up()
            refs = referenced(self._catalog.live(), self._lookup.manifest)
            if delta is not None:  # format 2: rows a fold has not removed yet keep their blobs
                refs |= delta.protected_blobs(self._catalog, self._lookup.manifest)
                refs -= self._inline_only()  # ... unless the row holds the content itself
            for digest in digests:
                if digest not in refs:
                    self._blobs.delete(digest)
                    self._blobs.forget_materialized(digest)
        return [d for d in digests if d in refs]

    def verify(self, *, repair: bool = False) -> VerifyReport:
        """Re-hash every blob and open every Parquet part; report what is corrupt or missing, and
        (format 2) the rows a table holds twice.

        With ``repair=True`` corrupt blobs and unreadable parts are moved aside into
        ``<root>/corrupt/`` (never deleted): readers stop tripping over them, and saving the
        same bytes again stores them afresh. Rows held twice are kept once, by one commit per kind.
        """
        if repair:
            self._refuse_if_read_only("verify(repair=True)")
        self._catalog.catch_up()
        report = VerifyReport()
        present = set()
        # format 2: damaged data files first (a read of them raises); a repair takes them out of their
        # table, under maintenance.lock, before anything is read from the tables
        bad_delta = {
            name: table.unreadable_parts(full=name != "events")
            for name, table in self._tables.items()
            if isinstance(table, DeltaSpoolTable)
        }
        skip: set[str] = set()
        if any(bad_delta.values()):
            if repair:
                aside = self._root.move_aside_dir()
                with self._root.maintenance_lock():
                    for name, paths in bad_delta.items():
                        if paths:
                            table = self._tables[name]
                            assert isinstance(table, DeltaSpoolTable)
                            report.lost.extend(table.drop_damaged(paths, aside))
                report.moved_aside.extend(e["moved_to"] for e in report.lost if e["moved_to"])
                self._catalog.refresh()  # type: ignore[union-attr]
            else:
                skip = {p for paths in bad_delta.values() for p in paths}
        self._check_duplicates(report, repair=repair, skip=bool(skip))
        live = self._catalog.live(skip=skip) if skip else self._catalog.live()  # type: ignore[call-arg]
        refs = referenced(live, self._lookup.manifest)
        for digest, _size, _mtime in self._blobs.iter_blobs():
            report.checked += 1
            present.add(digest)
            if not self._blobs.check(digest):
                # A damaged blob no artifact refers to is what an interrupted (or still running)
                # save leaves: no data depends on it, and `gc` frees it after its grace period.
                (report.corrupt if digest in refs else report.partial).append(digest)
        table = self._tables.get("artifacts")
        if isinstance(table, DeltaSpoolTable):  # format 2: content inline in its row is re-hashed too
            inline_bad: set[str] = set()
            for digest, data in table.inline_items():
                if digest not in present:
                    report.checked += 1
                    present.add(digest)
                if hash_bytes(data) != digest and digest not in inline_bad:
                    inline_bad.add(digest)
                    (report.corrupt if digest in refs else report.partial).append(digest)
        for a in live:
            if a.blob_id not in present:
                report.missing.append((a.artifact_id, a.blob_id))
        for name, table in self._tables.items():
            if name in bad_delta:
                report.bad_parts.extend(bad_delta[name])
                continue
            # the small tables are read whole: a damaged page there may hide a pin
            report.bad_parts.extend(table.unreadable_parts(full=table.spec.name != "events"))
        if repair:
            aside = self._root.move_aside_dir()
            for digest in report.corrupt:
                if self._blobs.exists(digest) and not self._blobs.check(digest):  # an inline row: no file to move
                    report.moved_aside.append(self._blobs.move_aside(digest, aside))
            for path in report.bad_parts:
                if os.path.lexists(path):  # (format 2's were taken out of their table above)
                    report.moved_aside.append(move_aside(self._root.path, path, aside))
        return report

    def _check_duplicates(self, report: VerifyReport, *, repair: bool, skip: bool) -> None:
        """Format 2: rows a table holds twice (``DeltaLakeTable.duplicates``); a repair keeps one of each,
        under the rewrite lock. Not while a damaged file is left in a table (``skip``): its rows do not read."""
        if skip:
            return
        dropped = 0
        for name, table in self._tables.items():
            if not isinstance(table, DeltaSpoolTable):
                continue
            found = self._duplicates_of(table, report, repair=repair)
            if found is None:
                continue  # a damaged file: reported (or, with repair, taken out and the rest checked)
            if found and repair:
                with self._root.maintenance_lock():
                    found = table.duplicates()  # (again, under the lock: a merge may have run meanwhile)
                    for kind, (rows, low, high) in found.items():
                        got = table.drop_duplicates(kind, low, high)
                        report.duplicates.append({"table": name, "kind": kind, "rows": rows, "dropped": got})
                        dropped += got
                continue
            report.duplicates.extend(
                {"table": name, "kind": kind, "rows": rows, "dropped": 0} for kind, (rows, _lo, _hi) in found.items()
            )
        if dropped:
            self._catalog.refresh()  # type: ignore[union-attr]

    def _duplicates_of(
        self, table: DeltaSpoolTable, report: VerifyReport, *, repair: bool
    ) -> dict[str, tuple[int, str, str]] | None:
        """``table.duplicates()``; a data file whose id column does not read (the footer checks above
        pass it: events files are not read whole) is a bad part, or with ``repair`` taken out of the
        table like the others, and the rest read again. None when one is left in the table."""
        for attempt in range(_DAMAGED_RETRIES + 1):
            try:
                return table.duplicates()
            except DamagedDataFile as exc:
                if not repair or attempt == _DAMAGED_RETRIES:
                    if exc.path not in report.bad_parts:
                        report.bad_parts.append(exc.path)
                    return None
                with self._root.maintenance_lock():
                    lost = table.drop_damaged([exc.path], self._root.move_aside_dir())
                if not lost:
                    raise
                report.lost.extend(lost)
                report.moved_aside.extend(e["moved_to"] for e in lost if e["moved_to"])
                self._catalog.refresh()  # type: ignore[union-attr]
        return None


def referenced(arts: Iterable[Artifact], manifest: Manifest) -> set[str]:
    """Every blob ``arts`` use: their own, and for directories the files their manifest names."""
    refs: set[str] = set()
    for a in arts:
        refs.add(a.blob_id)
        if a.is_dir:
            try:
                refs.update(str(e["blob"]) for e in manifest(a) if e["blob"])
            except (NotFoundError, CorruptionError):
                pass
    return refs


def last_used(arts: Iterable[Artifact], manifest: Manifest) -> dict[str, float]:
    """Blob digest -> creation time (epoch seconds) of the newest of ``arts`` that uses it."""
    out: dict[str, float] = {}
    for a in arts:
        when = a.created_at.timestamp() if a.created_at is not None else 0.0
        digests = [a.blob_id]
        if a.is_dir:
            try:
                digests += [str(e["blob"]) for e in manifest(a) if e["blob"]]
            except (NotFoundError, CorruptionError):
                pass
        for d in digests:
            if out.get(d, -1.0) < when:
                out[d] = when
    return out


# -- format 2: flush -> fold -> compact -> checkpoint -> vacuum (docs/format2.md, "Maintenance") ----------
FOLD_ATTEMPTS = 8  # a fold that loses to a concurrent commit (an append's schema change) is computed again
COMPACT_ATTEMPTS = 3
IDS_PER_COMMIT = 500  # artifact ids named in one delete / update predicate


@dataclass(slots=True)
class TableMaintenance:
    """What maintenance did to one Delta table: data files before and after, compaction, vacuum."""

    table: str
    files_before: int = 0
    files_after: int = 0
    compacted: int = 0  # files a compaction merged away
    vacuumed: int = 0  # files the vacuum deleted
    version: int | None = None  # the table's version after the checkpoint


@dataclass(slots=True)
class MaintainReport:
    """What ``Store.maintain()`` did (``aeg gc`` on a format-2 store shows it under gc's summary).

    ``deleted`` rows left the artifacts table and ``repinned`` rows had their ``pinned`` set by the
    fold (what external readers see change); ``conflicts`` counts steps computed again after losing a
    race with another commit. ``skipped`` says why nothing ran (another process holds the lock).
    """

    recovered: list[str] = field(default_factory=list)
    flushed: int = 0
    deleted: int = 0
    repinned: int = 0
    conflicts: int = 0
    tables: list[TableMaintenance] = field(default_factory=list)
    seconds: float = 0.0
    skipped: str | None = None
    notes: list[str] = field(default_factory=list)
    merged: int = 0  # format 1: small Parquet parts merged
    pruned: int = 0  # an s3:// root: local copies of replaced data files deleted
    format: int = 2

    def summary(self) -> str:
        """One line: ``maintain: flushed 12 rows; fold removed 3 deleted rows, set 1 pin; ...``."""
        if self.skipped:
            return f"maintain skipped: {self.skipped}"
        if self.format == 1:
            return f"maintain: flushed {self.flushed} rows, merged {self.merged} small parts, in {self.seconds:.2f} s"
        before = sum(t.files_before for t in self.tables)
        after = sum(t.files_after for t in self.tables)
        vacuumed = sum(t.vacuumed for t in self.tables)
        text = (
            f"maintain: flushed {self.flushed} rows"
            + (f" (and the spools of {len(self.recovered)} closed sessions)" if self.recovered else "")
            + f"; fold removed {self.deleted} deleted rows, set {self.repinned} pins; "
            f"{before} -> {after} data files, {vacuumed} old files vacuumed, in {self.seconds:.2f} s"
        )
        if self.conflicts:
            text += f" ({self.conflicts} steps retried after a concurrent commit)"
        return text

    def rows(self) -> list[dict[str, object]]:
        """One dict per table (table, files before / after, compacted, vacuumed, version)."""
        return [
            {"table": t.table, "files before": t.files_before, "files after": t.files_after,
             "compacted": t.compacted, "vacuumed": t.vacuumed, "version": t.version}
            for t in self.tables
        ]  # fmt: skip

    def __str__(self) -> str:
        lines = [self.summary(), *self.notes]
        if self.tables and not self.skipped:
            lines.append(f"{'table':<10} {'files before':>12} {'files after':>11} {'vacuumed':>8} {'version':>7}")
            lines += [
                f"{t.table:<10} {t.files_before:>12} {t.files_after:>11} {t.vacuumed:>8} {t.version!s:>7}"
                for t in self.tables
            ]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        from ..base.html import esc, html_table

        notes = "".join(f"<p>{esc(n)}</p>" for n in self.notes)
        rows = self.rows()
        table = html_table(list(rows[0]), [list(r.values()) for r in rows]) if rows and not self.skipped else ""
        return f"<p>{esc(self.summary())}</p>{notes}{table}"


Progress = Callable[[str], None]


class DeltaMaintenance:
    """Format 2's maintenance of one store, never on a writer's path (``Store.maintain()``, ``aeg gc``).

    Under ``maintenance.lock``, in order: **flush** (dead writers' spools, then this process's), **fold**
    (the ops table folded to each artifact's last op: rows of deleted artifacts deleted, ``pinned`` updated
    where it differs; idempotent, computed again when a concurrent commit wins), **compact** (Delta's
    optimize per partition: one remove + add commit, readers see either side), **checkpoint**, **vacuum**
    (files removed more than ``vacuum_hours`` ago). After it, an external reader of the artifacts table
    sees exactly the live artifacts that every flushed spool and op make (docs/format2.md).

    Example:
        >>> DeltaMaintenance(tables=store.tables, root=store.store_root, guard=store.guard).run()  # doctest: +SKIP
    """

    def __init__(self, *, tables: Mapping[str, Table], root: StoreRoot, guard: WriteGuard) -> None:
        self._tables = tables
        self._root = root
        self._guard = guard

    @property
    def deferred_rows(self) -> int:
        """Rows of dead writers' spools the last recover left for later (the object store did not answer)."""
        return self._root.deferred_rows

    def _delta(self, name: str) -> DeltaLakeTable:
        table = self._tables[name]
        assert isinstance(table, DeltaSpoolTable), "format-2 maintenance runs on Delta tables only"
        return table.delta

    def prune_copies(self) -> int:
        """An s3:// root: delete this machine's ``AEG_CACHE`` copies of data files no table has any more."""
        pruned = 0
        for name in ("artifacts", "events", "ops"):
            if name in self._tables:
                try:
                    pruned += self._delta(name).prune_copies()
                except Exception as exc:  # the server does not answer: the copies wait for the next run
                    warnings.warn(f"could not prune the local copies of {name} ({exc}); trying again later",
                                  StoreWarning, 2)  # fmt: skip
        return pruned

    def run(
        self,
        *,
        vacuum_hours: float = VACUUM_HOURS,
        wait: bool = True,
        progress: Progress | None = None,
        flush: bool = True,
        stop: Callable[[], bool] | None = None,
    ) -> MaintainReport:
        """Flush, fold, compact, checkpoint and vacuum; returns what was done.

        ``wait=False`` returns at once (``skipped``) when another process is running maintenance.
        ``progress`` is called with a short line before each step. ``flush=False`` leaves this process's
        spools to its flushers (the periodic runner: a flush here would hold the store's lock, and a
        ``record`` would wait for it); ``stop()`` is asked between steps (True: the rest is left for the
        next run, ``skipped`` says so).

        Raises:
            StoreWriteError: the store is read-only, or a commit failed for good (disk full): every
                step is safe to run again, and the next run finishes the work.
        """
        if self._root.read_only is not None:
            raise StoreWriteError(
                f"maintenance cannot run: the store at {self._root.path!r} is {self._root.read_only}; "
                "open it where you can write (and with free space) and run it again"
            )
        say = progress or (lambda _line: None)
        report = MaintainReport()
        started = time.monotonic()
        # an s3:// root: this machine's copies of replaced data files go (local: no lease needed)
        report.pruned = self.prune_copies()
        with self._root.maintenance_lock(wait=wait) as held:
            if not held:
                report.skipped = "another process is running maintenance on this store"
                return report
            asked = stop or (lambda: False)
            lost = self._root.maintenance_lost  # an s3:// root: the lease was taken over (we stalled past it)

            def stopping() -> bool:
                return asked() or (lost is not None and lost.is_set())

            say("flush: committing spooled rows")
            report.recovered = self._root.recover(self._tables)
            if flush:
                with self._guard.lock:
                    report.flushed = sum(t.flush() for t in self._tables.values())
            names = [n for n in ("artifacts", "events", "ops") if n in self._tables and self._delta(n).exists()]
            report.tables = [TableMaintenance(n, files_before=len(self._delta(n).files())) for n in names]
            say("fold: pins and deletes into the artifacts table")
            self.fold(report)
            for t in report.tables:
                if stopping():
                    report.skipped = (
                        "stopped: another machine took the maintenance lease over (its run finishes the work)"
                        if lost is not None and lost.is_set()
                        else "stopped: the store is closing (the next run finishes)"
                    )
                    return report
                say(f"compact: {t.table}")
                self._compact(t, report)
            for t in report.tables:
                say(f"checkpoint: {t.table}")
                delta = self._delta(t.table)
                delta.checkpoint()
                t.version = delta.version()
                t.files_after = len(delta.files())
            for t in report.tables:
                if stopping():
                    report.skipped = (
                        "stopped: another machine took the maintenance lease over (its run finishes the work)"
                        if lost is not None and lost.is_set()
                        else "stopped: the store is closing (the next run finishes)"
                    )
                    return report
                say(f"vacuum: {t.table} (files removed more than {vacuum_hours:g} h ago)")
                try:
                    t.vacuumed = len(self._delta(t.table).vacuum(retention_hours=vacuum_hours))
                except CommitConflict as exc:
                    report.conflicts += 1
                    report.notes.append(f"vacuum of {t.table} left for the next run: {exc}")
        report.seconds = time.monotonic() - started
        say(report.summary())
        return report

    def fold(self, report: MaintainReport) -> None:
        """Make the artifacts table agree with the ops table: delete the rows of deleted artifacts, set
        ``pinned`` where the last pin / unpin differs. Safe to repeat; a lost race is computed again."""
        arts, ops = self._delta("artifacts"), self._delta("ops")
        if not arts.exists() or not ops.exists():
            return
        for attempt in range(FOLD_ATTEMPTS):
            try:
                self._fold_once(arts, ops, report)
                return
            except CommitConflict:
                report.conflicts += 1
                time.sleep(0.02 * (attempt + 1))
        raise StoreWriteError(
            f"the fold of pins and deletes lost {FOLD_ATTEMPTS} races with other commits to {arts.path}; "
            "the API shows them already; run maintenance (`aeg gc`) again when the store is quieter"
        )

    @staticmethod
    def _fold_once(arts: DeltaLakeTable, ops: DeltaLakeTable, report: MaintainReport) -> None:
        last = last_ops(ops.read(["artifact_id", "kind", "ts", "op_id"]))
        if not last:
            return
        rows = arts.read(["artifact_id", "kind", "pinned"])
        deletes: dict[str, list[str]] = {}
        pins: dict[tuple[str, bool], list[str]] = {}
        for aid, kind, pinned in zip(
            *(rows.column(c).to_pylist() for c in ("artifact_id", "kind", "pinned")), strict=True
        ):
            op = last.get(aid)
            if op == "delete":
                deletes.setdefault(kind, []).append(aid)
            elif op is not None and (op == "pin") != bool(pinned):
                pins.setdefault((kind, op == "pin"), []).append(aid)
        for kind, ids in sorted(deletes.items()):
            for chunk in _chunks(sorted(set(ids))):
                report.deleted += arts.delete_where(_predicate(kind, chunk))
        for (kind, state), ids in sorted(pins.items()):
            for chunk in _chunks(sorted(set(ids))):
                report.repinned += arts.update_where(_predicate(kind, chunk), {"pinned": "true" if state else "false"})

    def _compact(self, t: TableMaintenance, report: MaintainReport) -> None:
        delta = self._delta(t.table)
        # small files only (under half the table's target size, by the Delta log's sizes): a file at its
        # target is never rewritten, so a periodic run in a logging process does not rewrite the growing
        # partition every time (at 10M events it was one 78 MB file every 100 commits)
        half = delta.target_file_bytes // 2
        counts: dict[str, int] = {}
        for f in delta.files():
            if f.size is None or f.size < half:
                counts[f.kind] = counts.get(f.kind, 0) + 1
        for kind in sorted(k for k, n in counts.items() if n > 1):
            for _attempt in range(COMPACT_ATTEMPTS):
                try:
                    t.compacted += delta.compact_small(kind, min_files=2)
                    break
                except CommitConflict:
                    report.conflicts += 1
            else:
                report.notes.append(f"compaction of {t.table} kind={kind} left for the next run (concurrent commits)")

    def protected_blobs(self, catalog: Catalog, manifest: Manifest) -> set[str]:
        """Blobs gc's sweep must keep although no live artifact uses them: those of rows still in a spool
        or in the artifacts table (a delete not folded yet, or a row committed after the fold), with the
        files of such directory artifacts. An external reader never sees a row whose blob is gone."""
        table = self._tables["artifacts"]
        assert isinstance(table, DeltaSpoolTable)
        keep = {uri.rsplit("/", 1)[-1] for uri in table.column_values("uri") if isinstance(uri, str)}
        for a in list(catalog.deleted.values()):
            if a.is_dir and a.blob_id in keep:
                try:
                    keep.update(str(e["blob"]) for e in manifest(a) if e["blob"])
                except (NotFoundError, CorruptionError):
                    pass
        return keep


MAINTAIN_COMMITS = 100  # the periodic runner's default: after this many commits of this process's flushers
MAINTAIN_SECONDS = 600.0  # or this long after its last run, when any process committed meanwhile
DEFERRED_RETRY_SECONDS = 10.0  # or this often while recovery left closed sessions' spools (an s3 outage)


#: seconds :meth:`PeriodicMaintenance.close` waits for a child run to stop between steps before killing it
CHILD_STOP_SECONDS = 30.0


class PeriodicMaintenance:
    """The periodic maintenance thread of one open format-2 store (one per ``Store``).

    Its body is :meth:`DeltaMaintenance.run` with ``wait=False`` (another process running maintenance:
    this round is skipped; ``maintenance.lock`` keeps one runner per store) and ``flush=False`` (the
    flushers commit; the store's lock is never taken, so no ``record`` waits for it). It runs when the
    store has grown: every ``every_commits`` commits of this process's flushers, or ``every_seconds``
    after the last run when the tables' versions moved (any process's commits). It checks once a second
    (counters only; the tables' versions at most every ``every_seconds``) and stops at :meth:`close`
    (a run in progress stops between its steps). A failed run is retried at the next trigger; its
    error is :attr:`error` meanwhile. While a recovery left dead writers' spools for later (an s3:// root
    whose server did not answer: ``StoreRoot.deferred_rows``) it runs every :data:`DEFERRED_RETRY_SECONDS`,
    so its recover commits them once the server is back.

    With ``child_root`` (a local store) each run is a one-shot child process at the lowest priority
    (``core/maintenance_child.py``), whose memory goes when it exits; without it (an ``s3://`` root), or
    when no child can start, the run is in this thread.

    Example:
        >>> pm = PeriodicMaintenance(runner, commits=lambda: 0, versions=lambda: 0)   # doctest: +SKIP
        >>> pm.close()                                                                 # doctest: +SKIP
    """

    def __init__(
        self,
        runner: DeltaMaintenance,
        *,
        commits: Callable[[], int],
        versions: Callable[[], int],
        every_commits: int = MAINTAIN_COMMITS,
        every_seconds: float = MAINTAIN_SECONDS,
        poll_seconds: float = 1.0,
        child_root: str | None = None,
    ) -> None:
        import threading

        self._runner = runner
        #: a local store's directory: each run is a one-shot child process (:meth:`_run_in_child`)
        self.child_root = child_root
        self._child: subprocess.Popen[str] | None = None
        self._commits = commits
        self._versions = versions
        self.every_commits = every_commits
        self.every_seconds = every_seconds
        self.poll_seconds = poll_seconds
        #: reports of the runs so far (the last 20), newest last; :attr:`runs` counts every one
        self.reports: list[MaintainReport] = []
        self.runs = 0
        self.error: Exception | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="aeg-maintain", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        commits_at = self._commits()
        try:
            versions_at: int | None = self._versions()
        except Exception:
            versions_at = None
        last = time.monotonic()
        while not self._stop.wait(self.poll_seconds):
            due = self._commits() - commits_at >= self.every_commits
            if not due and self._runner.deferred_rows and time.monotonic() - last >= DEFERRED_RETRY_SECONDS:
                due = True  # closed sessions' spools wait for the object store: its recover retries them
            if not due and time.monotonic() - last >= self.every_seconds:
                try:
                    versions = self._versions()
                except Exception:  # a table being created or vacuumed: look again next time
                    continue
                due = versions_at is None or versions > versions_at
                if not due:
                    last = time.monotonic()
            if not due or self._stop.is_set():
                continue
            commits_at = self._commits()
            try:
                report = self._run_in_child() if self.child_root is not None else None
                if report is None:  # an s3:// root, or no child could start: here
                    report = self._runner.run(wait=False, flush=False, stop=self._stop.is_set)
            except Exception as exc:  # e.g. a full disk: every step is safe to repeat at the next trigger
                self.error = exc
            else:
                self.error = None
                if report.skipped is None:
                    self.runs += 1
                self.reports = [*self.reports[-19:], report]
            last = time.monotonic()
            try:
                versions_at = self._versions()
            except Exception:
                versions_at = None

    def _run_in_child(self) -> MaintainReport | None:
        """One run in a child process (``python -m aeg_jupyter.core.maintenance_child ROOT``);
        its report, or None when no child could start.

        A run compacts, checkpoints and vacuums: in the logging process, delta-rs and pyarrow kept ~50 MB
        of that memory (+154 against +101 MB above idle while logging 10M events), which a child gives
        back when it exits. The child opens the store as any process does (this writer's spools are
        this writer's: a live writer is never recovered) and stops between steps once its stdin closes
        (:meth:`close`, or this process gone).

        Raises:
            StoreWriteError: the child's run failed (its message), or it died.
        """
        try:
            child = start_python("aeg_jupyter.core.maintenance_child", self.child_root or "", stderr=subprocess.STDOUT)
        except OSError:
            return None
        self._child = child
        if self._stop.is_set() and child.stdin is not None:  # close() ran before it could see this child
            with contextlib.suppress(OSError):
                child.stdin.close()
        try:
            assert child.stdout is not None
            out = child.stdout.read()
            code = child.wait()
        finally:
            self._child = None
            for pipe in (child.stdin, child.stdout):
                with contextlib.suppress(OSError):
                    pipe.close()  # type: ignore[union-attr]
        answer = next((a for ln in reversed(out.splitlines()) if (a := _json_line(ln)) is not None), None)
        if answer is None or "error" in answer:
            why = answer["error"] if answer else f"it exited with {code}: {out.strip()[-300:] or 'no output'}"
            raise StoreWriteError(f"the periodic maintenance run failed ({why}); it runs again at the next trigger")
        return report_from_dict(answer["report"])

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def close(self, timeout: float = CHILD_STOP_SECONDS) -> None:
        """Stop the thread (a run in progress stops at its next step) and wait for it; a child run
        still going after ``timeout`` seconds is killed (every step is safe to repeat)."""
        self._stop.set()
        child = self._child
        if child is not None and child.stdin is not None:
            with contextlib.suppress(OSError):
                child.stdin.close()  # the child's run stops at its next step
        if self._thread.is_alive():
            self._thread.join(timeout)
        child = self._child
        if child is not None:
            with contextlib.suppress(OSError):
                child.kill()
        if self._thread.is_alive():
            self._thread.join()


def _json_line(line: str) -> dict[str, Any] | None:
    """The child's answer if ``line`` is one (a JSON object with ``report`` or ``error``), else None."""
    if not line.startswith("{"):
        return None
    try:
        obj = json.loads(line)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) and ("report" in obj or "error" in obj) else None


def report_from_dict(d: dict[str, Any]) -> MaintainReport:
    """A :class:`MaintainReport` from ``dataclasses.asdict`` of one (a child's run, sent as JSON)."""
    d = dict(d)
    tables = [TableMaintenance(**t) for t in d.pop("tables", [])]
    return MaintainReport(**d, tables=tables)


def last_ops(ops: Any) -> dict[str, str]:
    """Artifact id -> its last op (``pin`` / ``unpin`` / ``delete``) by ``(ts, op_id)``, from an Arrow
    table of the ops table's ``artifact_id``, ``kind``, ``ts``, ``op_id`` (as the catalog folds them)."""
    ts = ops.column("ts").cast(pa.int64()).to_pylist()
    best: dict[str, tuple[int, str, str]] = {}
    for aid, kind, t, op_id in zip(
        ops.column("artifact_id").to_pylist(), ops.column("kind").to_pylist(), ts, ops.column("op_id").to_pylist(),
        strict=True,
    ):  # fmt: skip
        prev = best.get(aid)
        if prev is None or (t, op_id) > prev[:2]:
            best[aid] = (t, op_id, kind)
    return {aid: v[2] for aid, v in best.items()}


def _chunks(ids: list[str]) -> Iterator[list[str]]:
    for i in range(0, len(ids), IDS_PER_COMMIT):
        yield ids[i : i + IDS_PER_COMMIT]


def _predicate(kind: str, ids: list[str]) -> str:
    """``kind = 'k' AND artifact_id IN (...)``: the partition first, so only that kind's files are read."""
    return f"{PARTITION} = {sql_text(kind)} AND artifact_id IN ({', '.join(sql_text(i) for i in ids)})"
