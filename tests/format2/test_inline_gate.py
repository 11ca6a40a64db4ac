"""Format 2: a small save (content inline in its row) does not take the save gate; a blob save does.

The gate (storage/root.py SaveGate) keeps a gc sweep from freeing a blob between a save's blob file
and its row. A save of at most INLINE_MAX bytes writes no blob file, so it does not wait for a sweep
(nor pay the gate's two flock calls: the AetherGraph save_json budget, issue 17). Real stores in
tmp_path; the sweep's exclusive hold is taken by a real child process.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from typing import Any

from conftest import REPO

from aeg_jupyter.core.store import Store
from aeg_jupyter.storage.schemas2 import INLINE_MAX

HOLD = textwrap.dedent(
    """
    import sys, time
    from aeg_jupyter.storage.root import SaveGate
    gate = SaveGate(sys.argv[1])
    with gate.exclusive():  # as a gc sweep holds it
        print("held", flush=True)
        sys.stdin.readline()
    """
)


def test_a_small_save_does_not_wait_for_a_sweep_and_a_blob_save_does(tmp_path: Any) -> None:
    root = str(tmp_path / "store")
    with Store(root, format=2) as store:
        arts = store.artifacts
        arts.save_bytes(b"warm", kind="x")  # the gate's file exists
        gate_path = store.store_root.save_gate.path
        env = dict(os.environ, PYTHONPATH=REPO)
        child = subprocess.Popen(
            [sys.executable, "-c", HOLD, gate_path], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
        )
        try:
            assert child.stdout is not None and child.stdin is not None
            assert child.stdout.readline().strip() == "held"
            smalls: list[Any] = []  # at the limit: inline
            t = threading.Thread(target=lambda: smalls.append(arts.save_bytes(b"s" * INLINE_MAX, kind="small")))
            t.start()
            t.join(10)
            assert not t.is_alive() and len(smalls) == 1  # done while the sweep holds the gate
            assert arts.load_bytes(smalls[0].uri) == b"s" * INLINE_MAX
            done: list[Any] = []
            big = threading.Thread(target=lambda: done.append(arts.save_bytes(b"b" * (INLINE_MAX + 1), kind="big")))
            big.start()
            big.join(1.0)
            assert big.is_alive() and not done  # a blob save waits while the sweep holds the gate
            child.stdin.write("\n")
            child.stdin.flush()
            big.join(30)
            assert not big.is_alive() and len(done) == 1
            assert arts.load_bytes(done[0].uri) == b"b" * (INLINE_MAX + 1)
        finally:
            child.kill()  # (a save still waiting gets the gate now)
            child.wait()
    with Store(root, format=2) as again:  # both rows are there after a fresh open
        kinds = sorted(a.kind for a in again.artifacts.search(limit=10))
        assert kinds == ["big", "small", "x"]
