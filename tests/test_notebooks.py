"""Every demo notebook runs top to bottom in a real Jupyter kernel (nbclient)."""

from __future__ import annotations

import glob
import os
import shutil

import nbformat
import pytest
from conftest import REPO
from nbclient import NotebookClient

NOTEBOOKS = sorted(glob.glob(os.path.join(REPO, "notebooks", "*.ipynb")))
pytestmark = pytest.mark.timeout(300)


def test_there_are_demo_notebooks():
    names = [os.path.basename(p) for p in NOTEBOOKS]
    assert {"01_quickstart.ipynb", "02_leaderboard.ipynb", "03_memory.ipynb", "04_beyond_one_kernel.ipynb"} <= set(
        names
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=os.path.basename)
def test_notebook_runs_clean(path, tmp_path, kernel_name, monkeypatch):
    nb = nbformat.read(path, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), "commit notebooks without outputs"
    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(path, work)
    monkeypatch.delenv("AEG_STORE", raising=False)
    scratch = tmp_path / "scratch"  # the notebooks' temporary stores land here, not in the system's /tmp
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    client = NotebookClient(nb, timeout=180, kernel_name=kernel_name, resources={"metadata": {"path": str(work)}})
    client.execute()
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors, errors
    text = "\n".join(
        o.get("text", "") or o.get("data", {}).get("text/plain", "") for c in nb.cells for o in c.get("outputs", [])
    )
    assert "context` is ready" in text  # %load_ext ran and bound `context`
    assert not os.path.exists(work / ".aeg")  # notebooks use a temporary store
    assert os.listdir(scratch)
    name = os.path.basename(path)
    if name == "03_memory.ipynb":
        assert "second kernel sees val_acc = 0.912" in text
    if name == "04_beyond_one_kernel.ipynb":
        assert "verify: " in text and "all intact" in text
