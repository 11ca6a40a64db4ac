"""Roots written as URLs (issue 14, item 1): never a local folder named ``s3:``, always a clear error or the store.

Every way a root reaches the package is tried: ``connect(root)``, ``$AEG_STORE``, ``%config AegMagics.store``,
``%load_ext`` under ``$AEG_STORE`` and ``aeg --store``. After each, the working directory is still empty.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from IPython.core.error import UsageError

import aeg_jupyter
from aeg_jupyter.base.errors import InvalidInputError, ObjectStoreError
from aeg_jupyter.frontends.cli import main
from aeg_jupyter.storage.objectstore import S3Location, is_url, resolve_root

OTHER_URLS = ["gs://bucket/x", "az://container/x", "http://127.0.0.1:1/x", "file:///tmp/x", "S3A://bucket/x"]
BAD_S3 = ["s3://", "s3:///x", "s3://B/x", "s3://a/x", "s3://bucket/../x", "s3://bucket/x?versionId=1"]


def entries(path: Any) -> list[str]:
    return sorted(os.listdir(path))


@pytest.fixture
def cwd(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.delenv("AEG_STORE", raising=False)
    return work


@pytest.mark.parametrize("url", [*OTHER_URLS, *BAD_S3])
def test_connect_refuses_a_url_it_cannot_open_and_makes_no_folder(cwd: Any, url: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        aeg_jupyter.connect(url)
    message = str(info.value)
    assert repr(url) in message or url in message
    assert "s3://bucket/prefix" in message  # the supported form is named
    assert entries(cwd) == []


def test_connect_to_s3_without_a_server_is_one_error_naming_the_bucket_and_makes_no_folder(cwd: Any) -> None:
    # (s3:// roots open since issue 14 step 4a; here the endpoint is a loopback port where nobody answers)
    with pytest.raises(ObjectStoreError, match=r"bucket 'team-bucket' at http://127\.0\.0\.1:9") as info:
        aeg_jupyter.connect("s3://team-bucket/runs/")
    assert "\n" not in str(info.value)
    assert entries(cwd) == []  # before: a folder 's3:' with a store in it
    assert not os.path.exists(os.environ["AEG_CACHE"])  # nor any local state for a root that did not open


def test_aeg_store_env_url_is_refused_by_connect(cwd: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AEG_STORE", "gs://bucket/x")
    with pytest.raises(InvalidInputError, match="gs:// is not a supported store location"):
        aeg_jupyter.connect()
    assert entries(cwd) == []


def test_load_ext_under_an_aeg_store_url_is_one_usage_error(
    ipython_shell: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AEG_STORE", "gs://bucket/x")
    before = entries(os.getcwd())
    with pytest.raises(UsageError, match=r"aeg_jupyter: store root 'gs://bucket/x': gs:// is not a supported"):
        ipython_shell.run_line_magic("load_ext", "aeg_jupyter")
    assert entries(os.getcwd()) == before


def test_config_store_url_is_one_error_and_keeps_the_old_store(ip: Any, caplog: pytest.LogCaptureFixture) -> None:
    url_said = "%config AegMagics.store: store root {url!r}: "
    old = ip.user_ns["context"]
    before = entries(os.getcwd())
    for url, said in (("s3://bucket/team", "bucket 'bucket' at http://127.0.0.1:9"), ("gs://bucket/team", url_said)):
        caplog.clear()
        ip.run_line_magic("config", f"AegMagics.store = {url!r}")  # %config logs the UsageError
        assert [r.getMessage() for r in caplog.records] == [caplog.records[0].getMessage()]
        assert said.format(url=url) in caplog.records[0].getMessage()
        assert ip.user_ns["context"] is old and not old.store.closed
    assert entries(os.getcwd()) == before  # no 's3:' folder beside the store


def test_configured_store_url_at_load_ext_is_one_usage_error(ipython_shell: Any) -> None:
    ipython_shell.config.AegMagics.store = "s3://bucket/team"
    with pytest.raises(UsageError, match=r"^aeg_jupyter: .*bucket 'bucket' at http://127\.0\.0\.1:9"):
        ipython_shell.run_line_magic("load_ext", "aeg_jupyter")
    assert entries(os.getcwd()) == []


@pytest.mark.parametrize(
    "argv",
    [
        ["--store", "s3://bucket/x", "ls"],
        ["--store=gs://b1/x", "status"],
        ["log", "train", "loss=1", "--store", "s3://bucket/x"],
    ],
)
def test_cli_store_url_exits_1_with_one_line(cwd: Any, capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("aeg: ") and err.count("\n") == 1, err
    assert "store root '" in err or "bucket 'bucket' at http://127.0.0.1:9" in err, err
    assert "no store at" not in err  # not the local-path message with the cwd glued in front
    assert entries(cwd) == []


def test_cli_store_env_url(cwd: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AEG_STORE", "az://container/x")
    assert main(["ls"]) == 1
    assert "az:// is not a supported store location" in capsys.readouterr().err
    assert entries(cwd) == []


def test_local_paths_are_still_local(cwd: Any) -> None:
    # names that contain ':' or 's3' but are not URLs stay paths
    for name in ("s3", "s3:bucket", "./s3://x" if os.sep == "/" else "s3"):
        assert not is_url(name)
        assert resolve_root(name) == os.path.abspath(name)
    ctx = aeg_jupyter.connect("s3:bucket")
    try:
        assert ctx.store.root == os.path.join(str(cwd), "s3:bucket")
    finally:
        ctx.close()


def test_s3_location_parsing() -> None:
    assert resolve_root("s3://my.bucket-1") == S3Location("my.bucket-1", "")
    loc = resolve_root("s3://bucket//a/b/")
    assert isinstance(loc, S3Location)
    assert (loc.url, loc.key("x")) == ("s3://bucket/a/b", "a/b/x")
