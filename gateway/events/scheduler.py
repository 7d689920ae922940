"""Schedules: a rate(...) or cron(...) expression that invokes a function
asynchronously with EventBridge's "Scheduled Event".

Each fire is enqueued on the durable async queue in the same commit that
records it as the schedule's last fire, so a crash neither loses nor doubles
one. After downtime, a schedule whose next run is already past fires once,
stamped with the first run it missed, and then resumes from the present: runs
missed in between are not replayed one by one.
"""

from __future__ import annotations

import datetime
import math
import re
import sys
import time
import uuid
from collections.abc import Awaitable, Callable

import msgspec
import trio

from ..errors import LambdaError, invalid
from ..functions.service import FunctionService
from . import schedule_expr
from .async_queue import AsyncQueue
from .async_store import AsyncStore, NewEvent

NAME_RE = re.compile(r"^[.\-_A-Za-z0-9]{1,64}$")
# Wake at least this often, so a wall-clock jump is noticed within a minute.
MAX_SLEEP_S = 60.0


class Schedule(msgspec.Struct, frozen=True):
    name: str
    expression: str
    function: str
    created_s: float
    state: str = "ENABLED"  # ENABLED | DISABLED
    input: str | None = None  # a constant JSON payload instead of the Scheduled Event
    last_fire_s: float | None = None


