"""What differs between two runs: labels and configs by key, the best metric per kind, the cells
whose source changed, and the environment (packages, Python, git).

A run is named by its id, a unique prefix of it, its name (``%aeg run new NAME``), or the id of an
artifact it saved (:func:`resolve_run`). Only differences are listed: two runs of the same notebook
with one edited hyperparameter show that one line.

Example:
    >>> d = diff_runs(store.artifacts, "sweep-1", "sweep-2")       # doctest: +SKIP
    >>> [(c.section, c.key) for c in d.changes]                     # doctest: +SKIP
    [('config', 'config.json: lr'), ('code', 'In[3]'), ('environment', 'package torch')]
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..base.errors import AegError, AmbiguousIdError, NotFoundError
from ..base.html import esc, html_table
from ..base.models import CELL_KIND, RESERVED_KIND_PREFIX, Artifact, ScopeFilter
from .direction import direction
from .lineage import cell_source, run_environment
from .runs import run_name

if TYPE_CHECKING:
    from ..storage.tables import Table
    from .artifacts import ArtifactStore

SECTIONS = ("labels", "config", "metrics", "code", "environment")
CONFIG_KINDS = frozenset({"config", "configs", "params", "hparams", "hyperparameters", "settings"})
_MISSING = object()


@dataclass(frozen=True, slots=True)
class Change:
    """One difference: its section, what differs (``key``), the value in run A and in run B, and for
    code and the git diff the unified diff text (``detail``). A value absent from a run is ``None``."""

    section: str
    key: str
    a: Any
    b: Any
    detail: str = ""


@dataclass(slots=True)
class RunDiff:
    """The differences between run ``run_a`` and run ``run_b``, section by section (:data:`SECTIONS`)."""

    run_a: str
    run_b: str
    changes: list[Change] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def section(self, name: str) -> list[Change]:
        """The changes of one section, e.g. ``d.section("code")``."""
        return [c for c in self.changes if c.section == name]

    def to_dict(self) -> dict[str, Any]:
        """Plain data: ``{"run_a", "run_b", "changes": [{section, key, a, b, detail}], "notes"}``."""
        return {
            "run_a": self.run_a,
            "run_b": self.run_b,
            "changes": [
                {"section": c.section, "key": c.key, "a": c.a, "b": c.b, "detail": c.detail} for c in self.changes
            ],
            "notes": list(self.notes),
        }

    def __str__(self) -> str:
        lines = [f"A = {self.run_a}", f"B = {self.run_b}"]
        if not self.changes:
            lines.append("no differences in labels, configs, best metrics, cells or environment")
        for name in SECTIONS:
            changes = self.section(name)
            if changes:
                lines.append(f"{name}:")
            for c in changes:
                lines.append(f"  {c.key}: {_show(c.a)} -> {_show(c.b)}")
                lines += ["    " + line for line in c.detail.splitlines()]
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(str(self))

    def _repr_html_(self) -> str:
        head = f"<p>A = {esc(self.run_a)}<br>B = {esc(self.run_b)}</p>"
        if not self.changes:
            body = "<p>no differences in labels, configs, best metrics, cells or environment</p>"
        else:
            rows = [(c.section, c.key, _show(c.a), _show(c.b)) for c in self.changes]
            body = html_table(["section", "what", "A", "B"], rows, css_class="aeg-diff")
            for c in self.changes:
                if c.detail:
                    body += f"<details><summary>{esc(c.section)}: {esc(c.key)}</summary><pre>{esc(c.detail)}</pre></details>"
        notes = "".join(f"<p>note: {esc(n)}</p>" for n in self.notes)
        return f'<div class="aeg-diff">{head}{body}{notes}</div>'


def _show(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, str):
        return value if len(value) <= 80 else value[:77] + "..."
    return json.dumps(value, sort_keys=True, default=str)[:80]


# -- which run -------------------------------------------------------------------------------------
def known_runs(artifacts: ArtifactStore, events: Table | None = None) -> list[str]:
    """Every run id that saved an artifact or (with the events table) recorded an event."""
    with artifacts.catalog._lock:  # other threads insert while we walk
        runs = {a.run_id for a in artifacts.catalog.by_id.values() if a.run_id}
    if events is not None:
        for part in events.read_columns(["run_id"]):
            runs.update(r for r in part.column("run_id").to_pylist() if r)
        for path in events.spool_paths(include_own=True):
            runs.update(r.get("run_id") for r in events.read_spool(path)[0] if r.get("run_id"))
    return sorted(runs)


def resolve_run(artifacts: ArtifactStore, ref: str, events: Table | None = None) -> str:
    """The run id ``ref`` names: a run id, a unique prefix, a run name, or an artifact id (its run).

    Raises:
        NotFoundError: no run matches (the message names a few that exist).
        AmbiguousIdError: a prefix or name matches several runs (they are listed).
    """
    ref = str(ref).strip()
    runs = known_runs(artifacts, events)
    if ref in runs:
        return ref
    named = [r for r in runs if run_name(r) == ref]
    if len(named) == 1:
        return named[0]
    prefixed = [r for r in runs if r.startswith(ref)]
    if len(prefixed) == 1:
        return prefixed[0]
    if not prefixed:
        try:
            art = artifacts.get(ref)
        except AegError:
            art = None
        if art is not None and art.run_id:
            return art.run_id
    hits = named or prefixed
    if hits:
        raise AmbiguousIdError(f"{ref!r} matches {len(hits)} runs ({', '.join(hits[:5])}); type more of the run id")
    shown = ", ".join(runs[-5:]) or "none yet"
    raise NotFoundError(f"no run {ref!r} (by id, prefix, name or artifact id); recent runs: {shown}")


# -- the sections ----------------------------------------------------------------------------------
def _run_artifacts(artifacts: ArtifactStore, run_id: str) -> list[Artifact]:
    """The run's artifacts (the store's own aeg.* ones left out), oldest first."""
    return [
        a
        for a in reversed(artifacts.search(where=ScopeFilter(run_id=run_id)))
        if not a.kind.startswith(RESERVED_KIND_PREFIX)
    ]


def _flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(obj, dict) and obj:
        out: dict[str, Any] = {}
        for k, v in obj.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix or "(value)": obj}


def _diff_maps(section: str, a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[Change]:
    out = []
    for key in sorted(set(a) | set(b), key=str):
        va, vb = a.get(key, _MISSING), b.get(key, _MISSING)
        if va is _MISSING or vb is _MISSING or va != vb or type(va) is not type(vb):
            out.append(
                Change(section, f"{prefix}{key}", None if va is _MISSING else va, None if vb is _MISSING else vb)
            )
    return out


def _labels(arts: list[Artifact]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for a in arts:  # oldest first: the newest value of a key wins
        out.update(a.labels)
    return out


def _configs(artifacts: ArtifactStore, arts: list[Artifact]) -> dict[str, dict[str, Any]]:
    """``{"<name>": flattened JSON}`` of the run's newest config artifact per name."""
    out: dict[str, dict[str, Any]] = {}
    for a in arts:
        if a.kind.lower() not in CONFIG_KINDS and not a.kind.lower().endswith("config"):
            continue
        try:
            doc = json.loads(artifacts.blobs.read_bytes(a.blob_id))
        except (AegError, OSError, ValueError):
            continue
        out[a.name or a.kind] = _flatten(doc)
    return out


