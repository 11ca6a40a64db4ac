"""storage/objectstore.py on a real SeaweedFS (issue 14 item 3): blobs, errors, credentials, the lease."""

from __future__ import annotations

import io
import logging
import os
import threading
import time
from typing import Any

import pytest

from aeg_jupyter.base.errors import (
    CorruptionError,
    InvalidInputError,
    NotFoundError,
    ObjectStoreError,
    StoreFormatError,
)
from aeg_jupyter.base.hashing import hash_bytes
from aeg_jupyter.storage import objectstore as objmod
from aeg_jupyter.storage.objectstore import Lease, ObjectStore, S3Location, S3Settings, cache_dir

from .conftest import SeaweedServer, free_ports

MiB = 1 << 20


@pytest.fixture
def objects(s3_bucket: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> ObjectStore:
    monkeypatch.setenv("AEG_CACHE", str(tmp_path / "cache"))
    return ObjectStore(S3Location(s3_bucket, "team/aeg"))


def keys(server: SeaweedServer, bucket: str, prefix: str = "") -> list[str]:
    listing = server.client().list_objects_v2(Bucket=bucket, Prefix=prefix)
    return sorted(o["Key"] for o in listing.get("Contents", []))


def test_settings_come_from_the_standard_variables_only(s3_env: dict[str, str]) -> None:
    s = S3Settings.from_env()
    assert (s.endpoint, s.region, s.allow_http) == (s3_env["AWS_ENDPOINT_URL"], "us-east-1", True)
    assert s.storage_options()["AWS_ALLOW_HTTP"] == "true"  # deltalake needs it for http://
    assert s3_env["AWS_SECRET_ACCESS_KEY"] not in repr(s) and s3_env["AWS_ACCESS_KEY_ID"] not in repr(s)
    assert not S3Settings.from_env({"AWS_ENDPOINT_URL": "https://s3.example.org"}).allow_http


def test_cache_dir_is_aeg_cache_else_the_platform_cache(tmp_path: Any) -> None:
    assert cache_dir({"AEG_CACHE": str(tmp_path)}) == str(tmp_path)
    assert cache_dir({"XDG_CACHE_HOME": str(tmp_path)}) == os.path.join(str(tmp_path), "aeg_jupyter")


def test_put_bytes_is_create_if_absent_and_stored_once(objects: ObjectStore, s3_server: SeaweedServer) -> None:
    data = b'{"lr": 0.1}'
    digest = objects.put_bytes(data)
    assert digest == hash_bytes(data)
    assert objects.put_bytes(data) == digest  # the second save: 412 from the server, which is fine
    assert keys(s3_server, objects.bucket) == [f"team/aeg/blobs/{digest[:2]}/{digest[2:]}"]
    assert objects.get_bytes(digest) == data and objects.has_blob(digest)


def test_two_machines_saving_the_same_bytes_at_once_store_them_once(
    objects: ObjectStore, s3_server: SeaweedServer
) -> None:
    data = os.urandom(4096)
    others = [ObjectStore(objects.location) for _ in range(8)]
    results: list[str] = []
    threads = [threading.Thread(target=lambda o=o: results.append(o.put_bytes(data))) for o in others]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [hash_bytes(data)] * 8
    assert len(keys(s3_server, objects.bucket, "team/aeg/blobs/")) == 1


class CountingReader(io.RawIOBase):
    """A source that counts every byte read from it (the upload must read each byte once)."""

    def __init__(self, data: bytes) -> None:
        self.inner = io.BytesIO(data)
        self.read_bytes = 0

    def read(self, n: int = -1) -> bytes:
        chunk = self.inner.read(n if n < 0 else min(n, 3 * MiB + 17))  # short reads, as a pipe gives
        self.read_bytes += len(chunk)
        return chunk


def test_large_files_and_streams_go_up_in_parts(
    objects: ObjectStore, s3_server: SeaweedServer, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(objmod, "PART_SIZE", 5 * MiB)  # S3's smallest part, so 3 parts here
    monkeypatch.setattr(objmod, "MULTIPART_MIN", 5 * MiB)
    data = os.urandom(13 * MiB)
    source = CountingReader(data)
    digest, size = objects.put_stream(source, len(data))  # type: ignore[arg-type]
    assert (digest, size) == (hash_bytes(data), len(data))
    assert source.read_bytes == len(data)  # one read of the source
    assert keys(s3_server, objects.bucket) == [objects.blob_key(digest)]  # the staging object is gone
    assert not s3_server.client().list_multipart_uploads(Bucket=objects.bucket).get("Uploads")
    client = s3_server.client()
    assert "aeg-touched" not in client.head_object(Bucket=objects.bucket, Key=objects.blob_key(digest))["Metadata"]
    again = CountingReader(data)
    assert objects.put_stream(again, len(data)) == (digest, len(data))  # the copy finds it there (412): fine
    assert keys(s3_server, objects.bucket) == [objects.blob_key(digest)]
    # ... and touches it, as every save that finds its blob there does (gc's grace across machines)
    assert client.head_object(Bucket=objects.bucket, Key=objects.blob_key(digest))["Metadata"]["aeg-touched"] == "1"
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    assert objects.put_file(path) == (digest, len(data))  # a file: hashed, found there, nothing sent
    other = os.urandom(11 * MiB)
    path.write_bytes(other)
    assert objects.put_file(path) == (hash_bytes(other), len(other))  # parts straight to the digest's key
    assert keys(s3_server, objects.bucket) == sorted([objects.blob_key(digest), objects.blob_key(hash_bytes(other))])
    assert not s3_server.client().list_multipart_uploads(Bucket=objects.bucket).get("Uploads")
    assert objects.get_bytes(hash_bytes(other)) == other
    local = objects.local_file(digest)
    with open(local, "rb") as f:
        assert local.startswith(str(tmp_path / "cache")) and f.read() == data
    assert oct(os.stat(local).st_mode & 0o777) == "0o444"


def test_downloads_are_verified_and_cached(objects: ObjectStore, s3_server: SeaweedServer, tmp_path: Any) -> None:
    digest = objects.put_bytes(b"the real bytes")
    first = objects.local_file(digest)
    assert objects.local_file(digest) == first
    s3_server.client().put_object(Bucket=objects.bucket, Key=objects.blob_key(digest), Body=b"tampered")
    other = ObjectStore(objects.location, cache=str(tmp_path / "other-cache"))
    with pytest.raises(CorruptionError, match=digest):
        other.local_file(digest)
    assert not os.path.exists(os.path.join(str(tmp_path / "other-cache"), "blobs", digest[:2], digest[2:]))
    assert [n for _, _, names in os.walk(tmp_path / "other-cache") for n in names] == []  # no partial file left
    with pytest.raises(CorruptionError):
        other.get_bytes(digest)
    with pytest.raises(NotFoundError, match="not in s3://"):
        other.local_file("0" * 64)


def test_a_missing_bucket_is_one_clear_error_within_seconds(s3_env: dict[str, str]) -> None:
    started = time.monotonic()
    with pytest.raises(ObjectStoreError) as info:
        ObjectStore(S3Location.parse("s3://no-such-bucket-here/x")).check()
    assert time.monotonic() - started < 5
    message = str(info.value)
    assert "bucket 'no-such-bucket-here'" in message and "does not exist" in message
    assert "never creates buckets" in message and "\n" not in message
    with pytest.raises(ObjectStoreError, match="no-such-bucket-here"):
        ObjectStore(S3Location.parse("s3://no-such-bucket-here/x")).put_bytes(b"x")


def test_bad_credentials_are_one_clear_error_without_the_secret(
    s3_bucket: str, s3_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "WRONG-SECRET-" + "q" * 20
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", wrong)
    caplog.set_level(logging.DEBUG)
    objects = ObjectStore(S3Location(s3_bucket, "p"))
    seen = [repr(objects), repr(objects.settings)]
    started = time.monotonic()
    for call in (objects.check, lambda: objects.put_bytes(b"x"), lambda: objects.get_bytes("1" * 64)):
        with pytest.raises(ObjectStoreError) as info:
            call()
        seen.append(str(info.value))
        assert f"bucket {s3_bucket!r}" in str(info.value) and "refused the credentials" in str(info.value)
    assert time.monotonic() - started < 10
    text = "\n".join(seen) + caplog.text
    assert wrong not in text and s3_env["AWS_SECRET_ACCESS_KEY"] not in text


def test_an_endpoint_nobody_answers_is_one_error_within_seconds(
    s3_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (port,) = free_ports(1)
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    started = time.monotonic()
    with pytest.raises(
        ObjectStoreError, match=r"cannot reach bucket 'b-x1' at http://127\.0\.0\.1:\d+ .*AWS_ENDPOINT_URL"
    ):
        ObjectStore(S3Location("b-x1")).check()
    assert time.monotonic() - started < 10


def test_the_server_stopped_then_back_fails_fast_then_works(objects: ObjectStore, s3_server: SeaweedServer) -> None:
    digest = objects.put_bytes(b"before")
    s3_server.stop()
    try:
        started = time.monotonic()
        with pytest.raises(ObjectStoreError, match="cannot reach"):
            objects.put_bytes(b"while down")
        assert time.monotonic() - started < 10
    finally:
        s3_server.start()
    assert objects.get_bytes(digest) == b"before"
    assert objects.get_bytes(objects.put_bytes(b"after")) == b"after"


def test_one_lease_holder_at_a_time_and_expiry(objects: ObjectStore) -> None:
    a = objects.lease("maintenance", seconds=2, holder="machine-a")
    b = objects.lease("maintenance", seconds=2, holder="machine-b")
    assert a.acquire() and a.held
    assert not b.acquire() and not b.held
    assert a.renew()
    time.sleep(1.2)
    assert a.renew() and not b.acquire()  # renewed: still not expired
    time.sleep(3.5)  # a stops renewing (its machine died)
    assert b.acquire()
    assert not a.renew() and not a.held  # a finds it lost the lease
    a.release()  # a no-op: a must not delete b's lease
    assert not objects.lease("maintenance", seconds=2, holder="c").acquire()
    b.release()
    assert objects.lease("maintenance", seconds=2, holder="c").acquire()


def test_racing_for_a_free_lease_exactly_one_wins(objects: ObjectStore) -> None:
    leases = [ObjectStore(objects.location).lease("race", holder=f"m{i}") for i in range(8)]
    won: list[bool] = []
    threads = [threading.Thread(target=lambda lease=lease: won.append(lease.acquire())) for lease in leases]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(won) == [False] * 7 + [True]


def test_lease_type_is_exported() -> None:
    assert Lease.__module__ == "aeg_jupyter.storage.objectstore"


def test_without_the_server_env_a_client_fails_on_loopback_not_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    assert os.environ["AWS_ENDPOINT_URL"] == "http://127.0.0.1:9"  # tests/s3/conftest.py's guard
    with pytest.raises(ObjectStoreError, match=r"^no credentials for bucket 'any-bucket' at .*AWS_ACCESS_KEY_ID"):
        ObjectStore(S3Location("any-bucket"), max_attempts=1).check()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    with pytest.raises(ObjectStoreError, match=r"cannot reach bucket 'any-bucket' at http://127\.0\.0\.1:9 "):
        ObjectStore(S3Location("any-bucket"), max_attempts=1).check()


class AppendWhileSaving(ObjectStore):
    """A real ObjectStore whose file is appended to between its hash and its upload (a writer still busy)."""

    victim: str = ""

    def exists_key(self, key: str) -> bool:
        found = super().exists_key(key)
        if self.victim:
            with open(self.victim, "ab") as f:
                f.write(b"more")
        return found


def test_a_file_that_changes_while_saved_is_refused_and_nothing_wrong_is_kept(
    objects: ObjectStore, s3_server: SeaweedServer, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(objmod, "PART_SIZE", 5 * MiB)
    monkeypatch.setattr(objmod, "MULTIPART_MIN", 5 * MiB)
    path = tmp_path / "growing.log"
    data = os.urandom(6 * MiB)
    path.write_bytes(data)
    busy = AppendWhileSaving(objects.location)
    busy.victim = str(path)
    with pytest.raises(InvalidInputError, match="changed while it was being saved; save it again"):
        busy.put_file(path)
    assert keys(s3_server, objects.bucket) == []  # not kept under the digest of other bytes
    objects.put_bytes(data)  # the same digest, stored properly by another save
    path.write_bytes(data)
    with pytest.raises(InvalidInputError):
        busy.put_file(path)
    assert keys(s3_server, objects.bucket) == [objects.blob_key(hash_bytes(data))]  # theirs is left alone


def test_holding_a_lease_renews_it_until_the_block_ends(objects: ObjectStore) -> None:
    other = objects.lease("maintenance", seconds=2, holder="other")
    with objects.lease("maintenance", seconds=2, holder="runner").holding() as lost:
        assert lost is not None
        time.sleep(3.5)  # longer than the lease: only the renewals keep it
        assert not other.acquire() and not lost.is_set()
        with other.holding() as theirs:
            assert theirs is None  # held: nothing to do
    assert other.acquire()  # released at the end of the block
    other.release()


def test_the_root_marker_is_created_once_and_checked(
    objects: ObjectStore, s3_server: SeaweedServer, tmp_path: Any
) -> None:
    machines = [ObjectStore(objects.location, cache=str(tmp_path / f"m{i}")) for i in range(4)]
    markers: list[dict[str, Any]] = []
    threads = [threading.Thread(target=lambda m=m: markers.append(m.ensure_marker())) for m in machines]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert markers == [{"format": 2, "hash": "blake3", "created_by": "aeg_jupyter"}] * 4
    assert keys(s3_server, objects.bucket) == ["team/aeg/aeg-store.json"]
    assert len({m.local_state() for m in machines}) == 4  # one local directory per machine (its cache)
    assert machines[0].local_state().startswith(str(tmp_path / "m0"))
    with pytest.raises(StoreFormatError, match=r"s3://.+/elsewhere is not a store \(no aeg-store.json\)"):
        ObjectStore(S3Location(objects.bucket, "elsewhere")).read_marker()
    s3_server.client().put_object(Bucket=objects.bucket, Key="other/aeg-store.json", Body=b"<html>")
    with pytest.raises(StoreFormatError, match="is not an aeg_jupyter store marker"):
        ObjectStore(S3Location(objects.bucket, "other")).ensure_marker()
    with pytest.raises(ObjectStoreError, match="does not exist"):
        ObjectStore(S3Location("no-such-bucket-here", "x")).ensure_marker()
