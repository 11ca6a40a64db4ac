"""ULIDs and stamps of ``base.ids``: the format, the order, and no shared sequence after a fork."""

from __future__ import annotations

import itertools
import os
import time

from aeg_jupyter.base.ids import new_ts_id

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def decode(ulid: str) -> tuple[int, int]:
    """(milliseconds, 80 random bits) of a ULID, the slow and obvious way."""
    value = 0
    for ch in ulid:
        value = value * 32 + CROCKFORD.index(ch)
    return value >> 80, value & ((1 << 80) - 1)


def test_an_id_is_26_crockford_characters_of_its_stamps_millisecond() -> None:
    for _ in range(3):
        ts, ulid = new_ts_id()
        assert len(ulid) == 26 and set(ulid) <= set(CROCKFORD) and ulid[0] in "01234567"
        ms, _rand = decode(ulid)
        assert ms == ts // 1000
        time.sleep(0.002)  # a new millisecond: the prefix is built again


def test_ids_and_stamps_increase_within_and_across_milliseconds() -> None:
    got = []
    for i in range(5000):
        got.append(new_ts_id())
        if i % 1000 == 0:
            time.sleep(0.0015)
    stamps, ulids = [t for t, _ in got], [u for _, u in got]
    assert stamps == sorted(set(stamps)) and ulids == sorted(set(ulids))
    within = [decode(b)[1] - decode(a)[1] for a, b in itertools.pairwise(ulids) if a[:10] == b[:10]]
    assert within and set(within) == {1}  # the same millisecond: the 80 bits count up by one


def test_a_forked_child_does_not_repeat_its_parents_random_bits() -> None:
    time.sleep(0.002)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its first id of a new millisecond, then out
        try:
            time.sleep(0.002)
            os.write(write, new_ts_id()[1].encode())
        finally:
            os._exit(0)
    os.close(write)
    time.sleep(0.002)
    mine = new_ts_id()[1]
    os.waitpid(pid, 0)
    theirs = os.read(read, 64).decode()
    os.close(read)
    assert len(theirs) == 26
    # both counters were drawn at random (the child's again at the fork): a shared one gives the same bits
    assert decode(mine)[1] != decode(theirs)[1]


def test_the_counter_counts_up_by_one_across_its_low_bits_carry() -> None:
    from aeg_jupyter.base import ids

    with ids._lock:  # the next ids cross the carry of the counter's low 20 bits into its top 60
        ids._lo = 0xFFFFF - 2
    got = [new_ts_id()[1] for _ in range(6)]
    bits = [decode(u)[1] for u in got]
    assert got == sorted(got) and bits == list(range(bits[0], bits[0] + 6))
    assert (bits[0] + 2) & 0xFFFFF == 0  # the third id is the carry's
