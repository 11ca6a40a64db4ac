"""Artifacts: saving, dedup, lookup, search/best/list, scopes, pins, gc, verify, bad input."""

from __future__ import annotations

import json
import math
import os
import stat
from pathlib import Path

import pyarrow as pa
import pytest
from conftest import run

import aeg_jupyter
from aeg_jupyter import AmbiguousIdError, CorruptionError, InvalidInputError, NotFoundError
from aeg_jupyter.base.hashing import hash_bytes
from aeg_jupyter.base.ids import new_ts_id, observe
from aeg_jupyter.storage.schemas2 import INLINE_MAX


def blob_files(root: str) -> list[str]:
    out = []
    for dirpath, _dirs, files in os.walk(os.path.join(root, "blobs")):
        out.extend(os.path.join(dirpath, f) for f in files)
    return out


def test_same_bytes_twice_two_artifacts_one_blob(context, tmp_path):
    arts = context.artifacts()
    f = tmp_path / "a.bin"
    f.write_bytes(b"same bytes" * 1000)
    a1 = run(arts.save_file(f, kind="data"))
    a2 = run(arts.save_file(f, kind="data"))
    assert a1.artifact_id != a2.artifact_id and a1.uri == a2.uri
    [blob] = blob_files(context.store.root)
    digest = hash_bytes(f.read_bytes())
    assert a1.uri == f"cas://blake3/{digest}"
    assert blob.endswith(os.path.join(digest[:2], digest[2:]))
    assert not os.stat(blob).st_mode & 0o222  # read-only


def test_large_file_parallel_path_and_dedup(context, tmp_path):
    arts = context.artifacts()
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(9 << 20))  # above the parallel threshold
    a1 = run(arts.save_file(big, kind="data"))
    assert a1.blob_id == hash_bytes(big.read_bytes()) and a1.size == 9 << 20
    before = sorted(blob_files(context.store.root))
    a2 = run(arts.save_file(big, kind="data"))
    assert a2.uri == a1.uri and sorted(blob_files(context.store.root)) == before
    assert os.listdir(context.store.blobs.tmp_dir) == []


def test_writer_commits_on_exit_and_leaves_nothing_on_error(context):
    arts = context.artifacts()

    rest = b"r" * INLINE_MAX  # over INLINE_MAX in all: a blob file in both formats

    async def ok():
        async with arts.writer(kind="plot", planned_ext=".png", labels={"exp": "A"}) as w:
            w.write(b"\x89PNG")
            w.write(memoryview(rest))
        return arts.last_artifact

    art = run(ok())
    assert art.name == "plot.png" and art.mime == "image/png" and art.size == 4 + len(rest)
    assert run(arts.load_bytes(art)) == b"\x89PNG" + rest

    async def boom(data: bytes):
        async with arts.writer(kind="plot", planned_ext="png") as w:
            w.write(data)
            raise RuntimeError("cell failed")

    for partial in (b"partial", b"p" * (INLINE_MAX + 1)):  # inline-sized (format 2) and a blob file
        with pytest.raises(RuntimeError):
            run(boom(partial))
        assert not context.store.blobs.available(hash_bytes(partial))  # neither a blob file nor a row
    assert [a.artifact_id for a in run(arts.list(kind="plot"))] == [art.artifact_id]
    assert arts.last_artifact == art
    assert os.listdir(context.store.blobs.tmp_dir) == []
    assert blob_files(context.store.root) == [context.store.blobs.path(art.blob_id)]


