"""``aeg migrate``: a format-1 store made by this tree's format-1 writer, converted to format 2.

Real stores in tmp_path (tests/format2/format1_fixture.py builds one with two child processes, the second
killed by SIGKILL: a dead writer's spool), real child processes SIGKILLed at each step of the migration,
the answers compared through the public API (format 1 before, format 2 after) and the Delta tables read
with deltalake directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import run_child, spawn_child
from deltalake import DeltaTable

from aeg_jupyter import connect
from aeg_jupyter.base.errors import CorruptionError, StoreFormatError, StoreWriteError
from aeg_jupyter.base.hashing import hash_bytes
from aeg_jupyter.base.models import DIR_MIME
from aeg_jupyter.core.store import Store
from aeg_jupyter.frontends.cli import main as cli_main
from aeg_jupyter.storage.migrate import APP_ID, migrate
from aeg_jupyter.storage.schemas2 import INLINE_MAX

from .format1_fixture import make_format1_store

TABLES = {"artifacts": "artifact_id", "events": "event_id", "ops": "op_id"}


@contextlib.contextmanager
def _format(fmt: int) -> Iterator[None]:
    old = os.environ.get("AEG_STORE_FORMAT")
    os.environ["AEG_STORE_FORMAT"] = str(fmt)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("AEG_STORE_FORMAT", None)
        else:
            os.environ["AEG_STORE_FORMAT"] = old


def _marker(root: str) -> dict[str, Any]:
    with open(os.path.join(root, "aeg-store.json")) as f:
        return json.load(f)  # type: ignore[no-any-return]


def view(root: str, fmt: int) -> dict[str, Any]:
    """What the API answers on the store: every listing, query and byte the tests compare."""

    async def read() -> dict[str, Any]:
        ctx = connect(root)
        try:
            assert ctx.store.format == fmt
            arts, mem = ctx.artifacts(), ctx.memory()
            listed = list(await arts.list(scope="all"))
            out: dict[str, Any] = {"list": listed}
            out["label types"] = [{k: type(v).__name__ for k, v in a.labels.items()} for a in listed]
            out["best"] = [
                await arts.best(kind="checkpoint", metric="val_acc", scope="all"),
                await arts.best(kind="checkpoint", metric="val_acc", scope="all", filters={"exp": "A"}),
                await arts.best(kind="checkpoint", metric="loss", mode="min", scope="all", filters={"seed": 1}),
                await arts.best(kind="weights", metric="val_acc", scope="all"),
            ]
            out["search"] = [
                [a.artifact_id for a in await arts.search(kind="checkpoint", labels=labels, scope="all")]
                for labels in ({"seed": 1}, {"seed": True}, {"final": True}, {"lr": 0.1}, {"exp": "C"})
            ]
            out["ranked"] = [
                a.artifact_id for a in await arts.search(kind="checkpoint", metric="val_acc", scope="all", limit=5)
            ]
            out["config"] = [
                (a.artifact_id, a.labels) for a in await arts.search(kind="config", labels={"big": 2**70}, scope="all")
            ]
            out["recent"] = await mem.recent(limit=1000)
            out["recent train"] = await mem.recent(kinds=["train_log"], limit=10)
            out["tools"] = await mem.recent_tool_results(tool="tokenize")
            out["last tokens"] = await mem.last_by_name("tokens")
            files = {}
            for a in listed:
                if a.mime == DIR_MIME:
                    files[a.artifact_id] = _tree(await arts.as_local_dir(a.artifact_id))
                else:
                    with open(await arts.as_local_file(a.artifact_id), "rb") as f:
                        files[a.artifact_id] = f.read()
            out["bytes"] = files
            return out
        finally:
            ctx.close()

    with _format(fmt):
        return asyncio.run(read())


def _tree(d: str) -> list[tuple[str, bytes]]:
    out = []
    for p, _, names in os.walk(d):
        for n in names:
            with open(os.path.join(p, n), "rb") as f:
                out.append((os.path.relpath(os.path.join(p, n), d), f.read()))
    return sorted(out)


def delta_rows(root: str, table: str) -> list[dict[str, Any]]:
    rows = DeltaTable(os.path.join(root, "tables", table)).to_pyarrow_table().to_pylist()
    return sorted(rows, key=lambda r: r[TABLES[table]])


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The fixture store (never migrated: tests copy it), its format-1 view, and a clean migration's tables."""
    base = tmp_path_factory.mktemp("format1")
    pristine = make_format1_store(str(base / "store"))
    ref = str(base / "ref")
    shutil.copytree(pristine, ref, symlinks=True)
    before = view(ref, 1)  # opening recovers the dead writer's spool, as the migration does
    clean = str(base / "clean")
    shutil.copytree(pristine, clean, symlinks=True)
    report = migrate(clean)
    return {"pristine": pristine, "before": before, "clean": clean, "report": report}


