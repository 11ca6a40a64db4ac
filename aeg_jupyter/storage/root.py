"""The store root on disk: its format marker, this process's writer claim, and recovery of dead writers.

A writer is one process with the store open. It holds an exclusive ``flock`` on
``spool/<writer>/lock`` while it lives; a spool directory whose lock nobody holds belonged to a
writer that died, and the next process to open the store flushes that spool into the tables and
removes the writer's temp files (:meth:`StoreRoot.recover`).
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Mapping

from ..base.errors import InvalidInputError, StoreFormatError
from .fsops import hold_lock, lock_is_free, remove_tree, try_lock, unlink_quietly
from .layout import META_NAME, STORE_FORMAT, Layout, parse_spool_name
from .tables import Table

FORMATS = (STORE_FORMAT, 2)  # 2: Delta Lake tables, behind a flag (docs/format2.md)
STALE_SECONDS = 60.0  # a half-created writer directory older than this belonged to a dead process
KNOWN_DIRS = ("blobs", "tables", "spool", "tmp", "files")


class StoreRoot:
    """One store directory as this process holds it: created or checked, and claimed as a writer.

    Example:
        >>> root = StoreRoot("/tmp/demo-store")     # doctest: +SKIP
        >>> root.writer                               # doctest: +SKIP
        'p4242x1a2b3c4d'
        >>> root.release()                            # doctest: +SKIP
    """

    def __init__(self, root: str | os.PathLike[str], *, format: int | None = None) -> None:
        if format not in (None, *FORMATS):
            raise InvalidInputError(f"format must be one of {', '.join(map(str, FORMATS))}, not {format!r}")
        self.path = os.path.abspath(os.path.expanduser(os.fspath(root)))
        self.layout = Layout(self.path)
        # `format` picks a new store's format (1 by default); an existing store must be opened with its
        # own, and format 2 only when asked for (it is not complete yet: docs/format2.md)
        self.format: int = format or STORE_FORMAT
        self._init_root(format)
        self.writer = f"p{os.getpid()}x{secrets.token_hex(4)}"
        self._lock_fd: int | None = self._claim_writer_dir()

    # -- opening -----------------------------------------------------------------------------
    def _init_root(self, wanted: int | None) -> None:
        root = self.path
        if os.path.exists(root) and not os.path.isdir(root):
            raise InvalidInputError(
                f"store root {root!r} is a file; point the store at a directory (AEG_STORE or connect(root=...))"
            )
        meta = self.layout.meta
        if os.path.exists(meta):
            try:
                with open(meta, encoding="utf-8") as f:
                    info = json.load(f)
                fmt = info.get("format")
            except (OSError, ValueError, AttributeError) as exc:
                raise StoreFormatError(f"{meta} is unreadable ({exc}); restore it or open another store") from None
            if fmt not in FORMATS:
                raise StoreFormatError(
                    f"store {root!r} has format {fmt!r}, this aeg_jupyter reads format {STORE_FORMAT}; "
                    "upgrade with `pip install -U aeg-jupyter` or open another store"
                )
            if fmt == 2 and wanted is None:
                raise StoreFormatError(
                    f"store {root!r} has format 2, which this aeg_jupyter opens only when asked "
                    "(Store(root, format=2): format 2 is not complete yet); "
                    "upgrade with `pip install -U aeg-jupyter` or open another store"
                )
            if wanted is not None and fmt != wanted:
                raise StoreFormatError(
                    f"store {root!r} has format {fmt}, not {wanted}; open it without format={wanted} "
                    "(converting a store between formats is not available yet) or pick a new directory"
                )
            self.format = fmt
            return
        if os.path.isdir(root):
            strangers = [n for n in os.listdir(root) if n not in KNOWN_DIRS and not n.startswith(".")]
            if strangers:
                raise StoreFormatError(
                    f"{root!r} is not an aeg store (no {META_NAME}) and is not empty; "
                    "pick a new or empty directory for the store"
                )
        os.makedirs(root, exist_ok=True)
        tmp = os.path.join(root, f".{META_NAME}.{secrets.token_hex(4)}")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({"format": self.format, "hash": "blake3", "created_by": "aeg_jupyter"}, f)
        try:
            os.link(tmp, meta)  # never overwrite a marker another process wrote meanwhile
        except FileExistsError:
            self._init_root(wanted)  # that marker decides (and is checked against `wanted`)
        finally:
            os.unlink(tmp)
        for d in KNOWN_DIRS:
            os.makedirs(os.path.join(root, d), exist_ok=True)

    def _claim_writer_dir(self) -> int:
        """Create ``spool/<writer>/lock`` and hold an exclusive lock on it while we live.

        The directory is prepared under a dot-name and renamed into place with the lock held,
        so no other process can mistake a starting writer for a dead one.
        """
        staging = os.path.join(self.layout.spool, f".new-{self.writer}")
        os.makedirs(staging)
        fd = hold_lock(os.path.join(staging, "lock"))
        os.rename(staging, self.layout.writer_spool_dir(self.writer))
        os.makedirs(self.layout.writer_tmp_dir(self.writer), exist_ok=True)
        return fd

    # -- dead writers ------------------------------------------------------------------------
    def recover(self, tables: Mapping[str, Table]) -> list[str]:
        """Flush the spools of dead writers into ``tables`` and remove their temp files.

        Returns the writers recovered. Safe to run from several processes at once.
        """
        recovered = []
        spool_root = self.layout.spool
        # tmp/ is listed before spool/: a writer creates its spool directory before its temp
        # directory, so a temp directory whose writer is missing from the later listing is dead.
        tmp_names = os.listdir(self.layout.tmp)
        for name in sorted(os.listdir(spool_root)):
            if name == self.writer:
                continue
            wdir = os.path.join(spool_root, name)
            if name.startswith(".new-"):
                # A writer that died before its directory was renamed into place (or one that is
                # starting right now: its lock file may not exist yet, hence the age check).
                if _age(wdir) > STALE_SECONDS and lock_is_free(os.path.join(wdir, "lock")):
                    remove_tree(wdir)
                continue
            lock_path = os.path.join(wdir, "lock")
            if not os.path.exists(lock_path):
                remove_tree(wdir)
                continue
            fd = try_lock(lock_path)
            if fd is None:
                continue  # alive
            try:
                complete = _flush_dead_spools(tables, name, wdir)
                remove_tree(self.layout.writer_tmp_dir(name))
                if complete:
                    remove_tree(wdir)
                    recovered.append(name)
            finally:
                os.close(fd)
        # temp directories with no writer behind them
        live = set(os.listdir(spool_root))
        for name in tmp_names:
            if name not in live and name != self.writer:
                remove_tree(os.path.join(self.layout.tmp, name))
        return recovered

    # -- closing -----------------------------------------------------------------------------
    def release(self, *, spool_flushed: bool = True) -> None:
        """Drop this writer's temp files (and its spool directory, once flushed) and its lock."""
        if self._lock_fd is None:
            return
        remove_tree(self.layout.writer_tmp_dir(self.writer))
        if spool_flushed:
            remove_tree(self.layout.writer_spool_dir(self.writer))
        os.close(self._lock_fd)
        self._lock_fd = None

    def move_aside_dir(self) -> str:
        """Where ``verify(repair=True)`` moves damaged files: ``<root>/corrupt``."""
        return os.path.join(self.path, "corrupt")


def _flush_dead_spools(tables: Mapping[str, Table], writer: str, wdir: str) -> bool:
    """Flush a dead writer's spool files into ``tables``; False if some spool of another table is left.

    A spool of a table not in ``tables`` (one a newer version writes) holds acknowledged rows: it
    stays, with its directory, for a process that knows that table.
    """
    complete = True
    for fname in sorted(os.listdir(wdir)):
        parsed = parse_spool_name(fname)
        if parsed is None:
            continue
        if parsed[0] not in tables:
            complete = False
            continue
        table = tables[parsed[0]]
        path = os.path.join(wdir, fname)
        rows, _ = table.read_spool(path)
        # de-duplicate by id: a row can only repeat if the line was written twice
        seen: set[str] = set()
        id_field = table.spec.id_field
        unique = [r for r in rows if not (r[id_field] in seen or seen.add(r[id_field]))]
        if unique:
            table.write_parts(unique, writer, parsed[1])
        unlink_quietly(path)
    return complete


def _age(path: str) -> float:
    try:
        return time.time() - os.stat(path).st_mtime
    except FileNotFoundError:
        return 0.0
