"""Lineage: which cell made an artifact, from which stored artifacts, in which environment.

Every artifact row carries its provenance (``source_path``, ``cell_id``, ``execution_count``,
``source_hash``) and ``inputs``, the ids of the artifacts its cell read first (docs/architecture.md,
"Lineage"). The text of a cell is an ``aeg.cell`` artifact whose content address *is* the
``source_hash`` (one blob per distinct source, one small row per run that ran it); a run's
environment is its ``aeg.env`` artifacts (:mod:`.environment`). :func:`lineage` walks the inputs
upstream and finds what was made downstream.

Example:
    >>> lin = lineage(store.artifacts, "7X2KQ9PA", depth=2)      # doctest: +SKIP
    >>> [n.artifact.kind for n in lin.nodes]                      # doctest: +SKIP
    ['checkpoint', 'config']
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..base.errors import AegError, InvalidInputError
from ..base.html import esc, html_table, kv_table
from ..base.models import CELL_KIND, ENV_KIND, Artifact, Provenance, ScopeFilter
from .environment import environment_parts

if TYPE_CHECKING:
    import pandas as pd

    from .artifacts import ArtifactRef, ArtifactStore

MAX_SOURCE_BYTES = 1 << 20  # a cell or script larger than this keeps its hash, not its text
# a line that only talks to the store: `%aeg ...`, `%load_ext aeg_jupyter`, `%config AegMagics...`
_STORE_LINE = re.compile(r"\s*(?:#.*)?$|\s*%(?:aeg|(?:load|reload|unload)_ext\s+aeg_jupyter|config\s+AegMagics)\b")


def is_store_command(source: str) -> bool:
    """True for a cell of only store commands and comments (``%aeg diff A B``, ``%load_ext aeg_jupyter``):
    it queries the store rather than computes, so a run's code (``aeg diff``) leaves it out.

    Example:
        >>> is_store_command("%aeg diff run-a run-b"), is_store_command("x = 1\n%aeg list")
        (True, False)
    """
    return all(_STORE_LINE.match(line) for line in source.splitlines())


def save_cell_source(artifacts: ArtifactStore, text: str, origin: Provenance) -> Artifact | None:
    """Keep a cell's (or script's) source as an ``aeg.cell`` artifact of ``origin``'s run.

    The blob is the source's UTF-8 bytes, so its digest is ``origin.source_hash`` and the same text
    is one blob whatever the number of runs. ``None`` (nothing kept) above :data:`MAX_SOURCE_BYTES`.
    """
    data = text.encode("utf-8", "surrogatepass")
    if len(data) > MAX_SOURCE_BYTES:
        return None
    name = "cell.py" if origin.cell_id or origin.execution_count else "script.py"
    return artifacts.save_bytes(data, kind=CELL_KIND, name=name, mime="text/x-python", origin=origin)


def save_environment(artifacts: ArtifactStore, env: dict[str, Any], origin: Provenance) -> list[Artifact]:
    """Keep a captured environment as the ``aeg.env`` artifacts of ``origin``'s run (label ``part``)."""
    return [
        artifacts.save_bytes(p.data, kind=ENV_KIND, name=p.name, mime=p.mime, labels={"part": p.part}, origin=origin)
        for p in environment_parts(env)
    ]


def _read(artifacts: ArtifactStore, digest: str) -> bytes | None:
    """A blob's bytes, or None: read past ``Lookup`` so that lineage's own reads are no cell's inputs."""
    try:
        return artifacts.blobs.read_bytes(digest)
    except (AegError, OSError):
        return None


def cell_source(artifacts: ArtifactStore, source_hash: str | None) -> str | None:
    """The source text whose blake3 is ``source_hash`` (``None``: unknown, too large, or collected)."""
    if not source_hash:
        return None
    data = _read(artifacts, source_hash)
    return None if data is None else data.decode("utf-8", "replace")


