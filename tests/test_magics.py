"""``%aeg`` through a real IPython ``InteractiveShell`` (history disabled): every subcommand, what it
returns, the exact one-line errors, loading and unloading, settings, scopes and completion."""

from __future__ import annotations

import dataclasses
import os
import re
from typing import Any

import numpy as np
import pandas as pd
import pytest
from conftest import REPO, run_child
from IPython.core.error import UsageError

from aeg_jupyter import Artifact, Event, GcReport, KernelContext, NotFoundError, VerifyReport
from aeg_jupyter.base.hashing import hash_bytes
from aeg_jupyter.core.serialize import PngImage
from aeg_jupyter.frontends.commands import COMMANDS, StoreStatus
from aeg_jupyter.frontends.magics import AegMagics
from aeg_jupyter.storage.schemas2 import INLINE_MAX


@dataclasses.dataclass
class Point:
    """Picklable, but with no safe format."""

    x: int
    y: int


@pytest.fixture
def store(tmp_path: Any) -> str:
    return str(tmp_path / "store")


@pytest.fixture
def ip(ipython_shell: Any, store: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("AEG_STORE", store)
    ipython_shell.run_line_magic("load_ext", "aeg_jupyter")
    return ipython_shell


def aeg(ip: Any, line: str) -> Any:
    return ip.run_line_magic("aeg", line)


def ctx(ip: Any) -> KernelContext:
    return ip.user_ns["context"]


def cell(ip: Any, source: str, **kw: Any) -> Any:
    result = ip.run_cell(source, store_history=True, **kw)
    if result.error_before_exec or result.error_in_exec:
        raise result.error_before_exec or result.error_in_exec
    return result.result


# -- loading and unloading -----------------------------------------------------------------------
def test_load_prints_one_line_and_binds_context(ipython_shell: Any, store: str, monkeypatch: Any, capsys: Any) -> None:
    monkeypatch.setenv("AEG_STORE", store)
    ipython_shell.run_line_magic("load_ext", "aeg_jupyter")
    out = capsys.readouterr().out.splitlines()
    context = ipython_shell.user_ns["context"]
    assert isinstance(context, KernelContext)
    assert out == [f"aeg_jupyter: store {store} | run {context.run_id} | 0 artifacts, 0 events | `context` is ready"]
    assert context.store.root == store
    assert context.run_id.startswith("run-")
    assert context.graph_id == "default"


def test_load_counts_what_the_store_holds(ipython_shell: Any, store: str, monkeypatch: Any, capsys: Any) -> None:
    monkeypatch.setenv("AEG_STORE", store)
    ipython_shell.run_line_magic("load_ext", "aeg_jupyter")
    aeg(ipython_shell, "log train_log epoch=1")
    ipython_shell.user_ns["note"] = "hi"
    aeg(ipython_shell, "save note")
    aeg(ipython_shell, "save note")
    ipython_shell.run_line_magic("unload_ext", "aeg_jupyter")
    capsys.readouterr()
    ipython_shell.run_line_magic("load_ext", "aeg_jupyter")
    assert "| 2 artifacts, 1 event | `context` is ready" in capsys.readouterr().out


def test_a_taken_context_name_is_left_alone(ipython_shell: Any, store: str, monkeypatch: Any, capsys: Any) -> None:
    monkeypatch.setenv("AEG_STORE", store)
    ipython_shell.user_ns["context"] = "mine"
    ipython_shell.run_line_magic("load_ext", "aeg_jupyter")
    assert capsys.readouterr().out.rstrip().endswith("| `context` was taken: use `aeg_context`")
    assert ipython_shell.user_ns["context"] == "mine"
    assert isinstance(ipython_shell.user_ns["aeg_context"], KernelContext)


def test_both_names_taken(ipython_shell: Any, store: str, monkeypatch: Any, capsys: Any) -> None:
    from aeg_jupyter.frontends.magics import current_context

    monkeypatch.setenv("AEG_STORE", store)
    ipython_shell.user_ns.update(context=1, aeg_context=2)
    ipython_shell.run_line_magic("load_ext", "aeg_jupyter")
    assert (
        capsys.readouterr()
        .out.rstrip()
        .endswith(
            "| `context` and `aeg_context` are taken: get it with `aeg_jupyter.frontends.magics.current_context()`"
        )
    )
    assert current_context(ipython_shell).store.root == store


def test_unload_closes_cleanly(ip: Any, store: str, capsys: Any) -> None:
    context = ctx(ip)
    aeg(ip, "log train_log epoch=1")
    writer_spool = os.path.join(store, "spool", context.store.writer)
    assert os.path.isdir(writer_spool)
    capsys.readouterr()
    ip.run_line_magic("unload_ext", "aeg_jupyter")
    assert capsys.readouterr().out == f"aeg_jupyter: store {store} closed (spools flushed to Parquet)\n"
    assert context.store.closed
    assert not os.path.exists(writer_spool)
    assert os.listdir(os.path.join(store, "tables", "events", "kind=train_log"))
    assert "context" not in ip.user_ns
    assert not any(isinstance(c, AegMagics) for c in ip.configurables)
    assert "%aeg" not in ip.strdispatchers["complete_command"].strs
    with pytest.raises(UsageError, match="Line magic function `%aeg` not found"):
        aeg(ip, "status")
    ip.run_line_magic("load_ext", "aeg_jupyter")  # loads again, on the same store
    assert ctx(ip).store.root == store and ctx(ip) is not context


def test_reload_ext_keeps_working(ip: Any) -> None:
    ip.run_line_magic("reload_ext", "aeg_jupyter")
    assert isinstance(aeg(ip, "status"), StoreStatus)
    assert sum(isinstance(c, AegMagics) for c in ip.configurables) == 1


def test_store_from_config_when_env_unset(ipython_shell: Any, tmp_path: Any) -> None:
    ipython_shell.config.AegMagics.store = str(tmp_path / "configured")
    ipython_shell.run_line_magic("load_ext", "aeg_jupyter")
    assert ctx(ipython_shell).store.root == str(tmp_path / "configured")


def test_env_wins_over_config(ipython_shell: Any, tmp_path: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv("AEG_STORE", str(tmp_path / "env"))
    ipython_shell.config.AegMagics.store = str(tmp_path / "configured")
    ipython_shell.run_line_magic("load_ext", "aeg_jupyter")
    assert ctx(ipython_shell).store.root == str(tmp_path / "env")


def test_default_store_is_dot_aeg_in_the_working_directory(ipython_shell: Any, tmp_path: Any) -> None:
    ipython_shell.run_line_magic("load_ext", "aeg_jupyter")
    assert ctx(ipython_shell).store.root == str(tmp_path / ".aeg")


def test_a_bad_store_is_a_usage_error(ipython_shell: Any, tmp_path: Any, monkeypatch: Any) -> None:
    (tmp_path / "afile").write_text("x")
    monkeypatch.setenv("AEG_STORE", str(tmp_path / "afile"))
    with pytest.raises(
        UsageError, match=r"^aeg_jupyter: store root '.*afile' is a file; point the store at a directory"
    ):
        ipython_shell.run_line_magic("load_ext", "aeg_jupyter")
    assert "aeg_jupyter" not in ipython_shell.extension_manager.loaded
    assert not any(isinstance(c, AegMagics) for c in ipython_shell.configurables)


# -- %config -------------------------------------------------------------------------------------
def test_config_lists_the_settings(ip: Any, capsys: Any) -> None:
    ip.run_line_magic("config", "AegMagics")
    out = capsys.readouterr().out
    for name in ("store", "display_limit", "default_scope", "hot_limit"):
        assert f"AegMagics.{name}=" in out
    assert "Current: 'all'" in out


def test_display_limit_and_default_scope(ip: Any) -> None:
    for i in range(4):
        aeg(ip, f"log step i={i}")
    ip.run_line_magic("config", "AegMagics.display_limit = 2")
    assert list(aeg(ip, "recent step")["data.i"]) == [3, 2]
    assert len(aeg(ip, "recent step -n 3")) == 3
    aeg(ip, "run new second")
    aeg(ip, "log step i=9")
    assert len(aeg(ip, "recent step -n 10")) == 5
    ip.run_line_magic("config", "AegMagics.default_scope = 'run'")
    assert list(aeg(ip, "recent step -n 10")["data.i"]) == [9]
    assert len(aeg(ip, "recent step -n 10 --scope all")) == 5


def test_bad_settings_are_refused(ip: Any, capsys: Any) -> None:
    ip.run_line_magic("config", "AegMagics.display_limit = 0")
    ip.run_line_magic("config", "AegMagics.default_scope = 'galaxy'")
    magics = ip.magics_manager.registry["AegMagics"]
    assert (magics.display_limit, magics.default_scope) == (20, "all")


def test_config_store_switches_the_kernel_to_another_store(ip: Any, tmp_path: Any, capsys: Any) -> None:
    old = ctx(ip)
    aeg(ip, "log first a=1")
    other = str(tmp_path / "other")
    capsys.readouterr()
    ip.run_line_magic("config", f"AegMagics.store = {other!r}")
    new = ctx(ip)
    assert new.store.root == other and new.run_id == old.run_id
    assert old.store.closed
    assert capsys.readouterr().out.startswith(f"aeg_jupyter: store {other} | run {old.run_id} | 0 artifacts")
    assert aeg(ip, "recent").empty


# -- scopes from the kernel ----------------------------------------------------------------------
def test_graph_id_from_session_name(ipython_shell: Any, store: str, monkeypatch: Any) -> None:
    monkeypatch.setenv("AEG_STORE", store)
    monkeypatch.setenv("JPY_SESSION_NAME", "work/train.ipynb")
    ipython_shell.run_line_magic("load_ext", "aeg_jupyter")
    assert ctx(ipython_shell).graph_id == "work/train.ipynb"


def test_graph_id_from_ipykernel_session_variable(ipython_shell: Any, store: str, monkeypatch: Any) -> None:
    monkeypatch.setenv("AEG_STORE", store)
    monkeypatch.setenv("JPY_SESSION_NAME", "ignored.ipynb")
    ipython_shell.user_ns["__session__"] = "/home/me/nb.ipynb"
    ipython_shell.run_line_magic("load_ext", "aeg_jupyter")
    assert ctx(ipython_shell).graph_id == "/home/me/nb.ipynb"


def test_node_id_follows_the_cell(ip: Any) -> None:
    cell(ip, "a = %aeg log step i=1")
    first = ip.user_ns["a"].node_id
    assert re.fullmatch(r"In\[\d+\]", first)
    cell(ip, "b = %aeg log step i=2")
    assert ip.user_ns["b"].node_id != first
    cell(ip, "c = %aeg log step i=3", cell_id="cell-abc")
    assert ip.user_ns["c"].node_id == "cell-abc" == ctx(ip).node_id
    ip.user_ns["x"] = "v"
    cell(ip, "art = %aeg save x", cell_id="cell-def")
    assert ip.user_ns["art"].node_id == "cell-def"


# -- save and load by type -----------------------------------------------------------------------
def _figure() -> Any:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(2, 2))
    fig.add_subplot().plot([1, 2, 3])
    return fig


@pytest.mark.parametrize(
    ("make", "kind", "name", "mime"),
    [
        (lambda: "hello ✓", "text", "obj.txt", "text/plain; charset=utf-8"),
        (lambda: b"\x00\x01\xff", "bytes", "obj.bin", "application/octet-stream"),
        (lambda: {"lr": 0.001, "layers": [1, 2]}, "json", "obj.json", "application/json"),
        (lambda: [1, "two", None], "json", "obj.json", "application/json"),
        (lambda: pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}, index=[5, 6]), "dataframe", "obj.parquet",
         "application/vnd.apache.parquet"),
        (lambda: np.arange(6, dtype="float32").reshape(2, 3), "array", "obj.npy", "application/x-npy"),
        (_figure, "plot", "obj.png", "image/png"),
    ],
)  # fmt: skip
def test_save_by_type_and_load_back(ip: Any, make: Any, kind: str, name: str, mime: str) -> None:
    obj = make()
    ip.user_ns["obj"] = obj
    art = aeg(ip, "save obj")
    assert isinstance(art, Artifact)
    assert (art.kind, art.name, art.mime) == (kind, name, mime)
    back = aeg(ip, f"load {art.artifact_id}")
    if isinstance(obj, pd.DataFrame):
        pd.testing.assert_frame_equal(back, obj)
    elif isinstance(obj, np.ndarray):
        np.testing.assert_array_equal(back, obj)
        assert back.dtype == obj.dtype
    elif kind == "plot":
        assert isinstance(back, PngImage) and back.startswith(b"\x89PNG")
        assert back._repr_png_() == bytes(back)
    else:
        assert back == obj


