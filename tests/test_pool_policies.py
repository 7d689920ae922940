"""The pool's policies on their own: admission and eviction, idle reclaim,
deadlines, provisioned concurrency, instance states and the clock seam.

The workers are fakes that speak the real protocol (runtime/protocol.py's
frames over a socketpair, answered by a trio task), and time is trio's
MockClock: what is tested is the pool's policy, not a sandbox. The same
policies against real workers are in test_pool.py.
"""

from __future__ import annotations

import json
import socket
import sys

import msgspec
import pytest
import trio
import trio.testing

from lambdalet.gateway.errors import LambdaError
from lambdalet.gateway.execution import instance as instance_mod
from lambdalet.gateway.execution.instance import BUSY, DEAD, IDLE, STARTING, TRANSITIONS, IllegalTransition, Instance
from lambdalet.gateway.execution.outcomes import FunctionSpec
from lambdalet.gateway.execution.pool import Pool
from lambdalet.gateway.execution.provisioned import Provisioner
from lambdalet.gateway.functions.model import FunctionRecord
from lambdalet.runtime.protocol import FrameReader, Init, InitOk, Invoke, Result, encode


class FakeSandbox:
    """A Sandbox whose worker is a trio task answering the protocol's frames:
    Init with InitOk; an Invoke's {"sleep": s} after s seconds of trio's
    clock, {"hang": true} never. kill() closes the worker's end, so the
    gateway reads EOF, as from a killed worker."""

    task_root = "/var/task"
    pidfd = -1

    def __init__(self, backend: FakeBackend, tasks: int) -> None:
        self.control, self._worker_end = socket.socketpair()
        self.worker = trio.socket.from_stdlib_socket(self._worker_end)
        self.pid = 0
        self.tasks = tasks
        self.killed = False
        self.killed_at: float | None = None  # trio's clock
        self.destroyed = False
        self.backend = backend

    async def serve(self) -> None:
        reader = FrameReader("to_worker")
        try:
            while True:
                data = await self.worker.recv(65536)
                if not data:
                    return
                for msg in reader.feed(data):
                    if isinstance(msg, Init):
                        await self.worker.send(encode(InitOk()))
                    elif isinstance(msg, Invoke):
                        event = json.loads(msg.payload)
                        if event.get("hang"):
                            continue
                        await trio.sleep(event.get("sleep", 0))
                        await self.worker.send(encode(Result(msg.request_id, msg.payload)))
        except OSError:
            return
        finally:
            self.worker.close()

    def kill(self) -> None:
        # shutdown(2), not close: it may come from the thread a destroy
        # runs on, and it wakes the worker task with EOF.
        if not self.killed:
            self.killed = True
            try:
                self.killed_at = trio.current_time()
            except RuntimeError:
                pass  # on a destroy's thread, outside trio
            try:
                self._worker_end.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # the worker task has closed it already

    def oom_killed(self) -> bool:
        return False

    def reset_peak_memory(self) -> None:
        pass

    def peak_memory_bytes(self) -> int | None:
        return 64 << 20

    def task_count(self) -> int:
        return self.tasks

    def freeze(self) -> bool:
        return False

    def thaw(self) -> None:
        pass

    def fit(self, memory_mb: int) -> None:
        pass

    def limit_cpu(self, memory_mb: int) -> None:
        pass

    def destroy(self) -> int | None:
        self.kill()
        if not self.destroyed:
            self.destroyed = True
            self.control.close()
            return 9  # as os.waitpid reports SIGKILL
        return None


class FakeBackend:
    name = "fake"
    zygote_enabled = False

    def __init__(self, nursery: trio.Nursery, tasks_max: int | None = None) -> None:
        self.nursery = nursery
        self.tasks_max = tasks_max
        self.sandboxes: list[FakeSandbox] = []

    def spawn(self, spec) -> FakeSandbox:
        sandbox = FakeSandbox(self, tasks=4)
        self.sandboxes.append(sandbox)
        self.nursery.start_soon(sandbox.serve)
        return sandbox

    def task_usage(self):
        if self.tasks_max is None:
            return None
        return sum(s.tasks for s in self.sandboxes if not s.destroyed), self.tasks_max

    def protections(self) -> dict[str, bool]:
        return {}

    def forget_code(self, code_dir: str) -> None:
        pass

    def zygote_running(self, runtime: str = "") -> bool:
        return False

    def close(self) -> None:
        pass


