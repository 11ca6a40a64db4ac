"""Time-sortable ids: ULIDs (26 Crockford base32 characters, 48 bits of milliseconds then 80
random bits, monotonic within a process) paired with a strictly increasing microsecond clock."""

from __future__ import annotations

import os
import random
import threading
import time

from .times import CLOCK_OFFSET_US

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_PAIRS = [a + b for a in _CROCKFORD for b in _CROCKFORD]  # 10 bits -> 2 characters
_lock = threading.Lock()
_last_ms = -1
_last_rand = 0
_last_us = 0
# The random bits of a new millisecond: a generator seeded from the OS (no getrandom system call per
# millisecond), seeded again in a forked child so that two processes never share its sequence. ULIDs
# need to be unique, not unguessable: no id here is a secret.
_rng = random.Random(os.urandom(32))
_random_bits = _rng.getrandbits
os.register_at_fork(after_in_child=lambda: _rng.seed(os.urandom(32)))
_prefix_cache: tuple[int, int, str] = (-1, -1, "")
_RAND_MASK = (1 << 80) - 1


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
    global _last_us, _last_ms, _last_rand, _prefix_cache
    with _lock:
        if ts_us is None:
            t = time.time_ns() // 1000 + CLOCK_OFFSET_US  # = times.now_us(), inlined (the `record` budget)
            if t <= _last_us:
                t = _last_us + 1
            _last_us = t
        else:
            t = ts_us
        ms = t // 1000
        if ms <= _last_ms:
            ms = _last_ms
            rand = (_last_rand + 1) & _RAND_MASK
        else:
            rand = _random_bits(79)  # (79 of the 80 bits: room to increment)
        _last_ms, _last_rand = ms, rand
        # The time characters and the top 60 random bits change only when a new millisecond starts
        # or the counter carries: their 22 characters are cached as one prefix, so an id costs two
        # table lookups and one concatenation. A new prefix is 11 lookups of two characters in one
        # f-string, no generator or join: a notebook records after a pause, every such record
        # starts a millisecond (the `record` budget's spaced loop).
        hi = rand >> 20
        prefix = _prefix_cache
        if prefix[0] != ms or prefix[1] != hi:
            p = _PAIRS
            prefix = _prefix_cache = (
                ms, hi,
                f"{p[(ms >> 40) & 1023]}{p[(ms >> 30) & 1023]}{p[(ms >> 20) & 1023]}{p[(ms >> 10) & 1023]}"
                f"{p[ms & 1023]}{p[(hi >> 50) & 1023]}{p[(hi >> 40) & 1023]}{p[(hi >> 30) & 1023]}"
                f"{p[(hi >> 20) & 1023]}{p[(hi >> 10) & 1023]}{p[hi & 1023]}",
            )  # fmt: skip
    return t, prefix[2] + _PAIRS[(rand >> 10) & 1023] + _PAIRS[rand & 1023]
