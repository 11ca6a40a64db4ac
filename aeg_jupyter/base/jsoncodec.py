"""JSON encoding and decoding with fixed settings, built once (the hot paths encode per call)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

MAX_JSON_DEPTH = 100  # deeper JSON is shown as text: pandas and IPython render nested values recursively
_ONE_KIND = bytes.maketrans(b"{}", b"[]")
_NOT_BRACKETS = bytes(c for c in range(256) if c not in b"[]{}")


class JsonTooDeepError(ValueError):
    """JSON nested more than ``MAX_JSON_DEPTH`` levels (a ``ValueError``, like any JSON that will not decode)."""


def json_deeper_than(text: str | bytes, limit: int) -> bool:
    """True if ``text``'s arrays and objects nest more than ``limit`` levels (brackets in strings do not count).

    NOTE: strings are cut out by ``split`` on quotes and everything but brackets by ``bytes.translate``;
    a run of ``limit + 1`` opening brackets answers at once, otherwise each ``replace`` pass removes
    one level (the innermost pairs). All in C: a 100k-level document is refused in milliseconds.

    Example:
        >>> json_deeper_than('{"a": [1, [2]], "b": "[[[["}', 2), json_deeper_than("[[1], [2]]", 2)
        (True, False)
    """
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else bytes(text)
    if b'"' in data:  # drop escapes, then every other piece between quotes is inside a string
        if b"\\" in data:
            data = data.replace(b"\\\\", b"").replace(b'\\"', b"")
        data = b"".join(data.split(b'"')[::2])
    brackets = data.translate(_ONE_KIND, _NOT_BRACKETS)
    if b"[" * (limit + 1) in brackets:
        return True
    for _ in range(limit):
        if not brackets:
            return False
        inner = brackets.replace(b"[]", b"")
        if inner == brackets:  # not well nested: json.loads will say what is wrong
            return False
        brackets = inner
    return bool(brackets)


def loads_limited(text: str | bytes, max_depth: int | None = MAX_JSON_DEPTH) -> Any:
    """``json.loads``, refusing JSON nested more than ``max_depth`` levels (it would break whoever walks it).

    With ``max_depth=None`` only what Python's recursion limit cannot decode is refused.

    NOTE: the depth is looked at only when the text holds more brackets than ``max_depth`` (two
    ``count`` calls in C), so ordinary payloads pay nothing for the check.

    Raises:
        JsonTooDeepError: nested too deeply (a ``ValueError``).
        ValueError: not JSON.

    Example:
        >>> loads_limited("[[1]]")
        [[1]]
    """
    if max_depth is not None:
        if isinstance(text, str):
            many = text.count("[") + text.count("{") > max_depth
        else:
            many = text.count(b"[") + text.count(b"{") > max_depth
        if many and json_deeper_than(text, max_depth):
            raise JsonTooDeepError(f"JSON nested more than {max_depth} levels deep")
    try:
        return json.loads(text)
    except RecursionError:
        raise JsonTooDeepError("JSON nested deeper than Python's recursion limit") from None


def json_chunk_encoder(*, compact: bool = False, ascii: bool = False) -> Callable[[Any, int], Sequence[str]]:
    """json's C encoder with fixed settings: ``encode(obj, 0)`` gives the text in chunks to join.

    For a hot path that joins the chunks itself (one Python frame less than :func:`json_encoder`).
    It keeps no circular-reference markers: a cycle raises ``RecursionError`` instead of ``ValueError``.
    """
    item_sep, key_sep = (",", ":") if compact else (", ", ": ")
    basestring = json.encoder.encode_basestring_ascii if ascii else json.encoder.encode_basestring
    make = json.encoder.c_make_encoder
    if make is None:  # no C accelerator (not CPython): the standard encoder
        encoder = json.JSONEncoder(separators=(item_sep, key_sep), ensure_ascii=ascii)
        return lambda obj, _level: (encoder.encode(obj),)

    def default(o: Any) -> Any:
        raise TypeError(f"Object of type {o.__class__.__name__} is not JSON serializable")

    return make(None, default, basestring, None, key_sep, item_sep, False, False, True)  # type: ignore[no-any-return]


def json_encoder(*, compact: bool = False, ascii: bool = False) -> Callable[[Any], str]:
    """``json.dumps`` with fixed settings, without its per-call set-up.

    ``json.JSONEncoder.encode`` builds a new C encoder on every call; this builds it once. It keeps
    no circular-reference markers: a cycle raises ``RecursionError`` instead of ``ValueError``.
    """
    c_encode = json_chunk_encoder(compact=compact, ascii=ascii)
    join = "".join

    def encode(obj: Any) -> str:
        return join(c_encode(obj, 0))

    return encode


def json_decoder() -> Callable[[str], Any]:
    """``json.loads`` for text the store wrote, ~2x faster on small documents.

    It calls json's C scanner directly, skipping the two whitespace regex matches and Python
    frames around it (opening a big store decodes two small objects per artifact); anything the scanner
    does not consume whole (whitespace, garbage) goes through ``json.loads`` itself.
    """
    scan = json.scanner.make_scanner(json.JSONDecoder())  # type: ignore[no-untyped-call]
    loads = json.loads

    def decode(text: str) -> Any:
        try:
            obj, end = scan(text, 0)
        except StopIteration:
            return loads(text)  # raises json's own error
        return obj if end == len(text) else loads(text)

    return decode
