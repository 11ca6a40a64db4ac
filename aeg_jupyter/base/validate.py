"""Checks on what users pass in: each returns the clean value or raises InvalidInputError."""

from __future__ import annotations

import math
import numbers
import os
import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, Literal

from .errors import InvalidInputError

MAX_KIND_LEN = 120
Mode = Literal["max", "min"]
MAX_LABELS = 64
MAX_LABEL_CHARS = 4096
MAX_NAME_CHARS = 200
MAX_DURATION = timedelta(days=365 * 1000)  # a retention rule older than this cannot mean anything


def check_utf8(text: str, what: str) -> str:
    """``text`` if UTF-8 can store it (it holds no lone surrogate such as ``"\\ud800"``).

    Raises:
        InvalidInputError: it holds one; the message says how to clean it.
    """
    if text.isascii():  # the usual case, one C call (hot path: every `record` checks its kind)
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInputError(
            f"{what} {text[:40]!r} holds a lone surrogate ({text[exc.start]!r}) that UTF-8 cannot store; "
            "clean it first, e.g. s.encode('utf-8', 'replace').decode()"
        ) from None
    return text


__all__ = ["check_kind", "check_labels", "check_limit", "check_metrics", "check_name", "parse_duration"]


def check_kind(kind: object) -> str:
    """Validate an artifact or event kind and return it.

    Raises:
        InvalidInputError: ``kind`` is not a non-empty string of at most 120 characters.
    """
    if not isinstance(kind, str) or not kind.strip():
        raise InvalidInputError(f"kind must be a non-empty string such as 'checkpoint' or 'report', got {kind!r}")
    if len(kind) > MAX_KIND_LEN:
        raise InvalidInputError(f"kind is {len(kind)} characters long; keep it to {MAX_KIND_LEN} or fewer")
    if "\x00" in kind:
        raise InvalidInputError("kind must not contain NUL characters")
    return check_utf8(kind, "kind")


def check_name(name: object, what: str) -> str:
    """A label key, metric name or output name: a non-empty string without NUL."""
    if not isinstance(name, str) or not name:
        raise InvalidInputError(f"{what} names must be non-empty strings, got {name!r}")
    if len(name) > MAX_NAME_CHARS or "\x00" in name:
        raise InvalidInputError(
            f"{what} name {name[:40]!r}... is too long or has NUL; keep it under {MAX_NAME_CHARS} characters"
        )
    return check_utf8(name, f"{what} name")


def check_labels(labels: Mapping[str, Any] | None) -> dict[str, Any]:
    """Labels are ``{str: str | int | float | bool}`` with finite numbers.

    Example:
        >>> check_labels({"exp": "A", "seed": 3})
        {'exp': 'A', 'seed': 3}
    """
    if labels is None:
        return {}
    if not isinstance(labels, Mapping):
        raise InvalidInputError(f"labels must be a dict such as {{'exp': 'A'}}, got {type(labels).__name__}")
    if len(labels) > MAX_LABELS:
        raise InvalidInputError(
            f"{len(labels)} labels given; keep to {MAX_LABELS} (labels are filters, put data in JSON)"
        )
    out: dict[str, Any] = {}
    for k, v in labels.items():
        check_name(k, "label")
        if isinstance(v, bool | str):
            if isinstance(v, str) and len(v) > MAX_LABEL_CHARS:
                raise InvalidInputError(
                    f"label {k!r} is {len(v)} characters; keep labels under {MAX_LABEL_CHARS} (save long text with save_text)"
                )
            out[k] = v
        elif isinstance(v, numbers.Integral):
            out[k] = int(v)
        elif isinstance(v, numbers.Real):
            f = float(v)
            if not math.isfinite(f):
                raise InvalidInputError(f"label {k!r} is {f}; label values must be finite numbers or strings")
            out[k] = f
        else:
            raise InvalidInputError(
                f"label {k!r} has a {type(v).__name__} value; labels take str, int, float or bool (convert it, e.g. str(value))"
            )
    return out


