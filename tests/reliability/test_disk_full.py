"""A write that hits the file size limit (as a full disk would) fails clearly and changes nothing."""

from __future__ import annotations

import json

from conftest import run_child

import aeg_jupyter

CHILD = """
import json, os, resource, signal, sys
import aeg_jupyter
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG instead of being killed
root = sys.argv[1]
store = aeg_jupyter.Store(root, flush_rows=1_000_000)
before = store.artifacts.save_text("small is fine", kind="note")
store.event_log.record("log", "before the limit")
big = os.path.join(os.path.dirname(root), "big.bin")
with open(big, "wb") as f:
    f.write(os.urandom(3 << 20))
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, (512 << 10, hard))
out = {}
for name, call in [
    ("save_bytes", lambda: store.artifacts.save_bytes(os.urandom(2 << 20), kind="blob")),  # through a temp file
    ("save_bytes_in_place", lambda: store.artifacts.save_bytes(os.urandom(1 << 20), kind="blob")),
    ("save_file", lambda: store.artifacts.save_file(big, kind="blob")),
    ("record", lambda: store.event_log.record("log", "x" * (1100 << 10))),
]:
    try:
        call()
        out[name] = "no error"
    except aeg_jupyter.StoreWriteError as exc:
        out[name] = str(exc)
resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
out["tmp_left"] = os.listdir(store.blobs.tmp_dir)
store.event_log.record("log", "after the limit")
store.close()
print(json.dumps(out))
"""


def test_file_size_limit_gives_a_clear_error_and_leaves_the_store_as_it_was(store_root):
    aeg_jupyter.Store(store_root).close()
    out = json.loads(run_child(CHILD, store_root).stdout)
    for name in ("save_bytes", "save_bytes_in_place", "save_file"):
        assert "File too large" in out[name] and "free some space" in out[name], out
    assert "could not record" in out["record"] and "free some disk space" in out["record"]
    assert out["tmp_left"] == []
    store = aeg_jupyter.Store(store_root)
    assert [a.kind for a in store.artifacts.list()] == ["note"]
    assert store.event_log.recent_data(kinds=["log"]) == ["before the limit", "after the limit"]
    report = store.artifacts.verify()
    assert report.ok and report.partial == [], report  # no short blob left behind either
    store.close()
