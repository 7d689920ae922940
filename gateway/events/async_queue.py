"""The durable asynchronous-invocation queue and its trio dispatcher.

An Event invoke is answered 202 only after its row is committed to queue.db.
The dispatcher runs each event through the pool, within the pool's
concurrency limits, and deletes the row only when the event is finished, in
the same commit that hands its record to a destination. A crash before that
commit leaves the row in place, so the event runs again after a restart: at
least once, never lost.

How long retries wait, and what is kept of each event between its attempts,
is async_pending.py's. Accepting events is async_intake.py's (group
commit); where a finished event's record goes, async_followup.py's.
"""

from __future__ import annotations

import collections
import heapq
import math
import sys
import time
import uuid
from collections.abc import Awaitable, Callable

import trio

from ..errors import LambdaError
from ..execution.pool import FunctionSpec, Pool
from ..functions.model import FunctionRecord
from ..functions.service import FunctionService
from ..functions.validation import function_ref
from . import async_followup
from .async_intake import GroupCommit
from .async_pending import (
    AWS_RETRY_DELAY_S,
    KEEP_PAYLOAD_MAX,
    KEEP_PAYLOADS_TOTAL,
    PendingEvent,
    QueueStatistics,
    retry_wait_s,
    throttle_wait_s,
)
from .async_store import AsyncStore, NewEvent
from .event_config import EventConfigs