def check_metrics(metrics: Mapping[str, Any] | None) -> dict[str, float]:
    """Metrics are ``{str: finite number}``, stored as floats.

    Example:
        >>> check_metrics({"val_acc": 0.9, "epoch": 3})
        {'val_acc': 0.9, 'epoch': 3.0}
    """
    if metrics is None:
        return {}
    if not isinstance(metrics, Mapping):
        raise InvalidInputError(f"metrics must be a dict such as {{'val_acc': 0.91}}, got {type(metrics).__name__}")
    out: dict[str, float] = {}
    for k, v in metrics.items():
        check_name(k, "metric")
        if isinstance(v, bool) or not isinstance(v, numbers.Real):
            raise InvalidInputError(f"metric {k!r} must be a number, got {type(v).__name__} {v!r}")
        f = float(v)
        if not math.isfinite(f):
            raise InvalidInputError(
                f"metric {k!r} is {f}; metrics must be finite numbers (drop it or record it as a label)"
            )
        out[k] = f
    return out


def check_limit(limit: object, *, allow_none: bool = False) -> int | None:
    """A row limit: a non-negative int (or ``None`` where allowed)."""
    if limit is None and allow_none:
        return None
    if isinstance(limit, bool) or not isinstance(limit, numbers.Integral) or limit < 0:
        raise InvalidInputError(f"limit must be a non-negative integer, got {limit!r}")
    return int(limit)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: str | float | int | timedelta | None) -> timedelta | None:
    """``"7d"``, ``"12h"``, ``"30m"``, seconds, or a timedelta -> timedelta.

    Example:
        >>> parse_duration("2h")
        datetime.timedelta(seconds=7200)
    """
    if value is None or isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise InvalidInputError(f"not a duration: {value!r}")
    if isinstance(value, numbers.Real):
        seconds = float(value)
        if math.isnan(seconds) or seconds < 0:
            raise InvalidInputError(f"a duration must be a number of seconds >= 0 or text like '7d', got {value!r}")
    else:
        m = _DURATION.match(str(value))
        if not m:
            raise InvalidInputError(f"not a duration: {value!r}; write it like '30m', '12h', '7d' or '2w'")
        seconds = float(m.group(1)) * _UNITS[m.group(2)]
    if seconds > MAX_DURATION.total_seconds():
        raise InvalidInputError(
            f"the duration {value!r} is longer than 1000 years; give a shorter one such as '365d' "
            "(or none, to collect only what no artifact uses)"
        )
    return timedelta(seconds=seconds)


def check_mode(mode: object) -> Mode:
    """A ranking direction: ``"max"`` (higher is better) or ``"min"``.

    Example:
        >>> check_mode("min")
        'min'
    """
    if mode not in ("max", "min"):
        raise InvalidInputError(f"mode must be 'max' or 'min', not {mode!r}")
    return mode  # type: ignore[return-value]


def safe_file_name(name: str | bytes | None) -> str | None:
    """The last path component of ``name`` if it is a usable file name, else ``None``.

    A ``bytes`` name (a file's name as the OS gives it) is decoded as the OS would (``os.fsdecode``).

    Raises:
        InvalidInputError: the name is not valid UTF-8 (undecodable bytes, or a lone surrogate).

    Example:
        >>> safe_file_name("../../etc/passwd"), safe_file_name(".."), safe_file_name(b"dir/model.pt")
        ('passwd', None, 'model.pt')
    """
    if not name:
        return None
    if isinstance(name, bytes):
        name = os.fsdecode(name)
    if not name.isascii():
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidInputError(
                f"the file name {name!r} is not valid UTF-8 (undecodable bytes, or a lone surrogate); "
                "pass a readable one, e.g. name='data.bin'"
            ) from None
    base = name.replace("\\", "/").rsplit("/", 1)[-1].replace("\x00", "")
    if base in ("", ".", "..") or len(base.encode()) > 200:
        return None
    return base
