"""The ``aeg`` console script: the same subcommands and parsers as ``%aeg``, text output, exit codes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from typing import Any

import pytest
from conftest import REPO, run_child

import aeg_jupyter
from aeg_jupyter.frontends.cli import main, split_globals
from aeg_jupyter.frontends.commands import COMMANDS, CommandParser, Session, parser_for
from aeg_jupyter.storage.schemas2 import INLINE_MAX


@pytest.fixture
def filled(store_root: str) -> dict[str, Any]:
    """A store with three checkpoints (one pinned), two events and a tool result; closed again."""
    ctx = aeg_jupyter.connect(store_root, graph_id="nb.ipynb")
    arts, log = ctx.store.artifacts, ctx.store.event_log
    ckpts = [
        arts.save_json({"i": i}, kind="checkpoint", labels={"exp": exp}, metrics={"val_acc": acc}, origin=ctx.origin)
        for i, (acc, exp) in enumerate([(0.7, "A"), (0.9, "B"), (0.8, "A")])
    ]
    arts.pin(ckpts[0])
    log.record("train_log", {"epoch": 1, "loss": 0.5}, origin=ctx.origin)
    log.record("train_log", {"epoch": 2, "loss": 0.25}, origin=ctx.origin)
    log.record_tool_result("train.step", outputs=[{"name": "val_acc", "value": 0.9}], origin=ctx.origin)
    ctx.close()
    return {"root": store_root, "run_id": ctx.run_id, "ckpts": ckpts, "format": ctx.store.format}


def aeg(capsys: Any, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_ls_is_list(filled: dict[str, Any], capsys: Any) -> None:
    code, out, _ = aeg(capsys, "--store", filled["root"], "ls")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:6] == ["artifact_id", "kind", "name", "created_at", "size", "pinned"]
    assert [ln.split()[0] for ln in lines[1:]] == [a.artifact_id for a in reversed(filled["ckpts"])]
    assert aeg(capsys, "--store", filled["root"], "list", "checkpoint", "-n", "1")[1].count("\n") == 2


def test_store_from_env(filled: dict[str, Any], capsys: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv("AEG_STORE", filled["root"])
    code, out, _ = aeg(capsys, "ls")
    assert code == 0 and filled["ckpts"][0].artifact_id in out


def test_recent(filled: dict[str, Any], capsys: Any) -> None:
    code, out, _ = aeg(capsys, "--store", filled["root"], "recent", "train_log")
    assert code == 0
    rows = out.splitlines()[1:]
    assert [r.split()[3] for r in rows] == ["train_log", "train_log"]
    assert "data.loss" in out.splitlines()[0]
    code, out, _ = aeg(capsys, "--store", filled["root"], "recent", "--tool", "train.step")
    assert code == 0 and "out.val_acc" in out


def test_best_and_search(filled: dict[str, Any], capsys: Any) -> None:
    code, out, _ = aeg(capsys, "--store", filled["root"], "best", "checkpoint", "--metric", "val_acc")
    assert code == 0
    assert out.splitlines()[0] == f"id       {filled['ckpts'][1].artifact_id}"
    assert "metrics  val_acc=0.9" in out
    code, out, err = aeg(capsys, "--store", filled["root"], "best", "checkpoint", "--metric", "bleu")
    assert (code, out) == (1, "")
    assert err == "aeg best: no 'checkpoint' artifact has the metric 'bleu'; (metrics of 'checkpoint': val_acc)\n"
    code, out, err = aeg(capsys, "--store", filled["root"], "best", "checkpoint", "--metric", "val_acc", "--max",
                         "--label", "exp=Z")  # fmt: skip
    assert (code, out) == (1, "")
    assert (
        err == "aeg best: no artifacts of kind 'checkpoint' with the metric 'val_acc' and labels exp=Z in scope 'all'\n"
    )
    code, out, _ = aeg(capsys, "--store", filled["root"], "search", "--label", "exp=A", "--metric", "val_acc")
    assert [ln.split()[0] for ln in out.splitlines()[1:]] == [
        filled["ckpts"][2].artifact_id,
        filled["ckpts"][0].artifact_id,
    ]


def test_scope_run_with_a_run_id(filled: dict[str, Any], capsys: Any) -> None:
    base = ["--store", filled["root"]]
    assert aeg(capsys, *base, "ls", "--scope", "run")[1] == "(no rows)\n"  # a new run wrote nothing
    out = aeg(capsys, *base, "--run", filled["run_id"], "ls", "--scope", "run")[1]
    assert out.count("\n") == 4
    assert aeg(capsys, *base, "--graph", "nb.ipynb", "ls", "--scope", "graph")[1].count("\n") == 4


def test_gc_verify_status_runs(filled: dict[str, Any], capsys: Any) -> None:
    base = ["--store", filled["root"]]
    code, out, _ = aeg(capsys, *base, "gc", "--older-than", "0s", "--keep-last", "1", "--dry-run")
    assert (code, out) == (0, "gc would free 0 artifacts, 0 blobs, 0 B (0 bytes)\n")  # the newest, the leader, a pin
    # format 2 keeps these small contents inline in their rows: no blob file to free, they go with the rows
    inline = filled["format"] == 2
    code, out, _ = aeg(capsys, *base, "gc", "--older-than", "0s", "--keep-last", "1", "--keep-best", "0", "--dry-run")
    freed = "0 blobs, 0 B (0 bytes)" if inline else "1 blobs, 8 B (8 bytes)"
    assert code == 0 and out.startswith(f"gc would free 1 artifacts, {freed}:\n")
    assert filled["ckpts"][1].short_id in out and "why not kept" in out  # what goes, and why
    code, out, _ = aeg(capsys, *base, "gc", "--older-than", "0s", "--keep-best", "0")
    freed = "0 blobs, 0 B (0 bytes)" if inline else "2 blobs, 16 B (16 bytes)"
    assert code == 0 and out.startswith(f"gc freed 2 artifacts, {freed}:\n")
    assert aeg(capsys, *base, "ls")[1].count("\n") == 2  # the pinned one is left
    code, out, _ = aeg(capsys, *base, "verify")
    assert code == 0 and out.startswith("verify: ") and "all intact" in out
    code, out, _ = aeg(capsys, *base, "status")
    assert code == 0
    assert out.splitlines()[0] == f"store      {filled['root']}"
    assert "artifacts  1  (checkpoint)" in out and "events     3  (tool_result, train_log)" in out
    code, out, _ = aeg(capsys, *base, "runs")
    assert code == 0 and filled["run_id"] in out


def test_verify_finds_damage(filled: dict[str, Any], capsys: Any) -> None:
    """A damaged blob file (format 2's damaged inline cells: tests/format2/test_inline.py)."""
    ctx = aeg_jupyter.connect(filled["root"])
    big = ctx.store.artifacts.save_bytes(b"b" * (INLINE_MAX + 1), kind="weights")  # a blob file in both formats
    ctx.close()
    code, out, _ = aeg(capsys, "--store", filled["root"], "verify")
    assert code == 0 and "all intact" in out
    blob = os.path.join(filled["root"], "blobs", big.blob_id[:2], big.blob_id[2:])
    os.chmod(blob, 0o644)
    with open(blob, "wb") as f:
        f.write(b"rot")
    code, out, _ = aeg(capsys, "--store", filled["root"], "verify")
    assert code == 1 and "1 corrupt" in out


def test_writes_save_log_pin(store_root: str, tmp_path: Any, capsys: Any) -> None:
    (tmp_path / "report.txt").write_text("hello")
    code, out, _ = aeg(capsys, "--store", store_root, "save", str(tmp_path / "report.txt"), "--label", "exp=A")
    assert code == 0 and "kind     file" in out and "labels   exp=A" in out
    art_id = out.splitlines()[0].split()[1]
    code, out, _ = aeg(capsys, "--store", store_root, "log", "note", "epoch=1")
    assert code == 0 and out.startswith("recorded note event ")
    code, out, _ = aeg(capsys, "--store", store_root, "pin", art_id[-8:])
    assert code == 0 and "pinned   yes" in out
    code, out, _ = aeg(capsys, "--store", store_root, "path", art_id)
    assert code == 0
    with open(out.strip()) as f:
        assert f.read() == "hello"
    assert aeg(capsys, "--store", store_root, "show", art_id)[1].splitlines()[0] == f"id       {art_id}"


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["best"], 2, "aeg best: the following arguments are required: KIND, --metric; e.g. "
         "`aeg best checkpoint --metric val_acc --max` (`aeg best -h` lists the options)"),
        (["lst"], 2, "aeg: unknown subcommand 'lst'; did you mean `aeg list`? `aeg help` lists them"),
        (["recent", "-n", "x"], 2, "aeg recent: argument -n/--limit: expected a whole number of rows >= 1, got 'x'; "
         "e.g. `aeg recent train_log -n 5` (`aeg recent -h` lists the options)"),
        (["load", "X"], 2, "aeg: `load` needs a notebook kernel; in a notebook type `%aeg load`"),
        (["track", "X"], 2, "aeg: `track` needs a notebook kernel; in a notebook type `%%aeg track KIND`"),
        (["show", "ZZZZZZZZ"], 1, "aeg show: no artifact with id 'ZZZZZZZZ'; list them with `aeg list`"),
        (["save", "missing.txt"], 2, "aeg save: no such file or directory: 'missing.txt'; give the path of one"),
    ],
)  # fmt: skip
def test_mistakes(filled: dict[str, Any], capsys: Any, argv: list[str], code: int, message: str) -> None:
    got, out, err = aeg(capsys, "--store", filled["root"], *argv)
    assert (got, out, err) == (code, "", message + "\n")


