"""A run's code is every cell it ran, not only the cells that wrote something: a cell that only
computed or read is kept as an ``aeg.cell`` artifact at the kernel's next write, before a
``%aeg diff``, when the extension is unloaded, or when the process exits; cells of only store
commands (``%aeg ...``) and empty cells are left out; the same text in a run is kept once."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from typing import Any

from conftest import REPO

import aeg_jupyter
from aeg_jupyter.base.hashing import hash_bytes
from aeg_jupyter.base.models import CELL_KIND, ScopeFilter
from aeg_jupyter.core.lineage import is_store_command


def cell(ip: Any, source: str) -> Any:
    result = ip.run_cell(source, store_history=True)
    if result.error_before_exec or result.error_in_exec:
        raise result.error_before_exec or result.error_in_exec
    return result.result


def kept_cells(root: str, run_id: str) -> list[tuple[int | None, str]]:
    """(execution count, source) of the run's kept cells, in the order they ran, read from a fresh open."""
    ctx = aeg_jupyter.connect(root)
    try:
        arts = ctx.store.artifacts
        found = arts.search(kind=CELL_KIND, where=ScopeFilter(run_id=run_id))
        out = [(a.execution_count, arts.blobs.read_bytes(a.blob_id).decode()) for a in found]
        for a in found:
            assert a.source_hash == hash_bytes(arts.blobs.read_bytes(a.blob_id))
    finally:
        ctx.close()
    return sorted(out, key=lambda t: t[0] or 0)


def test_cells_that_wrote_nothing_are_kept_at_the_next_write_store_commands_and_empty_cells_are_not(
    ip: Any, tmp_path: Any
) -> None:
    ctx = ip.user_ns["context"]
    root, run_id = ctx.store.root, ctx.run_id
    cell(ip, "def scale(x):\n    return 2 * x")  # computes, writes nothing
    cell(ip, "%aeg list")  # only asks the store
    cell(ip, "   ")
    cell(ip, "y = str(scale(21))")
    cell(ip, "y = str(scale(21))")  # the same text again: kept once
    assert kept_cells(root, run_id) == []  # nothing kept yet: no write so far (and no cost per cell)
    made = cell(ip, "m = %aeg save y --kind model\nm")
    assert made.execution_count is not None
    got = kept_cells(root, run_id)
    assert [src for _, src in got] == [
        "def scale(x):\n    return 2 * x",
        "y = str(scale(21))",
        "m = %aeg save y --kind model\nm",
    ]
    assert [n for n, _ in got] == sorted(n for n, _ in got) and got[0][0] is not None
    assert cell(ip, "%aeg list")["name"].tolist() == ["y.txt"]  # the kept cells stay out of listings

    cell(ip, "z = y + '!'")  # the last cell wrote nothing: kept when the extension is unloaded
    ip.run_line_magic("unload_ext", "aeg_jupyter")
    assert [src for _, src in kept_cells(root, run_id)][-1] == "z = y + '!'"


def test_aeg_diff_keeps_the_pending_cells_first_and_shows_an_edited_cell_that_wrote_nothing(ip: Any) -> None:
    ctx = ip.user_ns["context"]
    run_a = ctx.run_id
    cell(ip, "lr = 0.1\ndef schedule(epoch):\n    return lr / (1 + epoch)")
    cell(ip, "%aeg run new second")
    run_b = ctx.run_id
    cell(ip, "lr = 0.1\ndef schedule(epoch):\n    return lr / (1 + 2 * epoch)")
    d = cell(ip, f"%aeg diff {run_a} {run_b}")  # neither cell wrote: the diff keeps them first
    assert [(c.section, c.key) for c in d.changes] == [("code", "cell 1")], str(d)
    assert "-    return lr / (1 + epoch)\n+    return lr / (1 + 2 * epoch)\n" in d.changes[0].detail
    assert "run new" not in d.changes[0].detail  # the %aeg cell is no code of either run


def test_the_last_cell_that_wrote_nothing_is_kept_when_the_process_exits(tmp_path: Any) -> None:
    root = str(tmp_path / "store")
    child = textwrap.dedent(
        """
        import sys
        from IPython.core.interactiveshell import InteractiveShell
        from traitlets.config import Config
        config = Config()
        config.HistoryManager.enabled = False
        shell = InteractiveShell.instance(config=config)
        shell.run_line_magic("load_ext", "aeg_jupyter")
        shell.run_cell("x = '40'", store_history=True)
        shell.run_cell("%aeg save x --kind number", store_history=True)
        shell.run_cell("print(context.run_id)\\nanswer = x + '2'", store_history=True)
        # no %unload_ext: the interpreter exits with the store open
        """
    )

    env = dict(os.environ, AEG_STORE=root, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run(
        [sys.executable, "-c", child], capture_output=True, text=True, timeout=120, env=env, cwd=str(tmp_path)
    )
    assert proc.returncode == 0, proc.stderr
    run_id = proc.stdout.strip().splitlines()[-1]
    sources = [src for _, src in kept_cells(root, run_id)]
    assert sources == [
        "x = '40'",
        "%aeg save x --kind number",
        "print(context.run_id)\nanswer = x + '2'",
    ]


def test_is_store_command() -> None:
    assert is_store_command("%aeg diff run-a run-b")
    assert is_store_command("# compare\n%aeg lineage 7X2KQ9PA --depth 2\n\n%load_ext aeg_jupyter")
    assert is_store_command("%config AegMagics.graph = 'nb'")
    assert not is_store_command("x = %aeg load 7X2KQ9PA")  # it reads into the cell's variables
    assert not is_store_command("%aeg list\nprint(1)")
    assert not is_store_command("%aegx")