class AsyncQueue:
    def __init__(
        self,
        store: AsyncStore,
        service: FunctionService,
        configs: EventConfigs,
        pool: Pool,
        spec_for: Callable[[FunctionRecord], FunctionSpec],
        *,
        retry_delay_s: float = AWS_RETRY_DELAY_S,
        max_parallel: int = 64,
        wall: Callable[[], float] = time.time,
        run_sync: Callable[..., Awaitable] = trio.to_thread.run_sync,
        on_message: Callable[[str], None] = lambda queue: None,
    ) -> None:
        self.store = store
        # How blocking store calls run: a worker thread, or inline in tests
        # on a mock clock (a thread would let the clock jump mid-write).
        self._run_sync = run_sync
        self.service = service
        self.configs = configs
        self.pool = pool
        self.spec_for = spec_for
        self.retry_delay_s = retry_delay_s
        self.wall = wall
        self._limiter = trio.CapacityLimiter(max(1, max_parallel))
        self._db = trio.CapacityLimiter(1)
        self._pending: dict[str, PendingEvent] = {}
        self._heap: list[tuple[float, int, str, int]] = []  # (due, trio clock; seq; event id; turn)
        # Per function, events waiting out a throttle: when a call of that
        # function ends, its slot goes to the first of them at once instead
        # of idling until some backoff expires.
        self._throttled: dict[str, collections.deque[str]] = {}
        self._seq = 0
        self._wakeup = trio.Event()
        self._intake = GroupCommit(store, self._db, run_sync, lambda event: self.adopt(event, keep_payload=True))
        self._kept_bytes = 0
        self._committing = False
        self._in_flight = 0
        self._throttles = 0
        counters = store.counters()
        self._retries = counters.get("retries", 0)
        self._succeeded = 0
        self._failed = 0
        self._dead_letters = sum(store.queue_depths().values())
        # Told the queue a record was just added to (SQS long polls and
        # event source mappings wait on it).
        self.on_message = on_message

    # -- accepting events -----------------------------------------------------

    async def enqueue(self, rec: FunctionRecord, payload: bytes, *, ref: str | None = None, qualifier: str | None = None) -> str:
        """Durably queues an event; returns its request id once committed
        (with others arriving meanwhile: async_intake.py)."""
        invoked = "$LATEST"
        if ref is not None:
            invoked = qualifier or function_ref(ref)[1] or "$LATEST"
        event = NewEvent(str(uuid.uuid4()), rec.name, payload, self.wall(), qualifier=invoked, version=rec.version)
        if not self._committing:
            # No dispatcher yet (embedding, tests): commit on our own.
            async with self._db:
                await self._run_sync(self.store.add_events, [event])
            self.adopt(event)
            return event.id
        await self._intake.submit(event)
        return event.id

    async def enqueue_handed_over(self, events: list[NewEvent]) -> list[NewEvent]:
        """Queues events another store has already committed (S3's outbox),
        each once however often it is handed over, and starts them at once;
        returns those not seen before. Their durability here comes with the
        next ``sync_handed_over`` (see events/s3/outbox.py)."""
        async with self._db:
            added = await self._run_sync(self.store.add_handed_over, events)
        for event in added:
            self.adopt(event, keep_payload=True)
        return added

    def adopt(self, event: NewEvent, not_before_s: float = 0.0, attempts: int = 0, keep_payload: bool = False) -> None:
        """Starts dispatching an event that is already committed."""
        if event.id in self._pending:
            return
        p = self._pending[event.id] = PendingEvent(event, attempts)
        size = len(event.payload)
        if keep_payload and size <= KEEP_PAYLOAD_MAX and self._kept_bytes + size <= KEEP_PAYLOADS_TOTAL:
            p.payload = event.payload
            self._kept_bytes += size
        self._push(event.id, max(0.0, not_before_s - self.wall()))

    def _forget(self, event_id: str) -> None:
        p = self._pending.pop(event_id, None)
        if p is not None and p.payload is not None:
            self._kept_bytes -= len(p.payload)
            p.payload = None

    def _push(self, event_id: str, delay_s: float) -> None:
        p = self._pending[event_id]
        p.turn += 1
        self._seq += 1
        heapq.heappush(self._heap, (trio.current_time() + delay_s, self._seq, event_id, p.turn))
        self._wakeup.set()

    def _wake_throttled(self, function: str) -> None:
        waiting = self._throttled.get(function)
        while waiting:
            event_id = waiting.popleft()
            p = self._pending.get(event_id)
            if p is not None and p.throttled:
                p.throttled = False
                self._push(event_id, 0.0)
                break
        if not waiting:
            self._throttled.pop(function, None)

    def statistics(self) -> QueueStatistics:
        now = self.wall()
        oldest = min((p.enqueued_s for p in self._pending.values()), default=None)
        return QueueStatistics(
            depth=len(self._pending),
            oldest_age_s=max(0.0, now - oldest) if oldest is not None else 0.0,
            in_flight=self._in_flight,
            retries=self._retries,
            throttles=self._throttles,
            succeeded=self._succeeded,
            failed=self._failed,
            dead_letters=self._dead_letters,
        )

    # -- dispatching ----------------------------------------------------------

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Loads what a previous run left queued (events in flight at a crash
        included) and dispatches until cancelled."""
        for ev in await self._run_sync(self.store.pending_events):
            self.adopt(NewEvent(ev.id, ev.function, b"", ev.enqueued_s, ev.chain, ev.qualifier, ev.version), ev.not_before_s, ev.attempts)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._intake.run)
                self._committing = True
                task_status.started()
                while True:
                    now = trio.current_time()
                    while self._heap and self._heap[0][0] <= now:
                        _, _, event_id, turn = heapq.heappop(self._heap)
                        p = self._pending.get(event_id)
                        if p is not None and p.turn == turn:
                            p.throttled = False
                            nursery.start_soon(self._attempt, event_id)
                    timeout = self._heap[0][0] - now if self._heap else math.inf
                    with trio.move_on_after(timeout):
                        await self._wakeup.wait()
                    self._wakeup = trio.Event()
        finally:
            self._committing = False

    async def _attempt(self, event_id: str) -> None:
        async with self._limiter:
            p = self._pending.get(event_id)
            if p is None:
                return
            self._in_flight += 1
            try:
                await self._run_once(event_id, p)
            except Exception as exc:  # noqa: BLE001 - one event must not stop the dispatcher
                # A bug or a store error (disk full): the row is still in
                # queue.db, so the event is kept and tried again later.
                print(f"lambdalet: async event {event_id} for {p.function}: {exc!r}; will retry", file=sys.stderr, flush=True)
                if event_id in self._pending:
                    self._push(event_id, self._backoff(p))
            finally:
                self._in_flight -= 1

    def _record(self, p: PendingEvent) -> FunctionRecord | None:
        """What runs the event: $LATEST as it is now, or the published
        version the event was invoked on (an alias was resolved on arrival)."""
        if p.version == "$LATEST":
            return self.service.registry.get(p.function)
        return self.service.versions.get(p.function, {}).get(p.version)

    async def _run_once(self, event_id: str, p: PendingEvent) -> None:
        if self._record(p) is None:
            # Deleted while its events waited: keep them where a person can see.
            await self._finish(event_id, p, "RetriesExhausted", status_code=404, function_error="ResourceNotFoundException")
            return
        cfg = self.configs.effective(p.function, p.qualifier)
        if self.wall() - p.enqueued_s > cfg.max_age_s:
            await self._finish(event_id, p, "EventAgeExceeded")
            return
        payload = p.payload
        if payload is None:
            async with self._db:
                payload = await self._run_sync(self.store.event_payload, event_id)
        if payload is None:
            self._forget(event_id)
            return
        # Looked up again after the wait, with no wait until the pool holds
        # its code: a record taken earlier may name code since collected.
        rec = self._record(p)
        if rec is None:
            await self._finish(event_id, p, "RetriesExhausted", status_code=404, function_error="ResourceNotFoundException")
            return
        try:
            outcome = await self.pool.invoke(self.spec_for(rec), payload, None, event_id)
        except LambdaError:
            # Throttled (429) or the platform failed (5xx): not an attempt.
            self._throttles += 1
            self._push(event_id, self._backoff(p))
            p.throttled = True
            self._throttled.setdefault(p.function, collections.deque()).append(event_id)
            return
        self._wake_throttled(p.function)
        p.attempts += 1
        p.last = outcome
        if outcome.function_error is None:
            await self._finish(event_id, p, "Success", payload=payload)
        elif p.attempts > cfg.max_retries:
            await self._finish(event_id, p, "RetriesExhausted", payload=payload)
        else:
            delay = retry_wait_s(p.attempts, self.retry_delay_s)
            async with self._db:
                await self._run_sync(self.store.record_retry, event_id, p.attempts, self.wall() + delay)
            self._retries += 1
            self._push(event_id, delay)

    def _backoff(self, p: PendingEvent) -> float:
        p.throttles += 1
        return throttle_wait_s(p.throttles, self.retry_delay_s)

    def _version_now(self, function: str, qualifier: str) -> str:
        """The version a qualifier names now. A version or alias that is gone
        stays as given, so the redriven event fails visibly, into the DLQ."""
        if qualifier == "$LATEST":
            return qualifier
        try:
            return self.service.resolve(function, qualifier).version
        except LambdaError:
            return qualifier

    async def _finish(
        self,
        event_id: str,
        p: PendingEvent,
        condition: str,
        *,
        payload: bytes | None = None,
        status_code: int | None = None,
        function_error: str | None = None,
    ) -> None:
        cfg = self.configs.effective(p.function, p.qualifier)
        target = cfg.on_success if condition == "Success" else cfg.on_failure
        then_event = then_message = None
        counter = "succeeded" if condition == "Success" else "failed"
        if target is not None:
            if payload is None:
                async with self._db:
                    payload = await self._run_sync(self.store.event_payload, event_id) or b""
            then_event, then_message = async_followup.follow(
                self.service,
                target,
                event_id,
                p,
                condition,
                payload,
                status_code=status_code,
                function_error=function_error,
                wall=self.wall,
            )
        async with self._db:
            await self._run_sync(
                lambda: self.store.finish_event(event_id, then_event=then_event, then_message=then_message, counter=counter)
            )
        self._forget(event_id)
        if condition == "Success":
            self._succeeded += 1
        else:
            self._failed += 1
        if then_event is not None:
            self.adopt(then_event, keep_payload=True)
        if then_message is not None:
            self._dead_letters += 1
            self.on_message(then_message.queue)

    # -- redrive --------------------------------------------------------------

    async def redrive(self, queue: str, message_ids: list[str] | None = None) -> int:
        """Sends records in a built-in queue back to the functions they came
        from, as new events carrying the original payload."""
        async with self._db:
            messages = await self._run_sync(lambda: self.store.messages(queue, limit=100000))
        if message_ids is not None:
            wanted = set(message_ids)
            messages = [m for m in messages if m.id in wanted]
        # Messages sent through SQS came from no function's event: nothing to send back.
        messages = [m for m in messages if m.function]
        moves = [
            (
                m.id,
                NewEvent(str(uuid.uuid4()), m.function, m.payload, self.wall(), 0, m.qualifier, self._version_now(m.function, m.qualifier)),
            )
            for m in messages
        ]
        async with self._db:
            moved = await self._run_sync(self.store.redrive, moves)
        self._dead_letters = max(0, self._dead_letters - len(moved))
        for event in moved:
            self.adopt(event)
        return len(moved)

    async def delete_messages(self, queue: str, message_ids: list[str] | None = None) -> int:
        """Removes records from a built-in queue for good."""
        async with self._db:
            deleted = await self._run_sync(self.store.delete_messages, queue, message_ids)
        self._dead_letters = max(0, self._dead_letters - deleted)
        return deleted
