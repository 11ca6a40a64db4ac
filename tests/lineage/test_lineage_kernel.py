"""Lineage and run diffs in real Jupyter kernels (nbclient): inputs tracked per cell, cell sources
and environments kept, the answers the same after a restart, and `%aeg diff` listing exactly what
changed between two runs of one notebook."""

from __future__ import annotations

import json
import os
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import nbformat
import pytest
from conftest import REPO
from nbclient import NotebookClient

pytestmark = pytest.mark.timeout(300)

CONFIG_CELL = """
import os
arts = context.artifacts()
cfg = await arts.save_json({"lr": float(os.environ.get("LR", "0.1")), "epochs": 3}, kind="config")
"""
TRAIN_CELL = """
c = await arts.load_json(cfg)
ckpt = await arts.save_text(f"weights trained with lr={c['lr']}", kind="checkpoint", metrics={"val_acc": 0.5})
"""
TRAIN_CELL_EDITED = """
c = await arts.load_json(cfg)  # the config of this run
ckpt = await arts.save_text(f"weights trained with lr={c['lr']}", kind="checkpoint", metrics={"val_acc": 0.5})
"""


class Kernel:
    def __init__(self, client: NotebookClient, nb: Any) -> None:
        self.client, self.nb = client, nb

    def run(self, source: str) -> Any:
        cell = nbformat.v4.new_code_cell(textwrap.dedent(source).strip())
        self.nb.cells.append(cell)
        self.client.execute_cell(cell, len(self.nb.cells) - 1)
        return cell

    def stdout(self, cell: Any) -> str:
        return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream" and o.name == "stdout")

    def json(self, source: str) -> Any:
        return json.loads(self.stdout(self.run(source)))


@contextmanager
def kernel(tmp_path: Any, store: str, kernel_name: str, **env: str) -> Iterator[Kernel]:
    nb = nbformat.v4.new_notebook()
    client = NotebookClient(nb, timeout=90, kernel_name=kernel_name, resources={"metadata": {"path": str(tmp_path)}})
    path = os.pathsep.join([*filter(None, [env.pop("EXTRA_PATH", None)]), REPO, os.environ.get("PYTHONPATH", "")])
    environ = dict(os.environ, AEG_STORE=store, JPY_SESSION_NAME="lineage.ipynb", PYTHONPATH=path, **env)
    with client.setup_kernel(env=environ):
        yield Kernel(client, nb)


@pytest.fixture
def store(tmp_path: Any) -> str:
    return str(tmp_path / "store")


def test_lineage_of_a_checkpoint_names_the_config_it_read_and_its_cell_also_after_a_restart(
    tmp_path: Any, store: str, kernel_name: str
) -> None:
    with kernel(tmp_path, store, kernel_name) as k:
        k.run("%load_ext aeg_jupyter")
        k.run(CONFIG_CELL)
        k.run(TRAIN_CELL)
        got = k.json(
            """
            import json
            lin = %aeg lineage {ckpt.artifact_id}
            note = await arts.save_text("a cell that read nothing", kind="note")
            print(json.dumps({"lineage": lin.to_dict(), "cfg": cfg.artifact_id, "ckpt": ckpt.artifact_id,
                              "cfg_inputs": list(cfg.inputs), "note_inputs": list(note.inputs),
                              "html": lin._repr_html_()}))
            """
        )
    nodes = got["lineage"]["nodes"]
    assert [n["artifact_id"] for n in nodes] == [got["ckpt"], got["cfg"]]
    assert nodes[0]["inputs"] == [got["cfg"]] and nodes[1]["depth"] == 1
    assert got["lineage"]["edges"] == [{"from": got["cfg"], "to": got["ckpt"]}]
    assert nodes[0]["source"] == TRAIN_CELL.strip()  # cell 2's text, stored and found by its hash
    assert nodes[1]["source"] == CONFIG_CELL.strip()
    assert nodes[0]["execution_count"] == 3 and nodes[0]["source_path"] == "lineage.ipynb"
    assert nodes[0]["python"] == "{}.{}.{}".format(*sys.version_info[:3])
    assert got["cfg_inputs"] == [] and got["note_inputs"] == []  # nothing read in their cells
    assert "c = await arts.load_json(cfg)" in got["html"] and "<script" not in got["html"]

    with kernel(tmp_path, store, kernel_name) as k:  # a new kernel on the same store: the same answers
        k.run("%load_ext aeg_jupyter")
        again = k.json(f"text = %aeg lineage {got['ckpt'][-8:]} --json\nprint(text)")
        downstream = k.json(
            f"import json; print(json.dumps((await context.artifacts().lineage({got['cfg']!r})).to_dict()))"
        )
    assert again["nodes"] == nodes
    assert downstream["downstream"] == [got["ckpt"]]


