"""Ingest: every way an artifact comes in (file, directory, bytes, JSON, text, a streamed writer).

The bytes go to the blob store first; the artifact's row is appended to the artifacts table
only once its blob is whole, then the catalog takes it in and listeners are told. On a format-2
store content of at most ``INLINE_MAX`` (4 KiB) goes into the row itself (``content_b64`` in the
spool line, the ``content`` column once committed): no blob file; its URI is still the blake3
address of the bytes (docs/format2.md, "Small blobs inline").
"""

from __future__ import annotations

import base64
import contextlib
import json
import mimetypes
import os
import stat
from collections.abc import Mapping
from typing import Any

from ..base.errors import InvalidInputError, StoreWriteError
from ..base.hashing import hash_bytes
from ..base.ids import new_ts_id
from ..base.jsoncodec import json_encoder
from ..base.models import DIR_MIME, URI_PREFIX, Artifact, Provenance
from ..base.times import ts_to_datetime
from ..base.validate import check_kind, check_labels, check_metrics, safe_file_name
from ..storage.blobs import BlobStore, BlobWriter, PutResult
from ..storage.delta_table import DeltaSpoolTable
from ..storage.root import SaveGate
from ..storage.schemas import artifact_row
from ..storage.schemas2 import INLINE_MAX
from ..storage.tables import Table
from .catalog import Catalog
from .guard import WriteGuard

MANIFEST_FORMAT = 1
_encode = json_encoder()  # json.dumps(obj, ensure_ascii=False), without its per-call set-up


