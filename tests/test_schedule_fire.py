"""Schedules firing under trio's MockClock: the Scheduled Event's shape, the
cadence, the durable record of each fire, and one catch-up after downtime.

The scheduler runs for real against a real queue.db; only the wall clock
(virtual time on top of a fixed epoch) and the async queue (a list that
collects what would be dispatched) stand in.
"""

from __future__ import annotations

import datetime

import msgspec
import pytest
import trio
import trio.testing
from fake_service import FakeService

from lambdalet.gateway.errors import LambdaError
from lambdalet.gateway.events.async_store import AsyncStore
from lambdalet.gateway.events.scheduler import Schedule, Scheduler

EPOCH = datetime.datetime(2026, 5, 4, 9, 58, 30, tzinfo=datetime.timezone.utc).timestamp()


class CollectingQueue:
    def __init__(self) -> None:
        self.events = []

    def adopt(self, event) -> None:
        self.events.append(event)


async def inline(fn, *args):
    return fn(*args)


def wall() -> float:
    return EPOCH + trio.current_time()


def make(tmp_path, *functions: str):
    store = AsyncStore(tmp_path / "queue.db")
    queue = CollectingQueue()
    return store, queue, Scheduler(store, queue, FakeService(*functions), wall=wall, run_sync=inline)


def payloads(queue) -> list[dict]:
    return [msgspec.json.decode(e.payload) for e in queue.events]


@pytest.mark.trio
async def test_cron_schedule_fires_the_scheduled_event(tmp_path, autojump_clock):
    store, queue, scheduler = make(tmp_path, "reporter")
    doc = await scheduler.put("every-ten", {"ScheduleExpression": "cron(0/10 * * * ? *)", "FunctionName": "reporter"})
    assert doc["NextFire"] == "2026-05-04T10:00:00Z"
    async with trio.open_nursery() as nursery:
        await nursery.start(scheduler.run)
        # 09:58:30 + 1805 s = 10:28:35: fires at 10:00, 10:10 and 10:20.
        await trio.sleep(1805)
        nursery.cancel_scope.cancel()
    events = payloads(queue)
    assert [e["time"] for e in events] == ["2026-05-04T10:00:00Z", "2026-05-04T10:10:00Z", "2026-05-04T10:20:00Z"]
    first = events[0]
    assert first["detail-type"] == "Scheduled Event"
    assert first["source"] == "aws.events"
    assert first["version"] == "0"
    assert first["account"] == "000000000000" and first["region"] == "us-east-1"
    assert first["resources"] == ["arn:aws:events:us-east-1:000000000000:rule/every-ten"]
    assert first["detail"] == {}
    assert len({e["id"] for e in events}) == 3
    assert {e.function for e in queue.events} == {"reporter"}
    # Each fire is durable: the events are in queue.db, and the schedule
    # remembers its last fire.
    assert {e.id for e in store.pending_events()} == {e.id for e in queue.events}
    saved = msgspec.json.decode(store.load_schedules()["every-ten"], type=Schedule)
    assert saved.last_fire_s == datetime.datetime(2026, 5, 4, 10, 20, tzinfo=datetime.timezone.utc).timestamp()
    store.close()


@pytest.mark.trio
async def test_rate_schedule_counts_from_creation_and_takes_constant_input(tmp_path, autojump_clock):
    store, queue, scheduler = make(tmp_path, "tick")
    await scheduler.put("ticker", {"ScheduleExpression": "rate(5 minutes)", "FunctionName": "tick", "Input": '{"k": 1}'})
    async with trio.open_nursery() as nursery:
        await nursery.start(scheduler.run)
        await trio.sleep(16 * 60)
        nursery.cancel_scope.cancel()
    assert payloads(queue) == [{"k": 1}] * 3  # at +5, +10 and +15 minutes
    store.close()


@pytest.mark.trio
async def test_disabled_and_deleted_schedules_do_not_fire(tmp_path, autojump_clock):
    store, queue, scheduler = make(tmp_path, "f")
    await scheduler.put("off", {"ScheduleExpression": "rate(1 minute)", "FunctionName": "f", "State": "DISABLED"})
    await scheduler.put("gone", {"ScheduleExpression": "rate(1 minute)", "FunctionName": "f"})
    async with trio.open_nursery() as nursery:
        await nursery.start(scheduler.run)
        await trio.sleep(90)
        assert len(queue.events) == 1  # "gone" fired once, at +60 s
        await scheduler.delete("gone")
        await trio.sleep(600)
        nursery.cancel_scope.cancel()
    assert len(queue.events) == 1
    assert list(store.load_schedules()) == ["off"]
    store.close()


