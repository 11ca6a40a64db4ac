"""storage/uploads.py on a real SeaweedFS (issue 14 step 4b item 1): nothing acknowledged is lost when
the server is down, when the process is killed mid-upload, or when the staging bound is hit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from aeg_jupyter.base.errors import ObjectStoreError
from aeg_jupyter.base.hashing import hash_bytes
from aeg_jupyter.storage.objectstore import ObjectStore, S3Location
from aeg_jupyter.storage.uploads import UploadQueue, max_bytes_from_env

from .conftest import SeaweedServer

MiB = 1 << 20
PREFIX = "team/aeg"


@pytest.fixture
def objects(s3_bucket: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> ObjectStore:
    monkeypatch.setenv("AEG_CACHE", str(tmp_path / "cache"))
    return ObjectStore(S3Location(s3_bucket, PREFIX), connect_timeout=1.0, max_attempts=1)


def blob_keys(server: SeaweedServer, bucket: str) -> list[str]:
    """Every key under the root (blobs and anything else), paging through the listing."""
    client = server.client()
    keys: list[str] = []
    token: dict[str, str] = {}
    while True:
        listing = client.list_objects_v2(Bucket=bucket, Prefix=PREFIX + "/", **token)
        keys += [o["Key"] for o in listing.get("Contents", [])]
        if not listing.get("IsTruncated"):
            return sorted(keys)
        token = {"ContinuationToken": listing["NextContinuationToken"]}


def digest_of_key(key: str) -> str:
    parts = key.split("/")
    return parts[-2] + parts[-1]


def write_blob(tmp_path: Any, i: int, size: int) -> tuple[str, str]:
    data = os.urandom(size)
    path = tmp_path / f"src-{i}.bin"
    path.write_bytes(data)
    return str(path), hash_bytes(data)


def assert_landed_once(server: SeaweedServer, bucket: str, digests: dict[str, bytes | str]) -> None:
    keys = blob_keys(server, bucket)
    assert all(k.startswith(f"{PREFIX}/blobs/") for k in keys), keys  # no staging keys left behind
    landed = [digest_of_key(k) for k in keys]
    assert sorted(landed) == sorted(digests), "every staged blob lands, and nothing else"
    client = server.client()
    for digest in digests:
        body = client.get_object(Bucket=bucket, Key=f"{PREFIX}/blobs/{digest[:2]}/{digest[2:]}")["Body"].read()
        assert hash_bytes(body) == digest


def test_a_staged_blob_lands_and_leaves_the_staging_area(
    objects: ObjectStore, s3_server: SeaweedServer, s3_bucket: str, tmp_path: Any
) -> None:
    queue = UploadQueue(objects.local_state(), objects)
    try:
        src, digest = write_blob(tmp_path, 0, 1000)
        staged = queue.stage(src, digest)
        assert os.path.exists(src)  # copied, not moved
        assert queue.drain(30)
        assert not os.path.exists(staged)
        assert queue.status().pending == 0 and queue.status().last_error is None
        assert_landed_once(s3_server, s3_bucket, {digest: ""})
        # the staged bytes were linked into the verified download cache: no download needed
        cached = queue.local_file(digest)
        assert cached.startswith(objects.cache) and hash_bytes(Path(cached).read_bytes()) == digest
        # staging the same digest again after it landed is one more (harmless) create-if-absent
        queue.stage(src, digest)
        assert queue.drain(30)
        assert_landed_once(s3_server, s3_bucket, {digest: ""})
    finally:
        queue.close()


def test_a_moved_source_and_a_changed_source(objects: ObjectStore, tmp_path: Any) -> None:
    queue = UploadQueue(objects.local_state(), objects, start=False)
    src, digest = write_blob(tmp_path, 1, 5000)
    staged = queue.stage(src, digest, move=True)
    assert not os.path.exists(src) and os.path.exists(staged)
    assert queue.stage(staged, digest) == staged  # already staged: not twice
    assert queue.status().pending == 1
    other, _ = write_blob(tmp_path, 2, 100)
    with pytest.raises(Exception, match="changed while it was being saved"):
        queue.stage(other, hash_bytes(b"something else"))
    assert queue.status().pending == 1
    assert sorted(os.listdir(queue.dir)) == [os.path.basename(staged)]  # no temp file left
    # a store's own read-only local copy is hard-linked in: no bytes copied, the copy stays
    kept, kept_digest = write_blob(tmp_path, 3, 7000)
    os.chmod(kept, 0o444)
    linked = queue.stage(kept, kept_digest, link=True)
    assert os.path.exists(kept) and os.stat(linked).st_ino == os.stat(kept).st_ino
    assert queue.status().pending == 2 and queue.status().bytes == 12000


def test_the_server_stopped_mid_run_every_staged_blob_lands_once(
    objects: ObjectStore, s3_server: SeaweedServer, s3_bucket: str, tmp_path: Any
) -> None:
    queue = UploadQueue(objects.local_state(), objects)
    queue.backoff_first, queue.backoff_cap = 0.1, 1.0
    digests: dict[str, bytes | str] = {}
    try:
        for i in range(5):
            src, digest = write_blob(tmp_path, i, 2000 + i)
            queue.stage(src, digest)
            digests[digest] = ""
        s3_server.stop()
        try:
            stopped = time.monotonic()
            for i in range(5, 15):  # saves keep being acknowledged while nobody answers
                size = 20 * MiB if i == 9 else 3000 + i  # one multipart blob among them
                src, digest = write_blob(tmp_path, i, size)
                started = time.perf_counter()
                queue.stage(src, digest)
                assert time.perf_counter() - started < 2.0  # local-disk speed, never the network's
                digests[digest] = ""
            while time.monotonic() - stopped < 4.0 or queue.status().last_error is None:
                assert time.monotonic() - stopped < 60, "the uploader never reported the outage"
                time.sleep(0.2)
            status = queue.status()
            assert status.pending >= 10 and status.bytes >= 20 * MiB
            assert status.oldest_age is not None and status.oldest_age >= 3.0
            assert "cannot reach" in status.last_error and s3_server.secret_key not in status.last_error
            assert s3_server.access_key not in str(status)
        finally:
            s3_server.start()
        assert queue.drain(90), queue.status()
        assert queue.status().pending == 0 and queue.status().last_error is None
        assert os.listdir(queue.dir) == []
        assert_landed_once(s3_server, s3_bucket, digests)
    finally:
        queue.close()


def test_reads_of_a_staged_blob_work_offline(
    objects: ObjectStore, s3_server: SeaweedServer, s3_bucket: str, tmp_path: Any
) -> None:
    s3_server.stop()
    try:
        queue = UploadQueue(objects.local_state(), objects)
        src, digest = write_blob(tmp_path, 0, 4321)
        queue.stage(src, digest, move=True)
        assert queue.staged_path(digest) is not None
        path = queue.local_file(digest)  # the network is down: from the staging area
        with open(path, "rb") as f:
            assert hash_bytes(f.read()) == digest
    finally:
        s3_server.start()
    assert queue.drain(60)
    with open(path, "rb") as f:  # the path handed out still reads after the upload
        assert hash_bytes(f.read()) == digest
    queue.close()
    assert_landed_once(s3_server, s3_bucket, {digest: ""})


CHILD = r"""
import os, sys
from aeg_jupyter.base.hashing import hash_bytes
from aeg_jupyter.storage.objectstore import ObjectStore, S3Location
from aeg_jupyter.storage.uploads import UploadQueue
bucket, work = sys.argv[1], sys.argv[2]
objects = ObjectStore(S3Location(bucket, "team/aeg"))
queue = UploadQueue(objects.local_state(), objects)
for i in range(int(sys.argv[3])):
    size = 24 * 1024 * 1024 if i % 3 == 0 else 1000 + i
    data = os.urandom(size)
    src = os.path.join(work, f"child-{i}.bin")
    with open(src, "wb") as f:
        f.write(data)
    digest = hash_bytes(data)
    queue.stage(src, digest, move=True)
    print("acked", digest, flush=True)
