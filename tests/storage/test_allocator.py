"""delta-rs's jemalloc loads with the store's options, the user's own setting wins, and no one else sees it."""

from __future__ import annotations

import os
import subprocess
import sys

from aeg_jupyter.storage.allocator import ENV, jemalloc_settings

# jemalloc prints its options at exit when asked to (stats_print): the only way to read what it loaded with
CHILD = """
import os, subprocess, sys
real_putenv = os.putenv
def putenv(key, value):  # what os.environ hands the C environment: ask jemalloc to print its options too
    if key == b"_RJEM_MALLOC_CONF" and b"stats_print" not in value:
        value = b"stats_print:true," + value
    real_putenv(key, value)
os.putenv = putenv
import aeg_jupyter
from aeg_jupyter.storage.allocator import ENV
print("left in environ:", os.environ.get(ENV), flush=True)
print("a child sees:", subprocess.run([sys.executable, "-c", "import os; print(os.environ.get('%s'))" % ENV],
      capture_output=True, text=True).stdout.strip(), flush=True)
"""


def _run(env_value: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != ENV}
    if env_value is not None:
        env[ENV] = env_value
    done = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout + done.stderr


def test_deltalake_loads_with_the_stores_allocator_options_and_the_variable_is_gone_after() -> None:
    out = _run(None)
    arenas = jemalloc_settings().split(",")[0].split(":")[1]
    assert f"opt.narenas: {arenas}\n" in out
    assert "opt.dirty_decay_ms: 1000 " in out and "opt.muzzy_decay_ms: 0 " in out
    assert "left in environ: None" in out and "a child sees: None" in out


def test_a_users_own_setting_is_kept() -> None:
    out = _run("stats_print:true,dirty_decay_ms:5000")
    assert "opt.dirty_decay_ms: 5000 " in out
    assert "opt.dirty_decay_ms: 1000 " not in out
    assert "left in environ: stats_print:true,dirty_decay_ms:5000" in out