def _utc(wall_s: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(wall_s, datetime.timezone.utc)


def next_fire(sched: Schedule, parsed: schedule_expr.Schedule, after_s: float) -> float | None:
    nxt = parsed.next_after(_utc(after_s), _utc(sched.created_s))
    return None if nxt is None else nxt.timestamp()


def scheduled_event(*, rule_arn: str, account: str, region: str, fire_s: float) -> dict:
    """EventBridge's Scheduled Event, as a Lambda target receives it."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": account,
        "time": _utc(fire_s).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [rule_arn],
        "detail": {},
    }


class Scheduler:
    def __init__(
        self,
        store: AsyncStore,
        queue: AsyncQueue,
        service: FunctionService,
        *,
        wall: Callable[[], float] = time.time,
        run_sync: Callable[..., Awaitable] = trio.to_thread.run_sync,
    ) -> None:
        self.store = store
        # How blocking store calls run: a worker thread, or inline in tests
        # on a mock clock (a thread would let the clock jump mid-write).
        self._run_sync = run_sync
        self.queue = queue
        self.service = service
        self.wall = wall
        dec = msgspec.json.Decoder(Schedule)
        self._schedules: dict[str, Schedule] = {n: dec.decode(b) for n, b in store.load_schedules().items()}
        self._parsed = {n: schedule_expr.parse(s.expression) for n, s in self._schedules.items()}
        self._db = trio.CapacityLimiter(1)
        self._changed = trio.Event()
        self.fired = 0

    def rule_arn(self, name: str) -> str:
        return f"arn:aws:events:{self.service.region}:{self.service.account}:rule/{name}"

    # -- operations -----------------------------------------------------------

    async def put(self, name: str, body: dict) -> dict:
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise invalid(f"Schedule name {name!r} must be 1-64 of A-Z, a-z, 0-9, '.', '-' and '_'.")
        expression = body.get("ScheduleExpression")
        try:
            parsed = schedule_expr.parse(expression)
        except schedule_expr.ScheduleExpressionError as exc:
            raise invalid(f"Parameter ScheduleExpression is not valid: {exc}") from None
        assert isinstance(expression, str)  # parse() refused anything else
        rec = self.service.resolve(str(body.get("FunctionName") or ""))
        state = body.get("State", "ENABLED")
        if state not in ("ENABLED", "DISABLED"):
            raise invalid("State must be ENABLED or DISABLED")
        payload = body.get("Input")
        if payload is not None:
            if not isinstance(payload, str):
                raise invalid("Input must be a string holding JSON")
            try:
                msgspec.json.decode(payload)
            except msgspec.DecodeError:
                raise invalid("Input is not valid JSON") from None
        now = self.wall()
        if next_fire(Schedule(name, expression, rec.name, now), parsed, now) is None:
            raise invalid(f"Parameter ScheduleExpression is not valid: {expression} never fires")
        previous = self._schedules.get(name)
        # Replacing a schedule keeps its history only if the expression is
        # unchanged, so a new expression does not 'catch up' a run it never had.
        keep = previous is not None and previous.expression == expression
        sched = Schedule(
            name=name,
            expression=expression,
            function=rec.name,
            created_s=previous.created_s if keep and previous is not None else now,
            state=state,
            input=payload,
            last_fire_s=previous.last_fire_s if keep and previous is not None else None,
        )
        # Store and memory change together under the lock, so a fire that
        # is being written cannot overwrite a newer version of the schedule.
        async with self._db:
            await self._run_sync(self.store.put_schedule, name, msgspec.json.encode(sched))
            self._schedules[name] = sched
            self._parsed[name] = parsed
        self._changed.set()
        return self.describe(sched)

    def get(self, name: str) -> dict:
        sched = self._schedules.get(name)
        if sched is None:
            raise LambdaError("ResourceNotFoundException", f"Schedule {name} does not exist.")
        return self.describe(sched)

    def list(self) -> dict:
        return {"Schedules": [self.describe(s) for _, s in sorted(self._schedules.items())]}

    async def delete(self, name: str) -> None:
        if name not in self._schedules:
            raise LambdaError("ResourceNotFoundException", f"Schedule {name} does not exist.")
        async with self._db:
            await self._run_sync(self.store.delete_schedule, name)
            self._schedules.pop(name, None)
            self._parsed.pop(name, None)
        self._changed.set()

    def describe(self, sched: Schedule) -> dict:
        nxt = self._due(sched) if sched.state == "ENABLED" else None
        doc = {
            "Name": sched.name,
            "Arn": self.rule_arn(sched.name),
            "ScheduleExpression": sched.expression,
            "FunctionName": sched.function,
            "FunctionArn": self.service.arn(sched.function),
            "State": sched.state,
            "CreationTime": sched.created_s,
            "NextFire": _utc(nxt).strftime("%Y-%m-%dT%H:%M:%SZ") if nxt is not None else None,
            "LastFire": _utc(sched.last_fire_s).strftime("%Y-%m-%dT%H:%M:%SZ") if sched.last_fire_s is not None else None,
        }
        if sched.input is not None:
            doc["Input"] = sched.input
        return doc

    # -- firing ---------------------------------------------------------------

    def _due(self, sched: Schedule) -> float | None:
        after = sched.last_fire_s if sched.last_fire_s is not None else sched.created_s
        return next_fire(sched, self._parsed[sched.name], after)

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            now = self.wall()
            soonest = math.inf
            for name, sched in list(self._schedules.items()):
                if sched.state != "ENABLED":
                    continue
                due = self._due(sched)
                if due is None:
                    continue
                if due <= now:
                    try:
                        await self._fire(sched, due, now)
                    except Exception as exc:  # noqa: BLE001 - one schedule must not stop the others
                        # Not recorded as fired, so it is tried again.
                        print(f"lambdalet: schedule {name} could not fire: {exc!r}; retrying", file=sys.stderr, flush=True)
                        soonest = min(soonest, now + 5.0)
                        continue
                    due = self._due(self._schedules.get(name, sched)) if name in self._schedules else None
                    if due is None:
                        continue
                soonest = min(soonest, due)
            with trio.move_on_after(min(MAX_SLEEP_S, max(0.0, soonest - self.wall()))):
                await self._changed.wait()
            self._changed = trio.Event()

    async def _fire(self, sched: Schedule, due_s: float, now_s: float) -> None:
        rec = self.service.registry.get(sched.function)
        if sched.input is not None:
            payload = sched.input.encode()
        else:
            payload = msgspec.json.encode(
                scheduled_event(rule_arn=self.rule_arn(sched.name), account=self.service.account, region=self.service.region, fire_s=due_s)
            )
        # last fire = now, not due: after downtime the run is caught up once,
        # and the next one is computed from the present.
        fired = msgspec.structs.replace(sched, last_fire_s=max(due_s, now_s))
        event = NewEvent(str(uuid.uuid4()), sched.function, payload, now_s) if rec is not None else None
        async with self._db:
            if self._schedules.get(sched.name) is not sched:
                return  # replaced or deleted meanwhile: the new version decides
            await self._run_sync(lambda: self.store.put_schedule(sched.name, msgspec.json.encode(fired), fire=event))
            self._schedules[sched.name] = fired
        if event is not None:
            self.queue.adopt(event)
            self.fired += 1
