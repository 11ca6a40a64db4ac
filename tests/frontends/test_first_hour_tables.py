"""Issue 19, item 8, through a real IPython shell: tables for people lead with what was asked, show short ids,
human ages, local times and rounded metrics; `--all-columns` keeps every column; the README's promises
about the columns hold."""

from __future__ import annotations

import os
import re
from typing import Any

import pandas as pd
import pytest
from conftest import REPO

from aeg_jupyter.frontends.commands.artifacts import describe_artifact

HIDDEN = ["artifact_id", "uri", "created_at", "graph_id", "node_id", "pinned", "size"]


def aeg(ip: Any, line: str) -> Any:
    return ip.run_line_magic("aeg", line)


@pytest.fixture
def sweep(ip: Any) -> list[Any]:
    out = []
    for i, (lr, acc) in enumerate([(0.1, 0.912345), (0.01, 0.95), (0.001, 0.8871)]):
        ip.user_ns["w"] = {"i": i}
        out.append(
            aeg(
                ip,
                f"save w --kind checkpoint --label lr={lr} --label seed=1 --metric val_acc={acc} --metric loss={1 - acc}",
            )
        )
    return out


def test_leaderboard_leads_with_what_was_asked(ip: Any, sweep: list[Any]) -> None:
    df = aeg(ip, "leaderboard checkpoint --metric val_acc --by lr")
    # Before: 19 columns, the ranking metric last, after uri, created_at, graph_id, node_id, pinned, size.
    assert list(df.columns[:4]) == ["rank", "short_id", "metric.val_acc", "label.lr"]
    assert not set(HIDDEN) & set(df.columns)
    assert list(df.columns[-3:]) == ["age", "created", "run"]
    assert list(df["short_id"]) == [sweep[i].artifact_id[-8:] for i in (1, 0, 2)]
    assert list(df["metric.val_acc"]) == [0.95, 0.9123, 0.8871]  # rounded to 4 significant digits
    assert all(a == "just now" or re.fullmatch(r"\d+ (s|min|h) ago", a) for a in df["age"])  # not "0 days 00:04:08"
    assert df["created"][0].tzinfo is not None and df["created"][0].microsecond == 0  # local, to the second
    assert df["run"][0] == ip.user_ns["context"].run_id.split("-", 1)[1][4:]  # the distinguishing part
    assert len(df.columns) <= 10


def test_all_columns_keep_everything(ip: Any, sweep: list[Any]) -> None:
    full = aeg(ip, "leaderboard checkpoint --metric val_acc --by lr --all-columns")
    assert set(HIDDEN) <= set(full.columns) and full["metric.val_acc"][0] == 0.95
    assert list(aeg(ip, "search checkpoint --all-columns")["artifact_id"]) == [a.artifact_id for a in reversed(sweep)]
    assert "uri" in aeg(ip, "list --all-columns").columns


def test_search_and_list_show_short_ids(ip: Any, sweep: list[Any]) -> None:
    for line in ("search checkpoint", "list", "search checkpoint --metric loss --min"):
        df = aeg(ip, line)
        assert df.columns[0] in ("short_id", "rank") and "artifact_id" not in df.columns, line
        assert all(len(s) == 8 for s in df["short_id"]), line  # Before: the 26-character id
    ranked = aeg(ip, "search checkpoint --metric loss --min")
    assert list(ranked.columns[:3]) == ["rank", "short_id", "metric.loss"]
    assert list(aeg(ip, "search checkpoint --metric loss")["short_id"]) == list(ranked["short_id"])  # a loss: min
    loaded = aeg(ip, f"show {ranked['short_id'][0]}")  # a short id from a table is accepted everywhere
    assert loaded == sweep[1]


def test_recent_does_not_repeat_data_as_json(ip: Any) -> None:
    for i in range(3):
        aeg(ip, f"log train_log epoch={i} loss={0.5 / (i + 1)}")
    df = aeg(ip, "recent train_log")
    # Before: a `text` column repeated every data.* column as JSON, making rows five lines tall.
    assert "text" not in df.columns and "event_id" not in df.columns
    assert list(df.columns[:3]) == ["age", "time", "kind"]
    assert list(df["data.epoch"]) == [2, 1, 0]
    full = aeg(ip, "recent train_log --all-columns")
    assert "text" in full.columns and "event_id" in full.columns


def test_show_rounds_metrics_and_sizes(sweep: list[Any]) -> None:
    text = describe_artifact(sweep[0])
    assert "val_acc=0.9123" in text and "0.912345" not in text


def test_the_readme_describes_the_columns_printed(ip: Any, sweep: list[Any]) -> None:
    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as f:
        readme = " ".join(f.read().split())
    assert "Tables show the last 8 characters" in readme
    para = readme[readme.index("Tables for people:") :]
    para = para[: para.index("Every subcommand returns")]
    named = re.findall(r"`([a-z_.*]+)`", para)
    of_artifacts = re.findall(r"`([a-z_.*]+)`", para[: para.index("`recent` shows")])
    lead = [c for c in of_artifacts if c in ("rank", "short_id", "name", "age", "created", "run")]
    df = aeg(ip, "leaderboard checkpoint --metric val_acc --by lr")
    assert [c for c in df.columns if c in lead] == lead  # the documented columns, in the documented order
    assert all(s == a.artifact_id[-8:] for s, a in zip(df["short_id"], [sweep[1], sweep[0], sweep[2]], strict=True))
    events = ["age", "time", "kind"]
    assert all(c in named for c in events) and "--all-columns" in para
    aeg(ip, "log step i=1")
    assert list(aeg(ip, "recent step").columns[:3]) == events
    assert isinstance(aeg(ip, "list --all-columns"), pd.DataFrame)
