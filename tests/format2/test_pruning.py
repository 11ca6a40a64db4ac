"""core/columnar.py's cold paths that read part of a column: exact answers whatever the row groups hold.

``best`` reads ``created_at`` only of the row groups holding its tied rows; a newest-first ``search``
with a limit reads ``created_at`` only of the row groups that can hold its answer, found by their
footer statistics (descending max). Real Delta tables written in small row groups (64 rows), rows out
of time order across commits and row groups, files without the flat columns (written before them: the
map answers), NaN and missing metrics, ties; every answer is compared with a brute-force computation
over the rows written and with the same query on a catalog that read the whole columns."""

from __future__ import annotations

import math
import random
from typing import Any

import pyarrow as pa
import pytest
from deltalake import WriterProperties

from aeg_jupyter.core.columnar import ColumnarCatalog
from aeg_jupyter.storage.delta import DeltaLakeTable
from aeg_jupyter.storage.schemas2 import ARTIFACTS2_SCHEMA, OPS2_SCHEMA, artifact_rows_to_arrow, op_rows_to_arrow

GROUP = 64  # rows per row group in these tables (the store writes 8,192)


def _tables(root: Any) -> tuple[DeltaLakeTable, DeltaLakeTable]:
    arts = DeltaLakeTable(str(root / "artifacts"), ARTIFACTS2_SCHEMA, ts_field="created_at")
    arts._props = WriterProperties(compression="ZSTD", max_row_group_size=GROUP)  # many row groups per file
    ops = DeltaLakeTable(str(root / "ops"), OPS2_SCHEMA, ts_field="ts")
    return arts, ops


def _row(n: int, created: int, exp: str | None, acc: float | None) -> dict[str, Any]:
    labels = {"exp": exp} if exp is not None else {}
    metrics = {"acc": acc} if acc is not None else {}
    return {"artifact_id": f"01P{n:06d}", "kind": "ckpt", "created_at": created, "uri": f"cas://blake3/{n:064x}",
            "labels": labels, "metrics": metrics}  # fmt: skip


def _commit(arts: DeltaLakeTable, rows: list[dict[str, Any]], seq: int, *, flat: bool = True) -> None:
    nan = [i for i, r in enumerate(rows) if math.isnan(r["metrics"].get("acc", 0.0))]
    # the row codec drops a NaN metric (with a warning): a NaN is put in the flat column itself, as
    # another engine's writer could leave one
    table = artifact_rows_to_arrow([{**r, "metrics": {}} if i in nan else r for i, r in enumerate(rows)])
    if nan and "metric.acc" in table.column_names:
        values = table.column("metric.acc").to_pylist()
        for i in nan:
            values[i] = math.nan
        at = table.column_names.index("metric.acc")
        table = table.set_column(at, "metric.acc", pa.array(values, pa.float64()))
    if not flat:  # a file written before the flat columns existed: labels and metrics only in the maps
        table = table.select([f.name for f in ARTIFACTS2_SCHEMA])
    arts.commit(table, app_id="w", seq=seq)


def _best(rows: list[dict[str, Any]], exp: str | None, sign: float = 1.0) -> str | None:
    """Format 1's rule: the best value (NaN and missing never win), ties to the newest, then the greater id."""
    keyed = [
        (r["metrics"]["acc"] * sign, r["created_at"], r["artifact_id"])
        for r in rows
        if "acc" in r["metrics"]
        and not math.isnan(r["metrics"]["acc"])
        and (exp is None or r["labels"].get("exp") == exp)
    ]
    return max(keyed)[2] if keyed else None


def _newest(rows: list[dict[str, Any]], exp: str | None, limit: int) -> list[str]:
    """Newest first by (created_at, id), as format 1 orders them."""
    hits = [r for r in rows if exp is None or r["labels"].get("exp") == exp]
    return [r["artifact_id"] for r in sorted(hits, key=lambda r: (r["created_at"], r["artifact_id"]), reverse=True)][
        :limit
    ]


def _ids(arts: list[Any]) -> list[str]:
    return [a.artifact_id for a in arts]


