"""Durable state for asynchronous invocation, in its own SQLite (WAL) file,
<data-dir>/queue.db: queued events, event-invoke configs, the built-in
destination queues (the dead-letter queue among them) and schedules.

One file, so that the steps that must happen together happen in one
transaction: an event leaves the queue in the same commit that hands its
record to a destination, and a schedule's fire is enqueued in the same commit
that advances the schedule. Every method is synchronous and may fsync; the
gateway calls them from a worker thread, serialised by one lock.
"""

from __future__ import annotations

import contextlib
import pathlib
import sqlite3
import threading
from collections.abc import Iterable
from typing import Any

import msgspec

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id TEXT PRIMARY KEY,            -- the request id, kept across retries
    function TEXT NOT NULL,
    payload BLOB NOT NULL,
    enqueued_s REAL NOT NULL,       -- wall clock: the event's age counts from here
    attempts INTEGER NOT NULL,      -- calls that ran and returned an outcome
    not_before_s REAL NOT NULL,     -- wall clock: a function-error retry waits until then
    chain INTEGER NOT NULL DEFAULT 0, -- destination hops that led here, to stop loops
    qualifier TEXT NOT NULL DEFAULT '$LATEST', -- as invoked: $LATEST, a version or an alias
    version TEXT NOT NULL DEFAULT '$LATEST'    -- the version that runs
);
CREATE INDEX IF NOT EXISTS events_function ON events(function);
CREATE TABLE IF NOT EXISTS event_configs (
    function TEXT PRIMARY KEY,
    config BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    queue TEXT NOT NULL,
    function TEXT NOT NULL,         -- whose event this record is about
    body BLOB NOT NULL,             -- the destination record, as JSON
    payload BLOB NOT NULL,          -- the original event, for redrive
    sent_s REAL NOT NULL,
    qualifier TEXT NOT NULL DEFAULT '$LATEST' -- as the event was invoked, for redrive
);
CREATE INDEX IF NOT EXISTS messages_queue ON messages(queue, seq);
CREATE TABLE IF NOT EXISTS schedules (
    name TEXT PRIMARY KEY,
    schedule BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS queues (
    name TEXT PRIMARY KEY,          -- the built-in queues, as SQS sees them (events/sqs/)
    attributes BLOB NOT NULL,       -- the attributes set (JSON of strings); defaults are not stored
    tags BLOB NOT NULL,
    created_s REAL NOT NULL,
    modified_s REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS handed_over (
    id TEXT PRIMARY KEY             -- an event another store committed first (S3's outbox), queued here
) WITHOUT ROWID;
"""


class StoredEvent(msgspec.Struct, frozen=True):
    id: str
    function: str
    enqueued_s: float
    attempts: int
    not_before_s: float
    chain: int
    qualifier: str
    version: str


class Message(msgspec.Struct, frozen=True):
    id: str
    queue: str
    function: str
    body: bytes
    payload: bytes
    sent_s: float
    qualifier: str = "$LATEST"


class NewEvent(msgspec.Struct, frozen=True):
    id: str
    function: str
    payload: bytes
    enqueued_s: float
    chain: int = 0  # 0 for a caller's event; n for a record n destination hops on
    qualifier: str = "$LATEST"  # as invoked: $LATEST, a version number or an alias
    version: str = "$LATEST"  # the version that runs


class NewMessage(msgspec.Struct, frozen=True):
    id: str
    queue: str
    function: str
    body: bytes
    payload: bytes
    sent_s: float
    qualifier: str = "$LATEST"


class AsyncStore:
    def __init__(self, path: pathlib.Path) -> None:
        self.path = path
        # check_same_thread=False: calls come from trio's thread pool, always
        # serialised by self._lock.
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            # FULL: a 202 promises the event survives power loss.
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
            # queue.db files made before these columns existed lack them.
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(events)")}
            for column, decl in (
                ("chain", "INTEGER NOT NULL DEFAULT 0"),
                ("qualifier", "TEXT NOT NULL DEFAULT '$LATEST'"),
                ("version", "TEXT NOT NULL DEFAULT '$LATEST'"),
            ):
                if column not in columns:
                    self._db.execute(f"ALTER TABLE events ADD COLUMN {column} {decl}")
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(messages)")}
            # What SQS needs of a message, beside a destination record's fields.
            for column, decl in (
                ("qualifier", "TEXT NOT NULL DEFAULT '$LATEST'"),
                ("visible_s", "REAL NOT NULL DEFAULT 0"),  # wall clock: receivable from then
                ("receive_count", "INTEGER NOT NULL DEFAULT 0"),
                ("first_receive_s", "REAL"),
                ("receipt", "TEXT"),  # the latest receive's token
                ("attributes", "BLOB"),  # SQS message attributes (JSON)
                ("system", "BLOB"),  # SQS message system attributes (JSON)
                ("sender", "TEXT"),
                ("expires_s", "REAL"),
            ):  # retention; NULL: kept until deleted
                if column not in columns:
                    self._db.execute(f"ALTER TABLE messages ADD COLUMN {column} {decl}")
            self._db.execute("CREATE INDEX IF NOT EXISTS messages_visible ON messages(queue, visible_s)")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def transaction(self, durable: bool = True):
        """For the modules that keep their own tables in queue.db (the SQS
        view of the queues): a transaction on the one connection, holding its
        lock; yields the connection."""
        return self._transaction(durable, yield_db=True)

    @contextlib.contextmanager
    def reading(self):
        """The connection under its lock, for reads."""
        with self._lock:
            yield self._db

    @contextlib.contextmanager
    def _transaction(self, durable: bool = True, yield_db: bool = False):
        # isolation_level=None leaves every statement on its own; the steps
        # that must land together get an explicit transaction.
        with self._lock:
            if not durable:
                # WAL with synchronous=NORMAL: the commit survives a crash of
                # this process (it is in the OS's cache) but waits for the next
                # FULL commit's fsync to survive power loss.
                self._db.execute("PRAGMA synchronous=NORMAL")
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db if yield_db else None
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
            finally:
                if not durable:
                    self._db.execute("PRAGMA synchronous=FULL")

    # -- events ---------------------------------------------------------------

    def add_events(self, events: list[NewEvent]) -> None:
        """Commits a batch of new events with one fsync (group commit)."""
        with self._transaction():
            self._db.executemany(
                "INSERT INTO events(id, function, payload, enqueued_s, attempts, not_before_s, chain, qualifier, version) VALUES(?, ?, ?, ?, 0, 0, ?, ?, ?)",
                [(e.id, e.function, e.payload, e.enqueued_s, e.chain, e.qualifier, e.version) for e in events],
            )

    # -- events another store committed first ---------------------------------
    # S3 commits an object and its events in s3.db (its outbox); they are
    # handed over here by id, once: a hand-over repeated after a crash finds
    # the id in handed_over and adds nothing. outbox.py says in which order
    # the two files are written and why that order is safe.

    def add_handed_over(self, events: list[NewEvent]) -> list[NewEvent]:
        """Queues the events not handed over before; returns those. Not
        fsynced: the giving store still holds them until ``sync_handed_over``."""
        added: list[NewEvent] = []
        with self._transaction(durable=False):
            for event in events:
                if self._db.execute("INSERT OR IGNORE INTO handed_over(id) VALUES(?)", (event.id,)).rowcount:
                    self._insert_event(event)
                    added.append(event)
        return added

    def sync_handed_over(self, forget: list[str]) -> None:
        """Makes every hand-over so far durable (one fsync), and forgets the
        ids the giving store has durably dropped (they cannot come again)."""
        with self._transaction():
            self._db.executemany("DELETE FROM handed_over WHERE id=?", [(i,) for i in forget])
            self._bump("handed_over_syncs", 1)  # a write, so the commit has something to fsync

    def forget_handed_over_except(self, keep: set[str]) -> int:
        """At start-up: the ids whose giver still holds them are kept."""
        with self._transaction():
            ids = [r[0] for r in self._db.execute("SELECT id FROM handed_over")]
            gone = [(i,) for i in ids if i not in keep]
            self._db.executemany("DELETE FROM handed_over WHERE id=?", gone)
        return len(gone)

    def pending_events(self) -> list[StoredEvent]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, function, enqueued_s, attempts, not_before_s, chain, qualifier, version FROM events ORDER BY enqueued_s"
            ).fetchall()
        return [StoredEvent(*r) for r in rows]

    def event_payload(self, event_id: str) -> bytes | None:
        with self._lock:
            row = self._db.execute("SELECT payload FROM events WHERE id=?", (event_id,)).fetchone()
        return None if row is None else bytes(row[0])

    def record_retry(self, event_id: str, attempts: int, not_before_s: float) -> None:
        with self._transaction():
            self._db.execute("UPDATE events SET attempts=?, not_before_s=? WHERE id=?", (attempts, not_before_s, event_id))
            self._bump("retries", 1)

    def finish_event(
        self, event_id: str, *, then_event: NewEvent | None = None, then_message: NewMessage | None = None, counter: str | None = None
    ) -> None:
        """Removes an event and, in the same commit, hands its record on."""
        with self._transaction():
            self._db.execute("DELETE FROM events WHERE id=?", (event_id,))
            if then_event is not None:
                self._insert_event(then_event)
            if then_message is not None:
                self._insert_message(then_message)
            if counter is not None:
                self._bump(counter, 1)

    def _insert_event(self, event: NewEvent) -> None:
        self._db.execute(
            "INSERT OR IGNORE INTO events(id, function, payload, enqueued_s, attempts, not_before_s, chain, qualifier, version) VALUES(?, ?, ?, ?, 0, 0, ?, ?, ?)",
            (event.id, event.function, event.payload, event.enqueued_s, event.chain, event.qualifier, event.version),
        )

    def _insert_message(self, msg: NewMessage) -> None:
        # A destination names its queue into being, as it always has; SQS
        # sees it from then on with the default attributes.
        self._db.execute(
            "INSERT OR IGNORE INTO queues(name, attributes, tags, created_s, modified_s) VALUES(?, '{}', '{}', ?, ?)",
            (msg.queue, msg.sent_s, msg.sent_s),
        )
        self._db.execute(
            "INSERT INTO messages(id, queue, function, body, payload, sent_s, qualifier) VALUES(?, ?, ?, ?, ?, ?, ?)",
            (msg.id, msg.queue, msg.function, msg.body, msg.payload, msg.sent_s, msg.qualifier),
        )

    # -- counters -------------------------------------------------------------

    def _bump(self, name: str, by: int) -> None:
        self._db.execute(
            "INSERT INTO counters(name, value) VALUES(?, ?) ON CONFLICT(name) DO UPDATE SET value=value+excluded.value",
            (name, by),
        )

    def counters(self) -> dict[str, int]:
        with self._lock:
            return dict(self._db.execute("SELECT name, value FROM counters").fetchall())

    # -- event-invoke configs -------------------------------------------------

    def load_configs(self) -> dict[str, bytes]:
        with self._lock:
            return {name: bytes(blob) for name, blob in self._db.execute("SELECT function, config FROM event_configs")}

    def put_config(self, function: str, blob: bytes) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO event_configs(function, config) VALUES(?, ?) ON CONFLICT(function) DO UPDATE SET config=excluded.config",
                (function, blob),
            )

    def delete_config(self, function: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM event_configs WHERE function=?", (function,))

    # -- destination queues ---------------------------------------------------

    def messages(self, queue: str | None = None, limit: int = 1000) -> list[Message]:
        sql = "SELECT id, queue, function, body, payload, sent_s, qualifier FROM messages"
        args: tuple = ()
        if queue is not None:
            sql += " WHERE queue=?"
            args = (queue,)
        sql += " ORDER BY seq LIMIT ?"
        with self._lock:
            rows = self._db.execute(sql, (*args, limit)).fetchall()
        return [Message(r[0], r[1], r[2], bytes(r[3]), bytes(r[4]), r[5], r[6]) for r in rows]

    def queue_depths(self) -> dict[str, int]:
        with self._lock:
            return dict(self._db.execute("SELECT queue, COUNT(*) FROM messages GROUP BY queue ORDER BY queue").fetchall())

    def delete_messages(self, queue: str, message_ids: list[str] | None) -> int:
        with self._transaction():
            if message_ids is None:
                return self._db.execute("DELETE FROM messages WHERE queue=?", (queue,)).rowcount
            return sum(self._db.execute("DELETE FROM messages WHERE queue=? AND id=?", (queue, i)).rowcount for i in message_ids)

    def redrive(self, moves: Iterable[tuple[str, NewEvent]]) -> list[NewEvent]:
        """Each (message id, event): the message leaves its queue and the
        event joins the async queue, all in one commit. Returns the events
        whose message was still there."""
        moved: list[NewEvent] = []
        with self._transaction():
            for message_id, event in moves:
                cur = self._db.execute("DELETE FROM messages WHERE id=?", (message_id,))
                if cur.rowcount:
                    self._insert_event(event)
                    moved.append(event)
            self._bump("redriven", len(moved))
        return moved

    # -- schedules ------------------------------------------------------------

    def load_schedules(self) -> dict[str, bytes]:
        with self._lock:
            return {name: bytes(blob) for name, blob in self._db.execute("SELECT name, schedule FROM schedules ORDER BY name")}

    def put_schedule(self, name: str, blob: bytes, *, fire: NewEvent | None = None) -> None:
        """Stores a schedule; with `fire`, enqueues its event in the same
        commit, so a fire is neither lost nor doubled by a crash."""
        with self._transaction():
            self._db.execute(
                "INSERT INTO schedules(name, schedule) VALUES(?, ?) ON CONFLICT(name) DO UPDATE SET schedule=excluded.schedule",
                (name, blob),
            )
            if fire is not None:
                self._insert_event(fire)

    def delete_schedule(self, name: str) -> bool:
        with self._lock:
            return self._db.execute("DELETE FROM schedules WHERE name=?", (name,)).rowcount > 0


def read_statistics(path: pathlib.Path, now_s: float) -> dict[str, Any] | None:
    """For `lambdalet doctor`: what queue.db holds, read without a server
    (WAL lets a reader in beside a running one). None if there is no file."""
    if not path.exists():
        return None
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        depth, oldest = db.execute("SELECT COUNT(*), MIN(enqueued_s) FROM events").fetchone()
        counters = dict(db.execute("SELECT name, value FROM counters").fetchall())
        queues = dict(db.execute("SELECT queue, COUNT(*) FROM messages GROUP BY queue ORDER BY queue").fetchall())
        schedules = db.execute("SELECT COUNT(*) FROM schedules").fetchone()[0]
    except sqlite3.Error:
        return None
    finally:
        db.close()
    return {
        "depth": depth,
        "oldest_age_s": max(0.0, now_s - oldest) if oldest is not None else 0.0,
        "retries": counters.get("retries", 0),
        "queues": queues,
        "schedules": schedules,
    }
