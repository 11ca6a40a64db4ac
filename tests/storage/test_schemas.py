"""aeg_jupyter.storage.schemas: the row <-> model codecs of the artifacts and events tables."""

from __future__ import annotations

import functools
import json
import math
import warnings

import pytest

from aeg_jupyter.base.errors import StoreWarning
from aeg_jupyter.base.models import Artifact, Provenance, Value
from aeg_jupyter.base.times import ts_to_datetime, ts_to_iso
from aeg_jupyter.storage.layout import Layout
from aeg_jupyter.storage.schemas import (
    ARTIFACTS,
    EVENTS,
    artifact_row,
    artifacts_from_table,
    decode_objects,
    encode_row,
    event_row,
    optional_json,
    row_to_artifact,
    row_to_event,
    values_from_text,
    values_to_text,
)
from aeg_jupyter.storage.tables import Table

T0 = 1_700_000_000_123_457

LABELS = {
    "exp": "A",
    "名前": "値 ✓",
    "flag": True,
    "off": False,
    "n": 1,
    "zero": 0,
    "ratio": 0.25,
    "none": None,
    "nested": {"a": [1, 2.5, {"b": None, "c": "é"}], "d": {"e": True}},
    'quote"key': "line\nbreak\ttab\\slash\u2028",
}
METRICS = {"acc": 0.91, "loss": 1e-9, "big": 1e300, "neg": -0.0, "é": 3.0}


def _artifact_row(i: int = 0, **kw):
    args = {
        "name": f"model-{i}.pt",
        "mime": "application/octet-stream",
        "origin": Provenance("run-1", "graph-ü", f"cell-{i}"),
        "pinned": True,
        "labels": LABELS,
        "metrics": METRICS,
    }
    args.update(kw)
    return artifact_row(f"01ART{i:05d}", T0 + i, "ckpt/模型", "cas://blake3/" + f"{i:064x}", 1234 + i, **args)


# -- artifacts ---------------------------------------------------------------------------------
def test_encode_row_is_compact_json_dumps():
    row = _artifact_row()
    assert encode_row(row) == json.dumps(row, ensure_ascii=False, separators=(",", ":"))
    odd = {"s": '\x00\x1f"\\/\ud7ff', "b": True, "f": 1.5, "nan": math.nan, "none": None, "i": -(2**70)}
    assert encode_row(odd) == json.dumps(odd, ensure_ascii=False, separators=(",", ":"))


def test_artifact_row_spool_round_trip_keeps_every_field():
    row = _artifact_row(3)
    art = row_to_artifact(json.loads(encode_row(row)))
    assert art == Artifact(
        artifact_id="01ART00003",
        uri="cas://blake3/" + f"{3:064x}",
        kind="ckpt/模型",
        labels=LABELS,
        metrics=METRICS,
        preview_uri=None,
        pinned=True,
        created_at=ts_to_datetime(T0 + 3),
        size=1237,
        name="model-3.pt",
        mime="application/octet-stream",
        run_id="run-1",
        graph_id="graph-ü",
        node_id="cell-3",
    )
    # bool stays bool and int stays int (True == 1 would hide a mix-up)
    assert type(art.labels["flag"]) is bool and type(art.labels["n"]) is int and type(art.labels["zero"]) is int
    assert type(art.labels["ratio"]) is float
    assert art.labels["nested"]["a"][2] == {"b": None, "c": "é"}
    assert math.copysign(1.0, art.metrics["neg"]) == -1.0
    assert art.created_at.microsecond == (T0 + 3) % 1_000_000


def test_artifact_row_defaults():
    row = artifact_row(
        "a", T0, "k", "cas://x", 0, name=None, mime=None, origin=Provenance(), pinned=0, labels={}, metrics={}
    )
    assert row["pinned"] is False
    assert row["labels"] == row["metrics"] == "{}"
    art = row_to_artifact(json.loads(encode_row(row)))
    assert (art.labels, art.metrics, art.pinned, art.size) == ({}, {}, False, 0)
    assert (art.name, art.mime, art.run_id, art.graph_id, art.node_id) == (None,) * 5


