"""A real AetherGraph 0.1.0a15 graph on this store, against AetherGraph's own default backend.

Every AetherGraph process here is a child interpreter (graph_script.py), kept offline and contained:
its own working directory, HOME, XDG_CONFIG_HOME and AETHERGRAPH_WORKSPACE under tmp, the search,
knowledge search, embeddings and LLM services off, and netguard/sitecustomize.py refusing (and
logging) every connection or name lookup that is not for this machine.

The module starts its three graph runs at once (ours, the default backend, and one that pauses
after its first checkpoint for the live panel test) and shares them: AetherGraph's import alone
takes 10-20 s.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

import aeg_jupyter

pytestmark = [
    pytest.mark.skipif(
        importlib.util.find_spec("aethergraph") is None, reason="needs aethergraph==0.1.0a15 (pip install -e '.[test]')"
    ),
    # the first test waits for four AetherGraph children (each imports it: 10-20 s, minutes at load 25)
    pytest.mark.timeout(900),
]

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
SCRIPT = os.path.join(HERE, "graph_script.py")
OFFLINE = {
    "AETHERGRAPH_SEARCH__BACKEND": "none",
    "AETHERGRAPH_KNOWLEDGE__SEARCH__BACKEND": "none",
    "AETHERGRAPH_EMBED__ENABLED": "false",
    "AETHERGRAPH_LLM__ENABLED": "false",
}
ONLY_OURS = {"dir_files"}  # the default store keeps a directory's manifest only: as_local_dir fails there


# -- comparing answers: ids, URIs and times aside ---------------------------------------------------
DROP = {"artifact_id", "uri", "created_at", "ts", "event_id", "occurrence_id", "preview_uri", "_row_id"}
# a staged file's random name: AetherGraph labels it, on either backend
DROP_LABELS = {"filename"}


def normalize(obj: Any, run_id: str) -> Any:
    """``obj`` with this run's id replaced by ``RUN``, per-call ids and times dropped, NaN as a string."""
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if k in DROP:
                continue
            if k == "labels" and isinstance(v, dict):
                v = {lk: lv for lk, lv in v.items() if lk not in DROP_LABELS}
            out[k] = normalize(v, run_id)
        return out
    if isinstance(obj, list):
        return [normalize(v, run_id) for v in obj]
    if isinstance(obj, str):
        return obj.replace(run_id, "RUN")
    if isinstance(obj, float) and math.isnan(obj):
        return "NaN"
    if isinstance(obj, int | float) and not isinstance(obj, bool):
        return float(obj)  # our metrics are floats: 3 and 3.0 are the same answer
    return obj


def differences(ours: dict[str, Any], theirs: dict[str, Any], skip: set[str] = frozenset()) -> list[str]:
    """One line per battery answer that differs after normalizing."""
    a, b = ours["answers"], theirs["answers"]
    out = []
    for name in sorted(set(a) | set(b)):
        if name in skip:
            continue
        na, nb = normalize(a.get(name), ours["run_id"]), normalize(b.get(name), theirs["run_id"])
        if na != nb:
            out.append(f"{name}:\n  ours:    {na!r}\n  default: {nb!r}")
    return out


