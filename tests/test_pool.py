"""The pool on its own, with plain-process workers and a mock clock."""

from __future__ import annotations

import json
import os
import signal
import sys
import time

import msgspec
import pytest
import trio
import trio.testing

from lambdalet.gateway.errors import LambdaError
from lambdalet.gateway.execution.pool import FunctionSpec, Pool
from lambdalet.gateway.functions.model import FunctionRecord
from lambdalet.sandbox import proc_stat
from lambdalet.sandbox.process import ProcessBackend
from lambdalet.sandbox.runtime_root import RuntimeRoot

APP = """
import os, time
calls = 0
def handler(event, context):
    global calls
    calls += 1
    time.sleep(event.get('sleep', 0))
    if event.get('exit'):
        os._exit(1)
    return {'pid': os.getpid(), 'calls': calls}
"""


@pytest.fixture
def spec(tmp_path):
    code = tmp_path / "code"
    code.mkdir()
    (code / "app.py").write_text(APP)
    rec = FunctionRecord(
        name="fn",
        runtime=f"python{sys.version_info[0]}.{sys.version_info[1]}",
        role="r",
        handler="app.handler",
        code_sha256_hex="0" * 64,
        code_sha256_b64="",
        code_size=1,
        revision_id="rev-1",
        last_modified="",
        created_ns=0,
        timeout=30,
    )
    return FunctionSpec(record=rec, code_dir=str(code), arn="arn:fn", env={}, log_group="/aws/lambda/fn")


@pytest.fixture
def backend(tmp_path):
    return ProcessBackend(RuntimeRoot.create(tmp_path / "runtime"))


async def _until(predicate, limit_s: float = 10.0) -> None:
    """Waits for a condition that a worker thread will make true."""
    deadline = time.monotonic() + limit_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        await trio.lowlevel.checkpoint()
        time.sleep(0.001)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def call(pool: Pool, spec: FunctionSpec, event: dict | None = None) -> dict:
    outcome = await pool.invoke(spec, json.dumps(event or {}).encode())
    return json.loads(outcome.payload)


def test_idle_instances_are_reclaimed_then_the_function_scales_to_zero(spec, backend):
    clock = trio.testing.MockClock()

    async def main():
        pool = Pool(backend, concurrency_limit=10, idle_timeout_s=60)
        async with trio.open_nursery() as nursery:
            await nursery.start(pool.run)
            first = await call(pool, spec)
            second = await call(pool, spec)
            # One warm instance, reused: same process, globals kept.
            assert first["pid"] == second["pid"] and second["calls"] == 2
            assert pool.statistics()["idle"] == 1
            clock.jump(30)
            await trio.testing.wait_all_tasks_blocked()
            assert pool.statistics()["idle"] == 1  # not idle long enough yet
            clock.jump(31)
            await _until(lambda: pool.statistics()["idle"] == 0)
            await _until(lambda: not _alive(first["pid"]))
            third = await call(pool, spec)
            assert third["pid"] != first["pid"] and third["calls"] == 1  # a fresh instance
            nursery.cancel_scope.cancel()

    trio.run(main, clock=clock)


@pytest.mark.trio
async def test_one_call_at_a_time_per_instance(spec, backend):
    pool = Pool(backend, concurrency_limit=10)
    async with trio.open_nursery() as nursery:
        await nursery.start(pool.run)
        results: list[dict] = []

        async def slow():
            results.append(await call(pool, spec, {"sleep": 0.3}))

        async with trio.open_nursery() as calls:
            calls.start_soon(slow)
            calls.start_soon(slow)
        assert len({r["pid"] for r in results}) == 2
        assert pool.statistics()["idle"] == 2
        nursery.cancel_scope.cancel()


