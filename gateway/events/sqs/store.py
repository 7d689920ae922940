"""The SQL of the built-in queues, on queue.db's one connection.

A queue is a row of ``queues``; its messages are rows of ``messages``, the
same rows the async queue writes destination records into, so a record in
the dead-letter queue is an SQS message like any other. A message is
receivable when ``visible_s`` has passed (sent, delayed, or its visibility
timeout over); each receive gives it a new receipt token.

Sends commit with an fsync (an answered SendMessage survives power loss).
Receives, deletes and visibility changes commit without one: they survive
a crash of the server and become durable with the next fsync; lost to a
power cut, they leave a message delivered once more, never a message lost.

Synchronous: called from worker threads (service.py).
"""

from __future__ import annotations

import secrets
import sqlite3

import msgspec

from ..async_store import AsyncStore


class QueueRow(msgspec.Struct, frozen=True):
    name: str
    attributes: dict[str, str]
    tags: dict[str, str]
    created_s: float
    modified_s: float


class StoredMessage(msgspec.Struct, frozen=True):
    seq: int
    id: str
    queue: str
    body: str
    sent_s: float
    receive_count: int
    first_receive_s: float | None
    receipt: str | None
    attributes: dict[str, dict]
    system: dict[str, str]
    sender: str | None


class OutgoingMessage(msgspec.Struct, frozen=True):
    id: str
    body: str
    attributes: dict[str, dict]  # {"DataType", "StringValue" | "BinaryValue" (base64 text)}
    system: dict[str, str]
    delay_s: int
    sender: str


_dict = msgspec.json.Decoder(dict[str, str])
_attrs = msgspec.json.Decoder(dict[str, dict])
_enc = msgspec.json.Encoder()
_COLUMNS = "seq, id, queue, body, sent_s, receive_count, first_receive_s, receipt, attributes, system, sender"


def _message(row) -> StoredMessage:
    seq, mid, queue, body, sent_s, count, first, receipt, attributes, system, sender = row
    text = bytes(body).decode("utf-8", "replace") if isinstance(body, (bytes, memoryview)) else str(body)
    return StoredMessage(
        seq,
        mid,
        queue,
        text,
        sent_s,
        count,
        first,
        receipt,
        _attrs.decode(attributes) if attributes else {},
        _dict.decode(system) if system else {},
        sender,
    )