def spec_for(name: str, *, memory: int = 128, timeout: int = 30) -> FunctionSpec:
    rec = FunctionRecord(
        name=name,
        runtime=f"python{sys.version_info[0]}.{sys.version_info[1]}",
        role="r",
        handler="app.handler",
        code_sha256_hex="0" * 64,
        code_sha256_b64="",
        code_size=1,
        revision_id=f"rev-{name}",
        last_modified="",
        created_ns=0,
        timeout=timeout,
        memory_size=memory,
    )
    return FunctionSpec(record=rec, code_dir=f"/code/{name}", arn=f"arn:{name}", env={}, log_group=f"/aws/lambda/{name}")


def run(test, **pool_options) -> None:
    """test(pool, backend, clock) inside trio.run on a MockClock that jumps
    whenever every task waits."""
    clock = trio.testing.MockClock(autojump_threshold=0)

    async def main():
        async with trio.open_nursery() as workers:
            backend = FakeBackend(workers, pool_options.pop("tasks_max", None))
            pool = Pool(backend, freeze_after_s=None, **{"concurrency_limit": 10, **pool_options})
            async with trio.open_nursery() as nursery:
                await nursery.start(pool.run)
                await test(pool, backend, clock)
                nursery.cancel_scope.cancel()
            workers.cancel_scope.cancel()

    trio.run(main, clock=clock)


# Idle instances are never reclaimed in the tests that are not about it:
# while a destroy runs on a thread, the mock clock may jump ahead.
NEVER = 10**9


async def until(predicate) -> None:
    """Waits for what a worker thread does (a sandbox's destroy runs on
    one, outside trio's clock)."""
    for _ in range(100_000):
        if predicate():
            return
        await trio.lowlevel.checkpoint()
        await trio.to_thread.run_sync(lambda: None)
    raise AssertionError("condition not reached")


async def call(pool: Pool, spec: FunctionSpec, event: dict | None = None):
    return await pool.invoke(spec, json.dumps(event or {}).encode())


# -- instance states ---------------------------------------------------------


def test_an_instance_moves_only_along_its_states():
    assert {STARTING: {IDLE, BUSY, DEAD}, IDLE: {BUSY, DEAD}, BUSY: {IDLE, DEAD}, DEAD: set()} == TRANSITIONS

    class Quiet:
        control, _other = socket.socketpair()
        pidfd = -1

    inst = Instance("i", Quiet(), "rev")  # type: ignore[arg-type]
    try:
        assert inst.state is STARTING and not inst.busy and not inst.dead
        with pytest.raises(IllegalTransition):
            inst.to(STARTING)
        inst.to(BUSY)
        assert inst.busy
        inst.to(IDLE)
        inst.to(DEAD)
        assert inst.dead
        for state in instance_mod.State:
            with pytest.raises(IllegalTransition):
                inst.to(state)  # nothing follows DEAD
    finally:
        Quiet.control.close()
        Quiet._other.close()


def test_a_call_runs_busy_then_idle_and_a_reclaimed_instance_is_dead():
    async def test(pool, backend, clock):
        spec = spec_for("fn")
        states = []

        async def watch():
            await trio.testing.wait_all_tasks_blocked()
            (inst,) = pool._busy
            states.append(inst.state)

        async with trio.open_nursery() as n:
            n.start_soon(watch)
            await call(pool, spec, {"sleep": 1})
        (inst,) = pool._idle["rev-fn"]
        assert states == [BUSY] and inst.state is IDLE
        pool.drop("fn")
        await until(lambda: backend.sandboxes[0].destroyed)
        assert inst.state is DEAD

    run(test, idle_timeout_s=NEVER)


