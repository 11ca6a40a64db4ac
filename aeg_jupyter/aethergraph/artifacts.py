"""AetherGraph's ``AsyncArtifactStore`` over this store (its index is :mod:`.index`).

:class:`AegArtifactStore` takes AetherGraph's saves (file, staged file, streamed writer, directory)
into our content-addressed store: every save is one artifact row right away, with AetherGraph's
run / graph / node ids as our scopes and its other fields as ``aethergraph.`` labels (:mod:`.codec`).
The URIs it hands out are ours (``cas://blake3/...``); AetherGraph's sha256 URIs resolve through the
``aethergraph.sha256`` alias label (:meth:`AegArtifactStore.resolve`).
"""

from __future__ import annotations

import contextlib
import errno
import fnmatch
import hashlib
import json
import os
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..base.errors import AegError, NotFoundError
from ..base.models import URI_PREFIX, Provenance
from ..base.models import Artifact as AegArtifact
from ..core.artifacts import ArtifactStore
from ..core.ingest import guess_mime
from ..storage.schemas2 import INLINE_MAX
from . import codec

_PLANNED_MAX = 4096  # planned staging paths remembered (a caller that plans and never saves is forgotten)
SMALL_FILE = 1 << 20  # files up to this size are read once (sha256 and blob from the same bytes)


class AetherGraphBackendError(AegError):
    """AetherGraph asked this store for something it cannot do with what it was given."""


class NotSupportedError(AetherGraphBackendError, NotImplementedError):
    """An AetherGraph storage method or option this backend does not serve (the message names it)."""


def not_supported(method: str, why: str) -> NotSupportedError:
    return NotSupportedError(f"{method}: {why} (aeg_jupyter's AetherGraph backend; see README)")


def artifact_cls() -> type:
    from aethergraph.contracts.services.artifacts import Artifact

    return Artifact


