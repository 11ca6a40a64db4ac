"""``aeg migrate ROOT``: convert a format-1 store to format 2 (Delta Lake tables), crash-safe and resumable.

The steps (``docs/format2.md``, "Migration"), each safe to repeat after a kill at any point:

1. Refuse while a live process has the store open (its writer claim); mark the store ``migrating``
   (``aeg-store.json`` keeps ``"format": 1``, so the old release's readers are unaffected, and every open
   by this release refuses it but this one); recover dead writers' spools into format-1 parts.
2. Plan: the format-1 parts of each table, in a fixed order (table, kind, part name), cut into units of
   at most :data:`UNIT_ROWS` rows (whole row groups), written once to ``migrate/plan.json``.
3. Convert: unit ``i`` is one append commit to ``migrate/tables/<table>`` carrying the application
   transaction ``("aeg-migrate", i)``; a rerun skips every unit the table's ``transaction_version`` covers.
   Rows are de-duplicated by id (format 1 may hold a crashed compaction's duplicates) against the ids the
   new table already holds; labels and metrics JSON become typed maps; content of at most ``INLINE_MAX``
   bytes is read into the ``content`` column (the blob files stay: they go with ``gc``).
4. Verify, field by field: every id once, every column of every row equal to format 1's after decoding
   (labels type-exact), counts per kind equal, inline content hashing to its URI.
5. Switch, the marker being the commit point: the marker says ``{"format": 2, "migrating": true}``;
   ``tables`` -> ``migrate/old-tables``; ``migrate/tables`` -> ``tables``; the marker loses
   ``migrating``; ``migrate/`` is removed. Each step looks at what exists, so a rerun finishes it.

Only this module renames a store's tables; it runs under ``migrate.lock`` (one migration per store).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import pyarrow.parquet as pq

from ..base.errors import CorruptionError, InvalidInputError, StoreFormatError
from ..base.hashing import hash_bytes, is_hex_digest
from ..base.models import DIR_MIME, URI_PREFIX
from .delta import DataFile, DeltaLakeTable
from .delta_table import check_partition_value, to_format1
from .fsops import atomic, fsync_path, is_symlink, lock_is_free, make_dirs, remove_tree, try_lock
from .layout import META_NAME, Layout, Part, PartName
from .root import STALE_SECONDS, StoreRoot
from .schemas import ARTIFACTS, EVENTS, OPS, Row, TableSpec
from .schemas2 import INLINE_MAX, ROWS_TO_ARROW, SCHEMAS2
from .tables import Table

APP_ID = "aeg-migrate"  # the application transaction id of every migration commit
MIGRATE_DIR = "migrate"
PLAN_NAME = "plan.json"
LOCK_NAME = "migrate.lock"
UNIT_ROWS = 100_000  # rows per commit at most (whole row groups): bounds the memory of one step
SPECS = (ARTIFACTS, EVENTS, OPS)
_SHOW_DIFFERENCES = 5

Hook = Callable[[str], None]
Progress = Callable[[int, int, str], None]


@dataclass
class MigrationReport:
    """What one ``aeg migrate`` run did (``str()`` is the summary the CLI prints)."""

    root: str
    state: str = "migrated"  # "migrated", "already format 2", "aborted"
    rows: dict[str, int] = field(default_factory=dict)  # rows in the new tables, per table
    committed_units: int = 0  # units this run committed (a rerun skips the ones committed before)
    skipped_units: int = 0
    duplicates: int = 0  # format-1 rows dropped because their id was there already
    inlined: int = 0  # artifacts whose content went into the row
    inlined_bytes: int = 0
    missing_blobs: list[str] = field(default_factory=list)  # small blobs format 1 did not have either
    seconds: float = 0.0

    def __str__(self) -> str:
        if self.state != "migrated":
            return f"{self.root}: {self.state}"
        counts = ", ".join(f"{n:,} {t}" for t, n in self.rows.items())
        lines = [
            f"{self.root}: migrated to format 2 in {self.seconds:.1f} s ({counts}; verified field by field)",
            f"  commits: {self.committed_units} this run, {self.skipped_units} found done by an earlier run",
            f"  inlined: {self.inlined:,} small contents ({self.inlined_bytes:,} bytes) into the artifacts table",
        ]
        if self.duplicates:
            lines.append(f"  dropped {self.duplicates:,} duplicate row(s) format 1 held twice (same id)")
        if self.missing_blobs:
            lines.append(
                f"  {len(self.missing_blobs)} small blob(s) were missing in format 1 too (kept as references): "
                + ", ".join(self.missing_blobs[:3])
            )
        lines.append(
            "  the inlined blob files stay in blobs/ until `aeg gc` lets them go (their content is in the rows)"
        )
        return "\n".join(lines)


@dataclass(frozen=True)
class Unit:
    """One commit of the plan: some row groups of one format-1 part."""

    i: int
    table: str
    kind: str
    path: str  # relative to the root
    row_groups: list[int] | None  # None: the whole part
    rows: int

    def to_json(self) -> dict[str, Any]:
        return {
            "i": self.i, "table": self.table, "kind": self.kind, "path": self.path,
            "row_groups": self.row_groups, "rows": self.rows,
        }  # fmt: skip


def migrate(
    root: str | os.PathLike[str],
    *,
    progress: Progress | None = None,
    hook: Hook | None = None,
    abort: bool = False,
) -> MigrationReport:
    """Convert the format-1 store at ``root`` to format 2, or finish a migration a kill interrupted.

    ``progress(done_rows, total_rows, table)`` is called as units are converted; ``hook(point)`` at each
    step (``"marked"``, ``"planned"``, ``"committed:<i>"``, ``"converted"``, ``"verified"``, ``"switching"``,
    ``"old-moved"``, ``"new-moved"``, ``"unmarked"``: the crash tests die there). ``abort=True`` gives up
    a migration that has not reached its switch: the store is format 1 again, ``migrate/`` removed.

    Raises:
        StoreFormatError: no store at ``root``, a live process has it open, another migration runs,
            or it cannot be aborted any more.
        CorruptionError: a part cannot be read, or verification found a difference (the store stays
            format 1, untouched).
    """
    started = time.perf_counter()
    path = os.path.abspath(os.path.expanduser(os.fspath(root)))
    layout = Layout(path)
    report = MigrationReport(path)
    if not os.path.exists(layout.meta):
        raise StoreFormatError(f"no store at {path!r} (no {META_NAME}); pass the root of a format-1 store")
    mdir = os.path.join(path, MIGRATE_DIR)
    with _migration_lock(path):
        if is_symlink(mdir):  # planted: the plan and the new tables would live out of the root
            raise StoreFormatError(f"{mdir} is a symlink; remove it (the store never follows links out of its root)")
        marker = read_marker(layout)
        fmt, migrating = marker.get("format"), bool(marker.get("migrating"))
        if abort:
            return _abort(layout, mdir, marker, report)
        if fmt == 2:
            unfinished = migrating or os.path.isdir(mdir)
            if migrating:
                _switch(layout, mdir, marker, hook)
            remove_tree(mdir)  # a kill after the last marker write left it
            if unfinished:  # this run finished what a killed one started
                report.rows = _row_counts(mdir, layout, new=False)
            else:
                report.state = "already format 2"
            report.seconds = time.perf_counter() - started
            return report
        if fmt != 1:
            raise StoreFormatError(f"store {path!r} has format {fmt!r}; aeg migrate converts format 1 to format 2")
        if not migrating:
            _refuse_live_writers(layout, own=None)
            remove_tree(mdir)  # left by an aborted or failed run: the store may have changed since
            write_marker(layout, {**marker, "migrating": True})
            try:
                _refuse_live_writers(layout, own=None)  # one that opened between our look and the marker
            except StoreFormatError:
                write_marker(layout, marker)
                raise
        _hook(hook, "marked")
        store_root = StoreRoot(path, format=1, migration=True)
        try:
            tables = {s.name: Table(layout, s, writer=store_root.writer) for s in SPECS}
            try:  # nothing is converted before the plan exists: a refusal gives the store back as it was
                _refuse_live_writers(layout, own=store_root.writer)
                store_root.recover(tables)
                _check_spools_gone(layout, store_root.writer)
                plan = _plan(layout, mdir, tables)
            except (CorruptionError, StoreFormatError):
                if not os.path.exists(os.path.join(mdir, PLAN_NAME)):
                    write_marker(layout, {k: v for k, v in marker.items() if k != "migrating"})
                    remove_tree(mdir)
                raise
            _hook(hook, "planned")
            _convert(layout, mdir, plan, tables, report, progress, hook)
            _hook(hook, "converted")
            try:
                _verify(layout, mdir, plan, tables)
            except CorruptionError:
                write_marker(layout, {k: v for k, v in marker.items() if k != "migrating"})
                remove_tree(mdir)
                raise
            _hook(hook, "verified")
            try:  # an older release (which knows no `migrating`) may have written meanwhile: not lost, refused
                _refuse_live_writers(layout, own=store_root.writer)
                _check_unchanged(layout, plan, tables, store_root.writer)
            except StoreFormatError:
                write_marker(layout, {k: v for k, v in marker.items() if k != "migrating"})
                remove_tree(mdir)
                raise
        finally:
            store_root.release()
        report.rows = _row_counts(mdir, layout, new=True)
        new_marker = {k: v for k, v in marker.items() if k != "migrating"}
        new_marker.update({"format": 2, "migrating": True, "migrated_from": 1})
        write_marker(layout, new_marker)
        _hook(hook, "switching")
        _switch(layout, mdir, new_marker, hook)
        remove_tree(mdir)
    report.seconds = time.perf_counter() - started
    return report


# -- the marker -----------------------------------------------------------------------------------
def read_marker(layout: Layout) -> dict[str, Any]:
    """The store's ``aeg-store.json`` as a dict."""
    try:
        with open(layout.meta, encoding="utf-8") as f:
            info = json.load(f)
    except (OSError, ValueError) as exc:
        raise StoreFormatError(f"{layout.meta} is unreadable ({exc}); restore it or open another store") from None
    if not isinstance(info, dict):
        raise StoreFormatError(f"{layout.meta} is not a store marker; restore it or open another store")
    return info