def run_environment(artifacts: ArtifactStore, run_id: str | None) -> dict[str, Any] | None:
    """A run's environment as captured: ``python``, ``platform``, ``packages``, ``git`` (with its
    ``diff``), ``notes``; ``None`` when the run has no ``aeg.env`` artifacts."""
    if run_id is None:
        return None
    found = artifacts.search(kind=ENV_KIND, where=ScopeFilter(run_id=run_id))
    if not found:
        return None
    parts: dict[str, Artifact] = {}
    for a in reversed(found):  # oldest first: the run's first capture wins
        parts.setdefault(str(a.labels.get("part")), a)
    env: dict[str, Any] = {}
    for key, a in parts.items():
        data = _read(artifacts, a.blob_id)
        if data is None:
            continue
        if key == "environment":
            env = {**json.loads(data), **env}
        elif key == "packages":
            env["packages"] = json.loads(data)
        elif key == "git-diff":
            env["git_diff"] = data.decode("utf-8", "replace")
    if isinstance(env.get("git"), dict) and "git_diff" in env:
        env["git"] = {**env["git"], "diff": env.pop("git_diff")}
    return env


@dataclass(frozen=True, slots=True)
class LineageNode:
    """One artifact of a lineage: how far upstream, its producing cell's source, its run's environment."""

    artifact: Artifact
    depth: int
    source: str | None
    environment: dict[str, Any] | None

    def to_dict(self) -> dict[str, Any]:
        """Plain data: the artifact's ids and provenance, the cell source, the run's Python and git commit."""
        a, env = self.artifact, self.environment or {}
        return {
            "artifact_id": a.artifact_id, "kind": a.kind, "name": a.name, "uri": a.uri, "depth": self.depth,
            "run_id": a.run_id, "graph_id": a.graph_id, "node_id": a.node_id, "source_path": a.source_path,
            "cell_id": a.cell_id, "execution_count": a.execution_count, "source_hash": a.source_hash,
            "inputs": list(a.inputs), "source": self.source, "python": env.get("python"),
            "git_commit": (env.get("git") or {}).get("commit"),
        }  # fmt: skip


@dataclass(slots=True)
class Lineage:
    """The upstream graph of one artifact (``nodes``, ``edges`` input -> output) and what was made from it.

    ``nodes[0]`` is the artifact asked about; ``missing`` names inputs no longer in the store
    (deleted or collected); ``downstream`` lists the live artifacts that name it as an input.
    """

    nodes: list[LineageNode]
    edges: list[tuple[str, str]]
    downstream: list[Artifact]
    missing: list[str] = field(default_factory=list)

    @property
    def root(self) -> Artifact:
        return self.nodes[0].artifact

    @property
    def inputs(self) -> list[Artifact]:
        """The artifacts the root was made from (depth 1)."""
        return [n.artifact for n in self.nodes if n.depth == 1]

    def to_dict(self) -> dict[str, Any]:
        """The graph as data: ``{"nodes": [...], "edges": [{"from", "to"}], "downstream": [ids], "missing": [ids]}``."""
        return {
            "nodes": [n.to_dict() for n in self.nodes],
            "edges": [{"from": a, "to": b} for a, b in self.edges],
            "downstream": [a.artifact_id for a in self.downstream],
            "missing": list(self.missing),
        }

    @property
    def df(self) -> pd.DataFrame:
        """One row per upstream node (the root first), then the downstream artifacts (``depth`` -1)."""
        from .frames import lineage_frame

        rows = [n.to_dict() for n in self.nodes]
        rows += [{**LineageNode(a, -1, None, None).to_dict(), "source": None} for a in self.downstream]
        return lineage_frame(rows)

    def __str__(self) -> str:
        lines = []
        for n in self.nodes:
            a = n.artifact
            lines.append(f"{'  ' * n.depth}{a.short_id} {a.kind} {a.name or ''} ({_made_by(a)})")
            if n.depth == 0 and n.source:
                lines += ["    | " + s for s in n.source.splitlines()]
        for m in self.missing:
            lines.append(f"  {m[-8:]} (no longer in the store)")
        if self.downstream:
            lines.append("made from it: " + ", ".join(f"{a.short_id} {a.kind}" for a in self.downstream))
        return "\n".join(lines)

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(str(self))

    def _repr_html_(self) -> str:
        head = self.nodes[0]
        rows = [
            (n.depth, n.artifact.artifact_id, n.artifact.kind, n.artifact.name or "",
             _made_by(n.artifact), n.artifact.run_id or "", ", ".join(i[-8:] for i in n.artifact.inputs))
            for n in self.nodes
        ]  # fmt: skip
        out = [
            '<div class="aeg-lineage">',
            html_table(
                ["depth", "artifact", "kind", "name", "made by", "run", "inputs"], rows, css_class="aeg-lineage"
            ),
        ]
        if self.missing:
            out.append(f"<p>no longer in the store: {esc(', '.join(self.missing))}</p>")
        if head.source:
            out.append(f"<details open><summary>cell source</summary><pre>{esc(head.source)}</pre></details>")
        env = head.environment or {}
        if env:
            git = env.get("git") or {}
            out.append(
                kv_table(
                    [
                        ("python", env.get("python") or ""),
                        ("git commit", git.get("commit") or git.get("note") or ""),
                        ("packages", str(len(env.get("packages") or {}))),
                    ],
                    caption="environment of its run",
                )
            )
        if self.downstream:
            out.append(
                html_table(
                    ["made from it", "kind", "name"], [(a.artifact_id, a.kind, a.name or "") for a in self.downstream]
                )
            )
        return "".join(out) + "</div>"