def _read(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read()


class Child:
    """One AetherGraph run in a contained child interpreter."""

    def __init__(self, base: str, backend: str, *extra: str, script: str = SCRIPT) -> None:
        self.base = base
        for d in ("home/.config", "cwd"):
            os.makedirs(os.path.join(base, d), exist_ok=True)
        self.out = os.path.join(base, "out.json")
        self.store = os.path.join(base, "store")
        self.netlog = os.path.join(base, "netguard.log")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AETHERGRAPH_", "AEG_"))}
        if os.environ.get("AEG_STORE_FORMAT"):  # the graph's store in the format this run of the suite tests
            env["AEG_STORE_FORMAT"] = os.environ["AEG_STORE_FORMAT"]
        env.update(OFFLINE)
        env.update(
            HOME=os.path.join(base, "home"),
            XDG_CONFIG_HOME=os.path.join(base, "home", ".config"),
            AETHERGRAPH_WORKSPACE=os.path.join(base, "ws"),
            PYTHONPATH=os.pathsep.join([os.path.join(HERE, "netguard"), REPO]),
            AEG_NETGUARD_LOG=self.netlog,
            HTTPS_PROXY="http://127.0.0.1:9",
            HTTP_PROXY="http://127.0.0.1:9",
            NO_PROXY="127.0.0.1,localhost",
        )
        args = [sys.executable, script, self.out, "--backend", backend, *extra]
        if backend == "aeg":
            args += ["--store", self.store]
        self.log = open(os.path.join(base, "child.log"), "w")  # noqa: SIM115 (closed in wait)
        self.proc = subprocess.Popen(
            args, cwd=os.path.join(base, "cwd"), env=env, stdout=self.log, stderr=subprocess.STDOUT
        )

    def wait(self, timeout: float = 300) -> dict[str, Any]:
        try:
            rc = self.proc.wait(timeout=timeout)
        finally:
            self.log.close()
        text = _read(os.path.join(self.base, "child.log"))
        assert rc == 0, f"AetherGraph child failed ({rc}):\n{text[-4000:]}"
        with open(self.out) as f:
            return json.load(f)

    def outside_calls(self) -> str:
        return _read(self.netlog) if os.path.exists(self.netlog) else ""


@pytest.fixture(scope="module")
def children(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Child]]:
    base = tmp_path_factory.mktemp("aethergraph")
    pause = os.path.join(base, "live", "go")
    kids = {"live": Child(os.path.join(base, "live"), "aeg", "--pause-file", pause)}
    kids["ours"] = Child(os.path.join(base, "ours"), "aeg")
    kids["default"] = Child(os.path.join(base, "default"), "default")
    kids["cache"] = Child(os.path.join(base, "cache"), "aeg", script=os.path.join(HERE, "cache_script.py"))
    kids["memory"] = Child(os.path.join(base, "memory"), "aeg", script=os.path.join(HERE, "memory_script.py"))
    kids["live"].pause_file = pause  # type: ignore[attr-defined]
    yield kids
    for k in kids.values():
        if k.proc.poll() is None:
            k.proc.kill()
            k.proc.wait()


@pytest.fixture(scope="module")
def ours(children: dict[str, Child]) -> dict[str, Any]:
    return children["ours"].wait()


@pytest.fixture(scope="module")
def theirs(children: dict[str, Child]) -> dict[str, Any]:
    return children["default"].wait()


