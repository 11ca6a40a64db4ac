"""The records users hold: :class:`Artifact`, :class:`Event` and :class:`Value`.

Field names follow AetherGraph's "Store & Recall" tutorial; the extra fields (scope ids, size,
name, ...) come after the tutorial's so positional construction keeps working.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from .errors import InvalidInputError
from .html import kv_table
from .jsoncodec import loads_limited

DIR_MIME = "inode/directory"
URI_PREFIX = "cas://blake3/"
# Kinds the store writes for itself (cell sources, run environments): left out of listings that
# name no kind; `kind="aeg.env"` asks for them.
RESERVED_KIND_PREFIX = "aeg."
CELL_KIND = "aeg.cell"
ENV_KIND = "aeg.env"


SCOPES = ("node", "graph", "run", "all")
Scope = Literal["node", "graph", "run", "all"]


@dataclass(frozen=True, slots=True)
class ScopeFilter:
    """Which run / graph / node a query is limited to (``None`` = any).

    Built from a scope name and the caller's ids with :meth:`resolve`.
    """

    run_id: str | None = None
    graph_id: str | None = None
    node_id: str | None = None

    @classmethod
    def resolve(cls, scope: str, *, run_id: str | None, graph_id: str | None, node_id: str | None) -> ScopeFilter:
        """``"run"`` -> this run, ``"graph"`` -> this notebook, ``"node"`` -> this cell of this run, ``"all"``.

        Raises:
            InvalidInputError: ``scope`` is not one of :data:`SCOPES`.
        """
        if scope == "all":
            return cls()
        if scope == "run":
            return cls(run_id=run_id)
        if scope == "graph":
            return cls(graph_id=graph_id)
        if scope == "node":
            return cls(run_id=run_id, node_id=node_id)
        raise InvalidInputError(f"unknown scope {scope!r}; use one of {', '.join(map(repr, SCOPES))}")

    def __bool__(self) -> bool:
        return self.run_id is not None or self.graph_id is not None or self.node_id is not None

    def matches(self, obj: Any) -> bool:
        """True when ``obj`` (an Artifact, Event or row-like object) is inside this scope."""
        return (
            (self.run_id is None or obj.run_id == self.run_id)
            and (self.graph_id is None or obj.graph_id == self.graph_id)
            and (self.node_id is None or obj.node_id == self.node_id)
        )

    def matches_row(self, row: Mapping[str, Any]) -> bool:
        """:meth:`matches` for a table row (a dict: absent keys are null)."""
        return (
            (self.run_id is None or row.get("run_id") == self.run_id)
            and (self.graph_id is None or row.get("graph_id") == self.graph_id)
            and (self.node_id is None or row.get("node_id") == self.node_id)
        )


@dataclass(frozen=True, slots=True)
class Provenance:
    """Where a write comes from: the run, notebook (graph) and cell (node) that made it.

    The fields after the scope ids say which code made it (docs/architecture.md, "Lineage"):
    ``source_path`` is the notebook's path (a script's outside a kernel), ``cell_id`` the front
    end's cell id, ``execution_count`` the cell's ``In[n]``, ``source_hash`` the blake3 of the cell's
    (or script's) source, whose text is stored once as an ``aeg.cell`` artifact; ``inputs`` the ids
    of the stored artifacts the cell read before the write (artifacts only).
    """

    run_id: str | None = None
    graph_id: str | None = None
    node_id: str | None = None
    source_path: str | None = None
    cell_id: str | None = None
    execution_count: int | None = None
    source_hash: str | None = None
    inputs: tuple[str, ...] = ()


def short_id(full_id: str) -> str:
    """The 8-character form of an id shown in tables: its last characters (the random part)."""
    return full_id[-8:]


@dataclass(slots=True)
class Value:
    """One named input or output of a tool result, e.g. ``Value("val_acc", "number", 0.91)``.

    A plain dataclass, as in the tutorial (a frozen one costs ~0.6 us more to build, on every
    ``record_tool_result``).
    """

    name: str
    kind: str = "json"
    value: Any = None

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form, as stored: ``{"name": ..., "kind": ..., "value": ...}``."""
        return {"name": self.name, "kind": self.kind, "value": self.value}


@dataclass(frozen=True, slots=True)
class Artifact:
    """A durable, content-addressed file, directory or value with kind, labels and metrics.

    Example:
        >>> art = await arts.save_text("hello")          # doctest: +SKIP
        >>> art.uri.startswith("cas://blake3/")            # doctest: +SKIP
        True
    """

    artifact_id: str
    uri: str
    kind: str
    labels: Mapping[str, Any] = field(default_factory=dict)
    metrics: Mapping[str, float] = field(default_factory=dict)
    preview_uri: str | None = None
    pinned: bool = False
    created_at: datetime | None = None
    size: int = 0
    name: str | None = None
    mime: str | None = None
    run_id: str | None = None
    graph_id: str | None = None
    node_id: str | None = None
    source_path: str | None = None
    cell_id: str | None = None
    execution_count: int | None = None
    source_hash: str | None = None
    inputs: tuple[str, ...] = ()

    @property
    def blob_id(self) -> str:
        """The 64-hex blake3 digest that ``uri`` names."""
        return self.uri.removeprefix(URI_PREFIX)

    @property
    def is_dir(self) -> bool:
        """True for a directory artifact (its blob is a manifest)."""
        return self.mime == DIR_MIME

    @property
    def short_id(self) -> str:
        """The 8-character id shown in tables; ``get`` accepts it."""
        return short_id(self.artifact_id)

    def _repr_html_(self) -> str:
        rows = [
            ("id", self.artifact_id),
            ("kind", self.kind),
            ("name", self.name or ""),
            ("uri", self.uri),
            ("size", _human_size(self.size)),
            ("created", self.created_at.isoformat(timespec="seconds") if self.created_at else ""),
            ("run / graph / node", f"{self.run_id} / {self.graph_id} / {self.node_id}"),
            ("labels", ", ".join(f"{k}={v}" for k, v in self.labels.items())),
            ("metrics", ", ".join(f"{k}={v:g}" for k, v in self.metrics.items())),
            ("pinned", "yes" if self.pinned else "no"),
        ]
        if self.inputs:
            rows.append(("inputs", ", ".join(self.inputs)))
        if self.source_hash:
            cell = f"{self.cell_id or ''} In[{self.execution_count}]" if self.execution_count else self.cell_id or ""
            rows.append(("made by", f"{self.source_path or ''} {cell} (source {self.source_hash[:12]})".strip()))
        return kv_table(rows, css_class="aeg-artifact", caption="Artifact")


@dataclass(slots=True)
class Event:
    """One entry of the memory log: an event or a tool result.

    ``text`` holds the JSON encoding of the recorded ``data`` (or the message text); ``data``
    decodes it. A plain (not frozen) dataclass, as in the tutorial: building one is 6x cheaper,
    which matters on every ``record``; changing a field changes only this object, never the store.
    """

    event_id: str
    ts: str
    kind: str
    topic: str | None = None
    inputs: list[Value] | None = None
    outputs: list[Value] | None = None
    metrics: dict[str, float] | None = None
    text: str | None = None
    version: int = 1
    run_id: str | None = None
    graph_id: str | None = None
    node_id: str | None = None
    tags: list[str] | None = None
    severity: int = 2
    stage: str | None = None
    # provenance (docs/architecture.md, "Lineage"), as on :class:`Artifact`; an event has no
    # artifact inputs (``inputs`` above are a tool result's named values)
    source_path: str | None = None
    cell_id: str | None = None
    execution_count: int | None = None
    source_hash: str | None = None

    @property
    def data(self) -> Any:
        """The recorded payload: ``text`` decoded from JSON, or the text itself if it is not JSON
        (or is JSON nested too deeply to walk safely: ``jsoncodec.MAX_JSON_DEPTH``)."""
        if self.text is None:
            return None
        try:
            return loads_limited(self.text)
        except ValueError:
            return self.text

    @property
    def short_id(self) -> str:
        """The 8-character id shown in tables."""
        return short_id(self.event_id)

    def _repr_html_(self) -> str:
        rows: list[tuple[str, str]] = [("id", self.event_id), ("ts", self.ts), ("kind", self.kind)]
        if self.topic:
            rows.append(("topic", self.topic))
        if self.text is not None:
            rows.append(("text", self.text if len(self.text) <= 2000 else self.text[:2000] + " ..."))
        for label, values in (("inputs", self.inputs), ("outputs", self.outputs)):
            if values:
                rows.append((label, ", ".join(f"{v.name}={v.value!r}" for v in values)))
        if self.metrics:
            rows.append(("metrics", ", ".join(f"{k}={v:g}" for k, v in self.metrics.items())))
        if self.tags:
            rows.append(("tags", ", ".join(self.tags)))
        rows.append(("run / graph / node", f"{self.run_id} / {self.graph_id} / {self.node_id}"))
        if self.source_hash:
            cell = f"{self.cell_id or ''} In[{self.execution_count}]" if self.execution_count else self.cell_id or ""
            rows.append(("made by", f"{self.source_path or ''} {cell} (source {self.source_hash[:12]})".strip()))
        return kv_table(rows, css_class="aeg-event", caption="Event")


def _human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover
