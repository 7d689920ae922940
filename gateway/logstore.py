"""Function logs, kept as CloudWatch Logs keeps them, in <data-dir>/logs.db.

Each call's log (its START..REPORT lines, or the JSON platform events) is
stored under the log group `/aws/lambda/<function>` (or the function's
LoggingConfig.LogGroup), in the instance's stream
`YYYY/MM/DD/[$LATEST]<instance-id>`, one event per line. A call's log is
journaled with its usage row in one write(2) before the call is answered
(calls.CallJournal) and batched into SQLite in the background, so it
survives `kill -9` of the server as its bill does.

Retention: events older than `retention_days` are deleted (0 keeps them
forever, CloudWatch's default).
"""
from __future__ import annotations

import pathlib
import sqlite3
import time

import msgspec

from .ledger import SqliteStore, insert_rows
from .logs import MAX_MARKS

RETENTION_CHECK_S = 60.0
# Rows a filtered page may examine (see LogStore.page); ~20 ms of SQLite.
PAGE_SCAN_ROWS = 100_000


class CallLog(msgspec.Struct, array_like=True, kw_only=True):
    """The log a call produced, as the journal carries it."""

    log_group: str
    log_stream: str
    request_id: str
    started_ns: int
    ended_ns: int
    log: bytes
    # (offset, ms) pairs: when the bytes before each offset had been written
    # (logs.call_marks). Records journaled before marks existed have none.
    marks: list[tuple[int, int]] = []


