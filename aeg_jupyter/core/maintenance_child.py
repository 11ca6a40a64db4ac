"""The periodic maintenance child: ``python -m aeg_jupyter.core.maintenance_child ROOT``.

:class:`~.maintenance.PeriodicMaintenance` of a local store starts one for each run: it opens the store
as any process does, runs :class:`~.maintenance.DeltaMaintenance` once (no flush: the parent's flushers
commit), prints its report as one JSON line and exits, so what delta-rs and pyarrow allocated for the
run goes back to the system (docs/format2.md, "Periodic maintenance in a one-shot child"). Its own
module: it imports the store, which imports the maintenance.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import threading
import warnings

from ..storage.delta import error_text
from .maintenance import DeltaMaintenance
from .store import Store


def child_main(argv: list[str]) -> int:
    """The periodic maintenance child: open the store at ``argv[0]``, run maintenance once (no flush, no
    wait for another runner), print the report as one JSON line, exit. Stops between steps once stdin
    closes (the parent closing, or gone)."""
    # (niced to 19 from its first instruction by start_python: the kernel's `record` calls get the core first)
    stop = threading.Event()

    def watch() -> None:
        for _line in sys.stdin:
            pass
        stop.set()

    threading.Thread(target=watch, daemon=True).start()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the parent's own readers say what is wrong with the store
            store = Store(argv[0], maintain_commits=0)
            try:
                report = DeltaMaintenance(tables=store.tables, root=store.store_root, guard=store.guard).run(
                    wait=False, flush=False, stop=stop.is_set
                )
            finally:
                store.close()
        print(json.dumps({"report": dataclasses.asdict(report)}), flush=True)
    except Exception as exc:
        print(json.dumps({"error": f"{type(exc).__name__}: {error_text(exc)}"}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(child_main(sys.argv[1:]))
