"""Store roots on an S3-compatible object store (``s3://bucket/prefix``).

Which roots are URLs (:func:`resolve_root`): a root written ``scheme://...`` is never a local
directory (before this, ``connect("s3://bucket/x")`` made a folder named ``s3:``). ``s3://`` is the
one URL scheme a store may have; any other fails with an error naming the supported forms.

The object store (:class:`ObjectStore`), configured by the standard AWS variables only
(:class:`S3Settings`): blobs under their blake3 key, written create-if-absent (``If-None-Match: *``),
large files as a multipart upload (a file: hashed, then its parts sent straight to the digest's
key; a stream read once: hashed while its parts go to a staging key, then one server-side copy), downloads cached under ``AEG_CACHE``
(:func:`cache_dir`) and verified; :class:`Lease`, one maintenance runner at a time by conditional
writes. Every failure is one :class:`~..base.errors.ObjectStoreError` naming the bucket, after bounded
timeouts and retries; credentials never appear in a message or a ``repr``. boto3 is imported only
when an ``s3://`` root is used.
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import os
import re
import secrets
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from ..base.errors import (
    AegError,
    CorruptionError,
    InvalidInputError,
    NotFoundError,
    ObjectStoreError,
    StoreFormatError,
    scrub_secrets,
)
from ..base.hashing import CHUNK, hash_bytes, hasher, is_hex_digest
from .layout import META_NAME

S3_SCHEME = "s3"
SUPPORTED_FORMS = "a local directory (/path/to/store) or s3://bucket/prefix"
_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
# S3's rules for new buckets (lower case, digits, dots, hyphens; 3-63; starts and ends alphanumeric)
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


@dataclass(frozen=True)
class S3Location:
    """A bucket and a key prefix (no leading or trailing slash; may be empty).

    Example:
        >>> loc = S3Location.parse("s3://team-models/aeg/")
        >>> loc.bucket, loc.prefix, loc.url
        ('team-models', 'aeg', 's3://team-models/aeg')
        >>> loc.key("blobs", "ab", "cdef")
        'aeg/blobs/ab/cdef'
    """

    bucket: str
    prefix: str = ""

    @classmethod
    def parse(cls, url: str) -> S3Location:
        """Parse ``s3://bucket[/prefix]``; raises :class:`InvalidInputError` naming what is wrong."""
        m = _URL.match(url)
        if m is None or m.group(1).lower() != S3_SCHEME:
            raise InvalidInputError(f"{url!r} is not an s3:// URL; a store root is {SUPPORTED_FORMS}")
        rest = url[m.end() :]
        bucket, _, prefix = rest.partition("/")
        if not _BUCKET.match(bucket) or ".." in bucket:
            raise InvalidInputError(
                f"{url!r}: {bucket!r} is not a bucket name (3-63 lower-case letters, digits, dots or hyphens); "
                "write the root as s3://bucket/prefix"
            )
        if "?" in prefix or "#" in prefix or "\\" in prefix:
            raise InvalidInputError(f"{url!r}: a store prefix has no '?', '#' or '\\'; write it as s3://bucket/prefix")
        parts = [p for p in prefix.split("/") if p]
        if any(p in (".", "..") for p in parts):
            raise InvalidInputError(
                f"{url!r}: '.' and '..' are not allowed in a store prefix; write it as s3://bucket/prefix"
            )
        return cls(bucket, "/".join(parts))

    @property
    def url(self) -> str:
        """The canonical ``s3://bucket/prefix`` (the root's name in messages and in ``Store.root``)."""
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    def key(self, *parts: str) -> str:
        """The object key of ``parts`` under the prefix."""
        return "/".join((self.prefix, *parts) if self.prefix else parts)

    def __str__(self) -> str:
        return self.url


def is_url(root: str | os.PathLike[str]) -> bool:
    """True when ``root`` is written as a URL (``scheme://...``), never a local path.

    Example:
        >>> is_url("s3://bucket/x"), is_url("gs://b"), is_url("./s3/x"), is_url("/tmp/store")
        (True, True, False, False)
    """
    return isinstance(root, str) and _URL.match(root) is not None


def resolve_root(root: str | os.PathLike[str]) -> str | S3Location:
    """What a store root names: an absolute local directory, or an :class:`S3Location`.

    Raises:
        InvalidInputError: a URL whose scheme is not ``s3://`` (``gs://``, ``http://``, ``file://``, ...),
            or an ``s3://`` URL that is not ``s3://bucket/prefix``.

    Example:
        >>> resolve_root("s3://bucket/team")
        S3Location(bucket='bucket', prefix='team')
        >>> resolve_root("/tmp/store")
        '/tmp/store'
    """
    if isinstance(root, S3Location):
        return root
    if is_url(root):
        text = os.fspath(root)
        scheme = text.split("://", 1)[0]
        if scheme.lower() != S3_SCHEME:
            hint = " (give the path itself)" if scheme.lower() == "file" else ""
            raise InvalidInputError(
                f"store root {text!r}: {scheme}:// is not a supported store location{hint}; "
                f"a store root is {SUPPORTED_FORMS}"
            )
        return S3Location.parse(text)
    return os.path.abspath(os.path.expanduser(os.fspath(root)))