def write_marker(layout: Layout, info: dict[str, Any]) -> None:
    """Replace the marker atomically (and durably: it is the migration's commit point)."""
    tmp_dir = os.path.join(layout.root, MIGRATE_DIR)
    make_dirs(tmp_dir)
    with atomic(layout.meta, tmp_dir, fsync=True, prefix="marker") as tmp, open(tmp, "w", encoding="utf-8") as f:
        json.dump(info, f)


@contextlib.contextmanager
def _migration_lock(root: str) -> Iterator[None]:
    fd = try_lock(os.path.join(root, LOCK_NAME))
    if fd is None:
        raise StoreFormatError(
            f"another `aeg migrate` is converting {root!r} right now; wait for it to finish (it prints its progress)"
        )
    try:
        yield
    finally:
        os.close(fd)


def _abort(layout: Layout, mdir: str, marker: dict[str, Any], report: MigrationReport) -> MigrationReport:
    if marker.get("format") == 2:
        if marker.get("migrating"):
            raise StoreFormatError(
                f"the migration of {layout.root!r} is past its commit point (the new tables are verified); "
                f"it cannot be aborted: finish it with `aeg migrate {layout.root}`"
            )
        raise StoreFormatError(f"store {layout.root!r} is format 2 already; there is no migration to abort")
    if marker.get("migrating"):
        write_marker(layout, {k: v for k, v in marker.items() if k != "migrating"})
    remove_tree(mdir)
    report.state = "aborted: the store is format 1 as before (migrate/ removed)"
    return report


