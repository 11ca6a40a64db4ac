"""AetherGraph's facade searching our store while it changes, in a child interpreter (tests/aethergraph).

``python cache_script.py OUT.json --backend aeg --store ROOT``

The index keeps the answers of unranked searches while nothing changes (``StoreStamp``): every
change here (a save, a pin, a delete, another process's save while it is open and after it closed)
must show in the next search. OUT.json gets each step's answer (artifact names) and what was kept.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from typing import Any

OTHER = """
import os, sys, time, aeg_jupyter
root, name, hold = sys.argv[1], sys.argv[2], sys.argv[3]
ctx = aeg_jupyter.connect(root)
ctx.store.artifacts.save_json({"from": name}, kind="checkpoint", name=name, labels={"exp": "A", "filename": name},
                              metrics={"val_acc": 0.5})
if hold != "-":
    open(hold + ".saved", "w").close()
    while not os.path.exists(hold):
        time.sleep(0.02)
ctx.close()
"""


def other_process(root: str, name: str, hold: str = "-") -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", OTHER, root, name, hold])


def wait_for(path: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while not os.path.exists(path):
        assert proc.poll() in (None, 0) and time.monotonic() < deadline, "the other process did not save"
        time.sleep(0.02)


async def main(out_path: str, root: str) -> None:
    from aethergraph.services.artifacts.facade import ArtifactFacade

    from aeg_jupyter.aethergraph import install, uninstall

    backend = install(root)
    index = backend.artifact_index
    arts = ArtifactFacade(
        run_id="run-1", graph_id="g", node_id="n1", tool_name="t", tool_version="0",
        art_store=backend.artifact_store, art_index=index,
    )  # fmt: skip
    out: dict[str, Any] = {}

    async def names(step: str, **kw: Any) -> list[str]:
        kw.setdefault("kind", "checkpoint")
        kw.setdefault("labels", {"exp": "A"})
        rows = await arts.search(level="org", **kw)  # (level: no run filter: other processes' saves count)
        out[step] = [r.labels.get("filename") for r in rows]
        return out[step]

    async def save(name: str, exp: str = "A") -> Any:
        return await arts.save_json({"n": name}, kind="checkpoint", name=name, labels={"exp": exp},
                                    metrics={"val_acc": 0.1})  # fmt: skip

    for i in range(4):
        await save(f"c{i}", "A" if i % 2 == 0 else "B")
    time.sleep(2.2)  # the store's spool/ folder is old enough for its mtime to be trusted
    await names("first")
    await names("again")
    out["kept_after_again"] = len(index._results)
    out["stamp_alone"] = index._stamp.now() is not None
    await save("c4")
    await names("after_save")
    hit = (await arts.search(level="org", kind="checkpoint", labels={"exp": "A"}, limit=1))[0]
    before = await index.search(kind="checkpoint", labels={"exp": "A"}, pinned=True)
    await arts.pin(hit.artifact_id)
    after = await index.search(kind="checkpoint", labels={"exp": "A"}, pinned=True)
    out["pinned_before_after"] = [[r.labels.get("filename") for r in before], [r.labels.get("filename") for r in after]]
    backend.context.store.artifacts.delete(
        (await arts.search(level="org", kind="checkpoint", labels={"exp": "A"}))[-1].artifact_id
    )
    await names("after_delete")
    await names("limit_1", limit=1)
    # another process saves and stays open: seen at once, and nothing is kept while it is there
    hold = os.path.join(os.path.dirname(out_path), "hold")
    proc = other_process(root, "from-open-writer", hold)
    wait_for(hold + ".saved", proc)
    await names("other_open")
    await names("other_open_again")
    out["stamp_with_other"] = index._stamp.now() is not None
    open(hold, "w").close()
    assert proc.wait(timeout=120) == 0
    await names("other_closed")
    # one that opens, saves and closes between two searches (after the kept answer was old enough)
    time.sleep(2.2)
    await names("before_quick")
    quick = other_process(root, "from-quick-writer")
    assert quick.wait(timeout=120) == 0
    await names("after_quick")
    # staging: a planned path is the caller's to create; saved unwritten it is an empty artifact
    store = backend.artifact_store
    planned = await arts.stage_path(".json")
    out["planned_exists"] = os.path.lexists(planned)
    out["planned_in_staging"] = os.path.dirname(planned) == store.staging_dir
    empty = await arts.save_file(planned, kind="staged", name="empty.json")
    out["empty_loaded"] = (await arts.load_bytes(empty.uri)).decode()
    written = await arts.stage_path(".json")
    with open(written, "w") as f:
        f.write('{"w": 1}')
    small = await arts.save_file(written, kind="staged", name="small.json")
    out["small_loaded"] = (await arts.load_bytes(small.uri)).decode()
    uninstall()  # (waits for the staged files being removed)
    out["staged_left"] = sorted(
        n for n in os.listdir(store.staging_dir) if n in (os.path.basename(planned), os.path.basename(written))
    )
    with open(out_path, "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--backend", choices=["aeg"], required=True)
    ap.add_argument("--store", required=True)
    a = ap.parse_args()
    asyncio.run(main(a.out, a.store))
