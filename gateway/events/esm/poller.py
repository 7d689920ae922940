"""One event source mapping's poller: batches from a queue to a function.

A batch is gathered until it holds BatchSize messages, or its payload
would pass Lambda's 6 MB, or the batching window (counted from the first
message) is over; with no window, whatever one receive finds goes at
once. Waiting costs nothing: the poller sleeps on the queue (a send wakes
it), never on a timer. Up to MaximumConcurrency batches (5 by default, as
Lambda starts SQS pollers) run at once.

The function runs synchronously, as Lambda runs it for SQS. A batch that
succeeds is deleted; with ReportBatchItemFailures only the messages the
function did not name are deleted. What fails stays invisible until the
queue's visibility timeout, then is received again; the queue's redrive
policy moves a message to its dead-letter queue once it has been received
maxReceiveCount times. A throttled or undeliverable batch is made visible
again after a short backoff, without counting against the function.
"""

from __future__ import annotations

import logging
import math
import sys

import trio

from ...errors import LambdaError
from ...ids import request_id as new_request_id
from ..sqs.service import SqsService
from ..sqs.store import StoredMessage
from . import batch as batch_mod
from .mappings import EventSourceMappings, Mapping

log = logging.getLogger("lambdalet.esm")

DEFAULT_CONCURRENCY = 5
THROTTLE_BACKOFF_S = 1.0
_PROBLEM_WAIT_S = 5.0


class Poller:
    def __init__(self, mapping: Mapping, mappings: EventSourceMappings, sqs: SqsService, pool, spec_for) -> None:
        self.m = mapping
        self.mappings = mappings
        self.sqs = sqs
        self.pool = pool
        self.spec_for = spec_for
        self.scope = trio.CancelScope()
        self.batches = 0

    def _result(self, text: str) -> None:
        self.mappings.record_result(self.m.uuid, text)

    async def run(self) -> None:
        limiter = trio.CapacityLimiter(self.m.max_concurrency or DEFAULT_CONCURRENCY)
        with self.scope:
            async with trio.open_nursery() as nursery:
                while True:
                    # A slot for the batch before its messages are received:
                    # none is taken from the queue that cannot be run now.
                    slot = object()
                    await limiter.acquire_on_behalf_of(slot)
                    try:
                        messages = await self._gather()
                    except BaseException:
                        limiter.release_on_behalf_of(slot)
                        raise
                    if messages is None:
                        limiter.release_on_behalf_of(slot)
                        await trio.sleep(_PROBLEM_WAIT_S)
                        continue
                    nursery.start_soon(self._deliver, messages, limiter, slot)

    async def _gather(self) -> list[StoredMessage] | None:
        """One batch, or None when the queue or function is not there."""
        m = self.m
        row = await trio.to_thread.run_sync(self.sqs.store.queue, m.queue)
        if row is None:
            self._result("PROBLEM: Error occurred while ReceiveMessage. SQS Error Code: AWS.SimpleQueueService.NonExistentQueue.")
            return None
        visibility = float(self.sqs.effective(row, "VisibilityTimeout"))
        got: list[StoredMessage] = []
        size = 0
        deadline = math.inf
        while len(got) < m.batch_size:
            fresh = await self.sqs.receive(row, m.batch_size - len(got), visibility)
            for msg in fresh:
                size += len(msg.body.encode()) + 1024
                got.append(msg)
            if got and deadline == math.inf:
                deadline = trio.current_time() + m.window_s
            if size >= batch_mod.MAX_PAYLOAD:
                break
            if got and (m.window_s == 0 or trio.current_time() >= deadline):
                break
            await self.sqs.wait_for_messages(m.queue, deadline)
        # What would push the event past 6 MB goes back for the next batch.
        kept: list = []
        size = 0
        for msg in got:
            size += len(msg.body.encode()) + 1024
            if kept and size > batch_mod.MAX_PAYLOAD:
                break
            kept.append(msg)
        if len(kept) < len(got):
            await trio.to_thread.run_sync(self.sqs.store.release, m.queue, [(x.seq, x.receipt) for x in got[len(kept) :]], self.sqs.wall())
            self.sqs.notify(m.queue)
        return kept

    async def _deliver(self, messages: list[StoredMessage], limiter: trio.CapacityLimiter, slot: object) -> None:
        try:
            await self._invoke(messages)
        except Exception:  # noqa: BLE001 - one batch must not stop the mapping
            log.exception("event source mapping %s: a batch failed", self.m.uuid)
        finally:
            limiter.release_on_behalf_of(slot)

    async def _invoke(self, messages: list[StoredMessage]) -> None:
        m = self.m
        arn = self.sqs.arn(m.queue)
        records = [batch_mod.record(x, self.sqs.system_attributes(x), arn, self.sqs.region) for x in messages]
        receipts = [(x.seq, x.receipt) for x in messages]
        try:
            rec = self.mappings.service.resolve(m.function, m.qualifier)
            outcome = await self.pool.invoke(self.spec_for(rec), batch_mod.event(records), None, new_request_id())
        except LambdaError as exc:
            # Throttled, or the function is gone or cannot run: the batch
            # comes back soon, and no receive is wasted on the function.
            self._result(f"PROBLEM: {exc.error_type}: {exc.message}")
            await trio.to_thread.run_sync(self.sqs.store.release, m.queue, receipts, self.sqs.wall() + THROTTLE_BACKOFF_S)
            return
        self.batches += 1
        if outcome.function_error is not None:
            self._result("PROBLEM: Function call failed")
            return  # all of it returns after the visibility timeout
        done = receipts
        if m.report_failures:
            failed = batch_mod.failed_ids(outcome.payload, [x.id for x in messages])
            if failed is None:
                self._result("PROBLEM: Function response contained an invalid batchItemFailures itemIdentifier")
                return
            done = [(x.seq, x.receipt) for x in messages if x.id not in set(failed)]
        await trio.to_thread.run_sync(self.sqs.store.delete, m.queue, done)
        self._result("OK")


