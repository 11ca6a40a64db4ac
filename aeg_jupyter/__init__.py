"""aeg_jupyter: durable artifacts and fast-recall memory for Jupyter notebooks.

``%load_ext aeg_jupyter`` in a notebook, or ``aeg_jupyter.connect()`` anywhere, then the async
API of AetherGraph's "Store & Recall" tutorial::

    arts = context.artifacts()
    art = await arts.save_file(path="report.pdf", kind="report", labels={"exp": "A"})
    mem = context.memory()
    await mem.record(kind="train_log", data={"epoch": 1, "loss": 0.25})
"""

from __future__ import annotations

from typing import Any

from .api.context import Artifacts, KernelContext, Memory, connect, default_root
from .api.run_sync import run_sync
from .base.errors import (
    AegError,
    AmbiguousIdError,
    CorruptionError,
    InvalidInputError,
    NotFoundError,
    PickleNotAllowedError,
    ScopeHint,
    StoreFormatError,
    StoreWriteError,
)
from .base.models import Artifact, Event, Value
from .base.version import __version__ as __version__
from .core.artifacts import ArtifactList, GcReport, VerifyReport
from .core.leaderboard import leaderboard
from .core.store import Store


def __getattr__(name: str) -> Any:
    if name == "Panel":  # ipywidgets is imported only when the panel is asked for
        from .frontends.panel import Panel

        return Panel
    raise AttributeError(f"module 'aeg_jupyter' has no attribute {name!r}")


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext aeg_jupyter``: open the store, bind ``context`` and register ``%aeg``."""
    from .frontends.magics import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext aeg_jupyter``: flush and close the store."""
    from .frontends.magics import unload_ipython_extension as unload

    unload(ipython)


__all__ = [
    "AegError",
    "AmbiguousIdError",
    "Artifact",
    "ArtifactList",
    "Artifacts",
    "CorruptionError",
    "Event",
    "GcReport",
    "InvalidInputError",
    "KernelContext",
    "Memory",
    "NotFoundError",
    "PickleNotAllowedError",
    "ScopeHint",
    "Store",
    "StoreFormatError",
    "StoreWriteError",
    "Value",
    "VerifyReport",
    "connect",
    "default_root",
    "leaderboard",
    "run_sync",
]