def test_artifacts_from_table_matches_row_to_artifact(tmp_path):
    table = Table(Layout(str(tmp_path / "store")), ARTIFACTS, writer="w1")
    rows = [_artifact_row(i) for i in range(3)] + [_artifact_row(9, labels={}, metrics={}, pinned=False, name=None)]
    arrow = table.rows_to_arrow(rows)
    assert "kind" not in arrow.column_names  # the partition column is the directory
    arts = artifacts_from_table(arrow, "ckpt/模型", "a test part")
    assert arts == [row_to_artifact(r) for r in rows]
    assert type(arts[0].labels["flag"]) is bool
    assert artifacts_from_table(table.rows_to_arrow([]), "ckpt", "empty") == []


def test_damaged_labels_cell_reads_as_empty_with_a_warning():
    row = json.loads(encode_row(_artifact_row()))
    row["labels"] = '{"exp": "A", '  # cut short
    with pytest.warns(StoreWarning, match="damaged labels/metrics cell in spool x"):
        art = row_to_artifact(row, "spool x")
    assert art.labels == {}
    assert art.metrics == METRICS
    row["labels"] = "[1, 2]"  # valid JSON, not an object
    with pytest.warns(StoreWarning):
        assert row_to_artifact(row).labels == {}


def test_damaged_cell_in_an_arrow_table_spoils_only_that_cell(tmp_path):
    table = Table(Layout(str(tmp_path / "store")), ARTIFACTS, writer="w1")
    rows = [_artifact_row(i) for i in range(3)]
    rows[1]["labels"] = "{broken"
    with pytest.warns(StoreWarning, match="part-7"):
        arts = artifacts_from_table(table.rows_to_arrow(rows), "ckpt", "part-7")
    assert [a.labels for a in arts] == [LABELS, {}, LABELS]
    assert [a.metrics for a in arts] == [METRICS] * 3


def test_damaged_cells_that_parse_together_still_read_as_empty():
    texts = ['{"x":"', '"}', "{},{}"]  # three damaged cells: none is a JSON object on its own
    with pytest.warns(StoreWarning):
        out = decode_objects(texts, "part-1")
    assert out == [{}, {}, {}]


@pytest.mark.parametrize(
    "texts",
    [
        [],
        ['{"a": 1}'],
        [None, "", '{"a": [1, {"b": "-7"}]}', '{"s": ",-7,"}', "{}"],  # the marker's text inside a cell is data
        ['{"a": -7}', '{"b": "x"}'],
    ],
)
def test_whole_cells_decode_in_one_parse_as_themselves(texts):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no cell is damaged: no warning
        assert decode_objects(texts, "part-1") == [json.loads(t) if t else {} for t in texts]


def test_a_damaged_cell_among_whole_ones_spoils_only_itself():
    texts = ['{"a": 1}', '{"x": "', '{"b": 2}', "[1, 2]", '{"c": 3}']
    with pytest.warns(StoreWarning):
        out = decode_objects(texts, "part-1")
    assert out == [{"a": 1}, {}, {"b": 2}, {}, {"c": 3}]


# -- events ------------------------------------------------------------------------------------
def _origin(run_id=None, graph_id=None, node_id=None):
    fields = {"run_id": run_id, "graph_id": graph_id, "node_id": node_id}
    return {k: v for k, v in fields.items() if v is not None}, optional_json(fields)


OUTPUTS = [
    Value("val_acc", "number", 0.91),
    Value("epochs", "number", 3),
    Value("note", "text", 'he said "hi"\n'),
    Value("missing", "json", None),
    Value("cfg", "json", {"lr": 1e-3, "layers": [64, 32], "opt": {"name": "adam", "betas": [0.9, 0.999]}}),
    Value("flag", "json", True),
]


def test_event_row_line_is_the_json_of_the_row():
    text = 'text with "quotes", \\ backslash, \n newline, \x00 nul, \u2028 and ünïcode 模型'
    row, line = event_row(
        "01EV0001", T0, 'kind "q"', 0, _origin("r1", "g/1", None), text, "tool:train",
        values_to_text(OUTPUTS[:2], json.dumps), values_to_text(OUTPUTS, json.dumps),
        json.dumps({"loss": 0.5}), json.dumps(["a", "ü"]), "eval",
    )  # fmt: skip
    assert line.endswith("\n") and line.count("\n") == 1  # one spool line, whatever the text holds
    assert json.loads(line) == row
    assert row["run_id"] == "r1" and row["graph_id"] == "g/1" and "node_id" not in row
    assert row["text"] == text and row["severity"] == 0 and row["version"] == 1