def test_save_dir_and_as_local_dir(context, tmp_path):
    arts = context.artifacts()
    d = tmp_path / "run1"
    (d / "sub").mkdir(parents=True)
    (d / "a.txt").write_text("A")
    (d / "sub" / "b.txt").write_text("B")
    (d / "empty").mkdir()
    (d / "link").symlink_to("/")  # never followed out of the directory
    art = run(arts.save_dir(d, kind="model", metrics={"val_acc": 0.5}))
    assert art.is_dir and art.size == 2 and art.name == "run1"
    out = run(arts.as_local_dir(art))
    assert os.path.basename(out) == "run1"
    assert Path(out, "a.txt").read_text() == "A"
    assert Path(out, "sub", "b.txt").read_text() == "B"
    assert os.path.isdir(os.path.join(out, "empty"))
    assert not os.path.exists(os.path.join(out, "link"))
    assert [e["path"] for e in context.store.artifacts.manifest(art)] == ["a.txt", "empty/", "sub/b.txt"]
    assert run(arts.as_local_dir(art.artifact_id)) == out
    with pytest.raises(InvalidInputError, match="directory; use as_local_dir"):
        run(arts.as_local_file(art))


@pytest.mark.parametrize("size", [100, INLINE_MAX + 1])  # inline in its row on format 2 / a blob file
def test_local_file_is_a_read_only_copy_with_original_name(context, tmp_path, size):
    arts = context.artifacts()
    f = tmp_path / "weights.npz"
    f.write_bytes(b"w" * size)
    art = run(arts.save_file(f, kind="checkpoint"))
    p = run(arts.as_local_file(art))
    assert os.path.basename(p) == "weights.npz"
    blob = context.store.blobs.path(art.blob_id)
    if context.store.format == 2 and size <= INLINE_MAX:
        assert not os.path.exists(blob)  # the content is in the row; the copy is made from it
    else:
        assert os.stat(p).st_ino != os.stat(blob).st_ino  # never the blob itself
    with open(p, "rb") as copy:
        assert copy.read() == b"w" * size
    assert run(arts.as_local_file(art.uri)) == p
    assert run(arts.as_local_file(art.artifact_id[:12])) == p
    assert not os.stat(p).st_mode & stat.S_IWUSR


def test_json_text_bytes_roundtrip(context):
    arts = context.artifacts()
    j = run(arts.save_json({"lr": 1e-3, "layers": [1, 2], "name": "ü"}))
    t = run(arts.save_text("héllo\n"))
    b = run(arts.save_bytes(b"\x00\x01", name="raw.bin"))
    assert (j.kind, t.kind, b.kind) == ("json", "text", "bytes")
    assert run(arts.load_json(j)) == {"lr": 1e-3, "layers": [1, 2], "name": "ü"}
    assert run(arts.load_text(t.artifact_id)) == "héllo\n"
    assert run(arts.load_bytes(b.uri)) == b"\x00\x01"
    assert j.mime == "application/json" and t.mime.startswith("text/plain") and b.name == "raw.bin"


def test_get_by_prefix_short_id_and_ambiguity(context):
    arts = context.artifacts()
    saved = [run(arts.save_text(f"t{i}")) for i in range(3)]
    a = saved[0]
    assert run(arts.get(a.artifact_id)) == a
    assert run(arts.get(a.artifact_id.lower())) == a
    assert run(arts.get(a.short_id)) == a
    with pytest.raises(AmbiguousIdError, match="matches 3 artifacts"):
        run(arts.get(a.artifact_id[:4]))
    with pytest.raises(NotFoundError, match="no artifact with id"):
        run(arts.get("ZZZZZZZZZZ"))
    with pytest.raises(InvalidInputError, match="not an artifact id"):
        run(arts.get("../../etc/passwd"))
    with pytest.raises(InvalidInputError, match="not a valid content address"):
        run(arts.as_local_file("cas://blake3/../../x"))
    # the id index built by the lookups above follows later saves and deletes
    # saved a millisecond after the others (through the logical clock: an earlier test may have moved it
    # ahead of the wall clock), so that the prefix below is its own: ids of one millisecond differ only
    # in their last characters
    observe(new_ts_id()[0] + 2_000)
    later = run(arts.save_text("later"))
    assert run(arts.get(later.short_id)) == later and run(arts.get(later.artifact_id[-6:])) == later
    assert run(arts.get(later.artifact_id[:-3])) == later
    context.store.artifacts.delete(saved[1].artifact_id)
    with pytest.raises(NotFoundError):
        run(arts.get(saved[1].short_id))
    assert run(arts.get(saved[2].short_id)) == saved[2]


