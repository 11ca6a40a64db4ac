"""The environment of a run: bounded git diffs, runs without git, capture errors as notes, packages
deduplicated across runs, never an environment variable."""

from __future__ import annotations

import os
import subprocess
from typing import Any

import pytest
from conftest import run

import aeg_jupyter
from aeg_jupyter.core.environment import (
    MAX_DIFF_BYTES,
    capture_environment,
    environment_parts,
    installed_distributions,
)
from aeg_jupyter.core.lineage import run_environment, save_environment


def _git(repo: Any, *args: str) -> None:
    env = {"PATH": os.environ["PATH"], "HOME": str(repo), "GIT_CONFIG_NOSYSTEM": "1"}
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, env=env)


@pytest.fixture
def repo(tmp_path: Any) -> Any:
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    _git(repo, "config", "user.email", "t@example.invalid")
    _git(repo, "config", "user.name", "t")
    (repo / "train.py").write_text("lr = 0.1\n")
    _git(repo, "add", "train.py")
    _git(repo, "commit", "-q", "-m", "first")
    return repo


def test_a_50_mb_uncommitted_diff_is_cut_with_a_note_and_the_commit_kept(repo: Any, store_root: str) -> None:
    line = "x" * 99 + "\n"
    (repo / "train.py").write_text(line * (50 * 1024 * 1024 // len(line)))  # 50 MiB of changes
    env = capture_environment(git_dir=str(repo))
    git = env["git"]
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
    assert git["commit"] == head and git["dirty"] is True
    assert git["truncated"] is True and git["diff_bytes"] > 50 * 1024 * 1024
    assert len(git["diff"].encode()) == MAX_DIFF_BYTES and git["diff"].startswith("diff --git a/train.py b/train.py")
    assert any("only its first" in n and str(MAX_DIFF_BYTES) in n for n in env["notes"])
    ctx = aeg_jupyter.connect(store_root)
    try:
        parts = save_environment(ctx.store.artifacts, env, ctx.origin)
        assert [p.labels["part"] for p in parts] == ["environment", "packages", "git-diff"]
        assert parts[2].size == MAX_DIFF_BYTES  # the store keeps the cut diff, never 50 MB
        kept = run_environment(ctx.store.artifacts, ctx.run_id)
        assert kept is not None and kept["git"]["commit"] == head and kept["git"]["truncated"] is True
        assert kept["git"]["diff"] == git["diff"]
    finally:
        ctx.close()


def test_a_clean_work_tree_has_no_diff_and_a_directory_outside_git_says_so(repo: Any, tmp_path: Any) -> None:
    clean = capture_environment(git_dir=str(repo))["git"]
    assert clean["dirty"] is False and clean["diff"] == "" and clean["truncated"] is False and clean["note"] is None
    outside = tmp_path / "plain"
    outside.mkdir()
    env = capture_environment(git_dir=str(outside))
    assert env["git"]["repo"] is None and "not in a git work tree" in env["git"]["note"]
    assert any("not in a git work tree" in n for n in env["notes"])


def test_capture_errors_become_notes_and_the_run_goes_on(repo: Any, store_root: str, tmp_path: Any) -> None:
    env = capture_environment(git_dir=str(repo), timeout=1e-9, paths=5)  # type: ignore[arg-type]
    assert env["python"] and env["packages"] == {}
    assert any(n.startswith("packages: could not be read (TypeError") for n in env["notes"]), env["notes"]
    assert any("git could not be asked (TimeoutExpired)" in n for n in env["notes"]), env["notes"]
    ctx = aeg_jupyter.connect(store_root)
    ctx.environment = lambda: capture_environment(git_dir=str(repo), timeout=1e-9)
    try:
        art = run(ctx.artifacts().save_text("still saved", kind="note"))
        assert art.kind == "note"
        kept = run_environment(ctx.store.artifacts, ctx.run_id)
        assert kept is not None and any("TimeoutExpired" in n for n in kept["notes"])
    finally:
        ctx.close()


def test_packages_are_one_blob_for_runs_with_the_same_distributions(tmp_path: Any, store_root: str) -> None:
    site = tmp_path / "site"
    (site / "alpha-1.0.dist-info").mkdir(parents=True)
    (site / "Beta_Pkg-2.0b1.dist-info").mkdir()
    egg = site / "gamma.egg-info"
    egg.mkdir()
    (egg / "PKG-INFO").write_text("Metadata-Version: 1.1\nName: Gamma\nVersion: 0.3\n\nbody: Version: 9\n")
    assert installed_distributions([str(site)]) == {"alpha": "1.0", "beta-pkg": "2.0b1", "gamma": "0.3"}
    env = capture_environment(paths=[str(site)])
    first = aeg_jupyter.connect(store_root)
    second = aeg_jupyter.connect(store_root)
    try:
        a = save_environment(first.store.artifacts, env, first.origin)
        b = save_environment(second.store.artifacts, {**env, "python": "9.9.9"}, second.origin)
        assert a[1].uri == b[1].uri and a[0].uri != b[0].uri  # same packages: the same blob
        assert run_environment(first.store.artifacts, first.run_id)["packages"] == env["packages"]
        listed = run(first.artifacts().list(scope="all"))
        assert listed == [] and len(first.store.artifacts) == 0  # the store's own aeg.env rows are not listed
        assert len(run(first.artifacts().list(scope="all", kind="aeg.env"))) == 4
    finally:
        first.close()
        second.close()


def test_no_environment_variable_is_captured(monkeypatch: pytest.MonkeyPatch, repo: Any) -> None:
    monkeypatch.setenv("AEG_TEST_SECRET_TOKEN", "s3cr3t-value-123")
    env = capture_environment(git_dir=str(repo))
    blobs = b"".join(p.data for p in environment_parts(env))
    assert b"s3cr3t-value-123" not in blobs and b"AEG_TEST_SECRET_TOKEN" not in blobs
    assert set(env) == {"python", "executable", "platform", "packages", "git", "notes"}


def test_a_new_run_in_the_kernel_captures_the_environment_again(
    ip: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = ip.user_ns["context"]
    run_a = ctx.run_id
    ip.run_cell("a = %aeg save 'one' --kind note", store_history=True)
    site = tmp_path / "installed-later"
    (site / "aeg_late_dist-0.4.dist-info").mkdir(parents=True)
    monkeypatch.syspath_prepend(str(site))  # as a `%pip install` in the notebook would
    ip.run_cell("%aeg run new after-install", store_history=True)
    ip.run_cell("b = %aeg save 'two' --kind note", store_history=True)
    d = ip.run_cell(f"%aeg diff {run_a} after-install", store_history=True).result
    env = [(c.key, c.a, c.b) for c in d.section("environment")]
    assert env == [("package aeg-late-dist", None, "0.4")], str(d)
    assert "aeg-late-dist" not in run_environment(ctx.store.artifacts, run_a)["packages"]