def test_event_row_minimal():
    row, line = event_row("01EV0002", T0, "log", 2, _origin(), None, None, None, None, None, None, None)
    assert row == {"event_id": "01EV0002", "ts": T0, "kind": "log", "severity": 2, "version": 1}
    assert json.loads(line) == row
    ev = row_to_event(json.loads(line))
    assert (ev.text, ev.topic, ev.inputs, ev.outputs, ev.metrics, ev.tags, ev.stage) == (None,) * 7
    assert (ev.run_id, ev.graph_id, ev.node_id) == (None,) * 3


def test_row_to_event_restores_every_field():
    _, line = event_row(
        "01EV0003", T0, "tool_result", 0, _origin("r1", "g1", "n1"), "done", "tool:train",
        values_to_text(OUTPUTS[:1], json.dumps), values_to_text(OUTPUTS, json.dumps),
        json.dumps({"loss": 0.5}), json.dumps(["a", "ü"]), "eval",
    )  # fmt: skip
    ev = row_to_event(json.loads(line))
    assert ev.event_id == "01EV0003"
    assert ev.ts == ts_to_iso(T0) == "2023-11-14T22:13:20.123457+00:00"
    assert (ev.kind, ev.topic, ev.text, ev.stage) == ("tool_result", "tool:train", "done", "eval")
    assert ev.outputs == OUTPUTS
    assert ev.inputs == OUTPUTS[:1]
    assert type(ev.outputs[5].value) is bool and type(ev.outputs[1].value) is int
    assert ev.metrics == {"loss": 0.5} and ev.tags == ["a", "ü"]
    assert ev.severity == 0  # not the default 2
    assert (ev.run_id, ev.graph_id, ev.node_id, ev.version) == ("r1", "g1", "n1", 1)


def test_values_to_text_is_json_dumps_of_the_dicts():
    values = [
        Value("f", "number", 0.1),
        Value("tiny", "number", 1.5e-7),
        Value("huge", "number", 1e300),
        Value("negzero", "number", -0.0),
        Value("int", "number", 0),
        Value("negint", "number", -3),
        Value("bigint", "number", 2**70),
        Value("s", "text", 'quote " backslash \\ tab \t nul \x00'),
        Value("none", "json", None),
        Value("nan", "number", math.nan),
        Value("inf", "number", math.inf),
        Value("-inf", "number", -math.inf),
        Value("t", "json", True),
        Value("nested", "json", {"a": {"b": [1, 2.5, None, "x", {"c": math.nan}]}}),
        Value("list", "json", [1, "two", 3.0]),
    ]
    assert values_to_text(values, json.dumps) == json.dumps([v.to_dict() for v in values])
    back = values_from_text(values_to_text(values, json.dumps))
    assert [v.name for v in back] == [v.name for v in values]
    assert math.isnan(back[9].value) and back[10].value == math.inf and back[6].value == 2**70
    assert values_to_text([], json.dumps) == json.dumps([])


def test_values_to_text_with_unicode_matches_json_dumps_without_ascii_escapes():
    dumps = functools.partial(json.dumps, ensure_ascii=False)  # as the event log encodes nested values
    values = [Value("名前", "text", "値 é"), Value("d", "json", {"k": "ü"}), Value("x", "number", 2.0)]
    assert values_to_text(values, dumps) == json.dumps([v.to_dict() for v in values], ensure_ascii=False)
    assert values_from_text(values_to_text(values, dumps)) == values


@pytest.mark.parametrize("text", [None, "", "not json", "{}", '[{"kind": "x"}]', "[1]", "null"])
def test_values_from_a_damaged_cell_are_none(text):
    assert values_from_text(text) == []


def test_values_from_text_defaults_kind():
    assert values_from_text('[{"name": "a", "value": 1}]') == [Value("a", "json", 1)]


def test_event_rows_fit_the_events_schema(tmp_path):
    table = Table(Layout(str(tmp_path / "store")), EVENTS, writer="w1")
    row, line = event_row(
        "01EV0004", T0, "log", 1, _origin("r"), "t", None, None, values_to_text(OUTPUTS, json.dumps), None, None, None
    )
    table.append(row, line)
    table.flush()
    (got,) = table.read_all_parts()
    assert row_to_event(got) == row_to_event(json.loads(line))