def test_search_labels_metric_rank_and_limit(context):
    arts = context.artifacts()
    specs = [("A", 0.7), ("A", 0.9), ("B", 0.95), ("A", 0.9), ("A", None)]
    saved = []
    for exp, acc in specs:
        saved.append(
            run(
                arts.save_json(
                    {"exp": exp},
                    kind="checkpoint",
                    labels={"exp": exp},
                    metrics={} if acc is None else {"val_acc": acc},
                )
            )
        )
    hits = run(arts.search(kind="checkpoint", labels={"exp": "A"}))
    assert [h.artifact_id for h in hits] == [saved[i].artifact_id for i in (4, 3, 1, 0)]  # newest first
    ranked = run(arts.search(kind="checkpoint", labels={"exp": "A"}, metric="val_acc"))
    assert [h.artifact_id for h in ranked] == [saved[i].artifact_id for i in (3, 1, 0)]  # tie -> newest first
    low = run(arts.search(kind="checkpoint", metric="val_acc", mode="min", limit=2))
    assert [h.metrics["val_acc"] for h in low] == [0.7, 0.9]
    assert list(hits.df.columns[:10]) == [
        "artifact_id", "kind", "name", "uri", "created_at", "run_id", "graph_id", "node_id", "pinned", "size",
    ]  # fmt: skip
    assert "label.exp" in hits.df.columns and str(hits.df["created_at"].dt.tz) == "UTC"
    assert ranked.df["metric.val_acc"].dtype == "float64"
    assert "<table" in hits._repr_html_()


def test_the_block_built_frame_is_the_frame_pandas_would_build(context):
    """``.df`` is built from blocks (neighbouring metric and label columns in one 2-D block, a shared
    column index): it must equal pandas' own frame of the same columns, dtype for dtype, and one
    frame's edits must not reach another."""
    import pandas as pd

    arts = context.artifacts()
    for i in range(4):
        run(arts.save_json({"i": i}, kind="ckpt", labels={"exp": f"E{i % 2}", "seed": i, "best": i == 3},
                           metrics={"loss": 1 / (i + 1), "acc": i / 4} if i else {"acc": 0.0}))  # fmt: skip
    hits = run(arts.search(kind="ckpt"))
    df = hits.df
    items = list(hits)
    columns = {
        **{c: pd.Series([getattr(a, c) for a in items], dtype="str")
           for c in ("artifact_id", "kind", "name", "uri")},
        "created_at": pd.to_datetime([a.created_at for a in items], utc=True).as_unit("us"),
        **{c: pd.Series([getattr(a, c) for a in items], dtype="str") for c in ("run_id", "graph_id", "node_id")},
        "pinned": [a.pinned for a in items],
        "size": pd.Series([a.size for a in items], dtype="int64"),
        **{f"label.{k}": pd.Series([a.labels.get(k) for a in items], dtype=object) for k in ("best", "exp", "seed")},
        **{f"metric.{k}": pd.Series([a.metrics.get(k) for a in items], dtype="float64") for k in ("acc", "loss")},
    }  # fmt: skip
    pd.testing.assert_frame_equal(df, pd.DataFrame(columns))
    assert df["label.best"].iloc[0] is True and math.isnan(df["metric.loss"].iloc[-1])
    again = hits.df
    df.loc[0, "metric.acc"] = 99.0
    df["label.exp"] = "changed"
    assert again["metric.acc"].iloc[0] == 0.75 and again["label.exp"].iloc[0] == "E1"
    assert list(again.columns) == list(df.columns)
    again.columns.name = "field"  # the column index is shared by value only: a name stays on its frame
    assert hits.df.columns.name is None and df.columns.name is None