@pytest.mark.trio
async def test_a_crashed_instance_is_replaced(spec, backend):
    pool = Pool(backend, concurrency_limit=10)
    async with trio.open_nursery() as nursery:
        await nursery.start(pool.run)
        before = await call(pool, spec)
        outcome = await pool.invoke(spec, b'{"exit": true}')
        assert outcome.error_type == "Runtime.ExitError" and outcome.function_error == "Unhandled"
        assert pool.statistics()["idle"] == 0
        after = await call(pool, spec)
        assert after["pid"] != before["pid"] and after["calls"] == 1
        nursery.cancel_scope.cancel()


def _gone(pid: int) -> bool:
    """Exited: no such process, or a zombie waiting for its parent's wait."""
    stat = proc_stat.read(pid)
    return stat is None or stat.state == "Z"


@pytest.fixture
def exit_after_spec(spec, tmp_path):
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "sandbox"))
    from hostile_rows import EXIT_AFTER_RETURNING

    code = tmp_path / "exit-after"
    code.mkdir()
    (code / "app.py").write_text(EXIT_AFTER_RETURNING + "\ndef pid(event, context):\n    return os.getpid()\n")
    return msgspec.structs.replace(spec, code_dir=str(code))


@pytest.mark.trio
async def test_a_worker_that_exits_after_returning_is_replaced_before_the_next_call(exit_after_spec, backend):
    spec = exit_after_spec
    pool = Pool(backend, concurrency_limit=10)
    async with trio.open_nursery() as nursery:
        await nursery.start(pool.run)
        first = await pool.invoke(spec, b'"exit-after"')
        assert first.function_error is None and json.loads(first.payload)["calls"] == 1
        (inst,) = pool._idle[spec.record.revision_id]
        await _until(lambda: _gone(inst.sandbox.pid))
        # The dead instance is noticed before the call is given to it: a
        # fresh one answers, as on AWS, never an error of the platform's.
        second = await pool.invoke(spec, b'"again"')
        assert second.function_error is None, second.payload
        assert json.loads(second.payload)["calls"] == 1 and second.cold
        assert inst.dead
        nursery.cancel_scope.cancel()


@pytest.mark.trio
async def test_an_instance_whose_worker_exited_is_reaped_without_waiting_for_a_call(exit_after_spec, backend):
    spec = exit_after_spec
    pool = Pool(backend, concurrency_limit=10, idle_timeout_s=3600)
    async with trio.open_nursery() as nursery:
        await nursery.start(pool.run)
        await pool.invoke(spec, b'"exit-after"')
        (inst,) = pool._idle[spec.record.revision_id]
        await _until(lambda: _gone(inst.sandbox.pid))
        await pool.reap_idle()  # long before its idle timeout
        assert pool.statistics()["idle"] == 0 and inst.dead
        assert not os.path.exists(f"/proc/{inst.sandbox.pid}")  # reaped, no zombie left
        nursery.cancel_scope.cancel()


@pytest.mark.trio
async def test_a_call_that_could_not_be_delivered_goes_to_a_fresh_instance(exit_after_spec, backend, monkeypatch):
    """The worker dies between the pool's check and the call's send (a race
    that cannot be produced on demand: the check is made to miss it)."""
    from lambdalet.gateway.execution.instance import Instance

    spec = exit_after_spec
    pool = Pool(backend, concurrency_limit=10)
    async with trio.open_nursery() as nursery:
        await nursery.start(pool.run)
        await pool.invoke(spec, b'"exit-after"')
        (inst,) = pool._idle[spec.record.revision_id]
        await _until(lambda: _gone(inst.sandbox.pid))
        monkeypatch.setattr(Instance, "exited", lambda self: False)
        outcome = await pool.invoke(spec, b'"again"')
        assert outcome.function_error is None, outcome.payload
        assert json.loads(outcome.payload)["calls"] == 1 and outcome.cold
        nursery.cancel_scope.cancel()