def _copy(made: dict[str, Any], tmp_path: Any) -> str:
    root = str(tmp_path / "store")
    shutil.copytree(made["pristine"], root, symlinks=True)
    return root


def test_the_fixture_is_a_format_1_store_with_a_dead_writer(made: dict[str, Any]) -> None:
    root = made["pristine"]
    assert _marker(root)["format"] == 1
    spools = [f for w in os.listdir(os.path.join(root, "spool")) for f in os.listdir(os.path.join(root, "spool", w))]
    assert {"artifacts-000000.jsonl", "events-000000.jsonl", "ops-000000.jsonl"} <= set(spools)
    before = made["before"]
    # 25 saved by the first writer and 4 by the dead one, 2 deleted (the aeg.cell sources are not listed)
    assert len(before["list"]) == 27
    types = {k: t for d in before["label types"] for k, t in d.items()}
    assert {types["seed"], types["exp"], types["lr"], types["on"], types["big"]} == {"int", "str", "float", "bool"}
    assert any(len(b) > INLINE_MAX for b in before["bytes"].values() if isinstance(b, bytes))


def test_migrate_keeps_every_answer_of_the_api(made: dict[str, Any]) -> None:
    root = made["clean"]
    assert _marker(root) == {"format": 2, "hash": "blake3", "created_by": "aeg_jupyter", "migrated_from": 1}
    assert not os.path.exists(os.path.join(root, "migrate"))
    after = view(root, 2)
    before = made["before"]
    assert after.keys() == before.keys()
    for key in before:
        assert after[key] == before[key], key
    # type-exact labels (Python's == says True == 1 and 1 == 1.0: compare the types too)
    assert after["label types"] == before["label types"]
    assert after["search"][1] == [] and after["search"][0]  # seed=True does not match seed=1
    # lineage survived: the checkpoints name the cell and their input
    ckpt = next(a for a in after["list"] if a.kind == "checkpoint" and a.run_id == "run-a")
    assert ckpt.cell_id == "cell-2" and ckpt.execution_count == 2 and ckpt.source_hash and len(ckpt.inputs) == 1


def test_the_new_tables_hold_each_row_once_typed_with_small_content_inline(made: dict[str, Any]) -> None:
    root = made["clean"]
    report = made["report"]
    assert report.duplicates == 6  # the copied part
    for table, id_field in TABLES.items():
        dt = DeltaTable(os.path.join(root, "tables", table))
        ids = dt.to_pyarrow_table(columns=[id_field]).column(0).to_pylist()
        assert len(ids) == len(set(ids)) == report.rows[table]
        assert dt.transaction_version(APP_ID) is not None  # committed as the migration's app transaction
    rows = delta_rows(root, "artifacts")
    for r in rows:
        digest = r["uri"].removeprefix("cas://blake3/")
        if r["size"] <= INLINE_MAX and r["mime"] != DIR_MIME:
            assert r["content"] is not None and hash_bytes(r["content"]) == digest, r["name"]
        else:  # large, or a directory (its manifest is not its content, whatever its size)
            assert r["content"] is None
    by_name = {r["name"]: r for r in rows}
    assert len(by_name["edge.bin"]["content"]) == 4096 and by_name["over.bin"]["content"] is None
    assert any(r["mime"] == DIR_MIME and r["size"] <= INLINE_MAX for r in rows)  # the tiny directory
    config = next(r for r in rows if r["kind"] == "config" and dict(r["labels"]).get("big"))
    labels = dict(config["labels"])
    assert labels["big"]["j"] == str(2**70) and labels["seed"]["i"] == 3 and labels["on"]["b"] is True
    assert labels["one"]["f"] == 1.0 and labels["exp"]["s"] == "A"
    assert all(isinstance(v, float) for r in rows for _, v in (r["metrics"] or []))
    # every event kept, and the ops as they were
    before = made["before"]
    assert sorted(e.event_id for e in before["recent"]) == [r["event_id"] for r in delta_rows(root, "events")]
    kinds = sorted(r["kind"] for r in delta_rows(root, "ops"))
    assert kinds == ["delete", "delete", "pin", "pin", "pin", "pin", "unpin"]


