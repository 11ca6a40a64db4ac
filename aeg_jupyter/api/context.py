"""The tutorial's async API: ``context.artifacts()`` and ``context.memory()``.

A :class:`KernelContext` binds a store to the current run, notebook (graph) and cell (node).
Its facades are thin ``async`` wrappers over the synchronous core: file-sized work runs in a
worker thread (``asyncio.to_thread``) so the kernel stays responsive; small work runs inline.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

from ..base.errors import InvalidInputError
from ..base.models import Artifact, Event, Provenance, Scope, ScopeFilter, Value
from ..core.artifacts import ArtifactList, ArtifactRef, ArtifactStore, ArtifactWriter, GcReport, Mode, VerifyReport
from ..core.events import EventLog, check_tool
from ..core.store import Durability, Store, open_store

DEFAULT_ROOT = ".aeg"


def default_root() -> str:
    """The store used when none is named: ``$AEG_STORE``, else ``./.aeg``."""
    return os.environ.get("AEG_STORE") or DEFAULT_ROOT


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
            self._artifacts = Artifacts(self)
        return self._artifacts

    def memory(self) -> Memory:
        """The event and result log (async API)."""
        if self._memory is None:
            self._memory = Memory(self)
        return self._memory

    def new_run(self, name: str | None = None) -> str:
        """Start a new run in this kernel; later writes carry its id. Returns the id."""
        self.run_id = new_run_id(name)
        return self.run_id

    def close(self) -> None:
        """Flush and close the store."""
        self.store.close()

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
        graph_id: the notebook or pipeline name ("default" when not given).
        hot_limit: newest events kept in memory for fast recall.
        durability: ``"fsync"`` makes every returned write survive a power loss.

    Example:
        >>> context = aeg_jupyter.connect("/tmp/store")         # doctest: +SKIP
    """
    store = open_store(root if root is not None else default_root(), hot_limit=hot_limit, durability=durability)
    return KernelContext(store, run_id=run_id, graph_id=graph_id)


