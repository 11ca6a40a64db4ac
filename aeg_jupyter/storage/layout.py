"""Where everything lives inside a store root: the one owner of path arithmetic.

```
<root>/aeg-store.json                       format marker
<root>/blobs/ab/cdef...                     content, named by its blake3 digest
<root>/tables/<table>/kind=<k>/<part>.parquet
<root>/spool/<writer>/<table>-<seq>.jsonl   rows acknowledged but not yet in Parquet
<root>/tmp/<writer>/                        in-flight writes of one writer
<root>/files/<digest>/<name>                read-only hard links handed out by as_local_file
```
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from urllib.parse import quote, unquote

from ..base.errors import InvalidInputError
from ..base.hashing import hash_bytes, is_hex_digest

STORE_FORMAT = 1
META_NAME = "aeg-store.json"
PART_SUFFIX = ".parquet"
SPOOL_SUFFIX = ".jsonl"

_PART_RE = re.compile(r"^(\d{16})-([A-Za-z0-9_]+)-(\d{6})" + re.escape(PART_SUFFIX) + "$")
_SPOOL_RE = re.compile(r"^([a-z_]+)-(\d{6,})" + re.escape(SPOOL_SUFFIX) + "$")  # 7 digits from seq 1,000,000


@dataclass(frozen=True, slots=True)
class PartName:
    """A Parquet part's name: the newest row time it holds, who wrote it, and its sequence."""

    max_ts: int
    writer: str
    seq: int

    def __str__(self) -> str:
        return f"{self.max_ts:016d}-{self.writer}-{self.seq:06d}{PART_SUFFIX}"

    @classmethod
    def parse(cls, name: str) -> PartName | None:
        """Parse a part file name; ``None`` for anything that is not one (temp files, strays)."""
        m = _PART_RE.match(name)
        return cls(int(m.group(1)), m.group(2), int(m.group(3))) if m else None


def parse_spool_name(name: str) -> tuple[str, int] | None:
    """``events-000003.jsonl`` -> ``("events", 3)``; ``None`` for other files."""
    m = _SPOOL_RE.match(name)
    return (m.group(1), int(m.group(2))) if m else None


MAX_PARTITION_NAME = 200  # bytes; file names stop at 255, and the rest is left for a margin
KIND_FILE = "_kind"  # in a hashed partition directory: the kind itself (Hive readers skip `_` names)
_HASHED_MARK = "@"  # never in a plain encoding (quote() escapes it), so a hashed name is unambiguous


def encode_kind(kind: str) -> str:
    """The partition directory name for ``kind``: ``kind=<URI-encoded kind>``.

    A kind whose encoding would pass :data:`MAX_PARTITION_NAME` bytes (28 CJK characters, 84
    ``/``) gets a readable prefix and a hash: ``kind=<prefix>@<24 hex>``; the directory then holds
    the kind itself in its ``_kind`` file (see :func:`is_hashed_kind`).

    Example:
        >>> encode_kind("checkpoint")
        'kind=checkpoint'
        >>> len(encode_kind("/" * 120)) <= MAX_PARTITION_NAME
        True
    """
    plain = "kind=" + quote(kind, safe="")
    if len(plain) <= MAX_PARTITION_NAME:
        return plain
    prefix = plain[:120]
    cut = prefix.rfind("%")
    if cut > len(prefix) - 3:  # never end on half an escape
        prefix = prefix[:cut]
    digest = hash_bytes(kind.encode("utf-8", "surrogatepass"))[:24]
    return prefix + _HASHED_MARK + digest


def is_hashed_kind(dirname: str) -> bool:
    """True for a partition directory named by a hash (its kind is in its ``_kind`` file)."""
    return dirname.startswith("kind=") and _HASHED_MARK in dirname


def decode_kind(dirname: str) -> str | None:
    """Inverse of :func:`encode_kind`; ``None`` for a directory that is not a partition, or one
    named by a hash (read its ``_kind`` file)."""
    if not dirname.startswith("kind=") or _HASHED_MARK in dirname:
        return None
    return unquote(dirname[5:])


@dataclass(frozen=True, slots=True)
class Layout:
    """Absolute paths of one store root (local directory)."""

    root: str

    @property
    def meta(self) -> str:
        return os.path.join(self.root, META_NAME)

    @property
    def blobs(self) -> str:
        return os.path.join(self.root, "blobs")

    @property
    def tables(self) -> str:
        return os.path.join(self.root, "tables")

    @property
    def spool(self) -> str:
        return os.path.join(self.root, "spool")

    @property
    def tmp(self) -> str:
        return os.path.join(self.root, "tmp")

    @property
    def files(self) -> str:
        return os.path.join(self.root, "files")

    @property
    def maintenance_lock(self) -> str:
        """``maintenance.lock``: held (flock) by the one process running format 2's maintenance."""
        return os.path.join(self.root, "maintenance.lock")

    def blob_path(self, digest: str) -> str:
        """``blobs/ab/cdef...`` for a digest; refuses anything that is not 64 lowercase hex."""
        if not is_hex_digest(digest):
            raise InvalidInputError(
                f"{digest!r} is not a blake3 content address; use an artifact id or a 'cas://blake3/<64 hex>' URI"
            )
        return f"{self.root}{os.sep}blobs{os.sep}{digest[:2]}{os.sep}{digest[2:]}"  # (hot path: every save; no os.path.join)

    def table_dir(self, table: str) -> str:
        return os.path.join(self.tables, table)

    def partition_dir(self, table: str, kind: str) -> str:
        return os.path.join(self.tables, table, encode_kind(kind))

    def writer_spool_dir(self, writer: str) -> str:
        return os.path.join(self.spool, writer)

    def spool_file(self, writer: str, table: str, seq: int) -> str:
        return os.path.join(self.spool, writer, f"{table}-{seq:06d}{SPOOL_SUFFIX}")

    def writer_tmp_dir(self, writer: str) -> str:
        return os.path.join(self.tmp, writer)

    def materialized_dir(self, digest: str) -> str:
        if not is_hex_digest(digest):
            raise InvalidInputError(f"{digest!r} is not a blake3 content address")
        return os.path.join(self.files, digest)


@dataclass(frozen=True, slots=True)
class Part:
    """One Parquet part on disk."""

    path: str
    kind: str
    name: PartName
