"""s3:// roots against SeaweedFS on loopback: ``ObjectStore.put_file`` of a new large file vs a plain multipart upload.

    python bench/s3_bench.py --quick          # 64 MiB, 2 rounds: the bench still runs (~20 s)
    python bench/s3_bench.py                  # 256 MiB, 3 rounds (the issue's budget: <= 1.3x)

Starts its own ``weed mini`` (the fixture of tests/s3, loopback only), writes a random file, then
alternates, each round with new bytes (so every upload is of a *new* file, as the budget says):

- plain: boto3's ``upload_file`` (s3transfer's multipart upload, same part size and threads as ours)
  of the file to a fixed key: the floor, same client library;
- ours: ``ObjectStore.put_file`` (blake3 of the file, then a multipart upload straight to
  ``blobs/<digest>`` completed with ``If-None-Match: *``: the file is read twice, the second time from
  the page cache);
- one read: ``ObjectStore.put_stream`` (each chunk hashed and sent as it is read, to a staging key,
  then one server-side copy to ``blobs/<digest>`` with ``If-None-Match: *``, staging removed): the
  design for streams, measured against ``put_file``'s.

Writes ``bench/results/s3_bench.json`` and ``.md`` (``--out DIR`` to put them elsewhere).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from typing import Any

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from aeg_jupyter.storage import objectstore as objmod  # noqa: E402
from aeg_jupyter.storage.objectstore import ObjectStore, S3Location  # noqa: E402
from tests.s3.conftest import SeaweedServer  # noqa: E402

MiB = 1 << 20


def refill(path: str, size: int) -> None:
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 16 * MiB)
            f.write(os.urandom(n))
            left -= n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--mib", type=int, default=None)
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--out", default=os.path.join(REPO, "bench", "results"))
    args = ap.parse_args()
    mib = args.mib or (64 if args.quick else 256)
    rounds = args.rounds or (2 if args.quick else 3)
    size = mib * MiB
    from boto3.s3.transfer import TransferConfig

    with tempfile.TemporaryDirectory(prefix="aeg-s3-bench-") as tmp:
        server = SeaweedServer(os.path.join(tmp, "server"))
        os.makedirs(server.workdir, exist_ok=True)
        server.start()
        try:
            os.environ.update(server.env())
            os.environ["AEG_CACHE"] = os.path.join(tmp, "cache")
            bucket = server.new_bucket("bench")
            client = server.client(max_pool_connections=objmod.UPLOAD_THREADS * 2)
            transfer = TransferConfig(
                multipart_threshold=objmod.MULTIPART_MIN,
                multipart_chunksize=objmod.PART_SIZE,
                max_concurrency=objmod.UPLOAD_THREADS,
            )
            objects = ObjectStore(S3Location(bucket, "store"))
            path = os.path.join(tmp, "big.bin")
            times: dict[str, list[float]] = {"plain": [], "ours": [], "one_read_staging_copy": []}

            def plain() -> None:
                client.upload_file(path, bucket, "plain/big.bin", Config=transfer)

            def ours() -> None:
                objects.put_file(path)

            def one_read_staging_copy() -> None:
                with open(path, "rb") as f:
                    objects.put_stream(f, size)

            calls = {"plain": plain, "ours": ours, "one_read_staging_copy": one_read_staging_copy}
            for r in range(rounds):
                order = list(calls) if r % 2 == 0 else list(reversed(calls))
                for name in order:
                    refill(path, size)  # new bytes each time: never a dedup hit
                    started = time.perf_counter()
                    calls[name]()
                    times[name].append(time.perf_counter() - started)
        finally:
            server.stop()
    med = {k: statistics.median(v) for k, v in times.items()}
    result: dict[str, Any] = {
        "size_mib": mib,
        "rounds": rounds,
        "part_mib": objmod.PART_SIZE // MiB,
        "threads": objmod.UPLOAD_THREADS,
        "seconds": times,
        "median_s": med,
        "ratio_ours_vs_plain": med["ours"] / med["plain"],
        "ratio_one_read_staging_copy_vs_plain": med["one_read_staging_copy"] / med["plain"],
        "load_average": os.getloadavg(),
    }
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "s3_bench.json"), "w") as f:
        json.dump(result, f, indent=1)
    lines = [
        f"# s3 bench: save_file of a new {mib} MiB file (SeaweedFS weed mini on loopback)",
        "",
        f"{rounds} rounds alternating, new random bytes before every upload; parts of {result['part_mib']} MiB, "
        f"{result['threads']} in flight; load average {', '.join(f'{x:.1f}' for x in result['load_average'])}.",
        "",
        "| upload | median | MiB/s | ratio to plain | budget |",
        "| --- | --- | --- | --- | --- |",
        f"| plain multipart (boto3 upload_file) | {med['plain']:.2f} s | {mib / med['plain']:.0f} | 1.00x | |",
        f"| ObjectStore.put_file (hash, then parts straight to the digest's key) | {med['ours']:.2f} s | "
        f"{mib / med['ours']:.0f} | {result['ratio_ours_vs_plain']:.2f}x | <= 1.3x |",
        f"| ObjectStore.put_stream (one read: parts to a staging key, then a server-side copy) | "
        f"{med['one_read_staging_copy']:.2f} s | {mib / med['one_read_staging_copy']:.0f} | "
        f"{result['ratio_one_read_staging_copy_vs_plain']:.2f}x | |",
        "",
    ]
    with open(os.path.join(args.out, "s3_bench.md"), "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