# -- admission and eviction --------------------------------------------------


def test_past_the_memory_budget_the_least_recently_used_idle_instance_makes_room():
    async def test(pool, backend, clock):
        a, b, c = spec_for("a"), spec_for("b"), spec_for("c")
        await call(pool, a)
        await trio.sleep(10)
        await call(pool, b)  # used last
        await trio.sleep(10)
        await call(pool, c)  # 3 x 128 MB in a 256 MB budget: one idle instance goes
        await until(lambda: backend.sandboxes[0].destroyed)
        assert sorted(pool._idle) == ["rev-b", "rev-c"]
        assert [s.destroyed for s in backend.sandboxes] == [True, False, False]
        assert pool.budget.in_use_mb == 256

    run(test, memory_budget_mb=256, idle_timeout_s=NEVER)


def test_past_the_memory_budget_with_nothing_idle_a_new_instance_is_throttled_at_once():
    async def test(pool, backend, clock):
        async with trio.open_nursery() as n:
            n.start_soon(call, pool, spec_for("a"), {"sleep": 5})
            n.start_soon(call, pool, spec_for("b"), {"sleep": 5})
            await trio.testing.wait_all_tasks_blocked()
            before = trio.current_time()
            with pytest.raises(LambdaError) as exc:
                await call(pool, spec_for("c"))
            assert trio.current_time() == before  # refused, never waited
            assert exc.value.error_type == "TooManyRequestsException"
            assert exc.value.extra["Reason"] == "ConcurrentInvocationLimitExceeded"
            assert [s.destroyed for s in backend.sandboxes] == [False, False]  # nothing evicted for nothing
        assert pool.budget.in_use_mb == 256

    run(test, memory_budget_mb=256, idle_timeout_s=NEVER)


def test_the_account_limit_and_reserved_concurrency_throttle_without_waiting():
    async def test(pool, backend, clock):
        pool.set_reserved_total(1)
        async with trio.open_nursery() as n:
            n.start_soon(call, pool, spec_for("reserved"), {"sleep": 5})
            n.start_soon(call, pool, spec_for("shared"), {"sleep": 5})
            await trio.testing.wait_all_tasks_blocked()
            assert pool.concurrent() == 2 and pool.concurrent("reserved") == 1
            for name, reason in (
                ("reserved", "ReservedFunctionConcurrentInvocationLimitExceeded"),
                ("other", "ConcurrentInvocationLimitExceeded"),
            ):
                with pytest.raises(LambdaError) as exc:
                    await call(pool, spec_for(name))
                assert exc.value.extra["Reason"] == reason
        assert pool.concurrent() == 0

    run(test, concurrency_limit=2, reserved_for=lambda name: 1 if name == "reserved" else None)


# -- idle reclaim ------------------------------------------------------------


def test_idle_instances_go_after_the_idle_timeout_and_provisioned_ones_stay():
    async def test(pool, backend, clock):
        warm = spec_for("warm")
        kept = spec_for("kept")
        pool.set_provisioned([(kept, 1)])
        await trio.sleep(0.5)  # provisioning starts its instance
        await call(pool, warm)
        await trio.sleep(59)
        assert sorted(pool._idle) == ["rev-kept", "rev-warm"]
        await trio.sleep(2)
        assert sorted(pool._idle) == ["rev-kept"]
        await trio.sleep(3600)
        assert pool.provisioned_ready("rev-kept") == 1 and sorted(pool._idle) == ["rev-kept"]

    run(test, idle_timeout_s=60)


# -- deadlines ---------------------------------------------------------------