def _hook(hook: Hook | None, point: str) -> None:
    if hook is not None:
        hook(point)


# -- writers --------------------------------------------------------------------------------------
def _refuse_live_writers(layout: Layout, *, own: str | None) -> None:
    """Raise if a live process holds a writer claim on the store (``spool/<writer>/lock``)."""
    try:
        names = sorted(os.listdir(layout.spool))
    except FileNotFoundError:
        return
    live = []
    for name in names:
        if name == own:
            continue
        wdir = os.path.join(layout.spool, name)
        if is_symlink(wdir):
            continue
        if name.startswith(".new-"):
            try:
                young = time.time() - os.stat(wdir).st_mtime < STALE_SECONDS
            except FileNotFoundError:
                continue
            if young or not lock_is_free(os.path.join(wdir, "lock")):
                live.append(name.removeprefix(".new-"))
            continue
        if not lock_is_free(os.path.join(wdir, "lock")):
            live.append(name)
    if live:
        pids = ", ".join(_pid_of(w) for w in live)
        raise StoreFormatError(
            f"store {layout.root!r} is open in {len(live)} live process(es) (pid {pids}); close them "
            "(context.close(), or restart their kernels) and run `aeg migrate` again"
        )


def _pid_of(writer: str) -> str:
    return writer[1:].split("x", 1)[0] if writer.startswith("p") else writer