def root_name(root: str | os.PathLike[str]) -> str:
    """The canonical name of a root (``Store.root``): the absolute path, or ``s3://bucket/prefix``."""
    where = resolve_root(root)
    return where.url if isinstance(where, S3Location) else where


def local_root(root: str | os.PathLike[str]) -> str:
    """The absolute directory of a local root; a URL root raises an error that names the supported forms.

    Raises:
        InvalidInputError: ``root`` is a URL that is not ``s3://bucket/prefix``.
        StoreFormatError: ``root`` is an ``s3://`` URL: this version opens only local stores.
    """
    where = resolve_root(root)
    if isinstance(where, S3Location):
        raise StoreFormatError(
            f"store root {where.url!r}: s3:// roots cannot be opened by this version yet; "
            "use a local directory (/path/to/store) for now"
        )
    return where


# -- the object store ------------------------------------------------------------------------------
MULTIPART_MIN = 16 << 20  # files from 16 MiB on go up in parts, hashed as they are read
PART_SIZE = 16 << 20  # grows for huge files so a file stays within S3's 10,000 parts
MAX_PARTS = 9_000
UPLOAD_THREADS = 8  # parts in flight at once (memory: this many parts)
COPY_MAX = 5 << 30  # one CopyObject copies at most 5 GiB; bigger staged files are copied in parts
CONNECT_TIMEOUT = 3.0  # seconds; with MAX_ATTEMPTS a dead endpoint fails in seconds, never hangs
READ_TIMEOUT = 30.0
MAX_ATTEMPTS = 3
LEASE_SECONDS = 60.0


def cache_dir(environ: Mapping[str, str] | None = None) -> str:
    """This machine's local state for object-store roots: ``$AEG_CACHE``, else the platform's cache directory.

    Example:
        >>> cache_dir({"AEG_CACHE": "/scratch/aeg"})
        '/scratch/aeg'
    """
    env = os.environ if environ is None else environ
    if env.get("AEG_CACHE"):
        return os.path.abspath(os.path.expanduser(env["AEG_CACHE"]))
    if sys.platform == "darwin":
        base = os.path.expanduser("~/Library/Caches")
    elif os.name == "nt":
        base = env.get("LOCALAPPDATA") or os.path.expanduser("~\\AppData\\Local")
    else:
        base = env.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return os.path.join(base, "aeg_jupyter")


@dataclass(frozen=True)
class S3Settings:
    """How to reach the object store, from the standard AWS variables only.

    ``AWS_ENDPOINT_URL`` (or ``AWS_ENDPOINT_URL_S3``; unset: AWS itself), ``AWS_REGION`` (or
    ``AWS_DEFAULT_REGION``), ``AWS_ACCESS_KEY_ID`` and ``AWS_SECRET_ACCESS_KEY`` (unset: boto3's usual
    chain: profile, SSO, instance role). A plain ``http://`` endpoint works as is. The keys never
    appear in ``repr``, messages or logs.

    Example:
        >>> s = S3Settings.from_env({"AWS_ENDPOINT_URL": "http://127.0.0.1:8333", "AWS_SECRET_ACCESS_KEY": "x"})
        >>> s
        S3Settings(endpoint='http://127.0.0.1:8333', region='us-east-1')
        >>> s.allow_http
        True
    """

    endpoint: str | None = None
    region: str = "us-east-1"
    access_key: str | None = field(default=None, repr=False)
    secret_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> S3Settings:
        env = os.environ if environ is None else environ
        return cls(
            endpoint=env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or None,
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
            access_key=env.get("AWS_ACCESS_KEY_ID") or None,
            secret_key=env.get("AWS_SECRET_ACCESS_KEY") or None,
            session_token=env.get("AWS_SESSION_TOKEN") or None,
        )

    @property
    def allow_http(self) -> bool:
        """A plain-http endpoint (MinIO, SeaweedFS on a LAN): deltalake needs ``AWS_ALLOW_HTTP`` for it."""
        return bool(self.endpoint) and self.endpoint.lower().startswith("http://")  # type: ignore[union-attr]

    @property
    def where(self) -> str:
        """The endpoint as messages name it."""
        return self.endpoint or f"AWS S3 ({self.region})"

    def storage_options(self) -> dict[str, str]:
        """deltalake's ``storage_options`` for this store (credentials included: never print this)."""
        # commits are create-if-absent PUTs of the log's next entry (If-None-Match, which SeaweedFS, MinIO and
        # AWS honour): never AWS_S3_ALLOW_UNSAFE_RENAME, no DynamoDB lock. Measured on SeaweedFS: 6 processes x 5
        # appends to one table, 30/30 commits and rows (so were deltalake 1.6.6's defaults; this pins it)
        opts = {"AWS_REGION": self.region, "aws_conditional_put": "etag"}
        if self.endpoint:
            opts["AWS_ENDPOINT_URL"] = self.endpoint
        if self.allow_http:
            opts["AWS_ALLOW_HTTP"] = "true"
        if self.access_key:
            opts["AWS_ACCESS_KEY_ID"] = self.access_key
        if self.secret_key:
            opts["AWS_SECRET_ACCESS_KEY"] = self.secret_key
        if self.session_token:
            opts["AWS_SESSION_TOKEN"] = self.session_token
        return opts

    def scrub(self, text: str) -> str:
        """``text`` with every credential replaced by ``***`` (for messages made from server replies)."""
        return scrub_secrets(text, (self.secret_key, self.session_token, self.access_key))