@pytest.mark.trio
async def test_missed_runs_after_downtime_are_caught_up_once(tmp_path, autojump_clock):
    store, queue, scheduler = make(tmp_path, "nightly")
    await scheduler.put("hourly", {"ScheduleExpression": "cron(0 * * * ? *)", "FunctionName": "nightly"})
    async with trio.open_nursery() as nursery:
        await nursery.start(scheduler.run)
        await trio.sleep(120)  # 10:00:30: the 10:00 run fired
        nursery.cancel_scope.cancel()
    assert [p["time"] for p in payloads(queue)] == ["2026-05-04T10:00:00Z"]

    # The server is down for five hours: runs at 11:00 .. 15:00 are missed.
    await trio.sleep(5 * 3600)
    queue2 = CollectingQueue()
    restarted = Scheduler(store, queue2, FakeService("nightly"), wall=wall, run_sync=inline)
    async with trio.open_nursery() as nursery:
        await nursery.start(restarted.run)
        await trio.sleep(1)
        # One catch-up, stamped with the first run it missed, not five.
        assert [p["time"] for p in payloads(queue2)] == ["2026-05-04T11:00:00Z"]
        await trio.sleep(3600)
        nursery.cancel_scope.cancel()
    # Then the schedule resumes from the present: 16:00 is next.
    assert [p["time"] for p in payloads(queue2)] == ["2026-05-04T11:00:00Z", "2026-05-04T16:00:00Z"]
    store.close()


@pytest.mark.trio
async def test_put_validates(tmp_path, autojump_clock):
    store, _queue, scheduler = make(tmp_path, "f")
    bad = [
        ("s", {"ScheduleExpression": "rate(1 minutes)", "FunctionName": "f"}),
        ("s", {"ScheduleExpression": "cron(0 10 * * * *)", "FunctionName": "f"}),
        ("s", {"ScheduleExpression": "cron(0 0 30 2 ? *)", "FunctionName": "f"}),  # never fires
        ("s", {"ScheduleExpression": "rate(1 day)", "FunctionName": "f", "Input": "{not json"}),
        ("s", {"ScheduleExpression": "rate(1 day)", "FunctionName": "f", "State": "PAUSED"}),
        ("bad name!", {"ScheduleExpression": "rate(1 day)", "FunctionName": "f"}),
    ]
    for name, body in bad:
        with pytest.raises(LambdaError) as info:
            await scheduler.put(name, body)
        assert info.value.error_type == "InvalidParameterValueException"
    with pytest.raises(LambdaError) as info:
        await scheduler.put("s", {"ScheduleExpression": "rate(1 day)", "FunctionName": "missing"})
    assert info.value.error_type == "ResourceNotFoundException"
    with pytest.raises(LambdaError) as info:
        scheduler.get("nope")
    assert info.value.error_type == "ResourceNotFoundException"
    store.close()


@pytest.mark.trio
async def test_replacing_a_schedule_restarts_its_count(tmp_path, autojump_clock):
    store, queue, scheduler = make(tmp_path, "f")
    await scheduler.put("s", {"ScheduleExpression": "rate(10 minutes)", "FunctionName": "f"})
    async with trio.open_nursery() as nursery:
        await nursery.start(scheduler.run)
        await trio.sleep(11 * 60)  # fired once, at +10 min
        await scheduler.put("s", {"ScheduleExpression": "rate(1 hour)", "FunctionName": "f"})
        await trio.sleep(59 * 60)  # the new expression counts from its own creation
        assert len(queue.events) == 1
        await trio.sleep(2 * 60)
        nursery.cancel_scope.cancel()
    assert len(queue.events) == 2
    saved = msgspec.json.decode(store.load_schedules()["s"], type=Schedule)
    assert saved.expression == "rate(1 hour)" and saved.last_fire_s is not None
    store.close()
