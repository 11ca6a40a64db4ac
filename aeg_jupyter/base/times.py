"""Time, in one place: the store keeps UTC microseconds since the epoch; models show datetimes and ISO text.

Example:
    >>> us = datetime_to_us(datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC))
    >>> ts_to_iso(us), iso_to_us(ts_to_iso(us)) == us, ts_to_datetime(us).year
    ('2026-01-02T03:04:05.000006+00:00', True, 2026)
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from typing import Any

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
# The store's clock is the wall clock plus this many microseconds: a seam to run a kernel whose
# clock is off (tests start a second process with AEG_CLOCK_OFFSET_US=-3600000000). Read once.
CLOCK_OFFSET_US = int(os.environ.get("AEG_CLOCK_OFFSET_US") or 0)


def now_us() -> int:
    """This process's clock: microseconds since the epoch (the wall clock, plus ``CLOCK_OFFSET_US``)."""
    return time.time_ns() // 1000 + CLOCK_OFFSET_US


def ts_to_datetime(ts_us: int) -> datetime:
    """Microseconds since the epoch -> tz-aware UTC datetime."""
    return datetime.fromtimestamp(ts_us / 1_000_000, tz=UTC)


_iso_second: tuple[int, str] = (-1, "")  # the last second formatted by ts_to_iso
DIGITS3 = tuple(f"{i:03d}" for i in range(1000))  # 0..999 as three digits: microseconds by lookup


def ts_to_iso(ts_us: int) -> str:
    """Microseconds since the epoch -> ISO 8601 string in UTC, e.g. ``2026-01-02T03:04:05.000006+00:00``."""
    # Exact integer arithmetic, and the "YYYY-MM-DDTHH:MM:SS" part cached per second: this runs
    # on every `record` (hot path: the `record` budget, docs/architecture.md).
    global _iso_second
    sec, us = divmod(int(ts_us), 1_000_000)
    cached = _iso_second
    if cached[0] != sec:
        cached = (sec, datetime.fromtimestamp(sec, tz=UTC).isoformat()[:19])
        _iso_second = cached
    return f"{cached[1]}.{DIGITS3[us // 1000]}{DIGITS3[us % 1000]}+00:00"


def datetime_to_us(dt: datetime) -> int:
    """A datetime (naive means UTC) -> exact microseconds since the epoch."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return (dt - EPOCH) // _US


def iso_to_us(text: str) -> int:
    """ISO 8601 text (as ``ts_to_iso`` writes it) -> exact microseconds since the epoch."""
    return datetime_to_us(datetime.fromisoformat(text))


def to_us(value: Any) -> int:
    """A stored time (a datetime, or an int already in microseconds) -> microseconds since the epoch."""
    return datetime_to_us(value) if isinstance(value, datetime) else int(value)