@pytest.fixture(scope="module")
def shuffled(tmp_path_factory: Any) -> tuple[DeltaLakeTable, DeltaLakeTable, list[dict[str, Any]]]:
    """1,500 rows in 4 commits (one without flat columns), times shuffled across commits and row groups."""
    root = tmp_path_factory.mktemp("pruning")
    rng = random.Random(18)
    stamps = rng.sample(range(1_000_000, 9_000_000), 1500)  # unique: newest-first has one answer
    rows = []
    for n, ts in enumerate(stamps):
        acc: float | None = round(rng.random(), 2)  # rounded: ties in the metric
        if n % 17 == 0:
            acc = math.nan
        elif n % 23 == 0:
            acc = None
        rows.append(_row(n, ts, rng.choice(["A", "B", "C", None]), acc))
    arts, ops = _tables(root)
    for seq, (lo, hi) in enumerate([(0, 400), (400, 700), (700, 1200), (1200, 1500)]):
        part = rows[lo:hi]
        if seq == 2:
            part = sorted(part, key=lambda r: r["created_at"])  # one commit in time order, the others not
        _commit(arts, part, seq, flat=seq != 0)  # the first: before the flat columns (a later one gets them null)
    return arts, ops, rows


@pytest.mark.parametrize("exp", ["A", "B", "C", None, "Z"])
def test_best_reads_created_at_of_its_tied_rows_only_and_matches(shuffled: Any, exp: str | None) -> None:
    arts, ops, rows = shuffled
    for sign, mode in ((1.0, "max"), (-1.0, "min")):
        cat = ColumnarCatalog(arts, ops)
        filters = {"exp": exp} if exp is not None else None
        got = cat.best(kind="ckpt", metric="acc", mode=mode, filters=filters)  # type: ignore[arg-type]
        assert (got.artifact_id if got else None) == _best(rows, exp, sign)
        assert "created_at" not in cat._segments["ckpt"].columns  # not read whole
        # the same query on a catalog that read the whole created_at column first
        full = ColumnarCatalog(arts, ops)
        full._micros("ckpt")
        again = full.best(kind="ckpt", metric="acc", mode=mode, filters=filters)  # type: ignore[arg-type]
        assert (again.artifact_id if again else None) == (got.artifact_id if got else None)


@pytest.mark.parametrize("limit", [1, 3, 10, 64, 65, 200, 2000])
@pytest.mark.parametrize("exp", ["A", None, "Z"])
def test_newest_first_reads_only_the_groups_that_can_hold_the_answer(
    shuffled: Any, exp: str | None, limit: int
) -> None:
    arts, ops, rows = shuffled
    cat = ColumnarCatalog(arts, ops)
    labels = {"exp": exp} if exp is not None else None
    got = _ids(cat.search(kind="ckpt", labels=labels, limit=limit))
    assert got == _newest(rows, exp, limit)
    seg = cat._segments["ckpt"]
    assert "created_at" not in seg.columns and ("order", None, 1.0) not in seg.arrays
    # warm: the same answer again; and the whole-column path gives the same answer
    assert _ids(cat.search(kind="ckpt", labels=labels, limit=limit)) == got
    full = ColumnarCatalog(arts, ops)
    full._micros("ckpt")
    assert _ids(full.search(kind="ckpt", labels=labels, limit=limit)) == got
    assert _ids(full.search(kind="ckpt", labels=labels))[:limit] == got