def test_pickle_only_when_asked_and_loading_it_needs_consent(ip: Any) -> None:
    ip.user_ns["p"] = Point(1, 2)
    with pytest.raises(UsageError) as err:
        aeg(ip, "save p")
    assert str(err.value) == (
        "%aeg save: aeg saves str, bytes, dict/list (JSON), a pandas DataFrame, a numpy array or a matplotlib "
        "figure by type; this Point needs --pickle (loading a pickle later runs code from it)"
    )
    art = aeg(ip, "save p --pickle")
    assert (art.kind, art.name) == ("pickle", "p.pkl")
    with pytest.raises(UsageError) as err:
        aeg(ip, f"load {art.short_id}")
    assert str(err.value) == (
        f"%aeg load: artifact {art.short_id} is a pickle, and unpickling runs code from it; "
        f"if you trust it, type `%aeg load {art.short_id} --allow-pickle`"
    )
    assert aeg(ip, f"load {art.short_id} --allow-pickle") == Point(1, 2)


def test_pickle_flag_keeps_safe_formats(ip: Any) -> None:
    ip.user_ns["cfg"] = {"a": 1}
    assert aeg(ip, "save cfg --pickle").kind == "json"
    ip.user_ns["odd"] = {"a": object()}
    with pytest.raises(UsageError, match=r"^%aeg save: this dict is not JSON-encodable \(.*\); convert its values"):
        aeg(ip, "save odd")
    assert aeg(ip, "save odd --pickle").kind == "pickle"