class AegArtifactStore:
    """AetherGraph's artifact store contract (``aethergraph/contracts/storage/artifact_store.py``)."""

    def __init__(self, artifacts: ArtifactStore, *, staging_dir: str) -> None:
        self._arts = artifacts
        self._staging = os.path.abspath(staging_dir)
        os.makedirs(self._staging, exist_ok=True)
        self._cls = artifact_cls()
        self.last_artifact: Any = None
        self._planned: dict[str, None] = {}  # staging paths handed out and not saved yet (see plan_staging_path)
        self._saved: dict[str, AegArtifact] = {}  # the newest saves, for the index's upsert that follows
        # format 2 keeps content of at most INLINE_MAX bytes in its row (the store sets blobs.inline)
        self._inline_max = INLINE_MAX if artifacts.blobs.inline is not None else -1
        self.nonfinite_saves = 0  # saves with a NaN/inf metric (the index's cache of "any NaN?" watches it)
        # staged files (ours alone) are removed off the save's path: an unlink costs ms on a busy disk
        self._reaper = ThreadPoolExecutor(max_workers=1, thread_name_prefix="aeg-aethergraph-staging")
        # the paths it has still to remove; one job drains them (a thread woken per save costs more)
        self._doomed: list[str] = []
        self._reaping = False
        self._doomed_lock = threading.Lock()

    def close(self) -> None:
        """Wait for the staged files being removed."""
        self._reaper.shutdown(wait=True)

    def _remove(self, path: str) -> None:
        if os.path.dirname(os.path.abspath(path)) == self._staging:
            with self._doomed_lock:
                self._doomed.append(path)
                if self._reaping:  # the running job takes it
                    return
                self._reaping = True
            try:
                self._reaper.submit(self._reap)
                return
            except RuntimeError:  # closed: remove them here
                self._reap()
                return
        _unlink(path)

    def _reap(self) -> None:
        while True:
            with self._doomed_lock:
                batch, self._doomed = self._doomed, []
                if not batch:
                    self._reaping = False
                    return
            for p in batch:
                _unlink(p)

    @property
    def base_uri(self) -> str:
        return URI_PREFIX.rstrip("/")

    @property
    def staging_dir(self) -> str:
        return self._staging

    @property
    def artifacts(self) -> ArtifactStore:
        """Our artifact store underneath."""
        return self._arts

    def just_saved(self, artifact_id: str) -> AegArtifact | None:
        """Our artifact of one of the newest saves (the facade upserts it right after the save)."""
        return self._saved.get(artifact_id)

    # -- staging -----------------------------------------------------------------------------
    async def plan_staging_path(self, planned_ext: str = "") -> str:
        """A new path in the staging folder, for the caller to write (every AetherGraph caller opens
        it with ``"wb"``/``write_text``). The file is not created here: a create is 0.3-0.5 ms on a
        busy disk and the caller's write creates it anyway; the name is 128 random bits, so no one
        else can take or plant it. A planned path saved unwritten is an empty file, as with
        AetherGraph's own store (which creates it with ``mkstemp``)."""
        ext = planned_ext or ""
        if os.sep in ext or (os.altsep and os.altsep in ext) or "\0" in ext:
            fd, p = tempfile.mkstemp(suffix=ext, dir=self._staging)  # as its own store does
            os.close(fd)
            return p
        p = os.path.join(self._staging, f"tmp{secrets.token_hex(16)}{ext}")
        planned = self._planned
        planned[p] = None
        if len(planned) > _PLANNED_MAX:
            planned.pop(next(iter(planned)))
        return p

    async def plan_staging_dir(self, suffix: str = "") -> str:
        return tempfile.mkdtemp(prefix="dir_", suffix=suffix, dir=self._staging)

    # -- saving ------------------------------------------------------------------------------
    def _commit_file(
        self,
        path: str,
        *,
        kind: str,
        run_id: str | None,
        graph_id: str | None,
        node_id: str | None,
        tool_name: str | None,
        tool_version: str | None,
        mime: str | None,
        suggested_uri: str | None,
        pin: bool,
        labels: Mapping[str, Any] | None,
        metrics: Mapping[str, Any] | None,
        preview_uri: str | None,
        tags: Any,
        consume: bool,
    ) -> Any:
        """Store ``path`` as one artifact; ``consume``: the file is removed (or becomes the blob)."""
        if self._planned.pop(path, 0) is None and not os.path.lexists(path):
            with open(path, "xb"):  # planned here and never written: AetherGraph's store saves it empty
                pass
        labels_ = dict(labels or {})
        norm_tags = normalize_tags(tags)
        if norm_tags:
            labels_["tags"] = _merge_tags(labels_.get("tags"), norm_tags)
        if "filename" not in labels_ and "name" not in labels_:
            base = os.path.basename((suggested_uri or path).rstrip("/" + os.sep))
            if base:
                labels_["filename"] = base
        name = str(labels_.get("filename") or labels_.get("name") or os.path.basename(path))
        save_kw: dict[str, Any] = {
            "kind": kind,
            "metrics": codec.split_metrics(metrics),
            "name": name,
            "pin": pin,
            "origin": Provenance(run_id, graph_id, node_id),
        }
        data, sha, link = _read_sha256(path)
        save_kw["labels"] = codec.encode_labels(
            labels_, sha256=sha, tool_name=tool_name, tool_version=tool_version, mime=mime,
            preview_uri=preview_uri, metrics=metrics,
        )  # fmt: skip
        if consume and not link and data is not None and len(data) <= self._inline_max:
            # format 2, small: the bytes ride in the row; the staged file goes off the save's path
            # (Ingest.save_file(move=True) would unlink it in the call: ~1.4 ms on a busy disk)
            mime_ = guess_mime(name) or "application/octet-stream"
            ours = self._arts.save_bytes(data, mime=mime_, **save_kw)
            self._remove(path)
        elif consume and not link:  # the file itself becomes the blob (a rename; no copy, no unlink)
            mime_ = guess_mime(name) or "application/octet-stream"
            ours = self._arts.save_file(path, mime=mime_, move=True, **save_kw)  # type: ignore[call-arg]
        else:
            if data is not None:  # the blob from the bytes read for the sha256
                ours = self._arts.save_bytes(data, mime=guess_mime(name), **save_kw)
            else:
                ours = self._arts.save_file(path, **save_kw)
            if consume:
                self._remove(path)
        self._saved[ours.artifact_id] = ours
        if len(self._saved) > 256:
            self._saved.pop(next(iter(self._saved)))
        if codec.METRICS_JSON in ours.labels:
            self.nonfinite_saves += 1
        a = codec.to_ag_artifact(ours, self._cls)
        if not mime:
            a.mime = None  # as AetherGraph's own store: a mime only when the caller gave one
        a.tags = norm_tags
        self.last_artifact = a
        return a

    async def save_file(
        self,
        *,
        path: str,
        kind: str,
        run_id: str,
        graph_id: str,
        node_id: str,
        tool_name: str,
        tool_version: str,
        mime: str | None = None,
        suggested_uri: str | None = None,
        pin: bool = False,
        labels: dict | None = None,
        metrics: dict | None = None,
        preview_uri: str | None = None,
        cleanup: bool = True,
        tags: list[str] | None = None,
    ) -> Any:
        """Store ``path``; like AetherGraph's own store it removes ``path`` unless ``cleanup=False``."""
        a = self._commit_file(
            path,
            kind=kind,
            run_id=run_id,
            graph_id=graph_id,
            node_id=node_id,
            tool_name=tool_name,
            tool_version=tool_version,
            mime=mime,
            suggested_uri=suggested_uri,
            pin=pin,
            labels=labels,
            metrics=metrics,
            preview_uri=preview_uri,
            tags=tags,
            consume=cleanup,
        )
        return a

    async def ingest_staged_file(self, *, staged_path: str, **kw: Any) -> Any:
        """Store a staged file and consume it: :meth:`save_file`'s keywords, ``cleanup`` always on."""
        kw.pop("cleanup", None)
        return await self.save_file(path=staged_path, cleanup=True, **kw)

    @contextlib.asynccontextmanager
    async def open_writer(
        self,
        *,
        kind: str,
        run_id: str,
        graph_id: str,
        node_id: str,
        tool_name: str,
        tool_version: str,
        planned_ext: str | None = None,
        pin: bool = False,
    ) -> AsyncIterator[Any]:
        staged = await self.plan_staging_path(planned_ext or "")
        try:
            with open(staged, "wb") as f:
                w = _Writer(staged, f)
                yield w
            w.artifact = await self.ingest_staged_file(
                staged_path=staged,
                kind=kind,
                run_id=run_id,
                graph_id=graph_id,
                node_id=node_id,
                tool_name=tool_name,
                tool_version=tool_version,
                pin=pin,
                labels=w._labels,
                metrics=w._metrics,
            )
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.remove(staged)

    async def ingest_directory(
        self,
        *,
        staged_dir: str,
        kind: str = "dataset",
        run_id: str,
        graph_id: str,
        node_id: str,
        tool_name: str,
        tool_version: str,
        include: list[str] | None = None,
        exclude: list[str] | None = None,
        index_children: bool = False,
        pin: bool = False,
        labels: dict | None = None,
        metrics: dict | None = None,
        suggested_uri: str | None = None,
        archive: bool = False,
        archive_name: str = "bundle.tar.gz",
        cleanup: bool = True,
        store: str | None = None,
        tags: list[str] | None = None,
    ) -> Any:
        """A directory as one artifact: every file a blob, plus a manifest (our ``save_dir``)."""
        if archive or store == "archive":
            raise not_supported(
                "AegArtifactStore.ingest_directory(archive=True)",
                "directories are stored file by file with a manifest; call it with archive=False "
                "and tar the directory yourself if you need an archive artifact",
            )
        if store not in (None, "manifest"):
            raise AetherGraphBackendError(f"ingest_directory: unknown store mode {store!r}; use 'manifest'")
        if index_children:
            raise not_supported("AegArtifactStore.ingest_directory(index_children=True)", "children are not indexed")
        if not os.path.isdir(staged_dir):
            raise AetherGraphBackendError(f"ingest_directory: not a directory: {staged_dir}; pass a staged directory")
        files = _walk(staged_dir, include, exclude)
        tree_sha = codec.sha256_of_tree([(rel, codec.sha256_of_file(p), os.path.getsize(p)) for rel, p in files])
        src, tmp = staged_dir, None
        if include or exclude:  # only the matching files go in: stage a copy of them
            tmp = tempfile.mkdtemp(prefix="sel_", dir=self._staging)
            for rel, p in files:
                dst = os.path.join(tmp, rel)
                os.makedirs(os.path.dirname(dst), exist_ok=True)
                shutil.copy2(p, dst)
            src = tmp
        labels_ = dict(labels or {})
        norm_tags = normalize_tags(tags)
        if norm_tags:
            labels_["tags"] = _merge_tags(labels_.get("tags"), norm_tags)
        if "filename" not in labels_ and "name" not in labels_:
            labels_["filename"] = os.path.basename((suggested_uri or archive_name).rstrip("/"))
        try:
            ours = self._arts.save_dir(
                src,
                kind=kind,
                labels=codec.encode_labels(
                    labels_,
                    sha256=tree_sha,
                    tool_name=tool_name,
                    tool_version=tool_version,
                    mime=codec.AG_DIR_MIME,
                    metrics=metrics,
                ),
                metrics=codec.split_metrics(metrics),
                name=os.path.basename(os.path.abspath(staged_dir)),
                pin=pin,
                origin=Provenance(run_id, graph_id, node_id),
            )
        finally:
            if tmp:
                shutil.rmtree(tmp, ignore_errors=True)
        if cleanup:
            shutil.rmtree(staged_dir, ignore_errors=True)
        a = codec.to_ag_artifact(ours, self._cls)
        self.last_artifact = a
        return a

    async def save_text(self, payload: str, suggested_uri: str | None = None) -> Any:
        return await self._save_payload(payload.encode("utf-8"), ".txt", "text", "text/plain", suggested_uri)

    async def save_json(self, payload: Any, suggested_uri: str | None = None) -> Any:
        data = json.dumps(payload, indent=2, ensure_ascii=False).encode("utf-8")
        return await self._save_payload(data, ".json", "json", "application/json", suggested_uri)

    async def _save_payload(self, data: bytes, ext: str, kind: str, mime: str, suggested_uri: str | None) -> Any:
        staged = await self.plan_staging_path(ext)
        with open(staged, "wb") as f:
            f.write(data)
        return await self.save_file(
            path=staged,
            kind=kind,
            run_id="",
            graph_id="",
            node_id="",
            tool_name="",
            tool_version="",
            mime=mime,
            suggested_uri=suggested_uri,
        )

    # -- loading -----------------------------------------------------------------------------
    def resolve(self, uri: str) -> str:
        """Our ``cas://blake3/`` URI for any URI AetherGraph holds: ours as it is, an AetherGraph
        sha256 URI (``file://.../cas/blobs/<sha>.ext``, ``.../cas/trees/<sha>``, ``sha256:<sha>``)
        through the ``aethergraph.sha256`` alias label."""
        if not isinstance(uri, str) or not uri:
            raise AetherGraphBackendError(f"expected an artifact URI, got {uri!r}")
        if uri.startswith(URI_PREFIX):
            return uri
        sha = codec.sha256_in_uri(uri)
        if sha is None:
            raise AetherGraphBackendError(
                f"{uri!r} is not a URI of this store; use the uri of an artifact it returned (cas://blake3/...)"
            )
        hits = self._arts.search(labels={codec.SHA256: sha}, limit=1)
        if not hits:
            raise NotFoundError(f"no artifact with AetherGraph sha256 {sha} in this store; was it saved here?")
        return hits[0].uri

    async def load_bytes(self, uri: str) -> bytes:
        return self._arts.load_bytes(self.resolve(uri))

    async def load_text(self, uri: str, *, encoding: str = "utf-8", errors: str = "strict") -> str:
        return (await self.load_bytes(uri)).decode(encoding, errors=errors)

    async def load_artifact_bytes(self, uri: str) -> bytes:
        return await self.load_bytes(uri)

    async def load_artifact_dir(self, uri: str) -> str:
        return self._arts.local_dir(self.resolve(uri))

    async def load_artifact(self, uri: str) -> Any:
        ref = self.resolve(uri)
        try:
            art = self._arts.get(ref)
        except NotFoundError:
            return self._arts.load_bytes(ref)
        return self._arts.local_dir(ref) if art.is_dir else self._arts.load_bytes(ref)

    async def cleanup_tmp(self, max_age_hours: int = 24) -> None:
        cutoff = time.time() - max_age_hours * 3600
        for entry in os.scandir(self._staging):
            with contextlib.suppress(OSError):
                if entry.stat(follow_symlinks=False).st_mtime < cutoff:
                    if entry.is_dir(follow_symlinks=False):
                        shutil.rmtree(entry.path, ignore_errors=True)
                    else:
                        os.remove(entry.path)


