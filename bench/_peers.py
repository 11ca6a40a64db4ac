"""Peers measured next to aeg_jupyter: MLflow (SQLite backend), AetherGraph's own services, naive baselines.

Each peer is optional: ``load_*`` returns ``None`` (with the reason in ``SKIPPED``) when the package is
not installed, so ``python bench/run.py --quick`` works without them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
import warnings
from typing import Any

SKIPPED: dict[str, str] = {}


# --------------------------------------------------------------------------------------------
# MLflow
# --------------------------------------------------------------------------------------------
class MLflowPeer:
    """MLflow with the SQLite tracking backend its users get from ``set_tracking_uri("sqlite:///...")``."""

    name = "mlflow"

    def __init__(self, root: str) -> None:
        os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
        os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
        # contained, as every peer: MLflow 3's usage telemetry would resolve and call its hosted endpoint
        # from a background thread (a DNS query seen under strace); the bench talks to 127.0.0.1 only
        os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
        warnings.filterwarnings("ignore")
        for lg in ("mlflow", "alembic", "sqlalchemy"):
            logging.getLogger(lg).setLevel(logging.ERROR)
        t = time.perf_counter()
        import mlflow
        from mlflow.tracking import MlflowClient

        self.import_s = time.perf_counter() - t
        self.mlflow = mlflow
        self.version = mlflow.__version__
        os.makedirs(root, exist_ok=True)
        self.root = root
        mlflow.set_tracking_uri(f"sqlite:///{os.path.join(root, 'mlflow.db')}")
        t = time.perf_counter()
        self.experiment_id = mlflow.create_experiment("bench", artifact_location=f"file://{root}/artifacts")
        self.open_s = time.perf_counter() - t
        mlflow.set_experiment(experiment_id=self.experiment_id)
        self.client = MlflowClient()
        self.runs = 0

    def log_metric_fn(self) -> Any:
        """Start a run and return ``f(i)`` that logs one metric (what a training loop calls per step)."""
        self.mlflow.start_run(run_name="log-metric-bench")
        mlflow = self.mlflow

        def f(i: int) -> None:
            mlflow.log_metric("loss", 1.0 / (i + 1), step=i)

        return f

    def log_dict_fn(self) -> Any:
        """``f(i)`` that stores a small JSON document as a run artifact (MLflow's save_json)."""
        mlflow = self.mlflow

        def f(i: int) -> None:
            mlflow.log_dict({"lr": 1e-3, "i": i, "layers": [64, 64]}, f"cfg-{i}.json")

        return f

    def log_file(self, path: str) -> None:
        self.mlflow.log_artifact(path)

    def end_run(self) -> None:
        self.mlflow.end_run()

    def add_runs(self, n: int, deadline: float | None = None) -> int:
        """Create ``n`` finished runs, each with 2 params, 2 metrics and a tag, like a sweep; returns how many."""
        from mlflow.entities import Metric, Param, RunTag

        client = self.client
        made = 0
        for _ in range(n):
            i = self.runs
            r = client.create_run(self.experiment_id, run_name=f"r{i}")
            now = int(time.time() * 1000)
            client.log_batch(
                r.info.run_id,
                metrics=[Metric("val_acc", _metric(i), now, 0), Metric("loss", 1 - _metric(i), now, 0)],
                params=[Param("exp", f"E{i % 10}"), Param("seed", str(i % 5))],
                tags=[RunTag("kind", "checkpoint")],
            )
            client.set_terminated(r.info.run_id)
            self.runs += 1
            made += 1
            if deadline is not None and time.perf_counter() > deadline:
                break
        return made

    def search(self) -> int:
        """Runs with a parameter equal to a value (our label filter), as the DataFrame users get."""
        df = self.mlflow.search_runs(experiment_ids=[self.experiment_id], filter_string="params.exp = 'E3'")
        return len(df)

    def best(self) -> int:
        """The best run by a metric among those matching the filter."""
        df = self.mlflow.search_runs(
            experiment_ids=[self.experiment_id],
            filter_string="params.exp = 'E3'",
            order_by=["metrics.val_acc DESC"],
            max_results=1,
        )
        return len(df)


# --------------------------------------------------------------------------------------------
# AetherGraph
# --------------------------------------------------------------------------------------------
class AetherGraphPeer:
    """AetherGraph's own artifact and memory services, built with its storage factories and default settings.

    Its facades normally live inside a graph run; here they are built directly over a local workspace
    (FS CAS + SQLite artifact index; memory: SQLite KV hot log + SQLite event-log persistence).
    """

    name = "aethergraph"

    def __init__(self, root: str) -> None:
        warnings.filterwarnings("ignore")
        logging.getLogger("aethergraph").setLevel(logging.ERROR)
        # offline and contained, as the tests keep it: no hosted search or embeddings, no LLM, its
        # workspace here (AetherGraph otherwise calls a hosted embeddings service on saves and records)
        for key, value in (("AETHERGRAPH_SEARCH__BACKEND", "none"), ("AETHERGRAPH_KNOWLEDGE__SEARCH__BACKEND", "none"),
                           ("AETHERGRAPH_EMBED__ENABLED", "false"), ("AETHERGRAPH_LLM__ENABLED", "false"),
                           ("AETHERGRAPH_WORKSPACE", root)):  # fmt: skip
            os.environ[key] = value
        t = time.perf_counter()
        import aethergraph
        from aethergraph.config.config import AppSettings
        from aethergraph.services.artifacts.facade import ArtifactFacade
        from aethergraph.services.memory.factory import MemoryFactory
        from aethergraph.storage.factory import (
            build_artifact_index,
            build_artifact_store,
            build_memory_hotlog,
            build_memory_persistence,
        )

        self.import_s = time.perf_counter() - t
        self.version = aethergraph.__version__
        os.makedirs(root, exist_ok=True)
        cfg = AppSettings()
        cfg.workspace = root
        t = time.perf_counter()
        store = build_artifact_store(cfg)
        index = build_artifact_index(cfg)
        self.arts = ArtifactFacade(
            run_id="bench-run", graph_id="bench", node_id="n1", tool_name="bench", tool_version="0",
            art_store=store, art_index=index,
        )  # fmt: skip
        factory = MemoryFactory(
            hotlog=build_memory_hotlog(cfg), persistence=build_memory_persistence(cfg), artifacts=store,
            hot_limit=int(cfg.memory.hot_limit), hot_ttl_s=int(cfg.memory.hot_ttl_s),
        )  # fmt: skip
        self.mem = factory.for_session("bench-run", graph_id="bench", node_id="n1")
        self.open_s = time.perf_counter() - t
        self.count = 0
        self.backends = {
            "artifacts": cfg.storage.artifacts.backend,
            "artifact_index": cfg.storage.artifact_index.backend,
            "memory_persistence": cfg.storage.memory.persistence.backend,
            "kv (hot log)": cfg.storage.kv.backend,
        }

    async def record(self, i: int) -> None:
        await self.mem.record(kind="train_log", data={"epoch": i, "loss": 0.25, "acc": 0.91})

    async def record_tool_result(self, i: int) -> None:
        await self.mem.record_tool_result(
            tool="train.step", outputs=[{"name": "val_acc", "kind": "number", "value": 0.9}]
        )

    async def recent(self, i: int) -> None:
        await self.mem.recent(kinds=["train_log"], limit=10)

    async def save_json(self, i: int) -> None:
        await self.arts.save_json({"lr": 1e-3, "i": i, "layers": [64, 64]}, kind="config")

    async def save_file(self, path: str) -> None:
        # cleanup=False: by default AetherGraph deletes the source file after saving it
        await self.arts.save_file(path=path, kind="blob", cleanup=False)

    async def add_artifacts(self, n: int, deadline: float | None = None) -> int:
        made = 0
        for _ in range(n):
            i = self.count
            await self.arts.save_json(
                {"i": i},
                kind="checkpoint",
                labels={"exp": f"E{i % 10}", "seed": str(i % 5)},
                metrics={"val_acc": _metric(i), "loss": 1 - _metric(i)},
            )
            self.count += 1
            made += 1
            if deadline is not None and time.perf_counter() > deadline:
                break
        return made

    async def search(self) -> int:
        return len(await self.arts.search(kind="checkpoint", labels={"exp": "E3"}))

    async def best(self) -> int:
        a = await self.arts.best(kind="checkpoint", metric="val_acc", metric_mode="max", filters={"exp": "E3"})
        return int(a is not None)


# --------------------------------------------------------------------------------------------
# Naive baselines a user would write by hand
# --------------------------------------------------------------------------------------------
class JsonlLog:
    """Events appended to one JSON-lines file (flushed per line), recalled by reading it all."""

    name = "jsonl file"

    def __init__(self, path: str) -> None:
        self.path = path
        self.f = open(path, "a", encoding="utf-8")  # noqa: SIM115 (kept open across calls)

    def record(self, i: int) -> None:
        row = {"ts": time.time(), "kind": "train_log", "data": {"epoch": i, "loss": 0.25, "acc": 0.91}}
        self.f.write(json.dumps(row) + "\n")
        self.f.flush()

    def close(self) -> None:
        self.f.close()

    @staticmethod
    def recent(path: str, limit: int = 10) -> list[Any]:
        with open(path, encoding="utf-8") as f:
            rows = [json.loads(line) for line in f]
        return rows[-limit:]


class ParquetPerSave:
    """``pd.DataFrame([row]).to_parquet(...)`` per save; search reads every file back."""

    name = "pandas to_parquet per save"

    def __init__(self, root: str) -> None:
        import pandas as pd

        self.pd = pd
        self.root = root
        os.makedirs(root, exist_ok=True)
        self.count = 0

    def save(self, i: int, payload: dict[str, Any] | None = None) -> None:
        j = self.count
        row = {
            "id": f"{j:09d}",
            "kind": "checkpoint",
            "exp": f"E{j % 10}",
            "seed": str(j % 5),
            "val_acc": _metric(j),
            "payload": json.dumps(payload if payload is not None else {"i": j}),
        }
        self.pd.DataFrame([row]).to_parquet(os.path.join(self.root, f"{j:09d}.parquet"))
        self.count += 1

    def search(self) -> int:
        df = self.pd.read_parquet(self.root)
        return int((df["exp"] == "E3").sum())

    def best(self) -> int:
        df = self.pd.read_parquet(self.root)
        hit = df[df["exp"] == "E3"].sort_values("val_acc", ascending=False).head(1)
        return len(hit)


def _metric(i: int) -> float:
    """A deterministic, well-spread metric value in [0, 1)."""
    return ((i * 2654435761) % 1_000_003) / 1_000_003


def load(kind: str, root: str) -> Any:
    """Build a peer, or ``None`` (reason in ``SKIPPED``) if its package is missing or broken."""
    try:
        if kind == "mlflow":
            return MLflowPeer(root)
        if kind == "aethergraph":
            return AetherGraphPeer(root)
    except ImportError as exc:
        SKIPPED[kind] = f"not installed ({exc.name or exc}); `pip install -r bench/requirements.txt`"
    except Exception as exc:  # a peer that cannot start is reported, not fatal
        SKIPPED[kind] = f"failed to start: {type(exc).__name__}: {exc}"
    return None


def run_async(coro: Any) -> Any:
    return asyncio.run(coro)
