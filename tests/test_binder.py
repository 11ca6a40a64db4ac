"""The Binder configuration works: binder/requirements.txt installed into a fresh venv (as
repo2docker does) runs the leaderboard notebook, so a broken Binder config fails CI."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import nbformat
import pytest
from conftest import REPO
from nbclient import NotebookClient

pytestmark = pytest.mark.timeout(1200)


def test_binder_requirements_run_the_leaderboard_notebook(tmp_path, monkeypatch):
    venv = tmp_path / "binder-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = str(venv / "bin" / "python")
    install = subprocess.run(
        [py, "-m", "pip", "install", "-q", "-r", os.path.join("binder", "requirements.txt")],
        cwd=REPO, capture_output=True, text=True,
    )  # fmt: skip
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    spec = tmp_path / "jupyter" / "kernels" / "python3"
    spec.mkdir(parents=True)
    argv = [py, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "binder", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.delenv("AEG_STORE", raising=False)
    nb = nbformat.read(os.path.join(REPO, "notebooks", "02_leaderboard.ipynb"), as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for c in nb.cells for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("checkpoints: 36" in o.get("text", "") for o in outputs)
    widgets = [o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert widgets, "the panel did not render as a widget"
    pip_show = subprocess.run([py, "-m", "pip", "show", "aeg-jupyter"], capture_output=True, text=True)
    assert "Name: aeg-jupyter" in pip_show.stdout
