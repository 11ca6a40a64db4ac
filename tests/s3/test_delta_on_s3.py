"""Delta tables on an s3:// root through deltalake's storage_options (issue 14 item 4, its foundation).

Tables are created once, then appended to by several processes with their own ``HOME`` and
``AEG_CACHE`` (machines); every commit lands, no row twice; Polars reads what deltalake reads; the
credentials are in no stored object.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from typing import Any

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from aeg_jupyter.storage.objectstore import ObjectStore, S3Location

from .conftest import SeaweedServer

WRITERS, COMMITS = 3, 5
CHILD = textwrap.dedent(
    """
    import sys
    import pyarrow as pa
    from deltalake import write_deltalake
    from aeg_jupyter.storage.objectstore import ObjectStore, S3Location

    objects = ObjectStore(S3Location.parse(sys.argv[1]))  # the AWS variables of the environment only
    for i in range(int(sys.argv[3])):
        rows = pa.table({"writer": [sys.argv[2]], "i": pa.array([i], pa.int64())})
        write_deltalake(objects.table_uri("events"), rows, mode="append", storage_options=objects.storage_options())
    """
)


def test_machines_append_to_one_table_and_every_row_lands_once(
    s3_server: SeaweedServer, s3_bucket: str, tmp_path: Any
) -> None:
    root = f"s3://{s3_bucket}/team"
    objects = ObjectStore(S3Location.parse(root), cache=str(tmp_path / "cache"))
    uri = objects.table_uri("events")
    assert uri == f"s3://{s3_bucket}/team/tables/events"
    empty = pa.table({"writer": pa.array([], pa.string()), "i": pa.array([], pa.int64())})
    write_deltalake(uri, empty, mode="append", storage_options=objects.storage_options())  # created once
    children = []
    for k in range(WRITERS):
        home = tmp_path / f"machine{k}"
        home.mkdir()
        env = {n: v for n, v in os.environ.items() if not n.startswith("AWS_")}
        env |= s3_server.env() | {"HOME": str(home), "AEG_CACHE": str(home / "cache")}
        children.append(
            subprocess.Popen(
                [sys.executable, "-c", CHILD, root, f"m{k}", str(COMMITS)],
                env=env,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    for child in children:
        _, err = child.communicate(timeout=240)
        assert child.returncode == 0, err
    table = DeltaTable(uri, storage_options=objects.storage_options())
    assert table.version() == WRITERS * COMMITS  # every append its own commit, none lost
    rows = table.to_pyarrow_table()
    pairs = sorted(zip(rows["writer"].to_pylist(), rows["i"].to_pylist(), strict=True))
    assert pairs == sorted((f"m{k}", i) for k in range(WRITERS) for i in range(COMMITS))
    pl = pytest.importorskip("polars")
    frame = pl.read_delta(uri, storage_options=objects.storage_options())
    assert sorted(zip(frame["writer"].to_list(), frame["i"].to_list(), strict=True)) == pairs
    # no credential in any stored object (the Delta log, the data files)
    client = s3_server.client()
    listing = client.list_objects_v2(Bucket=s3_bucket)
    for item in listing["Contents"]:
        body = client.get_object(Bucket=s3_bucket, Key=item["Key"])["Body"].read()
        assert s3_server.secret_key.encode() not in body and s3_server.access_key.encode() not in body
    assert json.dumps(repr(objects)).count(s3_server.secret_key) == 0
