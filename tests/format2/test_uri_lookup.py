"""A ``cas://`` URI resolves to its newest live artifact on both formats; on format 2 from the ``uri``
column (``DeltaCatalog.by_uri``), building no artifact but the hits and skipping data files whose URI
statistics cannot hold it. Real stores in tmp_path, a real child process for another writer's rows.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
from conftest import run_child

from aeg_jupyter.base.errors import NotFoundError
from aeg_jupyter.base.hashing import hash_bytes
from aeg_jupyter.base.models import URI_PREFIX
from aeg_jupyter.core.catalog2 import DeltaCatalog
from aeg_jupyter.core.store import Store
from aeg_jupyter.storage.schemas2 import INLINE_MAX


def _built(catalog: DeltaCatalog) -> int:
    """Artifacts the columnar catalog has built from committed rows so far."""
    return sum(len(seg.built) for seg in catalog.columns._segments.values())


@pytest.mark.parametrize("fmt", [1, 2])
def test_a_uri_resolves_to_its_newest_live_artifact(tmp_path: Any, fmt: int) -> None:
    root = str(tmp_path / "s")
    store = Store(root, format=fmt)
    arts = store.artifacts
    big = os.urandom(INLINE_MAX + 10)  # a blob file on both formats
    first = arts.save_json({"same": 1}, kind="config", name="a.json")
    for i in range(20):
        arts.save_json({"other": i}, kind="note")
    store.flush()  # `first` committed, the second one pending (format 2) / in the spool
    second = arts.save_json({"same": 1}, kind="result", name="b.json")
    blob = arts.save_bytes(big, kind="blob", name="big.bin")
    assert first.uri == second.uri
    assert arts.get(first.uri).artifact_id == second.artifact_id
    assert arts.load_json(first.uri) == {"same": 1}
    assert arts.get(blob.uri).artifact_id == blob.artifact_id
    with open(arts.local_file(blob.uri), "rb") as fh:
        assert fh.read() == big
    arts.delete(second)
    assert arts.get(first.uri).artifact_id == first.artifact_id  # the older one answers now
    store.flush()
    assert arts.get(first.uri).artifact_id == first.artifact_id
    arts.delete(first)
    with pytest.raises(NotFoundError, match="no artifact has the content"):
        arts.get(first.uri)
    missing = URI_PREFIX + hash_bytes(b"never saved")
    with pytest.raises(NotFoundError):
        arts.get(missing)
    store.close()
    again = Store(root, format=fmt)  # a fresh catalog: the same answers from the tables
    try:
        assert again.artifacts.get(blob.uri).artifact_id == blob.artifact_id
        with pytest.raises(NotFoundError):
            again.artifacts.get(first.uri)
    finally:
        again.close()


@pytest.mark.parametrize("fmt", [1, 2])
def test_a_uri_saved_by_another_process_resolves(tmp_path: Any, fmt: int) -> None:
    root = str(tmp_path / "s")
    store = Store(root, format=fmt)
    try:
        out = run_child(
            """
            import json, sys
            from aeg_jupyter.core.store import Store
            s = Store(sys.argv[1], format=int(sys.argv[2]))
            a = s.artifacts.save_json({"from": "child"}, kind="config")
            s.flush()
            b = s.artifacts.save_json({"from": "child", "n": 2}, kind="config")
            print(json.dumps([a.artifact_id, a.uri, b.artifact_id, b.uri]))
            import os
            os._exit(0)  # b stays in the child's spool
            """,
            root,
            str(fmt),
        )
        a_id, a_uri, b_id, b_uri = json.loads(out.stdout.strip().splitlines()[-1])
        assert store.artifacts.get(a_uri).artifact_id == a_id
        assert store.artifacts.get(b_uri).artifact_id == b_id
        assert store.artifacts.load_json(b_uri) == {"from": "child", "n": 2}
    finally:
        store.close()


def test_format_2_builds_only_the_hits_and_skips_files_by_their_uri_statistics(tmp_path: Any) -> None:
    root = str(tmp_path / "s")
    store = Store(root, format=2)
    store.artifact_table.background = False  # no flusher: the two flushes are the two commits
    arts = store.artifacts
    # contents ordered by digest: the first commit's URIs all sort below the second's
    docs = sorted((json.dumps({"i": i}).encode() for i in range(40)), key=hash_bytes)
    low, high = docs[:20], docs[20:]
    for d in low:
        arts.save_bytes(d, kind="doc")
    store.flush()
    for d in high:
        arts.save_bytes(d, kind="doc")
    store.flush()
    store.close()

    store = Store(root, format=2)
    try:
        catalog = store.artifacts.catalog
        assert isinstance(catalog, DeltaCatalog)
        files = catalog.columns._segments["doc"].files
        assert len(files) == 2 and all(f.min_uri and f.max_uri for f in files)
        assert max(f.max_uri for f in files if f.min_uri == min(g.min_uri for g in files)) < max(
            f.min_uri for f in files
        )
        uri = URI_PREFIX + hash_bytes(high[7])
        art = store.artifacts.get(uri)
        assert store.artifacts.load_bytes(art) == high[7]
        assert _built(catalog) == 1  # only the hit became an Artifact
        indexed = set(store.artifact_table._uri_index)
        assert indexed == {f.path for f in files if f.min_uri <= uri <= f.max_uri}  # the other file was skipped
        assert len(indexed) == 1
        # every URI of both files resolves, each to its own artifact
        for d in low + high:
            u = URI_PREFIX + hash_bytes(d)
            assert store.artifacts.get(u).uri == u
        assert _built(catalog) == 40
    finally:
        store.close()