class _Writer:
    """What ``ArtifactFacade.writer`` yields: write bytes, add labels and metrics."""

    def __init__(self, path: str, f: Any) -> None:
        self.tmp_path = path
        self._f = f
        self._labels: dict[str, Any] = {}
        self._metrics: dict[str, Any] = {}
        self.artifact: Any = None

    def write(self, chunk: bytes) -> None:
        self._f.write(chunk)

    def add_labels(self, labels: dict[str, Any]) -> None:
        self._labels.update(labels or {})

    def add_metrics(self, metrics: dict[str, Any]) -> None:
        self._metrics.update(metrics or {})


def _read_sha256(path: str) -> tuple[bytes | None, str, bool]:
    """``(bytes or None, sha256 hex, is a symlink)`` of a file: a small one is read whole (its
    bytes can make the blob), a large one hashed in chunks."""
    link = False
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        if exc.errno != errno.ELOOP:
            raise
        link, fd = True, os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        if size <= SMALL_FILE:
            data = os.read(fd, size + 1)
            while len(data) < size and (more := os.read(fd, 1 << 20)):
                data += more
            return data, hashlib.sha256(data).hexdigest(), link
        h = hashlib.sha256()
        while chunk := os.read(fd, 1 << 20):
            h.update(chunk)
        return None, h.hexdigest(), link
    finally:
        os.close(fd)