class Artifacts:
    """Durable, content-addressed files, directories, JSON and text (the tutorial's ``arts``)."""

    def __init__(self, context: KernelContext) -> None:
        self.context = context
        self.artifacts: ArtifactStore = context.store.artifacts
        self.last_artifact: Artifact | None = None

    def _done(self, art: Artifact) -> Artifact:
        self.last_artifact = art
        return art

    async def save_file(
        self,
        path: str | os.PathLike[str],
        *,
        kind: str,
        labels: Mapping[str, Any] | None = None,
        metrics: Mapping[str, Any] | None = None,
        name: str | None = None,
        pin: bool = False,
    ) -> Artifact:
        """Ingest an existing file. ``art = await arts.save_file(path="report.pdf", kind="report")``"""
        art = await asyncio.to_thread(
            self.artifacts.save_file, path, kind=kind, labels=labels, metrics=metrics, name=name, pin=pin,
            origin=self.context.origin,
        )  # fmt: skip
        return self._done(art)

    async def save_dir(
        self,
        path: str | os.PathLike[str],
        *,
        kind: str,
        labels: Mapping[str, Any] | None = None,
        metrics: Mapping[str, Any] | None = None,
        name: str | None = None,
        pin: bool = False,
    ) -> Artifact:
        """Ingest a directory (every file deduplicated, plus a manifest)."""
        art = await asyncio.to_thread(
            self.artifacts.save_dir, path, kind=kind, labels=labels, metrics=metrics, name=name, pin=pin,
            origin=self.context.origin,
        )  # fmt: skip
        return self._done(art)

    @asynccontextmanager
    async def writer(
        self,
        *,
        kind: str,
        planned_ext: str | None = None,
        labels: Mapping[str, Any] | None = None,
        metrics: Mapping[str, Any] | None = None,
        name: str | None = None,
        pin: bool = False,
    ) -> AsyncIterator[ArtifactWriter]:
        """Stream bytes into a new artifact; committed on clean exit, nothing kept if the block raises.

        Example:
            >>> async with arts.writer(kind="plot", planned_ext=".png") as w:   # doctest: +SKIP
            ...     w.write(png_bytes)
        """
        w = self.artifacts.open_writer(
            kind=kind, planned_ext=planned_ext, labels=labels, metrics=metrics, name=name, pin=pin,
            origin=self.context.origin,
        )  # fmt: skip
        try:
            yield w
        except BaseException:
            w.abort()
            raise
        self._done(w.commit())

    async def save_bytes(self, data: bytes, *, kind: str = "bytes", name: str | None = None, **kw: Any) -> Artifact:
        """Store bytes from memory."""
        return self._done(self.artifacts.save_bytes(data, kind=kind, name=name, origin=self.context.origin, **kw))

    async def save_json(self, obj: Any, *, kind: str = "json", **kw: Any) -> Artifact:
        """Store a JSON-encodable object. ``cfg_art = await arts.save_json({"lr": 1e-3})``"""
        return self._done(self.artifacts.save_json(obj, kind=kind, origin=self.context.origin, **kw))

    async def save_text(self, text: str, *, kind: str = "text", **kw: Any) -> Artifact:
        """Store a string. ``log_art = await arts.save_text("training finished ok")``"""
        return self._done(self.artifacts.save_text(text, kind=kind, origin=self.context.origin, **kw))

    async def as_local_file(self, artifact: ArtifactRef, *, verify: bool = False) -> str:
        """A read-only local path with the original file name (no copy on a local store)."""
        return await asyncio.to_thread(self.artifacts.local_file, artifact, verify=verify)

    async def as_local_dir(self, artifact: ArtifactRef) -> str:
        """A local directory with a directory artifact's files."""
        return await asyncio.to_thread(self.artifacts.local_dir, artifact)

    async def load_bytes(self, artifact: ArtifactRef, *, verify: bool = False) -> bytes:
        """The artifact's bytes."""
        return await asyncio.to_thread(self.artifacts.load_bytes, artifact, verify=verify)

    async def load_text(self, artifact: ArtifactRef, *, verify: bool = False) -> str:
        """The artifact's bytes as UTF-8 text."""
        return self.artifacts.load_text(artifact, verify=verify)

    async def load_json(self, artifact: ArtifactRef, *, verify: bool = False) -> Any:
        """The artifact's bytes decoded as JSON."""
        return self.artifacts.load_json(artifact, verify=verify)

    async def get(self, artifact_id: str) -> Artifact:
        """An artifact by id, unique id prefix, short id, or CAS URI."""
        return self.artifacts.get(artifact_id)

    async def search(
        self,
        *,
        kind: str | None = None,
        labels: Mapping[str, Any] | None = None,
        metric: str | None = None,
        mode: Mode | None = None,
        scope: Scope = "run",
        limit: int | None = None,
    ) -> ArtifactList:
        """Filter by kind, labels (exact) and scope; rank by ``metric`` when given."""
        where = self.context.scope(scope)
        return self.artifacts.search(kind=kind, labels=labels, metric=metric, mode=mode, where=where, limit=limit)

    async def best(
        self,
        *,
        kind: str,
        metric: str,
        mode: Mode = "max",
        scope: Scope = "run",
        filters: Mapping[str, Any] | None = None,
    ) -> Artifact | None:
        """The best artifact of ``kind`` by ``metric`` (``None`` if none has it)."""
        return self.artifacts.best(
            kind=kind, metric=metric, mode=mode, where=self.context.scope(scope), filters=filters
        )

    async def list(self, *, scope: Scope = "run", kind: str | None = None, limit: int | None = None) -> ArtifactList:
        """Everything in scope, newest first. ``await arts.list(scope="run")``"""
        return self.artifacts.list(kind=kind, where=self.context.scope(scope), limit=limit)

    async def pin(self, artifact_id: ArtifactRef, pinned: bool = True) -> Artifact:
        """Keep an artifact forever (``gc`` never collects it)."""
        return self.artifacts.pin(artifact_id, pinned)

    async def unpin(self, artifact_id: ArtifactRef) -> Artifact:
        """Undo :meth:`pin`."""
        return self.artifacts.pin(artifact_id, False)

    async def delete(self, artifact_id: ArtifactRef) -> Artifact:
        """Mark an artifact deleted; ``gc`` frees its bytes."""
        return self.artifacts.delete(artifact_id)

    async def gc(
        self,
        *,
        dry_run: bool = True,
        older_than: str | float | timedelta | None = None,
        keep_last: int | None = None,
        keep_best: Mapping[str, Any] | None = None,
    ) -> GcReport:
        """Collect unpinned artifacts by retention and unreferenced blobs (dry run by default)."""
        return await asyncio.to_thread(
            self.artifacts.gc, dry_run=dry_run, older_than=older_than, keep_last=keep_last, keep_best=keep_best
        )

    async def verify(self, *, repair: bool = False) -> VerifyReport:
        """Re-hash every blob and report corruption."""
        return await asyncio.to_thread(self.artifacts.verify, repair=repair)


