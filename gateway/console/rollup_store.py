"""The rollup's SQLite tables, in <data-dir>/console.db.

Two tiers of rows: one per function per minute (tier 60), kept
MINUTE_RETENTION_S, and one per function per hour (tier 3600), rolled up
from the minutes as each hour completes and kept HOUR_RETENTION_S. The
account's row has the function name '' (Lambda names are never empty).
Only functions that did something in a period get a row, so the table is
bounded by the retention times the meter's slots (meter.DEFAULT_SLOTS + 1).

The baseline (the meter snapshot the open minute is measured against) is
stored in the same transaction as the minute it closes: rollup.py says why.
"""

from __future__ import annotations

import pathlib
import sqlite3
import threading

import msgspec

from .rollup import Counts, Cumulative, account_total, add_into

MINUTE_RETENTION_S = 25 * 3600  # the 24 h chart, and the hour being rolled up
HOUR_RETENTION_S = 8 * 86400  # the 7 d chart
ACCOUNT = ""

_COLUMNS = (
    "invocations",
    "errors",
    "throttles",
    "cold_starts",
    "duration_ns",
    "billed_ms",
    "mb_ms",
    "concurrent_max",
    "async_depth",
    "dlq",
)
_hist_encode = msgspec.msgpack.Encoder().encode
_hist_decode = msgspec.msgpack.Decoder(dict[int, int]).decode
_base_encode = msgspec.msgpack.Encoder().encode
_base_decode = msgspec.msgpack.Decoder(Cumulative).decode


class RollupStore:
    def __init__(self, path: pathlib.Path) -> None:
        self.path = path
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            # NORMAL: a power cut may lose the last minute's rows, never
            # corrupt the file; a process kill loses nothing committed.
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(
                f"""
                CREATE TABLE IF NOT EXISTS rollup (
                    tier INTEGER NOT NULL,
                    ts INTEGER NOT NULL,
                    function TEXT NOT NULL,
                    {", ".join(f"{c} INTEGER NOT NULL DEFAULT 0" for c in _COLUMNS)},
                    hist BLOB,
                    PRIMARY KEY (tier, function, ts)
                ) WITHOUT ROWID;
                CREATE INDEX IF NOT EXISTS rollup_by_time ON rollup (tier, ts);
                CREATE TABLE IF NOT EXISTS baseline (
                    function TEXT NOT NULL,
                    version TEXT NOT NULL,
                    counters BLOB NOT NULL,
                    PRIMARY KEY (function, version)
                ) WITHOUT ROWID;
                CREATE TABLE IF NOT EXISTS rollup_state (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
                """
            )

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- writes (the rollup task, from a worker thread) -----------------------

    def load_baseline(self) -> dict[tuple[str, str], Cumulative] | None:
        with self._lock:
            if not self._state("baseline_saved"):
                return None
            rows = self._db.execute("SELECT function, version, counters FROM baseline").fetchall()
        return {(f, v): _base_decode(blob) for f, v, blob in rows}

    def save_baseline(self, baseline: dict[tuple[str, str], Cumulative]) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._write_baseline(baseline)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def close_minute(self, minute_s: int, rows: dict[str, Counts], baseline: dict[tuple[str, str], Cumulative]) -> None:
        """One closed minute: each function's row, the account's, and the
        baseline the next minute is measured against (the slots that moved;
        the others' stand), in one commit. Hours completed by it are rolled
        up, and rows past retention go."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                if rows:
                    self._insert(60, minute_s, {**rows, ACCOUNT: account_total(rows.values())})
                self._write_baseline(baseline, replace_all=False)
                self._roll_hours(upto_s=(minute_s + 60) // 3600 * 3600)
                self._db.execute("DELETE FROM rollup WHERE tier = 60 AND ts < ?", (minute_s - MINUTE_RETENTION_S,))
                self._db.execute("DELETE FROM rollup WHERE tier = 3600 AND ts < ?", (minute_s - HOUR_RETENTION_S,))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def _write_baseline(self, baseline: dict[tuple[str, str], Cumulative], *, replace_all: bool = True) -> None:
        if replace_all:
            self._db.execute("DELETE FROM baseline")
        self._db.executemany(
            "INSERT OR REPLACE INTO baseline (function, version, counters) VALUES (?, ?, ?)",
            [(f, v, _base_encode(c)) for (f, v), c in baseline.items()],
        )
        self._db.execute("INSERT OR REPLACE INTO rollup_state (key, value) VALUES ('baseline_saved', 1)")

    def _insert(self, tier: int, ts: int, rows: dict[str, Counts]) -> None:
        cols = ", ".join(_COLUMNS)
        marks = ", ".join("?" * (len(_COLUMNS) + 4))
        # OR REPLACE: a minute closed twice (a clock set back) keeps its last word.
        self._db.executemany(
            f"INSERT OR REPLACE INTO rollup (tier, ts, function, {cols}, hist) VALUES ({marks})",
            [
                (tier, ts, name, *(getattr(c, col) for col in _COLUMNS), _hist_encode(c.hist) if c.hist else None)
                for name, c in rows.items()
            ],
        )

    def _state(self, key: str) -> int | None:
        row = self._db.execute("SELECT value FROM rollup_state WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def _roll_hours(self, upto_s: int) -> None:
        """Hour rows for every complete hour before upto_s not rolled yet."""
        done = self._state("hours_through")
        start = 0 if done is None else done + 3600
        hours = [
            h
            for (h,) in self._db.execute(
                "SELECT DISTINCT ts / 3600 * 3600 FROM rollup WHERE tier = 60 AND ts >= ? AND ts < ? ORDER BY 1", (start, upto_s)
            )
        ]
        for hour in hours:
            merged: dict[str, Counts] = {}
            for _ts, name, counts in self._rows(60, None, hour, hour + 3600):
                add_into(merged.setdefault(name, Counts()), counts, gauges="max")
            self._insert(3600, hour, merged)
        if upto_s - 3600 >= start:
            self._db.execute("INSERT OR REPLACE INTO rollup_state (key, value) VALUES ('hours_through', ?)", (upto_s - 3600,))

    # -- reads ------------------------------------------------------------------

    def _rows(self, tier: int, function: str | None, since_s: int, until_s: int) -> list[tuple[int, str, Counts]]:
        sql = f"SELECT ts, function, {', '.join(_COLUMNS)}, hist FROM rollup WHERE tier = ? AND ts >= ? AND ts < ?"
        params: tuple = (tier, since_s, until_s)
        if function is not None:
            sql += " AND function = ?"
            params += (function,)
        out = []
        for row in self._db.execute(sql + " ORDER BY ts", params):
            counts = Counts(**dict(zip(_COLUMNS, row[2:-1])))
            if row[-1] is not None:
                counts.hist = _hist_decode(row[-1])
            out.append((row[0], row[1], counts))
        return out

    def rows(self, tier: int, function: str | None, since_s: int, until_s: int) -> list[tuple[int, str, Counts]]:
        """(period start, function, counts) in [since_s, until_s); function
        None: every function's rows and the account's."""
        with self._lock:
            return self._rows(tier, function, since_s, until_s)

    def hours_through(self) -> int | None:
        with self._lock:
            return self._state("hours_through")

    def count(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM rollup").fetchone()[0]
