"""One export destination's bounded buffer and the trio task that empties
it: batching, retries with backoff, and the counts /metrics shows.

The call path only appends to a deque (offer): it never waits, never does
I/O and never encodes. When the buffer and the batch being delivered
hold MAX_CALLS calls or MAX_BYTES bytes of logs, a new call is dropped
and counted (a receiver that is down must cost memory up to a bound, and
the calls nothing).
The task takes batches of up to BATCH_CALLS, every FLUSH_INTERVAL_S or as
soon as a batch is full, encodes each batch once and delivers its payloads
in order; a payload that fails is tried again after 0.1 s, 0.2 s, ...
up to MAX_BACKOFF_S between tries, for as long as it takes, while newer
calls wait (or, past the bound, are dropped). A payload the receiver
refuses for good (an HTTP 400) is dropped and counted.

Delivery is at least once: a connection that breaks in the middle of a
payload may have carried part of it, and the payload is sent again whole.
"""

from __future__ import annotations

import collections
import random
import time
from typing import Generic

import msgspec
import trio

from .sinks import Call, P, Rejected, Retry, Sink

MAX_CALLS = 10_000
MAX_BYTES = 64 << 20
BATCH_CALLS = 512
FLUSH_INTERVAL_S = 1.0
FIRST_BACKOFF_S = 0.1
MAX_BACKOFF_S = 5.0
# On stop, what is buffered gets one try each within this budget.
FINAL_FLUSH_S = 2.0


class ChannelStatistics(msgspec.Struct, frozen=True):
    sink: str
    queued_calls: int  # waiting in the buffer or being delivered
    queued_bytes: int
    sent_calls: int
    dropped_full: int  # calls dropped because the buffer was full
    dropped_rejected: int  # calls whose payload the receiver refused for good
    failed_tries: int  # deliveries that failed and were tried again
    last_error: str | None


class Channel(Generic[P]):
    def __init__(
        self,
        sink: Sink[P],
        *,
        max_calls: int = MAX_CALLS,
        max_bytes: int = MAX_BYTES,
        batch_calls: int = BATCH_CALLS,
        flush_interval_s: float = FLUSH_INTERVAL_S,
        max_backoff_s: float = MAX_BACKOFF_S,
    ) -> None:
        self.sink = sink
        self.max_calls = max_calls
        self.max_bytes = max_bytes
        self.batch_calls = batch_calls
        self.flush_interval_s = flush_interval_s
        self.max_backoff_s = max_backoff_s
        self._buffer: collections.deque[tuple[Call, int]] = collections.deque()
        self._bytes = 0
        # The batch being delivered still counts against the bound: it is
        # held in memory until it goes through.
        self._flight_calls = 0
        self._flight_bytes = 0
        self._wake = trio.Event()
        self.sent_calls = 0
        self.dropped_full = 0
        self.dropped_rejected = 0
        self.failed_tries = 0
        self.last_error: str | None = None

    def offer(self, usage, log) -> None:
        """Called for every answered call: O(1), never blocks."""
        size = len(log.log) if log is not None else 0
        if len(self._buffer) + self._flight_calls >= self.max_calls or self._bytes + self._flight_bytes + size > self.max_bytes:
            self.dropped_full += 1
            return
        self._buffer.append(((usage, log), size))
        self._bytes += size
        if len(self._buffer) == self.batch_calls:
            self._wake.set()

    def statistics(self) -> ChannelStatistics:
        return ChannelStatistics(
            self.sink.name,
            len(self._buffer) + self._flight_calls,
            self._bytes + self._flight_bytes,
            self.sent_calls,
            self.dropped_full,
            self.dropped_rejected,
            self.failed_tries,
            self.last_error,
        )

    def _take(self, n: int) -> list[Call]:
        batch = []
        buffer = self._buffer
        for _ in range(min(n, len(buffer))):
            call, size = buffer.popleft()
            self._bytes -= size
            self._flight_bytes += size
            batch.append(call)
        self._flight_calls = len(batch)
        return batch

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        await self.sink.start()
        task_status.started()
        try:
            while True:
                with trio.move_on_after(self.flush_interval_s):
                    await self._wake.wait()
                self._wake = trio.Event()
                # What is buffered now goes, in full batches and a rest; calls
                # that come meanwhile wait for the next interval or a full
                # batch, so that a steady stream makes a few large batches a
                # second and not a small one per round trip.
                due = len(self._buffer)
                while due > 0:
                    batch = self._take(min(due, self.batch_calls))
                    due -= len(batch)
                    await self._send(batch, retry=True)
        finally:
            with trio.CancelScope(shield=True) as scope:
                scope.deadline = trio.current_time() + FINAL_FLUSH_S
                while self._buffer and not scope.cancel_called:
                    await self._send(self._take(self.batch_calls), retry=False)
                await self.sink.aclose()

    async def _send(self, batch: list[Call], *, retry: bool) -> None:
        try:
            await self._deliver(batch, retry=retry)
        finally:
            self._flight_calls = self._flight_bytes = 0

    async def _deliver(self, batch: list[Call], *, retry: bool) -> None:
        for payload in self.sink.encode(batch, time.time_ns()):
            backoff = FIRST_BACKOFF_S
            while True:
                try:
                    await self.sink.deliver(payload)
                    break
                except Rejected as exc:
                    self.last_error = str(exc)
                    self.dropped_rejected += len(batch)
                    return
                except Retry as exc:
                    self.last_error = str(exc)
                    self.failed_tries += 1
                    if not retry:
                        return
                # Jitter: exporters that lost one receiver do not all come back at once.
                await trio.sleep(backoff * random.uniform(0.5, 1.0))
                backoff = min(backoff * 2, self.max_backoff_s)
            # Between payloads and batches, calls keep arriving: let them.
            await trio.lowlevel.checkpoint()
        self.sent_calls += len(batch)
