"""A format-2 store answers through the columnar catalog (core/catalog2.py, ColumnarSearch) exactly
as a format-1 store answers through its object catalog: the same saves, pins and deletes go to a
real store of each format, and every query (the core API's, the tutorial's async calls, the
magics' commands in a real IPython shell) is asked of both and compared, ids mapped to the order
of their saves. Half of the rows are committed, half still in the spool when the queries run.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
from typing import Any

import pytest
from conftest import run_child
from IPython.core.error import UsageError

from aeg_jupyter.api.context import connect
from aeg_jupyter.base.errors import AmbiguousIdError
from aeg_jupyter.base.models import Artifact, Provenance, ScopeFilter
from aeg_jupyter.core.catalog import Catalog
from aeg_jupyter.core.catalog2 import DeltaCatalog
from aeg_jupyter.core.store import Store, open_store

_ID = re.compile(r"\b[0-9A-HJKMNP-TV-Z]{26}\b")


class Ids:
    """Artifact ids -> their save order (ids differ between the two stores; the order does not)."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}

    def add(self, art: Artifact) -> None:
        self.index[art.artifact_id] = len(self.index)

    def short(self) -> dict[str, int]:
        return {aid[-8:]: i for aid, i in self.index.items()}

    def norm(self, x: Any) -> Any:
        if isinstance(x, Artifact):
            return (self.index.get(x.artifact_id, x.artifact_id), x.kind, x.pinned, sorted(x.labels.items(), key=repr),
                    sorted(x.metrics.items()), x.name, x.uri, x.size, x.node_id)  # fmt: skip
        if isinstance(x, str) and x in self.index:
            return ("id", self.index[x])
        if isinstance(x, list | tuple):
            return [self.norm(v) for v in x]
        if isinstance(x, BaseException):
            return (type(x).__name__, _ID.sub(lambda m: f"<{self.index.get(m.group(0), '?')}>", str(x)))
        return x


