"""Loaded by every child interpreter of tests/aethergraph (this directory is first on its PYTHONPATH):
any connection or name lookup that is not for this machine raises, and is written to
``$AEG_NETGUARD_LOG`` so that a test fails even when the code under test swallows the error."""

from __future__ import annotations

import os
import socket

_LOCAL = {"127.0.0.1", "::1", "localhost", "0.0.0.0", "", None}
_LOG = os.environ.get("AEG_NETGUARD_LOG")


def _refuse(what: str) -> OSError:
    if _LOG:
        with open(_LOG, "a", encoding="utf-8") as f:
            f.write(f"{os.getpid()} {what}\n")
    return OSError(f"aeg test network guard: outside connection refused: {what}")


def _check(sock: socket.socket, address: object) -> None:
    if sock.family in (socket.AF_INET, socket.AF_INET6) and isinstance(address, tuple):
        host = address[0]
        if host not in _LOCAL and not str(host).startswith("127."):
            raise _refuse(f"connect {address!r}")


_connect, _connect_ex = socket.socket.connect, socket.socket.connect_ex
_sendto = socket.socket.sendto
_getaddrinfo = socket.getaddrinfo


def connect(self: socket.socket, address: object) -> None:
    _check(self, address)
    return _connect(self, address)


def connect_ex(self: socket.socket, address: object) -> int:
    _check(self, address)
    return _connect_ex(self, address)


def sendto(self: socket.socket, data: bytes, *args: object) -> int:
    _check(self, args[-1])
    return _sendto(self, data, *args)  # type: ignore[arg-type]


def getaddrinfo(host: object, *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
    h = host.decode() if isinstance(host, bytes) else host
    if h not in _LOCAL and not str(h).startswith("127."):
        raise _refuse(f"getaddrinfo {h!r}")
    return _getaddrinfo(host, *args, **kwargs)  # type: ignore[arg-type]


socket.socket.connect = connect  # type: ignore[method-assign]
socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]
socket.socket.sendto = sendto  # type: ignore[method-assign,assignment]
socket.getaddrinfo = getaddrinfo  # type: ignore[assignment]