def _check_spools_gone(layout: Layout, own: str) -> None:
    """Every dead writer's spool was flushed into parts (a spool recovery had to defer stays: refuse)."""
    left = []
    for name in sorted(os.listdir(layout.spool)):
        wdir = os.path.join(layout.spool, name)
        if name == own or name.startswith(".new-") or not os.path.isdir(wdir) or is_symlink(wdir):
            continue
        left += [os.path.join(wdir, f) for f in sorted(os.listdir(wdir)) if f.endswith(".jsonl")]
    if left:
        raise StoreFormatError(
            f"{len(left)} spool file(s) of closed sessions could not be flushed ({left[0]}, ...); "
            "free some disk space (the warnings above say why) and run `aeg migrate` again"
        )


def _check_unchanged(layout: Layout, plan: list[Unit], tables: dict[str, Table], own: str) -> None:
    """The format-1 parts are the plan's, and no spool holds rows: nothing was written since the plan."""
    planned = {u.path for u in plan}
    now = {os.path.relpath(p.path, layout.root) for t in tables.values() for p in t.list_parts()}
    spools = [
        f for w in os.listdir(layout.spool) if w != own and os.path.isdir(os.path.join(layout.spool, w))
        for f in os.listdir(os.path.join(layout.spool, w)) if f.endswith(".jsonl")
    ]  # fmt: skip
    if now != planned or spools:
        raise StoreFormatError(
            f"store {layout.root!r} changed during the migration ({len(now - planned)} new part(s), "
            f"{len(planned - now)} gone, {len(spools)} spool(s)): a process that does not know about migrations "
            "(an older aeg_jupyter) wrote to it; nothing was switched and the store is format 1 as it is now: "
            "close that process and run `aeg migrate` again"
        )


# -- the plan -------------------------------------------------------------------------------------
def _plan(layout: Layout, mdir: str, tables: dict[str, Table]) -> list[Unit]:
    """The units of the migration, from ``migrate/plan.json`` if an earlier run wrote it."""
    plan_path = os.path.join(mdir, PLAN_NAME)
    if os.path.exists(plan_path):
        with open(plan_path, encoding="utf-8") as f:
            return [Unit(**u) for u in json.load(f)["units"]]
    for t in tables.values():
        bad = t.unreadable_parts(full=False)
        if bad:
            raise CorruptionError(
                f"{len(bad)} Parquet part(s) of {t.spec.name} cannot be read ({bad[0]}); the migration would "
                f"lose their rows: run `aeg verify --repair` first (it moves them aside), then `aeg migrate`"
            )
    too_long = []
    for t in tables.values():
        for kind in t.partition_kinds():
            try:
                check_partition_value(kind)
            except InvalidInputError:
                too_long.append(kind)
    if too_long:  # refused before anything is written: delta-rs cannot make their partition folders
        raise StoreFormatError(
            f"{len(too_long)} kind(s) of this store are too long for a format-2 partition folder (more than 255 "
            f"bytes percent-encoded), e.g. {too_long[0][:24]!r}...: format 2 cannot hold them; keep using the store "
            "as format 1 (`connect(root, format=1)` or AEG_STORE_FORMAT=1), nothing was changed"
        )
    units: list[Unit] = []
    for spec in SPECS:
        t = tables[spec.name]
        for kind in t.partition_kinds():
            for part in sorted(t.list_parts([kind]), key=lambda p: os.path.basename(p.path)):
                if is_symlink(part.path):
                    raise CorruptionError(
                        f"{part.path} is a symlink; the store never follows links out of its root: "
                        "run `aeg verify --repair` (it sets links aside), then `aeg migrate` again"
                    )
                rel = os.path.relpath(part.path, layout.root)
                with pq.ParquetFile(part.path) as pf:
                    sizes = [pf.metadata.row_group(g).num_rows for g in range(pf.metadata.num_row_groups)]
                if sum(sizes) <= UNIT_ROWS:
                    units.append(Unit(len(units), spec.name, kind, rel, None, sum(sizes)))
                    continue
                groups: list[int] = []
                rows = 0
                for g, n in enumerate(sizes):
                    if groups and rows + n > UNIT_ROWS:
                        units.append(Unit(len(units), spec.name, kind, rel, groups, rows))
                        groups, rows = [], 0
                    groups.append(g)
                    rows += n
                if groups:
                    units.append(Unit(len(units), spec.name, kind, rel, groups, rows))
    doc = {"version": 1, "rows": sum(u.rows for u in units), "units": [u.to_json() for u in units]}
    make_dirs(mdir)
    with atomic(plan_path, mdir, fsync=True, prefix="plan") as tmp, open(tmp, "w", encoding="utf-8") as f:
        json.dump(doc, f)
    return units