def _populate(store: Store, ids: Ids, n: int = 160) -> list[Artifact]:
    """``n`` saves of three kinds in three runs (labels of every type, ties, a capitalised metric),
    a flush half-way, then pins, unpins and deletes (some before, some after the flush)."""
    rng = random.Random(1818)
    arts = store.artifacts
    saved: list[Artifact] = []
    for i in range(n):
        kind = ("checkpoint", "checkpoint", "report", "config")[i % 4]
        labels: dict[str, Any] = {"exp": rng.choice("AB"), "seed": rng.randrange(3)}
        if i % 5 == 0:
            labels["flag"] = rng.choice([True, False, 1, 1.0, "1"])  # True is not 1; 1 is 1.0; "1" is neither
        if i % 9 == 0:
            labels["odd key"] = "x"  # not an identifier: map-only in format 2
        metrics: dict[str, float] = {"val_acc": round(rng.random(), 1)} if kind != "config" else {}  # ties
        if i % 3 == 0:
            metrics["loss"] = round(rng.random(), 2)
        if i % 7 == 0:
            metrics["BLEU"] = rng.random()  # a capital: map-only in format 2
        origin = Provenance(run_id=f"run{i % 3}", graph_id="nb", node_id=f"cell{i % 4}")
        if i % 2:
            art = arts.save_json({"i": i}, kind=kind, labels=labels, metrics=metrics, origin=origin)
        else:
            art = arts.save_text(f"text {i % 10}", kind=kind, labels=labels, metrics=metrics, origin=origin)
        ids.add(art)
        saved.append(art)
        if i == n // 2:
            store.flush()  # what follows stays in this writer's spool (pending rows)
            for a in saved[::17]:
                arts.pin(a.artifact_id)
            for a in saved[5::23]:
                if not arts.get(a.artifact_id).pinned:
                    arts.delete(a.artifact_id)
    for a in saved[::17][::2]:
        arts.pin(a.artifact_id, False)
    for a in saved[n // 2 + 3 :: 19]:
        arts.delete(a.artifact_id)
    return saved


def _queries(store: Store, saved: list[Artifact]) -> dict[str, Any]:
    """Every query of the core API, answered (or the error raised), by name."""
    arts = store.artifacts
    out: dict[str, Any] = {}

    def ask(name: str, fn: Any) -> None:
        try:
            out[name] = fn()
        except Exception as exc:  # the error is part of the answer
            out[name] = exc

    ask("len", lambda: len(arts))
    ask("kinds", arts.kinds)
    ask("metric_names", arts.metric_names)
    for kind in ("checkpoint", "report", "config", "nope"):
        ask(f"metric_names {kind}", lambda kind=kind: arts.metric_names(kind))
        ask(f"list {kind}", lambda kind=kind: list(arts.list(kind=kind)))
        ask(f"list {kind} 5", lambda kind=kind: list(arts.list(kind=kind, limit=5)))
    ask("list", lambda: list(arts.list()))
    ask("list 7", lambda: list(arts.list(limit=7)))
    for run in ("run0", "run2", "nope"):
        ask(f"list {run}", lambda run=run: list(arts.list(where=ScopeFilter(run_id=run))))
    ask("list node", lambda: list(arts.list(kind="checkpoint", where=ScopeFilter(run_id="run1", node_id="cell3"))))
    label_sets: list[dict[str, Any]] = [
        {"exp": "A"}, {"seed": 2}, {"seed": 2.0}, {"exp": "B", "seed": 0}, {"flag": True}, {"flag": 1},
        {"flag": 1.0}, {"flag": "1"}, {"flag": False}, {"odd key": "x"}, {"exp": "C"}, {"nokey": 1},
    ]  # fmt: skip
    for labels in label_sets:
        for kind in ("checkpoint", None):
            ask(f"search {kind} {labels}", lambda kind=kind, labels=labels: list(arts.search(kind=kind, labels=labels)))
            ask(f"search {kind} {labels} 3", lambda kind=kind, labels=labels: list(arts.search(kind=kind, labels=labels, limit=3)))  # fmt: skip
    for metric in ("val_acc", "loss", "BLEU", "nope"):
        for mode in ("max", "min"):
            for kind in ("checkpoint", "report"):
                ask(f"rank {kind} {metric} {mode}", lambda k=kind, m=metric, o=mode: list(arts.search(kind=k, metric=m, mode=o)))  # fmt: skip
                ask(f"rank {kind} {metric} {mode} 4", lambda k=kind, m=metric, o=mode: list(arts.search(kind=k, metric=m, mode=o, limit=4)))  # fmt: skip
                ask(f"rank {kind} {metric} {mode} A", lambda k=kind, m=metric, o=mode: list(arts.search(kind=k, metric=m, mode=o, labels={"exp": "A"}, limit=4)))  # fmt: skip
                ask(f"best {kind} {metric} {mode}", lambda k=kind, m=metric, o=mode: arts.best(kind=k, metric=m, mode=o))  # fmt: skip
                ask(f"best {kind} {metric} {mode} f", lambda k=kind, m=metric, o=mode: arts.best(kind=k, metric=m, mode=o, filters={"seed": 1}))  # fmt: skip
                ask(f"best {kind} {metric} {mode} run", lambda k=kind, m=metric, o=mode: arts.best(kind=k, metric=m, mode=o, where=ScopeFilter(run_id="run2")))  # fmt: skip
                ask(f"iter {kind} {metric} {mode}", lambda k=kind, m=metric, o=mode: list(arts.iter_ranked(kind=k, metric=m, mode=o, labels={"exp": "B"})))  # fmt: skip
    ask("rank all kinds", lambda: list(arts.search(metric="val_acc", limit=6)))
    ask("best bad metric", lambda: arts.best(kind="checkpoint", metric=""))
    ask("search bad kind", lambda: arts.search(kind=""))
    ask("search bad labels", lambda: arts.search(kind="checkpoint", labels={"exp": [1]}))
    deleted = [a for a in saved[5::23]]
    for i, a in enumerate(saved[::13]):
        ask(f"get {i}", lambda a=a: arts.get(a.artifact_id))
        ask(f"get prefix {i}", lambda a=a: _prefix_lookup(store, saved, a.artifact_id[:22]))
        ask(f"get short {i}", lambda a=a: arts.get(a.artifact_id[-8:]))
        ask(f"get uri {i}", lambda a=a: arts.get(a.uri))
    ask("get deleted", lambda: arts.get(deleted[0].artifact_id))
    ask("get missing", lambda: arts.get("01ZZZZZZZZZZZZZZZZZZZZZZZZ"))
    ask("get ambiguous", lambda: arts.get(saved[0].artifact_id[:4]))
    ask("gc plan", lambda: sorted(arts.gc(dry_run=True, keep_last=3).artifacts))
    return out


def _prefix_lookup(store: Store, saved: list[Artifact], prefix: str) -> bool:
    """``get`` of an id prefix (lower case) answers as this store's own ids say: the one live artifact
    with it, else an ambiguity naming how many (ids differ between stores, so this is compared)."""
    gone = store.artifacts.catalog.deleted
    want = [a.artifact_id for a in saved if a.artifact_id.startswith(prefix) and a.artifact_id not in gone]
    try:
        got = store.artifacts.get(prefix.lower())
        return len(want) == 1 and got.artifact_id == want[0]
    except AmbiguousIdError as exc:
        return len(want) > 1 and f"matches {len(want)} artifacts" in str(exc)


def _answers(fmt: int, root: str) -> tuple[dict[str, Any], Ids, Store]:
    ids = Ids()
    store = Store(root, format=fmt, flush_rows=10_000)
    saved = _populate(store, ids)
    return _queries(store, saved), ids, store


def _compare(a: dict[str, Any], ids_a: Ids, b: dict[str, Any], ids_b: Ids) -> None:
    assert a.keys() == b.keys()
    bad = [k for k in a if ids_a.norm(a[k]) != ids_b.norm(b[k])]
    assert not bad, [(k, ids_a.norm(a[k]), ids_b.norm(b[k])) for k in bad[:3]]


def test_every_query_of_the_core_api_agrees_with_format_1(tmp_path: Any) -> None:
    one, ids1, s1 = _answers(1, str(tmp_path / "f1"))
    two, ids2, s2 = _answers(2, str(tmp_path / "f2"))
    try:
        assert type(s1.artifacts.catalog) is Catalog and type(s2.artifacts.catalog) is DeltaCatalog
        assert len(one["list"]) > 100 and one["gc plan"], "the workload exercises the queries"
        assert isinstance(one["get deleted"], Exception) and isinstance(one["get ambiguous"], Exception)
        _compare(one, ids1, two, ids2)
        # and after every row is committed (this writer's spool flushed), and after a reopen
        s1.flush()
        s2.flush()
        s2.artifacts.catalog.refresh()
        saved1, saved2 = [list(i.index) for i in (ids1, ids2)]
        _compare(_queries(s1, _arts(s1, saved1)), ids1, _queries(s2, _arts(s2, saved2)), ids2)
    finally:
        s1.close()
        s2.close()
    with Store(str(tmp_path / "f1"), format=1) as r1, Store(str(tmp_path / "f2"), format=2) as r2:
        _compare(_queries(r1, _arts(r1, saved1)), ids1, _queries(r2, _arts(r2, saved2)), ids2)


def _arts(store: Store, ids: list[str]) -> list[Artifact]:
    """The saved artifacts, by id (deleted ones as they were saved: the queries only use ids and URIs)."""
    by_id = {a.artifact_id: a for a in store.artifacts.catalog.by_id.values()}
    by_id.update({a.artifact_id: a for a in store.artifacts.catalog.deleted.values()})
    return [by_id[i] for i in ids]


def test_the_format_2_open_builds_no_artifact_objects(tmp_path: Any) -> None:
    """Opening a format-2 store reads no artifact column; a query reads only its own columns."""
    root = str(tmp_path / "s")
    with Store(root, format=2) as store:
        for i in range(50):
            store.artifacts.save_json({"i": i}, kind="ckpt", labels={"exp": "AB"[i % 2]}, metrics={"acc": i / 50})
    with Store(root, format=2) as store:
        cat = store.artifacts.catalog
        assert isinstance(cat, DeltaCatalog)
        assert all(not seg.columns and not seg.built for seg in cat.columns._segments.values())
        assert store.artifacts.best(kind="ckpt", metric="acc", filters={"exp": "B"}).metrics["acc"] == 49 / 50
        # created_at is read only for the winner's row group (from its footer statistics), not whole
        assert set(cat.columns._segments["ckpt"].columns) == {"metric.acc", "label.exp.s"}
        assert len(cat.columns._segments["ckpt"].built) == 1  # only the answer became an Artifact


OTHER_WRITER = """
import sys, time
from aeg_jupyter.core.store import Store
with Store(sys.argv[1], format=2) as s:
    a = s.artifacts.save_json({"w": 2}, kind="ckpt", labels={"exp": "W"}, metrics={"acc": 2.0})
    print(a.artifact_id, flush=True)
    if sys.argv[2] == "pin":
        s.artifacts.pin(sys.argv[3])
        s.artifacts.delete(sys.argv[4])
    if sys.argv[2] == "flush":
        s.flush()
"""


def test_other_writers_spools_and_commits_are_followed(tmp_path: Any) -> None:
    root = str(tmp_path / "s")
    with Store(root, format=2) as store:
        arts = store.artifacts
        mine = [arts.save_json({"i": i}, kind="ckpt", labels={"exp": "M"}, metrics={"acc": i / 10}) for i in range(5)]
        assert arts.best(kind="ckpt", metric="acc").artifact_id == mine[-1].artifact_id
        # another process saves, pins one of ours and deletes another: its spool is tailed (it dies
        # without flushing: its close flushes, so the rows arrive committed or spooled, once either way)
        other = run_child(OTHER_WRITER, root, "pin", mine[0].artifact_id, mine[1].artifact_id).stdout.split()[0]
        assert arts.best(kind="ckpt", metric="acc").artifact_id == other
        assert arts.get(mine[0].artifact_id).pinned
        assert [a.artifact_id for a in arts.search(kind="ckpt", labels={"exp": "W"})] == [other]
        assert mine[1].artifact_id not in {a.artifact_id for a in arts.list()}
        assert len(arts) == 5  # 5 of ours + 1 of theirs - 1 deleted
        # a second writer that flushes: its commit is read once, not twice with its spool rows
        other2 = run_child(OTHER_WRITER, root, "flush").stdout.split()[0]
        listed = [a.artifact_id for a in arts.list(kind="ckpt")]
        assert listed.count(other2) == 1 and listed.count(other) == 1 and len(listed) == 6
        store.flush()
        store.artifacts.catalog.refresh()
        assert sorted(a.artifact_id for a in arts.list(kind="ckpt")) == sorted(listed)


def _tutorial(ctx: Any, report: str) -> dict[str, Any]:
    """The tutorial's artifact calls (docs/store-and-recall-tutorial.md, sections 1, 3 and 4), in order."""
    arts = ctx.artifacts()
    out: dict[str, Any] = {}

    async def go() -> None:
        for acc in (0.7, 0.9, 0.8):  # checkpoints for the "best so far" recipe
            await arts.save_json({"acc": acc}, kind="checkpoint", metrics={"val_acc": acc})
        art = await arts.save_file(path=report, kind="report", labels={"exp": "A"})
        with open(await arts.as_local_file(art), "rb") as f:
            out["as_local_file"] = f.read()
        async with arts.writer(kind="plot", planned_ext=".png") as w:
            w.write(b"\x89PNG\r\n\x1a\nfake")
        out["search"] = await arts.search(kind="report", labels={"exp": "A"})
        out["best"] = await arts.best(kind="checkpoint", metric="val_acc", mode="max", scope="run")
        out["best min"] = await arts.best(kind="checkpoint", metric="val_acc", mode="min", scope="run")
        cfg_art = await arts.save_json({"lr": 1e-3, "batch": 64})
        await arts.save_text("training finished ok")
        out["list run"] = await arts.list(scope="run")
        await arts.pin(artifact_id=cfg_art.artifact_id)
        out["list all"] = await arts.list(scope="all")
        out["get"] = await arts.get(cfg_art.artifact_id)

    asyncio.run(go())
    return out


def test_the_tutorials_artifact_calls_agree_with_format_1(tmp_path: Any) -> None:
    report = tmp_path / "report.pdf"
    report.write_bytes(b"%PDF-1.4 fake report")
    answers = []
    for fmt in (1, 2):
        root = str(tmp_path / f"f{fmt}")
        store = open_store(root, format=fmt)  # connect() below shares this open store
        ctx = connect(root)
        try:
            got = _tutorial(ctx, str(report))
            ids = Ids()
            for a in sorted(got["list all"], key=lambda a: (a.created_at, a.artifact_id)):
                ids.add(a)
            answers.append({k: ids.norm(list(v) if isinstance(v, list) else v) for k, v in got.items()})
            assert type(store.artifacts.catalog) is (Catalog if fmt == 1 else DeltaCatalog)
        finally:
            ctx.close()
            store.release()
    assert answers[0]["best"][0] == 1 and answers[0]["list all"][0][2] is False
    assert answers[0] == answers[1]


MAGICS = [
    "list", "list checkpoint -n 5", "list --all-columns", "search checkpoint --label exp=A --all-columns",
    "search checkpoint --label exp=A --metric val_acc --all-columns", "search report --label seed=2",
    "best checkpoint --metric val_acc", "best checkpoint --metric loss --min", "best report --metric nope",
    "leaderboard checkpoint --metric val_acc", "leaderboard checkpoint --metric val_acc --by exp",
]  # fmt: skip


def _magics(fmt: int, root: str, ipython_shell: Any, monkeypatch: pytest.MonkeyPatch) -> tuple[list[Any], Ids]:
    store = open_store(root, format=fmt)  # %load_ext's connect() shares it
    ids = Ids()
    saved = _populate(store, ids, n=60)
    monkeypatch.setenv("AEG_STORE", root)
    ipython_shell.run_line_magic("load_ext", "aeg_jupyter")
    try:
        out: list[Any] = []
        for line in [*MAGICS, f"show {saved[4].artifact_id[-8:]}", f"pin {saved[6].artifact_id[-8:]}", "list -n 8"]:
            try:
                got = ipython_shell.run_line_magic("aeg", line)
            except UsageError as exc:  # the message is the answer
                got = exc
            out.append(_frame(got, ids))
        return out, ids
    finally:
        ipython_shell.extension_manager.unload_extension("aeg_jupyter")
        store.release()


def _frame(got: Any, ids: Ids) -> Any:
    """A command's answer with its ids (full or short) as save indexes, its times left out."""
    short = ids.short()
    if hasattr(got, "columns"):
        keep = [c for c in got.columns if c not in ("created_at", "age", "created", "run", "run_id")]
        rows = got[keep].astype(str).values.tolist()
        return [[ids.index.get(v, short.get(v, v)) for v in row] for row in rows]
    return ids.norm(got)


def test_the_magics_queries_agree_with_format_1(
    tmp_path: Any, ipython_shell: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    one, _ = _magics(1, str(tmp_path / "f1"), ipython_shell, monkeypatch)
    two, _ = _magics(2, str(tmp_path / "f2"), ipython_shell, monkeypatch)
    assert len(one) == len(MAGICS) + 3 and one[0] and one[6] is not None
    for line, a, b in zip([*MAGICS, "show", "pin", "list -n 8"], one, two, strict=True):
        assert a == b, line
    assert os.path.isdir(str(tmp_path / "f2" / "tables" / "artifacts" / "_delta_log"))


COLD = """
import sys
from aeg_jupyter.core.store import open_store
store = open_store(sys.argv[1], format=2)
arts = store.artifacts
best = arts.best(kind="ckpt", metric="acc", filters={"exp": "B"})
hits = arts.search(kind="ckpt", labels={"exp": "A", "seed": 1}, limit=3)
ranked = arts.search(kind="ckpt", metric="acc", mode="min", limit=2)
got = arts.get(best.artifact_id[-8:])  # a short id: the suffix lookup over the id column
print(best.metrics["acc"], len(hits), ranked[0].metrics["acc"], got.artifact_id == best.artifact_id, len(arts.list(limit=5)))
print("pandas" in sys.modules)
"""


def test_a_cold_store_open_and_its_queries_do_not_import_pandas(tmp_path: Any) -> None:
    """pyarrow imports pandas (0.5-2 s) on its first conversion of a Python value: a format-2 store's
    open and queries, through the core API, never ask for one (docs/format2.md)."""
    root = str(tmp_path / "s")
    with Store(root, format=2) as store:
        for i in range(40):
            store.artifacts.save_json({"i": i}, kind="ckpt", labels={"exp": "AB"[i % 2], "seed": i % 3},
                                      metrics={"acc": i / 40})  # fmt: skip
    out = run_child(COLD, root).stdout.split("\n")
    assert out[0].split() == ["0.975", "3", "0.0", "True", "5"]
    assert out[1] == "False"