def test_a_rerun_on_a_migrated_store_does_nothing(made: dict[str, Any], tmp_path: Any) -> None:
    root = str(tmp_path / "s")
    shutil.copytree(made["clean"], root, symlinks=True)
    before = {t: delta_rows(root, t) for t in TABLES}
    assert migrate(root).state == "already format 2"
    assert {t: delta_rows(root, t) for t in TABLES} == before


def test_format_1_opens_read_only_under_format_2_naming_aeg_migrate(made: dict[str, Any], tmp_path: Any) -> None:
    root = _copy(made, tmp_path)
    with pytest.warns(UserWarning, match=f"is format 1; it is open read-only: convert it with `aeg migrate {root}`"):
        store = Store(root, format=2)
    try:
        assert store.format == 1 and len(store.artifacts) > 0
        with pytest.raises(StoreWriteError, match="aeg migrate"):
            store.artifacts.save_json({"x": 1}, kind="config")
        with pytest.raises(StoreWriteError, match="aeg migrate"):
            store.event_log.record("log", {"x": 1})
        aid = next(a.artifact_id for a in store.artifacts.list() if not a.pinned)
        with pytest.raises(StoreWriteError, match="aeg migrate"):
            store.artifacts.pin(aid)
    finally:
        store.close()
    assert _marker(root)["format"] == 1


