"""Content hashing: blake3 is the store's only hash, and a blob is named by its 64-hex digest."""

from __future__ import annotations

import re

import blake3

HASH_NAME = "blake3"
HEX_LEN = 64
CHUNK = 1 << 20  # 1 MiB: blake3's sweet spot for one thread

_HEX_DIGEST = re.compile(f"[0-9a-f]{{{HEX_LEN}}}")


def hasher(*, threads: bool = False) -> blake3.blake3:
    """Return a fresh incremental blake3 hasher (all cores with ``threads=True``).

    Example:
        >>> h = hasher(); _ = h.update(b"abc"); len(h.hexdigest())
        64
    """
    return blake3.blake3(max_threads=blake3.blake3.AUTO) if threads else blake3.blake3()


def hash_bytes(data: bytes | memoryview) -> str:
    """Return the 64-hex blake3 digest of ``data``.

    Example:
        >>> hash_bytes(b"")[:8]
        'af1349b9'
    """
    return blake3.blake3(data).hexdigest()


def is_hex_digest(text: str) -> bool:
    """True when ``text`` is a full lowercase 64-hex digest (safe to use as a file name)."""
    return _HEX_DIGEST.fullmatch(text) is not None