def test_ties_in_created_at_across_row_groups(tmp_path: Any) -> None:
    """Rows of one microsecond spread over several row groups (ids growing with the rows, as one writer
    saves them): newest first and best agree with format 1's (created_at, id) order, pruned or not."""
    arts, ops = _tables(tmp_path)
    rows = [_row(n, 5_000 + n // 150, "AB"[n % 2], 0.5 if n % 3 else 0.9) for n in range(600)]
    _commit(arts, rows, 0)
    for limit in (1, 5, 40, 151, 600):
        for exp in ("A", "B", None):
            cat = ColumnarCatalog(arts, ops)
            labels = {"exp": exp} if exp is not None else None
            assert _ids(cat.search(kind="ckpt", labels=labels, limit=limit)) == _newest(rows, exp, limit)
    for exp in ("A", "B", None):
        cat = ColumnarCatalog(arts, ops)
        got = cat.best(kind="ckpt", metric="acc", filters={"exp": exp} if exp else None)
        assert got is not None and got.artifact_id == _best(rows, exp)


def test_the_winner_in_the_last_row_group_and_a_filter_that_excludes_the_max_group(tmp_path: Any) -> None:
    arts, ops = _tables(tmp_path)
    rows = [_row(n, 10_000 + n, "A" if n < 500 else "B", n / 1000) for n in range(640)]  # max acc: the last group
    rows[5]["metrics"]["acc"] = 0.999  # exp=A's best, in the first group
    rows[600]["metrics"]["acc"] = math.nan
    _commit(arts, rows, 0)
    cat = ColumnarCatalog(arts, ops)
    assert cat.best(kind="ckpt", metric="acc").artifact_id == "01P000005"
    rows[5]["metrics"]["acc"] = 0.1
    arts2, ops2 = _tables(tmp_path / "b")
    _commit(arts2, rows, 0)
    assert ColumnarCatalog(arts2, ops2).best(kind="ckpt", metric="acc").artifact_id == "01P000639"
    cat = ColumnarCatalog(arts2, ops2)
    assert cat.best(kind="ckpt", metric="acc", filters={"exp": "A"}).artifact_id == "01P000499"
    assert _ids(cat.search(kind="ckpt", labels={"exp": "A"}, limit=2)) == ["01P000499", "01P000498"]
    assert _ids(cat.search(kind="ckpt", labels={"exp": "B"}, limit=2)) == ["01P000639", "01P000638"]
    # rows in time order (as a writer commits them): created_at is read of 5 of the 10 groups (best:
    # the winner's; search: groups newest first in batches of 1, 4, 16..., and A's newest rows are in
    # the 3rd newest group), never the whole column
    read = [k for k in cat._segments["ckpt"].arrays if isinstance(k, tuple) and k[0] == "group_ts"]
    assert len(cat._segments["ckpt"].arrays["groups"]) == 10 and len(read) == 5, read
    assert "created_at" not in cat._segments["ckpt"].columns


def test_deleted_rows_are_left_out_of_the_pruned_paths(shuffled: Any, tmp_path: Any) -> None:
    arts, _ops, rows = shuffled
    ops = DeltaLakeTable(str(tmp_path / "ops"), OPS2_SCHEMA, ts_field="ts")
    newest = _newest(rows, "A", 5)
    best = _best(rows, "A")
    gone = {newest[0], newest[2], best}
    ops.commit(
        op_rows_to_arrow(
            [{"op_id": f"op{i}", "ts": 9_999_999, "kind": "delete", "artifact_id": aid} for i, aid in enumerate(gone)]
        ),
        app_id="w",
        seq=0,
    )
    live = [r for r in rows if r["artifact_id"] not in gone]
    cat = ColumnarCatalog(arts, ops)
    assert _ids(cat.search(kind="ckpt", labels={"exp": "A"}, limit=5)) == _newest(live, "A", 5)
    assert cat.best(kind="ckpt", metric="acc", filters={"exp": "A"}).artifact_id == _best(live, "A")


def test_a_label_column_read_as_a_dictionary_matches_nulls_and_files_without_it(tmp_path: Any) -> None:
    arts, ops = _tables(tmp_path)
    rows = [_row(n, 100 + n, [None, "A", "B", ""][n % 4], 0.5) for n in range(300)]
    _commit(arts, rows[:100], 0, flat=False)  # no label.exp.s in this file: from the map
    _commit(arts, rows[100:200], 1)
    _commit(arts, [r for r in rows[200:] if not r["labels"]], 2)  # only rows without the label
    rows = rows[:200] + [r for r in rows[200:] if not r["labels"]]
    cat = ColumnarCatalog(arts, ops)
    for exp in ("A", "B", "", "Z"):
        got = _ids(cat.search(kind="ckpt", labels={"exp": exp}))
        assert got == _newest(rows, exp, len(rows)), exp
    col = cat._segments["ckpt"].columns["label.exp.s"]
    assert pa.types.is_dictionary(col.type)
