"""Function logs, kept as CloudWatch Logs keeps them, in <data-dir>/logs.db.

Each call's log (its START..REPORT lines, or the JSON platform events) is
stored under the log group `/aws/lambda/<function>` (or the function's
LoggingConfig.LogGroup), in the instance's stream
`YYYY/MM/DD/[$LATEST]<instance-id>`, one event per line. A call's log is
journaled with its usage row in one write(2) before the call is answered
(calls.CallJournal) and batched into SQLite in the background, so it
survives `kill -9` of the server as its bill does.

Retention: events older than `retention_days` are deleted (0 keeps them
forever, CloudWatch's default). Size: once the lines in use pass
`max_bytes` (`serve --log-max-mb`, 1 GiB by default), the oldest calls'
lines go first, whole calls at a time, so logs.db stays bounded.

A call's platform lines (START, END and REPORT, or their JSON events) are
not stored as text: a row of `frames` keeps the figures they are made of
(logs.CallFrame) and they are made again, to the byte, when read
(log_records.framed decides when a frame can stand for them). Every
query reads the stored lines and the made-again ones as one sequence
(_lines), in which each line keeps the id and stamp it would have had as a
row of its own.
"""

from __future__ import annotations

import pathlib
import sqlite3
import time

from .ledger import SqliteStore, insert_rows
from .log_lines import CallFrame
from .log_records import CallLog, LogEvent, LogPage, split_framed

RETENTION_CHECK_S = 60.0
SIZE_CHECK_S = 5.0
DEFAULT_MAX_MB = 1024  # `serve --log-max-mb`; 0: no cap
# A trim removes oldest lines until the store is this share of its cap, so
# that it is not trimmed again at once; a transaction deletes at most this
# many ids' worth, so that a large trim never holds the store for long.
TRIM_TO = 0.9
TRIM_CHUNK_IDS = 20_000
# Rows a filtered page may examine (see LogStore.page); ~20 ms of SQLite.
PAGE_SCAN_ROWS = 100_000


# A frame's figures, in CallFrame's order after its head_at (see _frame_line).
_FRAME = "json, request_id, version, duration_ns, memory_mb, max_memory_mb, init_ns, granularity_ms, error_type, at_ms"


def _frame_line(
    which: int,
    json_format: int,
    request_id: str,
    version: str,
    duration_ns: int,
    memory_mb: int,
    max_memory_mb: int,
    init_ns: int | None,
    granularity_ms: int,
    error_type: str | None,
    at_ms: int,
) -> str:
    """One platform line of a stored frame (SQL function frame_line)."""
    return CallFrame(
        request_id, version, duration_ns, memory_mb, max_memory_mb, init_ns, granularity_ms, error_type, bool(json_format), at_ms
    ).line(which)


def _lines(where: str, order: str) -> str:
    """Every line of the store as one compound query: the events kept as
    text, then each frame's head, first tail line and (Text) second tail
    line, made again by frame_line. `where` is a template on the line's
    {ts}, {id} and {msg} (stamp, id, text), and on {key} and {shift}, an
    indexed column and how far the id is past it ({id} = {key} + {shift}).
    Each arm keeps its own index order, so SQLite merges the arms instead
    of sorting them."""
    frame_line = "frame_line({}, " + _FRAME + ")"
    arms = (
        ("events", "", "timestamp_ms", "id", "message", "id", 0),
        ("frames", "", "start_ms", "id", frame_line.format(0), "id", 0),
        ("frames", "", "end_ms", "end_id", frame_line.format(1), "end_id", 0),
        ("frames", "json = 0 AND ", "end_ms", "end_id + 1", frame_line.format(2), "end_id", 1),
    )
    parts = []
    for table, only, ts, ident, msg, key, shift in arms:
        clause = where.format(ts=ts, id=ident, msg=msg, key=key, shift=shift)
        parts.append(f"SELECT {ident}, {ts}, log_group, log_stream, {msg} FROM {table} WHERE {only}{clause}")
    return " UNION ALL ".join(parts) + (" ORDER BY 2, 1" if order == "time" else " ORDER BY 1")


