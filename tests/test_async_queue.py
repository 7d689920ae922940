"""The dispatcher's timing rules under trio's MockClock, with a real queue.db
and a stand-in pool (the one thing that cannot run instantly in virtual
time). What the AWS docs promise (invocation-async-error-handling):
- function errors: two retries by default, one minute before the first and
  two minutes before the second;
- throttles: back to the queue, waiting from 1 s and doubling to at most
  5 minutes, until the event is older than MaximumEventAgeInSeconds.
"""

from __future__ import annotations

import msgspec
import pytest
import trio
from fake_service import FakeService

from lambdalet.gateway.errors import LambdaError
from lambdalet.gateway.events.async_queue import AsyncQueue
from lambdalet.gateway.events.async_store import AsyncStore
from lambdalet.gateway.events.event_config import EventConfigs, EventInvokeConfig
from lambdalet.gateway.execution.pool import CallOutcome

EPOCH = 1_780_000_000.0


class ScriptedPool:
    """Answers each call from a script: "error", "ok" or "throttle"; the
    last entry repeats. Records the virtual time of every call."""

    def __init__(self, *script: str) -> None:
        self.script = list(script)
        self.calls: list[tuple[float, str, str]] = []  # (time, function, request id)
        self.payloads: list[bytes] = []

    async def invoke(self, spec, payload, client_context, request_id):
        step = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        self.calls.append((trio.current_time(), spec, request_id))
        self.payloads.append(payload)
        if step == "throttle":
            raise LambdaError("TooManyRequestsException", "Rate Exceeded.")
        if step == "crash":
            raise RuntimeError("a bug in the platform")
        error = "Unhandled" if step == "error" else None
        body = b'{"errorMessage": "no", "errorType": "E"}' if error else b'"fine"'
        return CallOutcome(
            request_id=request_id,
            payload=body,
            function_error=error,
            error_type="E" if error else None,
            log=b"",
            duration_ns=1,
            init_ns=None,
            cold=False,
        )


async def inline(fn, *args):
    return fn(*args)


def wall() -> float:
    return EPOCH + trio.current_time()


def make(tmp_path, pool, config: EventInvokeConfig | None = None, retry_delay_s: float = 60.0):
    store = AsyncStore(tmp_path / "queue.db")
    if config is not None:
        store.put_config("f", msgspec.json.encode(config))
    service = FakeService("f", "dest")
    configs = EventConfigs(store, service, wall=wall)
    queue = AsyncQueue(store, service, configs, pool, lambda rec: rec.name, retry_delay_s=retry_delay_s, wall=wall, run_sync=inline)
    return store, service, queue


async def run_until(queue: AsyncQueue, predicate, step: float = 1.0) -> None:
    async with trio.open_nursery() as nursery:
        await nursery.start(queue.run)
        while not predicate():
            await trio.sleep(step)
        nursery.cancel_scope.cancel()


def gaps(calls) -> list[float]:
    times = [c[0] for c in calls]
    return [round(b - a, 6) for a, b in zip(times, times[1:])]


@pytest.mark.trio
async def test_function_errors_wait_one_then_two_base_delays(tmp_path, autojump_clock):
    pool = ScriptedPool("error")
    store, service, queue = make(tmp_path, pool)
    request_id = await queue.enqueue(service.registry["f"], b'{"x": 1}')
    await run_until(queue, lambda: queue.statistics().depth == 0)
    assert len(pool.calls) == 3  # the first attempt and two retries
    assert gaps(pool.calls) == [60.0, 120.0]
    assert {c[2] for c in pool.calls} == {request_id}
    s = queue.statistics()
    assert (s.retries, s.failed, s.succeeded, s.dead_letters) == (2, 1, 0, 1)
    # No OnFailure configured: the record is kept in the built-in DLQ.
    [msg] = store.messages("lambdalet-dlq")
    rec = msgspec.json.decode(msg.body)
    assert rec["requestContext"]["condition"] == "RetriesExhausted"
    assert rec["requestContext"]["approximateInvokeCount"] == 3
    assert msg.payload == b'{"x": 1}'
    store.close()