class SqsStore:
    def __init__(self, store: AsyncStore, builtin: tuple[str, ...] = ()) -> None:
        self.store = store
        with store.transaction() as db:
            # Queues that destinations named before queues had rows, and the
            # dead-letter queue, which always exists.
            names = {r[0] for r in db.execute("SELECT DISTINCT queue FROM messages")} | set(builtin)
            for name in names:
                db.execute(
                    "INSERT OR IGNORE INTO queues(name, attributes, tags, created_s, modified_s) "
                    "VALUES(?, '{}', '{}', strftime('%s','now'), strftime('%s','now'))",
                    (name,),
                )

    # -- queues -----------------------------------------------------------------

    def queue(self, name: str) -> QueueRow | None:
        with self.store.reading() as db:
            row = db.execute("SELECT name, attributes, tags, created_s, modified_s FROM queues WHERE name=?", (name,)).fetchone()
        return None if row is None else QueueRow(row[0], _dict.decode(row[1]), _dict.decode(row[2]), row[3], row[4])

    def create_queue(self, name: str, attributes: dict[str, str], tags: dict[str, str], now: float) -> QueueRow | None:
        """None when made; the existing queue otherwise (the caller compares)."""
        with self.store.transaction() as db:
            row = db.execute("SELECT name, attributes, tags, created_s, modified_s FROM queues WHERE name=?", (name,)).fetchone()
            if row is not None:
                return QueueRow(row[0], _dict.decode(row[1]), _dict.decode(row[2]), row[3], row[4])
            db.execute(
                "INSERT INTO queues(name, attributes, tags, created_s, modified_s) VALUES(?, ?, ?, ?, ?)",
                (name, _enc.encode(attributes), _enc.encode(tags), now, now),
            )
        return None

    def list_queues(self, prefix: str, after: str, limit: int) -> list[str]:
        with self.store.reading() as db:
            return [
                r[0]
                for r in db.execute(
                    "SELECT name FROM queues WHERE name > ? AND substr(name, 1, ?) = ? ORDER BY name LIMIT ?",
                    (after, len(prefix), prefix, limit),
                )
            ]

    def all_queues(self) -> list[QueueRow]:
        with self.store.reading() as db:
            rows = db.execute("SELECT name, attributes, tags, created_s, modified_s FROM queues ORDER BY name").fetchall()
        return [QueueRow(r[0], _dict.decode(r[1]), _dict.decode(r[2]), r[3], r[4]) for r in rows]

    def set_attributes(self, name: str, attributes: dict[str, str], now: float) -> bool:
        with self.store.transaction() as db:
            return (
                db.execute("UPDATE queues SET attributes=?, modified_s=? WHERE name=?", (_enc.encode(attributes), now, name)).rowcount == 1
            )

    def set_tags(self, name: str, tags: dict[str, str]) -> bool:
        with self.store.transaction() as db:
            return db.execute("UPDATE queues SET tags=? WHERE name=?", (_enc.encode(tags), name)).rowcount == 1

    def delete_queue(self, name: str) -> bool:
        with self.store.transaction() as db:
            db.execute("DELETE FROM messages WHERE queue=?", (name,))
            return db.execute("DELETE FROM queues WHERE name=?", (name,)).rowcount == 1

    def purge(self, name: str) -> int:
        with self.store.transaction() as db:
            return db.execute("DELETE FROM messages WHERE queue=?", (name,)).rowcount

    def counts(self, name: str, now: float) -> tuple[int, int, int]:
        """(receivable, in flight, delayed)."""
        with self.store.reading() as db:
            row = db.execute(
                "SELECT SUM(visible_s <= ?), SUM(visible_s > ? AND receive_count > 0), SUM(visible_s > ? AND receive_count = 0) "
                "FROM messages WHERE queue=? AND (expires_s IS NULL OR expires_s > ?)",
                (now, now, now, name, now),
            ).fetchone()
        return tuple(int(v or 0) for v in row)  # type: ignore[return-value]

    # -- messages ---------------------------------------------------------------

    def send(self, queue: str, messages: list[OutgoingMessage], now: float, retention_s: float) -> bool:
        """False when the queue does not exist (nothing is stored then)."""
        with self.store.transaction() as db:
            if db.execute("SELECT 1 FROM queues WHERE name=?", (queue,)).fetchone() is None:
                return False
            db.executemany(
                "INSERT INTO messages(id, queue, function, body, payload, sent_s, visible_s, attributes, system, sender, expires_s) "
                "VALUES(?, ?, '', ?, x'', ?, ?, ?, ?, ?, ?)",
                [
                    (
                        m.id,
                        queue,
                        m.body.encode("utf-8"),
                        now,
                        now + m.delay_s,
                        _enc.encode(m.attributes) if m.attributes else None,
                        _enc.encode(m.system) if m.system else None,
                        m.sender,
                        now + retention_s,
                    )
                    for m in messages
                ],
            )
        return True

    def receive(
        self, queue: str, limit: int, visibility_s: float, now: float, redrive: tuple[str, int] | None = None
    ) -> tuple[list[StoredMessage], int]:
        """Up to ``limit`` receivable messages, made invisible until now +
        visibility_s with a new receipt each; with a redrive policy (dead-
        letter queue, maxReceiveCount), a message already received that many
        times moves to the dead-letter queue instead. Returns the messages
        and how many moved."""
        out: list[StoredMessage] = []
        moved = 0
        with self.store.transaction(durable=False) as db:
            db.execute("DELETE FROM messages WHERE queue=? AND expires_s IS NOT NULL AND expires_s <= ?", (queue, now))
            while len(out) < limit:
                rows = db.execute(
                    f"SELECT {_COLUMNS} FROM messages WHERE queue=? AND visible_s <= ? ORDER BY visible_s, seq LIMIT ?",
                    (queue, now, limit - len(out)),
                ).fetchall()
                if not rows:
                    break
                for row in rows:
                    msg = _message(row)
                    if redrive is not None and msg.receive_count >= redrive[1] and self._exists(db, redrive[0]):
                        db.execute("UPDATE messages SET queue=?, visible_s=?, receipt=NULL WHERE seq=?", (redrive[0], now, msg.seq))
                        moved += 1
                        continue
                    token = secrets.token_hex(16)
                    first = msg.first_receive_s if msg.first_receive_s is not None else now
                    db.execute(
                        "UPDATE messages SET receive_count=receive_count+1, first_receive_s=?, receipt=?, visible_s=? WHERE seq=?",
                        (first, token, now + visibility_s, msg.seq),
                    )
                    out.append(
                        StoredMessage(
                            msg.seq,
                            msg.id,
                            msg.queue,
                            msg.body,
                            msg.sent_s,
                            msg.receive_count + 1,
                            first,
                            token,
                            msg.attributes,
                            msg.system,
                            msg.sender,
                        )
                    )
        return out, moved

    @staticmethod
    def _exists(db: sqlite3.Connection, name: str) -> bool:
        return db.execute("SELECT 1 FROM queues WHERE name=?", (name,)).fetchone() is not None

    def delete(self, queue: str, receipts: list[tuple[int, str | None]]) -> list[bool]:
        """For each (seq, token): whether a message was deleted. A receipt
        that is not the message's latest (or none: never received) deletes
        nothing and is no error,
        as SQS answers."""
        with self.store.transaction(durable=False) as db:
            return [
                db.execute("DELETE FROM messages WHERE queue=? AND seq=? AND receipt=?", (queue, seq, token)).rowcount == 1
                for seq, token in receipts
            ]

    def change_visibility(self, queue: str, seq: int, token: str, until_s: float, now: float) -> str:
        """ "ok", "not_in_flight" or "unknown"."""
        with self.store.transaction(durable=False) as db:
            row = db.execute("SELECT visible_s FROM messages WHERE queue=? AND seq=? AND receipt=?", (queue, seq, token)).fetchone()
            if row is None:
                return "unknown"
            if row[0] <= now:
                return "not_in_flight"
            db.execute("UPDATE messages SET visible_s=? WHERE seq=?", (until_s, seq))
            return "ok"

    def release(self, queue: str, receipts: list[tuple[int, str | None]], visible_s: float) -> None:
        """Makes received messages receivable again at visible_s (a batch
        that could not be handed to its function at all)."""
        with self.store.transaction(durable=False) as db:
            db.executemany(
                "UPDATE messages SET visible_s=? WHERE queue=? AND seq=? AND receipt=?",
                [(visible_s, queue, seq, token) for seq, token in receipts],
            )

    def next_visible(self, queue: str, now: float) -> float | None:
        """When the next message now invisible becomes receivable."""
        with self.store.reading() as db:
            row = db.execute("SELECT MIN(visible_s) FROM messages WHERE queue=? AND visible_s > ?", (queue, now)).fetchone()
        return row[0]

    def has_receivable(self, queue: str, now: float) -> bool:
        with self.store.reading() as db:
            return db.execute("SELECT 1 FROM messages WHERE queue=? AND visible_s <= ? LIMIT 1", (queue, now)).fetchone() is not None