@pytest.mark.trio
async def test_a_worker_that_dies_during_a_call_is_a_runtime_exit_error(exit_after_spec, backend):
    spec = exit_after_spec
    pool = Pool(backend, concurrency_limit=10)
    async with trio.open_nursery() as nursery:
        await nursery.start(pool.run)
        await pool.invoke(spec, b'"warm"')
        outcome = await pool.invoke(spec, b'"exit-now"', request_id="req-1")
        assert outcome.function_error == "Unhandled" and outcome.error_type == "Runtime.ExitError"
        assert json.loads(outcome.payload) == {
            "errorType": "Runtime.ExitError",
            "errorMessage": "RequestId: req-1 Error: Runtime exited with error: exit status 1",
        }
        assert b"RequestId: req-1 Error: Runtime exited with error: exit status 1\nRuntime.ExitError" in outcome.log
        nursery.cancel_scope.cancel()


@pytest.mark.trio
async def test_throttling_is_immediate_never_a_wait(spec, backend):
    pool = Pool(backend, concurrency_limit=1)
    async with trio.open_nursery() as nursery:
        await nursery.start(pool.run)
        nursery.start_soon(call, pool, spec, {"sleep": 0.5})
        await _until(lambda: pool.concurrent() == 1)
        with pytest.raises(LambdaError) as exc:
            await pool.invoke(spec, b"{}")
        assert exc.value.error_type == "TooManyRequestsException"
        assert exc.value.extra["Reason"] == "ConcurrentInvocationLimitExceeded"
        nursery.cancel_scope.cancel()


@pytest.mark.trio
async def test_calls_and_instances_hold_their_code_until_they_end(spec, backend):
    pool = Pool(backend, concurrency_limit=10)
    holds = pool.code_holds
    async with trio.open_nursery() as nursery:
        await nursery.start(pool.run)
        nursery.start_soon(call, pool, spec, {"sleep": 0.3})
        await _until(lambda: pool.statistics()["busy"] == 1)
        assert holds.count(spec.code_dir) == 2  # the call and its instance
        await _until(lambda: pool.statistics()["idle"] == 1)
        assert holds.count(spec.code_dir) == 1  # the idle instance still has it
        pool.drop("fn", set())
        await _until(lambda: holds.count(spec.code_dir) == 0)
        nursery.cancel_scope.cancel()


@pytest.mark.trio
async def test_an_instance_started_for_a_replaced_revision_is_not_kept(tmp_path, spec, backend):
    # Its init is slow enough that the function changes while it starts.
    slow_code = tmp_path / "slow"
    slow_code.mkdir()
    (slow_code / "app.py").write_text("import time\ntime.sleep(0.5)\n" + APP)
    slow = FunctionSpec(record=spec.record, code_dir=str(slow_code), arn=spec.arn, env={}, log_group=spec.log_group)
    pool = Pool(backend, concurrency_limit=10)
    async with trio.open_nursery() as nursery:
        await nursery.start(pool.run)
        results: list[dict] = []

        async def first():
            results.append(await call(pool, slow))

        nursery.start_soon(first)
        await _until(lambda: pool.statistics()["starting"] == 1)
        pool.drop("fn", set())  # rev-1 is no longer live
        await _until(lambda: bool(results))
        # The call it started for is answered, then the instance goes.
        assert results[0]["calls"] == 1 and pool.statistics()["idle"] == 0
        await _until(lambda: pool.code_holds.count(str(slow_code)) == 0)
        nursery.cancel_scope.cancel()


# --- admission that counts the tasks cap, and idle freezing, with fake backends ---


