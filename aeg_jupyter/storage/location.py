"""Where a store lives: a local directory, or an ``s3://bucket/prefix`` root with local state per machine.

The one seam between a local root and an object-store root (issue 14). :class:`RemoteTables` says
where a table's Delta log and files are (a table URI and deltalake's ``storage_options``) and
mirrors the data files this machine reads into its local state (data files never change, so a
copy downloaded once stays good); :class:`RemoteBlobStore` is a :class:`~.blobs.BlobStore` whose
local ``blobs/`` directory is this machine's verified cache of the bucket's blobs: a save writes the
blob there as on a local root, then uploads it under its blake3 key (create-if-absent); a read of a
blob this machine does not have downloads it (verified) first. Everything else (spool, temp files,
``files/`` handed out by ``as_local_file``) is a local directory under ``AEG_CACHE``
(:meth:`~.objectstore.ObjectStore.local_state`), so the spool, its tailing and the recovery of dead
writers run unchanged, per machine.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

from ..base.errors import AegError, CorruptionError, NotFoundError
from ..base.hashing import CHUNK, hash_bytes, hasher, is_hex_digest
from .blobs import READ_ONLY, BlobStore, BlobWriter, PutResult
from .layout import Layout
from .objectstore import ObjectStore, _error_code
from .uploads import UploadQueue

DOWNLOAD_THREADS = 8  # data files fetched at once when a snapshot brings several new ones
UPLOAD_WAIT_SECONDS = 60.0  # a commit of artifact rows waits this long for their blobs while uploads progress


class RemoteTables:
    """The Delta tables of an ``s3://`` root: their URIs, ``storage_options``, and local copies of data files.

    Example:
        >>> remote = RemoteTables(objects)                       # doctest: +SKIP
        >>> remote.uri("events")                                 # doctest: +SKIP
        's3://team/aeg/tables/events'
    """

    def __init__(self, objects: ObjectStore) -> None:
        self.objects = objects

    def uri(self, table: str) -> str:
        return self.objects.table_uri(table)

    def storage_options(self) -> dict[str, str]:
        """deltalake's options (credentials inside: never print, log or store them)."""
        return self.objects.storage_options()

    def mirror(self, uri: str, local_dir: str, files: list[tuple[str, int | None]]) -> list[str]:
        """Download the data files ``(relative path, size)`` of the table at ``uri`` that ``local_dir`` lacks.

        A file lands under its relative path by a rename of a complete download (of the size its add
        action states), so a reader never sees half of one. Returns the relative paths the bucket does
        not have (404: a vacuum after the caller's snapshot, or damage; the caller tells which); the
        others are downloaded all the same.
        """
        prefix = uri.split("://", 1)[1].split("/", 1)[1] if "/" in uri.split("://", 1)[1] else ""
        missing = [(rel, size) for rel, size in files if not os.path.isfile(os.path.join(local_dir, rel))]
        if not missing:
            return []
        gone: list[str] = []

        def fetch(item: tuple[str, int | None]) -> None:
            rel, size = item
            try:
                self._download(f"{prefix}/{rel}" if prefix else rel, os.path.join(local_dir, rel), size)
            except FileNotFoundError:
                gone.append(rel)  # (list.append: one call under the GIL from the pool's threads)

        if len(missing) == 1:
            fetch(missing[0])
        else:
            with ThreadPoolExecutor(min(DOWNLOAD_THREADS, len(missing)), thread_name_prefix="aeg-fetch") as pool:
                list(pool.map(fetch, missing))
        return sorted(gone)

    def _download(self, key: str, dest: str, size: int | None) -> None:
        objects = self.objects
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(dest), prefix=".part-")
        try:
            got = 0
            with os.fdopen(fd, "wb") as out:
                try:
                    body = objects.client.get_object(Bucket=objects.bucket, Key=key)["Body"]
                    for chunk in body.iter_chunks(CHUNK):
                        out.write(chunk)
                        got += len(chunk)
                except Exception as exc:
                    if _error_code(exc)[1] == 404:
                        # a vacuum removed it after our snapshot: readers retry on the newest one
                        raise FileNotFoundError(dest) from None
                    raise objects.error(exc, "read a table file") from None
            if size is not None and got != size:
                raise CorruptionError(
                    f"a data file of {objects.location.url} came down with {got} of {size} bytes; open the store again"
                )
            os.replace(tmp, dest)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise


class RemoteBlobStore(BlobStore):
    """A :class:`~.blobs.BlobStore` over the bucket's ``blobs/``; the local ``blobs/`` is this machine's cache.

    Saves write the local blob as on a local root, then :meth:`_upload` stages it for the background
    upload (:class:`~.uploads.UploadQueue`: a hard link in ``uploads/`` of the local state, sent
    create-if-absent, retried while the server is unreachable; a blob another machine stored already
    is not sent again). Reads use the local copy (a blob still waiting for its upload reads offline),
    downloading (and verifying) it first when this machine has none. ``verify`` re-hashes the bucket's
    bytes (a blob not uploaded yet: the local copy's), ``gc`` lists and deletes the bucket's keys.
    """

    def __init__(self, layout: Layout, writer: str, objects: ObjectStore, *, fsync: bool = False) -> None:
        super().__init__(layout, writer, fsync=fsync)
        self.objects = objects
        self._sent = threading.local()  # the digest put_bytes just uploaded (put_file sends it once)
        # what a process that died left staged here starts uploading now; otherwise at the first save
        self.uploads = UploadQueue(layout.root, objects, start=None, keep_in_cache=False)

    # -- writes: local first, then the bucket -----------------------------------------------------
    def _upload(self, path: str, digest: str) -> None:
        """Stage the blob at ``path`` (local, complete, read-only, named by ``digest``) for the bucket.

        NOTE: the one call site of every upload. Acknowledged at local-disk speed (a hard link, fsynced);
        the queue's thread sends it (a big blob already in the bucket is not sent again); the rows that
        refer to it are committed only once it landed (:meth:`wait_uploaded`).
        """
        self.uploads.stage(path, digest, link=True)

    def wait_uploaded(self, before_ns: int, *, timeout: float = UPLOAD_WAIT_SECONDS) -> None:
        """Before a commit of artifact rows: wait until the blobs staged before ``before_ns`` landed.

        Raises:
            ObjectStoreError: they have not (the server is unreachable): the commit is retried later.
        """
        self.uploads.wait_landed(before_ns, timeout=timeout)

    def close(self, timeout: float = 0.0) -> bool:
        """Stop the upload thread (after up to ``timeout`` s of draining); what is left is uploaded at the next open."""
        return self.uploads.close(timeout)

    def put_bytes(self, data: bytes | bytearray | memoryview) -> PutResult:
        put = super().put_bytes(data)
        self._upload(self.path(put.digest), put.digest)
        self._sent.digest = put.digest
        return put

    def put_file(self, src: str, *, move: bool = False) -> PutResult:
        self._sent.digest = None
        put = super().put_file(src, move=move)
        if self._sent.digest != put.digest:  # (a small file went through put_bytes, which sent it)
            self._upload(self.path(put.digest), put.digest)
        return put

    def open_writer(self) -> BlobWriter:
        return _UploadingWriter(self)

    def touch(self, digest: str) -> bool:
        """True when the blob is stored (locally cached or in the bucket)."""
        return super().touch(digest) or self.objects.has_blob(digest)

    # -- reads: the local copy, fetched first if missing ------------------------------------------
    def _fetch(self, digest: str) -> bool:
        """Download the bucket's blob into the local ``blobs/`` (verified); False when the bucket has none."""
        path = self._checked(digest)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.tmp_dir if os.path.isdir(self.tmp_dir) else os.path.dirname(path))
        objects = self.objects
        try:
            h = hasher()
            with os.fdopen(fd, "wb") as out:
                try:
                    body = objects.client.get_object(Bucket=objects.bucket, Key=objects.blob_key(digest))["Body"]
                    for chunk in body.iter_chunks(CHUNK):
                        h.update(chunk)
                        out.write(chunk)
                except Exception as exc:
                    if _error_code(exc)[1] == 404:
                        return False
                    raise objects.error(exc, "read a blob") from None
            if h.hexdigest() != digest:
                raise CorruptionError(f"blob {digest} in {objects.location.url} does not match its digest; run verify")
            os.chmod(tmp, READ_ONLY)
            self._place(tmp, path)
            tmp = ""
            return True
        finally:
            if tmp:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)

    def _lstat(self, digest: str) -> os.stat_result:
        try:
            return super()._lstat(digest)
        except FileNotFoundError:
            if self._inline(digest) is not None or not self._fetch(digest):
                raise
        return super()._lstat(digest)

    def _open(self, digest: str) -> int:
        try:
            return super()._open(digest)
        except FileNotFoundError:
            if self._inline(digest) is not None or not self._fetch(digest):
                raise
        return super()._open(digest)

    def exists(self, digest: str) -> bool:
        return super().exists(digest) or self.objects.has_blob(digest)

    def size(self, digest: str) -> int:
        if super().exists(digest):
            return super().size(digest)
        data = self._inline(digest)
        if data is not None:
            return len(data)
        objects = self.objects
        try:
            return int(objects.client.head_object(Bucket=objects.bucket, Key=objects.blob_key(digest))["ContentLength"])
        except Exception as exc:
            if _error_code(exc)[1] == 404:
                raise NotFoundError(self._missing(digest)) from None
            raise objects.error(exc, "read a blob") from None

    def check(self, digest: str) -> bool:
        """Re-hash the bucket's bytes of the blob (inline content: its row's; a blob waiting for its
        upload: the local copy's); True when they match."""
        if self.uploads.staged_path(digest) is not None:
            return super().check(digest)
        inline = self._inline(digest)
        objects = self.objects
        try:
            body = objects.client.get_object(Bucket=objects.bucket, Key=objects.blob_key(digest))["Body"]
            h = hasher(threads=True)
            for chunk in body.iter_chunks(CHUNK):
                h.update(chunk)
            return h.hexdigest() == digest
        except Exception as exc:
            if _error_code(exc)[1] != 404:
                raise objects.error(exc, "read a blob") from None
        if inline is None:
            raise FileNotFoundError(self.path(digest))
        return hash_bytes(inline) == digest

    def iter_blobs(self) -> Iterator[tuple[str, int, float]]:
        """Every blob in the bucket as ``(digest, size, last modified)`` (this machine's staged blobs land first,
        up to a minute, so gc sees them). The listing starts after a mark on the server's clock
        (:meth:`~.objectstore.ObjectStore.server_mark`, up to a second's wait), which :meth:`delete` compares with."""
        with contextlib.suppress(AegError):
            self.uploads.drain(UPLOAD_WAIT_SECONDS)
        objects = self.objects
        self.__dict__["_mark"] = objects.server_mark()
        prefix = objects.location.key("blobs") + "/"
        try:
            pages = objects.client.get_paginator("list_objects_v2").paginate(Bucket=objects.bucket, Prefix=prefix)
            for page in pages:
                for item in page.get("Contents", []):
                    rest = item["Key"][len(prefix) :]
                    fan, _, name = rest.partition("/")
                    digest = fan + name
                    if len(fan) == 2 and is_hex_digest(digest):
                        mtime = item["LastModified"].timestamp()
                        self._listed_at()[digest] = mtime
                        yield digest, int(item["Size"]), mtime
        except Exception as exc:
            raise objects.error(exc, "list the blobs") from None

    def delete(self, digest: str) -> None:
        """Remove a blob from the bucket and from this machine's cache (gc only).

        A blob touched since gc's listing chose it (a save on another machine found it and is using it:
        ``ObjectStore.touch_key``) is kept: gc's sweep cannot see that machine's row before it is committed.
        "Since the listing" is judged on the server's clock alone: the blob's ``Last-Modified`` now is past
        the mark taken before the listing (:meth:`iter_blobs`), so a touch in the same second as the save
        and the listing counts too, and no machine's clock matters.
        """
        objects = self.objects
        listed = self._listed_at().pop(digest, None)
        if listed is not None:
            now = objects.last_modified(objects.blob_key(digest))
            mark: float | None = self.__dict__.get("_mark")
            if now is not None and (now > listed or (mark is not None and now > mark)):
                return
        objects.delete_blob(digest)
        super().delete(digest)

    def _listed_at(self) -> dict[str, float]:
        """digest -> ``Last-Modified`` as gc's last listing (:meth:`iter_blobs`) saw it."""
        listed: dict[str, float] | None = self.__dict__.get("_listed")
        if listed is None:
            listed = self.__dict__["_listed"] = {}
        return listed

    def move_aside(self, digest: str, aside: str) -> str:
        """A damaged blob: the bucket's copy is moved to ``corrupt/blobs/<digest>`` (a server-side copy, then
        a delete), the local cached copy dropped; returns the new key's URL."""
        objects = self.objects
        key = objects.blob_key(digest)
        dest = objects.location.key("corrupt", "blobs", digest)
        try:
            objects.client.copy_object(
                Bucket=objects.bucket, Key=dest, CopySource={"Bucket": objects.bucket, "Key": key}
            )
            objects.client.delete_object(Bucket=objects.bucket, Key=key)
        except Exception as exc:
            raise objects.error(exc, "move a damaged blob aside") from None
        with contextlib.suppress(FileNotFoundError):
            super().delete(digest)
        self.forget_materialized(digest)
        return f"s3://{objects.bucket}/{dest}"

    def _missing(self, digest: str) -> str:
        return (
            f"blob {digest} is missing from the store at {self.objects.location.url}; it may have been collected by gc"
        )


class _UploadingWriter(BlobWriter):
    """A :class:`~.blobs.BlobWriter` whose commit also uploads the blob."""

    _blobs: RemoteBlobStore

    def commit(self) -> PutResult:
        put = super().commit()
        self._blobs._upload(self._blobs.path(put.digest), put.digest)
        return put


__all__ = ["RemoteBlobStore", "RemoteTables"]