def test_save_options(ip: Any) -> None:
    ip.user_ns["cfg"] = {"lr": 0.1}
    art = aeg(ip, "save cfg --kind config --label exp=A --label seed=3 --label ok=true --metric val_acc=0.9 "
                  "--metric loss=1e-3 --name conf.json --pin")  # fmt: skip
    assert art.kind == "config" and art.name == "conf.json" and art.pinned
    assert dict(art.labels) == {"exp": "A", "seed": 3, "ok": True}
    assert dict(art.metrics) == {"val_acc": 0.9, "loss": 0.001}
    assert art.run_id == ctx(ip).run_id


def test_save_files_and_directories(ip: Any, tmp_path: Any) -> None:
    (tmp_path / "data.csv").write_text("a,b\n1,2\n")
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "r.txt").write_text("ok")
    f = aeg(ip, "save data.csv --label exp=B")
    assert (f.kind, f.name, dict(f.labels)) == ("file", "data.csv", {"exp": "B"})
    assert aeg(ip, f"load {f.artifact_id}") == "a,b\n1,2\n"
    path = aeg(ip, f"path {f.artifact_id}")
    assert isinstance(path, str) and os.path.basename(path) == "data.csv"
    with open(path) as fh:
        assert fh.read() == "a,b\n1,2\n"
    d = aeg(ip, f"save {tmp_path / 'results'} --kind outputs")
    assert (d.kind, d.name, d.is_dir) == ("outputs", "results", True)
    local = aeg(ip, f"load {d.artifact_id}")
    assert (local / "r.txt").read_text() == "ok"
    assert aeg(ip, f"path {d.artifact_id}") == str(local)