def test_best_ties_nan_filters_and_empty(context):
    arts = context.artifacts()
    a = run(arts.save_text("a", kind="ckpt", labels={"exp": "A"}, metrics={"loss": 0.5}))
    b = run(arts.save_text("b", kind="ckpt", labels={"exp": "B"}, metrics={"loss": 0.2}))
    c = run(arts.save_text("c", kind="ckpt", labels={"exp": "A"}, metrics={"loss": 0.5}))
    assert run(arts.best(kind="ckpt", metric="loss", mode="min")) == b
    assert run(arts.best(kind="ckpt", metric="loss", mode="max")) == c  # tie goes to the newest
    assert run(arts.best(kind="ckpt", metric="loss", mode="min", filters={"exp": "A"})) == c
    assert run(arts.best(kind="ckpt", metric="missing")) is None
    assert run(arts.best(kind="nothing", metric="loss")) is None
    assert a.artifact_id != c.artifact_id


@pytest.mark.parametrize("ranking_min", [1, 10**9])  # the ranking walk / scoring the pool
def test_nan_or_junk_stored_by_another_writer_never_wins(tmp_path, monkeypatch, ranking_min):
    """Metrics are validated finite on save; a NaN or a string that reached the table anyway is ignored.

    Format 1's object catalog and its rankings (format 2: the next test)."""
    monkeypatch.setattr("aeg_jupyter.core.ranking.RANKING_MIN", ranking_min)
    store = aeg_jupyter.Store(str(tmp_path / "s"), format=1)
    idx = store.artifacts
    good = idx.save_text("x", kind="ckpt", metrics={"m": 1.0})
    bad = idx.save_text("y", kind="ckpt", metrics={"m": 0.0})
    object.__setattr__(bad, "metrics", {"m": math.nan})
    assert idx.best(kind="ckpt", metric="m") == good
    assert idx.best(kind="ckpt", metric="m", mode="min") == good
    assert idx.search(kind="ckpt", metric="m", limit=5) == [good]
    if ranking_min == 1:  # a string where a number belongs: skipped by the ranking
        junk = idx.save_text("z", kind="ckpt", metrics={"m": 2.0})
        object.__setattr__(junk, "metrics", {"m": "high"})
        idx.catalog.rankings.clear()
        assert idx.best(kind="ckpt", metric="m") == good
    store.close()


@pytest.mark.parametrize("metric", ["m", "M"])  # a flat metric.m column / the map only (a capital letter)
def test_a_nan_committed_by_another_writer_never_wins_on_format_2(tmp_path, metric):
    """Format 2: a NaN that reached the Delta table (another writer's commit, not our save path) is ignored."""
    from aeg_jupyter.base.ids import new_ts_id
    from aeg_jupyter.storage.schemas2 import artifact_rows_to_arrow

    root = str(tmp_path / "s")
    with aeg_jupyter.Store(root, format=2) as store:
        idx = store.artifacts
        good = idx.save_text("x", kind="ckpt", metrics={metric: 1.0})
        low = idx.save_text("y", kind="ckpt", metrics={metric: 0.5})
        store.flush()
        ts, aid = new_ts_id()  # the newest row: it would win every tie
        row = {"artifact_id": aid, "kind": "ckpt", "created_at": ts, "uri": good.uri, "size": good.size,
               "metrics": {metric: 0.0}}  # fmt: skip
        table = artifact_rows_to_arrow([row])  # our codec drops a NaN: a foreign writer puts it in the columns
        i = table.schema.get_field_index("metrics")
        table = table.set_column(i, "metrics", pa.array([[(metric, math.nan)]], type=table.schema.field(i).type))
        if f"metric.{metric}" in table.schema.names:
            j = table.schema.get_field_index(f"metric.{metric}")
            table = table.set_column(j, f"metric.{metric}", pa.array([math.nan]))
        assert store.artifact_table.delta.commit(table, app_id="another-writer", seq=0)
    with aeg_jupyter.Store(root, format=2) as store:
        idx = store.artifacts
        assert len(idx.list(kind="ckpt")) == 3  # the row is there
        assert idx.best(kind="ckpt", metric=metric) == good
        assert idx.best(kind="ckpt", metric=metric, mode="min") == low
        assert idx.search(kind="ckpt", metric=metric, limit=5) == [good, low]
        assert idx.search(kind="ckpt", metric=metric, mode="min", limit=5) == [low, good]