class LogEvent(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    timestamp_ms: int
    log_group: str
    log_stream: str
    message: str


class LogPage(msgspec.Struct, frozen=True, kw_only=True):
    events: list[LogEvent]
    next: tuple[int, int] | None  # cursor (timestamp_ms, id) of the next page; None at the end
    upto_id: int  # the newest id paging covers; following goes on after it


def split_events(call: CallLog) -> list[tuple[int, str]]:
    """(timestamp ms, message) per line. Each line is stamped with the time
    it was written, as the call's marks tell it (logs.call_marks): the first
    mark at or after the line's end, clamped into the call's span and never
    earlier than a line before it. Lines after the last mark (END, REPORT,
    what a killed worker left) take the end of the call. The stamps depend
    only on the record, so a replayed journal stamps alike."""
    start_ms = call.started_ns // 1_000_000
    end_ms = max(start_ms, call.ended_ns // 1_000_000)
    if not call.marks:
        return _split_unmarked(call, start_ms, end_ms)
    log = call.log
    size = len(log)
    out: list[tuple[int, str]] = []
    pos = 0
    floor = start_ms
    for offset, ms in call.marks[:MAX_MARKS + 1]:
        # Lines that end at or before the mark: up to its last newline, or
        # to the end of the log when the mark reaches it.
        cut = size if offset >= size else log.rfind(b"\n", pos, offset) + 1
        if cut <= pos:
            continue
        floor = min(max(floor, ms), end_ms)
        out.extend((floor, line) for line in log[pos:cut].decode("utf-8", errors="replace").splitlines())
        pos = cut
    if pos < size:
        out.extend((end_ms, line) for line in log[pos:].decode("utf-8", errors="replace").splitlines())
    return out


def _split_unmarked(call: CallLog, start_ms: int, end_ms: int) -> list[tuple[int, str]]:
    # As such records were always stamped (a replay must stamp them alike):
    # the last two platform lines (END and REPORT, or platform.report) at
    # the end of the call, every other line at its start.
    out = []
    for line in call.log.decode("utf-8", errors="replace").splitlines():
        tail = line.startswith(("END RequestId:", "REPORT RequestId:")) or '"type":"platform.report"' in line
        out.append((end_ms if tail else start_ms, line))
    return out


class LogStore(SqliteStore):
    def __init__(self, data_dir: pathlib.Path, *, retention_days: int = 0) -> None:
        self.retention_days = retention_days
        self._next_retention = 0.0
        super().__init__(data_dir / "logs.db")

    def _create(self, db: sqlite3.Connection) -> None:
        # timestamp_ms leads the unique key for the reason ledger.Ledger's
        # key leads with started_ns: a call_key starts with a random request
        # id. A call's events get the same timestamps on every replay, so
        # the key still tells a replayed event from a new one. A logs.db
        # made before this kept UNIQUE (call_key, seq) and is left as it is.
        db.executescript(
            """
            CREATE TABLE IF NOT EXISTS events (
                id INTEGER PRIMARY KEY,
                log_group TEXT NOT NULL,
                log_stream TEXT NOT NULL,
                timestamp_ms INTEGER NOT NULL,
                call_key TEXT NOT NULL,
                seq INTEGER NOT NULL,
                message TEXT NOT NULL,
                -- A replayed journal adds nothing twice only because
                -- split_events() stamps each line from the started_ns and
                -- ended_ns stored in the record, the same way every time;
                -- keep it so (timestamp_ms leads the key for insert speed).
                UNIQUE (timestamp_ms, call_key, seq)
            );
            CREATE INDEX IF NOT EXISTS events_by_group ON events (log_group, timestamp_ms);
            """
        )

    def _insert(self, db: sqlite3.Connection, records: list[CallLog]) -> None:
        rows = []
        for call in records:
            key = f"{call.request_id}:{call.started_ns}"
            for seq, (ts, message) in enumerate(split_events(call)):
                rows.append((call.log_group, call.log_stream, ts, key, seq, message))
        insert_rows(db, "INSERT OR IGNORE INTO events (log_group, log_stream, timestamp_ms, call_key, seq, message) VALUES ", 6, rows)

    def maintain(self) -> None:
        now = time.monotonic()
        if self.retention_days > 0 and now >= self._next_retention:
            self._next_retention = now + RETENTION_CHECK_S
            self.expire()

    def expire(self, now_ms: int | None = None) -> int:
        """Deletes events past retention; returns how many."""
        if self.retention_days <= 0:
            return 0
        now_ms = now_ms if now_ms is not None else time.time_ns() // 1_000_000
        cutoff = now_ms - self.retention_days * 86_400_000
        with self._db_lock:
            return self._db.execute("DELETE FROM events WHERE timestamp_ms < ?", (cutoff,)).rowcount

    def events(self, log_group: str, *, since_ms: int = 0, after_id: int = 0, contains: str | None = None, limit: int = 10_000) -> list[LogEvent]:
        """Events of one group stored after event ``after_id``, in the order
        they were stored: what `lambdalet logs --follow` prints next."""
        # The unary + keeps SQLite off the group index here: from a recent
        # after_id, walking the new rows by id beats sorting a whole group.
        sql = "SELECT id, timestamp_ms, log_group, log_stream, message FROM events WHERE +log_group = ? AND +timestamp_ms >= ? AND id > ?"
        params: tuple = (log_group, since_ms, after_id)
        if contains:
            sql += " AND instr(message, ?) > 0"
            params += (contains,)
        sql += " ORDER BY id LIMIT ?"
        params += (limit,)
        return [LogEvent(id=i, timestamp_ms=t, log_group=g, log_stream=s, message=m) for i, t, g, s, m in self.query(sql, params)]

    def page(self, log_group: str, *, since_ms: int = 0, after: tuple[int, int] | None = None, upto_id: int | None = None,
             contains: str | None = None, limit: int = 10_000, scan: int = PAGE_SCAN_ROWS) -> LogPage:
        """One page of a group's events in time order (timestamp, then id),
        as CloudWatch's FilterLogEvents pages them.

        ``after`` is the cursor a previous page returned; ``upto_id`` bounds
        the ids seen (the newest id when paging began, so that paging ends
        while calls keep logging: what comes later is for ``events``).
        With ``contains`` at most ``scan`` rows are examined per page, so a
        rare match cannot hold the database for long: a page may then hold
        fewer than ``limit`` events, or none, and still have a ``next``.
        """
        if upto_id is None:
            upto_id = self.query("SELECT coalesce(max(id), 0) FROM events")[0][0]
        ts, last_id = after if after is not None else (since_ms, 0)
        where = "FROM events WHERE log_group = ? AND (timestamp_ms, id) > (?, ?) AND id <= ?"
        params: tuple = (log_group, max(ts, since_ms), last_id if ts >= since_ms else 0, upto_id)
        cols = "id, timestamp_ms, log_group, log_stream, message"
        if contains:
            sql = f"SELECT {cols} FROM (SELECT {cols} {where} ORDER BY timestamp_ms, id LIMIT ?) WHERE instr(message, ?) > 0 ORDER BY timestamp_ms, id LIMIT ?"
            rows = self.query(sql, params + (scan, contains, limit + 1))
        else:
            rows = self.query(f"SELECT {cols} {where} ORDER BY timestamp_ms, id LIMIT ?", params + (limit + 1,))
        found = [LogEvent(id=i, timestamp_ms=t, log_group=g, log_stream=s, message=m) for i, t, g, s, m in rows[:limit]]
        if len(rows) > limit:
            cursor: tuple[int, int] | None = (found[-1].timestamp_ms, found[-1].id)
        elif contains:
            # Fewer matches than asked: the end, unless the scan stopped
            # short of it (then go on after the last row it examined).
            edge = self.query(f"SELECT timestamp_ms, id {where} ORDER BY timestamp_ms, id LIMIT 2 OFFSET ?", params + (scan - 1,))
            cursor = (edge[0][0], edge[0][1]) if len(edge) == 2 else None
        else:
            cursor = None
        return LogPage(events=found, next=cursor, upto_id=upto_id)

    def streams(self, log_group: str) -> list[str]:
        return [row[0] for row in self.query("SELECT DISTINCT log_stream FROM events WHERE log_group = ? ORDER BY log_stream", (log_group,))]