class Memory:
    """The event and result log (the tutorial's ``mem``)."""

    def __init__(self, context: KernelContext) -> None:
        self.context = context
        self.event_log: EventLog = context.store.event_log

    async def record(
        self,
        kind: str,
        data: Any = None,
        *,
        tags: Sequence[str] | None = None,
        severity: int = 2,
        stage: str | None = None,
        metrics: Mapping[str, Any] | None = None,
        inputs: Sequence[Value | Mapping[str, Any]] | None = None,
        outputs: Sequence[Value | Mapping[str, Any]] | None = None,
    ) -> Event:
        """Log an event. ``await mem.record(kind="train_log", data={"epoch": 1, "loss": 0.25})``"""
        return self.event_log._record(
            kind, data, None, tags, severity, stage, metrics, inputs, outputs, self.context.origin
        )

    async def record_tool_result(
        self,
        tool: str,
        *,
        inputs: Sequence[Value | Mapping[str, Any]] | None = None,
        outputs: Sequence[Value | Mapping[str, Any]] | None = None,
        tags: Sequence[str] | None = None,
        metrics: Mapping[str, Any] | None = None,
        message: str | None = None,
        severity: int = 2,
    ) -> Event:
        """Record a typed tool result; its outputs are recalled by name with :meth:`last_by_name`."""
        check_tool(tool, message)
        return self.event_log._record(
            "tool_result", message, tool, tags, severity, None, metrics, inputs, outputs, self.context.origin
        )

    async def write_result(
        self,
        *,
        topic: str,
        inputs: Sequence[Value | Mapping[str, Any]] | None = None,
        outputs: Sequence[Value | Mapping[str, Any]] | None = None,
        tags: Sequence[str] | None = None,
        metrics: Mapping[str, Any] | None = None,
        message: str | None = None,
        severity: int = 2,
    ) -> Event:
        """AetherGraph's other name for :meth:`record_tool_result` (``topic`` is the tool)."""
        return await self.record_tool_result(
            topic, inputs=inputs, outputs=outputs, tags=tags, metrics=metrics, message=message, severity=severity
        )

    async def recent(self, *, kinds: Iterable[str] | None = None, limit: int = 50, scope: Scope = "all") -> list[Event]:
        """The newest events, chronological (most recent last)."""
        return self.event_log.recent(kinds=kinds, limit=limit, where=self.context.scope(scope))

    async def recent_data(
        self, *, kinds: Iterable[str] | None = None, limit: int = 50, scope: Scope = "all"
    ) -> list[Any]:
        """The decoded ``data`` of the newest events, chronological."""
        return self.event_log.recent_data(kinds=kinds, limit=limit, where=self.context.scope(scope))

    async def recent_tool_results(self, *, tool: str, limit: int = 10, scope: Scope = "all") -> list[Event]:
        """The newest results of ``tool``, chronological."""
        return self.event_log.recent_tool_results(tool=tool, limit=limit, where=self.context.scope(scope))

    async def last_by_name(self, name: str) -> Any:
        """The latest output value called ``name`` (``None`` if never recorded)."""
        return self.event_log.last_by_name(name)

    async def last_outputs_by_topic(self, topic: str) -> dict[str, Any]:
        """``{name: value}`` of the latest result of tool ``topic``."""
        return self.event_log.last_outputs_by_topic(topic)

    async def recent_df(
        self, *, kinds: Iterable[str] | None = None, limit: int = 50, scope: Scope = "all", tool: str | None = None
    ) -> Any:
        """The newest events as a DataFrame, newest first."""
        from ..core.frames import events_frame

        if tool is not None:
            events = self.event_log.recent_tool_results(tool=tool, limit=limit, where=self.context.scope(scope))
        else:
            events = self.event_log.recent(kinds=kinds, limit=limit, where=self.context.scope(scope))
        return events_frame(events)


__all__ = ["Artifacts", "InvalidInputError", "KernelContext", "Memory", "connect", "default_root"]
