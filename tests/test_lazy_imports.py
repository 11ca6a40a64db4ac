"""``%load_ext aeg_jupyter`` imports only what opening the store needs (issue 18: the load's wall in a kernel).

The charts, the panel, pandas, lineage and run diffs are imported by the first call that needs them.
A real ``InteractiveShell`` in a fresh interpreter loads the extension on a real format-2 store with
artifacts and events in it; the modules the load imported are checked, then the first calls that
need the deferred ones work and import them.
"""

from __future__ import annotations

import json
from pathlib import Path

from conftest import run_child

from aeg_jupyter.core.store import Store

# imported by the first call that needs them, never by `%load_ext`
DEFERRED = (
    "pandas",
    "plotly",
    "ipywidgets",
    "duckdb",
    "matplotlib",
    "pyarrow.compute",
    "pyarrow.dataset",
    "aeg_jupyter.frontends.charts",
    "aeg_jupyter.frontends.panel",
    "aeg_jupyter.core.frames",
    "aeg_jupyter.core.lineage",
    "aeg_jupyter.core.rundiff",
    "aeg_jupyter.core.series",
)

CHILD = """
import json, os, sys
os.environ["AEG_STORE"] = sys.argv[1]
deferred = json.loads(sys.argv[2])
from IPython.core.interactiveshell import InteractiveShell
ip = InteractiveShell.instance()
before = set(sys.modules)
ip.run_line_magic("load_ext", "aeg_jupyter")
loaded = sorted(m for m in deferred if m in sys.modules and m not in before)
best = ip.run_line_magic("aeg", "best checkpoint --metric val_acc")
frame = ip.run_line_magic("aeg", "recent train_log")
lineage = ip.run_line_magic("aeg", "lineage " + best.artifact_id)
print(json.dumps({
    "loaded_by_load_ext": loaded,
    "best": best.labels, "recent": [type(frame).__module__.split(".")[0], len(frame)],
    "lineage_root": lineage.root.artifact_id == best.artifact_id,
    "after_first_calls": sorted(m for m in ("pandas", "aeg_jupyter.core.lineage") if m in sys.modules),
}))
"""


def test_load_ext_defers_what_no_query_needs_yet(tmp_path: Path) -> None:
    root = str(tmp_path / "store")
    with Store(root, format=2) as store:  # artifacts and events, written before the kernel opens the store
        kw = {"kind": "checkpoint", "labels": {"exp": "A"}, "metrics": {"val_acc": 0.7}}
        store.artifacts.save_json({"lr": 0.1}, **kw)  # type: ignore[arg-type]
        kw = {"kind": "checkpoint", "labels": {"exp": "B"}, "metrics": {"val_acc": 0.9}}
        store.artifacts.save_json({"lr": 0.2}, **kw)  # type: ignore[arg-type]
        store.event_log.record(kind="train_log", data={"epoch": 1, "loss": 0.5})
    proc = run_child(CHILD, root, json.dumps(DEFERRED))
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["loaded_by_load_ext"] == []
    # the first calls that need them import them and answer as usual
    assert out["best"] == {"exp": "B"}
    assert out["recent"] == ["pandas", 1]
    assert out["lineage_root"] is True
    assert out["after_first_calls"] == ["aeg_jupyter.core.lineage", "pandas"]
