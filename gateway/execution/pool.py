"""Warm instances per function revision, and the one call each runs at a time.

A function that is never called has no instance. Instances are created on
demand, reused LIFO (the most recently used is the warmest), reclaimed after
an idle period, and destroyed the moment they crash, time out or run out of
memory. Concurrency is bounded account-wide; past the bound a caller gets
TooManyRequestsException at once rather than waiting.

The pool is the calls' side; its jobs live beside it: concurrency.py
(slots), memory_budget.py with admission.py (room on the host),
lifecycle.py (start and destroy), deadlines.py (Timeouts),
provisioned.py (provisioned concurrency), idle_freezer.py, and
outcomes.py (what a call's end is answered with). Timers run on trio's
clock and the wall and monotonic clocks are the constructor's wall_ns and
monotonic_ns, so tests drive every policy with a MockClock.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from collections.abc import Set as AbstractSet

import trio

from lambdalet.runtime.protocol import InitError, InitOk, Invoke, Result
from lambdalet.sandbox.spec import SandboxBackend

from ..functions.code_gc import CodeHolds
from ..functions.model import FunctionRecord
from ..ids import request_id as new_request_id
from . import outcomes
from .concurrency import ConcurrencySlots
from .deadlines import Deadlines
from .idle_freezer import IdleFreezer
from .instance import BUSY, IDLE, AnswerTooLarge, Instance, WorkerGone
from .lifecycle import Lifecycle, network_of
from .memory_budget import MemoryBudget, default_memory_budget_mb
from .outcomes import CallOutcome, FunctionSpec, LogHead, log_stream_name
from .provisioned import Provisioner
from .spares import SparePool
from .spawner import SpawnerThread

__all__ = ["CallOutcome", "FunctionSpec", "Pool", "default_memory_budget_mb", "log_stream_name", "network_of"]

log = logging.getLogger("lambdalet.pool")

# A call that never reached its worker (it had just died) goes to a fresh
# instance, transparently, as on AWS; this many times at most.
UNDELIVERED_RETRIES = 2
FREEZE_AFTER_S = 0.005  # idle this long and an instance is frozen (`serve --freeze-idle-ms`)


class Pool:
    billing_granularity_ms = 1  # REPORT's Billed Duration; `serve --billing-granularity-ms`

    def __init__(
        self,
        backend: SandboxBackend,
        *,
        concurrency_limit: int,
        idle_timeout_s: float = 300.0,
        init_timeout_s: float = 10.0,
        on_call: Callable[[FunctionSpec, CallOutcome], None] = lambda spec, outcome: None,
        reserved_for: Callable[[str], int | None] = lambda name: None,
        memory_budget_mb: int | None = None,
        spawner: SpawnerThread | None = None,
        spares: SparePool | None = None,
        code_holds: CodeHolds | None = None,
        freeze_after_s: float | None = FREEZE_AFTER_S,
        wall_ns: Callable[[], int] = time.time_ns,
        monotonic_ns: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        """wall_ns: when calls start (usage rows, log stamps); monotonic_ns:
        the gateway's clock for Init Duration. Timers use trio's clock."""
        # Each call and each instance holds its code tree (by code_dir), so
        # that code replaced or deleted meanwhile stays until they are done.
        self.code_holds = code_holds if code_holds is not None else CodeHolds()
        self.backend = backend
        self.slots = ConcurrencySlots(concurrency_limit, reserved_for)
        self.budget = MemoryBudget(backend, memory_budget_mb)
        # None: idle instances keep running (no freezer, or turned off).
        self.freezer = IdleFreezer(freeze_after_s) if freeze_after_s and _can_freeze(backend) else None
        self.idle_timeout_s = idle_timeout_s
        self.wall_ns = wall_ns
        self._on_call = on_call
        self._idle: dict[str, list[Instance]] = {}  # revision id -> idle instances
        self.deadlines = Deadlines()
        self._busy = self.deadlines.busy
        self.lifecycle = Lifecycle(
            backend,
            self.budget,
            self.code_holds,
            self._idle,
            self._busy,
            init_timeout_s=init_timeout_s,
            spawner=spawner,
            spares=spares,
            monotonic_ns=monotonic_ns,
            wall_ns=wall_ns,
        )
        self.provisioner = Provisioner(self)

    # -- lifecycle ---------------------------------------------------------

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Reaps idle instances until cancelled, then destroys every instance."""
        try:
            async with trio.open_nursery() as nursery:
                self.lifecycle.nursery = nursery
                nursery.start_soon(self.provisioner.run)
                nursery.start_soon(self.deadlines.run)
                if self.freezer is not None:
                    nursery.start_soon(self.freezer.run)
                task_status.started()
                while True:
                    await trio.sleep(min(1.0, self.idle_timeout_s / 2))
                    await self.reap_idle()
        finally:
            with trio.CancelScope(shield=True):
                await self.close()

    async def reap_idle(self) -> None:
        cutoff = trio.current_time() - self.idle_timeout_s
        stale: list[Instance] = []
        for revision, idle in list(self._idle.items()):
            # Provisioned instances stay initialised however long they idle;
            # an instance whose worker has exited goes whatever its age (its
            # sandbox is a zombie holding a cgroup, and a provisioned one is
            # then replaced).
            keep: list[Instance] = []
            for i in idle:
                (keep if (i.last_used >= cutoff or i.provisioned) and not i.exited() else stale).append(i)
            if keep:
                self._idle[revision] = keep
            else:
                del self._idle[revision]
        for inst in stale:
            await self.lifecycle.destroy(inst)

    async def close(self) -> None:
        everything = [i for idle in self._idle.values() for i in idle] + list(self._busy)
        self._idle.clear()
        for inst in everything:
            inst.sandbox.kill()
        for inst in everything:
            await self.lifecycle.destroy(inst)

    def drop(self, name: str, live_revisions: AbstractSet[str] = frozenset()) -> None:
        """The function changed or was deleted: idle instances of its revisions
        that are no longer live go now, busy ones when their call ends."""
        for revision, idle in list(self._idle.items()):
            if not idle or idle[0].function != name or revision in live_revisions:
                continue
            del self._idle[revision]
            for inst in idle:
                self.lifecycle.retire(inst)
        self.lifecycle.mark_stale(name, live_revisions)

    # -- provisioned concurrency (provisioned.py's Instances) -----------------

    def set_provisioned(self, targets: list[tuple[FunctionSpec, int]]) -> None:
        """The complete set of provisioned configs, as (spec, instances)."""
        self.provisioner.set_targets(targets, [i for idle in self._idle.values() for i in idle] + list(self._busy))

    def provisioned_ready(self, revision: str) -> int:
        """Initialised provisioned instances of a revision, busy or idle."""
        return self.provisioner.ready(revision)

    def instances_of(self, revision: str) -> list[Instance]:
        return self._idle.get(revision, []) + [b for b in self._busy if b.revision == revision]

    async def start_instance(self, spec: FunctionSpec, initialization_type: str) -> tuple[Instance, InitOk | InitError]:
        return await self.lifecycle.start(spec, initialization_type)

    async def destroy_instance(self, inst: Instance) -> int | None:
        return await self.lifecycle.destroy(inst)

    def release_instance(self, inst: Instance) -> None:
        self._release(inst)

    def statistics(self) -> dict[str, int]:
        return {
            "idle": sum(len(v) for v in self._idle.values()),
            "frozen": sum(i.frozen for v in self._idle.values() for i in v),
            "busy": len(self._busy),
            "starting": sum(n for _fn, n in self.lifecycle.starting.values()),
            "in_flight": self.slots.in_flight,
        }

    # -- calls -------------------------------------------------------------

    def set_reserved_total(self, total: int) -> None:
        """Sum of every function's reserved concurrency; the rest is shared."""
        self.slots.set_reserved_total(total)

    def concurrent(self, name: str | None = None) -> int:
        """Calls running now, for one function or for the account."""
        return self.slots.concurrent(name)

    async def invoke(
        self, spec: FunctionSpec, payload: bytes, client_context: str | None = None, request_id: str | None = None, stream=None
    ) -> CallOutcome:
        """stream: a CallStream (execution/call_stream.py) that gets a
        streamed answer as it arrives; the outcome holds it whole as well."""
        name = spec.record.name
        slots = self.slots
        shared = slots.admit(name)
        holds = self.code_holds
        paths = spec.code_paths()
        for path in paths:
            holds.hold(path)
        try:
            return await self._invoke(spec, payload, client_context, request_id or new_request_id(), stream=stream)
        finally:
            for path in paths:
                holds.release(path)
            slots.leave(name, shared)

    async def _invoke(
        self,
        spec: FunctionSpec,
        payload: bytes,
        client_context: str | None,
        request_id: str,
        retries: int = UNDELIVERED_RETRIES,
        stream=None,
    ) -> CallOutcome:
        rec = spec.record
        lifecycle = self.lifecycle
        started_ns = self.wall_ns()
        inst = self._take_idle(rec)
        head = LogHead()
        if inst is None:
            inst, init_reply = await lifecycle.start(spec)
            head = LogHead(init_reply.log, init_reply.log_marks)
            if isinstance(init_reply, InitError):
                died = inst.dead  # start() has reaped a worker that died during init
                max_mb = 0 if died else _max_memory_mb(inst)
                await lifecycle.destroy(inst)
                outcome = outcomes.init_failed(
                    rec, request_id, init_reply, inst.init_ns, max_mb, started_ns, died=died, granularity_ms=self.billing_granularity_ms
                )
                self._stamp(outcome, inst, rec, started_ns, max_mb)
                self._on_call(spec, outcome)
                return outcome
        cold = not inst.used
        inst.used = True
        inst.to(BUSY)
        head.call_ms = self.wall_ns() // 1_000_000
        call = Invoke(request_id, payload, head.call_ms + rec.timeout * 1000, spec.arn, client_context)
        result: Result | None = None
        too_large = False
        # The deadline watcher (not a cancel scope per call) kills the
        # sandbox if the call outlives its Timeout; the call then sees EOF.
        self.deadlines.started(inst, rec.timeout)
        undelivered = False
        try:
            try:
                result = await (inst.call(call, stream) if inst.extensions is None else inst.extensions.call(call, stream))
            except AnswerTooLarge:
                too_large = True
            except WorkerGone as gone:
                result = None
                undelivered = not gone.delivered
            if inst.timed_out:
                result = None  # killed at its deadline, even if an answer raced the kill
                too_large = False
        except BaseException:
            # The caller went away mid-call (shutdown, a cancelled task): the
            # instance is in an unknown state and is not reused.
            self.deadlines.ended(inst)
            inst.sandbox.kill()
            with trio.CancelScope(shield=True):
                await lifecycle.destroy(inst)
            raise
        self.deadlines.ended(inst)
        inst.to(IDLE)
        if undelivered and not inst.timed_out and retries > 0:
            # It died before the call reached it: nothing of this call ran,
            # so a fresh instance takes it and the caller never knows.
            inst.sandbox.kill()
            await lifecycle.destroy(inst)
            return await self._invoke(spec, payload, client_context, request_id, retries - 1, stream)
        init_ns = inst.init_ns if cold else None
        if result is not None:
            max_mb = _max_memory_mb(inst)
            outcome = outcomes.succeeded(
                rec,
                request_id,
                result,
                head,
                duration_ns=inst.last_heard_ns - inst.call_started_ns,
                max_mb=max_mb,
                init_ns=init_ns,
                cold=cold,
                granularity_ms=self.billing_granularity_ms,
            )
            self._release(inst)
        else:
            outcome = await self._failed(rec, inst, request_id, head, init_ns, cold, too_large=too_large)
            max_mb = outcome.max_memory_mb
        self._stamp(outcome, inst, rec, started_ns, max_mb)
        if inst.extensions is not None:
            inst.extensions.reported(outcome, self.billing_granularity_ms)
        self._on_call(spec, outcome)
        return outcome

    async def _failed(
        self, rec: FunctionRecord, inst: Instance, request_id: str, head: LogHead, init_ns: int | None, cold: bool, *, too_large: bool
    ) -> CallOutcome:
        """The call produced no usable result: it timed out, its worker
        died, or its answer was refused as too large (and the worker with it)."""
        inst.sandbox.kill()
        timed_out = inst.timed_out
        # Billed as the gateway timed it: to the configured Timeout for a
        # timeout (as AWS reports it), else to the last word from the worker.
        duration_ns = rec.timeout * 1_000_000_000 if timed_out else max(0, inst.last_heard_ns - inst.call_started_ns)
        output, dropped = inst.take_log()
        output, _ = outcomes.capped(output, [], request_id, rec, dropped)
        oom = inst.sandbox.oom_killed()
        max_mb = _max_memory_mb(inst)
        status = await self.lifecycle.destroy(inst)
        return outcomes.failed(
            rec,
            request_id,
            head,
            output,
            duration_ns=duration_ns,
            max_mb=max_mb,
            init_ns=init_ns,
            cold=cold,
            timed_out=timed_out,
            too_large=too_large,
            oom=oom,
            status=status,
            granularity_ms=self.billing_granularity_ms,
        )

    @staticmethod
    def _stamp(outcome: CallOutcome, inst: Instance, rec: FunctionRecord, started_ns: int, max_mb: int) -> None:
        outcome.started_ns = started_ns
        outcome.memory_mb = rec.memory_size
        outcome.max_memory_mb = max_mb
        outcome.instance_id = inst.id
        outcome.log_stream = inst.log_stream

    def _take_idle(self, rec: FunctionRecord) -> Instance | None:
        idle = self._idle.get(rec.revision_id)
        while idle:
            inst = idle.pop()
            if inst.frozen and not self._thawed(inst):
                continue
            if not inst.exited():
                return inst
            # Gone while idle (it exited after answering, say): replaced
            # before a call is given to it.
            self.lifecycle.retire(inst)
        return None

    def _thawed(self, inst: Instance) -> bool:
        """Thaws a frozen instance before its call (a cgroup write); one
        that cannot be thawed is retired."""
        try:
            inst.sandbox.thaw()
        except OSError as exc:
            log.warning("instance %s: cannot thaw: %s", inst.id, exc)
            self.lifecycle.retire(inst)
            return False
        inst.frozen = False
        return True

    def _release(self, inst: Instance) -> None:
        """An instance that ran its call (or its init) goes idle, or is
        retired if its revision was replaced meanwhile."""
        if inst.revision in self.lifecycle.stale:
            self.lifecycle.retire(inst)
            return
        if inst.state is not IDLE:
            inst.to(IDLE)
        inst.last_used = trio.current_time()
        self._idle.setdefault(inst.revision, []).append(inst)
        if self.freezer is not None:
            self.freezer.released(inst)


def _max_memory_mb(inst: Instance) -> int:
    peak = inst.sandbox.peak_memory_bytes()
    return round(peak / 1048576) if peak else 0


def _can_freeze(backend: SandboxBackend) -> bool:
    return backend.protections().get("idle_freeze", False)