def _read_unit(layout: Layout, tables: dict[str, Table], u: Unit) -> list[Row]:
    full = os.path.join(layout.root, u.path)
    name = PartName.parse(os.path.basename(full))
    if name is None or not os.path.exists(full):
        raise CorruptionError(
            f"the planned part {full} is gone (something changed the store during the migration); "
            f"run `aeg migrate --abort {layout.root}` and then `aeg migrate {layout.root}` again"
        )
    if is_symlink(full):
        raise CorruptionError(
            f"the planned part {full} is a symlink now; the store never follows links out of its root"
        )
    table = tables[u.table]
    rows = table.read_part(Part(full, u.kind, name), row_groups=u.row_groups)
    if rows is None:
        raise CorruptionError(f"the planned part {full} vanished during the migration; run `aeg migrate` again")
    damaged = table.damaged_files(thorough=False)
    if damaged:  # a part whose footer read but whose pages do not: its rows would be lost
        raise CorruptionError(
            f"the Parquet part {damaged[0]} cannot be read whole; run `aeg migrate --abort {layout.root}`, "
            f"`aeg verify --repair` (it moves the part aside), then `aeg migrate` again"
        )
    return rows


# -- converting -----------------------------------------------------------------------------------
def _new_table(mdir: str, spec: TableSpec) -> DeltaLakeTable:
    return DeltaLakeTable(os.path.join(mdir, "tables", spec.name), SCHEMAS2[spec.name], ts_field=spec.ts_field)


def _convert(
    layout: Layout,
    mdir: str,
    plan: list[Unit],
    tables: dict[str, Table],
    report: MigrationReport,
    progress: Progress | None,
    hook: Hook | None,
) -> None:
    total, done = sum(u.rows for u in plan), 0
    for spec in SPECS:
        new = _new_table(mdir, spec)
        new.create()
        last = new.committed_seq(APP_ID)
        seen: set[str] = set(new.read([spec.id_field]).column(0).to_pylist()) if last is not None else set()
        for u in (u for u in plan if u.table == spec.name):
            if last is not None and u.i <= last:
                report.skipped_units += 1
                done += u.rows
                _progress(progress, done, total, spec.name)
                continue
            rows = []
            for r in _read_unit(layout, tables, u):
                rid = r[spec.id_field]
                if rid in seen:
                    report.duplicates += 1
                    continue
                seen.add(rid)
                rows.append(r)
            if spec is ARTIFACTS:
                _inline(layout, rows, report)
            if rows:
                new.commit(ROWS_TO_ARROW[spec.name](rows), app_id=APP_ID, seq=u.i)
                report.committed_units += 1
            _hook(hook, f"committed:{u.i}")
            done += u.rows
            _progress(progress, done, total, spec.name)
        new.checkpoint()  # the first open reads one Parquet file, not every commit of the migration


def _progress(progress: Progress | None, done: int, total: int, table: str) -> None:
    if progress is not None:
        progress(done, total, table)


def _inline(layout: Layout, rows: list[Row], report: MigrationReport) -> None:
    """Content of at most INLINE_MAX bytes into each row (``content``), checked against its address."""
    for r in rows:
        size = r.get("size") or 0
        digest = str(r.get("uri") or "").removeprefix(URI_PREFIX)
        # a directory's content is its manifest, whose length is not the artifact's size: a blob file
        if size > INLINE_MAX or r.get("mime") == DIR_MIME or not is_hex_digest(digest):
            continue
        data = _small_blob(layout, digest)
        if data is None:
            report.missing_blobs.append(digest)
            continue
        r["content"] = data
        report.inlined += 1
        report.inlined_bytes += len(data)


def _small_blob(layout: Layout, digest: str) -> bytes | None:
    path = layout.blob_path(digest)
    if is_symlink(path):
        return None  # never read through a link out of the root
    try:
        with open(path, "rb") as f:
            data = f.read(INLINE_MAX + 1)
    except OSError:
        return None
    return data if len(data) <= INLINE_MAX and hash_bytes(data) == digest else None


