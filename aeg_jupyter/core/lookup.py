"""Lookup: from an id, a short id, a prefix or a ``cas://`` URI to the artifact, its bytes, or a local path.

Reads go to the catalog for the artifact and to the blob store for its bytes; local paths are
made by the blob store (``files/<digest>/<name>``, read-only), never outside the store root. On a
format-2 store the blob store finds small content in its artifact row by URI when there is no blob
file (``BlobStore.inline``), so every read below works the same for inline content.
"""

from __future__ import annotations

import json
import mimetypes
from collections.abc import Callable
from typing import Any

from ..base.errors import AmbiguousIdError, CorruptionError, InvalidInputError, NotFoundError
from ..base.hashing import is_hex_digest
from ..base.jsoncodec import JsonTooDeepError, loads_limited
from ..base.models import RESERVED_KIND_PREFIX, URI_PREFIX, Artifact
from ..base.validate import safe_file_name
from ..storage.blobs import BlobStore
from .catalog import Catalog, order_key
from .ranking import IdIndex

ArtifactRef = Artifact | str


class Lookup:
    """Finds artifacts and opens them again.

    Example:
        >>> lookup.get("7X2KQ9PA").kind            # doctest: +SKIP
        'checkpoint'
        >>> lookup.local_file("7X2KQ9PA")           # doctest: +SKIP
        '/home/you/project/.aeg/files/ab12.../model.pt'
    """

    def __init__(self, catalog: Catalog, blobs: BlobStore) -> None:
        self._catalog = catalog
        self._blobs = blobs
        self._manifests: dict[str, list[dict[str, Any]]] = {}
        # called with each artifact read (load, local file / dir): a context's inputs of the cell
        self.read_listeners: list[Callable[[Artifact], None]] = []

    def _read(self, art: Artifact | None) -> None:
        if art is not None and self.read_listeners and not art.kind.startswith(RESERVED_KIND_PREFIX):
            for listener in self.read_listeners:
                listener(art)

    def get(self, ref: ArtifactRef) -> Artifact:
        """The artifact for an id, a unique id prefix, a short id (last 8 characters), or a CAS URI.

        Raises:
            NotFoundError: nothing matches.
            AmbiguousIdError: a prefix matches several artifacts (they are listed).
        """
        self._catalog.catch_up()
        if isinstance(ref, Artifact):
            ref = ref.artifact_id
        if not isinstance(ref, str) or not ref.strip():
            raise InvalidInputError(f"expected an artifact, an artifact id or a cas:// URI, got {ref!r}")
        ref = ref.strip()
        if ref.startswith(URI_PREFIX):
            self.digest_of_uri(ref)
            by_uri = getattr(self._catalog, "by_uri", None)
            if by_uri is not None:  # format 2: the uri column answers (DeltaCatalog.by_uri)
                found = by_uri(ref)
            else:  # format 1: the artifacts are objects in memory already
                found = max((a for a in self._catalog.live() if a.uri == ref), key=order_key, default=None)
            if found is None:
                raise NotFoundError(f"no artifact has the content {ref}")
            return found
        if "/" in ref or "\\" in ref or "\x00" in ref or ".." in ref:
            raise InvalidInputError(f"{ref!r} is not an artifact id; ids look like 01J8Z3... (see `list()`)")
        art = self._catalog.by_id.get(ref.upper())
        if art is not None:
            return art
        key = ref.upper()
        index = self._catalog.id_index()
        hits = [self._catalog.by_id[aid] for aid in index.with_prefix(key)]
        if not hits and len(key) >= IdIndex.TAIL:
            hits = [self._catalog.by_id[aid] for aid in index.with_suffix(key)]
        if len(hits) == 1:
            return hits[0]
        if not hits:
            if key in self._catalog.deleted:
                raise NotFoundError(f"artifact {ref} was deleted")
            raise NotFoundError(f"no artifact with id {ref!r}; list them with arts.list(scope='all') or `%aeg list`")
        shown = ", ".join(sorted(a.artifact_id for a in hits)[:10])
        raise AmbiguousIdError(
            f"id prefix {ref!r} matches {len(hits)} artifacts ({shown}{' ...' if len(hits) > 10 else ''}); type more characters"
        )

    def digest_of_uri(self, uri: str) -> str:
        digest = uri[len(URI_PREFIX) :]
        if not is_hex_digest(digest):
            raise InvalidInputError(
                f"{uri!r} is not a valid content address; it should be cas://blake3/<64 hex digits>"
            )
        return digest

    def resolve(self, ref: ArtifactRef) -> tuple[str, Artifact | None]:
        """(digest, artifact or None) for any reference; a bare URI need not have an artifact."""
        if isinstance(ref, str) and ref.strip().startswith(URI_PREFIX):
            digest = self.digest_of_uri(ref.strip())
            try:
                return digest, self.get(ref)
            except NotFoundError:
                if not self._blobs.available(digest):
                    raise
                return digest, None
        art = self.get(ref)
        return art.blob_id, art

    def load_bytes(self, ref: ArtifactRef, *, verify: bool = False) -> bytes:
        """The stored bytes of a file artifact (or URI); ``verify`` re-hashes them first."""
        digest, art = self.resolve(ref)
        if art is not None and art.is_dir:
            raise InvalidInputError(f"artifact {art.artifact_id} is a directory; use as_local_dir()")
        try:
            # a bare URI no artifact names may be a short file left by a killed writer: hash it
            data = self._blobs.read_bytes(digest, verify=verify or art is None)
        except CorruptionError:
            who = f"artifact {art.artifact_id}" if art else f"content {digest}"
            raise CorruptionError(
                f"{who} is corrupt: its bytes no longer match {digest}; run verify(repair=True)"
            ) from None
        if art is not None and len(data) != art.size:
            raise CorruptionError(_short(art, digest, len(data)))
        self._read(art)
        return data

    def load_text(self, ref: ArtifactRef, *, verify: bool = False) -> str:
        """The stored bytes decoded as UTF-8."""
        return self.load_bytes(ref, verify=verify).decode("utf-8")

    def load_json(self, ref: ArtifactRef, *, verify: bool = False) -> Any:
        """The stored bytes decoded as JSON."""
        data = self.load_bytes(ref, verify=verify)
        try:
            return loads_limited(data, max_depth=None)  # what save_json wrote, it reads back
        except JsonTooDeepError:
            raise InvalidInputError(
                "this artifact's JSON is nested too deeply for Python to decode (past its recursion limit); "
                "read it with load_text (or load_bytes) and parse it with a streaming parser"
            ) from None
        except ValueError as exc:
            raise InvalidInputError(f"this artifact is not JSON ({exc}); use load_text or load_bytes") from None

    def local_file(self, ref: ArtifactRef, *, verify: bool = False) -> str:
        """A read-only local path to the artifact's bytes, with its original file name.

        It is a copy of the blob (a reflink where the file system can): writing through it never
        changes the stored bytes, and ``verify`` re-checks the copy as well as the blob.
        """
        digest, art = self.resolve(ref)
        if art is not None and art.is_dir:
            raise InvalidInputError(f"artifact {art.artifact_id} is a directory; use as_local_dir()")
        if art is not None and (size := self._blobs.size(digest)) != art.size:
            raise CorruptionError(_short(art, digest, size))
        if (verify or art is None) and self._blobs.available(digest) and not self._blobs.check(digest):
            who = f"artifact {art.artifact_id}" if art else f"content {digest}"
            raise CorruptionError(f"{who} is corrupt: its bytes no longer match {digest}; run verify(repair=True)")
        fname = (art and safe_file_name(art.name)) or digest[:16] + (_guess_ext(art.mime) if art else "")
        path = self._blobs.materialize_file(digest, fname, verify=verify)
        self._read(art)
        return path

    def manifest(self, ref: ArtifactRef) -> list[dict[str, Any]]:
        """The entries of a directory artifact: ``[{"path", "blob", "size", "mode"}, ...]``."""
        digest, art = self.resolve(ref)
        if art is not None and not art.is_dir:
            raise InvalidInputError(f"artifact {art.artifact_id} is a file, not a directory; use as_local_file()")
        if digest not in self._manifests:
            try:
                doc = json.loads(self._blobs.read_bytes(digest))
                entries = doc["entries"]
            except (ValueError, KeyError, TypeError):
                raise CorruptionError(f"the manifest {digest} is not a directory manifest") from None
            self._manifests[digest] = entries
        return self._manifests[digest]

    def local_dir(self, ref: ArtifactRef) -> str:
        """A local directory holding a directory artifact's files (read-only copies, never the blobs)."""
        digest, art = self.resolve(ref)
        entries = self.manifest(ref)
        dname = (art and safe_file_name(art.name)) or digest[:16]
        path = self._blobs.materialize_dir(digest, dname, entries)
        self._read(art)
        return path


def _short(art: Artifact, digest: str, size: int) -> str:
    return (
        f"artifact {art.artifact_id} is damaged: its blob {digest} holds {size} bytes, the catalog says {art.size} "
        "(a write that was cut short, or a changed file); run verify(repair=True) and save it again"
    )


def _guess_ext(mime: str | None) -> str:
    if not mime:
        return ""
    return mimetypes.guess_extension(mime.split(";")[0].strip(), strict=False) or ""
