"""How delta-rs's allocator gives memory back: set once, as the ``deltalake`` library loads.

The ``deltalake`` wheel allocates with its own jemalloc (prefixed: it reads ``_RJEM_MALLOC_CONF``, once,
when the library loads). Its defaults suit a server: up to ``4 x cores`` arenas, and freed pages kept
10 s for reuse. A kernel that logs commits 10,000 rows at a time from a thread, so each commit's
buffers (Arrow in, Parquet out) land in some arena and stay resident there between commits. Two
arenas on a small machine, and freed pages returned after 1 s, cut the memory a logging kernel holds.

Measured with ``bench/_events_child.py`` (1M events through the API, three checkpoints of queries,
peak RSS above the idle kernel, 2 cores): defaults +90.9 to +105.6 MB over five runs (mean 97.4),
decay alone +84.4 to +93.3 (mean 90.2), both +83.6 to +87.8 (mean 86.2), logging time unchanged
(21-24 s a run in each).

A setting the user made is kept, and so is a library loaded before ours. The variable is set only
while the library loads: no child process or other library sees it (polars reads the same name).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

ENV = "_RJEM_MALLOC_CONF"


def jemalloc_settings() -> str:
    """The jemalloc options the store loads delta-rs with (``ENV`` syntax)."""
    arenas = max(2, min(8, os.cpu_count() or 2))
    return f"narenas:{arenas},dirty_decay_ms:1000,muzzy_decay_ms:0"


@contextlib.contextmanager
def loading_deltalake() -> Iterator[None]:
    """Wrap the first ``import deltalake``: jemalloc reads its options as the library loads."""
    if ENV in os.environ:
        yield
        return
    os.environ[ENV] = jemalloc_settings()
    try:
        yield
    finally:
        os.environ.pop(ENV, None)