# -- the graph's writes, read back through our API ----------------------------------------------------
def test_the_graph_lands_in_the_store_with_its_run_graph_and_node(
    ours: dict[str, Any], children: dict[str, Child]
) -> None:
    run_id = ours["run_id"]
    ctx = aeg_jupyter.connect(children["ours"].store)
    try:
        arts = ctx.store.artifacts.list()
        assert Counter(a.kind for a in arts) == {"checkpoint": 7, "model_dir": 1, "plot": 1}
        assert {(a.run_id, a.graph_id) for a in arts} == {(run_id, "aeg_pipeline")}
        nodes = Counter((a.kind, a.node_id) for a in arts)
        assert nodes == {
            ("checkpoint", "train_a_1"): 4, ("checkpoint", "train_b_1"): 3,
            ("model_dir", "package_1"): 1, ("plot", "plot_1"): 1,
        }  # fmt: skip
        ckpts = sorted(ctx.store.artifacts.list(kind="checkpoint"), key=lambda a: a.created_at)
        assert [a.metrics["val_acc"] for a in ckpts] == [0.81, 0.9, 0.93, 0.9, 0.7, 0.95, 0.88]
        nan_one = ckpts[2]  # its loss was NaN: not a metric here, kept for AetherGraph as a label
        assert "loss" not in nan_one.metrics and nan_one.labels["aethergraph.nonfinite.loss"] is True
        assert [a.labels["exp"] for a in ckpts] == ["A"] * 4 + ["B"] * 3
        best = ctx.store.artifacts.best(kind="checkpoint", metric="val_acc")
        assert best is not None and (best.metrics["val_acc"], best.node_id) == (0.95, "train_b_1")
        assert ctx.store.artifacts.load_json(best) == {"exp": "B", "step": 1, "val_acc": 0.95}
        assert best.pinned  # the battery pinned it through AetherGraph's facade
        model = ctx.store.artifacts.list(kind="model_dir")[0]
        local = ctx.store.artifacts.local_dir(model)
        assert sorted(os.listdir(local)) == ["config.json", "weights"]
        plot = ctx.store.artifacts.list(kind="plot")[0]
        assert ctx.store.artifacts.load_text(plot).count("<svg>") == 5 and plot.labels["exp"] == "plots"
        assert plot.metrics == {"points": 5.0}

        log = ctx.store.event_log
        evs = log.recent(limit=1000)
        assert Counter(e.kind for e in evs) == {
            "tool_result": 3, "train_log": 2, "note": 1, "state.snapshot": 2, "aethergraph.occurrence": 9,
        }  # fmt: skip
        assert {(e.run_id, e.graph_id) for e in evs} == {(run_id, "aeg_pipeline")}
        mine = [e for e in evs if e.kind != "aethergraph.occurrence"]
        assert {e.node_id for e in mine} == {"report_1"}
        assert [e.topic for e in log.recent_tool_results(tool="train")] == ["train", "train"]
        assert log.last_by_name("val_acc") == 0.95 and log.last_by_name("plot_bytes") == plot.size
        assert log.last_outputs_by_topic("plot") == {"plot_bytes": plot.size}
        assert [e.data["data"] for e in log.recent(kinds="train_log")] == [
            {"epoch": 1, "loss": 0.3},
            {"epoch": 2, "loss": 0.2},
        ]
        assert log.recent(kinds="train_log")[1].stage == "fit"
    finally:
        ctx.close()


def test_no_child_made_an_outside_connection(
    ours: dict[str, Any], theirs: dict[str, Any], children: dict[str, Child]
) -> None:
    for name in ("ours", "default"):
        assert children[name].outside_calls() == "", f"{name} tried to reach outside:\n{children[name].outside_calls()}"


# -- the differential: AetherGraph's facades give the same answers on both backends --------------------
def test_the_facades_answer_the_same_on_both_backends(ours: dict[str, Any], theirs: dict[str, Any]) -> None:
    compared = sorted(set(ours["answers"]) - ONLY_OURS)
    assert len(compared) >= 30 and set(compared) <= set(theirs["answers"])
    problems = differences(ours, theirs, skip=ONLY_OURS)
    assert not problems, "\n".join(problems)
    # the equal answers are answers: rankings, ties, NaN, limits, label and tag filters
    a = {k: normalize(v, ours["run_id"]) for k, v in ours["answers"].items()}
    val = [r["metrics"]["val_acc"] for r in a["search_max"]]
    assert val == sorted(val, reverse=True) and len(val) == 7
    assert [r["labels"]["seed"] for r in a["search_max"]][2:4] == [3.0, 1.0]  # the 0.9 tie: newest first
    assert a["best_tie"]["labels"]["exp"] == "B"  # epoch 0 in A and B: the newest wins
    assert a["best_nan_max"] is not None and len(a["search_nan_max"]) == 7  # NaN rows kept, where its sort puts them
    assert a["search_top2"] == a["search_max"][:2] and a["search_limit0"] == []
    assert {r["labels"]["exp"] for r in a["search_label"]} == {"A"} and len(a["search_label"]) == 4
    assert a["search_numeric_label"] == [] and a["search_label_nomatch"] == [] and a["best_nomatch"] is None
    assert len(a["search_tags"]) == 4 and a["search_tags_nomatch"] == []
    assert [e["kind"] for e in a["recent_kinds"]] == ["train_log", "train_log"]
    assert [e["outputs"][0]["value"] for e in a["recent_tool_results"]] == [0.95, 0.93]
    assert a["latest_state"] == {"a": 0.93, "b": 0.95, "final": True}
    assert a["load_json_by_id_best"] == {"exp": "B", "step": 1, "val_acc": 0.95} and a["pinned_after_pin"] is True


