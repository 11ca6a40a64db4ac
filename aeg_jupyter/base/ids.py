"""Time-sortable ids: ULIDs (26 Crockford base32 characters, 48 bits of milliseconds then 80
bits that count up from a random start, monotonic within a process) paired with a strictly
increasing microsecond clock."""

from __future__ import annotations

import os
import threading
import time

from .times import CLOCK_OFFSET_US

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_PAIRS = [a + b for a in _CROCKFORD for b in _CROCKFORD]  # 10 bits -> 2 characters
_lock = threading.Lock()
_last_ms = -1
_last_us = 0
_head_cache: tuple[int, str] = (-1, "")  # (millisecond, its 10 characters)


def _random_start() -> int:
    return int.from_bytes(os.urandom(10), "big") >> 1  # 79 of the 80 bits: it never wraps


def _encode_hi(hi: int) -> str:
    """The top 60 bits of the counter as its 12 characters."""
    p = _PAIRS
    return (
        f"{p[(hi >> 50) & 1023]}{p[(hi >> 40) & 1023]}{p[(hi >> 30) & 1023]}{p[(hi >> 20) & 1023]}"
        f"{p[(hi >> 10) & 1023]}{p[hi & 1023]}"
    )


# The 80 bits after the time count up by one per id from a random start drawn at import (and drawn
# again in a forked child, so two processes never share a sequence), not drawn afresh each
# millisecond as in the ULID spec's non-monotonic variant: an id stays unique (two processes collide
# only if their counters' ranges meet in the same millisecond, odds ~ ids / 2**79) and a new
# millisecond costs 5 lookups instead of a system call and 11 (a notebook records after a pause,
# and each such record starts a millisecond: the `record` budget's spaced loop). ULIDs need to be
# unique and ordered, not unguessable: no id here is a secret.
# The counter is held in two parts: its low 20 bits a small int that each id adds one to (no
# arithmetic on an 80-bit int in the common call), its top 60 bits and their characters changed
# once in 2**20 ids.
_hi = _lo = 0
_hi_text = ""


def _reseed() -> None:
    global _hi, _lo, _hi_text
    start = _random_start()
    _hi, _lo = start >> 20, start & 0xFFFFF
    _hi_text = _encode_hi(_hi)


_reseed()
os.register_at_fork(after_in_child=_reseed)


MAX_AHEAD_US = 24 * 3600 * 1_000_000  # a time seen further ahead of our clock than this is not adopted


def observe(ts_us: int) -> None:
    """Note a time another writer stamped: this process's next timestamps come after it.

    A hybrid logical clock: a timestamp is ``max(clock, newest time seen + 1 us)``, so a write is
    never ordered before a write this process had already seen from another, whatever the two
    clocks say. A time more than a day ahead of our clock (a broken or hostile stamp) is ignored,
    so that one bad row cannot drag every later write into the future.

    Example:
        >>> seen = new_ts_id()[0] + 2_000  # another writer's stamp, 2 ms ahead of ours
        >>> observe(seen); new_ts_id()[0] > seen
        True
    """
    global _last_us
    if ts_us <= _last_us:  # the usual case: nothing newer than what we stamped or saw
        return
    if ts_us > time.time_ns() // 1000 + CLOCK_OFFSET_US + MAX_AHEAD_US:
        return
    with _lock:
        if ts_us > _last_us:
            _last_us = ts_us


def new_ts_id(ts_us: int | None = None) -> tuple[int, str]:
    """A timestamp in microseconds, strictly increasing within this process (so ``(ts, id)``
    orders events exactly) and later than every time :func:`observe` was given, and a new ULID of
    the same millisecond, monotonic within the process.

    With ``ts_us`` given, that time is used as it is (the ULID stays monotonic all the same).

    Example:
        >>> (t1, a), (t2, b) = new_ts_id(), new_ts_id(); t1 < t2 and a < b and len(a) == 26
        True
    """
    global _last_us, _last_ms, _hi, _lo, _hi_text, _head_cache
    p = _PAIRS
    _lock.acquire()  # (not `with`: ~65 ns less a call, the `record` budget; the finally releases it)
    try:
        if ts_us is None:
            t = time.time_ns() // 1000 + CLOCK_OFFSET_US  # = times.now_us(), inlined (the `record` budget)
            if t <= _last_us:
                t = _last_us + 1
            _last_us = t
        else:
            t = ts_us
        ms = t // 1000
        # the time's 10 characters change once a millisecond (cached with it), the counter's top 12
        # once in 2**20 ids: an id is a lookup, an add and one f-string in a burst, six more after a pause
        head = _head_cache
        if head[0] != ms:
            if ms < _last_ms:  # (a given time older than an id made: the ids stay monotonic)
                ms = _last_ms
            _last_ms = ms
            head = _head_cache = (
                ms, f"{p[(ms >> 40) & 1023]}{p[(ms >> 30) & 1023]}{p[(ms >> 20) & 1023]}{p[(ms >> 10) & 1023]}{p[ms & 1023]}",
            )  # fmt: skip
        lo = _lo + 1
        if lo > 0xFFFFF:  # the low 20 bits carry into the top 60
            _hi += 1
            _hi_text = _encode_hi(_hi)
            lo = 0
        _lo = lo
        hi_text = _hi_text
    finally:
        _lock.release()
    return t, f"{head[1]}{hi_text}{p[lo >> 10]}{p[lo & 1023]}"