@pytest.mark.trio
async def test_retry_delay_option_scales_the_waits(tmp_path, autojump_clock):
    pool = ScriptedPool("error", "error", "ok")
    store, service, queue = make(
        tmp_path, pool, EventInvokeConfig(last_modified=0, on_success="arn:aws:sqs:us-east-1:000000000000:done"), retry_delay_s=0.5
    )
    await queue.enqueue(service.registry["f"], b"{}")
    await run_until(queue, lambda: queue.statistics().depth == 0, step=0.1)
    assert gaps(pool.calls) == [0.5, 1.0]
    [msg] = store.messages("done")
    rec = msgspec.json.decode(msg.body)
    assert rec["requestContext"]["condition"] == "Success"
    assert rec["requestContext"]["approximateInvokeCount"] == 3
    assert rec["responsePayload"] == "fine"
    store.close()


@pytest.mark.trio
async def test_zero_retries_fails_after_one_attempt(tmp_path, autojump_clock):
    pool = ScriptedPool("error")
    store, service, queue = make(tmp_path, pool, EventInvokeConfig(last_modified=0, maximum_retry_attempts=0))
    await queue.enqueue(service.registry["f"], b"{}")
    await run_until(queue, lambda: queue.statistics().depth == 0)
    assert len(pool.calls) == 1 and queue.statistics().retries == 0
    store.close()


@pytest.mark.trio
async def test_throttles_back_off_doubling_and_are_not_attempts(tmp_path, autojump_clock):
    pool = ScriptedPool(*["throttle"] * 6, "ok")
    store, service, queue = make(
        tmp_path, pool, EventInvokeConfig(last_modified=0, on_success="arn:aws:lambda:us-east-1:000000000000:function:dest")
    )
    await queue.enqueue(service.registry["f"], b'{"n": 1}')
    await run_until(queue, lambda: queue.statistics().succeeded == 2)
    source = [c for c in pool.calls if c[1] == "f"]
    assert gaps(source) == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0]
    assert queue.statistics().throttles == 6
    # The destination function was then invoked, asynchronously, with the record.
    assert [c[1] for c in pool.calls[len(source) :]] == ["dest"]
    rec = msgspec.json.decode(pool.payloads[-1])
    assert rec["requestContext"]["condition"] == "Success"
    assert rec["requestContext"]["approximateInvokeCount"] == 1  # throttles do not count
    assert rec["requestPayload"] == {"n": 1}
    assert store.pending_events() == []
    store.close()


@pytest.mark.trio
async def test_throttle_backoff_is_capped_at_five_minutes(tmp_path, autojump_clock):
    pool = ScriptedPool("throttle")
    store, service, queue = make(tmp_path, pool)
    await queue.enqueue(service.registry["f"], b"{}")
    await run_until(queue, lambda: len(pool.calls) >= 14, step=10.0)
    assert gaps(pool.calls)[:9] == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0]
    assert set(gaps(pool.calls)[9:]) == {300.0}
    # Reserved concurrency 0 (or any lasting throttle) holds the event.
    assert queue.statistics().depth == 1 and queue.statistics().failed == 0
    store.close()


@pytest.mark.trio
async def test_throttled_event_expires_at_its_maximum_age(tmp_path, autojump_clock):
    pool = ScriptedPool("throttle")
    store, service, queue = make(
        tmp_path, pool, EventInvokeConfig(last_modified=0, maximum_event_age_s=60, on_failure="arn:aws:sqs:us-east-1:000000000000:late")
    )
    request_id = await queue.enqueue(service.registry["f"], b'{"late": true}')
    await run_until(queue, lambda: queue.statistics().depth == 0)
    # Calls at 0, 1, 3, 7, 15 and 31 s; at 63 s the event is too old to run.
    assert [round(c[0] - pool.calls[0][0], 6) for c in pool.calls] == [0.0, 1.0, 3.0, 7.0, 15.0, 31.0]
    [msg] = store.messages("late")
    rec = msgspec.json.decode(msg.body)
    assert rec["requestContext"] == {
        "requestId": request_id,
        "functionArn": "arn:aws:lambda:us-east-1:000000000000:function:f:$LATEST",
        "condition": "EventAgeExceeded",
        "approximateInvokeCount": 0,
    }
    assert rec["responseContext"] == {"statusCode": 429, "executedVersion": "$LATEST"}
    assert "responsePayload" not in rec
    store.close()


