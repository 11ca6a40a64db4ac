"""Issue 19, the first hour of a new user: through a real IPython ``InteractiveShell`` and the real
``aeg`` CLI (``main()`` and subprocesses). Each test failed on the code before the fix it names."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pytest
from conftest import REPO
from IPython.core.error import UsageError

from aeg_jupyter import Artifact, KernelContext


def aeg(ip: Any, line: str) -> Any:
    return ip.run_line_magic("aeg", line)


def ctx(ip: Any) -> KernelContext:
    return ip.user_ns["context"]


def cell(ip: Any, source: str) -> Any:
    result = ip.run_cell(source, store_history=True)
    if result.error_before_exec or result.error_in_exec:
        raise result.error_before_exec or result.error_in_exec
    return result.result


# -- 1: expansion never stores an unexpanded {expr} --------------------------------------------
def test_format_specs_and_conversions_are_expanded_like_f_strings(ip: Any) -> None:
    cell(ip, "lr, epoch, loss, name = 0.001, 3, 0.123456, 'A'")
    cell(ip, "ev = %aeg log train_log lr={lr} epoch={epoch} loss={loss:.4f} who={name!r}")
    assert ip.user_ns["ev"].data == {"lr": 0.001, "epoch": 3, "loss": 0.1235, "who": "'A'"}


def test_dict_literals_values_with_spaces_and_json_values(ip: Any) -> None:
    cell(ip, "msg = 'two words'; ok = True; tags = [1, 2]; cfg = {'a': 1}; lr = 0.5")
    ev = cell(
        ip, """%aeg log x nested={"a":1} m={msg} q="in {msg}" ok={ok} tags={tags} cfg={cfg} lit={{lr}} p={lr:.0%}"""
    )
    assert ev.data == {
        "nested": {"a": 1}, "m": "two words", "q": "in two words", "ok": True, "tags": [1, 2], "cfg": {"a": 1},
        "lit": "{lr}", "p": "50%",
    }  # fmt: skip


def test_labels_metrics_and_save_names_are_expanded(ip: Any) -> None:
    cell(ip, "w = {'x': 1}; exp = 'B'; acc = 0.912345; var = 'w'")
    art = cell(
        ip, "%aeg save {var} --kind checkpoint --label exp={exp} --label lr={1e-3:.0e} --metric val_acc={acc:.3f}"
    )
    assert isinstance(art, Artifact)
    assert art.name == "w.json"
    assert art.labels == {"exp": "B", "lr": 0.001}  # "1e-03", then typed as a number
    assert art.metrics == {"val_acc": 0.912}


def test_expansion_sees_a_functions_locals(ip: Any) -> None:
    cell(ip, "def step(i):\n    loss = 1 / (i + 1)\n    ev = %aeg log train_log i={i} loss={loss:.2f}\n    return ev\n")
    assert cell(ip, "step(3)").data == {"i": 3, "loss": 0.25}


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("log x lr={nope:.3f}",
         "%aeg: cannot expand {nope:.3f} (NameError: name 'nope' is not defined); define what it uses first, "
         "write {{ and }} for literal braces, or $$ for a literal $"),
        ("log x a={1", "%aeg: unmatched '{' in '{1'; close it, or write {{ for a literal brace"),
        ("log x a={'s':.2f}",
         "%aeg: cannot format {'s':.2f}: Unknown format code 'f' for object of type 'str'; "
         "use a format spec for str, e.g. {'s'}"),
        ("log x a={1!x}", "%aeg: {1!x}: the conversion must be !r, !s or !a, e.g. {1!r}"),
        ("log x a=$undefined_name",
         "%aeg: cannot expand $undefined_name (NameError: name 'undefined_name' is not defined); define what it "
         "uses first, write {{ and }} for literal braces, or $$ for a literal $"),
    ],
)  # fmt: skip
def test_what_cannot_be_expanded_is_refused_and_nothing_stored(ip: Any, line: str, message: str) -> None:
    with pytest.raises(UsageError) as err:
        aeg(ip, line)
    assert str(err.value) == message
    assert len(ctx(ip).store.event_log.recent(limit=100)) == 0


def test_cell_magic_line_is_expanded(ip: Any) -> None:
    cell(ip, "lr = 0.25")
    cell(ip, "%%aeg track step --metric lr={lr:.1f}\nx = 1\n")
    (ev,) = ctx(ip).store.event_log.recent(kinds=["step"], limit=1)
    assert ev.metrics["lr"] == 0.2  # f"{0.25:.1f}" is '0.2' (round half to even)


# -- 7: `log` takes KEY=VALUE fields only -----------------------------------------------------
@pytest.mark.parametrize("fields", ["3", "training finished", "epoch=1 3", "=3", '"two words"'])
def test_log_refuses_fields_that_are_not_key_value(ip: Any, fields: str) -> None:
    with pytest.raises(UsageError) as err:
        aeg(ip, f"log train_log {fields}")
    bad = {"epoch=1 3": "3", '"two words"': "two words", "training finished": "training"}.get(fields, fields)
    assert str(err.value) == (
        f"%aeg log: {bad!r} is not KEY=VALUE; every field is key=value, e.g. `%aeg log train_log epoch=1 loss=0.25` "
        '(a message: `%aeg log train_log text="..."`)'
    )
    assert ctx(ip).store.event_log.recent(limit=10) == []


def test_log_refuses_a_key_given_twice_and_keeps_the_kind_alone_form(ip: Any) -> None:
    with pytest.raises(UsageError, match=r"^%aeg log: 'epoch' is given twice; give each key once"):
        aeg(ip, "log train_log epoch=1 epoch=2")
    assert aeg(ip, "log marker").data is None
    assert aeg(ip, 'log note text="done, all good"').data == {"text": "done, all good"}


# -- 5: an empty answer says what another scope holds ------------------------------------------
def _restart(ip: Any) -> None:
    """A new run, as after a kernel restart (the store keeps what earlier runs saved)."""
    aeg(ip, "run new after-restart")


@pytest.fixture
def saved(ip: Any) -> list[Artifact]:
    cell(ip, "cfg = {'lr': 0.1}")
    arts = [aeg(ip, "save cfg --kind config")]
    for acc in (0.7, 0.9):
        cell(ip, f"w = {{'acc': {acc}}}")
        arts.append(aeg(ip, f"save w --kind checkpoint --label exp=A --metric val_acc={acc}"))
    return arts


def test_api_empty_answers_warn_with_the_count_in_scope_all(ip: Any, saved: list[Artifact]) -> None:
    from aeg_jupyter.base.errors import ScopeHint

    _restart(ip)
    arts = ctx(ip).artifacts()
    with pytest.warns(ScopeHint) as hints:
        assert cell(ip, "await context.artifacts().best(kind='checkpoint', metric='val_acc', mode='max')") is None
        assert cell(ip, "await context.artifacts().search(kind='config')") == []
        assert cell(ip, "await context.artifacts().list()") == []
    assert [str(h.message) for h in hints] == [
        "arts.best(kind='checkpoint', metric='val_acc') found nothing in scope='run', but 2 artifacts match in "
        "scope='all' (earlier runs, other notebooks): pass scope='all' to get them",
        "arts.search(kind='config') found nothing in scope='run', but 1 artifact match in scope='all' (earlier runs, "
        "other notebooks): pass scope='all' to get them",
        "arts.list() found nothing in scope='run', but 3 artifacts match in scope='all' (earlier runs, other "
        "notebooks): pass scope='all' to get them",
    ]
    assert cell(ip, "await context.artifacts().best(kind='checkpoint', metric='val_acc', scope='all')") == saved[2]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing anywhere, or an answer: no hint
        assert cell(ip, "await context.artifacts().search(kind='report')") == []
        assert cell(ip, "await context.artifacts().search(kind='config', scope='all')") == [saved[0]]
    del arts


def test_magics_empty_answers_note_the_count_in_scope_all(ip: Any, saved: list[Artifact], capsys: Any) -> None:
    _restart(ip)
    capsys.readouterr()
    assert aeg(ip, "best checkpoint --metric val_acc --max --scope run") is None
    df = aeg(ip, "search config --scope run")
    listed = aeg(ip, "list --scope run")
    assert capsys.readouterr().out.splitlines() == [
        "%aeg best: nothing in scope 'run'; 2 match in scope 'all' (other runs or notebooks): add `--scope all`",
        "%aeg search: nothing in scope 'run'; 1 match in scope 'all' (other runs or notebooks): add `--scope all`",
        "%aeg list: nothing in scope 'run'; 3 match in scope 'all' (other runs or notebooks): add `--scope all`",
    ]
    assert df.empty and listed.empty
    assert aeg(ip, "best checkpoint --metric val_acc --max") == saved[2]  # the magics' default scope is all


# -- 6: names that do not exist are named, with a did-you-mean --------------------------------
@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("best chekpoint --metric val_acc",
         "%aeg best: no artifacts of kind 'chekpoint'; did you mean 'checkpoint'? (kinds: checkpoint, config)"),
        ("best checkpoint --metric val_accuracy --max",
         "%aeg best: no 'checkpoint' artifact has the metric 'val_accuracy'; did you mean 'val_acc'? "
         "(metrics of 'checkpoint': val_acc)"),
        ("best report --metric val_acc", "%aeg best: no artifacts of kind 'report'; (kinds: checkpoint, config)"),
        ("leaderboard chekpoint --metric val_acc",
         "%aeg leaderboard: no artifacts of kind 'chekpoint'; did you mean 'checkpoint'? (kinds: checkpoint, config)"),
        ("leaderboard checkpoint --metric val_acc --max --by nosuchlabel",
         "%aeg leaderboard: no 'checkpoint' artifact has the label 'nosuchlabel' to group by (--by); (labels: exp)"),
        ("leaderboard checkpoint --metric val_acc --max --by ex",
         "%aeg leaderboard: no 'checkpoint' artifact has the label 'ex' to group by (--by); did you mean 'exp'? "
         "(labels: exp)"),
    ],
)  # fmt: skip
def test_unknown_kinds_metrics_and_labels_are_named(ip: Any, saved: list[Artifact], line: str, message: str) -> None:
    with pytest.raises(UsageError) as err:
        aeg(ip, line)
    assert str(err.value) == message


def test_a_filter_that_matches_nothing_returns_the_documented_columns(
    ip: Any, saved: list[Artifact], capsys: Any
) -> None:
    capsys.readouterr()
    df = aeg(ip, "search chekpoint --all-columns")
    assert isinstance(df, pd.DataFrame) and df.empty
    assert list(df.columns)[:3] == ["artifact_id", "kind", "name"]
    assert aeg(ip, "search checkpoint --label exp=Z").empty
    assert aeg(ip, "list nothing_here").empty
    assert aeg(ip, "best checkpoint --metric val_acc --max --label exp=Z") is None
    board = aeg(ip, "leaderboard checkpoint --metric val_acc --max --label exp=Z")
    assert board.empty and {"rank", "short_id", "metric.val_acc"} <= set(board.columns)
    assert capsys.readouterr().out.splitlines() == [
        "%aeg search: no artifacts of kind 'chekpoint'; did you mean 'checkpoint'? (kinds: checkpoint, config)",
        "%aeg search: no artifacts of kind 'checkpoint' with labels exp=Z in scope 'all'",
        "%aeg list: no artifacts of kind 'nothing_here'; (kinds: checkpoint, config)",
        "%aeg best: no artifacts of kind 'checkpoint' with the metric 'val_acc' and labels exp=Z in scope 'all'",
        "%aeg leaderboard: no artifacts of kind 'checkpoint' with the metric 'val_acc' and labels exp=Z in scope 'all'",
    ]


# -- 10: the CLI in a shell ---------------------------------------------------------------------
def cli(capsys: Any, *argv: str) -> tuple[int, str, str]:
    from aeg_jupyter.frontends.cli import main

    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def many_runs(tmp_path: Any) -> str:
    from aeg_jupyter.base.models import Provenance
    from aeg_jupyter.core.store import open_store

    root = str(tmp_path / "cli-store")
    store = open_store(root)
    try:
        for i in range(3000):  # `aeg runs` prints ~300 KB: far more than a pipe holds
            store.event_log.record("step", {"i": i}, origin=Provenance(f"run-{i:05d}", "nb.ipynb", "main"))
    finally:
        store.close()
    return root


def test_a_pipe_closed_early_ends_quietly(many_runs: str) -> None:
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    script = f"{sys.executable} -m aeg_jupyter.frontends.cli --store {many_runs} runs -n 3000 | head -5"
    proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=120, env=env)
    assert len(proc.stdout.splitlines()) == 5
    assert proc.stderr == ""  # before: a BrokenPipeError traceback, twice


def test_global_options_come_before_or_after_the_subcommand(many_runs: str, capsys: Any) -> None:
    before = cli(capsys, "--store", many_runs, "runs", "-n", "2")
    assert before[0] == 0 and len(before[1].splitlines()) == 3
    assert cli(capsys, "runs", "-n", "2", "--store", many_runs) == before
    assert cli(capsys, "runs", f"--store={many_runs}", "-n", "2") == before


def test_cli_writes_share_the_shells_run(tmp_path: Any, capsys: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from aeg_jupyter import connect
    from aeg_jupyter.frontends.cli import RUN_WINDOW_MIN, current_cli_run

    monkeypatch.delenv("AEG_RUN", raising=False)
    root = str(tmp_path / "s")
    outs = [cli(capsys, "--store", root, "log", "train_log", f"i={i}")[1] for i in range(3)]
    runs = {line.rsplit(" in run ", 1)[1].strip() for line in outs}
    assert len(runs) == 1 and runs.pop().startswith("cli-")
    (tmp_path / "a.txt").write_text("a")
    assert cli(capsys, "save", str(tmp_path / "a.txt"), "--store", root)[0] == 0
    context = connect(root)
    try:
        events = context.store.event_log.recent(limit=10)
        (art,) = context.store.artifacts.list()
        assert {e.run_id for e in events} == {art.run_id}
        later = datetime.now(UTC) + timedelta(minutes=RUN_WINDOW_MIN + 1)
        assert current_cli_run(context, now=later) != art.run_id  # an idle shell starts a new run
    finally:
        context.close()
    assert cli(capsys, "--store", root, "--run", "mine", "log", "x", "a=1")[1].endswith(" in run mine\n")
    monkeypatch.setenv("AEG_RUN", "from-env")
    assert cli(capsys, "--store", root, "log", "x", "a=1")[1].endswith(" in run from-env\n")


def test_cli_advice_is_for_a_shell(tmp_path: Any, capsys: Any) -> None:
    root = str(tmp_path / "s")
    cli(capsys, "--store", root, "log", "x", "a=1")
    code, out, err = cli(capsys, "--store", root, "show", "ZZZZ")
    assert (code, out) == (1, "")
    assert err == "aeg show: no artifact with id 'ZZZZ'; list them with `aeg list`\n"  # before: arts.list / %aeg list


# -- 9: completion: short ids, label keys, options only after `-` ------------------------------
def complete(ip: Any, line: str) -> list[str]:
    from IPython.core.completer import provisionalcompleter

    with provisionalcompleter():
        return [c.text for c in ip.Completer.completions(line, len(line))]


@pytest.mark.parametrize("jedi", [False, True], ids=["plain", "jedi"])
def test_completion_offers_what_tables_show_and_nothing_else(ip: Any, saved: list[Artifact], jedi: bool) -> None:
    ip.Completer.use_jedi = jedi  # real kernels complete with Jedi on
    cell(ip, "w = {'x': 1}")
    aeg(ip, "save w --kind checkpoint --label lr=0.1 --metric val_acc=0.5")
    shorts = {a.short_id for a in ctx(ip).store.artifacts.list()}
    assert set(complete(ip, "%aeg load ")) == shorts
    one = saved[1].short_id
    # the shortest prefix no other id shares (two saves in one millisecond share most of their short ids)
    n = 1 + max(_common_prefix(one.lower(), other.lower()) for other in shorts - {one})
    assert complete(ip, f"%aeg show {one[:n].lower()}") == [one]
    full = saved[1].artifact_id
    ids = {a.artifact_id for a in ctx(ip).store.artifacts.list()} - {full}
    # the shortest prefix no other id shares (ids of one millisecond can differ in their last letter only)
    n = 1 + max(_common_prefix(full, other) for other in ids)
    assert complete(ip, f"%aeg pin {full[:n]}") == [full]
    assert complete(ip, "%aeg leaderboard checkpoint --metric val_acc --by ") == ["exp", "lr"]
    assert complete(ip, "%aeg search checkpoint --label ") == ["exp=", "lr="]
    assert complete(ip, "%aeg search checkpoint --label exp=") == ["exp=A"]
    options = complete(ip, "%aeg ls -")
    assert options and all(o.startswith("--") for o in options) and "--scope" in options
    assert complete(ip, "%aeg ls --s") == ["--scope"]
    assert complete(ip, "best = %aeg best checkpoint --metric v") == ["val_acc"]


def _common_prefix(a: str, b: str) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


# -- 12: notebooks run headless get their own graph ---------------------------------------------
def _write_notebook(path: Any, *sources: str) -> None:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in sources]
    nbformat.write(nb, str(path))


def _graphs(root: str) -> dict[str, str]:
    from aeg_jupyter import connect

    context = connect(root)
    try:
        return {str(e.data["nb"]): e.graph_id for e in context.store.event_log.recent(kinds=["step"], limit=50)}
    finally:
        context.close()


HEADLESS_RUNNERS = {
    "nbconvert": [
        "-m",
        "jupyter",
        "nbconvert",
        "--to",
        "notebook",
        "--execute",
        "--output",
        "{name}-out",
        "{name}.ipynb",
    ],
    "execute": ["-m", "jupyter", "execute", "{name}.ipynb"],
    "papermill": ["-m", "papermill", "-k", "python3", "{name}.ipynb", "{name}-out.ipynb"],
}


@pytest.mark.timeout(900)
def test_headless_runners_use_the_notebooks_path_as_graph(tmp_path: Any) -> None:
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    root = str(tmp_path / "store")
    env = {k: v for k, v in os.environ.items() if k not in ("AEG_GRAPH", "JPY_SESSION_NAME")}
    env.update(AEG_STORE=root, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    for name, argv in HEADLESS_RUNNERS.items():
        _write_notebook(nbs / f"{name}.ipynb", "%load_ext aeg_jupyter", f"%aeg log step nb={name}")
        argv = [sys.executable, *(a.format(name=name) for a in argv)]
        proc = subprocess.run(argv, cwd=nbs, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
    assert _graphs(root) == {name: str(nbs / f"{name}.ipynb") for name in HEADLESS_RUNNERS}  # before: all "default"


@pytest.mark.timeout(600)
def test_a_script_driving_nbclient_sets_the_graph_with_aeg_graph(tmp_path: Any, monkeypatch: Any) -> None:
    import nbformat
    from nbclient import NotebookClient

    root = str(tmp_path / "store")
    monkeypatch.setenv("AEG_STORE", root)
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    for name, graph in (("plain", None), ("named", "nightly/sweep.ipynb")):
        if graph:
            monkeypatch.setenv("AEG_GRAPH", graph)
        path = tmp_path / f"{name}.ipynb"
        _write_notebook(path, "%load_ext aeg_jupyter", f"%aeg log step nb={name}")
        nb = nbformat.read(str(path), as_version=4)
        NotebookClient(
            nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
        ).execute()
    # nbclient tells the kernel nothing about the notebook: "default" unless AEG_GRAPH (or %config AegMagics.graph)
    assert _graphs(root) == {"plain": "default", "named": "nightly/sweep.ipynb"}


def test_config_graph_sets_the_graph_of_the_next_writes(ip: Any) -> None:
    assert aeg(ip, "log step nb=before").graph_id == "default"
    cell(ip, "%config AegMagics.graph = 'experiments/sweep.ipynb'")
    assert ctx(ip).graph_id == "experiments/sweep.ipynb"
    assert aeg(ip, "log step nb=after").graph_id == "experiments/sweep.ipynb"


# -- 11: set-up: the first command reaches the demo and a notebook; the demo cleans up ----------
def _bash_blocks(text: str) -> list[str]:
    import re

    return [b.strip() for b in re.findall(r"```bash\n(.*?)```", text, flags=re.S)]


def test_the_first_command_installs_a_notebook_and_the_test_command_stays_complete() -> None:
    import tomllib

    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    setup = readme[readme.index("## Set-up") :]
    first, tests = _bash_blocks(setup)[:2]
    assert first.startswith('pip install -e ".[jupyter]" && python -m aeg_jupyter.demo')
    assert "jupyter lab notebooks/" in first
    assert tests == 'pip install -e ".[test]" && python -m pytest'
    with open(os.path.join(REPO, ".ci", "run"), encoding="utf-8") as f:
        assert f.read().strip().splitlines()[-1] == tests  # CI runs exactly the README's test command
    with open(os.path.join(REPO, "pyproject.toml"), "rb") as f:
        extras = tomllib.load(f)["project"]["optional-dependencies"]
    names = {k: {r.split(">")[0].split("=")[0].split("[")[0].strip() for r in v} for k, v in extras.items()}
    assert {"jupyterlab", "ipykernel"} <= names["jupyter"]
    assert names["jupyter"] <= names["test"]  # the test install can run every notebook too
    assert "python -m ipykernel install --user --name aeg" in readme  # a JupyterLab installed elsewhere


def test_the_demo_removes_its_temporary_store_unless_asked_to_keep_it(tmp_path: Any) -> None:
    env = dict(os.environ, TMPDIR=str(tmp_path), PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("AEG_STORE", None)
    run = [sys.executable, "-m", "aeg_jupyter.demo"]
    proc = subprocess.run(run, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert not list(tmp_path.glob("aeg-demo-*"))  # before: one directory left per run, unmentioned
    assert proc.stdout.splitlines()[-1].endswith("is removed; `--keep` keeps it, `--store PATH` writes to PATH)")
    kept = subprocess.run([*run, "--keep"], env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    (store,) = tmp_path.glob("aeg-demo-*")
    assert kept.stdout.splitlines()[-1] == (
        f"The store is kept at {store}: `aeg --store {store} ls` lists it; remove it with `rm -rf {store}`"
    )


def test_the_readme_quotes_what_the_software_prints(ip: Any, saved: list[Artifact], capsys: Any) -> None:
    from aeg_jupyter import ScopeHint

    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as f:
        readme = " ".join(f.read().split())  # line breaks of the source are spaces
    with pytest.raises(UsageError) as err:
        aeg(ip, "best chekpoint --metric val_acc")
    assert f"`{err.value}`" in readme
    _restart(ip)
    capsys.readouterr()
    aeg(ip, "list --scope run")
    assert f"``{capsys.readouterr().out.strip()} ``" in readme
    with pytest.warns(ScopeHint) as hint:
        cell(ip, "await context.artifacts().best(kind='checkpoint', metric='val_acc')")
    assert f"`{hint[0].message}`" in readme
    assert "`%aeg: cannot expand {lr} (NameError:" in readme
