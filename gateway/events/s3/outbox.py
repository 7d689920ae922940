"""From a committed object to a queued async event, across two SQLite files.

An object's events are rows of s3.db's ``outbox``, written in the same
transaction as the object (store.py): the object and its events are one
durable step. The async queue lives in another file, queue.db, and SQLite
makes no transaction atomic across two WAL files, so the events are handed
over in this order:

1. read the outbox (s3.db);
2. in queue.db, one transaction: for each event id not in ``handed_over``,
   insert the id and the event. Not fsynced (synchronous=NORMAL): it
   survives a crash of the server, and until step 3 the outbox still holds
   the event should the machine lose power. The events are dispatched now,
   which is why an object reaches its function in a few milliseconds;
3. in queue.db, a FULL commit: its fsync makes step 2 durable;
4. in s3.db, delete the outbox rows (FULL);
5. in queue.db, forget those ids from ``handed_over`` (with the next
   step 3, or at start-up for the ids the outbox no longer holds).

A crash anywhere repeats from step 1 after a restart: an event already in
queue.db is found in ``handed_over`` and not added again (so a function
never runs twice for one object event because of a crash), and an event
not yet there is added. Nothing is lost: until step 4 commits, the event
is in s3.db; after it, step 3 has made it durable in queue.db. An id leaves
``handed_over`` only after step 4 is durable, when it cannot come again.

A destination whose resource policy no longer lets S3 invoke it (a
permission removed after the configuration was put) gets no event, as on
AWS; the outbox row is dropped and the refusal printed.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable

import trio

from ... import crashpoints
from ..async_store import NewEvent
from .records import OutboxRow
from .store import ObjectStore

BATCH = 256


class OutboxDrainer:
    def __init__(
        self,
        store: ObjectStore,
        queue,
        *,
        allowed: Callable[[OutboxRow], bool],
        version_of: Callable[[str, str], str],
        run_sync: Callable[..., Awaitable] | None = None,
    ) -> None:
        """``queue``: the AsyncQueue. ``allowed``: whether the event's function
        still lets S3 invoke it. ``version_of(function, qualifier)``: the
        version an alias names now (the qualifier itself otherwise)."""
        self.store = store
        self.queue = queue
        self.allowed = allowed
        self.version_of = version_of
        self._run_sync = run_sync or trio.to_thread.run_sync
        self._wake = trio.Event()
        self._forget: list[str] = []  # ids durably gone from the outbox
        self.handed_over = 0
        self.refused = 0

    def wake(self) -> None:
        """A commit put events in the outbox."""
        self._wake.set()

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        # What a previous run handed over and then dropped from the outbox
        # cannot be handed over again: forget it.
        keep = await self._run_sync(self.store.outbox_ids)
        await self._run_sync(self.queue.store.forget_handed_over_except, keep)
        task_status.started()
        self._wake.set()  # whatever a crash left in the outbox goes first
        while True:
            await self._wake.wait()
            self._wake = trio.Event()
            while await self.drain_once():
                pass

    async def drain_once(self) -> bool:
        """Hands over one batch; False when the outbox was empty."""
        rows = await self._run_sync(self.store.outbox, BATCH)
        if not rows:
            return False
        events: list[NewEvent] = []
        for row in rows:
            if not self.allowed(row):
                self.refused += 1
                print(
                    f"lambdalet: S3 event for {row.function}:{row.qualifier} dropped: its resource policy no longer lets "
                    f"s3.amazonaws.com invoke it for {row.source_arn}",
                    file=sys.stderr,
                    flush=True,
                )
                continue
            events.append(
                NewEvent(
                    row.id,
                    row.function,
                    row.payload,
                    row.created_s,
                    qualifier=row.qualifier,
                    version=self.version_of(row.function, row.qualifier),
                )
            )
        if events:
            added = await self.queue.enqueue_handed_over(events)
            self.handed_over += len(added)
        crashpoints.reach("s3.outbox.handed_over")
        forget, self._forget = self._forget, []
        await self._run_sync(self.queue.store.sync_handed_over, forget)
        crashpoints.reach("s3.outbox.synced")
        ids = [row.id for row in rows]
        await self._run_sync(self.store.forget_outbox, ids)
        self._forget.extend(ids)
        return True