def test_no_store_is_not_created_by_reads(tmp_path: Any, capsys: Any) -> None:
    missing = str(tmp_path / "nothing")
    code, _, err = aeg(capsys, "--store", missing, "status")
    assert code == 1
    assert err == f"aeg status: no store at {missing!r}; pass --store PATH or set AEG_STORE\n"
    assert not os.path.exists(missing)


def test_help_lists_every_cli_subcommand(capsys: Any) -> None:
    code, out, _ = aeg(capsys, "help")
    assert code == 0
    for name, cmd in COMMANDS.items():
        assert bool(re.search(rf"^  {name}\b", out, re.M)) == cmd.cli, name
    assert aeg(capsys)[1] == out  # no subcommand: the same overview
    code, out, _ = aeg(capsys, "gc", "-h")
    assert code == 0 and out.startswith("usage: aeg gc [-h]")
    assert aeg(capsys, "help", "gc")[1] == out


@pytest.mark.parametrize("name", ["load", "panel"])
def test_help_of_a_kernel_only_command_says_where_it_works(capsys: Any, name: str) -> None:
    code, out, err = aeg(capsys, "help", name)
    assert (code, out) == (2, "")
    assert err == f"aeg: `{name}` needs a notebook kernel; in a notebook type `%aeg {name}`\n"


