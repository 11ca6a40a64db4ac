"""AetherGraph records <-> rows of this store: labels, metrics, URIs, tool values, events.

AetherGraph's ``Artifact`` carries fields our rows do not have (tool name and version, its sha256,
tags, tenant ids, a preview URI, non-scalar labels, NaN metrics). They travel as labels under the
reserved prefix ``aethergraph.`` so that a row read back gives the same AetherGraph ``Artifact``,
and a person or DuckDB reading the store sees them as ordinary labels. See the README, "AetherGraph
graphs on this store".
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from typing import Any

from ..base.models import Artifact as AegArtifact

PREFIX = "aethergraph."
SHA256 = PREFIX + "sha256"  # the alias: AetherGraph's content address of the same bytes
TOOL = PREFIX + "tool_name"
TOOL_VERSION = PREFIX + "tool_version"
MIME = PREFIX + "mime"
PREVIEW = PREFIX + "preview_uri"
LABELS_JSON = PREFIX + "labels_json"  # labels whose values are not scalars (tags, lists, dicts, None)
METRICS_JSON = PREFIX + "metrics_json"  # metrics our rows refuse (NaN, inf), kept as AetherGraph gave them
NONFINITE = PREFIX + "nonfinite."  # + metric name -> True: this artifact's metric is NaN/inf
TENANT = ("org_id", "user_id", "client_id", "app_id", "session_id")
AG_DIR_MIME = "application/vnd.aethergraph.bundle+dir"

_SHA_IN_URI = re.compile(r"(?:sha256[:/]+|/cas/(?:blobs|trees)/)([0-9a-f]{64})")


def sha256_of_file(path: str, chunk: int = 1 << 20) -> str:
    """The hex sha256 of a file: AetherGraph's content address (its ``Artifact.sha256``)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while b := f.read(chunk):
            h.update(b)
    return h.hexdigest()


def sha256_of_tree(entries: list[tuple[str, str, int]]) -> str:
    """AetherGraph's tree hash: sha256 over sorted ``"<rel>\\t<sha>\\t<bytes>\\n"`` lines."""
    h = hashlib.sha256()
    for line in sorted(f"{rel}\t{sha}\t{n}\n" for rel, sha, n in entries):
        h.update(line.encode("utf-8"))
    return h.hexdigest()


def sha256_in_uri(uri: str) -> str | None:
    """The sha256 an AetherGraph URI names (``file://.../cas/blobs/<sha>.json``,
    ``.../cas/trees/<sha>``, ``sha256:<sha>``), or None."""
    m = _SHA_IN_URI.search(uri)
    return m.group(1) if m else None


def _scalar(v: Any) -> bool:
    if isinstance(v, bool | str | int):
        return True
    return isinstance(v, float) and math.isfinite(v)


def encode_labels(
    labels: Mapping[str, Any] | None,
    *,
    sha256: str | None = None,
    tool_name: str | None = None,
    tool_version: str | None = None,
    mime: str | None = None,
    preview_uri: str | None = None,
    metrics: Mapping[str, Any] | None = None,
    tenant: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Our labels for an AetherGraph artifact: its scalar labels as they are, the rest under ``aethergraph.``."""
    out: dict[str, Any] = {}
    rest: dict[str, Any] = {}
    for k, v in (labels or {}).items():
        if k.startswith(PREFIX):
            continue  # ours, when an artifact read back is upserted again
        if _scalar(v):
            out[k] = v
        else:
            rest[k] = v
    if rest:
        out[LABELS_JSON] = json.dumps(rest, ensure_ascii=False, sort_keys=True, default=str)
    for key, value in (
        (SHA256, sha256),
        (TOOL, tool_name),
        (TOOL_VERSION, tool_version),
        (MIME, mime),
        (PREVIEW, preview_uri),
    ):
        if value:
            out[key] = str(value)
    for k in TENANT:
        v = (tenant or {}).get(k)
        if v:
            out[PREFIX + k] = str(v)
    odd = {k: v for k, v in (metrics or {}).items() if not _finite_number(v)}
    if odd:
        out[METRICS_JSON] = json.dumps(odd)
        for k in odd:
            out[NONFINITE + k] = True
    return out


def _finite_number(v: Any) -> bool:
    return not isinstance(v, bool) and isinstance(v, int | float) and math.isfinite(v)


def split_metrics(metrics: Mapping[str, Any] | None) -> dict[str, float]:
    """The metrics our rows keep (finite numbers); the others go to labels (see :func:`encode_labels`)."""
    return {k: v for k, v in (metrics or {}).items() if _finite_number(v)}


def decode_labels(labels: Mapping[str, Any]) -> dict[str, Any]:
    """AetherGraph's labels of one of our rows (the ``aethergraph.`` keys taken out again)."""
    out = {k: v for k, v in labels.items() if not k.startswith(PREFIX)}
    raw = labels.get(LABELS_JSON)
    if isinstance(raw, str):
        out.update(json.loads(raw))
    return out


def decode_metrics(art: AegArtifact) -> dict[str, Any]:
    out: dict[str, Any] = dict(art.metrics)
    raw = art.labels.get(METRICS_JSON)
    if isinstance(raw, str):
        out.update(json.loads(raw))
    return out


def tags_of(labels: Mapping[str, Any]) -> list[str] | None:
    raw = labels.get("tags")
    if isinstance(raw, list):
        return [str(t) for t in raw]
    if isinstance(raw, str):
        return [raw]
    return None


def to_ag_artifact(art: AegArtifact, artifact_cls: type) -> Any:
    """The AetherGraph ``Artifact`` for one of our artifacts (``artifact_cls`` is its dataclass)."""
    lab = art.labels
    labels = decode_labels(lab)
    return artifact_cls(
        artifact_id=art.artifact_id,
        run_id=art.run_id,
        graph_id=art.graph_id,
        node_id=art.node_id,
        tool_name=lab.get(TOOL),
        tool_version=lab.get(TOOL_VERSION),
        kind=art.kind,
        sha256=lab.get(SHA256),
        bytes=art.size,
        mime=lab.get(MIME) if SHA256 in lab else art.mime,  # AetherGraph's: only the mime its caller gave
        created_at=art.created_at.isoformat(),
        tags=tags_of(labels),
        labels=labels,
        metrics=decode_metrics(art),
        pinned=art.pinned,
        uri=art.uri,
        preview_uri=lab.get(PREVIEW),
        org_id=lab.get(PREFIX + "org_id"),
        user_id=lab.get(PREFIX + "user_id"),
        client_id=lab.get(PREFIX + "client_id"),
        app_id=lab.get(PREFIX + "app_id"),
        session_id=lab.get(PREFIX + "session_id"),
    )


def to_values(values: Any) -> list[dict[str, Any]] | None:
    """AetherGraph tool values (``{name, vtype, value, meta}``) as our ``{name, kind, value}``;
    None when one of them has no name (then they live only in the event's JSON)."""
    if not values:
        return None
    out = []
    for v in values:
        if not isinstance(v, Mapping) or not isinstance(v.get("name"), str) or not v.get("name"):
            return None
        out.append({"name": v["name"], "kind": str(v.get("vtype") or "json"), "value": v.get("value")})
    return out


__all__ = [
    "AG_DIR_MIME",
    "PREFIX",
    "SHA256",
    "decode_labels",
    "decode_metrics",
    "encode_labels",
    "sha256_in_uri",
    "sha256_of_file",
    "sha256_of_tree",
    "split_metrics",
    "to_ag_artifact",
    "to_values",
]