def test_a_variable_wins_over_a_file_of_the_same_name(ip: Any, tmp_path: Any) -> None:
    (tmp_path / "report").write_text("the file")
    ip.user_ns["report"] = "the variable"
    assert aeg(ip, "save report").kind == "text"
    f = aeg(ip, "save ./report")
    assert f.kind == "file" and aeg(ip, f"load {f.artifact_id}") == b"the file"  # no extension: bytes


def test_dollar_and_brace_expansion(ip: Any) -> None:
    for i in range(3):
        ip.user_ns["v"] = {"i": i}
        aeg(ip, f"save v --kind checkpoint --metric val_acc={i / 10}")
    ip.user_ns["k"] = "checkpoint"
    cell(ip, "hits = %aeg list $k")
    assert len(ip.user_ns["hits"]) == 3
    cell(ip, "n = 1\ntop = %aeg search {k} --metric val_acc -n {n + 1}")
    assert list(ip.user_ns["top"]["metric.val_acc"]) == [0.2, 0.1]
    cell(ip, "best = %aeg best $k --metric val_acc --min")
    assert ip.user_ns["best"].metrics["val_acc"] == 0.0


def test_show_returns_the_artifact(ip: Any) -> None:
    ip.user_ns["x"] = "abc"
    art = aeg(ip, "save x")
    shown = aeg(ip, f"show {art.short_id}")
    assert shown == art
    assert "<table class='aeg-artifact'>" in shown._repr_html_()


# -- memory --------------------------------------------------------------------------------------
def test_log_parses_values_as_json_where_they_parse(ip: Any) -> None:
    ev = aeg(ip, "log train_log epoch=1 loss=0.25 name=A ok=true tags=[1,2] quoted='\"3\"' empty=")
    assert isinstance(ev, Event) and ev.kind == "train_log"
    assert ev.data == {"epoch": 1, "loss": 0.25, "name": "A", "ok": True, "tags": [1, 2], "quoted": "3", "empty": ""}
    assert ev.run_id == ctx(ip).run_id
    assert aeg(ip, 'log note text="training finished ok"').data == {"text": "training finished ok"}
    assert aeg(ip, "log marker").data is None
    assert aeg(ip, "log x v=NaN").data == {"v": "NaN"}


def test_recent_is_a_dataframe_newest_first(ip: Any) -> None:
    for i in range(5):
        aeg(ip, f"log train_log epoch={i}")
    aeg(ip, "log eval acc=0.5")
    df = aeg(ip, "recent train_log")
    assert isinstance(df, pd.DataFrame)
    assert list(df["data.epoch"]) == [4, 3, 2, 1, 0]
    assert list(aeg(ip, "recent train_log eval -n 2")["kind"]) == ["eval", "train_log"]
    assert list(aeg(ip, "recent")["kind"])[:2] == ["eval", "train_log"]
    assert aeg(ip, "recent nothing_here").empty


def test_recent_tool_results(ip: Any) -> None:
    log = ctx(ip).store.event_log
    for acc in (0.5, 0.7):
        log.record_tool_result(
            "train.step", outputs=[{"name": "val_acc", "kind": "number", "value": acc}], origin=ctx(ip).origin
        )
    log.record_tool_result("other", outputs=[{"name": "x", "value": 1}], origin=ctx(ip).origin)
    df = aeg(ip, "recent --tool train.step")
    assert list(df["out.val_acc"]) == [0.7, 0.5] and set(df["topic"]) == {"train.step"}


def test_recent_scopes(ip: Any) -> None:
    aeg(ip, "log step i=1")
    aeg(ip, "run new second")
    aeg(ip, "log step i=2")
    assert list(aeg(ip, "recent step")["data.i"]) == [2, 1]
    assert list(aeg(ip, "recent step --scope run")["data.i"]) == [2]
    assert list(aeg(ip, "recent step --scope graph")["data.i"]) == [2, 1]