class Ingest:
    """Saves artifacts into one store.

    Example:
        >>> ingest.save_text("training finished ok", kind="note").kind   # doctest: +SKIP
        'note'
    """

    def __init__(
        self, blobs: BlobStore, table: Table, catalog: Catalog, guard: WriteGuard, gate: SaveGate | None = None
    ) -> None:
        self._blobs = blobs
        self._table = table
        self._catalog = catalog
        self._guard = guard
        # held from a save's blob to its row, so that gc cannot free the blob in between
        self.gate: SaveGate | _NoGate = gate if gate is not None else _NoGate()
        # format 2: content of at most INLINE_MAX bytes lives in the row, not in a blob file
        self.inline_max = INLINE_MAX if isinstance(table, DeltaSpoolTable) else -1

    def _put_bytes(self, data: bytes | bytearray | memoryview) -> tuple[PutResult, bytes | None]:
        """The blob of ``data``, or (format 2, small) its address and the bytes to put in the row."""
        if len(data) <= self.inline_max:
            content = bytes(data)
            return PutResult(hash_bytes(content), len(content), True), content
        return self._blobs.put_bytes(data), None

    def commit(
        self,
        put: PutResult,
        *,
        kind: str,
        labels: dict[str, Any],
        metrics: dict[str, float],
        name: str | None,
        mime: str | None,
        pin: bool,
        origin: Provenance,
        size: int | None = None,
        content: bytes | None = None,
    ) -> Artifact:
        ts, aid = new_ts_id()
        row = artifact_row(
            aid, ts, kind, URI_PREFIX + put.digest, put.size if size is None else size,
            name=name, mime=mime, origin=origin, pinned=pin, labels=labels, metrics=metrics,
        )  # fmt: skip
        if content is not None:  # format 2: the bytes ride in the row (schemas2.row_content)
            row["content_b64"] = base64.b64encode(content).decode("ascii")
            self._blobs.drop_short(put.digest, len(content))  # a blob file is read before the row
        guard = self._guard
        with guard.lock:
            guard.check_open()
            self._table.append(row)
            art = Artifact(
                artifact_id=aid,
                uri=row["uri"],
                kind=kind,
                labels=labels,
                metrics=metrics,
                pinned=bool(pin),
                created_at=ts_to_datetime(ts),
                size=row["size"],
                name=name,
                mime=mime,
                run_id=origin.run_id,
                graph_id=origin.graph_id,
                node_id=origin.node_id,
                source_path=origin.source_path,
                cell_id=origin.cell_id,
                execution_count=origin.execution_count,
                source_hash=origin.source_hash,
                inputs=origin.inputs,
            )
            self._catalog.insert(art)
        guard.notify("artifacts")
        return art

    def save_file(
        self,
        path: str | os.PathLike[str],
        *,
        kind: str,
        labels: Mapping[str, Any] | None = None,
        metrics: Mapping[str, Any] | None = None,
        name: str | None = None,
        pin: bool = False,
        origin: Provenance = Provenance(),
        mime: str | None = None,
        move: bool = False,
    ) -> Artifact:
        """Store a local file by content; returns its artifact.

        ``mime`` defaults to the one the name suggests. ``move=True`` consumes the file (a staged
        file its caller would delete next): it becomes the blob by a rename where it safely can
        (``BlobStore.put_file``) and is gone afterwards.

        Example:
            >>> index.save_file("model.pt", kind="checkpoint", metrics={"val_acc": 0.91})  # doctest: +SKIP
        """
        kind, labels_, metrics_ = check_kind(kind), check_labels(labels), check_metrics(metrics)
        src = os.fspath(path)
        fname = safe_file_name(name) if name else safe_file_name(os.path.basename(os.path.abspath(src)))
        with self.gate.shared():
            content = _small_file(src, self.inline_max)
            if content is not None:
                put = PutResult(hash_bytes(content), len(content), True)
            else:
                put = self._blobs.put_file(src, move=move)
            art = self.commit(
                put,
                kind=kind,
                labels=labels_,
                metrics=metrics_,
                name=fname,
                mime=mime or guess_mime(fname),
                pin=pin,
                origin=origin,
                content=content,
            )
        if content is not None and move:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(src)
        return art

    def save_dir(
        self,
        path: str | os.PathLike[str],
        *,
        kind: str,
        labels: Mapping[str, Any] | None = None,
        metrics: Mapping[str, Any] | None = None,
        name: str | None = None,
        pin: bool = False,
        origin: Provenance = Provenance(),
    ) -> Artifact:
        """Store a directory: every file as a blob, plus a manifest blob that the artifact names.

        Symbolic links are not followed (they could point out of the directory); they are
        listed in the manifest's ``skipped`` entry.
        """
        kind, labels_, metrics_ = check_kind(kind), check_labels(labels), check_metrics(metrics)
        top = os.path.abspath(os.fspath(path))
        dname = safe_file_name(name) if name else safe_file_name(os.path.basename(top))
        with self.gate.shared():
            entries, skipped, total = self._blobs.put_tree(os.fspath(path))
            manifest = {"format": MANIFEST_FORMAT, "type": "dir", "entries": entries, "skipped": sorted(skipped)}
            # the manifest stays a blob file: a row's content is the artifact's bytes (size == its length)
            put = self._blobs.put_bytes(json.dumps(manifest, sort_keys=True).encode())
            return self.commit(
                put,
                kind=kind,
                labels=labels_,
                metrics=metrics_,
                name=dname,
                mime=DIR_MIME,
                pin=pin,
                origin=origin,
                size=total,
            )

    def save_bytes(
        self,
        data: bytes | bytearray | memoryview,
        *,
        kind: str = "bytes",
        labels: Mapping[str, Any] | None = None,
        metrics: Mapping[str, Any] | None = None,
        name: str | None = None,
        mime: str | None = None,
        pin: bool = False,
        origin: Provenance = Provenance(),
    ) -> Artifact:
        """Store bytes held in memory."""
        if not isinstance(data, bytes | bytearray | memoryview):
            raise InvalidInputError(f"save_bytes takes bytes, got {type(data).__name__}; use save_text or save_json")
        kind, labels_, metrics_ = check_kind(kind), check_labels(labels), check_metrics(metrics)
        fname = safe_file_name(name)
        # format 2, small: the row holds the bytes and no blob file is written, so there is nothing a
        # gc could free between blob and row and the gate is not taken (its two flock calls: the
        # save_json budget); a save the gate refuses is refused all the same
        inline = len(data) <= self.inline_max
        if inline and self.gate.refusal is not None:
            raise StoreWriteError(self.gate.refusal)
        with contextlib.nullcontext() if inline else self.gate.shared():
            put, content = self._put_bytes(data)
            return self.commit(
                put,
                kind=kind,
                labels=labels_,
                metrics=metrics_,
                name=fname,
                mime=mime or guess_mime(fname) or "application/octet-stream",
                pin=pin,
                origin=origin,
                content=content,
            )

    def save_json(self, obj: Any, *, kind: str = "json", name: str | None = None, **kw: Any) -> Artifact:
        """Store a JSON-encodable object (as UTF-8 JSON text)."""
        try:
            text = _encode(obj)  # NOTE: no indent: the C encoder (indent forces the pure-Python one)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(
                f"save_json cannot encode this object: {exc}; convert it to dict/list/str/number first"
            ) from None
        except RecursionError:
            raise InvalidInputError(
                "save_json cannot encode this object: it is nested too deeply (or refers to itself)"
            ) from None
        return self.save_bytes(text.encode(), kind=kind, name=name or f"{kind}.json", mime="application/json", **kw)

    def save_text(self, text: str, *, kind: str = "text", name: str | None = None, **kw: Any) -> Artifact:
        """Store a string (as UTF-8)."""
        if not isinstance(text, str):
            raise InvalidInputError(f"save_text takes a str, got {type(text).__name__}; use save_json or save_bytes")
        return self.save_bytes(
            text.encode(), kind=kind, name=name or f"{kind}.txt", mime="text/plain; charset=utf-8", **kw
        )

    def open_writer(
        self,
        *,
        kind: str,
        planned_ext: str | None = None,
        labels: Mapping[str, Any] | None = None,
        metrics: Mapping[str, Any] | None = None,
        name: str | None = None,
        pin: bool = False,
        origin: Provenance = Provenance(),
    ) -> ArtifactWriter:
        """A file-like writer whose bytes become an artifact on ``commit()``; see ``arts.writer``."""
        kind, labels_, metrics_ = check_kind(kind), check_labels(labels), check_metrics(metrics)
        if planned_ext is not None and (
            not isinstance(planned_ext, str) or "/" in planned_ext or "\x00" in planned_ext
        ):
            raise InvalidInputError(f"planned_ext must be a file extension such as '.png', got {planned_ext!r}")
        ext = planned_ext if not planned_ext or planned_ext.startswith(".") else "." + planned_ext
        fname = safe_file_name(name) or f"{kind}{ext or ''}"
        return ArtifactWriter(
            self,
            self._blobs.open_writer(),
            kind=kind,
            labels=labels_,
            metrics=metrics_,
            name=fname,
            pin=pin,
            origin=origin,
        )