def _best_metrics(arts: list[Artifact]) -> dict[str, float]:
    """``{"kind metric": best value}``, each metric in its direction (unknown: the largest)."""
    values: dict[tuple[str, str], list[float]] = {}
    labels: dict[str, list[Any]] = {}
    for a in arts:
        labels.setdefault(a.kind, []).append(a.labels)
        for m, v in a.metrics.items():
            if v == v:  # not NaN
                values.setdefault((a.kind, m), []).append(v)
    out = {}
    for (kind, metric), vs in values.items():
        mode = direction(metric, labels[kind]) or "max"
        out[f"{kind} {metric} ({mode})"] = min(vs) if mode == "min" else max(vs)
    return out


def _cells(artifacts: ArtifactStore, run_id: str) -> dict[Any, tuple[int, str | None, str | None]]:
    """``{cell key: (order, source hash, source)}`` of the cells a run ran (kept as ``aeg.cell``: at
    their first write, or later for a cell that wrote nothing); a cell run twice: its last run."""
    out: dict[Any, tuple[int, str | None, str | None]] = {}
    cells = reversed(artifacts.search(kind=CELL_KIND, where=ScopeFilter(run_id=run_id)))
    for i, a in enumerate(cells):
        key = a.cell_id or (f"In[{a.execution_count}]" if a.execution_count is not None else a.node_id)
        order = a.execution_count if a.execution_count is not None else i
        if key not in out or order >= out[key][0]:  # kept out of order: the latest execution wins
            out[key] = (order, a.source_hash, None)
    return out