def _etag(value: str) -> str:
    """An ETag in one spelling (SeaweedFS's CopyObject returns it unquoted, PutObject quoted)."""
    return value.strip().strip('"')


class ObjectStore:
    """Blobs of one ``s3://bucket/prefix`` root: ``blobs/ab/cdef...`` named by their blake3 digest.

    Writes are create-if-absent (``If-None-Match: *``; a 412 means the same content is already there,
    which is fine), so identical saves from two machines are stored once. Buckets are never created.
    Downloads land in the local cache (:func:`cache_dir`) and are verified before they are handed out.

    Example:
        >>> objects = ObjectStore(S3Location.parse("s3://team/aeg"))      # doctest: +SKIP
        >>> objects.check()                                               # doctest: +SKIP
        >>> digest, size = objects.put_file("model.pt")                   # doctest: +SKIP
        >>> objects.local_file(digest)                                    # doctest: +SKIP
        '/home/me/.cache/aeg_jupyter/blobs/3f/9a...'
    """

    def __init__(
        self,
        location: S3Location,
        *,
        settings: S3Settings | None = None,
        cache: str | None = None,
        connect_timeout: float = CONNECT_TIMEOUT,
        read_timeout: float = READ_TIMEOUT,
        max_attempts: int = MAX_ATTEMPTS,
    ) -> None:
        self.location = location
        self.bucket = location.bucket
        self.settings = settings or S3Settings.from_env()
        self.cache = cache or cache_dir()
        self._timeouts = (connect_timeout, read_timeout, max_attempts)
        self._client: Any = None
        self._client_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"ObjectStore({self.location.url!r}, endpoint={self.settings.where!r})"

    # -- the client and its errors -----------------------------------------------------------------
    @property
    def client(self) -> Any:
        """The boto3 client (built on first use; boto3 is imported only for s3:// roots)."""
        if self._client is None:
            with self._client_lock:
                if self._client is None:
                    self._client = self._make_client()
        return self._client

    def _make_client(self) -> Any:
        try:
            import boto3
            from botocore.config import Config
        except ImportError:
            raise ObjectStoreError(
                f"{self.location.url}: s3:// roots need boto3; pip install 'aeg-jupyter[s3]'"
            ) from None
        connect, read, attempts = self._timeouts
        config = Config(
            connect_timeout=connect,
            read_timeout=read,
            retries={"max_attempts": attempts, "mode": "standard"},
            max_pool_connections=UPLOAD_THREADS * 2,
            # a custom endpoint (MinIO, SeaweedFS) is addressed by path; AWS picks its own style
            s3={"addressing_style": "path"} if self.settings.endpoint else {},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        s = self.settings
        return boto3.session.Session().client(
            "s3",
            endpoint_url=s.endpoint,
            region_name=s.region,
            aws_access_key_id=s.access_key,
            aws_secret_access_key=s.secret_key,
            aws_session_token=s.session_token,
            config=config,
        )

    def error(self, exc: BaseException, doing: str) -> ObjectStoreError:
        """One clear :class:`ObjectStoreError` for a failed call: it names the bucket and the fix, never a key."""
        code, status = _error_code(exc)
        where = f"bucket {self.bucket!r} at {self.settings.where}"
        if code in ("NoSuchBucket",) or (status == 404 and doing == "open"):
            text = f"{where} does not exist; create the bucket first (aeg_jupyter never creates buckets) or fix the URL"
        elif code in ("NoCredentialsError", "PartialCredentialsError"):
            text = (
                f"no credentials for {where}; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
                "(or AWS_PROFILE), then retry"
            )
        elif code in _AUTH_CODES or status in (401, 403):
            text = (
                f"{where} refused the credentials ({code or status}); check AWS_ACCESS_KEY_ID, "
                "AWS_SECRET_ACCESS_KEY and the bucket's permissions"
            )
        elif code in _UNREACHABLE or isinstance(exc, OSError):
            text = f"cannot reach {where} ({type(exc).__name__}); check AWS_ENDPOINT_URL and the network, then retry"
        else:
            detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            text = f"{where}: {doing} failed: {detail}; retry, or check the server's logs"
        return ObjectStoreError(self.settings.scrub(text))

    def check(self) -> None:
        """Fail fast with one clear error when the bucket is missing, the keys are refused or nobody answers."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except Exception as exc:
            raise self.error(exc, "open") from None

    # -- keys -----------------------------------------------------------------------------------------
    def table_uri(self, name: str) -> str:
        """The ``s3://`` URI of a Delta table of this root (open it with :meth:`storage_options`).

        Example:
            >>> ObjectStore(S3Location("team", "aeg"), settings=S3Settings()).table_uri("events")
            's3://team/aeg/tables/events'
        """
        return f"s3://{self.bucket}/{self.location.key('tables', name)}"

    def storage_options(self) -> dict[str, str]:
        """deltalake's ``storage_options`` for this root (credentials inside: never print or store them)."""
        return self.settings.storage_options()

    def blob_key(self, digest: str) -> str:
        """``<prefix>/blobs/ab/cdef...`` (the same split as a local root's ``blobs/``)."""
        if not is_hex_digest(digest):
            raise InvalidInputError(f"{digest!r} is not a blake3 content address; use a 'cas://blake3/<64 hex>' URI")
        return self.location.key("blobs", digest[:2], digest[2:])

    def _staging_key(self) -> str:
        return self.location.key("tmp", f"{os.getpid()}-{secrets.token_hex(8)}")

    # -- writes -----------------------------------------------------------------------------------------
    def put_bytes(self, data: bytes | memoryview, digest: str | None = None) -> str:
        """Store ``data`` under its digest unless it is already there; return the digest."""
        digest = digest or hash_bytes(data)
        key = self.blob_key(digest)
        for _attempt in range(3):
            try:
                self.client.put_object(Bucket=self.bucket, Key=key, Body=bytes(data), IfNoneMatch="*")
                return digest
            except Exception as exc:
                if not _already_there(exc):
                    raise self.error(exc, "upload") from None
            if self.touch_key(key):  # there already: a save is using it now (gc's grace, see touch_key)
                return digest
        return digest  # (collected and stored again by others twice in a row: it is there now)

    def touch_key(self, key: str) -> bool:
        """Refresh an object's ``Last-Modified`` (a server-side copy onto itself; its bytes do not move);
        False when there is no such object (collected meanwhile: the caller stores it again).

        NOTE: gc's safety across machines: a save that finds its blob already in the bucket touches it,
        so a gc on another machine, which lets an unreferenced blob go only once it is older than the
        grace period (``GC_GRACE_SECONDS``) and looks again just before the delete
        (``RemoteBlobStore.delete``), keeps it until that save's row is committed and seen.
        """
        try:
            self.client.copy_object(
                Bucket=self.bucket, Key=key, CopySource={"Bucket": self.bucket, "Key": key},
                MetadataDirective="REPLACE", Metadata={"aeg-touched": "1"},
            )  # fmt: skip
        except Exception as exc:
            if _error_code(exc)[1] == 404 or _error_code(exc)[0] in ("NoSuchKey", "404"):
                return False
            raise self.error(exc, "refresh a blob") from None
        return True

    def server_mark(self, name: str = "gc") -> float:
        """A moment on the server's own clock that has passed: the ``Last-Modified`` (whole seconds) of a
        marker object written now (``<prefix>/marks/<name>``), returned once the server's ``Date`` is in
        a later second. Whatever the server stamps from now on is later than the mark, whatever the
        clocks of the machines and however coarse the server's ``Last-Modified``.

        NOTE: gc across machines (``RemoteBlobStore.iter_blobs`` / ``delete``): a blob touched after gc's
        listing has a ``Last-Modified`` past the mark, even when the touch came in the same second as the
        blob's save and the listing (comparing with the listed ``Last-Modified`` alone missed that).
        """
        key = self.location.key("marks", name)
        try:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=b"{}")
            head = self.client.head_object(Bucket=self.bucket, Key=key)
            mark = float(head["LastModified"].timestamp())
            deadline = time.monotonic() + 5.0
            while _server_time(head) < mark + 1 and time.monotonic() < deadline:
                time.sleep(0.1)
                head = self.client.head_object(Bucket=self.bucket, Key=key)
        except Exception as exc:
            raise self.error(exc, "mark the server's time") from None
        return mark

    def last_modified(self, key: str) -> float | None:
        """An object's ``Last-Modified`` (seconds since the epoch), or None when there is none."""
        try:
            return float(self.client.head_object(Bucket=self.bucket, Key=key)["LastModified"].timestamp())
        except Exception as exc:
            if _error_code(exc)[1] == 404:
                return None
            raise self.error(exc, "read") from None

    def put_file(self, path: str | os.PathLike[str]) -> tuple[str, int]:
        """Store a file's bytes under their digest; return ``(digest, size)``.

        A file under :data:`MULTIPART_MIN` is read, hashed and put at once. A bigger one is hashed
        (all cores), and if its digest is not in the bucket yet it goes up as a multipart upload
        straight to the digest's key (parts read with ``pread`` on :data:`UPLOAD_THREADS` threads,
        completed with ``If-None-Match: *``). NOTE: that reads the file twice, the second time
        mostly from the page cache; measured faster than one read to a staging key plus the
        server-side copy (:meth:`put_stream`, ``bench/s3_bench.py``). A file that changes between
        the two reads (size, mtime or ctime) is refused, never stored under a wrong digest.
        """
        with open(path, "rb") as f:
            before = os.fstat(f.fileno())
            size = before.st_size
            if size < MULTIPART_MIN:
                data = f.read()
                return self.put_bytes(data), len(data)
            h = hasher(threads=True)
            while chunk := f.read(PART_SIZE):
                h.update(chunk)
            digest = h.hexdigest()
            key = self.blob_key(digest)
            sent = False
            if not self.exists_key(key):  # identical content already there: nothing to send
                sent = self._upload_parts(f.fileno(), size, key)
            if not sent and not self.touch_key(key):  # (in use again: see touch_key)
                sent = self._upload_parts(f.fileno(), size, key)  # collected just now: send it after all
            after = os.fstat(f.fileno())
        if (after.st_size, after.st_mtime_ns, after.st_ctime_ns) != (size, before.st_mtime_ns, before.st_ctime_ns):
            if sent:  # what went up may not be the bytes that were hashed (never delete a blob we did not send)
                with contextlib.suppress(Exception):
                    self.client.delete_object(Bucket=self.bucket, Key=key)
            raise InvalidInputError(f"{os.fspath(path)!r} changed while it was being saved; save it again")
        return digest, size

    def _upload_parts(self, fd: int, size: int, key: str) -> bool:
        """Send the file's parts to ``key``; True if this call created it (False: it was there first)."""
        part_size = max(PART_SIZE, -(-size // MAX_PARTS))
        client = self.client
        try:
            upload_id = client.create_multipart_upload(Bucket=self.bucket, Key=key)["UploadId"]
        except Exception as exc:
            raise self.error(exc, "upload") from None

        def send(number: int) -> dict[str, Any]:
            start = (number - 1) * part_size
            chunk = os.pread(fd, min(part_size, size - start), start)
            r = client.upload_part(Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=chunk)
            return {"PartNumber": number, "ETag": r["ETag"]}

        try:
            with ThreadPoolExecutor(UPLOAD_THREADS, thread_name_prefix="aeg-upload") as pool:
                done = list(pool.map(send, range(1, -(-size // part_size) + 1)))
            client.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": done}, IfNoneMatch="*"
            )
        except Exception as exc:
            with contextlib.suppress(Exception):
                client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            if not _already_there(exc):  # 412: another machine completed the same content first
                raise self.error(exc, "upload") from None
            return False
        return True

    def put_stream(self, f: BinaryIO, size: int) -> tuple[str, int]:
        """Upload what ``f`` reads (about ``size`` bytes: it sets the part size), reading it once: each chunk
        is hashed and sent as it is read, to a staging key (the digest is known only at the end), then
        copied server-side to the digest's key (create-if-absent) and the staging object removed. For
        streams that cannot be read twice; returns ``(digest, bytes read)``."""
        part_size = max(PART_SIZE, -(-size // MAX_PARTS))
        staging = self._staging_key()
        client = self.client
        try:
            upload_id = client.create_multipart_upload(Bucket=self.bucket, Key=staging)["UploadId"]
        except Exception as exc:
            raise self.error(exc, "upload") from None
        h = hasher()
        total = 0
        parts: list[Future[dict[str, Any]]] = []

        def send(number: int, chunk: bytes) -> dict[str, Any]:
            r = client.upload_part(Bucket=self.bucket, Key=staging, UploadId=upload_id, PartNumber=number, Body=chunk)
            return {"PartNumber": number, "ETag": r["ETag"]}

        try:
            with ThreadPoolExecutor(UPLOAD_THREADS, thread_name_prefix="aeg-upload") as pool:
                slots = threading.BoundedSemaphore(UPLOAD_THREADS + 1)  # bounds the memory of parts in flight
                number = 0
                while True:
                    chunk = _read_full(f, part_size)  # every part but the last must be whole (S3: >= 5 MiB)
                    if not chunk and number:
                        break  # (an empty stream is one empty part)
                    number += 1
                    h.update(chunk)
                    total += len(chunk)
                    slots.acquire()
                    fut = pool.submit(send, number, chunk)
                    fut.add_done_callback(lambda _f: slots.release())
                    parts.append(fut)
                    if any(p.done() and p.exception() for p in parts[-UPLOAD_THREADS:]):
                        break
                    if not chunk:
                        break
                done = [p.result() for p in parts]
            client.complete_multipart_upload(
                Bucket=self.bucket, Key=staging, UploadId=upload_id, MultipartUpload={"Parts": done}
            )
        except Exception as exc:
            with contextlib.suppress(Exception):
                client.abort_multipart_upload(Bucket=self.bucket, Key=staging, UploadId=upload_id)
            raise self.error(exc, "upload") from None
        digest = h.hexdigest()
        try:
            self._copy_if_absent(staging, self.blob_key(digest), total)
        finally:
            with contextlib.suppress(Exception):
                client.delete_object(Bucket=self.bucket, Key=staging)
        return digest, total

    def _copy_if_absent(self, source: str, target: str, size: int) -> None:
        """Copy ``source`` to ``target`` unless ``target`` is there; when it is, touch it (gc's grace, see
        :meth:`touch_key`), and copy after all if it was collected in between."""
        for _attempt in range(3):
            if self._copy_once(source, target, size) or self.touch_key(target):
                return

    def _copy_once(self, source: str, target: str, size: int) -> bool:
        """True if this call created ``target``; False if it was there already."""
        client = self.client
        src = {"Bucket": self.bucket, "Key": source}
        try:
            if size <= COPY_MAX:
                client.copy_object(Bucket=self.bucket, Key=target, CopySource=src, IfNoneMatch="*")
                return True
            if self.exists_key(target):  # NOTE: parts copied, then completed only if still absent
                return False
            upload_id = client.create_multipart_upload(Bucket=self.bucket, Key=target)["UploadId"]
            try:
                done = []
                for i, start in enumerate(range(0, size, COPY_MAX)):
                    end = min(size, start + COPY_MAX) - 1
                    r = client.upload_part_copy(
                        Bucket=self.bucket, Key=target, UploadId=upload_id, PartNumber=i + 1,
                        CopySource=src, CopySourceRange=f"bytes={start}-{end}",
                    )  # fmt: skip
                    done.append({"PartNumber": i + 1, "ETag": r["CopyPartResult"]["ETag"]})
                client.complete_multipart_upload(
                    Bucket=self.bucket, Key=target, UploadId=upload_id, MultipartUpload={"Parts": done},
                    IfNoneMatch="*",
                )  # fmt: skip
            except Exception:
                with contextlib.suppress(Exception):
                    client.abort_multipart_upload(Bucket=self.bucket, Key=target, UploadId=upload_id)
                raise
        except Exception as exc:
            if not _already_there(exc):
                raise self.error(exc, "upload") from None
            return False
        return True

    def delete_blob(self, digest: str) -> None:
        """Remove a blob (gc); a blob already gone is fine."""
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self.blob_key(digest))
        except Exception as exc:
            raise self.error(exc, "delete") from None

    # -- reads ------------------------------------------------------------------------------------------
    def exists_key(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
        except Exception as exc:
            if _error_code(exc)[1] == 404:
                return False
            raise self.error(exc, "read") from None
        return True

    def has_blob(self, digest: str) -> bool:
        """True when the blob is in the bucket."""
        return self.exists_key(self.blob_key(digest))

    def get_bytes(self, digest: str) -> bytes:
        """A blob's bytes, verified against its digest."""
        try:
            data = self.client.get_object(Bucket=self.bucket, Key=self.blob_key(digest))["Body"].read()
        except Exception as exc:
            raise self._read_error(exc, digest) from None
        if hash_bytes(data) != digest:
            raise CorruptionError(f"blob {digest} in {self.location.url} does not match its digest; run verify")
        return data

    def local_file(self, digest: str) -> str:
        """A verified read-only copy of the blob in the local cache (downloaded once per machine)."""
        self.blob_key(digest)  # checks the digest
        path = os.path.join(self.cache, "blobs", digest[:2], digest[2:])
        if os.path.isfile(path) and not os.path.islink(path):
            return path
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".part-")
        try:
            h = hasher()
            with os.fdopen(fd, "wb") as out:
                try:
                    body = self.client.get_object(Bucket=self.bucket, Key=self.blob_key(digest))["Body"]
                    for chunk in body.iter_chunks(CHUNK):
                        h.update(chunk)
                        out.write(chunk)
                except Exception as exc:
                    raise self._read_error(exc, digest) from None
            if h.hexdigest() != digest:
                raise CorruptionError(f"blob {digest} in {self.location.url} does not match its digest; run verify")
            os.chmod(tmp, 0o444)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return path

    def _read_error(self, exc: BaseException, digest: str) -> AegError:
        if _error_code(exc)[0] in ("NoSuchKey", "404") or _error_code(exc)[1] == 404:
            return NotFoundError(f"blob {digest} is not in {self.location.url}; it may have been collected (gc)")
        return self.error(exc, "read")

    # -- the root itself -------------------------------------------------------------------------------
    def ensure_marker(self, format: int = 2) -> dict[str, Any]:
        """The root's ``aeg-store.json``, written create-if-absent (two machines creating a root at once
        agree on one marker); returns the marker that is there. Checks the bucket first (one clear error).

        Raises:
            ObjectStoreError: the bucket is missing, the keys are refused, nobody answers.
            StoreFormatError: the prefix holds a marker that is not a store's.
        """
        self.check()
        body = json.dumps({"format": format, "hash": "blake3", "created_by": "aeg_jupyter"}).encode()
        key = self.location.key(META_NAME)
        try:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=body, IfNoneMatch="*")
        except Exception as exc:
            if not _already_there(exc):
                raise self.error(exc, "create the store marker") from None
        return self.read_marker()

    def read_marker(self) -> dict[str, Any]:
        """The root's marker as stored (raises :class:`StoreFormatError` if it is not a store's)."""
        key = self.location.key(META_NAME)
        try:
            data = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except Exception as exc:
            if _error_code(exc)[1] == 404:
                raise StoreFormatError(f"{self.location.url} is not a store (no {META_NAME}); check the URL") from None
            raise self.error(exc, "read the store marker") from None
        try:
            meta = json.loads(data)
            if not isinstance(meta, dict) or not isinstance(meta.get("format"), int):
                raise ValueError(meta)
        except ValueError:
            raise StoreFormatError(
                f"{self.location.url}/{META_NAME} is not an aeg_jupyter store marker; use another prefix"
            ) from None
        return meta

    def local_state(self) -> str:
        """This machine's directory for the root under the cache (spool, staging): one per root URL.

        Example:
            >>> ObjectStore(S3Location("team", "aeg"), settings=S3Settings(), cache="/c").local_state()
            '/c/stores/team/aeg-ab4b2903'
        """
        tag = hash_bytes(self.location.url.encode())[:8]
        name = (self.location.prefix.replace("/", "_") or "_") + f"-{tag}"
        return os.path.join(self.cache, "stores", self.bucket, name)

    # -- leases ---------------------------------------------------------------------------------------
    def lease(self, name: str, *, seconds: float = LEASE_SECONDS, holder: str | None = None) -> Lease:
        """A :class:`Lease` on ``<prefix>/leases/<name>`` (one maintenance runner at a time)."""
        return Lease(self, self.location.key("leases", name), seconds=seconds, holder=holder)


class Lease:
    """One holder at a time, by conditional writes on one object; it expires when its holder stops renewing.

    The object holds ``{"holder", "seconds"}``. Taking a free lease is a create-if-absent PUT; taking
    an expired one, renewing and releasing are PUT / DELETE with ``If-Match`` on the ETag last seen, so
    of two machines racing for it exactly one wins. Expiry is judged on the server's clock (the
    object's ``Last-Modified`` against the reply's ``Date``), so machines with skewed clocks agree.

    Example:
        >>> lease = objects.lease("maintenance")        # doctest: +SKIP
        >>> if lease.acquire():                         # doctest: +SKIP
        ...     try: compact(); lease.renew()
        ...     finally: lease.release()
    """

    def __init__(self, objects: ObjectStore, key: str, *, seconds: float, holder: str | None = None) -> None:
        self.objects = objects
        self.key = key
        self.seconds = float(seconds)
        self.holder = holder or f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}"
        self.etag: str | None = None

    @property
    def held(self) -> bool:
        """True while this object holds the lease (as of its last successful acquire or renew)."""
        return self.etag is not None

    def _body(self) -> bytes:
        return json.dumps({"holder": self.holder, "seconds": self.seconds}).encode()

    def _put(self, **condition: str) -> str:
        objects = self.objects
        r = objects.client.put_object(Bucket=objects.bucket, Key=self.key, Body=self._body(), **condition)
        return _etag(r["ETag"])

    def current(self) -> tuple[dict[str, Any], str, bool] | None:
        """``(record, etag, expired)`` of the lease object, or ``None`` when there is none."""
        objects = self.objects
        try:
            r = objects.client.get_object(Bucket=objects.bucket, Key=self.key)
            body = r["Body"].read()
        except Exception as exc:
            if _error_code(exc)[1] == 404:
                return None
            raise objects.error(exc, "read the lease") from None
        try:
            record = json.loads(body)
            seconds = float(record.get("seconds", LEASE_SECONDS))
        except (ValueError, AttributeError, TypeError):
            record, seconds = {}, 0.0  # unreadable: treat as expired, then overwrite it conditionally
        now = _server_time(r)
        expired = (now - r["LastModified"].timestamp()) > seconds
        return record, _etag(r["ETag"]), expired

    def acquire(self) -> bool:
        """Take the lease if it is free or expired; False when another holder has it."""
        try:
            self.etag = self._put(IfNoneMatch="*")
            return True
        except Exception as exc:
            if not _already_there(exc):
                raise self.objects.error(exc, "take the lease") from None
        found = self.current()
        if found is None:  # released in between: try once more
            return self.acquire_free()
        record, etag, expired = found
        if record.get("holder") == self.holder:
            self.etag = etag
            return self.renew()
        if not expired:
            return False
        try:
            self.etag = self._put(IfMatch=f'"{etag}"')
            return True
        except Exception as exc:
            if _already_there(exc) or _error_code(exc)[1] == 404:
                return False  # another machine took it first
            raise self.objects.error(exc, "take the lease") from None

    def acquire_free(self) -> bool:
        try:
            self.etag = self._put(IfNoneMatch="*")
            return True
        except Exception as exc:
            if _already_there(exc):
                return False
            raise self.objects.error(exc, "take the lease") from None

    def renew(self) -> bool:
        """Extend the lease; False (and no longer held) when another holder took it meanwhile."""
        if self.etag is None:
            return False
        try:
            self.etag = self._put(IfMatch=f'"{self.etag}"')
            return True
        except Exception as exc:
            if _already_there(exc) or _error_code(exc)[1] == 404:
                self.etag = None
                return False
            raise self.objects.error(exc, "renew the lease") from None

    def release(self) -> None:
        """Give the lease back (only if still ours: a holder that lost it deletes nothing)."""
        etag, self.etag = self.etag, None
        if etag is None:
            return
        objects = self.objects
        with contextlib.suppress(Exception):  # 412: another holder took it meanwhile; theirs stays
            objects.client.delete_object(Bucket=objects.bucket, Key=self.key, IfMatch=f'"{etag}"')

    @contextlib.contextmanager
    def holding(self) -> Iterator[threading.Event | None]:
        """Hold the lease for a ``with`` block, renewed on a thread every third of its duration.

        Yields ``None`` when another holder has it (nothing to do), else an event that is set if the
        lease is lost meanwhile (a renewal refused: stop at the next safe point). Released on exit.

        Example:
            >>> with objects.lease("maintenance").holding() as lost:    # doctest: +SKIP
            ...     if lost is not None:
            ...         compact(stop=lost.is_set)
        """
        if not self.acquire():
            yield None
            return
        lost, stop = threading.Event(), threading.Event()

        def renew() -> None:
            while not stop.wait(self.seconds / 3):
                try:
                    ok = self.renew()
                except AegError:
                    continue  # unreachable for now: retry; expiry decides if it lasts too long
                if not ok:
                    lost.set()
                    return

        thread = threading.Thread(target=renew, name="aeg-lease", daemon=True)
        thread.start()
        try:
            yield lost
        finally:
            stop.set()
            thread.join()
            if not lost.is_set():
                self.release()


_AUTH_CODES = frozenset(
    {
        "AccessDenied",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "InvalidToken",
        "ExpiredToken",
        "AuthorizationHeaderMalformed",
        "403",
        "401",
    }
)
_UNREACHABLE = frozenset(
    {"EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError", "ConnectionClosedError"}
)


def _read_full(f: BinaryIO, n: int) -> bytes:
    """Up to ``n`` bytes of ``f``, fewer only at its end (a pipe or socket may return short reads)."""
    chunk = f.read(n)
    if not chunk or len(chunk) == n:
        return chunk
    pieces = [chunk]
    got = len(chunk)
    while got < n:
        more = f.read(n - got)
        if not more:
            break
        pieces.append(more)
        got += len(more)
    return b"".join(pieces)


def _error_code(exc: BaseException) -> tuple[str, int | None]:
    """``(code, http status)`` of a botocore error (connection errors: their class name, no status)."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = str(response.get("Error", {}).get("Code", ""))
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return code, status
    return type(exc).__name__, None


def _already_there(exc: BaseException) -> bool:
    """A conditional write that found the key (412 PreconditionFailed; 409 for a racing conditional write)."""
    code, status = _error_code(exc)
    return status in (409, 412) or code in ("PreconditionFailed", "ConditionalRequestConflict")


def _server_time(response: dict[str, Any]) -> float:
    """The server's clock from a reply's ``Date`` header (this machine's if the header is missing)."""
    date = response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
    if date:
        with contextlib.suppress(TypeError, ValueError):
            return email.utils.parsedate_to_datetime(date).timestamp()
    return time.time()
