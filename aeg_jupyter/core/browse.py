"""Browsing artifacts: filter by kind / labels / free text, and a bounded preview of one artifact.

The core behind the panel's Artifacts tab (no IPython, no widgets). A preview never reads more
than ``max_bytes`` of a file (``max_image_bytes`` for an image), never more than one record batch
of a table, and lists at most ``max_entries`` files of a directory, so selecting a 10 GB artifact
costs the same as selecting a small one.

Example:
    >>> index = aeg_jupyter.connect("/tmp/store").store.artifacts          # doctest: +SKIP
    >>> arts = find_artifacts(index, kind="plot", text="loss", limit=20)    # doctest: +SKIP
    >>> preview(index, arts[0]).kind                                        # doctest: +SKIP
    'image'
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from ..base.errors import AegError, InvalidInputError, NotFoundError
from ..base.models import Artifact, ScopeFilter
from ..base.models import _human_size as _size
from .artifacts import ArtifactRef, ArtifactStore

if TYPE_CHECKING:
    import pandas as pd

PreviewKind = Literal["image", "text", "json", "table", "dir", "binary", "missing"]

IMAGE_FORMATS = {
    "image/png": "png", "image/jpeg": "jpeg", "image/gif": "gif", "image/webp": "webp",
    "image/bmp": "bmp", "image/svg+xml": "svg+xml",
}  # fmt: skip
_MAGIC = [(b"\x89PNG\r\n\x1a\n", "png"), (b"\xff\xd8\xff", "jpeg"), (b"GIF87a", "gif"), (b"GIF89a", "gif")]
_TEXT_EXT = {
    ".txt", ".md", ".rst", ".log", ".py", ".yaml", ".yml", ".toml", ".ini", ".cfg", ".jsonl", ".ndjson",
    ".xml", ".html", ".sh", ".r", ".sql", ".tex",
}  # fmt: skip
_TABLE_EXT = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".tsv": "tsv"}


@dataclass(slots=True)
class Preview:
    """What the panel shows for one artifact; only the fields of its ``kind`` are set.

    ``note`` says what part is shown (e.g. "first 40 of 1,204 lines"), ``truncated`` whether
    something was left out.
    """

    kind: PreviewKind
    artifact: Artifact
    text: str | None = None
    image: bytes | None = None
    image_format: str | None = None
    frame: pd.DataFrame | None = None
    entries: list[dict[str, Any]] = field(default_factory=list)
    note: str = ""
    truncated: bool = False


def parse_label_filter(text: str) -> dict[str, str]:
    """``"exp=A, seed=3"`` -> ``{"exp": "A", "seed": "3"}`` (values stay text; see :func:`label_matches`).

    Raises:
        InvalidInputError: a part has no ``=``.

    Example:
        >>> parse_label_filter("exp=A, seed=3")
        {'exp': 'A', 'seed': '3'}
    """
    out: dict[str, str] = {}
    for part in (text or "").split(","):
        part = part.strip()
        if not part:
            continue
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise InvalidInputError(f"label filter {part!r} should look like key=value, e.g. exp=A")
        out[key.strip()] = value.strip()
    return out


def label_matches(value: Any, wanted: str) -> bool:
    """Whether a stored label value matches the text typed for it (``3`` matches ``"3"`` and ``"3.0"``).

    Example:
        >>> label_matches(True, "true"), label_matches(3, "3.0"), label_matches("A", "a")
        (True, True, False)
    """
    if isinstance(value, bool):
        return wanted.lower() == str(value).lower()
    if isinstance(value, int | float):
        try:
            return float(wanted) == float(value)
        except ValueError:
            return False
    return str(value) == wanted


def find_artifacts(
    index: ArtifactStore,
    *,
    kind: str | None = None,
    labels: Mapping[str, str] | None = None,
    text: str = "",
    where: ScopeFilter = ScopeFilter(),
    limit: int = 200,
) -> list[Artifact]:
    """Live artifacts, newest first, matching ``kind``, every label (as typed text) and ``text``.

    ``text`` is a case-insensitive substring of the name, kind, id, run, or a ``key=value`` label.

    Example:
        >>> find_artifacts(index, labels={"exp": "A"}, text="ckpt", limit=5)   # doctest: +SKIP
    """
    needle = (text or "").strip().lower()
    wanted = list((labels or {}).items())
    out: list[Artifact] = []
    for art in index.list(kind=kind or None, where=where):
        if wanted and not all(k in art.labels and label_matches(art.labels[k], v) for k, v in wanted):
            continue
        if needle and needle not in _haystack(art):
            continue
        out.append(art)
        if len(out) >= limit:
            break
    return out


def _haystack(art: Artifact) -> str:
    parts = [art.name or "", art.kind, art.artifact_id, art.run_id or ""]
    parts.extend(f"{k}={v}" for k, v in art.labels.items())
    return "\n".join(parts).lower()


def preview_format(art: Artifact, head: bytes = b"") -> str:
    """How to preview an artifact: ``"dir"``, ``"image:<fmt>"``, ``"json"``, ``"table:<fmt>"``, ``"text"`` or ``"binary"``.

    Decided by the MIME type and file extension, then by the first bytes (``head``).

    Example:
        >>> preview_format(Artifact("01", "cas://blake3/00", "plot", name="a.png", mime="image/png"))
        'image:png'
    """
    if art.is_dir:
        return "dir"
    mime = (art.mime or "").split(";")[0].strip().lower()
    ext = os.path.splitext(art.name or "")[1].lower()
    if mime in IMAGE_FORMATS:
        return "image:" + IMAGE_FORMATS[mime]
    if ext in _TABLE_EXT:
        return "table:" + _TABLE_EXT[ext]
    if mime == "application/json" or ext == ".json":
        return "json"
    if mime.startswith("text/") or ext in _TEXT_EXT:
        return "text"
    for magic, fmt in _MAGIC:
        if head.startswith(magic):
            return "image:" + fmt
    if head.startswith(b"PAR1"):
        return "table:parquet"
    if head and b"\x00" not in head[:4096]:
        try:
            head[:4096].decode("utf-8")
            return "text"
        except UnicodeDecodeError as exc:
            if exc.start >= len(head[:4096]) - 3:  # a character cut at the end of the sample
                return "text"
    return "binary"


def preview(
    index: ArtifactStore,
    ref: ArtifactRef,
    *,
    max_bytes: int = 256 * 1024,
    max_lines: int = 40,
    max_rows: int = 10,
    max_entries: int = 200,
    max_image_bytes: int = 5 * 1024 * 1024,
) -> Preview:
    """A bounded preview of one artifact (see the module docstring for the bounds).

    Example:
        >>> p = preview(index, "7Q2M4K1Z", max_lines=10)   # doctest: +SKIP
        >>> p.kind, p.note                                   # doctest: +SKIP
        ('json', 'first 10 of 52 lines')
    """
    art = index.get(ref)
    if art.is_dir:
        try:
            entries = index.manifest(art)
        except AegError as exc:
            return Preview("missing", art, note=str(exc))
        files = [e for e in entries if e.get("blob")]
        shown = entries[:max_entries]
        note = f"{len(files)} files, {_size(art.size)}"
        if len(entries) > max_entries:
            note += f"; first {max_entries} of {len(entries)} entries"
        return Preview("dir", art, entries=list(shown), note=note, truncated=len(entries) > max_entries)
    blobs = index.blobs
    try:
        head = blobs.read_head(art.blob_id, max_bytes)
    except NotFoundError:
        return Preview("missing", art, note=f"the bytes of {art.artifact_id} are missing from the store; run verify()")
    fmt = preview_format(art, head)
    whole = len(head) >= art.size
    if fmt.startswith("image:"):
        if art.size > max_image_bytes:
            return Preview(
                "binary", art, note=f"{_size(art.size)} image: too large to preview (over {_size(max_image_bytes)})"
            )
        data = head if whole else blobs.read_head(art.blob_id, max_image_bytes)
        return Preview("image", art, image=data, image_format=fmt.split(":", 1)[1], note=_size(art.size))
    if fmt.startswith("table:"):
        from .frames import table_head

        source: str | io.BytesIO = blobs.path(art.blob_id)
        if not blobs.exists(art.blob_id):  # format 2: small content is inline in its row, not a file
            source = io.BytesIO(head if whole else blobs.read_bytes(art.blob_id))
        try:
            frame, total, ncols = table_head(source, fmt=fmt.split(":", 1)[1], rows=max_rows)
        except Exception as exc:  # a damaged or mislabelled file: say so, never crash the panel
            return Preview("binary", art, note=f"not a readable table ({type(exc).__name__}: {exc})")
        if total is None:
            note = f"first {len(frame):,} rows x {ncols:,} columns"
        elif total > len(frame):
            note = f"first {len(frame):,} of {total:,} rows x {ncols:,} columns"
        else:
            note = f"{total:,} rows x {ncols:,} columns"
        return Preview("table", art, frame=frame, note=note, truncated=total is None or total > len(frame))
    if fmt in ("json", "text"):
        text = head.decode("utf-8", errors="replace")
        kind: PreviewKind = "text"
        if fmt == "json" and whole:
            try:
                text = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
                kind = "json"
            except ValueError:
                pass
        lines = text.splitlines()
        shown = lines[:max_lines]
        truncated = len(lines) > max_lines or not whole
        of = f"{len(lines):,} lines" if whole else f"{_size(art.size)}"
        note = f"first {len(shown)} of {of}" if truncated else f"{len(lines):,} lines"
        return Preview(kind, art, text="\n".join(shown), note=note, truncated=truncated)
    if head.startswith(b"\x93NUMPY"):
        return Preview("binary", art, note=npy_summary(head, art.size))
    return Preview("binary", art, note=f"{_size(art.size)}, {art.mime or 'unknown type'}")


def npy_summary(head: bytes, size: int) -> str:
    """What a ``.npy`` file holds, from its header alone: ``"numpy array, shape (3, 4), float64, 224 B"``.

    Example:
        >>> import io, numpy as np
        >>> buf = io.BytesIO(); np.save(buf, np.zeros((3, 4)))
        >>> npy_summary(buf.getvalue()[:256], len(buf.getvalue()))
        'numpy array, shape (3, 4), float64, 224 B'
    """
    import io

    from numpy.lib import format as npy

    try:
        f = io.BytesIO(head)
        version = npy.read_magic(f)
        read_header = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
        shape, fortran, dtype = read_header(f)  # the header only, never the data
    except Exception:  # a damaged header: say what is known
        return f"numpy array (unreadable header), {_size(size)}"
    order = ", Fortran order" if fortran and len(shape) > 1 else ""
    return f"numpy array, shape {tuple(shape)}, {dtype}{order}, {_size(size)}"


__all__ = ["Preview", "find_artifacts", "label_matches", "parse_label_filter", "preview", "preview_format"]
