"""Every snippet of the Store & Recall tutorial (docs/store-and-recall-tutorial.md) runs unchanged.

The Python blocks are read from the tutorial itself and executed in order in one namespace,
with top-level ``await`` as in a notebook. Only the file path of section 1A is pointed at a
temporary file, and the inputs the tutorial leaves to the reader (``png_bytes``, ``uri``) are
provided.
"""

from __future__ import annotations

import ast
import dataclasses
import os
import re
import stat

import pytest
from conftest import REPO, run

from aeg_jupyter import Artifact, Event

TUTORIAL = os.path.join(REPO, "docs", "store-and-recall-tutorial.md")


def tutorial_blocks() -> list[str]:
    with open(TUTORIAL, encoding="utf-8") as f:
        text = f.read()
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def api_blocks() -> list[str]:
    # Section 5 is a schema reference (dataclass bodies and a signature), checked separately.
    return [b for b in tutorial_blocks() if "@dataclass" not in b and not b.lstrip().startswith("async def")]


async def _run_blocks(blocks: list[str], ns: dict) -> None:
    for block in blocks:
        code = compile(block, "<tutorial>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        result = eval(code, ns)
        if result is not None:
            await result


def test_every_api_snippet_runs_verbatim(context, tmp_path):
    report = tmp_path / "report.pdf"
    report.write_bytes(b"%PDF-1.4 fake report")
    blocks = [b.replace('"/tmp/report.pdf"', repr(str(report))) for b in api_blocks()]
    assert len(blocks) >= 10
    arts = context.artifacts()

    async def seed():
        # checkpoints for the "best so far" recipe, and a URI for the tool-result recipe
        for acc in (0.7, 0.9, 0.8):
            await arts.save_json({"acc": acc}, kind="checkpoint", metrics={"val_acc": acc})

    run(seed())
    ns = {"context": context, "png_bytes": b"\x89PNG\r\n\x1a\nfake", "uri": "cas://blake3/" + "0" * 64}
    run(_run_blocks(blocks, ns))

    art = ns["art"]
    assert art.kind == "report" and art.labels == {"exp": "A"} and art.name == "report.pdf"
    with open(ns["path"], "rb") as f:
        assert f.read() == report.read_bytes()
    assert ns["path"].endswith("report.pdf")
    assert not os.stat(ns["path"]).st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    [plot] = run(arts.list(scope="run", kind="plot"))
    assert plot.name == "plot.png" and run(arts.load_bytes(plot)) == ns["png_bytes"]
    assert [e.kind for e in ns["recent"]] == ["train_log"] and ns["recent"][0].data["loss"] == 0.25
    assert ns["logs"] == [{"epoch": 1, "loss": 0.25, "acc": 0.91}]
    assert [h.artifact_id for h in ns["hits"]] == [art.artifact_id]
    assert ns["best"].metrics["val_acc"] == 0.9
    with open(ns["best_path"]) as f:
        assert '"acc": 0.9' in f.read()
    assert run(arts.load_json(ns["cfg_art"])) == {"lr": 1e-3, "batch": 64}
    assert run(arts.load_text(ns["log_art"])) == "training finished ok"
    assert run(arts.get(ns["cfg_art"].artifact_id)).pinned
    kinds = sorted(a.kind for a in ns["all_run_outputs"])
    assert kinds == ["checkpoint"] * 3 + ["json", "plot", "report", "text"]


def test_tool_result_snippet_recalls_by_name(context):
    mem = context.memory()
    blocks = [b for b in api_blocks() if "record_tool_result" in b]
    ns = {"context": context, "mem": mem, "uri": "cas://blake3/" + "a" * 64}
    run(_run_blocks(blocks, ns))
    [ev] = ns["recent"]
    assert ev.kind == "tool_result" and ev.topic == "train.step"
    assert {v.name: v.value for v in ev.outputs} == {"val_acc": 0.912, "ckpt_uri": ns["uri"]}
    assert run(mem.last_by_name("val_acc")) == 0.912


def _fields(block_class: str) -> dict[str, str]:
    block = next(b for b in tutorial_blocks() if f"class {block_class}:" in b)
    return dict(re.findall(r"^\s+(\w+): ([^=#\n]+?)\s*(?:=|#|$)", block, flags=re.M))


@pytest.mark.parametrize("cls", [Artifact, Event])
def test_reference_schema_fields_exist_in_order(cls):
    expected = list(_fields(cls.__name__))
    ours = [f.name for f in dataclasses.fields(cls)]
    assert ours[: len(expected)] == expected


def test_reference_defaults_match():
    art = Artifact(artifact_id="x", uri="cas://blake3/" + "0" * 64, kind="k", labels={}, metrics={})
    assert art.preview_uri is None and art.pinned is False
    ev = Event(event_id="e", ts="t", kind="k")
    assert (ev.topic, ev.inputs, ev.outputs, ev.metrics, ev.text, ev.version) == (None, None, None, None, None, 1)