def test_what_only_our_backend_serves(ours: dict[str, Any], theirs: dict[str, Any]) -> None:
    # AetherGraph 0.1.0a15's default store keeps only a directory's manifest; ours keeps its files
    assert ours["answers"]["dir_files"] == ["config.json", "weights/w.bin"]
    assert theirs["answers"]["dir_files"].startswith("FileNotFoundError")


def test_unsupported_calls_raise_naming_the_method(ours: dict[str, Any]) -> None:
    errors = ours["errors"]
    assert errors["archive"].startswith("NotSupportedError: AegArtifactStore.ingest_directory(archive=True)")
    assert "not a URI of this store" in errors["foreign_uri"]
    assert errors["alias"] == {
        "exp": "B",
        "step": 1,
        "val_acc": 0.95,
    }  # an AetherGraph sha256 URI resolves through the alias label


def test_uninstall_puts_back_what_was_there(ours: dict[str, Any]) -> None:
    assert ours["uninstall"] == {"was_installed": True, "after_is_ours": False, "installed_after": False}


# -- kept search answers: every change shows in the next search ---------------------------------------
def test_kept_search_answers_follow_every_change(children: dict[str, Child]) -> None:
    kid = children["cache"]
    got = kid.wait()
    assert kid.outside_calls() == ""
    assert got["first"] == got["again"] == ["c2", "c0"]  # newest first
    assert got["kept_after_again"] >= 1 and got["stamp_alone"] is True  # the answer was kept
    assert got["after_save"] == ["c4", "c2", "c0"]
    assert got["pinned_before_after"] == [[], ["c4"]]
    assert got["after_delete"] == ["c4", "c2"] and got["limit_1"] == ["c4"]
    # another process's save, while it is open (nothing kept then) and after it closed
    assert got["other_open"] == got["other_open_again"] == ["from-open-writer", "c4", "c2"]
    assert got["stamp_with_other"] is False
    assert got["other_closed"] == ["from-open-writer", "c4", "c2"]
    assert got["before_quick"] == got["other_closed"]
    assert got["after_quick"] == ["from-quick-writer", *got["other_closed"]]
    # staging paths are planned, not created; saved, each is gone (the bytes are in the store)
    assert got["planned_exists"] is False and got["planned_in_staging"] is True
    assert got["empty_loaded"] == "" and got["small_loaded"] == '{"w": 1}'
    assert got["staged_left"] == []


# -- the hot log's per-timeline cache: the same answers as a read of the store ------------------------------
def test_timeline_reads_from_the_hot_cache_equal_the_store_read(children: dict[str, Child]) -> None:
    kid = children["memory"]
    got = kid.wait()
    assert kid.outside_calls() == ""
    # the timeline's records are interleaved with AetherGraph's occurrence events and another timeline's
    assert got["interleaved_kinds"] == ["aethergraph.occurrence", "side_log", "train_log"]
    steps = got["steps"]
    assert list(steps) == [
        "first", "again", "after_interleaved_writes", "other_open", "other_open_then_ours", "other_closed",
        "other_came_and_went", "after_a_flood", "after_a_flood_again", "alone_after_writes",
    ]  # fmt: skip
    for name, st in steps.items():  # recent and a filtered query, through the hot log and the facade
        assert st["equal"] and st["facade_equal"], (name, st)
    assert [steps[k]["n"] for k in ("first", "again", "after_interleaved_writes")] == [20, 20, 30]  # window: 30
    # answered from the cache (the same one, caught up), except the first read and when more events came
    # since the last look than the event log's hot window holds
    cached = {k for k, st in steps.items() if st["from_cache"]}
    assert cached == set(steps) - {"first", "after_a_flood"}
    # another process's events on the timeline, while it is open and after it closed
    assert got["stamp_with_other"] is False and got["stamp_alone"] is True
    for k in ("other_open", "other_open_then_ours", "other_closed", "other_came_and_went"):
        assert steps[k]["kinds"] == ["from_other", "train_log"], k
    assert steps["after_interleaved_writes"]["kinds"] == ["train_log"]


