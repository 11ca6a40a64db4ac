"""A real AetherGraph graph, run in a child interpreter by tests/aethergraph (and bench/).

``python graph_script.py OUT.json --backend aeg|default [--store ROOT] [--pause-file F] [--tag T]``

The graph (``graphify`` over tools, one node each): two training nodes save checkpoints with
metrics (ties, a NaN, labels, tags), a node stages and ingests a directory, a node streams a plot
through ``writer()``, a node records tool results, events and a state snapshot, and a last node asks
AetherGraph's own facades a battery of questions. OUT.json gets the answers and the run's ids.
With ``--pause-file F`` the first training node waits (after its first checkpoint) until F exists.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import sys
import time
from typing import Any

from aethergraph import NodeContext, graphify, tool
from aethergraph.runner import run

ARGS: argparse.Namespace


def _art(a: Any) -> dict[str, Any] | None:
    if a is None:
        return None
    d = a.to_dict()
    return {k: d[k] for k in ("artifact_id", "uri", "kind", "labels", "metrics", "pinned", "sha256", "mime", "bytes",
                              "run_id", "graph_id", "node_id", "tool_name", "tool_version", "tags")}  # fmt: skip


def _ev(e: Any) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(e)


async def _checkpoints(context: NodeContext, exp: str, rows: list[tuple[float, float]], pause: bool) -> float:
    arts = context.artifacts()
    best = -1.0
    for i, (acc, loss) in enumerate(rows):
        seed = i + (0 if exp == "A" else 10)
        await arts.save_json(
            {"exp": exp, "step": i, "val_acc": acc},
            kind="checkpoint",
            labels={"exp": exp, "seed": seed, "stage": "final" if i == len(rows) - 1 else "mid"},
            metrics={"val_acc": acc, "loss": loss, "epoch": i},
            tags=["best"] if acc >= 0.9 else None,
        )
        best = max(best, acc)
        if pause and i == 0 and ARGS.pause_file:
            while not os.path.exists(ARGS.pause_file):
                await asyncio.sleep(0.05)
    return best


@tool(outputs=["best"])
async def train_a(lr: float, *, context: NodeContext) -> dict[str, Any]:
    rows = [(0.81, 0.5), (0.9, 0.35), (0.93, math.nan), (0.9, 0.3)]  # a tie at 0.9, a NaN loss
    return {"best": await _checkpoints(context, "A", rows, pause=True)}


@tool(outputs=["best"])
async def train_b(lr: float, *, context: NodeContext) -> dict[str, Any]:
    rows = [(0.7, 0.6), (0.95, 0.25), (0.88, 0.2)]
    return {"best": await _checkpoints(context, "B", rows, pause=False)}


@tool(outputs=["n_files"])
async def package(best_a: float, best_b: float, *, context: NodeContext) -> dict[str, Any]:
    arts = context.artifacts()
    d = await arts.stage_dir()
    os.makedirs(os.path.join(d, "weights"))
    with open(os.path.join(d, "weights", "w.bin"), "wb") as f:
        f.write(bytes(range(256)) * 8)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump({"best_a": best_a, "best_b": best_b}, f)
    n_files = sum(len(fs) for _, _, fs in os.walk(d))
    await arts.ingest_dir(d, kind="model_dir", labels={"exp": "pkg"}, metrics={"val_acc": max(best_a, best_b)})
    return {"n_files": n_files}


@tool(outputs=["plot_bytes"])
async def plot(n_files: int, *, context: NodeContext) -> dict[str, Any]:
    arts = context.artifacts()
    async with arts.writer(kind="plot", planned_ext=".svg") as w:
        for i in range(5):
            w.write(f'<svg><rect x="{i}" width="{n_files}"/></svg>\n'.encode())
        w.add_labels({"exp": "plots"})
        w.add_metrics({"points": 5})
    return {"plot_bytes": w.artifact.bytes}


@tool(outputs=["recorded"])
async def report(best_a: float, best_b: float, plot_bytes: int, *, context: NodeContext) -> dict[str, Any]:
    mem = context.memory()
    await mem.record_tool_result(
        tool="train", inputs=[{"name": "lr", "vtype": "number", "value": 0.1}],
        outputs=[{"name": "val_acc", "vtype": "number", "value": best_a}], metrics={"val_acc": best_a},
    )  # fmt: skip
    await mem.record_tool_result(
        tool="train", inputs=[{"name": "lr", "vtype": "number", "value": 0.2}],
        outputs=[{"name": "val_acc", "vtype": "number", "value": best_b}], metrics={"val_acc": best_b},
    )  # fmt: skip
    await mem.record_tool_result(tool="plot", outputs=[{"name": "plot_bytes", "vtype": "number", "value": plot_bytes}])
    await mem.append_event(kind="train_log", data={"epoch": 1, "loss": 0.3}, tags=["train", "epoch"])
    await mem.append_event(kind="train_log", data={"epoch": 2, "loss": 0.2}, tags=["train"], stage="fit")
    await mem.append_event(kind="note", data="all nodes done", severity=1)
    await mem.append_state_snapshot("best", {"a": best_a, "b": best_b})
    await mem.append_state_snapshot("best", {"a": best_a, "b": best_b, "final": True})
    return {"recorded": 8}


BATTERY: list[tuple[str, str, dict[str, Any]]] = [
    # (name, facade method, kwargs); run in this order by the battery node
    ("search_kind", "arts.search", {"kind": "checkpoint"}),
    ("search_max", "arts.search", {"kind": "checkpoint", "metric": "val_acc", "metric_mode": "max"}),
    ("search_min", "arts.search", {"kind": "checkpoint", "metric": "val_acc", "metric_mode": "min"}),
    ("search_top2", "arts.search", {"kind": "checkpoint", "metric": "val_acc", "metric_mode": "max", "limit": 2}),
    ("search_limit0", "arts.search", {"kind": "checkpoint", "metric": "val_acc", "metric_mode": "max", "limit": 0}),
    ("search_limit3_newest", "arts.search", {"kind": "checkpoint", "limit": 3}),
    ("search_label", "arts.search", {"kind": "checkpoint", "labels": {"exp": "A"}}),
    (
        "search_label_ranked",
        "arts.search",
        {"kind": "checkpoint", "labels": {"exp": "B"}, "metric": "val_acc", "metric_mode": "max"},
    ),
    ("search_two_labels", "arts.search", {"kind": "checkpoint", "labels": {"exp": "A", "stage": "final"}}),
    ("search_label_nomatch", "arts.search", {"kind": "checkpoint", "labels": {"exp": "Z"}}),
    ("search_numeric_label", "arts.search", {"kind": "checkpoint", "labels": {"seed": 1}}),
    ("search_kind_nomatch", "arts.search", {"kind": "no_such_kind"}),
    ("search_metric_missing", "arts.search", {"kind": "checkpoint", "metric": "f1", "metric_mode": "max"}),
    ("search_nan_max", "arts.search", {"kind": "checkpoint", "metric": "loss", "metric_mode": "max"}),
    ("search_nan_min", "arts.search", {"kind": "checkpoint", "metric": "loss", "metric_mode": "min"}),
    ("search_tags", "arts.search", {"kind": "checkpoint", "tags": ["best"]}),
    (
        "search_tags_ranked",
        "arts.search",
        {"kind": "checkpoint", "tags": ["best"], "metric": "val_acc", "metric_mode": "min"},
    ),
    ("search_tags_nomatch", "arts.search", {"kind": "checkpoint", "tags": ["nope"]}),
    ("search_any_kind_metric", "arts.search", {"metric": "val_acc", "metric_mode": "max"}),
    ("search_epoch_ties", "arts.search", {"kind": "checkpoint", "metric": "epoch", "metric_mode": "max", "limit": 4}),
    ("search_include_node", "arts.search", {"kind": "checkpoint", "include_node": True}),
    ("search_include_graph", "arts.search", {"kind": "checkpoint", "include_graph": True, "limit": 2}),
    ("search_level_scope", "arts.search", {"kind": "plot", "level": "scope"}),
    ("best_max", "arts.best", {"kind": "checkpoint", "metric": "val_acc", "metric_mode": "max"}),
    ("best_min", "arts.best", {"kind": "checkpoint", "metric": "val_acc", "metric_mode": "min"}),
    ("best_tie", "arts.best", {"kind": "checkpoint", "metric": "epoch", "metric_mode": "min"}),  # A and B at 0
    (
        "best_tie_label",
        "arts.best",
        {"kind": "checkpoint", "metric": "val_acc", "metric_mode": "max", "filters": {"exp": "A", "stage": "mid"}},
    ),
    (
        "best_label",
        "arts.best",
        {"kind": "checkpoint", "metric": "val_acc", "metric_mode": "max", "filters": {"exp": "A"}},
    ),
    ("best_nan_max", "arts.best", {"kind": "checkpoint", "metric": "loss", "metric_mode": "max"}),
    ("best_nan_min", "arts.best", {"kind": "checkpoint", "metric": "loss", "metric_mode": "min"}),
    (
        "best_nomatch",
        "arts.best",
        {"kind": "checkpoint", "metric": "val_acc", "metric_mode": "max", "filters": {"exp": "Z"}},
    ),
    ("best_missing_metric", "arts.best", {"kind": "checkpoint", "metric": "f1", "metric_mode": "max"}),
    ("best_tags", "arts.best", {"kind": "checkpoint", "metric": "loss", "metric_mode": "min", "tags": ["best"]}),
    ("best_dir", "arts.best", {"kind": "model_dir", "metric": "val_acc", "metric_mode": "max"}),
    ("list_run", "arts.list", {"include_node": False}),
    ("list_node", "arts.list", {}),
    ("list_limit", "arts.list", {"include_node": False, "limit": 2}),
    ("list_filters", "arts.list", {"include_node": False, "filters": {"exp": "B"}}),
    ("list_tags", "arts.list", {"include_node": False, "tags": ["best"]}),
    ("recent", "mem.recent", {"limit": 50}),
    ("recent_5", "mem.recent", {"limit": 5}),
    ("recent_kinds", "mem.recent", {"kinds": ["train_log"]}),
    ("recent_kind_nomatch", "mem.recent", {"kinds": ["no_such_kind"]}),
    ("recent_limit0", "mem.recent", {"limit": 0}),
    ("recent_events_tags", "mem.recent_events", {"tags": ["train"], "limit": 5}),
    ("recent_tool_results", "mem.recent_tool_results", {"tool": "train"}),
    ("recent_tool_results_1", "mem.recent_tool_results", {"tool": "train", "limit": 1}),
    ("recent_tool_results_nomatch", "mem.recent_tool_results", {"tool": "no_such_tool"}),
    (
        "query_persist_asc",
        "mem.query_events",
        {"kinds": ["train_log", "note"], "use_persistence": True, "order_dir": "asc"},
    ),
    ("query_persist_node", "mem.query_events", {"node_id": "report_1", "use_persistence": True, "limit": 3}),
    ("query_hot_topic", "mem.query_events", {"topic": "plot"}),
    ("query_offset", "mem.query_events", {"use_persistence": True, "offset": 2, "limit": 3}),
    ("latest_state", "mem.get_latest_state", {"key": "best"}),
    ("latest_state_missing", "mem.get_latest_state", {"key": "nope"}),
    ("state_history", "mem.list_state_history", {"key": "best"}),
]


@tool(outputs=["n_calls"])
async def battery(recorded: int, n_files: int, *, context: NodeContext) -> dict[str, Any]:
    arts, mem = context.artifacts(), context.memory()
    out: dict[str, Any] = {"run_id": context.run_id, "graph_id": context.graph_id, "answers": {}, "timing": {}}
    for name, method, kw in BATTERY:
        obj = arts if method.startswith("arts.") else mem
        fn = getattr(obj, method.split(".", 1)[1])
        t = time.perf_counter()
        res = await fn(**kw)
        out["timing"][name] = time.perf_counter() - t
        if isinstance(res, list):
            res = [_art(r) if hasattr(r, "artifact_id") else _ev(r) for r in res]
        elif hasattr(res, "artifact_id"):
            res = _art(res)
        out["answers"][name] = res
    # calls that need an answer from above
    best = await arts.best(kind="checkpoint", metric="val_acc", metric_mode="max")
    out["answers"]["load_json_by_id_best"] = await arts.load_json_by_id(best.artifact_id)
    out["answers"]["load_json_uri_best"] = await arts.load_json(best.uri)
    out["answers"]["get_by_id_best"] = _art(await arts.get_by_id(best.artifact_id))
    out["answers"]["get_by_id_missing"] = _art(await arts.get_by_id("no-such-id"))
    with open(await arts.as_local_file(best), "rb") as f:
        out["answers"]["as_local_file_best"] = json.loads(f.read())
    plot_art = (await arts.search(kind="plot"))[0]
    out["answers"]["load_text_plot"] = await arts.load_text(plot_art.uri)
    d = (await arts.search(kind="model_dir"))[0]
    try:  # AetherGraph's default store keeps only a directory's manifest: this fails there
        local = await arts.as_local_dir(d)
        out["answers"]["dir_files"] = sorted(
            os.path.relpath(os.path.join(p, f), local).replace(os.sep, "/") for p, _, fs in os.walk(local) for f in fs
        )
    except FileNotFoundError as exc:
        out["answers"]["dir_files"] = f"FileNotFoundError: {exc}"
    await arts.pin(best.artifact_id)
    out["answers"]["pinned_after_pin"] = (await arts.get_by_id(best.artifact_id)).pinned
    out["answers"]["search_after_pin"] = [_art(a) for a in await arts.search(kind="checkpoint", limit=2)]
    ev = (await mem.recent(kinds=["note"]))[0]
    got = await mem.get_event(ev.event_id)
    out["answers"]["get_event_note"] = _ev(got) if got else None
    occ = await arts.index.list_occurrences_for_run(context.run_id, limit=3)
    out["answers"]["occurrences_for_run"] = [_art(a) for a in occ]
    out["answers"]["list_for_run_kinds"] = sorted(a.kind for a in await arts.index.list_for_run(context.run_id))
    if ARGS.backend == "aeg":
        out["errors"] = await _unsupported(context)
    with open(ARGS.out, "w") as f:
        json.dump(out, f, default=str, allow_nan=True)
    return {"n_calls": len(out["answers"])}


async def _unsupported(context: NodeContext) -> dict[str, str]:
    """What our backend cannot serve raises, naming the method."""
    arts = context.artifacts()
    errors = {}
    d = await arts.stage_dir()
    with open(os.path.join(d, "x.txt"), "w") as f:
        f.write("x")
    try:
        await arts.ingest_dir(d, kind="bundle", archive=True)
    except NotImplementedError as exc:
        errors["archive"] = f"{type(exc).__name__}: {exc}"
    try:
        await arts.load_bytes("s3://bucket/not-here")
    except Exception as exc:
        errors["foreign_uri"] = f"{type(exc).__name__}: {exc}"
    best = await arts.best(kind="checkpoint", metric="val_acc", metric_mode="max")
    # the URI AetherGraph's own store would have given these bytes: resolved through the sha256 alias
    errors["alias"] = await arts.load_json(f"file:///elsewhere/artifacts/blobs/cas/blobs/{best.sha256}.json")
    return errors


@graphify(name="aeg_pipeline", inputs=["lr"], outputs=["n_calls"])
def aeg_pipeline(lr):
    a = train_a(lr=lr)
    b = train_b(lr=a.best)  # after train_a: the save order is the same on every run
    p = package(best_a=a.best, best_b=b.best)
    q = plot(n_files=p.n_files)
    r = report(best_a=a.best, best_b=b.best, plot_bytes=q.plot_bytes)
    z = battery(recorded=r.recorded, n_files=p.n_files)
    return {"n_calls": z.n_calls}


def main() -> None:
    global ARGS
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--backend", choices=["aeg", "default"], required=True)
    ap.add_argument("--store")
    ap.add_argument("--pause-file")
    ARGS = ap.parse_args()
    backend = None
    if ARGS.backend == "aeg":
        from aeg_jupyter.aethergraph import install

        backend = install(ARGS.store)
    t = time.perf_counter()
    result = run(aeg_pipeline, inputs={"lr": 0.1})
    elapsed = time.perf_counter() - t
    if backend is not None:
        from aethergraph.core.runtime.runtime_services import current_services

        from aeg_jupyter.aethergraph import installed, uninstall

        same = current_services() is backend.container
        uninstall()
        try:
            after = current_services()
        except RuntimeError:
            after = None
        with open(ARGS.out) as f:
            out = json.load(f)
        out["uninstall"] = {"was_installed": same, "after_is_ours": after is backend.container,
                            "installed_after": installed() is not None}  # fmt: skip
        with open(ARGS.out, "w") as f:
            json.dump(out, f, default=str, allow_nan=True)
    print(json.dumps({"result": result, "elapsed": elapsed}))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
