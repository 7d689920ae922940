"""Group commit of the async queue's intake: Event invokes that arrive
while a commit of queue.db is under way wait for the next one and share its
fsync, so concurrent Event invokes are not serialised behind one fsync
each. A caller is answered only once its event is committed."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import trio

from ..errors import LambdaError
from .async_store import AsyncStore, NewEvent


class _Ticket:
    __slots__ = ("event", "done", "error")

    def __init__(self, event: NewEvent) -> None:
        self.event = event
        self.done = trio.Event()
        self.error: Exception | None = None


class GroupCommit:
    def __init__(
        self, store: AsyncStore, db: trio.CapacityLimiter, run_sync: Callable[..., Awaitable], adopt: Callable[[NewEvent], None]
    ) -> None:
        """db: the queue's one writer at a time; adopt: starts dispatching
        a committed event."""
        self._store = store
        self._db = db
        self._run_sync = run_sync
        self._adopt = adopt
        self._tickets: list[_Ticket] = []
        self._ready = trio.Event()

    async def submit(self, event: NewEvent) -> None:
        """Returns once the event is committed (a 500 ServiceException if the
        commit failed)."""
        ticket = _Ticket(event)
        self._tickets.append(ticket)
        self._ready.set()
        await ticket.done.wait()
        if ticket.error is not None:
            raise LambdaError("ServiceException", f"The event could not be queued: {ticket.error}")

    async def run(self) -> None:
        while True:
            await self._ready.wait()
            self._ready = trio.Event()
            batch, self._tickets = self._tickets, []
            try:
                async with self._db:
                    await self._run_sync(self._store.add_events, [t.event for t in batch])
            except Exception as exc:  # noqa: BLE001 - each waiter gets the error as a 500
                for t in batch:
                    t.error = exc
                    t.done.set()
                continue
            for t in batch:
                # Adopted here, not by the waiter: a committed event is
                # dispatched even if its caller has gone away.
                self._adopt(t.event)
                t.done.set()