class CountingBackend(ProcessBackend):
    """Plain-process workers, each counted as holding as many tasks as
    the `tasks` map says for its function, against a cap: the pool's
    admission sees what a cgroup's pids.current would say."""

    def __init__(self, root: RuntimeRoot, cap: int, tasks: dict[str, int]) -> None:
        super().__init__(root)
        self.cap = cap
        self.tasks = tasks
        self.live: list[CountedSandbox] = []
        self.refuse_spawn = False

    def spawn(self, spec):
        if self.refuse_spawn:
            raise BlockingIOError(11, "fork worker: Resource temporarily unavailable")
        sandbox = CountedSandbox(super().spawn(spec), self.tasks.get(spec.function_name, 2))
        self.live.append(sandbox)
        return sandbox

    def task_usage(self):
        return sum(s.tasks for s in self.live if not s.destroyed), self.cap


class CountedSandbox:
    def __init__(self, inner, tasks: int) -> None:
        self.inner = inner
        self.pid, self.control, self.task_root = inner.pid, inner.control, inner.task_root
        self.tasks = tasks
        self.destroyed = False

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def task_count(self) -> int:
        return self.tasks

    def destroy(self):
        self.destroyed = True
        return self.inner.destroy()


def _spec_named(spec: FunctionSpec, name: str) -> FunctionSpec:
    import msgspec

    rec = msgspec.structs.replace(spec.record, name=name, revision_id=f"rev-{name}")
    return msgspec.structs.replace(spec, record=rec)


@pytest.mark.trio
async def test_past_the_tasks_cap_the_idle_instance_holding_most_makes_room(spec, tmp_path):
    backend = CountingBackend(RuntimeRoot.create(tmp_path / "rt"), cap=115, tasks={"hog": 100, "small": 10})
    pool = Pool(backend, concurrency_limit=10)
    hog, small, other = (_spec_named(spec, n) for n in ("hog", "small", "other"))
    async with trio.open_nursery() as nursery:
        await nursery.start(pool.run)
        small_pid = (await call(pool, small))["pid"]
        hog_pid = (await call(pool, hog))["pid"]  # used last: the LRU order would keep it
        # 110 tasks in use: a new instance (8 to start) does not fit under 115.
        assert (await call(pool, other))["calls"] == 1
        await _until(lambda: not _alive(hog_pid))
        assert _alive(small_pid) and (await call(pool, small))["pid"] == small_pid
        nursery.cancel_scope.cancel()


@pytest.mark.trio
async def test_past_the_tasks_cap_with_nothing_idle_a_new_instance_is_throttled(spec, tmp_path):
    backend = CountingBackend(RuntimeRoot.create(tmp_path / "rt"), cap=115, tasks={"hog": 110})
    pool = Pool(backend, concurrency_limit=10)
    hog, other = _spec_named(spec, "hog"), _spec_named(spec, "other")
    async with trio.open_nursery() as nursery:
        await nursery.start(pool.run)
        nursery.start_soon(call, pool, hog, {"sleep": 1.0})
        await _until(lambda: pool.concurrent("hog") == 1 and pool.statistics()["busy"] == 1)
        with pytest.raises(LambdaError) as exc:
            await pool.invoke(other, b"{}")
        assert exc.value.error_type == "TooManyRequestsException" and exc.value.status == 429
        assert exc.value.extra["Reason"] == "ConcurrentInvocationLimitExceeded"
        assert "110 of the 115 tasks" in exc.value.message
        # A spawn the kernel refuses (the cap reached since the pool looked)
        # is the same throttle, not a ServiceException.
        backend.cap, backend.refuse_spawn = 10_000, True
        with pytest.raises(LambdaError) as exc:
            await pool.invoke(other, b"{}")
        assert exc.value.error_type == "TooManyRequestsException"
        nursery.cancel_scope.cancel()


class FreezingBackend(ProcessBackend):
    """Plain-process workers that 'freeze' by SIGSTOP of their process
    group, so a call given to a worker the pool forgot to thaw would hang."""

    def __init__(self, root: RuntimeRoot) -> None:
        super().__init__(root)
        self.events: list[tuple[str, float]] = []

    def protections(self):
        return {**super().protections(), "idle_freeze": True}

    def spawn(self, spec):
        return StoppableSandbox(super().spawn(spec), self.events)