# -- artifacts: best, search, list, pin ----------------------------------------------------------
@pytest.fixture
def checkpoints(ip: Any) -> list[Artifact]:
    arts = []
    for i, (acc, exp) in enumerate([(0.7, "A"), (0.9, "B"), (0.8, "A")]):
        ip.user_ns["w"] = {"i": i}
        arts.append(
            aeg(ip, f"save w --kind checkpoint --label exp={exp} --metric val_acc={acc} --metric loss={1 - acc}")
        )
    return arts


def test_best(ip: Any, checkpoints: list[Artifact], capsys: Any) -> None:
    assert aeg(ip, "best checkpoint --metric val_acc") == checkpoints[1]
    assert aeg(ip, "best checkpoint --metric val_acc --max") == checkpoints[1]
    assert aeg(ip, "best checkpoint --metric val_acc --min") == checkpoints[0]
    assert aeg(ip, "best checkpoint --metric val_acc --label exp=A") == checkpoints[2]
    assert aeg(ip, "best checkpoint --metric loss --min --scope run") == checkpoints[1]
    capsys.readouterr()
    with pytest.raises(UsageError, match=r"^%aeg best: no 'checkpoint' artifact has the metric 'bleu'; "):
        aeg(ip, "best checkpoint --metric bleu")
    aeg(ip, "run new later")
    assert aeg(ip, "best checkpoint --metric val_acc --scope run") is None


def test_search_and_list(ip: Any, checkpoints: list[Artifact]) -> None:
    df = aeg(ip, "search checkpoint --metric val_acc")
    assert isinstance(df, pd.DataFrame)
    assert list(df["metric.val_acc"]) == [0.9, 0.8, 0.7]
    assert list(aeg(ip, "search checkpoint --metric loss --min -n 1")["short_id"]) == [checkpoints[1].short_id]
    assert list(aeg(ip, "search --label exp=A --all-columns")["artifact_id"]) == [
        checkpoints[2].artifact_id,
        checkpoints[0].artifact_id,
    ]
    assert aeg(ip, "search report").empty
    listed = aeg(ip, "list --all-columns")
    assert list(listed["artifact_id"]) == [a.artifact_id for a in reversed(checkpoints)]
    assert list(listed.columns[:3]) == ["artifact_id", "kind", "name"]
    assert list(aeg(ip, "list")["short_id"]) == [a.short_id for a in reversed(checkpoints)]
    assert len(aeg(ip, "ls checkpoint -n 2")) == 2
    node = aeg(ip, "list --scope node --all-columns")
    assert node.empty or set(node["node_id"]) == {ctx(ip).node_id}


def test_pin_and_unpin(ip: Any, checkpoints: list[Artifact]) -> None:
    pinned = aeg(ip, f"pin {checkpoints[0].artifact_id}")
    assert isinstance(pinned, Artifact) and pinned.pinned
    assert aeg(ip, f"show {checkpoints[0].artifact_id}").pinned
    assert not aeg(ip, f"unpin {checkpoints[0].short_id}").pinned


def test_gc(ip: Any, checkpoints: list[Artifact]) -> None:
    aeg(ip, f"pin {checkpoints[0].artifact_id}")
    dry = aeg(ip, "gc --older-than 0s --dry-run")  # [1] leads val_acc (max) and loss (min): kept
    assert isinstance(dry, GcReport) and dry.dry_run
    assert dry.artifacts == [checkpoints[2].artifact_id]
    assert len(aeg(ip, "list")) == 3
    assert aeg(ip, "gc --older-than 0s --keep-last 1 --dry-run").artifacts == []
    best_kept = aeg(ip, "gc --older-than 0s --keep-best checkpoint=loss:min --dry-run")
    assert best_kept.artifacts == [checkpoints[2].artifact_id]
    no_leaders = aeg(ip, "gc --older-than 0s --keep-best 0 --dry-run")
    assert no_leaders.artifacts == sorted(a.artifact_id for a in checkpoints[1:])
    done = aeg(ip, "gc --older-than 0s")
    assert not done.dry_run
    assert list(aeg(ip, "list --all-columns")["artifact_id"]) == [
        checkpoints[1].artifact_id,
        checkpoints[0].artifact_id,
    ]
    assert ip.display_formatter.format(done)[0]["text/plain"] == str(done)


def test_verify(ip: Any, checkpoints: list[Artifact]) -> None:
    """A damaged blob file (format 2's damaged inline cells: tests/format2/test_inline.py)."""
    ip.user_ns["weights"] = b"w" * (INLINE_MAX + 1)  # a blob file in both formats
    big = aeg(ip, "save weights --kind weights")
    report = aeg(ip, "verify")
    assert isinstance(report, VerifyReport) and report.ok
    assert ip.display_formatter.format(report)[0]["text/plain"] == str(report)
    blob = ctx(ip).store.blobs.path(big.blob_id)
    os.chmod(blob, 0o644)
    with open(blob, "wb") as f:
        f.write(b"rot")
    bad = aeg(ip, "verify")
    assert not bad.ok and bad.corrupt == [big.blob_id]
    assert aeg(ip, "verify --repair").moved_aside


