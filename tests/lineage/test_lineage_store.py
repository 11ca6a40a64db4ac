"""Lineage through the API and the magics on a real store: reads become inputs (and only in their
cell), explicit inputs, the upstream graph with depth and missing inputs, escaped HTML, runs named
five ways, the provenance columns on disk (DuckDB) and parts written before them."""

from __future__ import annotations

import glob
import os
from typing import Any

import pyarrow as pa
import pytest
from conftest import run

import aeg_jupyter
from aeg_jupyter.base.errors import AmbiguousIdError, InvalidInputError, NotFoundError
from aeg_jupyter.base.hashing import is_hex_digest
from aeg_jupyter.core.rundiff import resolve_run
from aeg_jupyter.storage.schemas import ARTIFACTS, artifacts_from_table, conform


def cell(ip: Any, source: str) -> Any:
    result = ip.run_cell(source, store_history=True)
    if result.error_before_exec or result.error_in_exec:
        raise result.error_before_exec or result.error_in_exec
    return result.result


@pytest.fixture
def ip(ipython_shell: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("AEG_STORE", str(tmp_path / "store"))
    ipython_shell.run_line_magic("load_ext", "aeg_jupyter")
    return ipython_shell


def test_reads_of_aeg_load_and_path_are_the_inputs_of_a_save_in_the_same_cell_only(ip: Any) -> None:
    cell(ip, "a = context.store.artifacts.save_json({'n': 1}, kind='dataset')")
    cell(ip, "b = context.store.artifacts.save_text('vocab', kind='vocab')")
    a, b = ip.user_ns["a"], ip.user_ns["b"]
    made = cell(ip, f"x = %aeg load {a.short_id}\np = %aeg path {b.artifact_id}\nm = %aeg save x --kind model\nm")
    assert made.inputs == (a.artifact_id, b.artifact_id)
    assert made.source_hash and is_hex_digest(made.source_hash) and made.execution_count is not None
    assert cell(ip, "%aeg save x --kind model").inputs == ()  # a new cell read nothing yet
    lin = cell(ip, f"%aeg lineage {made.short_id}")
    assert [n.artifact.artifact_id for n in lin.nodes] == [made.artifact_id, a.artifact_id, b.artifact_id]
    assert lin.nodes[0].source.startswith("x = %aeg load")
    env = lin.nodes[0].environment
    assert env is not None and env["python"] and "packages" in env  # the run's environment, kept at its first write
    assert "aeg.env" not in cell(ip, "%aeg list")["kind"].tolist()  # the store's own rows stay out of listings


def test_explicit_inputs_depth_missing_inputs_and_downstream(store_root: str) -> None:
    ctx = aeg_jupyter.connect(store_root)
    arts = ctx.artifacts()
    raw = run(arts.save_text("raw", kind="dataset"))
    clean = run(arts.save_text("clean", kind="dataset", inputs=[raw]))
    gone = run(arts.save_text("tmp", kind="scratch"))
    model = run(arts.save_json({"w": 1}, kind="checkpoint", inputs=[clean.artifact_id, gone.short_id]))
    run(arts.delete(gone))
    assert model.inputs == (clean.artifact_id, gone.artifact_id)
    full = run(arts.lineage(model))
    assert [(n.artifact.artifact_id, n.depth) for n in full.nodes] == [
        (model.artifact_id, 0), (clean.artifact_id, 1), (raw.artifact_id, 2)
    ]  # fmt: skip
    assert full.missing == [gone.artifact_id]
    assert run(arts.lineage(model, depth=1)).inputs == [run(arts.get(clean.artifact_id))]
    assert [a.artifact_id for a in run(arts.lineage(raw)).downstream] == [clean.artifact_id]
    assert list(full.df["depth"]) == [0, 1, 2]
    with pytest.raises(NotFoundError):
        run(arts.save_text("x", inputs=["NOSUCHID00"]))
    with pytest.raises(InvalidInputError, match="depth"):
        run(arts.lineage(model, depth=-1))
    # outside a kernel the script stands for the cell: its path and hash
    assert model.source_path and os.path.isfile(model.source_path) and is_hex_digest(model.source_hash or "")
    ctx.close()


def test_lineage_html_escapes_what_users_stored(ip: Any) -> None:
    cell(ip, "evil = context.store.artifacts.save_text('<b>', kind='<img src=x onerror=alert(1)>')")
    src = "# <script>alert('cell')</script>\nx = %aeg load {evil.artifact_id}\nm = %aeg save x --kind model --name '<i>n</i>'"
    cell(ip, src)
    html = cell(ip, "%aeg lineage {m.artifact_id}")._repr_html_()
    assert "<script>" not in html and "&lt;script&gt;alert(&#x27;cell&#x27;)&lt;/script&gt;" in html
    assert "<img" not in html and "<i>n</i>" not in html


def test_a_run_is_named_by_id_prefix_name_or_an_artifact_of_it(store_root: str) -> None:
    ctx = aeg_jupyter.connect(store_root)
    arts = ctx.artifacts()
    first = ctx.run_id
    art = run(arts.save_text("one"))
    ctx.new_run("sweep-a")
    run(arts.save_text("two"))
    ctx.new_run("sweep-b")
    run(ctx.memory().record(kind="log", data={"x": 1}))  # a run that only recorded events
    store = ctx.store.artifacts
    events = ctx.store.event_table
    assert resolve_run(store, first, events) == first
    assert resolve_run(store, first[:-3], events) == first
    assert resolve_run(store, "sweep-a", events).startswith("sweep-a-")
    assert resolve_run(store, art.short_id, events) == first
    assert resolve_run(store, "sweep-b", events) == ctx.run_id
    with pytest.raises(AmbiguousIdError, match="matches 2 runs"):
        resolve_run(store, "sweep-", events)
    with pytest.raises(NotFoundError, match="no run 'nope'"):
        resolve_run(store, "nope", events)
    ctx.close()


def test_duckdb_finds_every_checkpoint_made_from_a_dataset(store_root: str) -> None:
    duckdb = pytest.importorskip("duckdb")
    ctx = aeg_jupyter.connect(store_root)
    arts = ctx.artifacts()
    data = run(arts.save_text("rows", kind="dataset"))
    other = run(arts.save_text("other rows", kind="dataset"))
    made = [run(arts.save_json({"epoch": i}, kind="checkpoint", inputs=[data])) for i in range(3)]
    run(arts.save_json({"epoch": 9}, kind="checkpoint", inputs=[other]))
    run(arts.save_text("report", kind="report", inputs=[data]))
    ctx.close()  # rows go to Parquet
    parts = os.path.join(store_root, "tables", "artifacts", "*", "*.parquet")
    assert glob.glob(parts)
    got = duckdb.sql(
        f"""
        SELECT artifact_id FROM read_parquet('{parts}', hive_partitioning = true, union_by_name = true)
        WHERE kind = 'checkpoint' AND list_contains(CAST(inputs AS JSON)::VARCHAR[], '{data.artifact_id}')
        ORDER BY artifact_id
        """
    ).fetchall()
    assert [r[0] for r in got] == [a.artifact_id for a in made]


def test_parts_written_before_the_lineage_columns_read_with_no_provenance() -> None:
    old = pa.table(
        {
            "artifact_id": ["01J0000000000000000000000A"],
            "created_at": pa.array([1_700_000_000_000_000], pa.timestamp("us", tz="UTC")),
            "uri": ["cas://blake3/" + "0" * 64],
            "size": [3],
            "labels": ["{}"],
            "metrics": ["{}"],
        }
    )
    (art,) = artifacts_from_table(conform(old, ARTIFACTS), "model", "an old part")
    assert (art.source_path, art.cell_id, art.execution_count, art.source_hash, art.inputs) == (
        None, None, None, None, ()
    )  # fmt: skip


def test_the_panel_shows_inputs_that_select_them_and_the_producing_cell(ip: Any) -> None:
    from aeg_jupyter.frontends.panel.panel import Panel

    cell(ip, "rows = 'rows'\nds = %aeg save rows --kind dataset")
    cell(ip, "# train <b>here</b>\nx = %aeg load {ds.artifact_id}\nm = %aeg save x --kind model")
    ds, m = ip.user_ns["ds"], ip.user_ns["m"]
    p = Panel(ip.user_ns["context"])
    try:
        tab = p.artifacts_tab
        tab.refresh()
        tab.listing.value = m.artifact_id
        heading, row, source = tab.lineage.children
        assert heading.value == "<b>made from</b>"
        (button,) = row.children
        assert button.description == f"dataset {ds.short_id}" and button.tooltip == ds.artifact_id
        assert "# train &lt;b&gt;here&lt;/b&gt;" in source.value and "<b>here</b>" not in source.value
        button.click()
        assert tab.selected is not None and tab.selected.artifact_id == ds.artifact_id
        (own,) = tab.lineage.children  # the dataset read nothing: only its own cell
        assert "rows = &#x27;rows&#x27;" in own.value
    finally:
        p.close()


def test_the_cli_answers_lineage_and_diff(store_root: str) -> None:
    import json
    import subprocess
    import sys

    from conftest import REPO

    ctx = aeg_jupyter.connect(store_root)
    arts = ctx.artifacts()
    cfg = run(arts.save_json({"lr": 0.1}, kind="config"))
    ckpt = run(arts.save_text("w", kind="checkpoint", inputs=[cfg]))
    first = ctx.run_id
    ctx.new_run("second")
    run(arts.save_json({"lr": 0.3}, kind="config"))
    second = ctx.run_id
    ctx.close()
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))

    def aeg(*argv: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "aeg_jupyter.frontends.cli", "--store", store_root, *argv]
        return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)

    lin = aeg("lineage", ckpt.short_id, "--json")
    assert lin.returncode == 0, lin.stderr
    graph = json.loads(lin.stdout)
    assert [n["artifact_id"] for n in graph["nodes"]] == [ckpt.artifact_id, cfg.artifact_id]
    diff = aeg("diff", first, "second")
    assert diff.returncode == 0, diff.stderr
    assert f"A = {first}\nB = {second}\nconfig:\n  config.json: lr: 0.1 -> 0.3" in diff.stdout
    missing = aeg("diff", first, "no-such-run")
    assert missing.returncode == 1 and "no run 'no-such-run'" in missing.stderr


def test_events_carry_the_cell_that_recorded_them(ip: Any) -> None:
    from aeg_jupyter.base.hashing import hash_bytes

    source = "%aeg log train_log step=1 loss=0.5"
    cell(ip, source)
    table = ip.user_ns["context"].store.event_table
    rows = [r for path in table.spool_paths(include_own=True) for r in table.read_spool(path)[0]]
    (row,) = [r for r in rows if r["kind"] == "train_log"]
    assert row["source_hash"] == hash_bytes(source.encode()) and isinstance(row["execution_count"], int)
