"""Store roots on an S3-compatible object store (``s3://bucket/prefix``).

Which roots are URLs (:func:`resolve_root`): a root written ``scheme://...`` is never a local
directory (before this, ``connect("s3://bucket/x")`` made a folder named ``s3:``). ``s3://`` is the
one URL scheme a store may have; any other fails with an error naming the supported forms.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from ..base.errors import InvalidInputError, StoreFormatError

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
            raise InvalidInputError(f"{url!r}: '.' and '..' are not allowed in a store prefix; write it as s3://bucket/prefix")
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