def _row_counts(mdir: str, layout: Layout, *, new: bool) -> dict[str, int]:
    base = os.path.join(mdir, "tables") if new else layout.tables
    counts = {}
    for spec in SPECS:
        t = DeltaLakeTable(os.path.join(base, spec.name), SCHEMAS2[spec.name], ts_field=spec.ts_field)
        counts[spec.name] = sum(f.rows for f in t.files()) if t.exists() else 0
    return counts


# -- verifying ------------------------------------------------------------------------------------
def _verify(layout: Layout, mdir: str, plan: list[Unit], tables: dict[str, Table]) -> None:
    """Compare the new tables with format 1's parts, field by field, one unit at a time.

    The Delta log says which files each unit's commit added (its ``txn``), so each unit's rows are compared
    with the rows of its own files: memory stays one unit's rows plus the id sets, whatever the store's size.
    """
    differences: list[str] = []
    for spec in SPECS:
        new = _new_table(mdir, spec)
        commits = _unit_files(new, differences)
        snapshot = {f.path for f in new.files()}
        listed = {f.path for files in commits.values() for f in files}
        if snapshot != listed:
            differences.append(
                f"{spec.name}: {len(snapshot - listed)} file(s) in the new table that no migration commit added, "
                f"{len(listed - snapshot)} added and gone"
            )
        seen_old: set[str] = set()
        seen_new: set[str] = set()
        for u in (u for u in plan if u.table == spec.name):
            old: dict[str, Row] = {}
            for r in _read_unit(layout, tables, u):
                rid = r[spec.id_field]
                if rid not in seen_old:
                    seen_old.add(rid)
                    old[rid] = r
            files = commits.pop(u.i, [])
            new_rows: list[Row] = []
            content: list[bytes | None] = []
            for f in files:
                if f.kind != u.kind:
                    differences.append(f"{spec.name} unit {u.i}: a file of kind {f.kind!r}, not {u.kind!r}")
                data = new.read_file(f)
                new_rows += tables[spec.name].arrow_to_rows(to_format1(spec, data), f.kind)
                content += data.column("content").to_pylist() if spec is ARTIFACTS else [None] * data.num_rows
            ids = [r[spec.id_field] for r in new_rows]
            unique = set(ids)
            twice = len(ids) - len(unique) + len(unique & seen_new)
            if twice:
                differences.append(f"{spec.name}/{u.kind}: {twice} id(s) twice in the new table")
            seen_new |= unique
            if unique != old.keys():
                lost, extra = sorted(old.keys() - unique), sorted(unique - old.keys())
                differences.append(
                    f"{spec.name}/{u.kind}: {len(lost)} row(s) missing ({lost[:3]}), {len(extra)} extra ({extra[:3]})"
                )
            differences += _compare_rows(spec, old, new_rows)
            for r, blob in zip(new_rows, content, strict=True):
                if blob is not None:
                    digest = str(r["uri"]).removeprefix(URI_PREFIX)
                    if hash_bytes(blob) != digest or len(blob) != (r.get("size") or 0):
                        differences.append(f"artifacts {r['artifact_id']} content: does not hash to its URI")
            if len(differences) > 100:
                break
        for i in sorted(commits):
            differences.append(f"{spec.name}: a migration commit for unit {i}, which the plan does not hold")
    if differences:
        shown = "; ".join(differences[:_SHOW_DIFFERENCES])
        raise CorruptionError(
            f"verification of the migrated tables found {len(differences)} difference(s) ({shown}); nothing was "
            "switched: the store is format 1 as before (migrate/ removed); report this with the message"
        )


def _compare_rows(spec: TableSpec, old: dict[str, Row], new_rows: list[Row]) -> list[str]:
    """Every column of the rows both sides hold, compared a column at a time (a list comparison in C for
    the plain columns; the JSON columns decoded and compared as canonical JSON, which keeps the types:
    ``true``, ``1`` and ``1.0`` differ)."""
    pairs = [(old[r[spec.id_field]], r) for r in new_rows if r[spec.id_field] in old]
    before = [a for a, _ in pairs]
    after = [b for _, b in pairs]
    out = []
    for name in spec.schema.names:
        a, b = _column(spec, name, before), _column(spec, name, after)
        if a != b:
            for x, y, row in zip(a, b, after, strict=True):
                if x != y:
                    out.append(f"{spec.name} {row[spec.id_field]} {name}: format 1 {x!r}, format 2 {y!r}")
    return out


