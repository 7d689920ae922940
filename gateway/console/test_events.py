"""Saved test events, per function, in <data-dir>/console.db.

As in AWS's console: up to MAX_PER_FUNCTION named JSON events per function,
each at most the synchronous invoke limit. They go with their function.
"""

from __future__ import annotations

import pathlib
import re
import sqlite3
import threading
import time

import msgspec

from ..api.invoke import SYNC_PAYLOAD_MAX
from ..errors import invalid

MAX_PER_FUNCTION = 10
NAME_RE = re.compile(r"^[A-Za-z0-9._-]{1,25}$")


class TestEvent(msgspec.Struct, frozen=True):
    __test__ = False  # not a pytest test class, whatever imports it

    name: str
    payload: str
    updated_s: float


def check(name: str, payload: str) -> None:
    """Raises InvalidParameterValueException for a bad name or payload."""
    if not NAME_RE.match(name or ""):
        raise invalid("An event name is 1-25 of A-Z, a-z, 0-9, '.', '-' and '_'.")
    if len(payload.encode()) > SYNC_PAYLOAD_MAX:
        raise invalid(f"A test event must be smaller than {SYNC_PAYLOAD_MAX} bytes.")
    try:
        msgspec.json.decode(payload.encode() or b"{}")
    except msgspec.DecodeError as exc:
        raise invalid(f"The event is not valid JSON: {exc}") from None


class TestEvents:
    __test__ = False

    def __init__(self, path: pathlib.Path) -> None:
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS test_events (function TEXT NOT NULL, name TEXT NOT NULL, payload TEXT NOT NULL,"
                " updated_s REAL NOT NULL, PRIMARY KEY (function, name)) WITHOUT ROWID"
            )

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def list(self, function: str) -> list[TestEvent]:
        with self._lock:
            rows = self._db.execute(
                "SELECT name, payload, updated_s FROM test_events WHERE function = ? ORDER BY name", (function,)
            ).fetchall()
        return [TestEvent(*row) for row in rows]

    def get(self, function: str, name: str) -> TestEvent | None:
        with self._lock:
            row = self._db.execute(
                "SELECT name, payload, updated_s FROM test_events WHERE function = ? AND name = ?", (function, name)
            ).fetchone()
        return None if row is None else TestEvent(*row)

    def save(self, function: str, name: str, payload: str) -> None:
        check(name, payload)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                exists = self._db.execute("SELECT 1 FROM test_events WHERE function = ? AND name = ?", (function, name)).fetchone()
                count = self._db.execute("SELECT COUNT(*) FROM test_events WHERE function = ?", (function,)).fetchone()[0]
                if not exists and count >= MAX_PER_FUNCTION:
                    raise invalid(f"A function keeps at most {MAX_PER_FUNCTION} test events; delete one first.")
                self._db.execute(
                    "INSERT OR REPLACE INTO test_events (function, name, payload, updated_s) VALUES (?, ?, ?, ?)",
                    (function, name, payload, time.time()),
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def delete(self, function: str, name: str) -> bool:
        with self._lock:
            return self._db.execute("DELETE FROM test_events WHERE function = ? AND name = ?", (function, name)).rowcount > 0

    def forget(self, function: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM test_events WHERE function = ?", (function,))
