"""The environment of a run: Python, the installed distributions, git, the platform (stdlib only).

:func:`capture_environment` reads what a run needs to be made again, never a secret: no
environment variable is read into it. It never raises: whatever cannot be read becomes a line of
``notes``. The result is kept as ``aeg.env`` artifacts of the run (see :func:`environment_parts`):
the packages as their own JSON document, so runs with the same distributions share one blob.

Example:
    >>> env = capture_environment(git_dir=None)
    >>> sorted(env)[:3]
    ['executable', 'git', 'notes']
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

MAX_DIFF_BYTES = 1 << 20  # an uncommitted diff above this is cut, with a note saying so
GIT_TIMEOUT = 10.0  # seconds per git command


def installed_distributions(paths: Iterable[str] | None = None) -> dict[str, str]:
    """``{name: version}`` of every distribution importable from ``paths`` (default ``sys.path``).

    Read from the ``NAME-VERSION.dist-info`` / ``.egg-info`` folder names (a header of the
    metadata file when a name carries no version), the first one found for a name winning, as
    for an import; names normalized (PEP 503). NOTE: ``importlib.metadata`` parses every METADATA
    file whole: 2-3 s for 200 distributions on a busy machine, against a few ms here.

    Example:
        >>> "pip" in installed_distributions() or True
        True
    """
    out: dict[str, str] = {}
    for entry in list(paths) if paths is not None else list(sys.path):
        try:
            names = sorted(e.name for e in os.scandir(entry or ".") if e.name.endswith((".dist-info", ".egg-info")))
        except OSError:
            continue
        for folder in names:
            stem = folder.rsplit(".", 1)[0]
            name, _, version = stem.partition("-")
            version = version.split("-py")[0] if folder.endswith(".egg-info") else version
            if not version:
                name, version = _metadata_header(os.path.join(entry or ".", folder), name)
            key = _normalize(name)
            if key and key not in out:
                out[key] = version
    return dict(sorted(out.items()))


def _metadata_header(folder: str, name: str) -> tuple[str, str]:
    """(Name, Version) from the header lines of a METADATA / PKG-INFO file (stops at the body)."""
    version = ""
    for file in ("METADATA", "PKG-INFO"):
        try:
            with open(os.path.join(folder, file), encoding="utf-8", errors="replace") as f:
                for line in f:
                    if not line.strip():
                        break
                    key, _, value = line.partition(":")
                    if key == "Name":
                        name = value.strip()
                    elif key == "Version":
                        version = value.strip()
            break
        except OSError:
            continue
    return name, version


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _git(args: list[str], cwd: str, timeout: float) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL", "SYSTEMROOT")}
    env["GIT_OPTIONAL_LOCKS"] = "0"  # a read must never take the index lock of the user's repository
    return subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, timeout=timeout, env=env, stdin=subprocess.DEVNULL
    )


def git_state(directory: str, *, max_diff: int = MAX_DIFF_BYTES, timeout: float = GIT_TIMEOUT) -> dict[str, Any]:
    """The git commit of the work tree holding ``directory`` and its uncommitted diff (bounded).

    Returns ``{"repo": None, "note": ...}`` outside a work tree or without git; otherwise
    ``{"repo", "commit", "branch", "dirty", "diff", "diff_bytes", "truncated", "note"}``. The diff
    (``git diff HEAD``, tracked files) is read as a stream and cut at ``max_diff`` bytes.

    Example:
        >>> git_state("/")["repo"] is None or True
        True
    """
    if not os.path.isdir(directory):
        return {"repo": None, "note": f"{directory} is not a directory: no commit recorded"}
    try:
        top = _git(["rev-parse", "--show-toplevel"], directory, timeout)
    except FileNotFoundError:
        return {"repo": None, "note": "git is not installed: no commit recorded"}
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"repo": None, "note": f"git could not be asked ({type(exc).__name__}): no commit recorded"}
    if top.returncode != 0:
        return {"repo": None, "note": f"{directory} is not in a git work tree: no commit recorded"}
    repo = top.stdout.decode("utf-8", "replace").strip()
    out: dict[str, Any] = {"repo": repo, "commit": None, "branch": None, "dirty": False, "diff": "",
                           "diff_bytes": 0, "truncated": False, "note": None}  # fmt: skip
    head = _git(["rev-parse", "HEAD"], repo, timeout)
    if head.returncode != 0:
        out["note"] = "the repository has no commit yet"
        return out
    out["commit"] = head.stdout.decode().strip()
    branch = _git(["rev-parse", "--abbrev-ref", "HEAD"], repo, timeout)
    out["branch"] = branch.stdout.decode().strip() if branch.returncode == 0 else None
    diff, total, truncated = _bounded_diff(repo, max_diff, timeout)
    out.update(dirty=total > 0, diff=diff, diff_bytes=total, truncated=truncated)
    if truncated:
        out["note"] = f"the uncommitted diff is {total} bytes; only its first {max_diff} bytes are kept"
    return out


def _bounded_diff(repo: str, max_diff: int, timeout: float) -> tuple[str, int, bool]:
    """(the first ``max_diff`` bytes of ``git diff HEAD`` as text, its whole size, cut?)."""
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL", "SYSTEMROOT")}
    env["GIT_OPTIONAL_LOCKS"] = "0"
    proc = subprocess.Popen(
        ["git", "diff", "HEAD", "--no-color", "--no-ext-diff"],
        cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, env=env,
    )  # fmt: skip
    kept = bytearray()
    total = 0
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    try:
        assert proc.stdout is not None
        while chunk := proc.stdout.read(1 << 16):
            total += len(chunk)
            if len(kept) < max_diff:
                kept += chunk[: max_diff - len(kept)]
        proc.wait()
    finally:
        timer.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = bytes(kept).decode("utf-8", "replace")
    return text, total, total > max_diff


def capture_environment(
    *,
    git_dir: str | None = None,
    paths: Iterable[str] | None = None,
    max_diff: int = MAX_DIFF_BYTES,
    timeout: float = GIT_TIMEOUT,
) -> dict[str, Any]:
    """What a run ran on: ``python``, ``executable``, ``platform``, ``packages``, ``git``, ``notes``.

    Never raises and never reads environment variables: a part that cannot be read is a line of
    ``notes``. ``git_dir`` is where the notebook (or script) lives (``None``: no git lookup);
    ``paths`` where distributions are looked up (default ``sys.path``).

    Example:
        >>> env = capture_environment(git_dir=None)
        >>> env["python"] == platform.python_version()
        True
    """
    notes: list[str] = []
    env: dict[str, Any] = {"python": None, "executable": None, "platform": None, "packages": {}, "git": None}

    def part(name: str, read: Callable[[], Any]) -> None:
        try:
            env[name] = read()
        except Exception as exc:  # capture never fails a run
            notes.append(f"{name}: could not be read ({type(exc).__name__}: {exc})")

    part("python", platform.python_version)
    part("executable", lambda: sys.executable)
    part("platform", lambda: {"system": platform.system(), "release": platform.release(),
                              "machine": platform.machine(), "implementation": platform.python_implementation()})  # fmt: skip
    part("packages", lambda: installed_distributions(paths))
    if git_dir is None:
        env["git"] = {"repo": None, "note": "no notebook or script directory known: no commit recorded"}
    else:
        part("git", lambda: git_state(git_dir, max_diff=max_diff, timeout=timeout))
    git = env.get("git") or {}
    if git.get("note"):
        notes.append(f"git: {git['note']}")
    env["notes"] = notes
    return env


@dataclass(frozen=True, slots=True)
class EnvPart:
    """One ``aeg.env`` artifact of a run: its ``part`` label, file name, bytes and MIME type."""

    part: str
    name: str
    data: bytes
    mime: str


def environment_parts(env: dict[str, Any]) -> list[EnvPart]:
    """The artifacts a captured environment is kept as: ``environment`` (everything but the
    packages and the diff), ``packages`` (sorted ``{name: version}``: the same set is the same
    blob in every run) and, when the work tree is dirty, ``git-diff``.

    Example:
        >>> [p.part for p in environment_parts({"packages": {"a": "1"}, "git": None, "notes": []})]
        ['environment', 'packages']
    """
    doc = {k: v for k, v in env.items() if k != "packages"}
    git = dict(doc.get("git") or {})
    diff = git.pop("diff", "") or ""
    if git:
        doc["git"] = git
    packages = json.dumps(env.get("packages") or {}, sort_keys=True, indent=0).encode()
    parts = [
        EnvPart("environment", "environment.json", json.dumps(doc, sort_keys=True).encode(), "application/json"),
        EnvPart("packages", "packages.json", packages, "application/json"),
    ]
    if diff:
        parts.append(EnvPart("git-diff", "uncommitted.diff", diff.encode(), "text/x-diff"))
    return parts


class BackgroundCapture:
    """:func:`capture_environment` started in a thread (``%load_ext`` stays fast); :meth:`result`
    waits for it. Any failure reads as an environment whose notes say so.

    Example:
        >>> cap = BackgroundCapture(git_dir=None); cap.result()["python"] == platform.python_version()
        True
    """

    def __init__(self, **kwargs: Any) -> None:
        self._kwargs = kwargs
        self._result: dict[str, Any] | None = None
        self._thread = threading.Thread(target=self._run, name="aeg-environment", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._result = capture_environment(**self._kwargs)
        except BaseException as exc:
            self._result = {"notes": [f"capture failed: {type(exc).__name__}: {exc}"], "packages": {}, "git": None}

    def again(self) -> BackgroundCapture:
        """A new capture with the same arguments, started now (a new run's environment)."""
        return BackgroundCapture(**self._kwargs)

    def result(self, timeout: float = 60.0) -> dict[str, Any]:
        """The captured environment (waits up to ``timeout`` seconds, then a note says it timed out)."""
        self._thread.join(timeout)
        if self._result is None:
            return {"notes": [f"capture did not finish in {timeout:.0f} s"], "packages": {}, "git": None}
        return self._result


__all__ = [
    "MAX_DIFF_BYTES",
    "BackgroundCapture",
    "EnvPart",
    "capture_environment",
    "environment_parts",
    "git_state",
    "installed_distributions",
]
