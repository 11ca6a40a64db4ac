"""The SeaweedFS fixture itself: loopback only, no silent buckets, SigV4, conditional writes, restart keeps data."""

from __future__ import annotations

import os
import time

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from .conftest import SeaweedServer


def listening_addresses(pid: int) -> set[str]:
    """Local addresses of the TCP sockets in LISTEN state that ``pid`` holds (from /proc)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                cols = line.split()
                if cols[3] == "0A" and cols[9] in inodes:  # 0A: LISTEN
                    found.add(cols[1].split(":")[0])
    return found


def test_the_server_listens_on_loopback_only(s3_server: SeaweedServer) -> None:
    assert s3_server.proc is not None
    addresses = listening_addresses(s3_server.proc.pid)
    assert addresses == {"0100007F"}, addresses  # 127.0.0.1, nothing on 0.0.0.0 or ::


def test_no_bucket_is_created_by_a_put_and_a_wrong_secret_is_refused(s3_server: SeaweedServer, s3_env: dict) -> None:
    client = s3_server.client()
    with pytest.raises(ClientError) as info:
        client.put_object(Bucket="never-made-here", Key="k", Body=b"x")
    assert info.value.response["Error"]["Code"] == "NoSuchBucket"
    assert "never-made-here" not in {b["Name"] for b in client.list_buckets()["Buckets"]}
    bad = s3_server.client(secret_key="wrong")
    with pytest.raises(ClientError) as info:
        bad.list_buckets()
    assert info.value.response["Error"]["Code"] == "SignatureDoesNotMatch"


def test_create_if_absent_keeps_the_first_content(s3_server: SeaweedServer, s3_bucket: str) -> None:
    client = s3_server.client()
    client.put_object(Bucket=s3_bucket, Key="k", Body=b"first", IfNoneMatch="*")
    with pytest.raises(ClientError) as info:
        client.put_object(Bucket=s3_bucket, Key="k", Body=b"second", IfNoneMatch="*")
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    assert client.get_object(Bucket=s3_bucket, Key="k")["Body"].read() == b"first"


def test_stop_and_restart_on_the_same_ports_keeps_every_object(s3_server: SeaweedServer, s3_bucket: str) -> None:
    client = s3_server.client()
    client.put_object(Bucket=s3_bucket, Key="kept", Body=b"still here")
    ports = dict(s3_server.ports)
    s3_server.stop()
    started = time.monotonic()
    with pytest.raises(EndpointConnectionError):
        s3_server.client(retries={"max_attempts": 1}).head_bucket(Bucket=s3_bucket)
    assert time.monotonic() - started < 5
    assert not [p for p in ports.values() if os.path.exists(f"/tmp/seaweedfs-master-grpc-{p}.sock")]
    time.sleep(1)
    s3_server.start()
    assert s3_server.ports == ports
    assert client.get_object(Bucket=s3_bucket, Key="kept")["Body"].read() == b"still here"