# -- runs, run, status ---------------------------------------------------------------------------
def test_runs_and_run(ip: Any) -> None:
    first = aeg(ip, "run")
    assert first == ctx(ip).run_id
    aeg(ip, "log step i=1")
    ip.user_ns["x"] = "a"
    aeg(ip, "save x")
    second = aeg(ip, 'run new "sweep 2"')
    assert second.startswith("sweep-2-") and ctx(ip).run_id == second
    aeg(ip, "log step i=2")
    aeg(ip, "log step i=3")
    runs = aeg(ip, "runs")
    assert isinstance(runs, pd.DataFrame)
    assert list(runs["run_id"]) == [second, first]
    assert list(runs["artifacts"]) == [0, 1] and list(runs["events"]) == [2, 1]
    assert list(runs.columns) == ["run_id", "name", "graph_id", "first", "last", "artifacts", "events"]
    assert runs["name"][0] == "sweep-2"  # the name given to `run new`
    assert len(aeg(ip, "runs -n 1")) == 1


def test_run_new_without_a_name(ip: Any) -> None:
    assert aeg(ip, "run new").startswith("run-")


def test_status(ip: Any, store: str) -> None:
    aeg(ip, "log step i=1")
    ip.user_ns["x"] = "a"
    aeg(ip, "save x --kind note")
    status = aeg(ip, "status")
    assert isinstance(status, StoreStatus)
    assert (status.root, status.run_id, status.artifacts, status.events) == (store, ctx(ip).run_id, 1, 1)
    assert status.artifact_kinds == ["note"] and status.event_kinds == ["step"]
    text = ip.display_formatter.format(status)[0]["text/plain"]
    assert text.splitlines()[0] == f"store      {store}"
    assert "artifacts  1  (note)" in text


# -- %%aeg track ---------------------------------------------------------------------------------
def test_track_records_the_cell(ip: Any) -> None:
    body = "x = 40\nx + 2\n"
    result = cell(ip, "%%aeg track train_step --metric lr=0.01\n" + body, cell_id="tracked")
    assert result == 42
    ev = ctx(ip).store.event_log.recent(kinds=["train_step"], limit=1)[0]
    assert ev.data["ok"] is True and ev.data["error"] is None
    assert ev.data["source_blake3"] == hash_bytes(body.encode())
    assert ev.metrics["lr"] == 0.01 and ev.metrics["duration_s"] == pytest.approx(ev.data["duration_s"], abs=1e-6)
    assert ev.node_id == "tracked" and ev.stage == "cell"


def test_track_records_a_failure_and_reraises_it(ip: Any) -> None:
    result = ip.run_cell("%%aeg track train_step\ny = 1\n1 / 0\n")
    assert isinstance(result.error_in_exec, ZeroDivisionError)
    ev = ctx(ip).store.event_log.recent(kinds=["train_step"], limit=1)[0]
    assert ev.data["ok"] is False and ev.data["error"] == "ZeroDivisionError: division by zero"
    assert ev.severity == 3
    assert ip.user_ns["y"] == 1


def test_track_passes_the_cells_own_aeg_errors_through(ip: Any) -> None:
    result = ip.run_cell("%%aeg track lookup\ncontext.store.artifacts.get('ZZZZZZZZ')\n")
    assert isinstance(result.error_in_exec, NotFoundError)
    assert ctx(ip).store.event_log.recent(kinds=["lookup"], limit=1)[0].data["ok"] is False


def test_track_runs_top_level_await_and_magics_inside(ip: Any) -> None:
    source = (
        "%%aeg track tutorial\n"
        "mem = context.memory()\n"
        "ev = await mem.record(kind='train_log', data={'epoch': 1})\n"
        "%aeg log inner a=1\n"
        "await mem.recent_data(kinds=['train_log'], limit=1)\n"
    )
    assert cell(ip, source) == [{"epoch": 1}]
    assert ctx(ip).store.event_log.recent(kinds=["inner"], limit=1)[0].data == {"a": 1}
    assert ctx(ip).store.event_log.recent(kinds=["tutorial"], limit=1)[0].data["ok"] is True


