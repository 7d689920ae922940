"""The idle freezer's timer on its own: fake instances and a mock clock."""

from __future__ import annotations

import trio
import trio.testing

from lambdalet.gateway.execution.idle_freezer import RETRIES, IdleFreezer

AFTER = 0.005


class FakeSandbox:
    def __init__(self, can_freeze: bool = True) -> None:
        self.can_freeze = can_freeze
        self.attempts = 0

    def freeze(self) -> bool:
        self.attempts += 1
        return self.can_freeze


class FakeInstance:
    def __init__(self, can_freeze: bool = True) -> None:
        self.sandbox = FakeSandbox(can_freeze)
        self.last_used = 0.0
        self.busy = False
        self.dead = False
        self.frozen = False


def release(freezer: IdleFreezer, inst: FakeInstance) -> None:
    """What the pool does when a call ends."""
    inst.busy = False
    inst.last_used = trio.current_time()
    freezer.released(inst)


def take(inst: FakeInstance) -> None:
    """What the pool does when a call starts (a thaw, if frozen)."""
    inst.busy = True
    inst.frozen = False


def run(test) -> None:
    clock = trio.testing.MockClock()

    async def main():
        freezer = IdleFreezer(AFTER)
        async with trio.open_nursery() as nursery:
            await nursery.start(freezer.run)

            async def advance(seconds: float) -> None:
                clock.jump(seconds)
                await trio.testing.wait_all_tasks_blocked()

            await test(freezer, advance)
            nursery.cancel_scope.cancel()

    trio.run(main, clock=clock)


def test_an_instance_is_frozen_once_idle_for_the_delay_not_before():
    async def test(freezer, advance):
        inst = FakeInstance()
        release(freezer, inst)
        await advance(AFTER * 0.8)
        assert not inst.frozen and inst.sandbox.attempts == 0
        await advance(AFTER * 0.4)
        assert inst.frozen and freezer.frozen == 1
        assert freezer.pending() == 0

    run(test)


def test_an_instance_called_back_to_back_is_never_frozen():
    async def test(freezer, advance):
        inst = FakeInstance()
        for _ in range(50):  # a call every millisecond
            release(freezer, inst)
            await advance(AFTER / 5)
            take(inst)
            await advance(0)
        assert inst.sandbox.attempts == 0
        # Idle at last: frozen within one more delay of the last release.
        release(freezer, inst)
        await advance(AFTER)
        await advance(AFTER)
        assert inst.frozen and inst.sandbox.attempts == 1

    run(test)


def test_a_busy_or_reclaimed_instance_is_left_alone():
    async def test(freezer, advance):
        busy, dead = FakeInstance(), FakeInstance()
        release(freezer, busy)
        release(freezer, dead)
        take(busy)
        dead.dead = True
        await advance(AFTER * 3)
        assert busy.sandbox.attempts == dead.sandbox.attempts == 0

    run(test)


def test_a_freeze_refused_for_now_is_tried_again_then_given_up():
    async def test(freezer, advance):
        inst = FakeInstance(can_freeze=False)
        release(freezer, inst)
        await advance(AFTER * 2)
        assert inst.sandbox.attempts == 1 and not inst.frozen
        inst.sandbox.can_freeze = True  # the zygote has moved out
        await advance(AFTER * 2)
        assert inst.frozen and inst.sandbox.attempts == 2

        stubborn = FakeInstance(can_freeze=False)
        release(freezer, stubborn)
        for _ in range(3 * RETRIES):
            await advance(AFTER)
        assert stubborn.sandbox.attempts == RETRIES + 1 and freezer.pending() == 0

    run(test)


def test_instances_released_together_are_frozen_together():
    async def test(freezer, advance):
        group = [FakeInstance() for _ in range(100)]
        for inst in group:
            release(freezer, inst)
        await advance(AFTER * 2)
        assert all(inst.frozen for inst in group) and freezer.frozen == 100

    run(test)
