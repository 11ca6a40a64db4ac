"""Errors raised on purpose by aeg_jupyter.

Every message says what went wrong *and* what to do next. The magics turn these into one-line
``UsageError``s; plain Python callers can catch :class:`AegError`.
"""

from __future__ import annotations

from collections.abc import Iterable


class AegError(Exception):
    """Base class of every error aeg_jupyter raises on purpose."""


class InvalidInputError(AegError, ValueError):
    """An argument is not acceptable; the store was not changed."""


class NotFoundError(AegError, KeyError):
    """No artifact, blob or path matches what was asked for."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class AnswerExpiredError(NotFoundError):
    """A lazy answer (a format-2 search or list) was found on a snapshot whose data files a vacuum has
    removed since; running the query again answers from the current snapshot."""


class AmbiguousIdError(AegError, KeyError):
    """An id prefix matches more than one artifact."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class StoreFormatError(AegError):
    """The store root is not a store this version can open."""


class CorruptionError(AegError):
    """Stored bytes no longer match their content address."""


class StoreWriteError(AegError, OSError):
    """Writing to the store failed (disk full, permissions); nothing was committed."""


class ObjectStoreError(AegError):
    """An object store (an ``s3://`` root) refused or could not be reached; the message names the bucket."""


class PickleNotAllowedError(AegError):
    """Loading a pickle runs code; it needs ``allow_pickle=True``."""


class StoreWarning(UserWarning):
    """Something in the store was damaged and skipped; the message names the file."""


class ScopeHint(UserWarning):
    """An empty answer in one scope while ``scope="all"`` holds matches; the message gives the count and the call."""


SECRET_OPTIONS = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID")  # storage_options that are secrets


def scrub_secrets(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with every one of ``secrets`` replaced by ``***`` (messages made from a server's or a
    library's text). Secrets shorter than 6 characters are left: they would mangle words, and real keys
    are 16-40+ characters.

    Example:
        >>> scrub_secrets("denied for key AKIA1234567890", ["AKIA1234567890", None])
        'denied for key ***'
    """
    for secret in secrets:
        if secret and len(secret) >= 6:
            text = text.replace(secret, "***")
    return text