def test_global_help_and_version(capsys: Any) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: aeg [--store PATH] [--run RUN_ID] [--graph GRAPH_ID] SUBCOMMAND [options]")
    assert "  best " in out
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out == f"aeg {aeg_jupyter.__version__}\n"


def test_split_globals() -> None:
    assert split_globals(["--store", "s", "--run", "r", "best", "k", "--metric", "m"]) == (
        ["--store", "s", "--run", "r"],
        ["best", "k", "--metric", "m"],
    )
    assert split_globals(["--store=s", "ls"]) == (["--store=s"], ["ls"])


def test_cli_and_magics_share_the_parsers() -> None:
    from aeg_jupyter.frontends.magics import MagicParser

    magic = Session(None, prefix="%aeg", user_ns={}, parser_class=MagicParser)  # type: ignore[arg-type]
    cli = Session(None, prefix="aeg", parser_class=CommandParser)  # type: ignore[arg-type]
    for cmd in COMMANDS.values():
        m, c = parser_for(magic, cmd), parser_for(cli, cmd)
        assert isinstance(m, MagicParser) and isinstance(c, CommandParser)
        assert sorted(m._option_string_actions) == sorted(c._option_string_actions), cmd.name
        assert [a.dest for a in m._actions] == [a.dest for a in c._actions], cmd.name


def test_readme_documents_the_cli() -> None:
    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    section = readme.split("\n## CLI\n", 1)[1].split("\n## ", 1)[0]
    for name, cmd in COMMANDS.items():
        if cmd.cli:
            assert f"aeg {name}" in section or any(f"aeg {a}" in section for a in cmd.aliases), name


def test_console_script_is_declared_and_runs(filled: dict[str, Any]) -> None:
    with open(os.path.join(REPO, "pyproject.toml"), "rb") as f:
        assert tomllib.load(f)["project"]["scripts"]["aeg"] == "aeg_jupyter.frontends.cli:main"
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run(
        [sys.executable, "-m", "aeg_jupyter.frontends.cli", "--store", filled["root"], "best", "checkpoint", "--metric", "val_acc"],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == f"id       {filled['ckpts'][1].artifact_id}"
    bad = subprocess.run(
        [sys.executable, "-m", "aeg_jupyter.frontends.cli", "--store", filled["root"], "best"],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert bad.returncode == 2 and bad.stderr.startswith("aeg best: the following arguments are required")


def test_the_readme_demo_runs_and_recalls_what_it_saved(tmp_path: Any) -> None:
    """`python -m aeg_jupyter.demo` (the README's first command) in a new process."""
    root = str(tmp_path / "demo-store")
    proc = run_child("import sys; from aeg_jupyter.demo import main; main(['--store', sys.argv[1]])", root)
    out = proc.stdout
    assert f"store: {root}" in out and "artifacts: 30" in out
    assert "Leaderboard: top 5 checkpoints by val_acc" in out and "metric.val_acc" in out
    best = re.search(r"best: (\S+)\s+val_acc=([0-9.]+)\s+-> (\S+)", out)
    assert best and os.path.isfile(best.group(3))
    store = aeg_jupyter.Store(root)  # what it printed is what the store holds
    try:
        top = store.artifacts.best(kind="checkpoint", metric="val_acc")
        assert top is not None and top.artifact_id == best.group(1)
        assert top.metrics["val_acc"] == float(best.group(2))
        assert store.event_log.last_by_name("val_acc") is not None
        assert len(store.event_log.recent(kinds=["train_log"], limit=100)) == 30
    finally:
        store.close()