def _small_file(src: str, limit: int) -> bytes | None:
    """The bytes of a regular file of at most ``limit`` bytes (format 2 inlines them), else None."""
    if limit < 0:
        return None
    try:
        st = os.stat(src)
        if not stat.S_ISREG(st.st_mode) or st.st_size > limit:
            return None
        with open(src, "rb") as f:
            data = f.read(limit + 1)
    except OSError:
        return None  # put_file says what is wrong with it
    return data if len(data) <= limit else None  # grew meanwhile: a blob file


class _NoGate:
    """The gate of an Ingest built without a store root (nothing else can collect its blobs)."""

    refusal: str | None = None

    def shared(self) -> contextlib.nullcontext[None]:
        return contextlib.nullcontext()


class ArtifactWriter:
    """File-like writer for a new artifact; ``commit()`` makes it visible, ``abort()`` drops it."""

    def __init__(self, ingest: Ingest, blob: BlobWriter, **meta: Any) -> None:
        self._ingest = ingest
        self._meta = meta
        self._blob = blob
        self.artifact: Artifact | None = None

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Append bytes to the artifact."""
        return self._blob.write(data)

    def writable(self) -> bool:
        return True

    def flush(self) -> None:
        """Nothing is buffered; present for file-like compatibility."""

    @property
    def size(self) -> int:
        return self._blob.size

    def commit(self) -> Artifact:
        """Store the bytes written and index the artifact."""
        meta = dict(self._meta)
        name = meta.pop("name")
        with self._ingest.gate.shared():
            content = self._blob.take_small(self._ingest.inline_max)  # format 2: into the row
            put = self._blob.commit() if content is None else PutResult(hash_bytes(content), len(content), True)
            self.artifact = self._ingest.commit(
                put, name=name, mime=guess_mime(name) or "application/octet-stream", content=content, **meta
            )
        return self.artifact

    def abort(self) -> None:
        """Discard everything written; nothing becomes visible."""
        self._blob.abort()


# Types the platform's table may not know, spelled as `save` of a variable spells them (core/serialize.py).
_MIME_BY_EXT = {".npy": "application/x-npy", ".parquet": "application/vnd.apache.parquet"}


def guess_mime(name: str | None) -> str | None:
    """The MIME type of a file name, or None.

    Example:
        >>> guess_mime("weights.npy"), guess_mime("notes.txt")
        ('application/x-npy', 'text/plain')
    """
    if not name:
        return None
    known = _MIME_BY_EXT.get(os.path.splitext(name)[1].lower())
    if known is not None:
        return known
    mime, _ = mimetypes.guess_type(name, strict=False)
    return mime
