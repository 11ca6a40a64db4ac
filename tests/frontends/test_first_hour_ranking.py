"""Issue 19, items 2 and 4, through a real IPython shell: a metric's direction comes from its name (or is
recorded), `%aeg best` / `%aeg leaderboard` use it, and `gc`'s rules keep what they say (pins, leaders),
with a dry run that is a table of exactly what the real run deletes."""

from __future__ import annotations

from typing import Any

import pytest
from IPython.core.error import UsageError

from aeg_jupyter import GcReport
from aeg_jupyter.core.direction import default_metric, infer_direction, recorded_modes


def aeg(ip: Any, line: str) -> Any:
    return ip.run_line_magic("aeg", line)


@pytest.mark.parametrize(
    ("name", "mode"),
    [
        ("loss", "min"), ("val_loss", "min"), ("train.loss", "min"), ("valLoss", "min"), ("error_rate", "min"),
        ("top1-err", "min"), ("perplexity", "min"), ("ppl", "min"), ("latency_ms", "min"), ("step_time", "min"),
        ("mse", "min"), ("val_rmse", "min"), ("wer", "min"), ("cer", "min"),
        ("acc", "max"), ("val_acc", "max"), ("valAcc", "max"), ("accuracy", "max"), ("f1_macro", "max"),
        ("auc", "max"), ("bleu4", "max"), ("rouge-L", "max"), ("reward", "max"), ("precision", "max"),
        ("recall@5", "max"), ("mAP", "max"), ("score", "max"), ("iou", "max"),
        ("lr", None), ("epoch", None), ("temperature", None), ("", None),
    ],
)  # fmt: skip
def test_direction_is_inferred_from_the_name(name: str, mode: str | None) -> None:
    assert infer_direction(name) == mode


def test_default_metric_is_what_a_practitioner_ranks_by() -> None:
    assert default_metric(["epoch", "loss", "lr", "train_acc", "val_acc", "val_loss"]) == "val_acc"
    assert default_metric(["epoch", "loss", "lr"]) == "loss"  # not "epoch", the first alphabetically
    assert default_metric(["loss", "val_loss"]) == "val_loss"
    assert recorded_modes({"metric_modes": "score:min, gap:max"}) == {"score": "min", "gap": "max"}


@pytest.fixture
def ckpts(ip: Any) -> list[Any]:
    out = []
    for i, (acc, loss) in enumerate([(0.7, 0.9), (0.9, 0.2), (0.8, 0.5)]):
        ip.user_ns["w"] = {"i": i}
        out.append(aeg(ip, f"save w --kind checkpoint --metric val_acc={acc} --metric loss={loss} --metric epoch={i}"))
    return out


def test_best_and_leaderboard_infer_the_direction(ip: Any, ckpts: list[Any]) -> None:
    # Before: `best --metric loss` ranked max and crowned the highest loss (ckpts[0]).
    assert aeg(ip, "best checkpoint --metric loss") == ckpts[1]
    assert aeg(ip, "best checkpoint --metric val_acc") == ckpts[1]
    assert aeg(ip, "best checkpoint --metric loss --max") == ckpts[0]  # asked for: obeyed
    board = aeg(ip, "leaderboard checkpoint --metric loss")
    assert list(board["metric.loss"]) == [0.2, 0.5, 0.9]


def test_an_unknown_direction_is_asked_for(ip: Any, ckpts: list[Any]) -> None:
    with pytest.raises(UsageError, match=r"is a higher or a lower 'epoch' better\?.*add --max or --min"):
        aeg(ip, "best checkpoint --metric epoch")
    with pytest.raises(UsageError, match=r"%aeg leaderboard: is a higher or a lower 'epoch' better"):
        aeg(ip, "leaderboard checkpoint --metric epoch")
    assert aeg(ip, "best checkpoint --metric epoch --max") == ckpts[2]


def test_a_recorded_direction_wins_over_the_name(ip: Any) -> None:
    for i, score in enumerate([3.0, 1.0, 2.0]):
        ip.user_ns["w"] = {"i": i}
        aeg(ip, f"save w --kind run_eval --metric score={score} --label metric_modes=score:min")
    assert aeg(ip, "best run_eval --metric score").metrics["score"] == 1.0  # "score" alone would be max


