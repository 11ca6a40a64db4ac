"""The kernel's context: ``connect()`` and the :class:`KernelContext` behind ``context.artifacts()``
and ``context.memory()``.

A :class:`KernelContext` binds a store to the current run, notebook (graph) and cell (node). Its
facades (:mod:`.artifacts`, :mod:`.memory`) are thin ``async`` wrappers over the synchronous core.
"""

from __future__ import annotations

import atexit
import functools
import itertools
import os
import secrets
import sys
import weakref
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from ..base.errors import AegError
from ..base.hashing import hash_bytes
from ..base.models import Artifact, Provenance, Scope, ScopeFilter
from ..core.environment import BackgroundCapture, capture_environment
from ..core.store import Durability, Store, open_store
from .artifacts import Artifacts
from .memory import Memory

DEFAULT_ROOT = ".aeg"
MAX_SCRIPT_BYTES = 16 << 20  # a script's hash covers its first 16 MiB
MAX_UNKEPT_CELLS = 256  # cells that wrote nothing, held before they are kept anyway


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
        # lineage (docs/architecture.md, "Lineage"): the cell being run, what it read, what was kept
        self._cell: tuple[str, str | None, int | None, str] | None = None  # (source, cell id, count, node id)
        self._cell_changed = True
        # cells that ran and wrote nothing: kept at the next write, a diff, close or exit (keep_cells)
        self._unkept: list[tuple[str, str | None, int | None, str, str, str]] = []
        self._reads: dict[str, None] = {}
        self._kept_sources: set[tuple[str, str]] = set()  # (run id, source hash) kept as aeg.cell
        self._env_runs: set[str] = set()
        self.environment: Callable[[], dict[str, Any]] | None = None  # captures a run's environment
        self.script: bool = True  # outside a kernel: the script's path and hash (the magics say False)
        store.artifacts.read_listeners.append(self._note_read)
        atexit.register(_keep_cells_at_exit, weakref.ref(self))  # runs before the store's own (LIFO)

    @property
    def origin(self) -> Provenance:
        """Run, graph and node ids (and the cell's provenance) stamped on what is written now."""
        o = self._origin  # rebuilt only when an id or the cell changed: this runs on every `await mem.record`
        if (
            o.run_id is not self.run_id or o.graph_id is not self.graph_id or o.node_id is not self.node_id
            or self._cell_changed
        ):  # fmt: skip
            o = self._origin = self._new_origin()
        return o

    def begin_cell(self, source: str, *, cell_id: str | None = None, execution_count: int | None = None) -> None:
        """A new cell runs: its source and ids stamp the next writes; the artifacts read so far are forgotten.

        Called by the magics before every cell (budget: a few microseconds; the hash is taken at
        the cell's first write). A cell that wrote nothing is kept later (:meth:`keep_cells`).
        """
        prev = self._cell
        if prev is not None and self._cell_changed:  # its origin was never built: it wrote nothing
            unkept = self._unkept
            if not unkept or unkept[-1][0] != prev[0] or unkept[-1][4] != self.run_id:  # (a cell re-run: once)
                unkept.append((*prev, self.run_id, self.graph_id))
                if len(unkept) >= MAX_UNKEPT_CELLS:  # rare: that many cells in a row without a write
                    self.keep_cells()
        self._cell = (source, cell_id, execution_count, self.node_id)
        self._cell_changed = True
        if self._reads:
            self._reads = {}

    def _note_read(self, art: Artifact) -> None:
        self._reads[art.artifact_id] = None

    @property
    def inputs_read(self) -> tuple[str, ...]:
        """The stored artifacts read since the cell began (in a script: since the context opened)."""
        return tuple(self._reads)

    def write_origin(self, inputs: tuple[str, ...] = ()) -> Provenance:
        """The origin of an artifact saved now: :attr:`origin` with the cell's reads and ``inputs`` as its inputs."""
        o = self.origin
        if not self._reads and not inputs:
            return o
        return replace(o, inputs=tuple(dict.fromkeys((*self._reads, *inputs))))

    def _new_origin(self) -> Provenance:
        self._cell_changed = False
        source: str | None = None
        cell_id = count = digest = path = None
        if self._cell is not None:
            source, cell_id, count, _node = self._cell
            digest = hash_bytes(source.encode("utf-8", "surrogatepass"))
            path = self.graph_id if self.graph_id != "default" else None
        elif self.script:
            path, digest = _script()
        o = Provenance(self.run_id, self.graph_id, self.node_id, path, cell_id, count, digest)
        self._keep(o, source)
        return o

    def _keep(self, o: Provenance, source: str | None) -> None:
        """Keep the run's environment (once per run) and the cell's source (once per run and text)."""
        from ..core.lineage import save_cell_source

        arts = self.store.artifacts
        if self._unkept:  # the cells before it that wrote nothing, in the order they ran
            self.keep_cells()
        try:
            self._keep_environment(o)
            if source is not None and o.source_hash and (o.run_id, o.source_hash) not in self._kept_sources:
                self._kept_sources.add((o.run_id, o.source_hash))  # type: ignore[arg-type]
                save_cell_source(arts, source, o)
        except (AegError, OSError):  # provenance never fails the write it comes with
            pass

    def _keep_environment(self, o: Provenance) -> None:
        """Keep the environment of ``o``'s run, once per run (at its first write or kept cell)."""
        from ..core.lineage import save_environment

        if self.environment is not None and o.run_id not in self._env_runs:
            self._env_runs.add(o.run_id)  # type: ignore[arg-type]
            env = self.environment()
            save_environment(
                self.store.artifacts, env, replace(o, source_hash=None, cell_id=None, execution_count=None)
            )

    def keep_cells(self) -> int:
        """Keep the sources of the cells that ran since the last write and wrote nothing, so that a
        run's code is every cell it ran (``aeg diff`` compares them); returns how many were kept.

        Called at the next write, before ``%aeg diff`` / ``lineage``, at :meth:`close` and at exit.
        Left out: empty cells and cells of only store commands (``%aeg ...``, ``%load_ext``), which
        query the store rather than compute. Never raises (a failure keeps fewer cells).
        """
        from ..core.lineage import is_store_command, save_cell_source

        pending, self._unkept = self._unkept, []
        kept = 0
        if self.store.closed:
            return 0
        for source, cell_id, count, node_id, run_id, graph_id in pending:
            if not source.strip() or is_store_command(source):
                continue
            digest = hash_bytes(source.encode("utf-8", "surrogatepass"))
            if (run_id, digest) in self._kept_sources:
                continue
            self._kept_sources.add((run_id, digest))
            path = graph_id if graph_id != "default" else None
            o = Provenance(run_id, graph_id, node_id, path, cell_id, count, digest)
            try:
                self._keep_environment(o)  # a run that only computed still has an environment
                save_cell_source(self.store.artifacts, source, o)
                kept += 1
            except (AegError, OSError):
                pass
        return kept

    def _end_cells(self) -> None:
        """No more cells: keep the last one too if it wrote nothing (closing, or the process exits)."""
        if self._cell is not None and self._cell_changed:
            self._unkept.append((*self._cell, self.run_id, self.graph_id))
            self._cell = None
        self.keep_cells()

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
        """Start a new run in this kernel; later writes carry its id. Returns the id.

        A kernel's environment is captured afresh (in a thread) at the run's start: a package
        installed or a commit made since the last run is the new run's.
        """
        self.run_id = new_run_id(name)
        capture = getattr(self.environment, "__self__", None)
        if isinstance(capture, BackgroundCapture):
            self.environment = capture.again().result
        return self.run_id

    def close(self) -> None:
        """Let go of the store; the last context of this process to close it flushes and closes it.

        Closing a second context on the kernel's store leaves the kernel's store open.
        """
        if not self._closed:
            self._end_cells()
            self._closed = True
            if self._note_read in self.store.artifacts.read_listeners:
                self.store.artifacts.read_listeners.remove(self._note_read)
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
    environment: bool = False,
) -> KernelContext:
    """Open (or create) a store and return a context for a new run.

    Args:
        root: the store directory; default ``$AEG_STORE`` or ``./.aeg``.
        run_id: reuse a run id instead of starting a new run.
        graph_id: the notebook or pipeline name (default: ``$AEG_GRAPH``, else "default").
        hot_limit: newest events kept in memory for fast recall.
        durability: ``"fsync"`` makes every returned write survive a power loss.
        environment: keep each run's environment (Python, packages, git) at its first write, as
            the kernel does (``aeg.env`` artifacts; costs ~0.1 s once per run).

    Example:
        >>> context = aeg_jupyter.connect("/tmp/store")         # doctest: +SKIP
    """
    store = open_store(root if root is not None else default_root(), hot_limit=hot_limit, durability=durability)
    ctx = KernelContext(store, run_id=run_id, graph_id=graph_id or os.environ.get("AEG_GRAPH") or None)
    if environment:
        ctx.environment = lambda: capture_environment(git_dir=_script_dir())
    return ctx


def _keep_cells_at_exit(ref: weakref.ReferenceType[KernelContext]) -> None:
    ctx = ref()
    if ctx is not None and not ctx._closed:
        try:
            ctx._end_cells()
        except Exception:  # at exit nothing may raise
            pass


@functools.cache
def _script() -> tuple[str | None, str | None]:
    """(path, blake3 of its bytes) of the script this process runs, or (None, None)."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None) or (sys.argv[0] if sys.argv and sys.argv[0] else None)
    if not path or not os.path.isfile(path):
        return None, None
    try:
        with open(path, "rb") as f:
            return os.path.abspath(path), hash_bytes(f.read(MAX_SCRIPT_BYTES))
    except OSError:
        return os.path.abspath(path), None


def _script_dir() -> str:
    path, _ = _script()
    return os.path.dirname(path) if path else os.getcwd()


__all__ = ["Artifacts", "KernelContext", "Memory", "connect", "default_root", "headless_notebook"]