def _unified(a: str, b: str, name_a: str, name_b: str) -> str:
    """A unified diff of two texts, one line per line (a last line without its newline gets one)."""
    lines = difflib.unified_diff(a.splitlines(), b.splitlines(), name_a, name_b, lineterm="")
    return "".join(line + "\n" for line in lines)


def _code(artifacts: ArtifactStore, run_a: str, run_b: str) -> list[Change]:
    ca, cb = _cells(artifacts, run_a), _cells(artifacts, run_b)
    if ca and cb and not set(ca) & set(cb):  # cell ids of two sessions differ: align by position
        ca = {f"cell {i + 1}": v for i, v in enumerate(sorted(ca.values(), key=lambda t: t[0]))}
        cb = {f"cell {i + 1}": v for i, v in enumerate(sorted(cb.values(), key=lambda t: t[0]))}
    keys = sorted(set(ca) | set(cb), key=lambda k: ((ca.get(k) or cb[k])[0], str(k)))
    out = []
    for key in keys:
        ha = ca[key][1] if key in ca else None
        hb = cb[key][1] if key in cb else None
        if ha == hb:
            continue
        sa = cell_source(artifacts, ha) or ""
        sb = cell_source(artifacts, hb) or ""
        detail = _unified(sa, sb, f"A {key}", f"B {key}")
        out.append(Change("code", str(key), ha[:12] if ha else None, hb[:12] if hb else None, detail))
    return out


def _environment(artifacts: ArtifactStore, run_a: str, run_b: str, notes: list[str]) -> list[Change]:
    ea, eb = run_environment(artifacts, run_a), run_environment(artifacts, run_b)
    for run, env in ((run_a, ea), (run_b, eb)):
        if env is None:
            notes.append(f"run {run} has no recorded environment (it was not run in a kernel, or is older)")
    if ea is None or eb is None:
        return []
    out = []
    for key in ("python", "executable", "platform"):
        if ea.get(key) != eb.get(key):
            out.append(Change("environment", key, ea.get(key), eb.get(key)))
    pa_, pb = ea.get("packages") or {}, eb.get("packages") or {}
    for c in _diff_maps("environment", pa_, pb, prefix="package "):
        out.append(c)
    ga, gb = ea.get("git") or {}, eb.get("git") or {}
    if ga.get("commit") != gb.get("commit"):
        out.append(Change("environment", "git commit", ga.get("commit"), gb.get("commit")))
    da, db = ga.get("diff") or "", gb.get("diff") or ""
    if da != db:
        detail = _unified(da, db, "A uncommitted", "B uncommitted")
        size = f"{len(da.encode())} vs {len(db.encode())} bytes"
        out.append(Change("environment", "uncommitted changes", bool(da), bool(db), f"({size})\n{detail[:20000]}"))
    for run, g in ((run_a, ga), (run_b, gb)):
        if g.get("note"):
            notes.append(f"run {run}: git: {g['note']}")
    return out


def diff_runs(artifacts: ArtifactStore, run_a: str, run_b: str, *, events: Table | None = None) -> RunDiff:
    """What differs between two runs (see the module's docstring); only differences are listed.

    Example:
        >>> print(diff_runs(store.artifacts, "sweep-1", "sweep-2"))     # doctest: +SKIP
    """
    artifacts.catch_up()
    a, b = resolve_run(artifacts, run_a, events), resolve_run(artifacts, run_b, events)
    out = RunDiff(a, b)
    arts_a, arts_b = _run_artifacts(artifacts, a), _run_artifacts(artifacts, b)
    out.changes += _diff_maps("labels", _labels(arts_a), _labels(arts_b))
    conf_a, conf_b = _configs(artifacts, arts_a), _configs(artifacts, arts_b)
    for name in sorted(set(conf_a) | set(conf_b)):
        out.changes += _diff_maps("config", conf_a.get(name, {}), conf_b.get(name, {}), prefix=f"{name}: ")
    out.changes += _diff_maps("metrics", _best_metrics(arts_a), _best_metrics(arts_b))
    out.changes += _code(artifacts, a, b)
    out.changes += _environment(artifacts, a, b, out.notes)
    return out


__all__ = ["SECTIONS", "Change", "RunDiff", "diff_runs", "known_runs", "resolve_run"]