def test_a_call_past_its_timeout_is_killed_at_the_deadline_and_billed_the_timeout():
    async def test(pool, backend, clock):
        spec = spec_for("slow", timeout=3)
        start = trio.current_time()
        outcome = await call(pool, spec, {"hang": True})
        # Killed within one tick of the deadline, answered as Lambda does.
        killed_at = backend.sandboxes[0].killed_at
        assert killed_at is not None and 3 <= killed_at - start <= 3 + pool.deadlines.tick_s * 2
        assert outcome.kind == "timeout" and outcome.error_type == "Sandbox.Timedout"
        assert json.loads(outcome.payload)["errorMessage"].endswith("Task timed out after 3.00 seconds")
        assert outcome.duration_ns == 3_000_000_000
        assert pool.statistics()["idle"] == 0
        # The next call gets a fresh instance, in time.
        assert (await call(pool, spec, {"sleep": 2.5})).kind == "success"
        assert len(backend.sandboxes) == 2

    run(test)


# -- the clock seam ----------------------------------------------------------


def test_the_wall_clock_stamps_come_from_the_clock_given():
    async def test(pool, backend, clock):
        outcome = await call(pool, spec_for("fn"))
        assert outcome.started_ns == 1_700_000_000_000_000_000
        assert outcome.cold and outcome.init_ns == 250_000  # two monotonic readings, 250 us apart
        assert outcome.log.startswith(b"START RequestId: ")

    ticks = iter(range(0, 10**9, 250_000))
    run(test, wall_ns=lambda: 1_700_000_000_000_000_000, monotonic_ns=lambda: next(ticks))


# -- provisioned concurrency, with a fake pool -----------------------------


class FakeInstances:
    """provisioned.py's Instances: records what the Provisioner asks."""

    def __init__(self) -> None:
        self.instances: list[Instance] = []
        self.started = 0
        self.sockets: list[socket.socket] = []

    def instances_of(self, revision: str) -> list[Instance]:
        return [i for i in self.instances if i.revision == revision and not i.dead]

    async def start_instance(self, spec, initialization_type):
        assert initialization_type == "provisioned-concurrency"
        self.started += 1
        a, b = socket.socketpair()
        self.sockets += [a, b]

        class Box:
            control = a
            pidfd = -1

        return Instance(f"i{self.started}", Box(), spec.record.revision_id), InitOk()  # type: ignore[arg-type]

    async def destroy_instance(self, inst):
        inst.to(DEAD)

    def release_instance(self, inst) -> None:
        inst.to(IDLE)
        self.instances.append(inst)


def test_provisioning_counts_warm_instances_first_then_starts_the_rest_and_follows_a_lower_target():
    async def main():
        pool = FakeInstances()
        provisioner = Provisioner(pool)
        spec = spec_for("fn")
        warm = (await pool.start_instance(spec, "provisioned-concurrency"))[0]
        warm.used = True  # an on-demand instance that has served a call
        pool.release_instance(warm)
        pool.started = 0
        async with trio.open_nursery() as n:
            n.start_soon(provisioner.run)
            provisioner.set_targets([(spec, 3)], pool.instances)
            await trio.testing.wait_all_tasks_blocked()
            assert pool.started == 2 and provisioner.ready("rev-fn") == 3 and warm.provisioned
            assert all(i.used for i in pool.instances)  # no call of theirs shows an Init Duration
            provisioner.set_targets([(spec, 1)], pool.instances)
            await trio.testing.wait_all_tasks_blocked()
            assert provisioner.ready("rev-fn") == 1 and pool.started == 2
            provisioner.set_targets([], pool.instances)
            assert provisioner.ready("rev-fn") == 0
            # Instances that died are replaced within a recheck.
            provisioner.set_targets([(spec, 1)], pool.instances)
            await trio.testing.wait_all_tasks_blocked()
            assert pool.started == 2  # a warm instance took the flag
            for inst in pool.instances:
                inst.to(DEAD)
            await trio.sleep(1.5)
            assert provisioner.ready("rev-fn") == 1 and pool.started == 3
            n.cancel_scope.cancel()
        for s in pool.sockets:
            s.close()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def test_the_pools_records_are_msgspec_structs_that_round_trip():
    spec = spec_for("fn")
    again = msgspec.json.decode(msgspec.json.encode(spec), type=FunctionSpec)
    assert again == spec and again.record.version == "$LATEST"
