"""``python -m aeg_jupyter.demo``: a small training sweep saved to a store, then recalled.

It runs the tutorial's API end to end (save checkpoints with metrics, log epochs, record tool
results), then prints the leaderboard and the latest events, as a notebook would show them.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import shutil
import tempfile

from .api.context import KernelContext, connect
from .core.frames import artifacts_frame, events_frame


async def sweep(context: KernelContext, *, runs: int = 6, epochs: int = 5, seed: int = 0) -> None:
    """Train a toy model per learning rate; save a checkpoint per epoch with its val_acc."""
    arts, mem = context.artifacts(), context.memory()
    rng = random.Random(seed)
    for i in range(runs):
        lr = 10 ** rng.uniform(-4, -1)
        exp = "A" if i % 2 == 0 else "B"
        acc = 0.5
        for epoch in range(1, epochs + 1):
            acc += (0.98 - acc) * (0.35 - abs(math.log10(lr) + 2.5) * 0.08) + rng.gauss(0, 0.005)
            loss = round(1 - acc + rng.random() * 0.01, 4)
            await mem.record(kind="train_log", data={"run": i, "epoch": epoch, "loss": loss, "acc": round(acc, 4)})
            ckpt = await arts.save_json(
                {"lr": lr, "epoch": epoch, "weights": [rng.random() for _ in range(8)]},
                kind="checkpoint",
                labels={"exp": exp, "lr": round(lr, 6)},
                metrics={"val_acc": round(acc, 4), "loss": loss},
            )
        await mem.record_tool_result(
            tool="train.step",
            inputs=[{"name": "lr", "kind": "number", "value": lr}],
            outputs=[
                {"name": "val_acc", "kind": "number", "value": round(acc, 4)},
                {"name": "ckpt_uri", "kind": "uri", "value": ckpt.uri},
            ],
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m aeg_jupyter.demo", description=__doc__)
    parser.add_argument("--store", help="store directory, kept (default: a temporary one, removed at the end)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary store and print how to remove it")
    args = parser.parse_args(argv)
    root = args.store or tempfile.mkdtemp(prefix="aeg-demo-")
    try:
        _run(root)
    finally:
        if args.store is None and not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    if args.store is None and not args.keep:
        print(f"\n(the demo's temporary store {root} is removed; `--keep` keeps it, `--store PATH` writes to PATH)")
    elif args.store is None:
        print(f"\nThe store is kept at {root}: `aeg --store {root} ls` lists it; remove it with `rm -rf {root}`")


def _run(root: str) -> None:
    context = connect(root, graph_id="demo")
    asyncio.run(sweep(context))
    arts, log = context.store.artifacts, context.store.event_log
    board = artifacts_frame(arts.search(kind="checkpoint", metric="val_acc", limit=5))
    best = arts.best(kind="checkpoint", metric="val_acc")
    assert best is not None
    print(f"store: {root}   run: {context.run_id}   artifacts: {len(arts)}")
    print("\nLeaderboard: top 5 checkpoints by val_acc")
    print(board[["artifact_id", "label.exp", "label.lr", "metric.val_acc", "metric.loss"]].to_string(index=False))
    print(f"\nbest: {best.artifact_id}  val_acc={best.metrics['val_acc']}  -> {arts.local_file(best)}")
    print("\nLatest train_log events (newest first)")
    print(
        events_frame(log.recent(kinds=["train_log"], limit=5))[
            ["ts", "data.run", "data.epoch", "data.loss", "data.acc"]
        ].to_string(index=False)
    )
    print(f"\nlast val_acc recorded by train.step: {log.last_by_name('val_acc')}")
    context.close()


if __name__ == "__main__":
    main()
