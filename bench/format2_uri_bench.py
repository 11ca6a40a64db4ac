"""A ``cas://`` URI lookup on a format-2 store: ``get(uri)`` / ``load_json(uri)`` from the ``uri`` column.

    python bench/format2_uri_bench.py --quick            # 10k artifacts, ~20 s
    python bench/format2_uri_bench.py -n 1000000 --walk 100000

The store is ``format2_bench.build``'s (N small-JSON artifacts, content inline, compacted). In a fresh
process (imports excluded): open, then the first ``get(uri)`` (it builds the ``uri -> rows`` index of
each data file the URI statistics do not rule out), the first ``load_json`` of another URI, then the
median of 50 lookups of different URIs (``get`` + ``load_json``), and the peak RSS. ``--walk N``: at N
artifacts the lookup as it was before ``DeltaCatalog.by_uri`` (every live artifact built, then compared),
for the ratio. Prints one JSON line per size.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from typing import Any

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "bench"))

from format2_bench import build  # noqa: E402

CHILD = """
import json, sys, time, statistics
from blake3 import blake3
import numpy, pyarrow, pyarrow.parquet, deltalake
from aeg_jupyter.core.store import open_store
root, n, walk = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
def uri(k):
    return "cas://blake3/" + blake3(b'{"step": %d, "note": "a small json artifact", "ok": true}' % k).hexdigest()
def peak():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
t0 = time.perf_counter()
store = open_store(root, format=2)
arts = store.artifacts
t1 = time.perf_counter()
first = arts.get(uri(n // 2))
t2 = time.perf_counter()
doc = arts.load_json(uri(n // 3))
t3 = time.perf_counter()
times = []
for k in range(1, 51):
    s = time.perf_counter()
    arts.load_json(arts.get(uri((k * 7919) % n)))
    times.append(time.perf_counter() - s)
out = {"n": n, "open_ms": 1e3 * (t1 - t0), "first_get_ms": 1e3 * (t2 - t1), "first_load_json_ms": 1e3 * (t3 - t2),
       "warm_get_load_ms_median": 1e3 * statistics.median(times), "peak_rss_mb": peak(), "ok": doc["step"] == n // 3}
if walk:
    s = time.perf_counter()
    hits = [a for a in arts.catalog.live() if a.uri == uri(n // 4)]
    out["walk_ms"] = 1e3 * (time.perf_counter() - s)
    out["walk_peak_rss_mb"] = peak()
    assert len(hits) == 1
print(json.dumps(out))
"""


def measure(n: int, tmp: str, walk: bool) -> dict[str, Any]:
    root = os.path.join(tmp, f"uri{n}")
    built = build(root, n)
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(CHILD), root, str(n), "1" if walk else "0"],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr)
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    out["files"] = built["files"]
    out["load_average"] = os.getloadavg()[0]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, action="append", help="store sizes (repeatable); default 100000")
    ap.add_argument("--walk", type=int, action="append", default=[], help="sizes to time the old full walk at")
    ap.add_argument("--quick", action="store_true", help="10,000 artifacts")
    ap.add_argument("--tmp", default=None, help="scratch directory for the stores")
    args = ap.parse_args()
    sizes = [10_000] if args.quick else (args.n or [100_000])
    walks = set(args.walk) | ({10_000} if args.quick else set())
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        for n in sizes:
            print(json.dumps(measure(n, tmp, n in walks)), flush=True)


if __name__ == "__main__":
    main()