# -- a real kernel's %aeg over the graph's store ---------------------------------------------------------
def test_magics_in_a_real_kernel_see_the_graph(
    ours: dict[str, Any], children: dict[str, Child], monkeypatch: pytest.MonkeyPatch
) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    # the kernel imports this checkout, as every other child here does (not whatever is installed)
    monkeypatch.setenv("PYTHONPATH", REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    root, run_id = children["ours"].store, ours["run_id"]
    cells = [
        f"import os\nos.environ['AEG_STORE'] = {root!r}",
        "%load_ext aeg_jupyter",
        f"context.graph_id = 'aeg_pipeline'\ncontext.run_id = {run_id!r}",
        "b = %aeg best checkpoint --metric val_acc --max\nprint('BEST', b.metrics['val_acc'], b.node_id, b.run_id)",
        "lb = %aeg leaderboard checkpoint --metric val_acc --max --scope graph\n"
        "print('LB', list(lb['metric.val_acc']))",
        "lr = %aeg leaderboard checkpoint --metric val_acc --max --scope run -n 3\nprint('LBRUN', len(lr))",
        "r = %aeg recent -n 100 --all-columns\nprint('RECENT', sorted(set(r['kind'])), sorted(set(r['node_id'])))",
        "context.graph_id = 'another_graph'\n"
        "lo = %aeg leaderboard checkpoint --metric val_acc --max --scope graph\nprint('LBOTHER', len(lo))",
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    client = nbclient.NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": children["ours"].base}}
    )
    client.execute()
    text = "\n".join(
        o.get("text", "") for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "stream"
    )
    assert f"BEST 0.95 train_b_1 {run_id}" in text, text
    assert "LB [0.95, 0.93, 0.9, 0.9, 0.88, 0.81, 0.7]" in text, text
    assert "LBRUN 3" in text and "LBOTHER 0" in text, text
    assert (
        "RECENT ['aethergraph.occurrence', 'note', 'state.snapshot', 'tool_result', 'train_log'] "
        "['package_1', 'plot_1', 'report_1', 'train_a_1', 'train_b_1']"
    ) in text, text


# -- a graph running in another process while a panel here watches -------------------------------------
def test_the_panel_leaderboard_follows_a_running_graph(children: dict[str, Child]) -> None:
    pytest.importorskip("ipywidgets")
    from aeg_jupyter.frontends.panel import Panel

    live = children["live"]
    deadline = time.monotonic() + 240
    while not os.path.exists(os.path.join(live.store, "aeg-store.json")):
        assert live.proc.poll() is None, _read(os.path.join(live.base, "child.log"))[-3000:]
        assert time.monotonic() < deadline, "the graph never opened its store"
        time.sleep(0.2)
    ctx = aeg_jupyter.connect(live.store)
    panel = Panel(ctx, kind="checkpoint", metric="val_acc")
    try:
        while True:  # the graph pauses after its first checkpoint until we say go
            panel.refresh()
            if len(panel.leaderboard_tab.frame):
                break
            assert live.proc.poll() is None and time.monotonic() < deadline, "no checkpoint arrived"
            time.sleep(0.2)
        assert list(panel.leaderboard_tab.frame["metric.val_acc"]) == [0.81]
        open(live.pause_file, "w").close()  # type: ignore[attr-defined]
        out = live.wait()
        panel.refresh()
        assert list(panel.leaderboard_tab.frame["metric.val_acc"]) == [0.95, 0.93, 0.9, 0.9, 0.88, 0.81, 0.7]
        assert set(panel.leaderboard_tab.frame["run_id"]) == {out["run_id"]}
        assert live.outside_calls() == ""
    finally:
        panel.close()
        ctx.close()