def test_scopes_run_graph_node_all(store_root):
    c1 = aeg_jupyter.connect(store_root, graph_id="nb1.ipynb")
    a1 = run(c1.artifacts().save_text("one"))
    c1.node_id = "cell-2"
    a2 = run(c1.artifacts().save_text("two"))
    c2 = aeg_jupyter.connect(store_root, graph_id="nb2.ipynb")
    b1 = run(c2.artifacts().save_text("three"))
    arts1 = c1.artifacts()

    def ids(scope):
        return [a.artifact_id for a in run(arts1.list(scope=scope))]

    assert ids("run") == [a2.artifact_id, a1.artifact_id]
    assert ids("node") == [a2.artifact_id]
    assert ids("graph") == [a2.artifact_id, a1.artifact_id]
    assert ids("all") == [b1.artifact_id, a2.artifact_id, a1.artifact_id]
    with pytest.raises(InvalidInputError, match="unknown scope 'session'; use one of 'node', 'graph', 'run', 'all'"):
        run(arts1.list(scope="session"))
    c1.close()


def test_pin_unpin_persist_across_reopen(store_root):
    ctx = aeg_jupyter.connect(store_root)
    arts = ctx.artifacts()
    a = run(arts.save_text("keep me"))
    b = run(arts.save_text("pinned at save", pin=True))
    run(arts.pin(artifact_id=a.artifact_id))
    run(arts.unpin(b))
    ctx.close()
    ctx2 = aeg_jupyter.connect(store_root)
    arts2 = ctx2.artifacts()
    assert run(arts2.get(a.artifact_id)).pinned is True
    assert run(arts2.get(b.artifact_id)).pinned is False
    ctx2.close()


@pytest.mark.parametrize("pad", [0, INLINE_MAX])  # small (inline in its row on format 2) / blob files in both
def test_delete_and_gc_free_exactly_what_dry_run_reported(context, monkeypatch, pad):
    import aeg_jupyter.core.maintenance as maintenance_mod

    monkeypatch.setattr(maintenance_mod, "GC_GRACE_SECONDS", -1.0)
    arts = context.artifacts()
    text = [f"old {i}" + "." * pad for i in range(3)]
    keep = run(arts.save_text("pinned", kind="note", pin=True))
    old = [run(arts.save_text(t, kind="note")) for t in text]
    shared = run(arts.save_text(text[0], kind="other"))  # same bytes as old[0], different artifact
    with pytest.raises(InvalidInputError, match="pinned; unpin it first"):
        run(arts.delete(keep))
    dry = run(arts.gc(keep_last=1))
    assert dry.dry_run and set(dry.artifacts) == {old[0].artifact_id, old[1].artifact_id}
    # a blob file goes; inline content (format 2, at most INLINE_MAX bytes) has no file: it goes with its row
    inline = context.store.format == 2 and len(text[1]) <= INLINE_MAX
    freed = [] if inline else [old[1].blob_id]
    assert dry.blobs == freed and dry.bytes_freed == (0 if inline else len(text[1]))
    real = run(arts.gc(dry_run=False, keep_last=1))
    assert (real.artifacts, real.blobs, real.bytes_freed) == (dry.artifacts, dry.blobs, dry.bytes_freed)
    assert not os.path.exists(context.store.blobs.path(old[1].blob_id))
    assert run(arts.load_text(shared)) == text[0] and run(arts.load_text(keep)) == "pinned"
    with pytest.raises(NotFoundError, match="was deleted"):
        run(arts.get(old[1].artifact_id))
    said = {0: "1 blobs, 5 B (5 bytes)", INLINE_MAX: "1 blobs, 4.0 KiB (4101 bytes)"}[pad]
    if inline:
        said = "0 blobs, 0 B (0 bytes)"
    assert real.summary() == f"gc freed 2 artifacts, {said}"
    assert str(real).startswith(real.summary() + ":\n") and old[1].short_id in str(real)  # and the table


