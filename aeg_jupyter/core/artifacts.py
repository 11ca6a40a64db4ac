"""The artifacts of one store: the one object the async facade, the magics and the panel call.

:class:`ArtifactStore` is thin on purpose. It hands each call to the part that owns it:
:class:`~.ingest.Ingest` (saves), :class:`~.lookup.Lookup` (get, load, local paths),
:class:`~.search.ArtifactSearch` (search, best, list), :class:`~.maintenance.Maintenance`
(gc, verify), all built on one :class:`~.catalog.Catalog`. Pins and deletes are rows of the
ops table, folded into the catalog.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from datetime import timedelta
from typing import Any, TypedDict, Unpack

from ..base.errors import InvalidInputError
from ..base.ids import new_ts_id
from ..base.models import RESERVED_KIND_PREFIX, Artifact, Provenance, ScopeFilter
from ..base.validate import Mode
from ..storage.blobs import BlobStore
from ..storage.delta_table import DeltaSpoolTable
from ..storage.root import StoreRoot
from ..storage.schemas import op_row
from ..storage.tables import Table
from .catalog import Catalog
from .catalog2 import DeltaCatalog
from .guard import WriteGuard
from .ingest import ArtifactWriter, Ingest
from .lookup import ArtifactRef, Lookup
from .maintenance import GcReport, Maintenance, VerifyReport
from .search import ArtifactList, ArtifactSearch, ColumnarSearch

_NO_ORIGIN = Provenance()


class SaveOptions(TypedDict, total=False):
    """The keywords every save takes besides its content and kind (see :class:`~.ingest.Ingest`)."""

    labels: Mapping[str, Any] | None
    metrics: Mapping[str, Any] | None
    name: str | None
    pin: bool
    origin: Provenance


class ArtifactStore:
    """Save, find, rank, pin, open again, collect and verify the artifacts of one store.

    Example:
        >>> arts = aeg_jupyter.connect("/tmp/store").store.artifacts          # doctest: +SKIP
        >>> art = arts.save_json({"lr": 1e-3}, kind="config")                   # doctest: +SKIP
        >>> arts.best(kind="checkpoint", metric="val_acc")                      # doctest: +SKIP
    """

    def __init__(
        self, *, blobs: BlobStore, table: Table, ops: Table, tables: Mapping[str, Table], root: StoreRoot,
        guard: WriteGuard,
    ) -> None:  # fmt: skip
        self.blobs = blobs
        self._ops = ops
        self._guard = guard
        self.catalog: Catalog | DeltaCatalog
        self._search: ArtifactSearch | ColumnarSearch
        if isinstance(table, DeltaSpoolTable) and isinstance(ops, DeltaSpoolTable):
            # format 2: queries over the columns, no Artifact object per row at open (docs/format2.md)
            self.catalog = DeltaCatalog(table, ops, guard.lock)
            self._search = ColumnarSearch(self.catalog)
        else:
            self.catalog = Catalog(table, ops, guard.lock)
            self._search = ArtifactSearch(self.catalog)
        self._ingest = Ingest(blobs, table, self.catalog, guard, root.save_gate)  # type: ignore[arg-type]
        self._lookup = Lookup(self.catalog, blobs)  # type: ignore[arg-type]
        self._maintenance = Maintenance(
            catalog=self.catalog, search=self._search, lookup=self._lookup, blobs=blobs, tables=tables, root=root,  # type: ignore[arg-type]
            guard=guard, delete=lambda artifact_id: self._append_op(artifact_id, "delete"),
        )  # fmt: skip

    # -- the catalog -------------------------------------------------------------------------
    def catch_up(self) -> None:
        """Take in what other processes saved, pinned or deleted since the last look."""
        self.catalog.catch_up()

    def __len__(self) -> int:
        """Live artifacts, the store's own ``aeg.*`` ones (cell sources, environments) left out."""
        n = len(self.catalog)
        with self.catalog._lock:
            return n - sum(
                self.catalog.count(k) for k in list(self.catalog.by_kind) if k.startswith(RESERVED_KIND_PREFIX)
            )

    def kinds(self) -> list[str]:
        """Kinds that have at least one live artifact (the store's own ``aeg.*`` kinds left out)."""
        return [k for k in self.catalog.kinds() if not k.startswith(RESERVED_KIND_PREFIX)]

    def metric_names(self, kind: str | None = None) -> list[str]:
        """Metric names used by live artifacts (of one kind, or of all)."""
        return self.catalog.metric_names(kind)

    # -- saving (see Ingest) -----------------------------------------------------------------
    def save_file(self, path: str | os.PathLike[str], *, kind: str, **kw: Unpack[SaveOptions]) -> Artifact:
        """Store a local file by content; returns its artifact (see :meth:`Ingest.save_file`)."""
        return self._ingest.save_file(path, kind=kind, **kw)

    def save_dir(self, path: str | os.PathLike[str], *, kind: str, **kw: Unpack[SaveOptions]) -> Artifact:
        """Store a directory: every file as a blob, plus a manifest (see :meth:`Ingest.save_dir`)."""
        return self._ingest.save_dir(path, kind=kind, **kw)

    def save_bytes(
        self,
        data: bytes | bytearray | memoryview,
        *,
        kind: str = "bytes",
        mime: str | None = None,
        **kw: Unpack[SaveOptions],
    ) -> Artifact:
        """Store bytes held in memory."""
        return self._ingest.save_bytes(data, kind=kind, mime=mime, **kw)

    def save_json(self, obj: Any, *, kind: str = "json", **kw: Unpack[SaveOptions]) -> Artifact:
        """Store a JSON-encodable object (as UTF-8 JSON text)."""
        return self._ingest.save_json(obj, kind=kind, **kw)

    def save_text(self, text: str, *, kind: str = "text", **kw: Unpack[SaveOptions]) -> Artifact:
        """Store a string (as UTF-8)."""
        return self._ingest.save_text(text, kind=kind, **kw)

    def open_writer(self, *, kind: str, planned_ext: str | None = None, **kw: Unpack[SaveOptions]) -> ArtifactWriter:
        """A file-like writer whose bytes become an artifact on ``commit()``; see ``arts.writer``."""
        return self._ingest.open_writer(kind=kind, planned_ext=planned_ext, **kw)

    # -- looking up (see Lookup) -------------------------------------------------------------
    @property
    def read_listeners(self) -> list[Callable[[Artifact], None]]:
        """Called with every artifact read (load, local file / dir): how a context learns a cell's inputs."""
        return self._lookup.read_listeners

    def get(self, ref: ArtifactRef) -> Artifact:
        """The artifact for an id, a unique id prefix, a short id (last 8 characters), or a CAS URI."""
        return self._lookup.get(ref)

    def load_bytes(self, ref: ArtifactRef, *, verify: bool = False) -> bytes:
        """The stored bytes of a file artifact (or URI); ``verify`` re-hashes them first."""
        return self._lookup.load_bytes(ref, verify=verify)

    def load_text(self, ref: ArtifactRef, *, verify: bool = False) -> str:
        """The stored bytes decoded as UTF-8."""
        return self._lookup.load_text(ref, verify=verify)

    def load_json(self, ref: ArtifactRef, *, verify: bool = False) -> Any:
        """The stored bytes decoded as JSON."""
        return self._lookup.load_json(ref, verify=verify)

    def local_file(self, ref: ArtifactRef, *, verify: bool = False) -> str:
        """A read-only local path to the artifact's bytes, with its original file name."""
        return self._lookup.local_file(ref, verify=verify)

    def local_dir(self, ref: ArtifactRef) -> str:
        """A local directory holding a directory artifact's files (read-only)."""
        return self._lookup.local_dir(ref)

    def manifest(self, ref: ArtifactRef) -> list[dict[str, Any]]:
        """The entries of a directory artifact: ``[{"path", "blob", "size", "mode"}, ...]``."""
        return self._lookup.manifest(ref)

    # -- querying (see ArtifactSearch) -------------------------------------------------------
    def search(
        self,
        *,
        kind: str | None = None,
        labels: Mapping[str, Any] | None = None,
        metric: str | None = None,
        mode: Mode | None = None,
        where: ScopeFilter = ScopeFilter(),
        limit: int | None = None,
    ) -> ArtifactList:
        """Artifacts matching ``kind``, every label in ``labels`` and the scope; ranked when ``metric`` is given."""
        return self._search.search(kind=kind, labels=labels, metric=metric, mode=mode, where=where, limit=limit)

    def iter_ranked(
        self,
        *,
        kind: str,
        metric: str,
        mode: Mode = "max",
        where: ScopeFilter = ScopeFilter(),
        labels: Mapping[str, Any] | None = None,
    ) -> Iterator[Artifact]:
        """Ranked ``search`` one artifact at a time, best first (for consumers that stop early)."""
        return self._search.iter_ranked(kind=kind, metric=metric, mode=mode, where=where, labels=labels)

    def best(
        self,
        *,
        kind: str,
        metric: str,
        mode: Mode = "max",
        where: ScopeFilter = ScopeFilter(),
        filters: Mapping[str, Any] | None = None,
    ) -> Artifact | None:
        """The artifact of ``kind`` with the best ``metric``; NaN never wins, ties go to the newest."""
        return self._search.best(kind=kind, metric=metric, mode=mode, where=where, filters=filters)

    def list(
        self, *, kind: str | None = None, where: ScopeFilter = ScopeFilter(), limit: int | None = None
    ) -> ArtifactList:
        """Live artifacts in scope, newest first."""
        return self._search.list(kind=kind, where=where, limit=limit)

    # -- pin and delete ----------------------------------------------------------------------
    def _append_op(self, artifact_id: str, op: str) -> None:
        ts, op_id = new_ts_id()
        row = op_row(op_id, ts, op, artifact_id)
        guard = self._guard
        with guard.lock:
            guard.check_open()
            self._ops.append(row)
            self.catalog.apply([], [row])
        guard.notify("ops")

    def pin(self, ref: ArtifactRef, pinned: bool = True) -> Artifact:
        """Pin (or with ``pinned=False`` unpin) an artifact; pinned artifacts are never collected."""
        art = self.get(ref)
        if art.pinned != bool(pinned):
            self._append_op(art.artifact_id, "pin" if pinned else "unpin")
        return self.catalog.by_id[art.artifact_id]

    def delete(self, ref: ArtifactRef) -> Artifact:
        """Mark an artifact deleted (its bytes go at the next ``gc``). Pinned artifacts must be unpinned first."""
        art = self.get(ref)
        if art.pinned:
            raise InvalidInputError(f"artifact {art.artifact_id} is pinned; unpin it first if you really want it gone")
        self._maintenance.refuse_if_damaged("delete", thorough=False)  # an unreadable part may pin it
        self._append_op(art.artifact_id, "delete")
        return art

    # -- maintenance (see Maintenance) -------------------------------------------------------
    def gc(
        self,
        *,
        dry_run: bool = True,
        older_than: str | float | timedelta | None = None,
        keep_last: int | None = None,
        keep_best: Mapping[str, str | tuple[str, Mode]] | None = None,
    ) -> GcReport:
        """Collect unpinned artifacts matching the retention rule, then every unreferenced blob."""
        return self._maintenance.gc(dry_run=dry_run, older_than=older_than, keep_last=keep_last, keep_best=keep_best)

    def verify(self, *, repair: bool = False) -> VerifyReport:
        """Re-hash every blob and open every Parquet part; report what is corrupt or missing."""
        return self._maintenance.verify(repair=repair)


__all__ = [
    "ArtifactList",
    "ArtifactRef",
    "ArtifactStore",
    "ArtifactWriter",
    "GcReport",
    "Mode",
    "VerifyReport",
]