class Pollers:
    """The running pollers, one per enabled mapping."""

    def __init__(self, sqs: SqsService, pool, spec_for, mappings: EventSourceMappings) -> None:
        self.sqs = sqs
        self.pool = pool
        self.spec_for = spec_for
        self.mappings = mappings
        self._running: dict[str, Poller] = {}
        self._nursery: trio.Nursery | None = None
        self._pending: list[Mapping] = []

    def start(self, mapping: Mapping) -> None:
        self.stop(mapping.uuid)
        if self._nursery is None:
            self._pending.append(mapping)
            return
        poller = Poller(mapping, self.mappings, self.sqs, self.pool, self.spec_for)
        self._running[mapping.uuid] = poller
        self._nursery.start_soon(self._supervise, poller)

    def stop(self, uid: str) -> None:
        self._pending = [m for m in self._pending if m.uuid != uid]
        poller = self._running.pop(uid, None)
        if poller is not None:
            poller.scope.cancel()

    async def _supervise(self, poller: Poller) -> None:
        while self._running.get(poller.m.uuid) is poller:
            try:
                await poller.run()
                return  # cancelled: stopped or replaced
            except Exception as exc:  # noqa: BLE001 - a bug or a store error must not end the mapping
                print(f"lambdalet: event source mapping {poller.m.uuid}: {exc!r}; restarting it", file=sys.stderr, flush=True)
                await trio.sleep(_PROBLEM_WAIT_S)
                poller.scope = trio.CancelScope()

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            pending, self._pending = self._pending, []
            for m in pending:
                self.start(m)
            task_status.started()
            await trio.sleep_forever()

    def statistics(self) -> dict[str, int]:
        return {uid: p.batches for uid, p in self._running.items()}
