"""Idle instances are frozen between calls, as Lambda freezes an execution
environment once its call has returned.

Without it a thread the function left running keeps its CPU share until
the instance is reclaimed (4 CPU-seconds were measured between two calls
billed 8 ms). A freeze and a thaw each cost a cgroup write and a wake-up,
so an instance called back to back is never frozen: only one that has been
idle for `after_s`. What a function runs in that window is capped by it
(at most after_s, and at most the function's CPU share, per gap).

The pool calls released() for each instance it puts back (a deque append,
the warm path's whole cost) and thaws a frozen instance before handing it
a call. run() is the timer: it sleeps until the oldest release is due,
freezes what is still idle, and wakes at most once per `after_s` however
many calls go by. Deadlines never see frozen time: a call's deadline is set
after the thaw.
"""

from __future__ import annotations

import collections
import logging
import math
from typing import Protocol

import trio

log = logging.getLogger("lambdalet.pool")

# How many times a freeze that is refused for now (the zygote still shares
# a new sandbox's cgroup for a few ms) is tried again, after_s apart.
RETRIES = 20


class _Sandbox(Protocol):
    def freeze(self) -> bool: ...


class Freezable(Protocol):
    @property
    def sandbox(self) -> _Sandbox: ...  # read only: an instance's sandbox may be any that freezes

    last_used: float  # trio clock time of the release
    frozen: bool

    @property
    def busy(self) -> bool: ...

    @property
    def dead(self) -> bool: ...


class IdleFreezer:
    def __init__(self, after_s: float) -> None:
        if after_s <= 0:
            raise ValueError("after_s must be positive")
        self.after_s = after_s
        # (due, the release it is due for, instance, tries left), in due order.
        self._due: collections.deque[tuple[float, float, Freezable, int]] = collections.deque()
        self._wanted = trio.Event()
        self.frozen = 0  # freezes done, for statistics()

    def released(self, inst: Freezable) -> None:
        """inst went idle at inst.last_used: freeze it after_s later unless
        it has been taken again by then."""
        self._due.append((inst.last_used + self.after_s, inst.last_used, inst, RETRIES))
        if not self._wanted.is_set():
            self._wanted.set()

    def pending(self) -> int:
        return len(self._due)

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        due = self._due
        # One wake per after_s at most: under load an instance is released
        # every few hundred microseconds, and waking for each would cost
        # more than the freezing saves. (One sleep to the later of the two
        # times: a second sleep per wake cost as much as the wake.)
        next_wake = -math.inf
        while True:
            if not due:
                self._wanted = trio.Event()
                await self._wanted.wait()
                continue
            await trio.sleep_until(max(due[0][0], next_wake))
            now = trio.current_time()
            while due and due[0][0] <= now:
                _, stamp, inst, tries = due.popleft()
                # Taken since (busy, or released again later: a newer entry
                # stands for it), reclaimed, or already frozen.
                if inst.busy or inst.dead or inst.frozen or inst.last_used != stamp:
                    continue
                if inst.sandbox.freeze():
                    inst.frozen = True
                    self.frozen += 1
                    await trio.lowlevel.checkpoint()  # a burst gone idle: let calls in between
                elif tries > 0:
                    due.append((now + self.after_s, stamp, inst, tries - 1))
            next_wake = trio.current_time() + self.after_s