def _made_by(a: Artifact) -> str:
    where = a.source_path or a.graph_id or ""
    cell = f"In[{a.execution_count}]" if a.execution_count is not None else (a.cell_id or a.node_id or "")
    return f"{where} {cell}".strip()


def downstream(artifacts: ArtifactStore, artifact_id: str) -> list[Artifact]:
    """The live artifacts that name ``artifact_id`` among their inputs, oldest first."""
    with artifacts.catalog._lock:  # other threads insert while we walk
        live = list(artifacts.catalog.by_id.values())
    return sorted((a for a in live if artifact_id in a.inputs), key=lambda a: (a.created_at, a.artifact_id))


def lineage(artifacts: ArtifactStore, ref: ArtifactRef, *, depth: int | None = None) -> Lineage:
    """The upstream graph of ``ref`` (inputs, their inputs, ... up to ``depth`` levels; ``None``: all)
    and its downstream list.

    Example:
        >>> lineage(store.artifacts, ckpt.artifact_id, depth=1).inputs      # doctest: +SKIP
        [Artifact(... kind='config' ...)]
    """
    if depth is not None and (not isinstance(depth, int) or isinstance(depth, bool) or depth < 0):
        raise InvalidInputError(f"depth must be a whole number >= 0 or None, got {depth!r}")
    root = artifacts.get(ref)
    envs: dict[str | None, dict[str, Any] | None] = {}

    def env_of(run_id: str | None) -> dict[str, Any] | None:
        if run_id not in envs:
            envs[run_id] = run_environment(artifacts, run_id)
        return envs[run_id]

    nodes = [LineageNode(root, 0, cell_source(artifacts, root.source_hash), env_of(root.run_id))]
    edges: list[tuple[str, str]] = []
    missing: list[str] = []
    seen = {root.artifact_id}
    frontier = [root]
    level = 0
    while frontier and (depth is None or level < depth):
        level += 1
        nxt: list[Artifact] = []
        for art in frontier:
            for input_id in art.inputs:
                edges.append((input_id, art.artifact_id))
                if input_id in seen:
                    continue
                seen.add(input_id)
                found = artifacts.catalog.by_id.get(input_id)
                if found is None:
                    missing.append(input_id)
                    continue
                nodes.append(LineageNode(found, level, cell_source(artifacts, found.source_hash), env_of(found.run_id)))
                nxt.append(found)
        frontier = nxt
    return Lineage(nodes, edges, downstream(artifacts, root.artifact_id), missing)


def input_ids(artifacts: ArtifactStore, refs: Iterable[Any]) -> tuple[str, ...]:
    """Explicit ``inputs=[...]`` of a save (artifacts, ids, short ids, URIs) as full artifact ids."""
    if isinstance(refs, str | Artifact):
        refs = [refs]
    out: dict[str, None] = {}
    for ref in refs:
        out[artifacts.get(ref).artifact_id] = None
    return tuple(out)


__all__ = [
    "Lineage",
    "LineageNode",
    "cell_source",
    "downstream",
    "input_ids",
    "is_store_command",
    "lineage",
    "run_environment",
    "save_cell_source",
    "save_environment",
]
