"""``{expr}`` and ``$name`` in a ``%aeg`` line, expanded the way f-strings are (IPython's own expansion is off).

IPython expands ``{expr}`` in a magic's line only when *every* field evaluates as a plain
expression: one format spec (``{loss:.4f}``) or a dict literal (``{"a": 1}``) and it hands the whole
line over raw, so a magic would store the text ``"{lr}"``. ``%aeg`` therefore opts out of IPython's
expansion and calls :func:`expand_line`, which never lets an unexpanded field through:

- ``{expr}``, ``{expr!r}``, ``{expr:.4f}``, ``{x:{width}}`` are evaluated in the user's namespace
  and formatted as an f-string would; a bare ``{expr}`` whose value is a bool, ``None``, a list or
  a dict is written as JSON, so ``flag={ok}`` arrives as ``true``, not the text ``"True"``;
- a brace group that is a JSON object (``nested={"a":1}``) is data and stays as typed;
- ``$name`` / ``$obj.attr`` are evaluated as IPython does (not inside single quotes); ``$$`` is ``$``;
- ``{{`` and ``}}`` are literal braces;
- an expanded value is quoted for where it stands (outside quotes, in ``"..."`` or ``'...'``), so
  it reaches the subcommand as one word, exactly as the expression produced it;
- anything that cannot be evaluated is refused with one line naming the field and the fix.

Example:
    >>> expand_line("log train_log lr={lr} loss={loss:.4f}", {"lr": 0.001, "loss": 0.123456})
    'log train_log lr=0.001 loss=0.1235'
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping
from typing import Any

from .parsing import CommandError

_DOLLAR = re.compile(r"\$([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)")
_OPEN, _CLOSE = "([{", ")]}"


def expand_line(
    line: str, namespace: dict[str, Any], local_ns: Mapping[str, Any] | None = None, *, prefix: str = "%aeg"
) -> str:
    """``line`` with every ``{expr}`` / ``$name`` replaced by its value, quoted for the shell-like split.

    Args:
        line: the magic's line as typed.
        namespace: the user's namespace (globals of the evaluation).
        local_ns: locals where the magic was called (a function body), if any.
        prefix: how the command is typed, for messages.

    Raises:
        CommandError: a field that cannot be evaluated or formatted, or an unmatched ``{``.

    Example:
        >>> expand_line('log x v={v} nested={"a":1} n={{1}}', {"v": [1, 2]})
        'log x v=\\'[1, 2]\\' nested=\\'{"a":1}\\' n={1}'
    """
    if "{" not in line and "}" not in line and "$" not in line:
        return line
    local = namespace if local_ns is None else local_ns
    out: list[str] = []
    quote: str | None = None  # the shell-like quote we are inside: None, "'" or '"'
    i, n = 0, len(line)
    while i < n:
        c = line[i]
        if c == "{" and line.startswith("{{", i):
            out.append("{")
            i += 2
        elif c == "}" and line.startswith("}}", i):
            out.append("}")
            i += 2
        elif c == "{":
            end = _matching_brace(line, i)
            if end < 0:
                raise CommandError(
                    f"{prefix}: unmatched '{{' in {line[i : i + 30]!r}; close it, or write {{{{ for a literal brace"
                )
            text = line[i : end + 1]
            value = text if _is_json_object(text) else _field(text[1:-1], namespace, local, prefix)
            out.append(_quoted(value, quote))
            i = end + 1
        elif c == "$" and quote != "'":
            if line.startswith("$$", i):
                out.append("$")
                i += 2
                continue
            m = _DOLLAR.match(line, i)
            if m is None:
                out.append(c)
                i += 1
                continue
            value = _evaluate(m.group(1), f"${m.group(1)}", namespace, local, prefix)
            out.append(_quoted(_plain(value), quote))
            i = m.end()
        else:
            if quote is None and c in "'\"":
                quote = c
            elif c == quote:
                quote = None
            if c == "\\" and quote != "'" and i + 1 < n:  # an escaped character is never a delimiter
                out.append(line[i : i + 2])
                i += 2
                continue
            out.append(c)
            i += 1
    return "".join(out)


def _field(body: str, namespace: dict[str, Any], local: Mapping[str, Any], prefix: str) -> str:
    """The text of one ``{expr[!conv][:spec]}`` field, as an f-string would produce it."""
    expr, conversion, spec = _split_field(body)
    shown = "{" + body + "}"
    if not expr.strip():
        raise CommandError(f"{prefix}: empty field {shown}; put an expression in it, or write {{{{}}}} for braces")
    if conversion not in (None, "r", "s", "a"):
        raise CommandError(f"{prefix}: {shown}: the conversion must be !r, !s or !a, e.g. {{{expr}!r}}")
    if spec is not None and "{" in spec:
        spec = "".join(_field_or_text(part, namespace, local, prefix) for part in _spec_parts(spec))
    value = _evaluate(expr, shown, namespace, local, prefix)
    if conversion is None and not spec:
        return _plain(value)
    if conversion is not None:
        value = {"r": repr, "s": str, "a": ascii}[conversion](value)
    try:
        return format(value, spec or "")
    except (ValueError, TypeError) as exc:
        raise CommandError(
            f"{prefix}: cannot format {shown}: {exc}; use a format spec for {type(value).__name__}, e.g. {{{expr}}}"
        ) from None


def _evaluate(expr: str, shown: str, namespace: dict[str, Any], local: Mapping[str, Any], prefix: str) -> Any:
    try:
        return eval(expr, namespace, local)  # the user's own expression, in the user's namespace
    except Exception as exc:
        why = f"{type(exc).__name__}: {exc}".splitlines()[0]
        raise CommandError(
            f"{prefix}: cannot expand {shown} ({why}); define what it uses first, "
            "write {{ and }} for literal braces, or $$ for a literal $"
        ) from None


def _plain(value: Any) -> str:
    """A bare field's text: JSON for bools, None, lists and dicts (so they arrive typed), else ``str``."""
    if value is None or isinstance(value, bool | list | tuple | dict):
        try:
            return json.dumps(value, allow_nan=False)
        except (TypeError, ValueError):
            pass
    return str(value)


def _quoted(text: str, quote: str | None) -> str:
    """``text`` written so the shell-like split gives it back whole, wherever it stands."""
    if quote is None:
        return shlex.quote(text)
    if quote == '"':
        return text.replace("\\", "\\\\").replace('"', '\\"')
    return text.replace("'", "'\\''")  # close the quote, an escaped ', reopen


def _is_json_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return False


def _skip_string(s: str, i: int) -> int:
    """The index after the Python string literal starting at ``s[i]`` (a quote), or -1."""
    q = s[i]
    triple = s.startswith(q * 3, i)
    delim = q * 3 if triple else q
    j = i + len(delim)
    while j < len(s):
        if s[j] == "\\":
            j += 2
            continue
        if s.startswith(delim, j):
            return j + len(delim)
        j += 1
    return -1


def _matching_brace(s: str, start: int) -> int:
    """The index of the ``}`` closing the ``{`` at ``start`` (Python brackets and strings nest), or -1."""
    depth = 0
    i = start
    while i < len(s):
        c = s[i]
        if c in "'\"" and i > start:
            i = _skip_string(s, i)
            if i < 0:
                return -1
            continue
        if c in _OPEN:
            depth += 1
        elif c in _CLOSE:
            depth -= 1
            if depth == 0:
                return i if c == "}" else -1
        i += 1
    return -1


def _split_field(body: str) -> tuple[str, str | None, str | None]:
    """``"x!r:>8"`` -> ``("x", "r", ">8")``: the first top-level ``!`` (not ``!=``) or ``:`` ends the expression."""
    depth, i = 0, 0
    while i < len(body):
        c = body[i]
        if c in "'\"":
            j = _skip_string(body, i)
            i = len(body) if j < 0 else j
            continue
        if c in _OPEN:
            depth += 1
        elif c in _CLOSE:
            depth -= 1
        elif depth == 0 and c == "!" and not body.startswith("!=", i):
            rest = body[i + 1 :]
            conv, _, spec = rest.partition(":")
            return body[:i], conv, (spec if ":" in rest else None)
        elif depth == 0 and c == ":":
            return body[:i], None, body[i + 1 :]
        i += 1
    return body, None, None


def _spec_parts(spec: str) -> list[str]:
    """A format spec cut into literal text and ``{...}`` fields (f-strings allow fields in specs)."""
    parts, i = [], 0
    while i < len(spec):
        if spec[i] == "{":
            end = _matching_brace(spec, i)
            end = len(spec) - 1 if end < 0 else end
            parts.append(spec[i : end + 1])
            i = end + 1
        else:
            j = spec.find("{", i)
            j = len(spec) if j < 0 else j
            parts.append(spec[i:j])
            i = j
    return parts


def _field_or_text(part: str, namespace: dict[str, Any], local: Mapping[str, Any], prefix: str) -> str:
    if part.startswith("{") and part.endswith("}"):
        return _field(part[1:-1], namespace, local, prefix)
    return part


__all__ = ["expand_line"]