@pytest.mark.trio
async def test_events_left_in_queue_db_are_dispatched_on_start(tmp_path, autojump_clock):
    pool = ScriptedPool("throttle")
    store, service, queue = make(tmp_path, pool)
    await queue.enqueue(service.registry["f"], b"{}")
    await queue.enqueue(service.registry["f"], b"{}")
    # A new dispatcher on the same file (a restart) picks both up.
    pool2 = ScriptedPool("ok")
    _, _, queue2 = make(tmp_path, pool2)
    await run_until(queue2, lambda: queue2.statistics().succeeded == 2)
    assert len(pool2.calls) == 2 and pool.calls == []
    assert store.pending_events() == []
    store.close()


@pytest.mark.trio
async def test_events_of_a_deleted_function_go_to_the_dlq(tmp_path, autojump_clock):
    pool = ScriptedPool("ok")
    store, service, queue = make(tmp_path, pool)
    await queue.enqueue(service.registry["f"], b'{"orphan": 1}')
    del service.registry["f"]
    await run_until(queue, lambda: queue.statistics().depth == 0)
    assert pool.calls == []
    [msg] = store.messages("lambdalet-dlq")
    assert msgspec.json.decode(msg.body)["requestPayload"] == {"orphan": 1}
    store.close()


@pytest.mark.trio
async def test_a_platform_bug_keeps_the_event_and_the_dispatcher(tmp_path, autojump_clock, capsys):
    pool = ScriptedPool("crash", "ok")
    store, service, queue = make(tmp_path, pool)
    await queue.enqueue(service.registry["f"], b"{}")
    await run_until(queue, lambda: queue.statistics().succeeded == 1)
    assert gaps(pool.calls) == [1.0]
    assert "RuntimeError('a bug in the platform'); will retry" in capsys.readouterr().err
    store.close()


@pytest.mark.trio
async def test_concurrent_enqueues_share_one_commit(tmp_path, autojump_clock):
    pool = ScriptedPool("throttle")
    store, service, queue = make(tmp_path, pool)
    commits = []
    real = store.add_events

    def counting(events):
        commits.append(len(events))
        real(events)

    store.add_events = counting
    ids = []
    async with trio.open_nursery() as nursery:
        await nursery.start(queue.run)

        async def one():
            ids.append(await queue.enqueue(service.registry["f"], b"{}"))

        async with trio.open_nursery() as callers:
            for _ in range(50):
                callers.start_soon(one)
        nursery.cancel_scope.cancel()
    assert sum(commits) == 50 and len(commits) < 50
    assert {e.id for e in store.pending_events()} == set(ids)
    store.close()


@pytest.mark.trio
async def test_a_loop_of_destinations_stops_after_16_hops(tmp_path, autojump_clock):
    # f's successes go to f itself: each record makes another record.
    pool = ScriptedPool("ok")
    store, service, queue = make(
        tmp_path, pool, EventInvokeConfig(last_modified=0, on_success="arn:aws:lambda:us-east-1:000000000000:function:f")
    )
    await queue.enqueue(service.registry["f"], b'{"start": 1}')
    await run_until(queue, lambda: queue.statistics().dead_letters == 1)
    assert len(pool.calls) == 17  # the event, then 16 records
    [msg] = store.messages("lambdalet-dlq")
    assert msgspec.json.decode(msg.body)["requestContext"]["condition"] == "Success"
    assert store.pending_events() == []
    store.close()


