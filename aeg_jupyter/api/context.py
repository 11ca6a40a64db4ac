"""The kernel's context: ``connect()`` and the :class:`KernelContext` behind ``context.artifacts()``
and ``context.memory()``.

A :class:`KernelContext` binds a store to the current run, notebook (graph) and cell (node). Its
facades (:mod:`.artifacts`, :mod:`.memory`) are thin ``async`` wrappers over the synchronous core.
"""

from __future__ import annotations

import itertools
import os
import secrets
from collections.abc import Mapping
from datetime import datetime

from ..base.models import Provenance, Scope, ScopeFilter
from ..core.store import Durability, Store, open_store
from .artifacts import Artifacts
from .memory import Memory

DEFAULT_ROOT = ".aeg"


def default_root() -> str:
    """The store used when none is named: ``$AEG_STORE``, else ``./.aeg``."""
    return os.environ.get("AEG_STORE") or DEFAULT_ROOT


_VALUE_OPTIONS = ("--output", "--output-dir", "-o", "--cwd", "--kernel", "-k")  # their value is not the input


def headless_notebook(environ: Mapping[str, str] | None = None) -> str | None:
    """The absolute path of the notebook a headless runner executes in this kernel, or ``None``.

    ``jupyter nbconvert --execute``, ``jupyter execute`` and ``papermill IN OUT`` start the kernel
    from a process whose command line names the notebook (papermill's first one is its input);
    jupyter_client gives the kernel that process id as ``$JPY_PARENT_PID``. Read from Linux's
    ``/proc``; elsewhere, or when a script drives nbclient itself, ``None`` (set ``$AEG_GRAPH``).

    Example:
        >>> headless_notebook({})  # not started by a Jupyter runner
    """
    pid = (os.environ if environ is None else environ).get("JPY_PARENT_PID", "")
    if not pid.isdigit():
        return None
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = [a.decode("utf-8", "replace") for a in f.read().split(b"\0") if a]
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return None
    for prev, arg in itertools.pairwise(argv):
        if arg.endswith(".ipynb") and not arg.startswith("-") and prev not in _VALUE_OPTIONS:
            return os.path.normpath(os.path.join(cwd, arg))
    return None


def new_run_id(name: str | None = None) -> str:
    """A readable, unique run id such as ``run-20260102-030405-a1b2``."""
    stem = (name or "run").strip().replace("/", "-").replace(" ", "-") or "run"
    return f"{stem}-{datetime.now():%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


class KernelContext:
    """The store as seen from one kernel: the current run, graph (notebook) and node (cell).

    Example:
        >>> context = connect()                      # doctest: +SKIP
        >>> arts, mem = context.artifacts(), context.memory()   # doctest: +SKIP
    """

    def __init__(
        self, store: Store, *, run_id: str | None = None, graph_id: str | None = None, node_id: str | None = None
    ) -> None:
        self.store = store
        self.run_id = run_id or new_run_id()
        self.graph_id = graph_id or "default"
        self.node_id = node_id or "main"
        self._artifacts: Artifacts | None = None
        self._memory: Memory | None = None
        self._origin = Provenance(self.run_id, self.graph_id, self.node_id)
        self._closed = False

    @property
    def origin(self) -> Provenance:
        """Run, graph and node ids stamped on what is written now."""
        o = self._origin  # rebuilt only when an id changed: this runs on every `await mem.record`
        if o.run_id is not self.run_id or o.graph_id is not self.graph_id or o.node_id is not self.node_id:
            o = self._origin = Provenance(self.run_id, self.graph_id, self.node_id)
        return o

    def scope(self, scope: Scope | str) -> ScopeFilter:
        """The filter for a scope name, relative to this context."""
        return ScopeFilter.resolve(scope, run_id=self.run_id, graph_id=self.graph_id, node_id=self.node_id)

    def artifacts(self) -> Artifacts:
        """The artifact store (async API)."""
        if self._artifacts is None:
            self._artifacts = Artifacts(self, self.store.artifacts)
        return self._artifacts

    def memory(self) -> Memory:
        """The event and result log (async API)."""
        if self._memory is None:
            self._memory = Memory(self, self.store.event_log)
        return self._memory

    def new_run(self, name: str | None = None) -> str:
        """Start a new run in this kernel; later writes carry its id. Returns the id."""
        self.run_id = new_run_id(name)
        return self.run_id

    def close(self) -> None:
        """Let go of the store; the last context of this process to close it flushes and closes it.

        Closing a second context on the kernel's store leaves the kernel's store open.
        """
        if not self._closed:
            self._closed = True
            self.store.release()

    def __repr__(self) -> str:
        return f"KernelContext(store={self.store.root!r}, run_id={self.run_id!r}, graph_id={self.graph_id!r})"


def connect(
    root: str | os.PathLike[str] | None = None,
    *,
    run_id: str | None = None,
    graph_id: str | None = None,
    hot_limit: int = 1000,
    durability: Durability = "flush",
) -> KernelContext:
    """Open (or create) a store and return a context for a new run.

    Args:
        root: the store directory; default ``$AEG_STORE`` or ``./.aeg``.
        run_id: reuse a run id instead of starting a new run.
        graph_id: the notebook or pipeline name (default: ``$AEG_GRAPH``, else "default").
        hot_limit: newest events kept in memory for fast recall.
        durability: ``"fsync"`` makes every returned write survive a power loss.

    Example:
        >>> context = aeg_jupyter.connect("/tmp/store")         # doctest: +SKIP
    """
    store = open_store(root if root is not None else default_root(), hot_limit=hot_limit, durability=durability)
    return KernelContext(store, run_id=run_id, graph_id=graph_id or os.environ.get("AEG_GRAPH") or None)


__all__ = ["Artifacts", "KernelContext", "Memory", "connect", "default_root", "headless_notebook"]
