"""A full disk and a read-only root (issue 13, item 6): the store opens, lists, recalls, runs gc
and verify; recovery that needs space is deferred with a warning; no raw ``OSError``.

The full disk is simulated two ways: the file size limit of tests/reliability/test_disk_full.py
(portable: every write that grows a file past the limit fails), and, where the tests may mount
(root in a container), a real 3 MB tmpfs filled to the last byte and then remounted read-only.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from conftest import run_child

import aeg_jupyter

DIES_WITH_SPOOLED_ROWS = """
import os, sys, aeg_jupyter
store = aeg_jupyter.Store(sys.argv[1])
for i in range(50):
    store.event_log.record("log", {"i": i})
gone = store.artifacts.save_bytes(os.urandom(20_000), kind="blob")
store.artifacts.delete(gone)
store.artifacts.save_text("keep", kind="note")
os._exit(0)  # killed: every row is still in its spool, for the next open to flush
"""

USE_IT = """
import json, os, resource, signal, sys, warnings
import aeg_jupyter
from aeg_jupyter.base.errors import StoreWarning
if sys.argv[2] == "fsize":
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (2000, hard))  # no Parquet part fits
out = {}
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    store = aeg_jupyter.Store(sys.argv[1])
    out["list"] = [a.kind for a in store.artifacts.list()]
    out["recent"] = len(store.event_log.recent(kinds=["log"], limit=100))
    out["gc_dry"] = len(store.artifacts.gc(dry_run=True).blobs)
    try:
        out["gc"] = len(store.artifacts.gc(dry_run=False).blobs)
    except aeg_jupyter.StoreWriteError as exc:
        out["gc"] = str(exc)
    out["verify"] = store.artifacts.verify().ok
    try:
        store.event_log.record("log", "one more")
        out["record"] = "stored"
    except aeg_jupyter.StoreWriteError as exc:
        out["record"] = str(exc)
    store.close()
out["warnings"] = [str(w.message) for w in caught if issubclass(w.category, StoreWarning)]
print(json.dumps(out))
"""


def _format(root: str) -> int:
    with open(os.path.join(root, "aeg-store.json")) as f:
        return int(json.load(f)["format"])


def _freed_on_a_full_disk(root: str) -> int:
    """Blobs gc frees on the full disk: format 1 frees the deleted artifact's; format 2 keeps it while its
    row is still in a spool or the table (the fold that removes it needs space: an external reader of
    the table never sees a row whose blob is gone), and frees it once there is space (``_check_after``)."""
    return 1 if _format(root) == 1 else 0


def _check_after(root: str, *, recorded: bool) -> None:
    store = aeg_jupyter.Store(root)  # space again: the deferred recovery runs now
    assert [a.kind for a in store.artifacts.list()] == ["note"]
    assert len(store.event_log.recent(kinds=["log"], limit=100)) == 50 + recorded
    assert store.artifacts.verify().ok
    assert len(store.artifacts.gc(dry_run=False).blobs) == 1 - _freed_on_a_full_disk(root)
    store.close()
    assert os.listdir(os.path.join(root, "spool")) == []  # every spool flushed at last


def test_a_store_on_a_full_disk_opens_lists_collects_and_verifies(store_root):
    run_child(DIES_WITH_SPOOLED_ROWS, store_root)
    out = json.loads(run_child(USE_IT, store_root, "fsize").stdout)
    assert out["list"] == ["note"] and out["recent"] == 50, out
    assert out["gc_dry"] == 1 and out["gc"] == _freed_on_a_full_disk(store_root) and out["verify"], out
    assert any("next open tries again" in w for w in out["warnings"]), out
    _check_after(store_root, recorded=out["record"] == "stored")


def _mount_tmpfs(path: str) -> bool:
    os.makedirs(path, exist_ok=True)
    if os.geteuid() != 0:
        return False
    return subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", path], capture_output=True).returncode == 0


@pytest.fixture
def small_disk(tmp_path):
    mnt = str(tmp_path / "mnt")
    if not _mount_tmpfs(mnt):
        pytest.skip("needs to mount a tmpfs (root); the file-size-limit test covers the rest")
    yield mnt
    subprocess.run(["umount", "-l", mnt], capture_output=True)


def test_a_store_on_a_really_full_disk_then_a_read_only_one(small_disk):
    root = os.path.join(small_disk, "store")
    run_child(DIES_WITH_SPOOLED_ROWS, root)
    with open(os.path.join(small_disk, "filler"), "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
        except OSError:
            pass
    out = json.loads(run_child(USE_IT, root, "full").stdout)
    assert out["list"] == ["note"] and out["recent"] == 50 and out["verify"], out
    assert out["gc"] == _freed_on_a_full_disk(root), out
    assert any("next open tries again" in w for w in out["warnings"]), out
    recorded = out["record"] == "stored"  # (gc freed 20 kB: the record may fit)
    os.unlink(os.path.join(small_disk, "filler"))
    subprocess.run(["mount", "-o", "remount,ro", small_disk], check=True)
    out = json.loads(run_child(USE_IT, root, "ro").stdout)
    assert out["list"] == ["note"] and out["recent"] == 50 + recorded and out["verify"], out
    assert "read-only" in out["gc"] and "read-only" in out["record"], out  # clear errors, not OSError 30
    assert any("read-only" in w for w in out["warnings"]), out
    subprocess.run(["mount", "-o", "remount,rw", small_disk], check=True)
    _check_after(root, recorded=recorded)


def test_a_read_only_root_for_a_user_without_write_access(store_root):
    if os.geteuid() == 0:
        pytest.skip("root writes through file modes; the tmpfs test remounts read-only instead")
    run_child(DIES_WITH_SPOOLED_ROWS, store_root)
    dirs = [d for d, _, _ in os.walk(store_root)]
    for d in dirs:
        os.chmod(d, 0o555)
    try:
        out = json.loads(run_child(USE_IT, store_root, "ro").stdout)
    finally:
        for d in dirs:
            os.chmod(d, 0o755)
    assert out["list"] == ["note"] and out["recent"] == 50 and out["verify"], out
    assert "read-only" in out["gc"] and "read-only" in out["record"], out
    _check_after(store_root, recorded=False)