# -- errors: one line that says what to type instead ---------------------------------------------
@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("best checkpoint", "%aeg best: the following arguments are required: --metric; "
         "e.g. `%aeg best checkpoint --metric val_acc --max` (`%aeg best -h` lists the options)"),
        ("best checkpoint --metric", "%aeg best: argument --metric: expected one argument; "
         "e.g. `%aeg best checkpoint --metric val_acc --max` (`%aeg best -h` lists the options)"),
        ("best ckpt --metric m --min --max", "%aeg best: argument --max: not allowed with argument --min; "
         "e.g. `%aeg best checkpoint --metric val_acc --max` (`%aeg best -h` lists the options)"),
        ("best ckpt --metric m --scope galaxy", "%aeg best: argument --scope: invalid choice: 'galaxy' "
         "(choose from 'node', 'graph', 'run', 'all'); "
         "e.g. `%aeg best checkpoint --metric val_acc --max` (`%aeg best -h` lists the options)"),
        ("serach checkpoint", "%aeg: unknown subcommand 'serach'; did you mean `%aeg search`? `%aeg help` lists them"),
        ("frobnicate", "%aeg: unknown subcommand 'frobnicate'; `%aeg help` lists them"),
        ("recent -n 0", "%aeg recent: argument -n/--limit: expected a whole number of rows >= 1, got '0'; "
         "e.g. `%aeg recent train_log -n 5` (`%aeg recent -h` lists the options)"),
        ("recent train_log --tool t", "%aeg recent: --tool picks tool results; drop the kinds, "
         "e.g. `%aeg recent --tool t`"),
        ("recent --bogus", "%aeg recent: unrecognized arguments: --bogus; "
         "e.g. `%aeg recent train_log -n 5` (`%aeg recent -h` lists the options)"),
        ("save x --metric acc=high", "%aeg save: argument --metric: expected METRIC=NUMBER such as val_acc=0.91, "
         "got 'acc=high'; e.g. `%aeg save df --kind table` (`%aeg save -h` lists the options)"),
        ("save nothing_here", "%aeg save: 'nothing_here' is neither a variable nor a file or directory; "
         "type `%aeg save VARIABLE` or `%aeg save path/to/file`"),
        ("search --label exp", "%aeg search: argument --label: expected KEY=VALUE such as exp=A, got 'exp'; "
         "e.g. `%aeg search checkpoint --label exp=A --metric val_acc` (`%aeg search -h` lists the options)"),
        ("search --min", "%aeg search: --min ranks by a metric; add one, "
         "e.g. `%aeg search checkpoint --metric val_acc --min`"),
        ("gc --older-than 7x", "%aeg gc: argument --older-than: not a duration: '7x'; write it like '30m', '12h', "
         "'7d' or '2w'; e.g. `%aeg gc --keep-last 3 --dry-run` (`%aeg gc -h` lists the options)"),
        ("gc --keep-best checkpoint", "%aeg gc: argument --keep-best: expected N, KIND=METRIC or KIND=METRIC:min "
         "such as 3 or checkpoint=val_acc, got 'checkpoint'; e.g. `%aeg gc --keep-last 3 --dry-run` "
         "(`%aeg gc -h` lists the options)"),
        ("load ZZZZZZZZ", "%aeg load: no artifact with id 'ZZZZZZZZ'; list them with arts.list(scope='all') "
         "or `%aeg list`"),
        ("pin", "%aeg pin: the following arguments are required: ID; e.g. `%aeg pin 01J8Z3QK` "
         "(`%aeg pin -h` lists the options)"),
        ("log note a=1 loose", "%aeg log: 'loose' is not KEY=VALUE; every field is key=value, "
         "e.g. `%aeg log note epoch=1 loss=0.25` (a message: `%aeg log note text=\"...\"`)"),
        ('log note "unclosed', "%aeg: cannot split this line (No closing quotation); close the quote or escape it"),
        ("run old", "%aeg run: argument action: invalid choice: 'old' (choose from 'new'); "
         "e.g. `%aeg run new sweep-2` (`%aeg run -h` lists the options)"),
        ("track step", "%aeg track: `track` times a whole cell; make `%%aeg track step` the cell's first line"),
        ("help nope", "%aeg: unknown subcommand 'nope'; `%aeg help` lists them"),
    ],
)  # fmt: skip
def test_mistakes_are_one_line_usage_errors(ip: Any, line: str, message: str) -> None:
    ip.user_ns["x"] = {"a": 1}
    with pytest.raises(UsageError) as err:
        aeg(ip, line)
    assert str(err.value) == message
    assert "\n" not in str(err.value)


def test_only_track_is_a_cell_magic(ip: Any) -> None:
    with pytest.raises(UsageError) as err:
        ip.run_cell_magic("aeg", "recent -n 2", "x = 1")
    assert str(err.value) == (
        "only `track` runs as a cell magic: make `%%aeg track KIND` the cell's first line "
        "(type other subcommands on a line: `%aeg recent -n 2`)"
    )


def test_usage_errors_show_no_traceback(ip: Any, capsys: Any) -> None:
    ip.run_cell("%aeg best checkpoint")
    captured = capsys.readouterr()
    shown = captured.out + captured.err
    assert "UsageError: %aeg best: the following arguments are required: --metric" in shown
    assert "Traceback" not in shown


