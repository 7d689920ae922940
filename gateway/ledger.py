"""The durable usage ledger: one row per call, in <data-dir>/usage.db.

How an answered call survives `kill -9` of the server:

1. Before the gateway answers a call, the pool hands its outcome to
   Ledger.record(), which appends one framed record to an append-only
   journal file (<data-dir>/usage-journal/<seq>.journal) with a single
   write(2). Once write(2) has returned, the bytes are in the kernel's page
   cache and belong to the file: killing the process, even with SIGKILL, no
   longer loses them. Only then does the HTTP response go out.
2. Every FLUSH_INTERVAL_S a background task switches recording to a new
   journal file, inserts the rows of the old one into SQLite in one
   transaction (WAL, synchronous=FULL, so the commit is fsynced), and only
   after the commit deletes the old journal file. That is the batching.
3. On start, every journal file left behind is replayed into SQLite before
   the server accepts calls. Rows are keyed by (started_ns, request_id) and
   inserted with INSERT OR IGNORE, so replaying a journal whose rows were
   already committed (a kill between commit and unlink) adds nothing twice.
   A record torn by the kill (a short last frame, or a bad CRC) is the
   only thing skipped, and it cannot belong to an answered call.

A power cut (not a process kill) can lose what sat in the page cache for
less than one flush interval; `fsync=True` closes that gap at the cost of
one fdatasync per call.
"""
from __future__ import annotations

import os
import pathlib
import sqlite3
import struct
import threading
import time
import zlib
from typing import Iterator

import msgspec
import trio

from . import billing
from .billing import MAX_BILLED_MS, MAX_CALL_NS, MAX_MEMORY_MB

FLUSH_INTERVAL_S = 0.25
_FRAME = struct.Struct("<II")  # body length, crc32 of body


class UsageRecord(msgspec.Struct, array_like=True, kw_only=True):
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


class Journal:
    """Append-only files of framed records: <dir>/<seq>.journal.

    Each frame is an 8-byte header (length, CRC32) and the body, written
    with one write(2) on an O_APPEND descriptor. Readers stop at the first
    frame that is short or fails its CRC: the tail a kill can tear.
    """

    def __init__(self, directory: pathlib.Path, *, fsync: bool = False) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.fsync = fsync
        self._fd = -1
        self._path: pathlib.Path | None = None
        self._seq = max((_seq_of(p) for p in self.files()), default=0)
        self._torn: list[pathlib.Path] = []  # files left after a failed append

    def files(self) -> list[pathlib.Path]:
        """Journal files on disk, oldest first (the open one included)."""
        return sorted((p for p in self.directory.glob("*.journal") if _seq_of(p) >= 0), key=_seq_of)

    def open_next(self) -> pathlib.Path | None:
        """Starts a new file for appends; returns the one it replaces."""
        previous = self._path
        old_fd = self._fd
        self._seq += 1
        path = self.directory / f"{self._seq:012d}.journal"
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        self._path = path
        if old_fd >= 0:
            os.close(old_fd)
        return previous

    def append(self, body: bytes) -> None:
        data = _FRAME.pack(len(body), zlib.crc32(body)) + body
        # One write(2) for a regular file in practice; the loop covers a
        # short write (a signal, a nearly full disk) without tearing a frame
        # in a way replay would not detect.
        try:
            written = os.write(self._fd, data)
            if written != len(data):
                view = memoryview(data)[written:]
                while view:
                    view = view[os.write(self._fd, view) :]
            if self.fsync:
                os.fdatasync(self._fd)
        except OSError:
            # Part of a frame may be on disk now, and replay stops at a torn
            # frame: anything appended after it would be lost to a kill.
            # Later frames go to a fresh file; this one is replayed up to
            # the tear, which is where its good frames end.
            torn = self.open_next()
            if torn is not None:
                self._torn.append(torn)
            raise

    def take_torn(self) -> list[pathlib.Path]:
        """Files set aside by failed appends since the last call: their
        good frames are in the batch that flushes with them."""
        torn, self._torn = self._torn, []
        return torn

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    @staticmethod
    def read(path: pathlib.Path) -> Iterator[bytes]:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return
        pos = 0
        while pos + _FRAME.size <= len(data):
            length, crc = _FRAME.unpack_from(data, pos)
            body = data[pos + _FRAME.size : pos + _FRAME.size + length]
            if len(body) < length or zlib.crc32(body) != crc:
                return  # torn by a kill mid-write: nothing after it was answered
            yield body
            pos += _FRAME.size + length


ROWS_PER_STATEMENT = 200
RECORDS_PER_SLICE = 200  # see BatchedStore._commit


def insert_rows(db: sqlite3.Connection, prefix: str, columns: int, rows: list[tuple]) -> None:
    """Inserts rows a few hundred per statement.

    executemany() steps SQLite once per row and lets go of the GIL around
    every step; from a worker thread that is a GIL hand-off per row, each
    one stalling the event loop that answers calls. One multi-row INSERT per
    chunk makes it one hand-off per few hundred rows.
    """
    one = "(" + ", ".join("?" * columns) + ")"
    for start in range(0, len(rows), ROWS_PER_STATEMENT):
        chunk = rows[start : start + ROWS_PER_STATEMENT]
        db.execute(prefix + ", ".join([one] * len(chunk)), [value for row in chunk for value in row])


def _seq_of(path: pathlib.Path) -> int:
    try:
        return int(path.stem)
    except ValueError:
        return -1


