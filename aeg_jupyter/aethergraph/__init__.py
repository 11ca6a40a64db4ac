"""Run real AetherGraph graphs on this store: ``install()`` plugs it into AetherGraph's services.

After ``install(root)``, every ``context.artifacts()`` and ``context.memory()`` of an AetherGraph
graph run in this process (``aethergraph.runner.run(graph, inputs=...)``, ``run_async``, a server
started afterwards) reads and writes the aeg store at ``root``: AetherGraph's run, graph and node ids
become our scopes, so ``%aeg leaderboard checkpoint --metric val_acc`` in a notebook ranks what the
graph saved. ``uninstall()`` puts back the services that were installed before.

The seam is AetherGraph 0.1.0a15's service container: ``build_default_container()`` builds every
other service as usual; its artifact store, artifact index and memory factory (hot log, persistence)
are replaced by ours before ``install_services(container)``. This package is optional
(``pip install aeg-jupyter[aethergraph]``); nothing else in aeg_jupyter imports it.

Keep AetherGraph offline and contained when you test (see the README): a temporary working
directory, ``HOME``, ``XDG_CONFIG_HOME`` and ``AETHERGRAPH_WORKSPACE``, and
``AETHERGRAPH_SEARCH__BACKEND=none AETHERGRAPH_KNOWLEDGE__SEARCH__BACKEND=none
AETHERGRAPH_EMBED__ENABLED=false AETHERGRAPH_LLM__ENABLED=false``.

Example:
    >>> from aeg_jupyter.aethergraph import install                  # doctest: +SKIP
    >>> backend = install("/data/aeg")                                # doctest: +SKIP
    >>> aethergraph.runner.run(train_graph, inputs={"lr": 0.1})       # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any

from ..api.context import KernelContext, connect
from ..base.errors import AegError
from .artifacts import AegArtifactStore, AetherGraphBackendError, NotSupportedError
from .index import OCCURRENCE_KIND, AegArtifactIndex
from .memory import MEMDOC_KIND, AegHotLog, AegMemoryLog, AegPersistence

AETHERGRAPH_VERSION = "0.1.0a15"  # the release this backend is written and tested against


@dataclass
class Backend:
    """What :func:`install` put in place; ``uninstall()`` takes it out again."""

    context: KernelContext
    container: Any
    artifact_store: AegArtifactStore
    artifact_index: AegArtifactIndex
    hotlog: AegHotLog
    persistence: AegPersistence
    _previous: Any = None
    _token: Any = None
    _replaced: list[tuple[Any, str, Any]] = field(default_factory=list)

    @property
    def root(self) -> str:
        return self.context.store.root


_INSTALLED: Backend | None = None


def _require_aethergraph() -> Any:
    try:
        import aethergraph
    except ImportError:
        raise AetherGraphBackendError(
            "AetherGraph is not installed; pip install 'aeg-jupyter[aethergraph]' (aethergraph==0.1.0a15)"
        ) from None
    return aethergraph


def install(
    root: str | os.PathLike[str] | None = None,
    *,
    workspace: str | os.PathLike[str] | None = None,
    cfg: Any = None,
    container: Any = None,
    hot_limit: int | None = None,
    durability: str = "flush",
    staging_dir: str | os.PathLike[str] | None = None,
) -> Backend:
    """Make AetherGraph's artifacts and memory live in the aeg store at ``root``.

    Args:
        root: the store (default ``$AEG_STORE`` or ``./.aeg``, as ``connect``).
        workspace: AetherGraph's workspace for its other services (default: its settings,
            ``$AETHERGRAPH_WORKSPACE``).
        cfg: AetherGraph ``AppSettings`` (default: ``load_settings()``).
        container: an AetherGraph container to plug into instead of a new default one.
        hot_limit: events of a timeline its hot log sees (default: its ``memory.hot_limit``).
        durability: ``"fsync"`` makes every write survive a power loss (see ``connect``).
        staging_dir: where staged files wait before they are stored (default: in the workspace).

    Returns:
        the :class:`Backend` (``.context`` is a normal :class:`~aeg_jupyter.KernelContext`).

    Raises:
        AetherGraphBackendError: AetherGraph is missing, or another store is installed already.
    """
    global _INSTALLED
    _require_aethergraph()
    from aethergraph.core.runtime import runtime_services as rs

    if _INSTALLED is not None:
        raise AetherGraphBackendError(
            f"the aeg store {_INSTALLED.root!r} is installed already; call uninstall() before installing another"
        )
    if container is None:
        from aethergraph.config.context import set_current_settings
        from aethergraph.config.loader import load_settings
        from aethergraph.services.container.default_container import build_default_container

        if cfg is None:
            cfg = load_settings()
            set_current_settings(cfg)
        container = build_default_container(root=os.fspath(workspace) if workspace else None, cfg=cfg)
    settings = getattr(container, "settings", None)
    if hot_limit is None:
        hot_limit = int(getattr(getattr(settings, "memory", None), "hot_limit", 1000) or 1000)
    ctx = connect(root, durability=durability)  # type: ignore[arg-type]
    try:
        stage = os.fspath(staging_dir) if staging_dir else os.path.join(container.root, "aeg_staging")
        store = AegArtifactStore(ctx.store.artifacts, staging_dir=stage)
        index = AegArtifactIndex(store, ctx.store.event_log, watch=ctx.store)
        log = AegMemoryLog(ctx.store.event_log, ctx.store.artifacts, hot_limit=hot_limit, watch=ctx.store)
        hot, persist = AegHotLog(log), AegPersistence(log)
        backend = Backend(ctx, container, store, index, hot, persist)
        _swap(backend, container, "artifacts", store)
        _swap(backend, container, "artifact_index", index)
        factory = container.memory_factory
        _swap(
            backend,
            container,
            "memory_factory",
            dataclasses.replace(factory, hotlog=hot, persistence=persist, artifacts=store),
        )
        for svc_name in ("registration_service", "kb_backend"):  # services holding the old store
            svc = getattr(container, svc_name, None)
            for attr, new in (("artifact_store", store), ("artifact_index", index), ("artifacts", store)):
                if svc is not None and hasattr(svc, attr):
                    _swap(backend, svc, attr, new)
        backend._previous = rs._services_global
        backend._token = rs.install_services(container)
    except BaseException:
        ctx.close()
        raise
    _INSTALLED = backend
    return backend


def _swap(backend: Backend, obj: Any, attr: str, new: Any) -> None:
    backend._replaced.append((obj, attr, getattr(obj, attr)))
    setattr(obj, attr, new)


def uninstall() -> None:
    """Put back the AetherGraph services installed before :func:`install` and close the store.

    With none installed before, AetherGraph builds its default container again on the next run.
    """
    global _INSTALLED
    backend = _INSTALLED
    if backend is None:
        return
    from aethergraph.core.runtime import runtime_services as rs

    _INSTALLED = None
    for obj, attr, old in reversed(backend._replaced):
        setattr(obj, attr, old)
    try:
        rs._current.reset(backend._token)
    except ValueError:  # installed from another context: clear it instead
        rs._current.set(None)
    rs._services_global = backend._previous
    backend.artifact_index.close()
    backend.hotlog.log.close()
    backend.artifact_store.close()
    backend.context.close()


def installed() -> Backend | None:
    """The backend :func:`install` put in place, or None."""
    return _INSTALLED


__all__ = [
    "AETHERGRAPH_VERSION",
    "MEMDOC_KIND",
    "OCCURRENCE_KIND",
    "AegArtifactIndex",
    "AegArtifactStore",
    "AegError",
    "AegHotLog",
    "AegMemoryLog",
    "AegPersistence",
    "AetherGraphBackendError",
    "Backend",
    "NotSupportedError",
    "install",
    "installed",
    "uninstall",
]