def test_a_live_writer_is_refused_and_the_store_left_as_it_was(made: dict[str, Any], tmp_path: Any) -> None:
    root = _copy(made, tmp_path)
    done = str(tmp_path / "done")
    child = spawn_child(
        """
        import os, sys, time
        from aeg_jupyter.core.store import Store
        store = Store(sys.argv[1], format=1)
        print("open", flush=True)
        while not os.path.exists(sys.argv[2]):  # (not stdin: the suite may run with stdin at EOF)
            time.sleep(0.05)
        store.close()
        """,
        root,
        done,
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "open"
        with pytest.raises(StoreFormatError, match=rf"open in 1 live process\(es\) \(pid {child.pid}\)"):
            migrate(root)
        assert _marker(root) == {"format": 1, "hash": "blake3", "created_by": "aeg_jupyter"}
        assert not os.path.exists(os.path.join(root, "migrate"))
    finally:
        open(done, "w").close()
        child.communicate(timeout=60)
    assert child.returncode == 0
    assert migrate(root).state == "migrated"


KILL_AT = """
import os, signal, sys
from aeg_jupyter.storage.migrate import migrate

def hook(point):
    if point == sys.argv[2]:
        os.kill(os.getpid(), signal.SIGKILL)

migrate(sys.argv[1], hook=hook)
raise SystemExit("the kill point was never reached: " + sys.argv[2])
"""


@pytest.mark.parametrize(
    "point",
    ["marked", "planned", "committed:2", "committed:12", "verified", "switching", "old-moved", "new-moved", "unmarked"],
)
def test_a_migration_killed_at_any_step_finishes_on_a_rerun(made: dict[str, Any], tmp_path: Any, point: str) -> None:
    root = _copy(made, tmp_path)
    proc = run_child(KILL_AT, root, point, check=False)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    if point != "unmarked":
        assert _marker(root).get("migrating") is True
        for fmt in (1, 2):  # no open but aeg migrate's gets in mid-way
            with pytest.raises(StoreFormatError, match=f"finish it with `aeg migrate {root}`"):
                Store(root, format=fmt)
    report = migrate(root)
    assert report.state == "migrated"
    assert _marker(root) == {"format": 2, "hash": "blake3", "created_by": "aeg_jupyter", "migrated_from": 1}
    assert not os.path.exists(os.path.join(root, "migrate"))
    # identical to the uninterrupted migration, row for row, and nothing twice
    for table in TABLES:
        assert delta_rows(root, table) == delta_rows(made["clean"], table), table
    if point.startswith("committed:"):
        assert report.skipped_units > 0 and report.committed_units > 0  # the rerun resumed
    after = view(root, 2)
    for key, value in made["before"].items():
        assert after[key] == value, key


def test_abort_gives_the_format_1_store_back(made: dict[str, Any], tmp_path: Any) -> None:
    root = _copy(made, tmp_path)
    proc = run_child(KILL_AT, root, "committed:5", check=False)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert "aborted" in migrate(root, abort=True).state
    assert _marker(root) == {"format": 1, "hash": "blake3", "created_by": "aeg_jupyter"}
    assert not os.path.exists(os.path.join(root, "migrate"))
    assert view(root, 1) == made["before"]
    proc = run_child(KILL_AT, root, "unmarked", check=False)  # past the commit point: no way back
    with pytest.raises(StoreFormatError, match="format 2 already"):
        migrate(root, abort=True)


def test_the_cli_migrates_with_progress_on_stderr(made: dict[str, Any], tmp_path: Any, capsys: Any) -> None:
    root = _copy(made, tmp_path)
    assert cli_main(["migrate", root]) == 0
    out, err = capsys.readouterr()
    assert "migrated to format 2" in out and "verified field by field" in out
    assert "rows (ops)" in err and "aeg migrate: " in err
    assert cli_main(["migrate", root]) == 0
    assert "already format 2" in capsys.readouterr().out
    assert cli_main(["migrate", str(tmp_path / "nothing")]) == 1
    assert "no store at" in capsys.readouterr().err


def test_a_difference_found_by_verify_leaves_the_store_format_1(made: dict[str, Any], tmp_path: Any) -> None:
    root = _copy(made, tmp_path)

    def tamper(point: str) -> None:
        if point == "converted":
            # a converted file whose rows do not say what format 1 says (rewritten in place)
            dt = DeltaTable(os.path.join(root, "migrate", "tables", "artifacts"))
            path = next(f for f in dt.file_uris() if "kind=weights" in f).removeprefix("file://")
            table = pq.read_table(path)
            names = pa.array(["tampered"] * table.num_rows)
            pq.write_table(table.set_column(table.column_names.index("name"), "name", names), path)
            # a label whose type changed, its value equal to Python (True == 1)
            for file in (uri.removeprefix("file://") for uri in dt.file_uris()):
                table = pq.read_table(file)
                labels = table.column("labels").to_pylist()
                if "kind=config" not in file or not any(dict(cell or []).get("on") for cell in labels):
                    continue
                typed = [[(k, {"i": 1} if k == "on" else v) for k, v in cell or []] for cell in labels]
                column = pa.array(typed, table.schema.field("labels").type)
                pq.write_table(table.set_column(table.column_names.index("labels"), "labels", column), file)
            # and a commit the migration did not make (rows deleted behind its back)
            DeltaTable(os.path.join(root, "migrate", "tables", "events")).delete("kind = 'alert'")

    with pytest.raises(CorruptionError, match="difference") as err:
        migrate(root, hook=tamper)
    message = str(err.value)
    assert "name: format 1 'big.bin', format 2 'tampered'" in message
    assert "removes a file (the migration only appends)" in message
    assert 'labels: format 1 \'{"big": 1180591620717411303424, ' in message and '"on": true' in message
    assert '"on": 1' in message
    assert _marker(root) == {"format": 1, "hash": "blake3", "created_by": "aeg_jupyter"}
    assert not os.path.exists(os.path.join(root, "migrate"))
    assert view(root, 1) == made["before"]
    assert migrate(root).state == "migrated"  # nothing tampers this time
    assert view(root, 2) == made["before"]


def test_an_unreadable_part_refuses_before_anything_changes(made: dict[str, Any], tmp_path: Any) -> None:
    root = _copy(made, tmp_path)
    pdir = os.path.join(root, "tables", "events", "kind=train_log")
    bad = os.path.join(pdir, sorted(os.listdir(pdir))[0].split("-", 1)[0] + "-garbage-000001.parquet")
    with open(bad, "wb") as f:
        f.write(b"PAR1 not a parquet file")
    with pytest.raises(CorruptionError, match="run `aeg verify --repair` first"):
        migrate(root)
    assert _marker(root) == {"format": 1, "hash": "blake3", "created_by": "aeg_jupyter"}
    assert not os.path.exists(os.path.join(root, "migrate"))
    os.unlink(bad)  # what verify --repair would have moved aside
    assert migrate(root).state == "migrated"
    assert view(root, 2) == made["before"]


KILL_AFTER = """
import os, signal, sys, threading
from aeg_jupyter.storage.migrate import migrate

threading.Timer(float(sys.argv[2]), lambda: os.kill(os.getpid(), signal.SIGKILL)).start()
migrate(sys.argv[1])
os._exit(0)
"""


def test_kills_at_random_moments_then_a_rerun_give_the_same_tables(made: dict[str, Any], tmp_path: Any) -> None:
    """SIGKILL wherever the timer lands (inside a Delta commit, a rename, a marker write), again and again."""
    root = _copy(made, tmp_path)
    kills = 0
    for delay in (0.05, 0.2, 0.4, 0.6, 0.8, 1.0, 1.3, 1.6):
        proc = run_child(KILL_AFTER, root, str(delay), check=False)
        assert proc.returncode in (0, -signal.SIGKILL), proc.stderr
        kills += proc.returncode == -signal.SIGKILL
        if proc.returncode == 0:
            break
    assert kills > 0
    migrate(root)  # finishes whatever the last kill left (or finds it done)
    assert _marker(root) == {"format": 2, "hash": "blake3", "created_by": "aeg_jupyter", "migrated_from": 1}
    for table in TABLES:
        assert delta_rows(root, table) == delta_rows(made["clean"], table), table
    assert view(root, 2) == made["before"]


def test_a_write_by_a_release_that_ignores_the_marker_is_not_lost(made: dict[str, Any], tmp_path: Any) -> None:
    root = _copy(made, tmp_path)

    def old_release_writes(point: str) -> None:
        if point == "verified":  # a part written behind the marker's back, as an older aeg_jupyter would
            pdir = os.path.join(root, "tables", "events", "kind=train_log")
            part = sorted(os.listdir(pdir))[-1]
            shutil.copyfile(os.path.join(pdir, part), os.path.join(pdir, part.split("-", 1)[0] + "-old-000007.parquet"))

    with pytest.raises(StoreFormatError, match=r"changed during the migration \(1 new part"):
        migrate(root, hook=old_release_writes)
    assert _marker(root) == {"format": 1, "hash": "blake3", "created_by": "aeg_jupyter"}
    assert not os.path.exists(os.path.join(root, "migrate"))
    assert migrate(root).state == "migrated"
    assert view(root, 2) == made["before"]  # the copied part's rows were duplicates: de-duplicated


def test_after_gc_the_inlined_blob_files_go_and_every_byte_reads_from_the_rows(
    made: dict[str, Any], tmp_path: Any
) -> None:
    root = str(tmp_path / "s")
    shutil.copytree(made["clean"], root, symlinks=True)

    def blob_files() -> int:
        return sum(len(files) for _, _, files in os.walk(os.path.join(root, "blobs")))

    before = blob_files()

    async def collect() -> Any:
        ctx = connect(root)
        try:
            return await ctx.artifacts().gc(dry_run=False, older_than="3650d")  # no artifact is old enough to go
        finally:
            ctx.close()

    with _format(2):
        asyncio.run(collect())
    assert blob_files() < before - made["report"].inlined // 2  # the inlined files went with gc
    assert view(root, 2) == made["before"]  # every listing, answer and byte, now from the rows