print("done", flush=True)
queue.drain()
print("drained", flush=True)
"""


def test_a_writer_killed_mid_upload_lands_everything_it_acknowledged_at_the_next_open(
    objects: ObjectStore, s3_server: SeaweedServer, s3_bucket: str, tmp_path: Any, s3_env: dict[str, str]
) -> None:
    env = dict(os.environ) | s3_env | {"AEG_CACHE": objects.cache, "HOME": str(tmp_path)}
    work = tmp_path / "work"
    work.mkdir()
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, s3_bucket, str(work), "7"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    acked: list[str] = []
    client = s3_server.client()
    try:
        assert child.stdout is not None
        for line in child.stdout:
            if line.startswith("acked"):
                acked.append(line.split()[1])
            if line.startswith("done"):
                break
        # kill it while a multipart upload of a large blob is in flight (or at the latest after 30 s)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads"):
                break
            time.sleep(0.02)
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)
    assert len(acked) == 7, child.stderr.read() if child.stderr else ""
    landed_before = {digest_of_key(k) for k in blob_keys(s3_server, s3_bucket) if "/blobs/" in k}
    assert not set(acked) <= landed_before, "the kill came after every upload: the test proved nothing"
    # the next open on the same AEG_CACHE finishes the dead writer's uploads
    queue = UploadQueue(objects.local_state(), objects)
    try:
        assert queue.status().pending >= len(set(acked) - landed_before)
        assert queue.drain(120), queue.status()
    finally:
        queue.close()
    assert_landed_once(s3_server, s3_bucket, dict.fromkeys(acked, ""))
    assert os.listdir(queue.dir) == []


def test_the_bound_gives_a_clear_error_and_loses_nothing_acknowledged(
    objects: ObjectStore, s3_server: SeaweedServer, s3_bucket: str, tmp_path: Any
) -> None:
    s3_server.stop()
    acked: dict[str, bytes | str] = {}
    try:
        queue = UploadQueue(objects.local_state(), objects, max_bytes=3 * MiB)
        with pytest.raises(ObjectStoreError) as err:
            for i in range(10):
                src, digest = write_blob(tmp_path, i, MiB)
                queue.stage(src, digest, move=True)
                acked[digest] = ""
        assert len(acked) == 3
        text = str(err.value)
        assert "staging area" in text and "3.0 MiB" in text and "AEG_UPLOAD_MAX_BYTES" in text
        assert "%aeg status" in text and "everything saved before is kept" in text
        assert s3_server.secret_key not in text
        assert os.path.exists(src)  # the refused save's source is untouched
        assert queue.status().pending == 3
        assert len(os.listdir(queue.dir)) == 3  # nothing half-written
    finally:
        s3_server.start()
    assert queue.drain(60), queue.status()
    queue.close()
    assert_landed_once(s3_server, s3_bucket, acked)
    # room again once they landed
    queue = UploadQueue(objects.local_state(), objects, max_bytes=3 * MiB, start=False)
    queue.stage(src, hash_bytes(Path(src).read_bytes()))
    assert queue.status().pending == 1


def test_the_bound_comes_from_the_environment() -> None:
    assert max_bytes_from_env({}) == 8 << 30
    assert max_bytes_from_env({"AEG_UPLOAD_MAX_BYTES": "2G"}) == 2 << 30
    assert max_bytes_from_env({"AEG_UPLOAD_MAX_BYTES": "4096"}) == 4096
    with pytest.raises(Exception, match="AEG_UPLOAD_MAX_BYTES='lots' is not a size"):
        max_bytes_from_env({"AEG_UPLOAD_MAX_BYTES": "lots"})