# -- help ----------------------------------------------------------------------------------------
def test_help_documents_every_subcommand(ip: Any, capsys: Any) -> None:
    assert aeg(ip, "help") is None
    text = capsys.readouterr().out
    for name, command in COMMANDS.items():
        assert re.search(rf"^  {name}\b.* {re.escape(command.summary)}$", text, re.M), name
    aeg(ip, "")
    assert capsys.readouterr().out == text
    doc = ip.find_line_magic("aeg").__doc__
    assert all(f"  {name}" in doc for name in COMMANDS)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_subcommand_has_dash_h(ip: Any, capsys: Any, name: str) -> None:
    assert aeg(ip, f"{name} -h") is None
    out = capsys.readouterr().out
    typed = "%%aeg track" if name == "track" else f"%aeg {name}"
    assert out.startswith(f"usage: {typed} [-h]")
    assert f"example: {COMMANDS[name].example if name == 'track' else '%aeg ' + COMMANDS[name].example}" in out
    aeg(ip, f"help {name}")
    assert capsys.readouterr().out == out


def test_readme_documents_every_subcommand() -> None:
    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    magics = readme.split("\n## Magics\n", 1)[1].split("\n## ", 1)[0]
    for name in COMMANDS:
        typed = "%%aeg track" if name == "track" else f"%aeg {name}"
        assert f"`{typed}" in magics, f"README's Magics section does not document {typed}"
    for setting in ("store", "display_limit", "default_scope", "hot_limit"):
        assert f"`{setting}`" in magics


# -- completion ----------------------------------------------------------------------------------
def _common_prefix(a: str, b: str) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def complete(ip: Any, line: str) -> list[str]:
    from IPython.core.completer import provisionalcompleter

    with provisionalcompleter():
        return [c.text for c in ip.Completer.completions(line, len(line))]


def test_completion(ip: Any, checkpoints: list[Artifact]) -> None:
    aeg(ip, "log train_log epoch=1")
    assert complete(ip, "%aeg se") == ["search"]
    assert set(complete(ip, "%aeg ")) >= set(COMMANDS)
    assert complete(ip, "%aeg be") == ["best"]
    assert complete(ip, "%aeg best ") == ["checkpoint"]
    assert complete(ip, "%aeg best checkpoint --metric ") == ["loss", "val_acc"]
    assert complete(ip, "%aeg best checkpoint --metric v") == ["val_acc"]
    assert complete(ip, "%aeg recent tr") == ["train_log"]
    assert complete(ip, "%aeg list --scope ") == ["node", "graph", "run", "all"]
    assert "--metric" in complete(ip, "%aeg best checkpoint --")
    ids = complete(ip, "%aeg load ")  # the short ids tables show
    assert sorted(ids) == sorted(a.short_id for a in checkpoints)
    one = checkpoints[1].artifact_id
    # ids saved in the same millisecond share all but their last characters: use a unique prefix
    shared = max(_common_prefix(one, a.artifact_id) for a in checkpoints if a is not checkpoints[1])
    prefix = one[: shared + 1]
    assert complete(ip, f"%aeg pin {prefix}") == [one]
    assert complete(ip, f"%aeg show {prefix.lower()}") == [one]
    assert sorted(complete(ip, f"%aeg unpin {one[:shared]}")) == sorted(
        a.artifact_id for a in checkpoints if a.artifact_id.startswith(one[:shared])
    )
    assert complete(ip, "%%aeg ") == ["track"]
    assert complete(ip, "%aeg help gc") == ["gc"]


def test_save_completion_falls_back_to_names(ip: Any) -> None:
    ip.user_ns["my_frame"] = 1
    assert "my_frame" in complete(ip, "%aeg save my_f")


# -- layering ------------------------------------------------------------------------------------
def test_front_end_helpers_do_not_import_ipython() -> None:
    proc = run_child(
        """
        import sys
        import aeg_jupyter, aeg_jupyter.frontends.commands, aeg_jupyter.frontends.cli, aeg_jupyter.core.serialize, aeg_jupyter.core.runs
        bad = sorted(m for m in ("IPython", "ipywidgets", "traitlets") if m in sys.modules)
        print(bad)
        """
    )
    assert proc.stdout.strip() == "[]"


def test_leaderboard_and_panel_subcommands(ip: Any) -> None:
    import ipywidgets

    ip.run_cell("cfg = {'a': 1}")
    for exp, acc in (("A", 0.7), ("B", 0.9), ("A", 0.8)):
        ctx(ip).store.artifacts.save_text(f"{exp}{acc}", kind="ckpt", labels={"exp": exp}, metrics={"acc": acc})
    board = aeg(ip, "leaderboard ckpt --metric acc")
    assert list(board["metric.acc"]) == [0.9, 0.8, 0.7] and list(board["rank"]) == [1, 2, 3]
    per_exp = aeg(ip, "leaderboard ckpt --metric acc --by exp")
    assert sorted(zip(per_exp["label.exp"], per_exp["metric.acc"], strict=True)) == [("A", 0.8), ("B", 0.9)]
    assert list(aeg(ip, "leaderboard ckpt --metric acc --min -n 1")["metric.acc"]) == [0.7]
    panel = aeg(ip, "panel --kind ckpt --metric acc")
    assert isinstance(panel, ipywidgets.Widget)
    panel.close()
    with pytest.raises(UsageError, match="--metric"):
        aeg(ip, "leaderboard ckpt")