def test_gc_older_than_keeps_recent_and_grace_protects_new_blobs(context):
    arts = context.artifacts()
    run(arts.save_text("fresh"))
    report = run(arts.gc(dry_run=False, older_than="1h"))
    assert report.artifacts == [] and report.blobs == []  # nothing old; new blobs inside the grace period
    with pytest.raises(InvalidInputError, match="write it like '30m'"):
        run(arts.gc(older_than="yesterday"))


def test_verify_reports_and_repairs_corruption(context):
    """Damaged blob files (format 2's damaged inline cells: tests/format2/test_inline.py)."""
    arts = context.artifacts()
    rot = "will rot" + "." * INLINE_MAX  # a blob file in both formats
    good = run(arts.save_text("fine"))
    bad = run(arts.save_text(rot))
    path = context.store.blobs.path(bad.blob_id)
    os.chmod(path, 0o644)
    with open(path, "r+b") as f:
        f.write(b"W")
    report = run(arts.verify())
    assert not report.ok and report.corrupt == [bad.blob_id] and report.checked == 2
    with pytest.raises(CorruptionError, match=bad.artifact_id):
        run(arts.load_bytes(bad, verify=True))
    with pytest.raises(CorruptionError, match=bad.artifact_id):
        run(arts.as_local_file(bad, verify=True))
    repaired = run(arts.verify(repair=True))
    assert len(repaired.moved_aside) == 1
    after = run(arts.verify())
    assert after.corrupt == [] and after.missing == [(bad.artifact_id, bad.blob_id)]
    again = run(arts.save_text(rot))  # saving the bytes again heals the store
    assert again.uri == bad.uri and run(arts.verify()).ok
    assert run(arts.load_text(good, verify=True)) == "fine"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda a, t: a.save_file(t / "nope.txt", kind="x"), "no such file"),
        (lambda a, t: a.save_file(t, kind="x"), "is a directory; use save_dir"),
        (lambda a, t: a.save_dir(t / "f.txt", kind="x"), "is a file; use save_file"),
        (lambda a, t: a.save_json({"s": {1, 2}}), "Object of type set is not JSON serializable"),
        (lambda a, t: a.save_text("x", metrics={"acc": math.nan}), "metric 'acc' is nan; metrics must be finite"),
        (lambda a, t: a.save_text("x", metrics={"acc": "high"}), "metric 'acc' must be a number"),
        (lambda a, t: a.save_text("x", labels={"exp": [1]}), "label 'exp' has a list value"),
        (lambda a, t: a.save_text("x", kind=""), "kind must be a non-empty string"),
        (lambda a, t: a.save_text("x", kind=3), "kind must be a non-empty string"),
        (lambda a, t: a.save_text(b"x"), "save_text takes a str"),
        (lambda a, t: a.get("01NOTANID"), "no artifact with id"),
        (lambda a, t: a.load_bytes("cas://blake3/../../etc/passwd"), "not a valid content address"),
        (lambda a, t: a.search(scope="everything"), "unknown scope"),
        (lambda a, t: a.search(limit=-1), "limit must be a non-negative integer"),
        (lambda a, t: a.best(kind="x", metric="m", mode="top"), "mode must be 'max' or 'min'"),
    ],
)
def test_bad_input_is_a_clear_error_and_changes_nothing(context, tmp_path, call, message):
    (tmp_path / "f.txt").write_text("f")
    arts = context.artifacts()
    run(arts.save_text("baseline"))
    before = (sorted(blob_files(context.store.root)), len(context.store.artifacts))
    with pytest.raises(aeg_jupyter.AegError) as err:
        run(call(arts, tmp_path))
    assert message in str(err.value)
    assert (sorted(blob_files(context.store.root)), len(context.store.artifacts)) == before


