"""Durable state behind one typing.Protocol, with SQLite (WAL) as the default.

Every method is synchronous and may block on fsync; the gateway calls them
from a worker thread, one at a time, and never on the invoke path (which
reads the in-memory registry instead).
"""

from __future__ import annotations

import pathlib
import sqlite3
import threading
from collections.abc import Iterable
from typing import Protocol

import msgspec

from .layer_records import LayerVersionRecord
from .model import FunctionRecord

_SCHEMA = """
CREATE TABLE IF NOT EXISTS functions (
    name TEXT PRIMARY KEY,
    record BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS versions (
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    record BLOB NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE TABLE IF NOT EXISTS layer_versions (
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    record BLOB NOT NULL,
    PRIMARY KEY (name, version)
);
-- The last version number each layer name used: numbers are never reused,
-- even once every version of a layer is deleted.
CREATE TABLE IF NOT EXISTS layer_counters (
    name TEXT PRIMARY KEY,
    last_version INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""


class Storage(Protocol):
    def load_functions(self) -> Iterable[FunctionRecord]: ...
    def put_function(self, rec: FunctionRecord) -> None: ...
    def delete_function(self, name: str) -> None: ...
    def load_versions(self) -> Iterable[FunctionRecord]: ...
    def put_version(self, rec: FunctionRecord) -> None: ...
    def delete_version(self, name: str, version: str) -> None: ...
    def load_layer_versions(self) -> Iterable[LayerVersionRecord]: ...
    def load_layer_counters(self) -> Iterable[tuple[str, int]]: ...
    def put_layer_version(self, rec: LayerVersionRecord, last_version: int) -> None: ...
    def delete_layer_version(self, name: str, version: int) -> None: ...
    def load_settings(self, prefix: str) -> dict[str, str]: ...
    def put_setting(self, key: str, value: str) -> None: ...
    def delete_setting(self, key: str) -> None: ...
    def close(self) -> None: ...


class SQLiteStorage:
    def __init__(self, path: pathlib.Path) -> None:
        # check_same_thread=False: calls come from trio's thread pool, always
        # serialised by self._lock.
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            # FULL: an answered CreateFunction must survive power loss, not
            # just a crash of this process.
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        self._enc = msgspec.json.Encoder()
        self._dec = msgspec.json.Decoder(FunctionRecord)
        self._layer_dec = msgspec.json.Decoder(LayerVersionRecord)

    def load_functions(self) -> list[FunctionRecord]:
        with self._lock:
            rows = self._db.execute("SELECT record FROM functions ORDER BY name").fetchall()
        return [self._dec.decode(r[0]) for r in rows]

    def put_function(self, rec: FunctionRecord) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO functions(name, record) VALUES(?, ?) ON CONFLICT(name) DO UPDATE SET record=excluded.record",
                (rec.name, self._enc.encode(rec)),
            )

    def delete_function(self, name: str) -> None:
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.execute("DELETE FROM functions WHERE name=?", (name,))
                self._db.execute("DELETE FROM versions WHERE name=?", (name,))
                self._db.execute("COMMIT")
            except BaseException:
                # SQLite ends some failed transactions itself (SQLITE_FULL
                # rolls back), not all of them.
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    def load_versions(self) -> list[FunctionRecord]:
        with self._lock:
            rows = self._db.execute("SELECT record FROM versions ORDER BY name, version").fetchall()
        return [self._dec.decode(r[0]) for r in rows]

    def put_version(self, rec: FunctionRecord) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO versions(name, version, record) VALUES(?, ?, ?) "
                "ON CONFLICT(name, version) DO UPDATE SET record=excluded.record",
                (rec.name, int(rec.version), self._enc.encode(rec)),
            )

    def delete_version(self, name: str, version: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM versions WHERE name=? AND version=?", (name, int(version)))

    def load_layer_versions(self) -> list[LayerVersionRecord]:
        with self._lock:
            rows = self._db.execute("SELECT record FROM layer_versions ORDER BY name, version").fetchall()
        return [self._layer_dec.decode(r[0]) for r in rows]

    def load_layer_counters(self) -> list[tuple[str, int]]:
        with self._lock:
            return [(n, v) for n, v in self._db.execute("SELECT name, last_version FROM layer_counters")]

    def put_layer_version(self, rec: LayerVersionRecord, last_version: int) -> None:
        """The version and its layer's counter, in one transaction."""
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.execute(
                    "INSERT INTO layer_versions(name, version, record) VALUES(?, ?, ?) "
                    "ON CONFLICT(name, version) DO UPDATE SET record=excluded.record",
                    (rec.name, rec.version, self._enc.encode(rec)),
                )
                self._db.execute(
                    "INSERT INTO layer_counters(name, last_version) VALUES(?, ?) "
                    "ON CONFLICT(name) DO UPDATE SET last_version=max(last_version, excluded.last_version)",
                    (rec.name, last_version),
                )
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def delete_layer_version(self, name: str, version: int) -> None:
        with self._lock:
            self._db.execute("DELETE FROM layer_versions WHERE name=? AND version=?", (name, version))

    def load_settings(self, prefix: str) -> dict[str, str]:
        """Settings whose key starts with prefix (code signing configs,
        signing profiles), by key."""
        with self._lock:
            rows = self._db.execute(
                "SELECT key, value FROM settings WHERE substr(key, 1, ?) = ? ORDER BY key", (len(prefix), prefix)
            ).fetchall()
        return dict(rows)

    def put_setting(self, key: str, value: str) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO settings(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value", (key, value)
            )

    def delete_setting(self, key: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM settings WHERE key=?", (key,))

    def close(self) -> None:
        with self._lock:
            self._db.close()
