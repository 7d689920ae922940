"""The usage ledger: one row per answered call, in <data-dir>/usage.db,
and what it and the log store share: SQLite files written in batches.

Rows reach SQLite through calls.CallJournal, which journals each call
before it is answered; calls.py says how that survives `kill -9`.
"""

from __future__ import annotations

import pathlib
import sqlite3
import threading
import time
from collections.abc import Sequence

import msgspec

from . import billing
from .billing import MAX_BILLED_MS, MAX_CALL_NS, MAX_MEMORY_MB


class UsageRecord(msgspec.Struct, array_like=True, kw_only=True, gc=False):
    """One call, as billed."""

    request_id: str
    function: str
    version: str
    architecture: str
    started_ns: int  # wall clock when the call was dispatched
    duration_ns: int
    init_ns: int  # 0 on a warm start
    billed_ms: int
    granularity_ms: int
    memory_mb: int
    max_memory_mb: int
    cold: bool
    outcome: str  # success | error | timeout | oom | crash | init_error
    account: str = ""


ROWS_PER_STATEMENT = 200
# A commit turns records into rows a slice at a time (see SqliteStore.commit):
# a power of two, so that each slice is one cached INSERT of insert_rows'.
RECORDS_PER_SLICE = 64
# A paced commit rests PACE times as long as its last slice took before
# the next one, up to MAX_REST_S, and MAX_RESTS_S in all: a flush (a
# ledger commit and a log commit) then adds at most half of calls'
# FLUSH_INTERVAL_S, so that on a loaded machine, whose slices take longer,
# flushes still keep up with the calls.
PACE = 3.0
MAX_REST_S = 0.01
MAX_RESTS_S = 0.06


def insert_rows(db: sqlite3.Connection, prefix: str, columns: int, rows: list[tuple]) -> None:
    """Inserts rows a few hundred per statement.

    executemany() steps SQLite once per row and lets go of the GIL around
    every step; from a worker thread that is a GIL hand-off per row, each
    one stalling the event loop that answers calls. One multi-row INSERT per
    chunk makes it one hand-off per few hundred rows.

    Chunks come in few sizes (ROWS_PER_STATEMENT, then powers of two): each
    size is a statement of its own in the connection's statement cache, and
    a 200-row one holds ~290 KB of SQLite memory. A chunk of whatever was
    left over filled the cache with up to 128 sizes (~25 MB a connection),
    one new size at a time: the server's RSS crept up for many minutes.
    """
    one = "(" + ", ".join("?" * columns) + ")"
    start = 0
    while start < len(rows):
        left = len(rows) - start
        size = ROWS_PER_STATEMENT if left >= ROWS_PER_STATEMENT else 1 << (left.bit_length() - 1)
        chunk = rows[start : start + size]
        db.execute(prefix + ", ".join([one] * size), [value for row in chunk for value in row])
        start += size


