"""(s) What each call leaves on disk, and whether the logs stay bounded.

Two functions behind function URLs take steady load in turn: one prints
nothing, one prints a line per call. For each, the bytes usage.db and
logs.db grew by per call, counted in SQLite pages in use (page_count less
the free list, read through a second connection while the server runs, so
the -wal file counts too). Then a server started with a small `--log-max-mb`
takes the same load: logs.db's pages in use at the end against the cap.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import time

from . import harness
from .harness import Lambdalet

QUIET = "def handler(event, context):\n    return {'statusCode': 200, 'body': 'hello'}\n"
CHATTY = (
    "def handler(event, context):\n"
    "    print('handled', event['requestContext']['requestId'], 'for', event['rawPath'])\n"
    "    return {'statusCode': 200, 'body': 'hello'}\n"
)
FLUSH_WAIT_S = 1.5  # a few of the call journal's 0.25 s batches
TRIM_WAIT_S = 6.5  # past the log store's next size check (every 5 s)


def pages_in_use(path: str) -> int:
    """Bytes of the database's pages in use, as a reader sees it now."""
    if not os.path.exists(path):
        return 0
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        size = db.execute("PRAGMA page_size").fetchone()[0]
        count = db.execute("PRAGMA page_count").fetchone()[0]
        free = db.execute("PRAGMA freelist_count").fetchone()[0]
    return (count - free) * size


def _load(url: str, seconds: float) -> dict:
    proc = subprocess.run(
        [harness.PY, "-m", "lambdalet.gateway.cli", "bench", url, "-c", "8", "-d", str(seconds), "--json"],
        capture_output=True,
        text=True,
        timeout=seconds + 120,
    )
    return json.loads(proc.stdout or "{}")


def _per_call(lam: Lambdalet, name: str, source: str, seconds: float) -> dict:
    url = lam.function(name, source, memory=1024)
    harness.http_get_once(url)
    time.sleep(FLUSH_WAIT_S)
    dbs = {db: os.path.join(lam.tmp, db) for db in ("usage.db", "logs.db")}
    before = {db: pages_in_use(path) for db, path in dbs.items()}
    summary = _load(url, seconds)
    time.sleep(FLUSH_WAIT_S)
    calls = summary.get("requests", 0)
    grown = {db: pages_in_use(path) - before[db] for db, path in dbs.items()}
    return {
        "calls": calls,
        "errors": summary.get("errors", -1),
        **{f"{db}_bytes_per_call": grown[db] / calls if calls else 0.0 for db in dbs},
    }


def run(quick: bool) -> dict:
    seconds = 5 if quick else 15
    out: dict = {}
    lam = Lambdalet()
    try:
        out["quiet"] = _per_call(lam, "quiet", QUIET, seconds)
        out["chatty"] = _per_call(lam, "chatty", CHATTY, seconds)
    finally:
        lam.stop()
    cap_mb = 2
    capped = Lambdalet("--log-max-mb", str(cap_mb))
    try:
        url = capped.function("chatty", CHATTY, memory=1024)
        summary = _load(url, seconds * 2)
        time.sleep(TRIM_WAIT_S)
        out["capped"] = {
            "log_max_mb": cap_mb,
            "calls": summary.get("requests", 0),
            "logs_db_mb_in_use": pages_in_use(os.path.join(capped.tmp, "logs.db")) / 2**20,
        }
    finally:
        capped.stop()
    return out


def render(g: dict) -> list[str]:
    rows = []
    for kind, what in (("quiet", "printing nothing"), ("chatty", "printing a line")):
        r = g.get(kind)
        if r:
            rows.append(
                f"| growth: bytes per call on disk, a function {what} (usage.db + logs.db) | "
                f"{r['usage.db_bytes_per_call']:.0f} + {r['logs.db_bytes_per_call']:.0f} | | {r['calls']} calls |"
            )
    c = g.get("capped")
    if c:
        rows.append(
            f"| growth: logs.db in use after {c['calls']} calls with --log-max-mb {c['log_max_mb']} | "
            f"{c['logs_db_mb_in_use']:.2f} MB | <= the cap | |"
        )
    return rows


if __name__ == "__main__":
    print(json.dumps(run("--quick" in sys.argv), indent=2))
