"""`lambdalet serve` with what bench/tail.py correlates slow calls with,
stamped with time.perf_counter() (CLOCK_MONOTONIC, the load generator's
clock too): each cyclic GC pass (generation, duration, objects collected)
and each SQLite commit of the call journal's flush (records, thread CPU).
Written as JSON to $LAMBDALET_TRACE_OUT when the server exits.

    python -m bench.traced_serve serve --port P --data-dir D ...
"""

from __future__ import annotations

import atexit
import gc
import json
import os
import sys
import threading
import time

_EVENTS: list[tuple] = []
_gc_started: dict[int, float] = {}


def _on_gc(phase: str, info: dict) -> None:
    if phase == "start":
        _gc_started[threading.get_ident()] = time.perf_counter()
        return
    began = _gc_started.pop(threading.get_ident(), None)
    if began is not None:
        _EVENTS.append(("gc", began, time.perf_counter(), info["generation"], info["collected"]))


def _trace_commits() -> None:
    from lambdalet.gateway.metering import ledger

    commit = ledger.SqliteStore.commit

    def traced(self, records: list, **kw) -> None:
        began, cpu = time.perf_counter(), time.thread_time()
        try:
            commit(self, records, **kw)
        finally:
            _EVENTS.append(("commit", began, time.perf_counter(), len(records), time.thread_time() - cpu))

    ledger.SqliteStore.commit = traced  # type: ignore[method-assign]


def _dump(path: str) -> None:
    with open(path, "w") as f:
        json.dump(_EVENTS, f)


def main() -> int:
    out = os.environ["LAMBDALET_TRACE_OUT"]
    gc.callbacks.append(_on_gc)
    _trace_commits()
    atexit.register(_dump, out)
    from lambdalet.gateway.cli.commands import main as lambdalet

    sys.argv[0] = "lambdalet"
    return lambdalet()


if __name__ == "__main__":
    sys.exit(main())
