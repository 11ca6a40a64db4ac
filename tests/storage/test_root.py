"""aeg_jupyter.storage.root: the store's marker, this process's writer claim, recovery of dead writers."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from aeg_jupyter.base.errors import InvalidInputError, StoreFormatError, StoreWarning
from aeg_jupyter.storage.fsops import lock_is_free, try_lock
from aeg_jupyter.storage.layout import META_NAME, PartName
from aeg_jupyter.storage.root import DEFAULT_FORMAT, KNOWN_DIRS, STALE_SECONDS, StoreRoot
from aeg_jupyter.storage.schemas import ARTIFACTS, EVENTS, OPS
from aeg_jupyter.storage.tables import Table

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
T0 = 1_700_000_000_000_000

DYING_WRITER = """
import sys, time
from aeg_jupyter.core.store import Store
store = Store(sys.argv[1])
for t in store.tables.values():
    t.flush_seconds = 3600  # format 2's flusher commits nothing before the kill: the spool stays
for i in range(5):
    print("E", store.event_log.record("log", {"i": i}).event_id, flush=True)
print("W", store.writer, flush=True)
time.sleep(120)  # killed long before this ends
"""


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / "store")


@pytest.fixture
def roots():
    opened: list[StoreRoot] = []
    yield opened
    for r in opened:
        r.release()


def _open(roots, path) -> StoreRoot:
    r = StoreRoot(path)
    roots.append(r)
    return r


def _tables(root: StoreRoot) -> dict[str, Table]:
    return {s.name: Table(root.layout, s, writer=root.writer) for s in (ARTIFACTS, EVENTS, OPS)}


def ev(i: int) -> dict:
    return {"event_id": f"e{i:05d}", "ts": T0 + i, "kind": "log", "text": f"row {i}"}


def _die(root: StoreRoot) -> None:
    """A writer that dies without release(): its lock goes, its directories stay."""
    assert root._lock_fd is not None
    os.close(root._lock_fd)
    root._lock_fd = None


# -- opening -----------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", [1, 2])
def test_creates_marker_dirs_and_writer_claim(roots, path, fmt):
    r = StoreRoot(path, format=fmt)
    roots.append(r)
    assert r.path == path and r.format == fmt
    with open(os.path.join(path, META_NAME)) as f:
        assert json.load(f) == {"format": fmt, "hash": "blake3", "created_by": "aeg_jupyter"}
    for d in KNOWN_DIRS:
        assert os.path.isdir(os.path.join(path, d))
    assert re.fullmatch(rf"p{os.getpid()}x[0-9a-f]{{8}}", r.writer)
    assert PartName.parse(str(PartName(T0, r.writer, 0))) == PartName(T0, r.writer, 0)  # usable in part names
    assert sorted(os.listdir(path)) == sorted([META_NAME, *KNOWN_DIRS])  # no temp marker left behind
    assert os.listdir(os.path.join(path, "spool")) == [r.writer]  # no .new- staging left behind
    assert os.path.isdir(r.layout.writer_tmp_dir(r.writer))
    assert lock_is_free(os.path.join(r.layout.writer_spool_dir(r.writer), "lock")) is False
    assert r.move_aside_dir() == os.path.join(path, "corrupt")


@pytest.mark.parametrize("fmt", [1, 2])
def test_reopening_keeps_the_existing_marker(roots, path, fmt):
    os.makedirs(path)
    marker = os.path.join(path, META_NAME)
    with open(marker, "w") as f:
        json.dump({"format": fmt, "hash": "blake3", "created_by": "someone else"}, f)
    r = StoreRoot(path, format=fmt)
    roots.append(r)
    assert r.format == fmt and r.read_only is None
    with open(marker) as f:
        assert json.load(f) == {"format": fmt, "hash": "blake3", "created_by": "someone else"}


def test_opens_an_empty_dir_or_one_with_dotfiles_only(roots, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    _open(roots, str(empty))
    dotted = tmp_path / "dotted"
    (dotted / ".ipynb_checkpoints").mkdir(parents=True)
    (dotted / ".DS_Store").write_bytes(b"")
    _open(roots, str(dotted))
    assert (dotted / META_NAME).exists()


def test_refuses_a_foreign_non_empty_dir(tmp_path):
    foreign = tmp_path / "project"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(StoreFormatError, match=r"is not an aeg store.*pick a new or empty directory"):
        StoreRoot(str(foreign))
    assert os.listdir(foreign) == ["notes.txt"]  # nothing was added to it


def test_refuses_a_file_as_root(tmp_path):
    f = tmp_path / "store"
    f.write_text("x")
    with pytest.raises(InvalidInputError, match="is a file; point the store at a directory"):
        StoreRoot(str(f))


@pytest.mark.parametrize(
    ("marker", "match"),
    [
        ('{"format": 3}', "has format 3.*upgrade with `pip install -U aeg-jupyter` or open another store"),
        ('{"hash": "blake3"}', "has format None.*upgrade"),
        ("{not json", "is unreadable.*restore it or open another store"),
        ("[1]", "is unreadable"),
        ("null", "is unreadable"),
    ],
)
def test_refuses_an_unknown_format(path, marker, match):
    os.makedirs(path)
    with open(os.path.join(path, META_NAME), "w") as f:
        f.write(marker)
    with pytest.raises(StoreFormatError, match=match):
        StoreRoot(path)
    assert os.listdir(path) == [META_NAME]  # no writer claimed in a store we cannot read


@pytest.mark.parametrize(("marker", "wanted"), [(1, 2), (2, 1)])
def test_a_store_opened_as_another_format_is_never_rewritten(roots, path, marker, wanted):
    """Format 1 asked to open as format 2 opens read-only naming `aeg migrate`; format 2 asked as 1 refuses."""
    os.makedirs(path)
    text = json.dumps({"format": marker, "hash": "blake3", "created_by": "aeg_jupyter"})
    with open(os.path.join(path, META_NAME), "w") as f:
        f.write(text)
    if marker == 1:
        with pytest.warns(StoreWarning, match=r"is format 1; it is open read-only: convert it with `aeg migrate "):
            r = StoreRoot(path, format=wanted)
        roots.append(r)
        assert (r.format, r.read_only) == (1, "format 1")
    else:
        with pytest.raises(StoreFormatError, match="has format 2, not 1"):
            StoreRoot(path, format=wanted)
    with open(os.path.join(path, META_NAME)) as f:
        assert f.read() == text


def test_second_root_on_one_path_is_another_writer(roots, path):
    a = _open(roots, path)
    b = _open(roots, path)
    assert a.writer != b.writer
    assert sorted(os.listdir(os.path.join(path, "spool"))) == sorted([a.writer, b.writer])
    for r in (a, b):
        assert lock_is_free(os.path.join(r.layout.writer_spool_dir(r.writer), "lock")) is False
    assert a.recover(_tables(a)) == []  # b is alive: nothing of it is touched
    assert os.path.isdir(b.layout.writer_tmp_dir(b.writer))


# -- recovery ----------------------------------------------------------------------------------
def test_recover_flushes_a_sigkilled_writer_and_spares_a_live_one(roots, path):
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(DYING_WRITER), path],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    acked, dead = [], None
    try:
        for line in proc.stdout:
            tag, value = line.split()
            if tag == "E":
                acked.append(value)
            else:
                dead = value
                break
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        _, err = proc.communicate(timeout=30)
    assert dead is not None and len(acked) == 5, err
    assert proc.returncode == -signal.SIGKILL

    live = _open(roots, path)
    live_events = Table(live.layout, EVENTS, writer=live.writer)
    live_events.append(ev(1))
    live_spool = live.layout.spool_file(live.writer, "events", 0)

    me = _open(roots, path)
    layout = me.layout
    assert os.path.exists(layout.spool_file(dead, "events", 0))  # the acknowledged rows wait in its spool
    assert os.path.isdir(layout.writer_tmp_dir(dead))
    tables = _tables(me)
    assert me.recover(tables) == [dead]

    assert not os.path.exists(layout.writer_spool_dir(dead))
    assert not os.path.exists(layout.writer_tmp_dir(dead))
    parts = tables["events"].list_parts()
    assert {p.name.writer for p in parts} == {dead}
    assert sorted(r["event_id"] for r in tables["events"].read_all_parts()) == sorted(acked)
    # the live writer keeps its spool, its rows not in any part, and its directories
    assert os.path.exists(live_spool)
    assert [r["event_id"] for r in live_events.read_spool(live_spool)[0]] == ["e00001"]
    assert os.path.isdir(layout.writer_tmp_dir(live.writer))
    assert sorted(os.listdir(layout.tmp)) == sorted([live.writer, me.writer])
    assert me.recover(tables) == []  # nothing left to recover


def test_recover_dedups_rows_and_flushes_every_table(roots, path):
    dead = _open(roots, path)
    events = Table(dead.layout, EVENTS, writer=dead.writer)
    ops = Table(dead.layout, OPS, writer=dead.writer)
    events.append(ev(0))
    events.append(ev(0))  # the same line twice
    events.append(ev(1))
    ops.append({"op_id": "o1", "ts": T0, "kind": "pin", "artifact_id": "a1"})
    _die(dead)
    me = _open(roots, path)
    tables = _tables(me)
    assert me.recover(tables) == [dead.writer]
    assert sorted(r["event_id"] for r in tables["events"].read_all_parts()) == ["e00000", "e00001"]
    assert [r["op_id"] for r in tables["ops"].read_all_parts()] == ["o1"]
    assert tables["artifacts"].list_parts() == []


def test_recover_skips_a_damaged_spool_line_with_a_warning(roots, path):
    dead = _open(roots, path)
    Table(dead.layout, EVENTS, writer=dead.writer).append(ev(0))
    spool = dead.layout.spool_file(dead.writer, "events", 0)
    with open(spool, "a") as f:
        f.write("{garbage\n" + json.dumps(ev(1)) + "\n" + '{"event_id": "cut')
    _die(dead)
    me = _open(roots, path)
    tables = _tables(me)
    with pytest.warns(StoreWarning, match="damaged line"):
        assert me.recover(tables) == [dead.writer]
    assert sorted(r["event_id"] for r in tables["events"].read_all_parts()) == ["e00000", "e00001"]
    assert not os.path.exists(dead.layout.writer_spool_dir(dead.writer))


def test_recover_keeps_spools_of_tables_it_was_not_given(roots, path):
    dead = _open(roots, path)
    Table(dead.layout, EVENTS, writer=dead.writer).append(ev(0))
    _die(dead)
    me = _open(roots, path)
    me.recover({"ops": _tables(me)["ops"]})  # recovery that does not know the events table
    later = _open(roots, path)
    tables = _tables(later)
    later.recover(tables)
    assert [r["event_id"] for r in tables["events"].read_all_parts()] == ["e00000"]


def test_recover_clears_stale_staging_and_orphans(roots, path):
    me = _open(roots, path)
    spool = me.layout.spool
    old = time.time() - STALE_SECONDS - 60
    stale = os.path.join(spool, ".new-pdead")
    os.makedirs(stale)
    open(os.path.join(stale, "lock"), "w").close()
    os.utime(stale, (old, old))
    fresh = os.path.join(spool, ".new-pstarting")  # a writer starting right now
    os.makedirs(fresh)
    held = os.path.join(spool, ".new-pslow")  # old, but its lock is held: alive
    os.makedirs(held)
    fd = try_lock(os.path.join(held, "lock"))
    assert fd is not None
    os.utime(held, (old, old))
    no_lock = os.path.join(spool, "pnolock")  # a writer directory without its lock file
    os.makedirs(no_lock)
    ghost_tmp = me.layout.writer_tmp_dir("pghost")  # temp files with no writer behind them
    os.makedirs(ghost_tmp)
    open(os.path.join(ghost_tmp, "blob-1"), "w").close()
    try:
        assert me.recover(_tables(me)) == []
        assert sorted(os.listdir(spool)) == sorted([".new-pslow", ".new-pstarting", me.writer])
        assert os.listdir(me.layout.tmp) == [me.writer]
    finally:
        os.close(fd)


def test_store_missing_its_work_dirs_still_opens(roots, path):
    first = StoreRoot(path)
    first.release()
    for d in ("spool", "tmp"):
        os.rmdir(os.path.join(path, d))
    r = _open(roots, path)
    assert r.recover(_tables(r)) == []
    assert os.listdir(os.path.join(path, "spool")) == [r.writer]


# -- closing -----------------------------------------------------------------------------------
def test_release_removes_the_writer_dirs_and_frees_the_lock(path):
    r = StoreRoot(path)
    lock = os.path.join(r.layout.writer_spool_dir(r.writer), "lock")
    open(os.path.join(r.layout.writer_tmp_dir(r.writer), "blob-x"), "w").close()
    r.release()
    assert not os.path.exists(r.layout.writer_spool_dir(r.writer))
    assert not os.path.exists(r.layout.writer_tmp_dir(r.writer))
    assert lock_is_free(lock)
    assert os.listdir(r.layout.spool) == [] and os.listdir(r.layout.tmp) == []
    r.release()  # twice is harmless
    assert os.path.exists(r.layout.meta)  # the store itself stays


def test_release_with_an_unflushed_spool_leaves_it_for_recovery(roots, path):
    r = StoreRoot(path)
    Table(r.layout, EVENTS, writer=r.writer).append(ev(7))
    r.release(spool_flushed=False)
    assert os.path.exists(r.layout.spool_file(r.writer, "events", 0))
    assert not os.path.exists(r.layout.writer_tmp_dir(r.writer))
    nxt = _open(roots, path)
    tables = _tables(nxt)
    assert nxt.recover(tables) == [r.writer]
    assert [row["event_id"] for row in tables["events"].read_all_parts()] == ["e00007"]


def test_aeg_store_format_names_the_format_when_the_caller_names_none(roots, path, monkeypatch):
    monkeypatch.setenv("AEG_STORE_FORMAT", "2")
    root = _open(roots, path)
    assert root.format == 2
    with open(os.path.join(path, META_NAME), encoding="utf-8") as f:
        assert json.load(f)["format"] == 2
    monkeypatch.setenv("AEG_STORE_FORMAT", "3")
    with pytest.raises(InvalidInputError, match=r"AEG_STORE_FORMAT='3' is not a store format; set it to one of 1, 2"):
        _open(roots, path)
    monkeypatch.delenv("AEG_STORE_FORMAT")
    assert _open(roots, path).format == 2  # a format-2 store opens as itself whatever the default


def test_a_new_store_is_format_2_and_a_format_1_store_opens_read_only_unless_named(roots, tmp_path, monkeypatch):
    monkeypatch.delenv("AEG_STORE_FORMAT", raising=False)
    new = _open(roots, str(tmp_path / "new"))
    assert new.format == DEFAULT_FORMAT == 2 and new.migrate_hint is None
    old = str(tmp_path / "old")
    StoreRoot(old, format=1).release()
    with pytest.warns(StoreWarning, match=r"is format 1; it is open read-only: convert it with `aeg migrate "):
        r = _open(roots, old)
    assert r.format == 1 and r.migrate_hint is not None
    assert "cannot save" in (r.save_gate.refusal or "")
    r.release()
    monkeypatch.setenv("AEG_STORE_FORMAT", "1")  # named (the variable or format=1): writable as before
    named = _open(roots, old)
    assert named.format == 1 and named.migrate_hint is None
    with open(os.path.join(old, META_NAME), encoding="utf-8") as f:
        assert json.load(f)["format"] == 1  # never rewritten by any of these opens