@pytest.mark.trio
async def test_recursion_config_allow_lets_the_loop_go_on(tmp_path, autojump_clock):
    """PutFunctionRecursionConfig(Allow): AWS no longer stops the loop for
    that function; back to Terminate, the next hop stops it."""

    class FlippingPool(ScriptedPool):
        """Withdraws Allow at the 40th call, well past 16."""

        async def invoke(self, spec, payload, client_context, request_id):
            if len(self.calls) == 39:
                self.dead_at_flip = queue.statistics().dead_letters
                service.registry["f"].recursive_loop = "Terminate"
            return await super().invoke(spec, payload, client_context, request_id)

    pool = FlippingPool("ok")
    store, service, queue = make(
        tmp_path, pool, EventInvokeConfig(last_modified=0, on_success="arn:aws:lambda:us-east-1:000000000000:function:f")
    )
    service.registry["f"].recursive_loop = "Allow"
    await queue.enqueue(service.registry["f"], b'{"start": 1}')
    await run_until(queue, lambda: queue.statistics().dead_letters == 1)
    assert pool.dead_at_flip == 0  # 39 calls, past 16: Allow let the loop go on
    assert len(pool.calls) == 40  # and the next hop after Terminate stopped it
    store.close()


def test_records_nested_deeper_than_a_decoder_goes_are_kept_as_text():
    """A loop allowed for long enough nests each record in the next one;
    past ~1,000 levels the record still goes out (its requestPayload as
    text) instead of failing the event for good."""
    from lambdalet.gateway.events import destinations

    deep = b'{"a":' * 5000 + b"1" + b"}" * 5000
    doc = destinations.record(
        wall_s=0,
        request_id="r",
        function_arn="arn",
        condition="Success",
        invoke_count=1,
        request_payload=deep,
        status_code=200,
        function_error=None,
        response_payload=b'"ok"',
    )
    assert doc["requestPayload"] == deep.decode()


class NarrowPool:
    """One call at a time (reserved concurrency 1); each takes ten seconds."""

    def __init__(self) -> None:
        self.busy = False
        self.starts: list[float] = []

    async def invoke(self, spec, payload, client_context, request_id):
        if self.busy:
            raise LambdaError("TooManyRequestsException", "Rate Exceeded.")
        self.busy = True
        self.starts.append(trio.current_time())
        try:
            await trio.sleep(10)
        finally:
            self.busy = False
        return CallOutcome(
            request_id=request_id, payload=b"1", function_error=None, error_type=None, log=b"", duration_ns=1, init_ns=None, cold=False
        )


@pytest.mark.trio
async def test_a_freed_slot_goes_to_a_throttled_event_at_once(tmp_path, autojump_clock):
    pool = NarrowPool()
    store, service, queue = make(tmp_path, pool)
    for _ in range(5):
        await queue.enqueue(service.registry["f"], b"{}")
    await run_until(queue, lambda: queue.statistics().succeeded == 5)
    # Back to back, not spaced out by throttle backoffs that reach minutes.
    assert [round(t - pool.starts[0], 6) for t in pool.starts] == [0.0, 10.0, 20.0, 30.0, 40.0]
    store.close()


class CountingStore(AsyncStore):
    def __init__(self, path) -> None:
        super().__init__(path)
        self.payload_reads = 0

    def event_payload(self, event_id):
        self.payload_reads += 1
        return super().event_payload(event_id)


@pytest.mark.trio
async def test_a_first_attempt_runs_on_the_payload_it_was_committed_with(tmp_path, autojump_clock):
    # Reading the payload back would wait behind whatever fsync queue.db is
    # doing at that moment (S3's hand-over syncs right after its events start).
    pool = ScriptedPool("ok")
    service = FakeService("f", "dest")
    store = CountingStore(tmp_path / "queue.db")
    queue = AsyncQueue(store, service, EventConfigs(store, service, wall=wall), pool, lambda rec: rec.name, wall=wall, run_sync=inline)
    big = b'"' + b"x" * (70 * 1024) + b'"'
    async with trio.open_nursery() as nursery:
        await nursery.start(queue.run)
        await queue.enqueue(service.registry["f"], b'{"small": 1}')
        await queue.enqueue(service.registry["f"], big)
        while queue.statistics().depth:
            await trio.sleep(1)
        nursery.cancel_scope.cancel()
    assert sorted(pool.payloads, key=len) == [b'{"small": 1}', big]
    assert store.payload_reads == 1  # only the large one was read back
    assert queue._kept_bytes == 0  # nothing kept once finished
    store.close()