class BatchedStore:
    """A journal in front of a SQLite file: record() is a write(2); a task
    moves batches into SQLite. Subclasses say how rows are stored."""

    record_type: type

    def __init__(self, db_path: pathlib.Path, journal_dir: pathlib.Path, *, fsync: bool = False) -> None:
        self.db_path = db_path
        self._db = sqlite3.connect(db_path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db_lock = threading.Lock()  # one connection, used from worker threads one at a time
        self._create(self._db)
        self._encoder = msgspec.msgpack.Encoder()
        self._decoder = msgspec.msgpack.Decoder(self.record_type)
        self.journal = Journal(journal_dir, fsync=fsync)
        self.replayed = self._replay()
        self.journal.open_next()
        self._pending: list = []
        self._flush_lock = trio.Lock()

    # -- subclass hooks ----------------------------------------------------

    def _create(self, db: sqlite3.Connection) -> None:
        raise NotImplementedError

    def _insert(self, db: sqlite3.Connection, records: list) -> None:
        raise NotImplementedError

    # -- writes --------------------------------------------------------------

    def record(self, rec) -> None:
        """Durable against a process kill when this returns (see module doc)."""
        self.journal.append(self._encoder.encode(rec))
        self._pending.append(rec)

    def _replay(self) -> int:
        count = 0
        for path in self.journal.files():
            records = [self._decoder.decode(body) for body in Journal.read(path)]
            self._commit(records)
            path.unlink()
            count += len(records)
        return count

    def _commit(self, records: list) -> None:
        if not records:
            return
        with self._db_lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                # A slice at a time: turning records into rows holds the GIL,
                # and the event loop answering calls waits for it. Small
                # slices, with a hand-off between them, keep each wait short
                # (a whole 0.25 s batch at once put 2-3 ms stalls in p99 at one
                # connection; 200-record slices cut them by ~40% at no measurable
                # cost in throughput, smaller ones cost throughput).
                for start in range(0, len(records), RECORDS_PER_SLICE):
                    if start:
                        time.sleep(0)
                    self._insert(self._db, records[start : start + RECORDS_PER_SLICE])
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def flush_sync(self) -> None:
        """Moves everything recorded so far into SQLite (tests, shutdown)."""
        previous = self.journal.open_next()
        done = self.journal.take_torn() + ([previous] if previous is not None else [])
        batch, self._pending = self._pending, []
        self._commit(batch)
        for path in done:
            path.unlink(missing_ok=True)

    async def flush(self) -> None:
        async with self._flush_lock:
            # Switch files and take the batch in the trio thread, where
            # record() runs, so no record falls between the two.
            previous = self.journal.open_next()
            done = self.journal.take_torn() + ([previous] if previous is not None else [])
            batch, self._pending = self._pending, []
            await trio.to_thread.run_sync(self._commit, batch)
            for path in done:
                path.unlink(missing_ok=True)

    async def run(self, *, interval_s: float = FLUSH_INTERVAL_S, task_status=trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        try:
            while True:
                await trio.sleep(interval_s)
                if self._pending:
                    await self.flush()
                await trio.to_thread.run_sync(self.maintain)
        finally:
            with trio.CancelScope(shield=True):
                await self.flush()

    def maintain(self) -> None:
        """Periodic upkeep between flushes; nothing by default."""

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self._db_lock:
            return self._db.execute(sql, params).fetchall()

    def close(self) -> None:
        if self._pending:
            self.flush_sync()
        self.journal.close()
        # Everything is in SQLite now: the last, empty journal can go.
        for path in self.journal.files():
            if not any(True for _ in Journal.read(path)):
                path.unlink(missing_ok=True)
        with self._db_lock:
            self._db.close()


class Ledger(BatchedStore):
    record_type = UsageRecord

    def __init__(self, data_dir: pathlib.Path, *, fsync: bool = False) -> None:
        super().__init__(data_dir / "usage.db", data_dir / "usage-journal", fsync=fsync)

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
            """
        )

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
                (r.request_id, r.account, r.function, r.version, r.architecture, _clamp(r.started_ns, _MAX_EPOCH_NS),
                 _clamp(r.duration_ns, MAX_CALL_NS), _clamp(r.init_ns, MAX_CALL_NS), _clamp(r.billed_ms, MAX_BILLED_MS),
                 _clamp(r.granularity_ms, MAX_BILLED_MS), _clamp(r.memory_mb, MAX_MEMORY_MB),
                 _clamp(r.max_memory_mb, MAX_MEMORY_MB), int(r.cold), r.outcome)
                for r in records
            ],
        )

    def usage(self, month: str, function: str | None = None) -> list[billing.Usage]:
        """Sums per function and architecture for one calendar month (UTC).

        Each row's numbers are clamped as they are summed, whatever the
        table holds; if a sum still leaves SQLite's 64-bit range, the
        month is summed again here in Python's unbounded integers."""
        start, end = billing.month_bounds_ns(month)
        where = " FROM usage WHERE started_ns >= ? AND started_ns < ?"
        params: tuple = (start, end)
        if function:
            where += " AND function = ?"
            params += (function,)
        duration = f"MIN(MAX(duration_ns, 0), {MAX_CALL_NS})"
        billed = f"MIN(MAX(billed_ms, 0), {MAX_BILLED_MS})"
        memory = f"MIN(MAX(memory_mb, 0), {MAX_MEMORY_MB})"
        try:
            rows = self.query(
                f"SELECT function, architecture, COUNT(*), SUM({duration}), SUM({billed}), SUM({memory} * {billed})"
                + where + " GROUP BY function, architecture ORDER BY function, architecture",
                params,
            )
        except (sqlite3.OperationalError, OverflowError) as exc:
            if "overflow" not in str(exc):
                raise
            rows = self._usage_in_python(where, params, duration, billed, memory)
        return [
            billing.Usage(function=f, architecture=a, requests=n, duration_ns=d, billed_ms=b, mb_ms=m)
            for f, a, n, d, b, m in rows
        ]

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


def _clamp(value: int, high: int) -> int:
    return 0 if value < 0 else high if value > high else value
