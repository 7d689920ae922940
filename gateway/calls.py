"""One durable record per answered call: its usage row and its log, in one
append, before the call is answered.

How an answered call survives `kill -9` of the server:

1. Before the gateway answers a call, the pool's on_call hook hands its
   usage row and its log to CallJournal.record(), which appends them as one
   framed record to an append-only journal file
   (<data-dir>/calls-journal/<seq>.journal) with a single write(2). Once
   write(2) has returned, the bytes are in the kernel's page cache and
   belong to the file: killing the process, even with SIGKILL, no longer
   loses them. Only then does the HTTP response go out. If the write fails
   (a full disk) the call is answered with an error instead, and nothing of
   it is billed or logged: a call is billed if and only if it was answered.
2. Every FLUSH_INTERVAL_S a background task switches recording to a new
   journal file, inserts the old one's usage rows into usage.db and its
   logs into logs.db (one transaction each: WAL, synchronous=FULL, so each
   commit is fsynced), and only after both commits deletes the old file.
3. On start, every journal file left behind is replayed into SQLite before
   the server accepts calls. Rows are keyed so that INSERT OR IGNORE adds
   nothing twice (usage by (started_ns, request_id), log lines by their
   stamp, call and position), so replaying a journal whose rows were
   already committed (a kill between a commit and the unlink) is harmless.
   A record torn by the kill (a short last frame, or a bad CRC) is the only
   thing skipped, and it cannot belong to an answered call.

Journals of earlier versions, which kept usage (usage-journal) and logs
(logs-journal) apart, are replayed the same way once, then removed.

A power cut (not a process kill) can lose what sat in the page cache for
less than one flush interval; `fsync=True` closes that gap at the cost of
one fdatasync per call.
"""
from __future__ import annotations

import pathlib

import msgspec
import trio

from .journal import Journal
from .ledger import Ledger, UsageRecord
from .logstore import CallLog, LogStore

FLUSH_INTERVAL_S = 0.25
_LEGACY = (("usage-journal", UsageRecord), ("logs-journal", CallLog))


class CallRecord(msgspec.Struct, array_like=True):
    """What the journal holds for one answered call."""

    usage: UsageRecord
    log: CallLog | None = None


class CallJournal:
    def __init__(self, data_dir: pathlib.Path, ledger: Ledger, logstore: LogStore, *, fsync: bool = False) -> None:
        self.ledger = ledger
        self.logstore = logstore
        self._encode = msgspec.msgpack.Encoder().encode
        self._decoder = msgspec.msgpack.Decoder(CallRecord)
        self.journal = Journal(data_dir / "calls-journal", fsync=fsync)
        self.replayed = self._replay_legacy(data_dir) + self._replay()
        self.journal.open_next()
        self._pending: list[CallRecord] = []
        self._flush_lock = trio.Lock()

    # -- the call path ---------------------------------------------------------

    def record(self, usage: UsageRecord, log: CallLog | None = None) -> None:
        """Durable against a process kill when this returns (see the module
        doc); raises OSError, having kept nothing, when it cannot be."""
        rec = CallRecord(usage, log)
        self.journal.append(self._encode(rec))
        self._pending.append(rec)

    # -- batches into SQLite ---------------------------------------------------

    def _commit(self, records: list[CallRecord]) -> None:
        self.ledger.commit([r.usage for r in records])
        self.logstore.commit([r.log for r in records if r.log is not None])

    def _take_batch(self) -> tuple[list[CallRecord], list[pathlib.Path]]:
        # In the trio thread, where record() runs, so that no record falls
        # between switching files and taking the batch.
        previous = self.journal.open_next()
        done = self.journal.take_torn() + ([previous] if previous is not None else [])
        batch, self._pending = self._pending, []
        return batch, done

    def flush_sync(self) -> None:
        """Moves everything recorded so far into SQLite (tests, shutdown)."""
        batch, done = self._take_batch()
        self._commit(batch)
        for path in done:
            path.unlink(missing_ok=True)

    async def flush(self) -> None:
        async with self._flush_lock:
            batch, done = self._take_batch()
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
                await trio.to_thread.run_sync(self._maintain)
        finally:
            with trio.CancelScope(shield=True):
                await self.flush()

    def _maintain(self) -> None:
        self.ledger.maintain()
        self.logstore.maintain()

    # -- start and stop --------------------------------------------------------

    def _replay(self) -> int:
        count = 0
        for path in self.journal.files():
            records = [self._decoder.decode(body) for body in Journal.read(path)]
            self._commit(records)
            path.unlink()
            count += len(records)
        return count

    def _replay_legacy(self, data_dir: pathlib.Path) -> int:
        count = 0
        for name, record_type in _LEGACY:
            directory = data_dir / name
            if not directory.is_dir():
                continue
            decoder = msgspec.msgpack.Decoder(record_type)
            store = self.ledger if record_type is UsageRecord else self.logstore
            for path in sorted(directory.glob("*.journal")):
                records = [decoder.decode(body) for body in Journal.read(path)]
                store.commit(records)
                path.unlink()
                count += len(records)
            try:
                directory.rmdir()
            except OSError:
                pass  # something else in it: not ours to remove
        return count

    def close(self) -> None:
        """Flushes what is pending and closes the journal (not the stores)."""
        if self._pending:
            self.flush_sync()
        self.journal.close()
        # Everything is in SQLite now: the last, empty journal can go.
        for path in self.journal.files():
            if not any(True for _ in Journal.read(path)):
                path.unlink(missing_ok=True)
