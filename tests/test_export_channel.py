"""The export channel's policy under trio's MockClock, with a scripted
sink: what the call path may cost (nothing but an append), the bound and
its drop count, batching, backoff between tries, refusals, and the last
flush on stop. The real sinks meet real receivers in test_export.py."""

from __future__ import annotations

import pytest
import trio

from lambdalet.gateway.metering.export.channel import FIRST_BACKOFF_S, Channel
from lambdalet.gateway.metering.export.sinks import Rejected, Retry


class Log:
    def __init__(self, size: int) -> None:
        self.log = b"x" * size


class ScriptedSink:
    """Each batch is one payload (the calls' numbers); `script` says what
    each delivery does: 'ok', 'retry' or 'reject' ('ok' once it runs out)."""

    name = "scripted"

    def __init__(self, script: list[str] = ()) -> None:
        self.script = list(script)
        self.tries: list[tuple[float, list[int]]] = []
        self.delivered: list[int] = []
        self.closed = False

    async def start(self):
        pass

    def encode(self, batch, now_ns):
        return [[usage for usage, _ in batch]]

    async def deliver(self, payload):
        self.tries.append((trio.current_time(), payload))
        step = self.script.pop(0) if self.script else "ok"
        if step == "retry":
            raise Retry("receiver down")
        if step == "reject":
            raise Rejected("HTTP 400")
        self.delivered.extend(payload)

    async def aclose(self):
        self.closed = True


def test_offer_is_bounded_by_calls_and_by_bytes_and_counts_what_it_drops():
    channel = Channel(ScriptedSink(), max_calls=3, max_bytes=100)
    for n in range(5):
        channel.offer(n, Log(10))
    assert channel.statistics().queued_calls == 3 and channel.dropped_full == 2
    channel = Channel(ScriptedSink(), max_calls=100, max_bytes=100)
    channel.offer(0, Log(60))
    channel.offer(1, Log(60))  # past the byte bound
    channel.offer(2, None)  # a call without a log takes no bytes
    stats = channel.statistics()
    assert (stats.queued_calls, stats.queued_bytes, stats.dropped_full) == (2, 60, 1)


@pytest.mark.trio
async def test_batches_go_every_interval_or_as_soon_as_one_is_full(autojump_clock):
    sink = ScriptedSink()
    channel = Channel(sink, batch_calls=4, flush_interval_s=1.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(channel.run)
        channel.offer(0, None)
        await trio.sleep(1.5)
        assert sink.tries == [(pytest.approx(1.0), [0])]  # the interval's flush
        for n in range(1, 5):
            channel.offer(n, None)
        await trio.sleep(0.01)
        assert sink.tries[1] == (pytest.approx(1.5), [1, 2, 3, 4])  # a full batch at once
        nursery.cancel_scope.cancel()
    assert channel.sent_calls == 5 and sink.closed


@pytest.mark.trio
async def test_failed_tries_back_off_doubling_up_to_the_cap_and_keep_order(autojump_clock):
    sink = ScriptedSink(["retry"] * 7)
    channel = Channel(sink, flush_interval_s=1.0, max_backoff_s=1.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(channel.run)
        channel.offer(0, None)
        await trio.sleep(1.001)
        channel.offer(1, None)  # waits behind the batch being retried
        await trio.sleep(30)
        nursery.cancel_scope.cancel()
    times = [t for t, _ in sink.tries]
    gaps = [b - a for a, b in zip(times, times[1:])]
    expected = [min(FIRST_BACKOFF_S * 2**i, 1.0) for i in range(7)]
    for gap, full in zip(gaps, expected):
        assert full * 0.5 <= gap <= full  # jittered, never longer than the backoff
    assert sink.delivered == [0, 1]
    assert channel.failed_tries == 7 and channel.sent_calls == 2 and channel.last_error == "receiver down"


@pytest.mark.trio
async def test_a_refused_payload_is_dropped_and_counted_and_the_next_goes(autojump_clock):
    sink = ScriptedSink(["reject"])
    channel = Channel(sink, flush_interval_s=1.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(channel.run)
        channel.offer(0, None)
        channel.offer(1, None)
        await trio.sleep(1.5)
        channel.offer(2, None)
        await trio.sleep(1.0)
        nursery.cancel_scope.cancel()
    assert len(sink.tries) == 2 and sink.delivered == [2]
    assert channel.dropped_rejected == 2 and channel.sent_calls == 1 and channel.last_error == "HTTP 400"


@pytest.mark.trio
async def test_on_stop_what_is_buffered_gets_one_last_try(autojump_clock):
    sink = ScriptedSink()
    channel = Channel(sink, flush_interval_s=60.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(channel.run)
        channel.offer(0, None)
        channel.offer(1, None)
        await trio.sleep(1.0)
        assert sink.tries == []
        nursery.cancel_scope.cancel()
    assert sink.delivered == [0, 1] and sink.closed


class SlowSink(ScriptedSink):
    async def deliver(self, payload):
        await trio.sleep(0.05)  # a round trip to the receiver
        await super().deliver(payload)


@pytest.mark.trio
async def test_a_steady_stream_makes_a_batch_per_interval_not_one_per_round_trip(autojump_clock):
    sink = SlowSink()
    channel = Channel(sink, batch_calls=512, flush_interval_s=1.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(channel.run)
        for n in range(300):  # 100 calls a second for 3 s
            channel.offer(n, None)
            await trio.sleep(0.01)
        await trio.sleep(1.5)
        nursery.cancel_scope.cancel()
    assert sink.delivered == list(range(300))
    assert len(sink.tries) <= 4  # ~100 calls each, not one try per 50 ms round trip


@pytest.mark.trio
async def test_the_batch_being_delivered_counts_against_the_bound(autojump_clock):
    sink = ScriptedSink(["retry"] * 100)  # a receiver that stays down
    channel = Channel(sink, max_calls=2, flush_interval_s=1.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(channel.run)
        channel.offer(0, Log(10))
        channel.offer(1, Log(10))
        await trio.sleep(2)  # taken into a batch, tried, waiting to be tried again
        for n in range(2, 5):
            channel.offer(n, None)
        stats = channel.statistics()
        assert (stats.queued_calls, stats.queued_bytes, stats.dropped_full) == (2, 20, 3)
        nursery.cancel_scope.cancel()