# -- gc ------------------------------------------------------------------------------------------
@pytest.fixture
def sweep(ip: Any) -> dict[str, Any]:
    """Six checkpoints; the best (lowest loss, highest val_acc) is the oldest; a config and a pinned note."""
    arts: dict[str, Any] = {"ckpt": []}
    for i, (acc, loss) in enumerate([(0.95, 0.1), (0.6, 0.8), (0.7, 0.7), (0.8, 0.5), (0.75, 0.6), (0.65, 0.9)]):
        ip.user_ns["w"] = {"i": i}
        arts["ckpt"].append(aeg(ip, f"save w --kind checkpoint --metric val_acc={acc} --metric loss={loss}"))
    ip.user_ns["cfg"] = {"lr": 0.1}
    arts["config"] = aeg(ip, "save cfg --kind config")
    ip.user_ns["note"] = "keep me"
    arts["note"] = aeg(ip, "save note --kind note --pin")
    return arts


def test_keep_last_alone_keeps_the_leader_and_pins(ip: Any, sweep: dict[str, Any]) -> None:
    ck = sweep["ckpt"]
    dry = aeg(ip, "gc --keep-last 2 --dry-run")
    # Before: the best checkpoint (the oldest) was deleted with the rest.
    assert dry.artifacts == sorted(a.artifact_id for a in ck[1:4])
    assert ck[0].artifact_id not in dry.artifacts and sweep["note"].artifact_id not in dry.artifacts
    df = dry.df
    assert list(df.columns) == ["short_id", "kind", "name", "age", "size", "why not kept", "artifact_id"]
    assert list(df["short_id"]) == [a.short_id for a in ck[1:4]]
    assert set(df["why not kept"]) == {"not among the 2 newest checkpoint; not the best by loss, val_acc; not pinned"}
    assert all(s.endswith(" B") for s in df["size"]) and all(a.endswith(" ago") or a == "just now" for a in df["age"])
    assert "would free 3 artifacts" in str(dry) and ck[1].short_id in str(dry)
    html = ip.display_formatter.format(dry)[0]["text/html"]
    assert "<table" in html and "why not kept" in html
    real = aeg(ip, "gc --keep-last 2")
    assert real.artifacts == dry.artifacts  # the dry run's list is what the real run deletes
    left = {a.artifact_id for a in ip.user_ns["context"].store.artifacts.list()}
    assert left == {ck[0].artifact_id, ck[4].artifact_id, ck[5].artifact_id, sweep["config"].artifact_id,
                    sweep["note"].artifact_id}  # fmt: skip


def test_keep_best_alone_keeps_the_top_n_of_every_leaderboard(ip: Any, sweep: dict[str, Any]) -> None:
    ck = sweep["ckpt"]
    dry = aeg(ip, "gc --keep-best 2 --dry-run")  # Before: --keep-best alone deleted nothing.
    # val_acc top 2: ck0, ck3; loss top 2 (min): ck0, ck3. Configs have no leaderboard: not spoken of.
    assert dry.artifacts == sorted(a.artifact_id for a in (ck[1], ck[2], ck[4], ck[5]))
    assert set(dry.df["why not kept"]) == {"not in the top 2 by loss, val_acc; not pinned"}
    real = aeg(ip, "gc --keep-best 2")
    assert real.artifacts == dry.artifacts


def test_keep_best_zero_lets_the_leaders_go(ip: Any, sweep: dict[str, Any]) -> None:
    ck = sweep["ckpt"]
    dry = aeg(ip, "gc --keep-last 1 --keep-best 0 --dry-run")
    assert dry.artifacts == sorted(a.artifact_id for a in ck[:5])
    assert sweep["note"].artifact_id not in dry.artifacts  # pins are still kept


def test_gc_help_reads_as_what_the_rules_do(ip: Any, capsys: Any) -> None:
    aeg(ip, "gc -h")
    out = " ".join(capsys.readouterr().out.split())
    assert "keep the N newest artifacts of each kind" in out
    assert "keep the top N of every leaderboard" in out
    assert "pinned artifacts and each leaderboard's leader are always kept" in out


def test_a_report_without_rules_frees_only_blobs(ip: Any, sweep: dict[str, Any]) -> None:
    report = aeg(ip, "gc --dry-run")
    assert isinstance(report, GcReport) and report.artifacts == [] and report.df.empty