def _column(spec: TableSpec, name: str, rows: list[Row]) -> list[Any]:
    values = [r.get(name) for r in rows]
    if name in _JSON.get(spec.name, ()):
        return [json.dumps(_norm(spec, name, v), sort_keys=True) for v in values]
    default = _DEFAULTS.get(name) if spec is not OPS else None
    if default is not None:
        return [default if v is None else v for v in values]
    return values


def _unit_files(table: DeltaLakeTable, differences: list[str]) -> dict[int, list[DataFile]]:
    """The data files each migration commit added, by unit, read from the table's JSON commits."""
    log = os.path.join(table.path, "_delta_log")
    out: dict[int, list[DataFile]] = {}
    for name in sorted(os.listdir(log)):
        stem = name.removesuffix(".json")
        if stem == name or not stem.isdigit():
            continue
        unit: int | None = None
        adds: list[DataFile] = []
        with open(os.path.join(log, name), encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    continue
                action = json.loads(line)
                if "txn" in action and action["txn"].get("appId") == APP_ID:
                    unit = int(action["txn"]["version"])
                elif "add" in action:
                    add = action["add"]
                    kind = (add.get("partitionValues") or {}).get("kind")
                    adds.append(DataFile(os.path.join(table.path, unquote(add["path"])), kind, 0))
                elif "remove" in action:
                    differences.append(f"{table.path}: commit {stem} removes a file (the migration only appends)")
        if unit is None:
            if adds:
                differences.append(f"{table.path}: commit {stem} adds files without the migration's transaction")
            continue
        if unit in out:
            differences.append(f"{table.path}: unit {unit} committed twice")
        out.setdefault(unit, []).extend(adds)
    return out


_DEFAULTS = {"size": 0, "pinned": False, "severity": 2, "version": 1}
_JSON = {
    "artifacts": ("labels", "metrics", "inputs"),
    "events": ("inputs", "outputs", "metrics", "tags"),
}


def _norm(spec: TableSpec, name: str, value: Any) -> Any:
    """A column's value as the API decodes it (JSON text decoded, the codecs' defaults applied)."""
    if name in _JSON.get(spec.name, ()):
        if isinstance(value, str):
            value = json.loads(value) if value else None
        if spec is ARTIFACTS and name in ("labels", "metrics"):
            value = value or {}
            if name == "metrics":
                value = {k: float(v) for k, v in value.items()}
        elif spec is ARTIFACTS and name == "inputs":
            value = value or None
        elif spec is EVENTS and name == "metrics" and value is not None:
            value = {k: float(v) for k, v in value.items()}
        return value
    if value is None and name in _DEFAULTS and spec is not OPS:
        return _DEFAULTS[name]
    return value


# -- the switch -----------------------------------------------------------------------------------
def _switch(layout: Layout, mdir: str, marker: dict[str, Any], hook: Hook | None) -> None:
    """Swap the verified new tables in (the marker already says format 2, migrating); idempotent."""
    new, old, cur = os.path.join(mdir, "tables"), os.path.join(mdir, "old-tables"), layout.tables
    if os.path.isdir(new):
        if os.path.lexists(cur):
            if os.path.lexists(old):
                if os.path.isdir(cur) and not os.listdir(cur):
                    os.rmdir(cur)  # an empty folder something made meanwhile
                else:
                    raise StoreFormatError(
                        f"both {cur} and {old} exist in the middle of the switch; move one of them away by hand "
                        "and run `aeg migrate` again"
                    )
            else:
                os.rename(cur, old)
                fsync_path(layout.root)
                _hook(hook, "old-moved")
        os.rename(new, cur)
        fsync_path(layout.root)
        _hook(hook, "new-moved")
    elif not os.path.isdir(cur):
        raise StoreFormatError(f"the migrated tables of {layout.root!r} are gone (neither {new} nor {cur} exists)")
    write_marker(layout, {k: v for k, v in marker.items() if k != "migrating"})
    _hook(hook, "unmarked")


__all__ = ["APP_ID", "UNIT_ROWS", "MigrationReport", "migrate", "read_marker", "write_marker"]