# the run before this one (its config's), asked in the last cell: a cell run A did not run is code of B only
OTHER_RUN = """
import json
arts_ = context.store.artifacts
run_a = next(a.run_id for a in arts_.search(kind="config") if a.run_id != context.run_id)
"""
DIFF_CELL = """
d = %aeg diff {run_a} {ckpt.artifact_id}
print(json.dumps({"diff": d.to_dict(), "text": str(d), "run_a": run_a, "run_b": context.run_id}))
"""


def _fake_distribution(root: Any) -> str:
    """A real (tiny) installed distribution: a .dist-info folder on a sys.path entry."""
    site = root / "extra-site"
    info = site / "aeg_fake_dist-1.2.3.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: aeg-fake-dist\nVersion: 1.2.3\n\n")
    (info / "RECORD").write_text("")
    (site / "aeg_fake_dist.py").write_text("VALUE = 1\n")
    return str(site)


def test_diff_of_two_runs_shows_exactly_the_hyperparameter_the_edited_cell_and_the_package(
    tmp_path: Any, store: str, kernel_name: str
) -> None:
    with kernel(tmp_path, store, kernel_name, LR="0.1") as k:
        k.run("%load_ext aeg_jupyter")
        k.run(CONFIG_CELL)
        k.run(TRAIN_CELL)
    site = _fake_distribution(tmp_path)
    with kernel(tmp_path, store, kernel_name, LR="0.2", EXTRA_PATH=site) as k:
        k.run("%load_ext aeg_jupyter")
        k.run(CONFIG_CELL)
        k.run(TRAIN_CELL_EDITED)
        got = k.json(OTHER_RUN + DIFF_CELL)
    diff = got["diff"]
    assert (diff["run_a"], diff["run_b"]) == (got["run_a"], got["run_b"])  # B named by an artifact of its run
    changes = [(c["section"], c["key"], c["a"], c["b"]) for c in diff["changes"]]
    assert len(changes) == 3, got["text"]
    assert changes[0] == ("config", "config.json: lr", 0.1, 0.2)
    assert changes[1][:2] == ("code", "In[3]")
    assert changes[2] == ("environment", "package aeg-fake-dist", None, "1.2.3")
    code = diff["changes"][1]["detail"]
    assert (
        "-c = await arts.load_json(cfg)\n" in code
        and "+c = await arts.load_json(cfg)  # the config of this run\n" in code
    )
    assert any("not in a git work tree" in n for n in diff["notes"])  # said, not listed as a difference


PREP_CELL = """
def augment(text):
    return text.lower()
"""
PREP_CELL_EDITED = """
def augment(text):
    return text.lower().strip()
"""
SUMMARY_CELL = "summary = augment(f'LR={c[\"lr\"]}')"


def test_diff_shows_an_edited_cell_that_wrote_nothing_and_a_last_cell_kept_when_the_kernel_exited(
    tmp_path: Any, store: str, kernel_name: str
) -> None:
    with kernel(tmp_path, store, kernel_name) as k:
        k.run("%load_ext aeg_jupyter")
        k.run(PREP_CELL)  # computes only: kept at the config cell's first write
        k.run(CONFIG_CELL)
        k.run(TRAIN_CELL)
        k.run(SUMMARY_CELL)  # the last cell wrote nothing: kept when the kernel shuts down
    with kernel(tmp_path, store, kernel_name) as k:
        k.run("%load_ext aeg_jupyter")
        k.run(PREP_CELL_EDITED)
        k.run(CONFIG_CELL)
        k.run(TRAIN_CELL)
        k.run(SUMMARY_CELL)
        k.run("%aeg list --limit 1")  # asks the store only: no code of the run
        got = k.json(
            OTHER_RUN
            + """
from aeg_jupyter.base.models import ScopeFilter
cells_a = sorted(
    (a.execution_count, arts_.blobs.read_bytes(a.blob_id).decode())
    for a in arts_.search(kind="aeg.cell", where=ScopeFilter(run_id=run_a))
)
"""
            + DIFF_CELL.replace('"run_a": run_a,', '"run_a": run_a, "cells_a": cells_a,')
        )
    assert [src for _, src in got["cells_a"]] == [
        PREP_CELL.strip(), CONFIG_CELL.strip(), TRAIN_CELL.strip(), SUMMARY_CELL
    ]  # fmt: skip
    changes = [(c["section"], c["key"]) for c in got["diff"]["changes"]]
    assert changes == [("code", "In[2]")], got["text"]  # the summary cell is the same; %aeg list is no code
    assert "-    return text.lower()\n+    return text.lower().strip()\n" in got["diff"]["changes"][0]["detail"]