def _unlink(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)


def normalize_tags(v: Any) -> list[str] | None:
    if not v:
        return None
    if isinstance(v, str):
        v = [v]
    if isinstance(v, list | tuple):
        out = [str(t).strip() for t in v if t is not None and str(t).strip()]
        return out or None
    return None


def _merge_tags(existing: Any, new: list[str]) -> list[str]:
    if isinstance(existing, list):
        return list(dict.fromkeys([str(t) for t in existing] + new))
    if isinstance(existing, str):
        return list(dict.fromkeys([existing, *new]))
    return new


def _walk(root: str, include: list[str] | None, exclude: list[str] | None) -> list[tuple[str, str]]:
    """(relative path, absolute path) of the regular files under ``root`` that the globs let through."""
    out = []
    for dirpath, dirs, files in os.walk(root):
        dirs.sort()
        for fname in sorted(files):
            p = os.path.join(dirpath, fname)
            if os.path.islink(p) or not os.path.isfile(p):
                continue
            rel = os.path.relpath(p, root).replace(os.sep, "/")
            if exclude and any(fnmatch.fnmatch(rel, pat) for pat in exclude):
                continue
            if include and not any(fnmatch.fnmatch(rel, pat) for pat in include):
                continue
            out.append((rel, p))
    return out


__all__ = ["AegArtifactStore", "AetherGraphBackendError", "NotSupportedError", "artifact_cls", "normalize_tags"]