class LogStore(SqliteStore):
    def __init__(self, data_dir: pathlib.Path, *, retention_days: int = 0, max_bytes: int = DEFAULT_MAX_MB << 20) -> None:
        self.retention_days = retention_days
        self.max_bytes = max_bytes
        self._next_retention = 0.0
        self._next_size_check = 0.0
        super().__init__(data_dir / "logs.db")
        self._db.create_function("frame_line", 11, _frame_line, deterministic=True)
        # Lines get their ids here, in log order, so that a frame's lines,
        # which have no row, keep their places among the rows around them.
        self._next_id = self._db.execute(
            "SELECT max(coalesce((SELECT max(id) FROM events), 0), coalesce((SELECT max(end_id) + 1 FROM frames), 0)) + 1"
        ).fetchone()[0]

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
            -- A call's platform lines as figures (logs.CallFrame): its head
            -- line has the row's id, its tail lines end_id (and end_id + 1).
            CREATE TABLE IF NOT EXISTS frames (
                id INTEGER PRIMARY KEY,
                end_id INTEGER NOT NULL,
                log_group TEXT NOT NULL,
                log_stream TEXT NOT NULL,
                started_ns INTEGER NOT NULL,
                start_ms INTEGER NOT NULL,
                end_ms INTEGER NOT NULL,
                json INTEGER NOT NULL,
                request_id TEXT NOT NULL,
                version TEXT NOT NULL,
                duration_ns INTEGER NOT NULL,
                memory_mb INTEGER NOT NULL,
                max_memory_mb INTEGER NOT NULL,
                init_ns INTEGER,
                granularity_ms INTEGER NOT NULL,
                error_type TEXT,
                at_ms INTEGER NOT NULL,
                UNIQUE (started_ns, request_id)
            );
            CREATE INDEX IF NOT EXISTS frames_start ON frames (log_group, start_ms);
            CREATE INDEX IF NOT EXISTS frames_end ON frames (log_group, end_ms, end_id);
            CREATE INDEX IF NOT EXISTS frames_report ON frames (log_group, end_ms, end_id + 1) WHERE json = 0;
            CREATE INDEX IF NOT EXISTS frames_end_id ON frames (end_id);
            """
        )

    def _insert(self, db: sqlite3.Connection, records: list[CallLog]) -> None:
        rows, frames = [], []
        next_id = self._next_id
        for call in records:
            key = f"{call.request_id}:{call.started_ns}"
            lines, kept = split_framed(call)
            head, tail = kept if kept is not None else (-1, len(lines))
            for seq, (ts, message) in enumerate(lines):
                if seq != head and seq < tail:
                    rows.append((next_id + seq, call.log_group, call.log_stream, ts, key, seq, message))
            if kept is not None and (f := call.frame) is not None:  # a call is framed only by its frame
                frames.append(
                    (
                        next_id + head,
                        next_id + tail,
                        call.log_group,
                        call.log_stream,
                        call.started_ns,
                        lines[head][0],
                        lines[tail][0],
                        int(f.json),
                        f.request_id,
                        f.version,
                        f.duration_ns,
                        f.memory_mb,
                        f.max_memory_mb,
                        f.init_ns,
                        f.granularity_ms,
                        f.error_type,
                        f.at_ms,
                    )
                )
            next_id += len(lines)
        insert_rows(db, "INSERT OR IGNORE INTO events (id, log_group, log_stream, timestamp_ms, call_key, seq, message) VALUES ", 7, rows)
        insert_rows(
            db,
            "INSERT OR IGNORE INTO frames (id, end_id, log_group, log_stream, started_ns, start_ms, end_ms, json, request_id,"
            " version, duration_ns, memory_mb, max_memory_mb, init_ns, granularity_ms, error_type, at_ms) VALUES ",
            17,
            frames,
        )
        self._next_id = next_id

    def commit(self, records: list, *, paced: bool = False) -> None:
        next_id = self._next_id
        try:
            super().commit(records, paced=paced)
        except BaseException:
            self._next_id = max(self._next_id, next_id)  # ids are never handed out twice, rolled back or not
            raise

    def maintain(self) -> None:
        now = time.monotonic()
        if self.retention_days > 0 and now >= self._next_retention:
            self._next_retention = now + RETENTION_CHECK_S
            self.expire()
        if self.max_bytes > 0 and now >= self._next_size_check:
            self._next_size_check = now + SIZE_CHECK_S
            self.trim()

    def bytes_in_use(self) -> int:
        """The bytes of logs.db's pages that hold data (freed pages are
        reused, not given back: this is what grows)."""
        with self._db_lock:
            size = self._db.execute("PRAGMA page_size").fetchone()[0]
            count = self._db.execute("PRAGMA page_count").fetchone()[0]
            free = self._db.execute("PRAGMA freelist_count").fetchone()[0]
        return (count - free) * size

    def trim(self) -> int:
        """Deletes the oldest calls' lines once the store is over its cap,
        down to TRIM_TO of it; returns how many rows went."""
        if self.max_bytes <= 0 or self.bytes_in_use() <= self.max_bytes:
            return 0
        gone = 0
        boost = 1
        while (used := self.bytes_in_use()) > self.max_bytes * TRIM_TO:
            # Ids are handed out a line at a time, so the span of ids in use
            # over the bytes in use tells how many ids to let go. A page is
            # free only once all its rows are gone: when a round frees too
            # little, the next takes twice as many.
            first, last = self._id_span()
            ids = int((last - first + 1) * (used - self.max_bytes * TRIM_TO) / used) + 1
            deleted = self._delete_oldest(first, min(ids * boost, TRIM_CHUNK_IDS))
            if not deleted:
                break
            gone += deleted
            boost *= 2
        return gone

    def _id_span(self) -> tuple[int, int]:
        first = self.query("SELECT min(coalesce((SELECT min(id) FROM events), 1 << 62), coalesce((SELECT min(id) FROM frames), 1 << 62))")[
            0
        ][0]
        return first, max(first, self.newest_id())

    def _delete_oldest(self, first: int, ids: int) -> int:
        """Deletes the lines with ids below first + ids, never cutting
        through a call; returns how many rows went."""
        if first >= 1 << 62:
            return 0
        cut = first + max(1, ids)
        with self._db_lock:
            # A frame whose lines straddle the cut moves it back to the
            # frame's head (a call too long for one cut goes over several).
            straddling = self._db.execute("SELECT id FROM frames WHERE end_id >= ? ORDER BY end_id LIMIT 1", (cut,)).fetchone()
            if straddling is not None and first < straddling[0] < cut:
                cut = straddling[0]
            self._db.execute("BEGIN IMMEDIATE")
            try:
                gone = self._db.execute("DELETE FROM events WHERE id < ?", (cut,)).rowcount
                gone += self._db.execute("DELETE FROM frames WHERE end_id < ?", (cut,)).rowcount
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            return gone

    def expire(self, now_ms: int | None = None) -> int:
        """Deletes events past retention (a frame with its last line);
        returns how many rows."""
        if self.retention_days <= 0:
            return 0
        now_ms = now_ms if now_ms is not None else time.time_ns() // 1_000_000
        cutoff = now_ms - self.retention_days * 86_400_000
        with self._db_lock:
            gone = self._db.execute("DELETE FROM events WHERE timestamp_ms < ?", (cutoff,)).rowcount
            return gone + self._db.execute("DELETE FROM frames WHERE end_ms < ?", (cutoff,)).rowcount

    def events(
        self, log_group: str, *, since_ms: int = 0, after_id: int = 0, contains: str | None = None, limit: int = 10_000
    ) -> list[LogEvent]:
        """Events of one group stored after event ``after_id``, in the order
        they were stored: what `lambdalet logs --follow` prints next."""
        # The unary + keeps SQLite off the group indexes here: from a recent
        # after_id, walking the new rows by id beats sorting a whole group.
        where = "+log_group = :g AND +{ts} >= :since AND {key} > :after - {shift}"
        if contains:
            where += " AND instr({msg}, :c) > 0"
        sql = _lines(where, "id") + " LIMIT :n"
        params = {"g": log_group, "since": since_ms, "after": after_id, "c": contains, "n": limit}
        return [LogEvent(id=i, timestamp_ms=t, log_group=g, log_stream=s, message=m) for i, t, g, s, m in self.query(sql, params)]

    def newest_id(self) -> int:
        """The id of the newest line stored (0 when there is none)."""
        return self.query(
            "SELECT max(coalesce((SELECT max(id) FROM events), 0), coalesce((SELECT max(end_id + 1 - json) FROM frames), 0))"
        )[0][0]

    def page(
        self,
        log_group: str,
        *,
        since_ms: int = 0,
        after: tuple[int, int] | None = None,
        upto_id: int | None = None,
        contains: str | None = None,
        limit: int = 10_000,
        scan: int = PAGE_SCAN_ROWS,
    ) -> LogPage:
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
            upto_id = self.newest_id()
        ts, last_id = after if after is not None else (since_ms, 0)
        lines = _lines("log_group = :g AND ({ts}, {id}) > (:ts, :id) AND {id} <= :upto", "time")
        params = {
            "g": log_group,
            "ts": max(ts, since_ms),
            "id": last_id if ts >= since_ms else 0,
            "upto": upto_id,
            "scan": scan,
            "c": contains,
            "n": limit + 1,
            "off": scan - 1,
        }
        cols = "id, timestamp_ms, log_group, log_stream, message"
        if contains:
            rows = self.query(f"SELECT {cols} FROM ({lines} LIMIT :scan) WHERE instr(message, :c) > 0 ORDER BY 2, 1 LIMIT :n", params)
        else:
            rows = self.query(f"{lines} LIMIT :n", params)
        found = [LogEvent(id=i, timestamp_ms=t, log_group=g, log_stream=s, message=m) for i, t, g, s, m in rows[:limit]]
        if len(rows) > limit:
            cursor: tuple[int, int] | None = (found[-1].timestamp_ms, found[-1].id)
        elif contains:
            # Fewer matches than asked: the end, unless the scan stopped
            # short of it (then go on after the last row it examined).
            edge = self.query(f"{lines} LIMIT 2 OFFSET :off", params)
            cursor = (edge[0][1], edge[0][0]) if len(edge) == 2 else None
        else:
            cursor = None
        return LogPage(events=found, next=cursor, upto_id=upto_id)

    def streams(self, log_group: str) -> list[str]:
        return [
            row[0]
            for row in self.query(
                "SELECT log_stream FROM events WHERE log_group = ? UNION SELECT log_stream FROM frames WHERE log_group = ? ORDER BY 1",
                (log_group, log_group),
            )
        ]