class SqliteStore:
    """One SQLite file whose rows arrive in batches (calls.CallJournal
    commits them); subclasses say how rows are stored and read."""

    def __init__(self, db_path: pathlib.Path) -> None:
        self.db_path = db_path
        self._db = sqlite3.connect(db_path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db_lock = threading.Lock()  # one connection, used from worker threads one at a time
        self._create(self._db)

    # -- subclass hooks ----------------------------------------------------

    def _create(self, db: sqlite3.Connection) -> None:
        raise NotImplementedError

    def _insert(self, db: sqlite3.Connection, records: list) -> None:
        raise NotImplementedError

    def maintain(self) -> None:
        """Periodic upkeep between batches; nothing by default."""

    # -- use -----------------------------------------------------------------

    def commit(self, records: list, *, paced: bool = False) -> None:
        """Stores a batch in one transaction (fsynced when it returns).

        Turning records into rows holds the GIL, and the event loop that
        answers calls needs it back after each of its system calls: while a
        slice runs, every call in flight waits. Unpaced, a flush's slices ran
        back to back, and the calls in flight across it (a flush of 0.25 s of
        calls at c=16 is ~10-15 ms of GIL) were the slowest 1%. Paced (the
        flush of live calls), the commit rests between slices, so that the
        same work is spread over PACE + 1 times as long and each call in
        flight is slowed by about 1 / (PACE + 1) instead of waiting out the
        whole flush (its rests are bounded: see MAX_RESTS_S). Replays at
        start-up and the last flush at shutdown go unpaced: no call waits
        on them."""
        if not records:
            return
        with self._db_lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                rest, rests_left = 0.0, MAX_RESTS_S if paced else 0.0
                for start in range(0, len(records), RECORDS_PER_SLICE):
                    if start:
                        time.sleep(rest)  # sleep(0) unpaced: still a hand-off of the GIL
                        rests_left -= rest
                    began = time.perf_counter()
                    self._insert(self._db, records[start : start + RECORDS_PER_SLICE])
                    rest = max(0.0, min((time.perf_counter() - began) * PACE, MAX_REST_S, rests_left))
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def query(self, sql: str, params: tuple | dict[str, object] = ()) -> list[tuple]:
        with self._db_lock:
            return self._db.execute(sql, params).fetchall()

    def close(self) -> None:
        with self._db_lock:
            self._db.close()


HOUR_NS = 3600 * 1_000_000_000
DEFAULT_ROLLUP_DAYS = 7  # `serve --usage-rollup-days`; 0: keep every call's row
ROLLUP_CHECK_S = 60.0


class Ledger(SqliteStore):
    """Usage rows, one per answered call, in <data-dir>/usage.db.

    Bills need only a month's sums, so rows of calls older than
    `rollup_days` are folded into per-hour sums (usage_hourly: one row per
    hour, function, version, architecture, outcome, memory size and billing
    granularity) and deleted; usage() adds both. An hour never straddles a
    month, so monthly reports come out the same before and after."""

    def __init__(self, data_dir: pathlib.Path, *, rollup_days: int = DEFAULT_ROLLUP_DAYS) -> None:
        self.rollup_days = rollup_days
        self._next_rollup = 0.0
        super().__init__(data_dir / "usage.db")

    def _create(self, db: sqlite3.Connection) -> None:
        # The key leads with the time, not the random request id, so each
        # flush's rows land together at the right edge of the unique index
        # instead of dirtying a random leaf page apiece; that halves the
        # flush's CPU and keeps it flat as the table grows. A usage.db made
        # before this kept (request_id, started_ns): the same constraint,
        # only slower, so it is left as it is, with the usage_by_time index
        # it made for time-range queries (the new key serves those itself).
        db.executescript(
            """
            CREATE TABLE IF NOT EXISTS usage (
                id INTEGER PRIMARY KEY,
                request_id TEXT NOT NULL,
                account TEXT NOT NULL,
                function TEXT NOT NULL,
                version TEXT NOT NULL,
                architecture TEXT NOT NULL,
                started_ns INTEGER NOT NULL,
                duration_ns INTEGER NOT NULL,
                init_ns INTEGER NOT NULL,
                billed_ms INTEGER NOT NULL,
                granularity_ms INTEGER NOT NULL,
                memory_mb INTEGER NOT NULL,
                max_memory_mb INTEGER NOT NULL,
                cold INTEGER NOT NULL,
                outcome TEXT NOT NULL,
                UNIQUE (started_ns, request_id)
            );
            CREATE TABLE IF NOT EXISTS usage_hourly (
                hour_ns INTEGER NOT NULL,
                account TEXT NOT NULL,
                function TEXT NOT NULL,
                version TEXT NOT NULL,
                architecture TEXT NOT NULL,
                outcome TEXT NOT NULL,
                memory_mb INTEGER NOT NULL,
                granularity_ms INTEGER NOT NULL,
                requests INTEGER NOT NULL,
                cold INTEGER NOT NULL,
                duration_ns INTEGER NOT NULL,
                init_ns INTEGER NOT NULL,
                billed_ms INTEGER NOT NULL,
                mb_ms INTEGER NOT NULL,
                max_memory_mb INTEGER NOT NULL,
                PRIMARY KEY (hour_ns, account, function, version, architecture, outcome, memory_mb, granularity_ms)
            ) WITHOUT ROWID;
            """
        )

    def maintain(self) -> None:
        now = time.monotonic()
        if self.rollup_days > 0 and now >= self._next_rollup:
            self._next_rollup = now + ROLLUP_CHECK_S
            self.roll_up(time.time_ns() - self.rollup_days * 24 * HOUR_NS)

    def roll_up(self, before_ns: int) -> int:
        """Folds the rows of calls started before `before_ns`, rounded down
        to an hour, into per-hour sums and deletes them; returns how many.
        Numbers are clamped as usage() clamps them."""
        cutoff = before_ns - before_ns % HOUR_NS
        with self._db_lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(
                    f"""
                    INSERT INTO usage_hourly (hour_ns, account, function, version, architecture, outcome, memory_mb, granularity_ms,
                                              requests, cold, duration_ns, init_ns, billed_ms, mb_ms, max_memory_mb)
                    SELECT started_ns - started_ns % {HOUR_NS}, account, function, version, architecture, outcome, {_MEMORY}, granularity_ms,
                           COUNT(*), SUM(cold != 0), SUM({_DURATION}), SUM({_INIT}), SUM({_BILLED}), SUM({_MEMORY} * {_BILLED}),
                           MAX(MIN(MAX(max_memory_mb, 0), {MAX_MEMORY_MB}))
                    FROM usage WHERE started_ns < ?
                    GROUP BY 1, 2, 3, 4, 5, 6, 7, 8
                    ON CONFLICT DO UPDATE SET requests = requests + excluded.requests, cold = cold + excluded.cold,
                        duration_ns = duration_ns + excluded.duration_ns, init_ns = init_ns + excluded.init_ns,
                        billed_ms = billed_ms + excluded.billed_ms, mb_ms = mb_ms + excluded.mb_ms,
                        max_memory_mb = MAX(max_memory_mb, excluded.max_memory_mb)
                    """,
                    (cutoff,),
                )
                gone = self._db.execute("DELETE FROM usage WHERE started_ns < ?", (cutoff,)).rowcount
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        return gone

    def _insert(self, db: sqlite3.Connection, records: list[UsageRecord]) -> None:
        # Every number is clamped on its way in (live or replayed), so no
        # stored row can break a sum; usage() clamps again on the way out
        # for rows stored before this did.
        insert_rows(
            db,
            "INSERT OR IGNORE INTO usage (request_id, account, function, version, architecture, started_ns, duration_ns,"
            " init_ns, billed_ms, granularity_ms, memory_mb, max_memory_mb, cold, outcome) VALUES ",
            14,
            [
                (
                    r.request_id,
                    r.account,
                    r.function,
                    r.version,
                    r.architecture,
                    _clamp(r.started_ns, _MAX_EPOCH_NS),
                    _clamp(r.duration_ns, MAX_CALL_NS),
                    _clamp(r.init_ns, MAX_CALL_NS),
                    _clamp(r.billed_ms, MAX_BILLED_MS),
                    _clamp(r.granularity_ms, MAX_BILLED_MS),
                    _clamp(r.memory_mb, MAX_MEMORY_MB),
                    _clamp(r.max_memory_mb, MAX_MEMORY_MB),
                    int(r.cold),
                    r.outcome,
                )
                for r in records
            ],
        )

    def usage(self, month: str, function: str | None = None, *, extra: Sequence[UsageRecord] = ()) -> list[billing.Usage]:
        """Sums per function and architecture for one calendar month (UTC),
        of the stored rows and of `extra` (calls not stored yet).

        Each row's numbers are clamped as they are summed, whatever the
        table holds; if a sum still leaves SQLite's 64-bit range, the
        month is summed again here in Python's unbounded integers."""
        start, end = billing.month_bounds_ns(month)
        where = " FROM usage WHERE started_ns >= ? AND started_ns < ?"
        params: tuple = (start, end)
        if function:
            where += " AND function = ?"
            params += (function,)
        try:
            rows = self.query(
                f"SELECT function, architecture, COUNT(*), SUM({_DURATION}), SUM({_BILLED}), SUM({_MEMORY} * {_BILLED})"
                + where
                + " GROUP BY function, architecture ORDER BY function, architecture",
                params,
            )
        except (sqlite3.OperationalError, OverflowError) as exc:
            if "overflow" not in str(exc):
                raise
            rows = self._usage_in_python(where, params, _DURATION, _BILLED, _MEMORY)
        rows = _merged(rows, self._hourly(start, end, function))
        if extra:
            rows = _with_extra(rows, extra, start, end, function)
        return [billing.Usage(function=f, architecture=a, requests=n, duration_ns=d, billed_ms=b, mb_ms=m) for f, a, n, d, b, m in rows]

    def _hourly(self, start: int, end: int, function: str | None) -> list[tuple]:
        """The rolled-up hours' sums, as usage() sums rows."""
        where = " FROM usage_hourly WHERE hour_ns >= ? AND hour_ns < ?" + (" AND function = ?" if function else "")
        params = (start, end, function) if function else (start, end)
        try:
            return self.query(
                "SELECT function, architecture, SUM(requests), SUM(duration_ns), SUM(billed_ms), SUM(mb_ms)"
                + where
                + " GROUP BY function, architecture",
                params,
            )
        except (sqlite3.OperationalError, OverflowError) as exc:
            if "overflow" not in str(exc):
                raise
            with self._db_lock:
                return _merged(
                    [],
                    self._db.execute("SELECT function, architecture, requests, duration_ns, billed_ms, mb_ms" + where, params).fetchall(),
                )

    def _usage_in_python(self, where: str, params: tuple, duration: str, billed: str, memory: str) -> list[tuple]:
        sums: dict[tuple[str, str], list[int]] = {}
        with self._db_lock:
            cursor = self._db.execute(f"SELECT function, architecture, {duration}, {billed}, {memory}" + where, params)
            for f, a, d, b, m in cursor:
                acc = sums.setdefault((f, a), [0, 0, 0, 0])
                acc[0] += 1
                acc[1] += d
                acc[2] += b
                acc[3] += m * b
        return [(f, a, *acc) for (f, a), acc in sorted(sums.items())]

    def calls(self, function: str | None = None, limit: int = 100) -> list[UsageRecord]:
        sql = (
            "SELECT request_id, function, version, architecture, started_ns, duration_ns, init_ns, billed_ms,"
            " granularity_ms, memory_mb, max_memory_mb, cold, outcome, account FROM usage"
        )
        params: tuple = ()
        if function:
            sql += " WHERE function = ?"
            params = (function,)
        sql += " ORDER BY started_ns DESC LIMIT ?"
        params += (limit,)
        fields = UsageRecord.__struct_fields__
        return [UsageRecord(**dict(zip(fields, (*row[:11], bool(row[11]), *row[12:])))) for row in self.query(sql, params)]


# started_ns is a wall-clock time: anything past the year 2262 (2**63 ns) is not one.
_MAX_EPOCH_NS = 2**63 - 1


# How usage() and roll_up() clamp a row's numbers.
_DURATION = f"MIN(MAX(duration_ns, 0), {MAX_CALL_NS})"
_INIT = f"MIN(MAX(init_ns, 0), {MAX_CALL_NS})"
_BILLED = f"MIN(MAX(billed_ms, 0), {MAX_BILLED_MS})"
_MEMORY = f"MIN(MAX(memory_mb, 0), {MAX_MEMORY_MB})"


def _merged(rows: list[tuple], more: list[tuple]) -> list[tuple]:
    """Sums per (function, architecture) of two lists of such sums."""
    if not more:
        return rows
    sums = {(f, a): [n, d, b, m] for f, a, n, d, b, m in rows}
    for f, a, n, d, b, m in more:
        acc = sums.setdefault((f, a), [0, 0, 0, 0])
        acc[0] += n
        acc[1] += d
        acc[2] += b
        acc[3] += m
    return [(f, a, *acc) for (f, a), acc in sorted(sums.items())]


def _with_extra(rows: list[tuple], extra: Sequence[UsageRecord], start: int, end: int, function: str | None) -> list[tuple]:
    sums = {(f, a): [n, d, b, m] for f, a, n, d, b, m in rows}
    for r in extra:
        if not start <= r.started_ns < end or (function and r.function != function):
            continue
        billed = _clamp(r.billed_ms, MAX_BILLED_MS)
        acc = sums.setdefault((r.function, r.architecture), [0, 0, 0, 0])
        acc[0] += 1
        acc[1] += _clamp(r.duration_ns, MAX_CALL_NS)
        acc[2] += billed
        acc[3] += _clamp(r.memory_mb, MAX_MEMORY_MB) * billed
    return [(f, a, *acc) for (f, a), acc in sorted(sums.items())]


def _clamp(value: int, high: int) -> int:
    return 0 if value < 0 else high if value > high else value
