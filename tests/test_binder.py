"""The Binder configuration works: repo2docker (what Binder runs) picks a Python the package
accepts and its install steps succeed in a venv of that Python; binder/requirements.txt installed
into a fresh venv runs the leaderboard notebook. A broken Binder config fails CI."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
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


def _repo2docker_plan() -> tuple[str, str]:
    """What Binder would build from this repository: repo2docker's log and the Dockerfile it prints."""
    exe = shutil.which("jupyter-repo2docker") or os.path.join(os.path.dirname(sys.executable), "jupyter-repo2docker")
    proc = subprocess.run(
        [exe, "--no-build", "--debug", REPO], capture_output=True, text=True, timeout=300, cwd=REPO
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stderr, proc.stdout


def test_repo2docker_picks_a_python_the_package_accepts_and_its_install_steps_succeed(tmp_path):
    """Binder runs repo2docker: without a pinned interpreter it picked Python 3.10, and the package
    requires >= 3.11, so the image's `pip install -r binder/requirements.txt` failed."""
    import tomllib

    from packaging.specifiers import SpecifierSet

    log, dockerfile = _repo2docker_plan()
    found = re.search(r"Building conda environment for python=(\d+\.\d+)", log + dockerfile)
    assert found, log[-2000:]
    picked = found.group(1)
    with open(os.path.join(REPO, "pyproject.toml"), "rb") as f:
        requires = tomllib.load(f)["project"]["requires-python"]
    assert picked in SpecifierSet(requires), f"repo2docker picks Python {picked}; the package requires {requires}"
    steps = [
        shlex.split(line.split("/bin/pip install", 1)[1])
        for line in dockerfile.splitlines()
        if line.startswith("RUN ") and "/bin/pip install" in line
    ]
    assert any("binder/requirements.txt" in step for step in steps), dockerfile[-3000:]
    # Replay them in a venv of the Python repo2docker picked (--dry-run: resolve and check, install nothing).
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    python = sys.executable if picked == here else shutil.which(f"python{picked}")
    assert python, f"no Python {picked} here to replay the Binder install with"
    venv = tmp_path / "r2d-venv"
    subprocess.run([python, "-m", "venv", str(venv)], check=True)
    for step in steps:
        replay = subprocess.run(
            [str(venv / "bin" / "python"), "-m", "pip", "install", "--dry-run", "-q", *step],
            cwd=REPO, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert replay.returncode == 0, replay.stdout[-3000:] + replay.stderr[-3000:]