def test_store_root_that_is_a_file_or_foreign_dir_or_newer_format(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(InvalidInputError, match="is a file; point the store at a directory"):
        aeg_jupyter.connect(f)
    foreign = tmp_path / "home"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("x")
    with pytest.raises(aeg_jupyter.StoreFormatError, match="not an aeg store"):
        aeg_jupyter.connect(foreign)
    newer = tmp_path / "newer"
    newer.mkdir()
    (newer / "aeg-store.json").write_text(json.dumps({"format": 3}))  # a format no release knows yet
    with pytest.raises(aeg_jupyter.StoreFormatError, match=r"has format 3.*upgrade with `pip install -U aeg-jupyter`"):
        aeg_jupyter.connect(newer)
    assert json.loads((newer / "aeg-store.json").read_text()) == {"format": 3}  # never overwritten


def test_reopen_sees_everything_and_artifact_repr_escapes(store_root):
    ctx = aeg_jupyter.connect(store_root)
    a = run(ctx.artifacts().save_text("x", labels={"note": "<img src=x onerror=alert(1)>"}))
    ctx.close()
    ctx2 = aeg_jupyter.connect(store_root)
    got = run(ctx2.artifacts().get(a.artifact_id))
    assert got == a
    html = got._repr_html_()
    assert "<img" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    ctx2.close()


@pytest.mark.parametrize("ranking_min", [1, 10**9])  # the ranking walk / scoring the pool
def test_ranked_search_and_best_match_a_brute_force_ranking(context, monkeypatch, ranking_min):
    """Ranked queries answer from a cached per-(kind, metric) ranking kept up to date by saves;
    whichever path answers, the result is the brute-force one: best first, ties to the newest,
    NaN and missing metrics left out, deletes and pins seen."""
    import random

    from aeg_jupyter.core import ranking as A
    from aeg_jupyter.core.leaderboard import ranked

    monkeypatch.setattr(A, "RANKING_MIN", ranking_min)
    monkeypatch.setattr(A.Ranking, "FOLD", 7)  # fold new saves into the sorted list often
    idx = context.store.artifacts
    rng = random.Random(5)

    def save(i: int) -> None:
        metrics = {"acc": rng.choice([0.1, 0.5, 0.5, 0.9, rng.random()])} if i % 9 else {}
        idx.save_json({"i": i}, kind="ckpt", labels={"exp": rng.choice("ABC")}, metrics=metrics)

    def brute(mode: str, labels: dict[str, str] | None, limit: int) -> list[str]:
        pool = [a for a in idx.list(kind="ckpt") if not labels or a.labels.get("exp") == labels["exp"]]
        scored = [a for a in pool if "acc" in a.metrics and not math.isnan(a.metrics["acc"])]
        sign = 1 if mode == "max" else -1
        scored.sort(key=lambda a: (sign * a.metrics["acc"], a.created_at, a.artifact_id), reverse=True)
        return [a.artifact_id for a in scored[:limit]]

    def check() -> None:
        for mode in ("max", "min"):
            for labels in (None, {"exp": "B"}):
                for limit in (1, 5, 1000):
                    got = idx.search(kind="ckpt", labels=labels, metric="acc", mode=mode, limit=limit)
                    assert [a.artifact_id for a in got] == brute(mode, labels, limit), (mode, labels, limit)
                best = idx.best(kind="ckpt", metric="acc", mode=mode, filters=labels)
                assert [best.artifact_id] == brute(mode, labels, 1)
                walked = idx.iter_ranked(kind="ckpt", metric="acc", mode=mode, labels=labels)
                assert [a.artifact_id for a in walked] == brute(mode, labels, 10**6)
            # a leaderboard grouped by a label walks the ranking: the best of each group, in rank order
            grouped = ranked(idx, kind="ckpt", metric="acc", mode=mode, group_by="exp", limit=None)
            firsts: dict[str, str] = {}
            for aid in brute(mode, None, 10**6):
                firsts.setdefault(idx.get(aid).labels["exp"], aid)
            assert [a.artifact_id for a in grouped] == list(firsts.values())

    for i in range(60):
        save(i)
    check()  # builds the rankings
    for i in range(60, 100):  # new saves reach the rankings (pending, then folded)
        save(i)
    check()
    top = idx.search(kind="ckpt", metric="acc", limit=3)
    idx.delete(top[0].artifact_id)  # a deleted artifact drops out
    idx.pin(top[1].artifact_id)  # a pinned one is returned as pinned
    check()
    assert idx.search(kind="ckpt", metric="acc", limit=1)[0].pinned