class StoppableSandbox(CountedSandbox):
    def __init__(self, inner, events) -> None:
        super().__init__(inner, 2)
        self.events = events
        self.frozen = False

    def freeze(self) -> bool:
        os.killpg(self.pid, signal.SIGSTOP)
        self.frozen = True
        self.events.append(("freeze", time.monotonic()))
        return True

    def thaw(self) -> None:
        os.killpg(self.pid, signal.SIGCONT)
        self.frozen = False
        self.events.append(("thaw", time.monotonic()))

    def limit_cpu(self, memory_mb: int) -> None:
        self.events.append(("limit_cpu", time.monotonic()))

    def kill(self) -> None:
        self.inner.kill()
        if self.frozen:
            os.killpg(self.pid, signal.SIGCONT)


def _state(pid: int) -> str:
    stat = proc_stat.read(pid)
    assert stat is not None, f"process {pid} is gone"
    return stat.state


@pytest.mark.trio
async def test_an_idle_instance_is_frozen_and_thawed_for_its_next_call(spec, tmp_path):
    backend = FreezingBackend(RuntimeRoot.create(tmp_path / "rt"))
    pool = Pool(backend, concurrency_limit=10, freeze_after_s=0.01)
    async with trio.open_nursery() as nursery:
        await nursery.start(pool.run)
        first = await call(pool, spec)
        await _until(lambda: pool.statistics()["frozen"] == 1)
        await _until(lambda: _state(first["pid"]) == "T")  # a stop signal lands a moment later
        # Frozen longer than the function's Timeout: frozen time is not the
        # call's, which is given its whole Timeout once thawed.
        timeout = msgspec.structs.replace(spec, record=msgspec.structs.replace(spec.record, timeout=1))
        await trio.sleep(1.2)
        second = await call(pool, timeout)
        assert second == {"pid": first["pid"], "calls": 2}  # the same warm instance, thawed
        assert [e for e, _ in backend.events].count("thaw") == 1
        await _until(lambda: pool.statistics()["frozen"] == 1)  # and frozen again
        nursery.cancel_scope.cancel()
    # Reclaimed at shutdown while frozen: nothing survives.
    await _until(lambda: not _alive(first["pid"]))


@pytest.mark.trio
async def test_a_backend_that_cannot_freeze_gets_no_freezer(spec, backend):
    assert Pool(backend, concurrency_limit=1).freezer is None
    assert Pool(FreezingBackend(backend._root), concurrency_limit=1, freeze_after_s=None).freezer is None


@pytest.mark.trio
async def test_the_start_up_cpu_boost_ends_with_init_or_after_a_while(spec, tmp_path, monkeypatch):
    from lambdalet.gateway.execution import lifecycle as pool_mod

    monkeypatch.setattr(pool_mod, "CPU_BOOST_S", 0.05)
    slow = tmp_path / "slow"
    slow.mkdir()
    (slow / "app.py").write_text("import time\ntime.sleep(0.6)\n" + APP)
    slow_spec = msgspec.structs.replace(spec, code_dir=str(slow))
    backend = FreezingBackend(RuntimeRoot.create(tmp_path / "rt"))
    pool = Pool(backend, concurrency_limit=10, freeze_after_s=None)
    async with trio.open_nursery() as nursery:
        await nursery.start(pool.run)
        started = time.monotonic()
        await call(pool, slow_spec)
        limits = [t - started for e, t in backend.events if e == "limit_cpu"]
        # Once, while the handler's import still ran (it takes 0.6 s).
        assert len(limits) == 1 and limits[0] < 0.4
        backend.events.clear()
        monkeypatch.setattr(pool_mod, "CPU_BOOST_S", 30.0)
        await call(pool, _spec_named(spec, "quick"))
        assert [e for e, _ in backend.events] == ["limit_cpu"]  # a quick init: once, at its end
        nursery.cancel_scope.cancel()
