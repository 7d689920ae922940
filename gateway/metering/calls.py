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

A full disk is a state, not a crash. A call whose record cannot be
appended is refused (1. above). A batch or a replay that SQLite cannot
commit (SQLITE_FULL, ENOSPC) leaves its journal files in place, in a
backlog that every flush tries again, oldest first, until it goes in; the
server starts and serves meanwhile, the usage report adds the backlog's
calls to what SQLite holds, and `degraded` says why.

A power cut (not a process kill) can lose what sat in the page cache for
less than one flush interval; `fsync=True` closes that gap at the cost of
one fdatasync per call.
"""

from __future__ import annotations

import logging
import pathlib
import sqlite3

import msgspec
import trio

from . import billing
from .journal import Journal
from .ledger import Ledger, UsageRecord
from .log_records import CallLog
from .logstore import LogStore

log = logging.getLogger("lambdalet.calls")

FLUSH_INTERVAL_S = 0.25
# Journal directories, and what each of their frames holds.
CALLS = "calls-journal"
_LEGACY = {"usage-journal": UsageRecord, "logs-journal": CallLog}
# What a store raises when it cannot write now: a full disk or file system
# (SQLITE_FULL, ENOSPC, EDQUOT), and its kin (an I/O error, a busy lock).
CANNOT_WRITE = (OSError, sqlite3.OperationalError)


class CallRecord(msgspec.Struct, array_like=True, gc=False):
    """What the journal holds for one answered call."""

    usage: UsageRecord
    log: CallLog | None = None


class CallJournal:
    def __init__(self, data_dir: pathlib.Path, ledger: Ledger, logstore: LogStore, *, fsync: bool = False) -> None:
        self.ledger = ledger
        self.logstore = logstore
        self._encode = msgspec.msgpack.Encoder().encode
        self._decoders = {CALLS: msgspec.msgpack.Decoder(CallRecord)} | {name: msgspec.msgpack.Decoder(t) for name, t in _LEGACY.items()}
        self.degraded: str | None = None  # why the backlog is not in SQLite, while it is not
        self.journal = Journal(data_dir / CALLS, fsync=fsync)
        # Journal files not yet in SQLite, oldest first: what earlier runs
        # left, then batches that could not be committed.
        self._backlog: list[tuple[pathlib.Path, str]] = []
        for name in _LEGACY:
            directory = data_dir / name
            if directory.is_dir():
                self._backlog += [(path, name) for path in sorted(directory.glob("*.journal"))]
        self._backlog += [(path, CALLS) for path in self.journal.files()]
        self.replayed = self._drain()
        try:
            self.journal.open_next()
        except OSError as exc:
            self._degrade(exc)  # the first append tries again
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

    def _commit(self, records: list[CallRecord], *, paced: bool = False) -> None:
        self.ledger.commit([r.usage for r in records], paced=paced)
        self.logstore.commit([r.log for r in records if r.log is not None], paced=paced)

    def _take_batch(self) -> tuple[list[CallRecord], list[pathlib.Path]]:
        # In the trio thread, where record() runs, so that no record falls
        # between switching files and taking the batch.
        try:
            previous = self.journal.open_next()
        except OSError:
            # No new file on a full disk: appends go on in the current one,
            # which this batch leaves alone; its records flush next time.
            return [], self.journal.take_torn()
        done = self.journal.take_torn() + ([previous] if previous is not None else [])
        batch, self._pending = self._pending, []
        return batch, done

    def _flush_batch(self, batch: list[CallRecord], done: list[pathlib.Path], paced: bool = False) -> None:
        """Commits the backlog, then the batch; what cannot be committed
        stays on disk in the backlog. Paced while calls are served
        (SqliteStore.commit)."""
        try:
            if self._backlog:
                self._drain(raising=True)
            self._commit(batch, paced=paced)
        except CANNOT_WRITE as exc:
            self._backlog += [(path, CALLS) for path in done]
            self._degrade(exc)
            return
        for path in done:
            path.unlink(missing_ok=True)
        self._recover()

    def flush_sync(self) -> None:
        """Moves everything recorded so far into SQLite, as far as the disk
        allows (tests, shutdown)."""
        self._flush_batch(*self._take_batch())

    async def flush(self) -> None:
        async with self._flush_lock:
            batch, done = self._take_batch()
            await trio.to_thread.run_sync(self._flush_batch, batch, done, True)

    async def run(self, *, interval_s: float = FLUSH_INTERVAL_S, task_status=trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        try:
            while True:
                await trio.sleep(interval_s)
                if self._pending or self._backlog:
                    await self.flush()
                try:
                    await trio.to_thread.run_sync(self._maintain)
                except CANNOT_WRITE as exc:
                    log.warning("log and usage upkeep: %s", exc)
        finally:
            with trio.CancelScope(shield=True):
                await self.flush()

    def _maintain(self) -> None:
        self.ledger.maintain()
        self.logstore.maintain()

    # -- what SQLite does not hold yet -----------------------------------------

    @property
    def backlog_files(self) -> int:
        return len(self._backlog)

    async def usage(self, month: str, function: str | None = None) -> list[billing.Usage]:
        """The month's usage: what SQLite holds, plus the calls of a backlog
        that could not be committed yet (so a full disk hides no answered call)."""
        await self.flush()
        async with self._flush_lock:
            return await trio.to_thread.run_sync(self._usage, month, function)

    def _usage(self, month: str, function: str | None) -> list[billing.Usage]:
        extra = [rec.usage for rec in self._unflushed()] if self._backlog else []
        return self.ledger.usage(month, function, extra=extra)

    def _unflushed(self) -> list[CallRecord]:
        out = []
        for path, kind in self._backlog:
            if kind == "logs-journal":
                continue
            decode = self._decoders[kind].decode
            for body in Journal.read(path):
                rec = decode(body)
                out.append(rec if kind == CALLS else CallRecord(rec))
        return out + self._pending

    # -- start and stop --------------------------------------------------------

    def _drain(self, *, raising: bool = False) -> int:
        """Commits backlog files oldest first and removes each once in;
        stops at the first that cannot be (raising, or else recording why)."""
        count = 0
        while self._backlog:
            path, kind = self._backlog[0]
            records = [self._decoders[kind].decode(body) for body in Journal.read(path)]
            try:
                if kind == CALLS:
                    self._commit(records)
                else:
                    (self.ledger if kind == "usage-journal" else self.logstore).commit(records)
            except CANNOT_WRITE as exc:
                if raising:
                    raise
                self._degrade(exc)
                return count
            path.unlink(missing_ok=True)
            del self._backlog[0]
            count += len(records)
            if kind != CALLS and not any(k == kind for _, k in self._backlog):
                try:
                    path.parent.rmdir()  # an earlier version's journal, all replayed
                except OSError:
                    pass  # something else in it: not ours to remove
        return count

    def _degrade(self, exc: Exception) -> None:
        reason = getattr(exc, "strerror", None) or str(exc)
        if self.degraded is None:
            log.warning(
                "usage and logs cannot be written to SQLite (%s): %d journal file(s) kept, retried every %.2f s",
                reason,
                len(self._backlog),
                FLUSH_INTERVAL_S,
            )
        self.degraded = reason

    def _recover(self) -> None:
        if self.degraded is not None and not self._backlog:
            log.warning("usage and logs are written to SQLite again")
            self.degraded = None

    def close(self) -> None:
        """Flushes what is pending, as far as the disk allows, and closes the
        journal (not the stores); what could not be committed stays on disk
        for the next start."""
        self.flush_sync()
        self.journal.close()
        # Everything else is in SQLite now: an empty last journal can go.
        backlog = {path for path, _ in self._backlog}
        for path in self.journal.files():
            if path not in backlog and not any(True for _ in Journal.read(path)):
                path.unlink(missing_ok=True)
