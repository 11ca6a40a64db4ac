"""The benchmark suite still runs: ``python bench/run.py --quick`` end to end, into a scratch directory.

Peers (MLflow, AetherGraph) take part when they are installed (``pip install -r bench/requirements.txt``)
and are skipped, and reported as skipped, when they are not.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.timeout(240)
def test_bench_quick_runs(tmp_path: object) -> None:
    out = os.path.join(str(tmp_path), "results")
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, os.path.join(REPO, "bench", "run.py"), "--quick", "--out", out, "--tmp", str(tmp_path)]
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=230, env=env)
    took = time.perf_counter() - t
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert took < 120, f"the quick bench took {took:.0f} s; keep --quick tiny"

    with open(os.path.join(out, "results.json"), encoding="utf-8") as f:
        res = json.load(f)
    assert res["meta"]["mode"] == "quick"
    for section in ("write_latency", "spaced", "small_saves", "events", "artifacts", "save_file", "format2", "s3"):
        assert section in res, section
    for peer in ("mlflow", "aethergraph"):
        assert peer in res["meta"]["peers"] or peer in res["meta"]["skipped"], peer
    ops = " ".join(b["operation"] for b in res["budgets"])
    for name in ("memory.record", "recent", "cold", "search", "best", "save_file", "save_json", "RSS",
                 "after 5 ms sleep", "after 5 ms compute", "format 2", "`s3://` root"):  # fmt: skip
        assert name in ops, name
    assert all(b["met"] in (True, False) for b in res["budgets"])
    # a repeated save of the same bytes writes no new blob
    assert res["save_file"]["repeat"]["new_blob_bytes"] == 0
    assert res["save_file"]["repeat"]["same_uri"]
    assert res["events"]["checkpoints"][-1]["cold"]["open_query_s"] > 0
    # the RSS rows name their floor: a bare pyarrow.json + delta-rs writer of as many events
    floor = res["events"]["rss_floor"]
    assert floor["events"] == res["events"]["events"] and floor["commits"] >= 1 and floor["peak_rss_mb"] > 0
    rss_rows = [b for b in res["budgets"] if b["operation"].startswith("RSS while logging")]
    assert len(rss_rows) == 2 and all("floor: pyarrow.json + delta-rs" in b["peer"] for b in rss_rows)
    # the tail rows name what the machine gives a call: the no-flush control and the machine's own stalls
    tail_rows = [b for b in res["budgets"] if b["operation"].startswith("any single `record`")]
    assert tail_rows and all("no-flush control" in b["peer"] and "machine stalls" in b["peer"] for b in tail_rows)
    with open(os.path.join(out, "results.md"), encoding="utf-8") as f:
        md = f.read()
    assert "| operation | budget | measured |" in md
    if importlib.util.find_spec("matplotlib") is not None:
        assert os.path.getsize(os.path.join(out, "scaling.png")) > 0
