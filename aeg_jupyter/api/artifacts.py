"""The tutorial's ``arts``: the async artifact API over the synchronous core.

File-sized work (hashing, copying, materializing) runs in a worker thread with
``asyncio.to_thread`` so the kernel stays responsive; small work runs inline.
"""

from __future__ import annotations

import asyncio
import os
import warnings
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol

from ..base.errors import ScopeHint
from ..base.models import Artifact, Provenance, Scope, ScopeFilter
from ..core.artifacts import ArtifactList, ArtifactRef, ArtifactStore, ArtifactWriter, GcReport, Mode, VerifyReport

if TYPE_CHECKING:  # lineage and run diffs are imported at their first use: %load_ext stays light
    from ..core.lineage import Lineage
    from ..core.rundiff import RunDiff


class Origin(Protocol):
    """What a facade needs of its context: the ids stamped on writes and the scope filters."""

    @property
    def origin(self) -> Provenance: ...

    def scope(self, scope: Scope | str) -> ScopeFilter: ...


class Artifacts:
    """Durable, content-addressed files, directories, JSON and text (the tutorial's ``arts``).

    Every save also takes ``inputs=[...]`` (artifacts or ids): they join the artifacts this cell
    read before the save as the new artifact's ``inputs`` (see :meth:`lineage`).
    """

    def __init__(self, context: Origin, artifacts: ArtifactStore) -> None:
        self.context = context
        self.artifacts = artifacts
        self.last_artifact: Artifact | None = None

    def _done(self, art: Artifact) -> Artifact:
        self.last_artifact = art
        return art

    def _origin(self, inputs: Iterable[ArtifactRef] | None) -> Provenance:
        """The provenance of a save: the context's, with the cell's reads and ``inputs=[...]`` as inputs."""
        if not inputs:
            explicit: tuple[str, ...] = ()
        else:
            from ..core.lineage import input_ids

            explicit = input_ids(self.artifacts, inputs)
        write_origin = getattr(self.context, "write_origin", None)
        if write_origin is not None:
            return write_origin(explicit)  # type: ignore[no-any-return]
        o = self.context.origin
        return replace(o, inputs=explicit) if explicit else o

    async def lineage(self, artifact: ArtifactRef, *, depth: int | None = None) -> Lineage:
        """Where an artifact came from: its inputs, theirs, ... (``depth`` levels; ``None``: all), each
        with its cell's source and its run's environment, and what was made from it.

        Example:
            >>> lin = await arts.lineage(ckpt, depth=2)         # doctest: +SKIP
            >>> lin.inputs, lin.df, lin.to_dict()["edges"]      # doctest: +SKIP
        """
        from ..core.lineage import lineage

        return await asyncio.to_thread(lineage, self.artifacts, artifact, depth=depth)

    async def diff(self, run_a: str, run_b: str) -> RunDiff:
        """What differs between two runs (run id, unique prefix, run name, or an artifact id of the run):
        labels and configs by key, the best metric per kind, edited cells, packages and git.

        Example:
            >>> d = await arts.diff("sweep-1", "sweep-2")       # doctest: +SKIP
        """
        from ..core.rundiff import diff_runs

        store = getattr(self.context, "store", None)
        events = getattr(store, "event_table", None)
        keep = getattr(self.context, "keep_cells", None)
        if keep is not None:  # this kernel's cells that wrote nothing yet are part of its run's code
            keep()
        return await asyncio.to_thread(diff_runs, self.artifacts, run_a, run_b, events=events)

    async def save_file(
        self,
        path: str | os.PathLike[str],
        *,
        kind: str,
        labels: Mapping[str, Any] | None = None,
        metrics: Mapping[str, Any] | None = None,
        name: str | None = None,
        pin: bool = False,
        inputs: Iterable[ArtifactRef] | None = None,
    ) -> Artifact:
        """Ingest an existing file. ``art = await arts.save_file(path="report.pdf", kind="report")``"""
        art = await asyncio.to_thread(
            self.artifacts.save_file, path, kind=kind, labels=labels, metrics=metrics, name=name, pin=pin,
            origin=self._origin(inputs),
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
        inputs: Iterable[ArtifactRef] | None = None,
    ) -> Artifact:
        """Ingest a directory (every file deduplicated, plus a manifest)."""
        art = await asyncio.to_thread(
            self.artifacts.save_dir, path, kind=kind, labels=labels, metrics=metrics, name=name, pin=pin,
            origin=self._origin(inputs),
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
        inputs: Iterable[ArtifactRef] | None = None,
    ) -> AsyncIterator[ArtifactWriter]:
        """Stream bytes into a new artifact; committed on clean exit, nothing kept if the block raises.

        Example:
            >>> async with arts.writer(kind="plot", planned_ext=".png") as w:   # doctest: +SKIP
            ...     w.write(png_bytes)
        """
        w = self.artifacts.open_writer(
            kind=kind, planned_ext=planned_ext, labels=labels, metrics=metrics, name=name, pin=pin,
            origin=self._origin(inputs),
        )  # fmt: skip
        try:
            yield w
        except BaseException:
            w.abort()
            raise
        self._done(w.commit())

    async def save_bytes(self, data: bytes, *, kind: str = "bytes", name: str | None = None, **kw: Any) -> Artifact:
        """Store bytes from memory."""
        origin = self._origin(kw.pop("inputs", None))
        return self._done(self.artifacts.save_bytes(data, kind=kind, name=name, origin=origin, **kw))

    async def save_json(self, obj: Any, *, kind: str = "json", **kw: Any) -> Artifact:
        """Store a JSON-encodable object. ``cfg_art = await arts.save_json({"lr": 1e-3})``"""
        origin = self._origin(kw.pop("inputs", None))
        return self._done(self.artifacts.save_json(obj, kind=kind, origin=origin, **kw))

    async def save_text(self, text: str, *, kind: str = "text", **kw: Any) -> Artifact:
        """Store a string. ``log_art = await arts.save_text("training finished ok")``"""
        origin = self._origin(kw.pop("inputs", None))
        return self._done(self.artifacts.save_text(text, kind=kind, origin=origin, **kw))

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
        found = self.artifacts.search(kind=kind, labels=labels, metric=metric, mode=mode, where=where, limit=limit)
        if not found and scope != "all":
            self._hint("search", scope, kind=kind, labels=labels, metric=metric)
        return found

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
        art = self.artifacts.best(kind=kind, metric=metric, mode=mode, where=self.context.scope(scope), filters=filters)
        if art is None and scope != "all":
            self._hint("best", scope, kind=kind, labels=filters, metric=metric)
        return art

    async def list(self, *, scope: Scope = "run", kind: str | None = None, limit: int | None = None) -> ArtifactList:
        """Everything in scope, newest first. ``await arts.list(scope="run")``"""
        found = self.artifacts.list(kind=kind, where=self.context.scope(scope), limit=limit)
        if not found and scope != "all":
            self._hint("list", scope, kind=kind)
        return found

    def _hint(
        self,
        call: str,
        scope: str,
        *,
        kind: str | None,
        labels: Mapping[str, Any] | None = None,
        metric: str | None = None,
    ) -> None:
        """Warn (:class:`~aeg_jupyter.base.errors.ScopeHint`) when ``scope="all"`` holds what ``scope`` did not."""
        n = count_in_all(self.artifacts, kind=kind, labels=labels, metric=metric)
        if n:
            asked = ", ".join(
                f"{k}={v!r}" for k, v in (("kind", kind), ("metric", metric), ("labels", labels)) if v is not None
            )
            warnings.warn(
                f"arts.{call}({asked}) found nothing in scope={scope!r}, but {n} artifact{'s' if n != 1 else ''} "
                f"match in scope='all' (earlier runs, other notebooks): pass scope='all' to get them",
                ScopeHint,
                stacklevel=3,
            )

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
        """Re-hash every blob; report corruption and rows a table holds twice (``repair=True``: mend them)."""
        return await asyncio.to_thread(self.artifacts.verify, repair=repair)


def count_in_all(
    artifacts: ArtifactStore,
    *,
    kind: str | None = None,
    labels: Mapping[str, Any] | None = None,
    metric: str | None = None,
) -> int:
    """How many live artifacts match in ``scope="all"``: asked only after a scoped answer came back empty.

    Example:
        >>> count_in_all(context.store.artifacts, kind="config")     # doctest: +SKIP
        2
    """
    return len(artifacts.search(kind=kind, labels=labels, metric=metric, mode="max" if metric else None, limit=None))


__all__ = ["Artifacts", "count_in_all"]
