"""aeg_jupyter.storage.layout: every path inside a store root, and the names of parts and spools."""

from __future__ import annotations

import os

import pytest

from aeg_jupyter.base.errors import InvalidInputError
from aeg_jupyter.base.hashing import hash_bytes
from aeg_jupyter.storage.layout import (
    META_NAME,
    Layout,
    PartName,
    decode_kind,
    encode_kind,
    parse_spool_name,
)

DIGEST = hash_bytes(b"hello")


@pytest.fixture
def layout(tmp_path):
    return Layout(str(tmp_path / "store"))


def test_top_level_paths(layout):
    root = layout.root
    assert layout.meta == os.path.join(root, META_NAME) == os.path.join(root, "aeg-store.json")
    assert layout.blobs == os.path.join(root, "blobs")
    assert layout.tables == os.path.join(root, "tables")
    assert layout.spool == os.path.join(root, "spool")
    assert layout.tmp == os.path.join(root, "tmp")
    assert layout.files == os.path.join(root, "files")


def test_blob_path_fans_out_on_the_first_two_hex(layout):
    assert layout.blob_path(DIGEST) == os.path.join(layout.root, "blobs", DIGEST[:2], DIGEST[2:])


def test_writer_and_table_paths(layout):
    root = layout.root
    assert layout.table_dir("events") == os.path.join(root, "tables", "events")
    assert layout.partition_dir("events", "train_log") == os.path.join(root, "tables", "events", "kind=train_log")
    assert layout.partition_dir("events", "a/b") == os.path.join(root, "tables", "events", "kind=a%2Fb")
    assert layout.writer_spool_dir("w1") == os.path.join(root, "spool", "w1")
    assert layout.spool_file("w1", "events", 3) == os.path.join(root, "spool", "w1", "events-000003.jsonl")
    assert layout.writer_tmp_dir("w1") == os.path.join(root, "tmp", "w1")
    assert layout.materialized_dir(DIGEST) == os.path.join(root, "files", DIGEST)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "abc",
        DIGEST.upper(),
        DIGEST[:-1],
        DIGEST + "0",
        "../" + DIGEST[3:],
        "..%2F" + DIGEST[5:],
        "/" + DIGEST[1:],
        "g" * 64,
        DIGEST[:63] + "\n",
    ],
)
def test_blob_path_refuses_what_is_not_a_digest(layout, bad):
    with pytest.raises(InvalidInputError, match="cas://blake3/"):
        layout.blob_path(bad)
    with pytest.raises(InvalidInputError):
        layout.materialized_dir(bad)


def test_part_name_round_trip():
    name = PartName(1_700_000_000_123_456, "p4242xdeadbeef", 7)
    text = str(name)
    assert text == "1700000000123456-p4242xdeadbeef-000007.parquet"
    assert PartName.parse(text) == name
    compact = PartName(5, "compactp1x00", 999_999)
    assert str(compact) == "0000000000000005-compactp1x00-999999.parquet"
    assert PartName.parse(str(compact)) == compact


def test_part_names_sort_by_time_as_text():
    names = [PartName(ts, "w", 0) for ts in (9, 10, 1_000_000, 5)]
    assert sorted(str(n) for n in names) == [str(n) for n in sorted(names, key=lambda n: n.max_ts)]


@pytest.mark.parametrize(
    "stray",
    [
        "part-0123456789abcdef",  # an atomic() temp file
        ".compact.lock",
        "0000000000000005-w1-000007.parquet.tmp",
        "0000000000000005-w1-000007.PARQUET",
        "5-w1-000007.parquet",  # time not zero-padded
        "0000000000000005-w1-7.parquet",
        "0000000000000005-w-1-000007.parquet",  # writer with a dash
        "0000000000000005--000007.parquet",
        "x0000000000000005-w1-000007.parquet",
        "",
    ],
)
def test_part_name_parse_rejects_strays(stray):
    assert PartName.parse(stray) is None


def test_parse_spool_name():
    assert parse_spool_name("events-000003.jsonl") == ("events", 3)
    assert parse_spool_name("artifacts-000000.jsonl") == ("artifacts", 0)
    assert parse_spool_name("ops-123456.jsonl") == ("ops", 123_456)


@pytest.mark.parametrize(
    "stray",
    ["lock", "events-3.jsonl", "Events-000003.jsonl", "events-000003.jsonl.tmp", "events-000003.json", "-000003.jsonl"],
)
def test_parse_spool_name_rejects_strays(stray):
    assert parse_spool_name(stray) is None


@pytest.mark.parametrize(
    "kind",
    [
        "train_log",
        "模型/检查点",
        "a/b",
        "../escape",
        "%",
        "%2F",
        "100% done",
        "kind=x",
        "a b",
        ".",
        "..",
        "é\u2028",
        "",
    ],
)
def test_encode_kind_round_trip(kind):
    dirname = encode_kind(kind)
    assert dirname.startswith("kind=")
    assert "/" not in dirname and os.sep not in dirname  # always one path component
    assert decode_kind(dirname) == kind


def test_encode_kind_keeps_distinct_kinds_distinct():
    kinds = ["a/b", "a%2Fb", "a%252Fb", "a b", "a+b"]
    assert len({encode_kind(k) for k in kinds}) == len(kinds)


def test_decode_kind_of_other_directories_is_none():
    assert decode_kind(".compact.lock") is None
    assert decode_kind("events") is None
    assert decode_kind("Kind=log") is None
