"""Calls that outlive their function's Timeout are killed.

One task checks the busy instances every DEADLINE_TICK_S while any exist,
and sleeps otherwise; a cancel scope per call cost more than the rest of
the call's bookkeeping. Timeouts therefore land up to one tick after the
deadline, and REPORT says the configured Timeout. Deadlines are on trio's
clock, so tests drive them with a MockClock.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio

if TYPE_CHECKING:
    from .instance import Instance

DEADLINE_TICK_S = 0.02


class Deadlines:
    def __init__(self, tick_s: float = DEADLINE_TICK_S) -> None:
        self.tick_s = tick_s
        self.busy: set[Instance] = set()  # every instance running a call
        self._changed = trio.Event()

    def started(self, inst: Instance, timeout_s: float) -> None:
        """inst runs a call from now that must end within timeout_s."""
        self.busy.add(inst)
        inst.timed_out = False
        inst.deadline = trio.current_time() + timeout_s
        if not self._changed.is_set():
            self._changed.set()

    def ended(self, inst: Instance) -> None:
        self.busy.discard(inst)

    async def run(self) -> None:
        while True:
            if not self.busy:
                self._changed = trio.Event()
                await self._changed.wait()
            await trio.sleep(self.tick_s)
            now = trio.current_time()
            for inst in list(self.busy):
                if inst.deadline <= now and not inst.timed_out:
                    # The call sees EOF and is answered as timed out.
                    inst.timed_out = True
                    inst.sandbox.kill()
