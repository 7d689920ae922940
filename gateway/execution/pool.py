"""Warm instances per function revision, and the one call each runs at a time.

A function that is never called has no instance. Instances are created on
demand, reused LIFO (the most recently used is the warmest), reclaimed after
an idle period, and destroyed the moment they crash, time out or run out of
memory. Concurrency is bounded account-wide; past the bound a caller gets
TooManyRequestsException at once rather than waiting.
"""
from __future__ import annotations

import errno
import logging
import os
import signal
import time
import uuid
from collections.abc import Callable
from collections.abc import Set as AbstractSet

import msgspec
import trio

from lambdalet.runtime import errors as function_errors
from lambdalet.runtime.protocol import MAX_CALL_LOG, MAX_RESPONSE, Init, InitError, InitOk, Invoke
from lambdalet.sandbox.attach import attach_tree
from lambdalet.sandbox.spec import SandboxBackend, SandboxSpec

from ..errors import LambdaError
from ..functions.code_gc import CodeHolds
from ..functions.model import FunctionRecord
from ..functions.validation import NETWORK_TAG
from ..ids import request_id as new_request_id
from ..metering import log_lines as logs
from . import admission, languages
from .idle_freezer import IdleFreezer
from .instance import AnswerTooLarge, Instance, WorkerGone
from .languages import Launch
from .runtime_api import extension_host
from .runtime_api import session as runtime_api
from .spares import SparePool
from .spawner import SpawnerThread

log = logging.getLogger("lambdalet.pool")

DEADLINE_TICK_S = 0.02
# A call that never reached its worker (it had just died) goes to a fresh
# instance, transparently, as on AWS; this many times at most.
UNDELIVERED_RETRIES = 2
FREEZE_AFTER_S = 0.005  # idle this long and an instance is frozen (`serve --freeze-idle-ms`)
# A sandbox starts with a vCPU at least (sandbox/cgroups.py) so that a small
# function's share does not stretch its cold start; its own share applies
# once init is over, or after this long, so that an init that fails on
# purpose call after call gets little CPU for nothing.
CPU_BOOST_S = 0.5


class CallOutcome(msgspec.Struct):
    """A finished call. Its figures are the platform's own: durations from
    the gateway's clock, memory from the sandbox's cgroup, never what the
    worker said."""

    request_id: str
    payload: bytes
    function_error: str | None  # "Unhandled" when the function failed
    error_type: str | None
    log: bytes  # START .. REPORT, as the call's log stream holds it
    duration_ns: int
    init_ns: int | None
    cold: bool
    started_ns: int = 0  # wall clock (time.time_ns) when the call was dispatched
    memory_mb: int = 0  # configured MemorySize
    max_memory_mb: int = 0  # peak seen by the sandbox, 0 when unknown
    instance_id: str = ""
    log_stream: str = ""
    log_marks: list[tuple[int, int]] = []  # when each part of log was written (logs.call_marks)
    log_frame: logs.CallFrame | None = None  # what log's platform lines are made of
    # What the platform saw happen: success, error, timeout, oom, crash or
    # init_error. Never read from error_type, which the function chooses.
    kind: str = ""


class FunctionSpec(msgspec.Struct, frozen=True):
    """What the pool needs to start and call one revision of a function."""

    record: FunctionRecord
    code_dir: str
    arn: str
    env: dict[str, str]
    log_group: str
    version: str = "$LATEST"
    runtime: str = ""  # the interpreter that runs it ("python3.12"); "" the backend's default
    runtime_version: str = ""  # INIT_START's "python:3.12.1"; "" writes no INIT_START
    runtime_mapping: str = ""  # how a mapped Runtime runs (gateway/functions/runtimes.py), for INIT_START
    # provided.al2023 / provided.al2: the worker execs the code's bootstrap,
    # which speaks the Runtime API (gateway/execution/runtime_api).
    custom: bool = False
    # A Node.js, Java or C# function: the worker execs the language's
    # runtime, which speaks the Runtime API (gateway/execution/languages.py).
    launch: Launch | None = None
    # The function's layers' trees, in order (mounted at /opt, the last on top).
    layers: tuple[str, ...] = ()

    def code_paths(self) -> tuple[str, ...]:
        """Every tree a call or an instance of this function holds."""
        return (self.code_dir, *self.layers)


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
    ) -> None:
        # Each call and each instance holds its code tree (by code_dir), so
        # that code replaced or deleted meanwhile stays until they are done.
        self.code_holds = code_holds if code_holds is not None else CodeHolds()
        self.spawner = spawner
        self.spares = spares
        self.backend = backend
        self.concurrency_limit = concurrency_limit
        # Reserved concurrency is read live at each call (it changes without
        # a new revision); the unreserved functions share what is left.
        self._reserved_for = reserved_for
        self._fn_in_flight: dict[str, int] = {}
        self._unreserved_in_flight = 0
        self._reserved_total = 0
        self.memory_budget_mb = memory_budget_mb if memory_budget_mb is not None else default_memory_budget_mb()
        self._memory_mb = 0  # MemorySize summed over every live or starting instance
        self._starting_tasks = 0  # tasks reserved for spawns under way (admission.TASKS_PER_START each)
        self._boosted: set[Instance] = set()  # started with a vCPU, their own CPU share not yet applied
        # None: idle instances keep running (no freezer, or turned off).
        self.freezer = IdleFreezer(freeze_after_s) if freeze_after_s and _can_freeze(backend) else None
        self.idle_timeout_s = idle_timeout_s
        self.init_timeout_s = init_timeout_s
        self._on_call = on_call
        self._idle: dict[str, list[Instance]] = {}  # revision id -> idle instances
        self._stale: set[str] = set()  # revisions replaced while some of their calls ran or instances started
        self._starting: dict[str, tuple[str, int]] = {}  # revision -> (function, starts in progress)
        # Provisioned concurrency: revision id -> (spec, instances to keep initialised).
        self._provisioned: dict[str, tuple[FunctionSpec, int]] = {}
        self._provisioning = trio.Event()
        self._busy_changed = trio.Event()
        self._busy: set[Instance] = set()
        self._in_flight = 0
        self._nursery: trio.Nursery | None = None

    # -- lifecycle ---------------------------------------------------------

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Reaps idle instances until cancelled, then destroys every instance."""
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self._keep_provisioned)
                nursery.start_soon(self._enforce_deadlines)
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
            await self._destroy(inst)

    async def close(self) -> None:
        everything = [i for idle in self._idle.values() for i in idle] + list(self._busy)
        self._idle.clear()
        for inst in everything:
            inst.sandbox.kill()
        for inst in everything:
            await self._destroy(inst)

    def drop(self, name: str, live_revisions: AbstractSet[str] = frozenset()) -> None:
        """The function changed or was deleted: idle instances of its revisions
        that are no longer live go now, busy ones when their call ends."""
        for revision, idle in list(self._idle.items()):
            if not idle or idle[0].function != name or revision in live_revisions:
                continue
            del self._idle[revision]
            for inst in idle:
                self._retire(inst)
        for inst in self._busy:
            if inst.function == name and inst.revision not in live_revisions:
                self._stale.add(inst.revision)
        for revision, (function, _n) in self._starting.items():
            if function == name and revision not in live_revisions:
                self._stale.add(revision)

    async def _enforce_deadlines(self) -> None:
        """Kills each call that outlives its function's Timeout.

        One task checks the busy instances every DEADLINE_TICK_S while any
        exist, and sleeps otherwise; a cancel scope per call cost more than
        the rest of the call's bookkeeping. Timeouts therefore land up to one
        tick after the deadline, and REPORT says the configured Timeout."""
        while True:
            if not self._busy:
                self._busy_changed = trio.Event()
                await self._busy_changed.wait()
            await trio.sleep(DEADLINE_TICK_S)
            now = trio.current_time()
            for inst in list(self._busy):
                if inst.deadline <= now and not inst.timed_out:
                    inst.timed_out = True
                    inst.sandbox.kill()

    # -- provisioned concurrency ---------------------------------------------

    def set_provisioned(self, targets: list[tuple[FunctionSpec, int]]) -> None:
        """The complete set of provisioned configs, as (spec, instances)."""
        self._provisioned = {spec.record.revision_id: (spec, n) for spec, n in targets}
        for inst in [i for idle in self._idle.values() for i in idle] + list(self._busy):
            if inst.revision not in self._provisioned:
                inst.provisioned = False
        self._provisioning.set()

    def provisioned_ready(self, revision: str) -> int:
        """Initialised provisioned instances of a revision, busy or idle."""
        idle = sum(1 for i in self._idle.get(revision, []) if i.provisioned)
        return idle + sum(1 for i in self._busy if i.provisioned and i.revision == revision)

    async def _keep_provisioned(self) -> None:
        while True:
            try:
                await self._provision_once()
            except Exception:
                # One function's broken init must not stop the pool.
                log.exception("provisioned concurrency")
            self._provisioning = trio.Event()
            with trio.move_on_after(1.0):
                await self._provisioning.wait()

    async def _provision_once(self) -> None:
        for revision, (spec, wanted) in list(self._provisioned.items()):
            have = [i for i in self._idle.get(revision, []) + [b for b in self._busy if b.revision == revision]]
            flagged = [i for i in have if i.provisioned]
            # Warm on-demand instances count first; start the rest.
            for inst in have:
                if len(flagged) >= wanted:
                    break
                if not inst.provisioned:
                    inst.provisioned = True
                    flagged.append(inst)
            for inst in flagged[wanted:]:
                inst.provisioned = False
            while len(flagged) < wanted and revision in self._provisioned:
                try:
                    inst, reply = await self._start(spec, initialization_type="provisioned-concurrency")
                except LambdaError as exc:
                    log.warning("provisioned concurrency for %s: %s", spec.record.name, exc.message)
                    break
                if isinstance(reply, InitError):
                    await self._destroy(inst)
                    log.warning("provisioned concurrency for %s: init failed: %s", spec.record.name, reply.error_type)
                    break
                inst.provisioned = True
                # Initialised ahead of any call: no call reports its Init Duration.
                inst.used = True
                self._release(inst, spec.record)
                flagged.append(inst)

    def statistics(self) -> dict[str, int]:
        return {
            "idle": sum(len(v) for v in self._idle.values()),
            "frozen": sum(i.frozen for v in self._idle.values() for i in v),
            "busy": len(self._busy),
            "starting": sum(n for _fn, n in self._starting.values()),
            "in_flight": self._in_flight,
        }

    # -- calls -------------------------------------------------------------

    def set_reserved_total(self, total: int) -> None:
        """Sum of every function's reserved concurrency; the rest is shared."""
        self._reserved_total = total

    def _admit(self, name: str) -> bool:
        """Takes a concurrency slot for one call, or raises 429. Returns
        whether the slot came from the shared (unreserved) pool."""
        reserved = self._reserved_for(name)
        running = self._fn_in_flight.get(name, 0)
        if reserved is not None:
            if running >= reserved:
                raise LambdaError("TooManyRequestsException", "Rate Exceeded.", Reason="ReservedFunctionConcurrentInvocationLimitExceeded")
            shared = False
        else:
            if self._unreserved_in_flight >= self.concurrency_limit - self._reserved_total:
                raise LambdaError("TooManyRequestsException", "Rate Exceeded.", Reason="ConcurrentInvocationLimitExceeded")
            self._unreserved_in_flight += 1
            shared = True
        self._fn_in_flight[name] = running + 1
        self._in_flight += 1
        return shared

    def _leave(self, name: str, shared: bool) -> None:
        self._in_flight -= 1
        if shared:
            self._unreserved_in_flight -= 1
        left = self._fn_in_flight[name] - 1
        if left:
            self._fn_in_flight[name] = left
        else:
            del self._fn_in_flight[name]

    def concurrent(self, name: str | None = None) -> int:
        """Calls running now, for one function or for the account."""
        return self._in_flight if name is None else self._fn_in_flight.get(name, 0)

    async def invoke(self, spec: FunctionSpec, payload: bytes, client_context: str | None = None, request_id: str | None = None,
                     stream=None) -> CallOutcome:
        """stream: a CallStream (execution/call_stream.py) that gets a
        streamed answer as it arrives; the outcome holds it whole as well."""
        name = spec.record.name
        shared = self._admit(name)
        holds = self.code_holds
        paths = spec.code_paths()
        for path in paths:
            holds.hold(path)
        try:
            return await self._invoke(spec, payload, client_context, request_id or new_request_id(), stream=stream)
        finally:
            for path in paths:
                holds.release(path)
            self._leave(name, shared)

    async def _invoke(self, spec: FunctionSpec, payload: bytes, client_context: str | None, request_id: str,
                      retries: int = UNDELIVERED_RETRIES, stream=None) -> CallOutcome:
        rec = spec.record
        started_ns = time.time_ns()
        inst = self._take_idle(rec)
        init_log = b""
        init_marks: list = []
        if inst is None:
            inst, init_reply = await self._start(spec)
            init_log = init_reply.log
            init_marks = init_reply.log_marks
            if isinstance(init_reply, InitError):
                died = inst.dead  # _start has reaped a worker that died during init
                max_mb = 0 if died else self._max_memory_mb(inst)
                await self._destroy(inst)
                outcome = self._init_failed(spec, request_id, init_reply, inst.init_ns, max_mb, started_ns, died=died)
                self._stamp(outcome, inst, rec, started_ns, max_mb)
                self._on_call(spec, outcome)
                return outcome
        cold = not inst.used
        inst.used = True
        inst.busy = True
        self._busy.add(inst)
        call_ms = int(time.time() * 1000)
        deadline_ms = call_ms + rec.timeout * 1000
        call = Invoke(request_id, payload, deadline_ms, spec.arn, client_context)
        result = None
        too_large = False
        # The deadline watcher (not a cancel scope per call) kills the
        # sandbox if the call outlives its Timeout; the call then sees EOF.
        inst.timed_out = False
        inst.deadline = trio.current_time() + rec.timeout
        if not self._busy_changed.is_set():
            self._busy_changed.set()
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
            self._busy.discard(inst)
            inst.sandbox.kill()
            with trio.CancelScope(shield=True):
                await self._destroy(inst)
            raise
        self._busy.discard(inst)
        inst.busy = False
        if undelivered and not inst.timed_out and retries > 0:
            # It died before the call reached it: nothing of this call ran,
            # so a fresh instance takes it and the caller never knows.
            inst.sandbox.kill()
            await self._destroy(inst)
            return await self._invoke(spec, payload, client_context, request_id, retries - 1, stream)
        init_ns = inst.init_ns if cold else None
        if result is not None:
            duration_ns = inst.last_heard_ns - inst.call_started_ns
            max_mb = self._max_memory_mb(inst)
            error_type = result.error_type
            answer = result.payload
            if len(answer) > MAX_RESPONSE:
                error_type, answer = "Function.ResponseSizeTooLarge", function_errors.response_too_large()
            elif error_type:
                error_type = _printable(error_type)
            output, output_marks = self._capped(result.log, result.log_marks, request_id, rec)
            log, marks, frame = self._wrap(rec, request_id, init_log, output, duration_ns, max_mb, init_ns, error_type,
                                           init_marks=init_marks, call_ms=call_ms, output_marks=output_marks)
            outcome = CallOutcome(
                request_id=request_id,
                payload=answer,
                function_error="Unhandled" if error_type else None,
                error_type=error_type,
                log=log,
                duration_ns=duration_ns,
                init_ns=init_ns,
                cold=cold,
                log_marks=marks,
            log_frame=frame,
                kind="error" if error_type else "success",
            )
            self._release(inst, rec)
        else:
            outcome = await self._failed(spec, inst, request_id, init_log, init_ns, cold, timed_out=inst.timed_out, too_large=too_large,
                                         init_marks=init_marks, call_ms=call_ms)
            max_mb = outcome.max_memory_mb
        self._stamp(outcome, inst, rec, started_ns, max_mb)
        if inst.extensions is not None:
            inst.extensions.reported(outcome, self.billing_granularity_ms)
        self._on_call(spec, outcome)
        return outcome

    @staticmethod
    def _stamp(outcome: CallOutcome, inst: Instance, rec: FunctionRecord, started_ns: int, max_mb: int) -> None:
        outcome.started_ns = started_ns
        outcome.memory_mb = rec.memory_size
        outcome.max_memory_mb = max_mb
        outcome.instance_id = inst.id
        outcome.log_stream = inst.log_stream

    async def _failed(self, spec: FunctionSpec, inst: Instance, request_id: str, init_log: bytes, init_ns: int | None, cold: bool, *,
                      timed_out: bool, too_large: bool = False, init_marks: list, call_ms: int) -> CallOutcome:
        """The call produced no usable result: it timed out, its worker
        died, or its answer was refused as too large (and the worker with it)."""
        rec = spec.record
        inst.sandbox.kill()
        # Billed as the gateway timed it: to the configured Timeout for a
        # timeout (as AWS reports it), else to the last word from the worker.
        duration_ns = rec.timeout * 1_000_000_000 if timed_out else max(0, inst.last_heard_ns - inst.call_started_ns)
        output, dropped = inst.take_log()
        output, _ = self._capped(output, [], request_id, rec, dropped)
        oom = inst.sandbox.oom_killed()
        max_mb = self._max_memory_mb(inst)
        status = await self._destroy(inst)
        if timed_out:
            error_type, kind = "Sandbox.Timedout", "timeout"
            payload = function_errors.platform(error_type, request_id, f"Task timed out after {rec.timeout:.2f} seconds")
            output += logs.timeout_line(request_id, rec.timeout)
        elif too_large:
            error_type, kind = "Function.ResponseSizeTooLarge", "error"
            payload = function_errors.response_too_large()
            output += f"{logs.timestamp()} RequestId: {request_id} Error: {function_errors.RESPONSE_TOO_LARGE}\n{error_type}\n".encode()
        elif oom:
            error_type, kind = "Runtime.OutOfMemory", "oom"
            detail = "Runtime exited with error: signal: killed"
            payload = function_errors.platform(error_type, request_id, detail)
            output += f"{logs.timestamp()} RequestId: {request_id} Error: {detail}\n{error_type}\n".encode()
        else:
            error_type, kind = "Runtime.ExitError", "crash"
            detail = "Runtime exited with error: " + _describe_status(status)
            payload = function_errors.platform(error_type, request_id, detail)
            output += f"{logs.timestamp()} RequestId: {request_id} Error: {detail}\n{error_type}\n".encode()
        # What a killed worker wrote carries no marks: it is stamped with the
        # end of the call, the first time it is known to have been written.
        log, marks, frame = self._wrap(rec, request_id, init_log, output, duration_ns, max_mb, init_ns, error_type,
                                       init_marks=init_marks, call_ms=call_ms, output_marks=[])
        return CallOutcome(
            request_id=request_id,
            payload=payload,
            function_error="Unhandled",
            error_type=error_type,
            log=log,
            duration_ns=duration_ns,
            init_ns=init_ns,
            cold=cold,
            max_memory_mb=max_mb,
            log_marks=marks,
            log_frame=frame,
            kind=kind,
        )

    def _init_failed(self, spec: FunctionSpec, request_id: str, reply: InitError, init_ns: int, max_mb: int, started_ns: int, *,
                     died: bool) -> CallOutcome:
        """The first call of an instance whose init failed. The worker's own
        error type is shown, but the outcome is the platform's: init_error
        when the worker reported the failure, crash when it died."""
        rec = spec.record
        error_type = _printable(reply.error_type) or "Runtime.Unknown"
        payload = reply.payload if len(reply.payload) <= MAX_RESPONSE else function_errors.response_too_large()
        log, marks, frame = self._wrap(rec, request_id, b"", reply.log, 0, max_mb, init_ns, error_type,
                                       init_marks=[], call_ms=started_ns // 1_000_000, output_marks=reply.log_marks)
        return CallOutcome(
            request_id=request_id,
            payload=payload,
            function_error="Unhandled",
            error_type=error_type,
            log=log,
            duration_ns=0,
            init_ns=init_ns,
            cold=True,
            log_marks=marks,
            log_frame=frame,
            kind="crash" if died else "init_error",
        )

    def _capped(self, output: bytes, marks: list, request_id: str | None, rec: FunctionRecord, dropped: int = 0) -> tuple[bytes, list]:
        # The worker honours the same cap, but the function can bypass it.
        return logs.capped(output, marks, MAX_CALL_LOG, request_id, rec.logging_config, dropped)

    def _wrap(self, rec: FunctionRecord, request_id: str, init_log: bytes, output: bytes, duration_ns: int, max_mb: int, init_ns: int | None,
              error_type: str | None, *, init_marks: list, call_ms: int, output_marks: list) -> tuple[bytes, list[tuple[int, int]], logs.CallFrame | None]:
        """The call's log with START/END/REPORT, or JSON platform events, per
        the LoggingConfig, its marks (logs.call_marks; call_ms is when the
        call was handed to the worker, epoch ms), and what its platform
        lines are made of (logs.CallFrame), which the log store keeps
        instead of their text."""
        frame = logs.call_frame(
            request_id, rec.version,
            duration_ns=duration_ns, memory_mb=rec.memory_size, max_memory_mb=max_mb, init_ns=init_ns,
            granularity_ms=self.billing_granularity_ms, logging_config=rec.logging_config, error_type=error_type,
        )
        if frame is None:
            head = tail = b""
        else:
            # The platform's lines are lines of their own, whatever the
            # worker's output ended with.
            if init_log and not init_log.endswith(b"\n"):
                init_log += b"\n"
            if output and not output.endswith(b"\n"):
                output += b"\n"
            head, tail = frame.head(), frame.tail()
            frame = msgspec.structs.replace(frame, head_at=len(init_log))
        marks = logs.call_marks(init_log, init_marks, head, output, output_marks, call_ms)
        return b"".join((init_log, head, output, tail)), marks, frame

    @staticmethod
    def _max_memory_mb(inst: Instance) -> int:
        peak = inst.sandbox.peak_memory_bytes()
        return round(peak / 1048576) if peak else 0

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
            self._retire(inst)
        return None

    def _thawed(self, inst: Instance) -> bool:
        """Thaws a frozen instance before its call (a cgroup write); one
        that cannot be thawed is retired."""
        try:
            inst.sandbox.thaw()
        except OSError as exc:
            log.warning("instance %s: cannot thaw: %s", inst.id, exc)
            self._retire(inst)
            return False
        inst.frozen = False
        return True

    def _release(self, inst: Instance, rec: FunctionRecord) -> None:
        if inst.revision in self._stale:
            self._retire(inst)
            return
        inst.last_used = trio.current_time()
        self._idle.setdefault(inst.revision, []).append(inst)
        if self.freezer is not None:
            self.freezer.released(inst)

    def _retire(self, inst: Instance) -> None:
        if inst.extensions is None:  # else _destroy's SHUTDOWN comes first
            inst.sandbox.kill()
        if self._nursery is not None:
            self._nursery.start_soon(self._destroy, inst)

    def _usage(self) -> admission.Usage:
        tasks = self.backend.task_usage()
        if tasks is None:
            return admission.Usage(self._memory_mb, self.memory_budget_mb)
        return admission.Usage(self._memory_mb, self.memory_budget_mb, tasks[0] + self._starting_tasks, tasks[1])

    async def _make_room(self, memory_mb: int) -> None:
        """Evicts idle instances until a new instance of memory_mb fits the
        host's memory budget and its cap on tasks (admission.py says which
        go first), or raises 429 without evicting any when that cannot be
        done."""
        usage = self._usage()
        idle = [i for insts in self._idle.values() for i in insts]
        evict = admission.make_room(memory_mb, usage, idle, lambda i: i.sandbox.task_count())
        if evict is None:
            raise admission.refusal(admission.shortfall(memory_mb, usage) or "memory", memory_mb, usage)
        for inst in evict:
            # The list goes stale across each await: a call may have taken
            # this instance, or the reaper removed it.
            siblings = self._idle.get(inst.revision)
            if not siblings or inst not in siblings:
                continue
            siblings.remove(inst)
            if not siblings:
                del self._idle[inst.revision]
            await self._destroy(inst)
        if evict:
            usage = self._usage()
            short = admission.shortfall(memory_mb, usage)
            if short is not None:
                raise admission.refusal(short, memory_mb, usage)
        # Reserved now, not when the sandbox exists: spawns overlap, and
        # each must see the memory (and tasks) the others are about to take.
        self._memory_mb += memory_mb
        self._starting_tasks += admission.TASKS_PER_START

    def _from_spare(self, spec: FunctionSpec) -> Instance | None:
        """A spare sandbox made ready for this function, or None."""
        rec = spec.record
        if self.spares is None or not self.spares.eligible(rec.ephemeral_storage, network_of(rec), spec.layers):
            return None
        early = spec.launch if spec.launch is not None and languages.prestarts(spec.launch, spec.env) else None
        inst = self.spares.take(spec.runtime, early)
        if inst is None:
            return None
        sandbox = inst.sandbox
        try:
            if inst.exited():
                raise OSError(errno.ECHILD, "its worker has exited")
            sandbox.fit(rec.memory_size)
            attach_tree(sandbox.pid, spec.code_dir, sandbox.task_root, sandbox.pidfd)
        except OSError as exc:
            log.warning("could not hand a spare sandbox to %s: %s", rec.name, exc)
            inst.dead = True
            trio.lowlevel.notify_closing(inst.sock)
            if self._nursery is not None:
                self._nursery.start_soon(trio.to_thread.run_sync, inst.destroy)
            return None
        inst.revision = rec.revision_id
        return inst

    async def _start(self, spec: FunctionSpec, initialization_type: str = "on-demand") -> tuple[Instance, InitOk | InitError]:
        # Counted while it runs, so that drop() can mark an instance whose
        # revision is replaced before it has started.
        revision = spec.record.revision_id
        function, n = self._starting.get(revision, (spec.record.name, 0))
        self._starting[revision] = (function, n + 1)
        try:
            return await self._start_instance(spec, initialization_type)
        finally:
            function, n = self._starting[revision]
            if n > 1:
                self._starting[revision] = (function, n - 1)
            else:
                del self._starting[revision]

    async def _start_instance(self, spec: FunctionSpec, initialization_type: str) -> tuple[Instance, InitOk | InitError]:
        rec = spec.record
        # Held from here until _destroy: the trees are mounted (or the cwd) of
        # the sandbox from spawn, or attach, to its end.
        paths = spec.code_paths()
        for path in paths:
            self.code_holds.hold(path)
        try:
            await self._make_room(rec.memory_size)
        except BaseException:
            for path in paths:
                self.code_holds.release(path)
            raise
        instance_id = uuid.uuid4().hex
        sandbox_spec = SandboxSpec(
            instance_id=instance_id,
            function_name=rec.name,
            code_dir=spec.code_dir,
            memory_mb=rec.memory_size,
            ephemeral_mb=rec.ephemeral_storage,
            timeout_s=float(rec.timeout),
            network=network_of(rec),
            runtime=spec.runtime,
            layers=spec.layers,
        )
        started = time.monotonic_ns()
        started_ms = time.time_ns() // 1_000_000  # INIT_START's stamp
        try:
            inst = self._from_spare(spec)
            if inst is None:
                try:
                    if self.spawner is not None:
                        sandbox = await self.spawner.run(lambda: self.backend.spawn(sandbox_spec), on_abandoned=lambda sb: sb.destroy())
                    else:
                        sandbox = self.backend.spawn(sandbox_spec)
                except OSError as exc:
                    if exc.errno == errno.EAGAIN:  # the tasks cap, reached since _make_room looked
                        raise admission.refusal("tasks", rec.memory_size, self._usage()) from exc
                    raise LambdaError("ServiceException", f"Could not start a sandbox: {exc}") from exc
                inst = Instance(instance_id, sandbox, rec.revision_id)
        except BaseException:
            self._memory_mb -= rec.memory_size  # the reservation _make_room took
            for path in paths:
                self.code_holds.release(path)
            raise
        finally:
            self._starting_tasks -= admission.TASKS_PER_START  # now counted by the backend, or never
        inst.code_dir = spec.code_dir
        inst.layer_dirs = spec.layers
        instance_id = inst.id
        sandbox = inst.sandbox
        inst.function = rec.name
        inst.memory_mb = rec.memory_size
        stream = log_stream_name(instance_id, spec.version)
        inst.log_stream = stream
        env = dict(spec.env)
        env["LAMBDA_TASK_ROOT"] = sandbox.task_root
        env["AWS_LAMBDA_LOG_STREAM_NAME"] = stream
        env["AWS_LAMBDA_INITIALIZATION_TYPE"] = initialization_type
        env["AWS_LAMBDA_FUNCTION_VERSION"] = spec.version
        init = Init(
            handler=rec.handler,
            task_root=sandbox.task_root,
            env=env,
            function_name=rec.name,
            function_version=spec.version,
            memory_mb=rec.memory_size,
            log_group=spec.log_group,
            log_stream=stream,
        )
        reply = None
        self._boosted.add(inst)
        if self._nursery is not None:
            self._nursery.start_soon(self._limit_cpu_after, inst, CPU_BOOST_S)


        async def run_init():
            if spec.custom or spec.launch is not None:
                return await runtime_api.launch(inst, init, self._running_nursery(), spec.launch)
            return await inst.init(init)

        try:
            with trio.move_on_after(self.init_timeout_s):
                try:
                    if spec.layers and extension_host.wanted(spec.layers):
                        figures = extension_host.Figures.of(spec, initialization_type)
                        reply = await extension_host.init_with_extensions(inst, init, figures, self._running_nursery(), run_init)
                    else:
                        reply = await run_init()
                except WorkerGone:
                    reply = None
            self._limit_cpu(inst)
        except BaseException:
            self._boosted.discard(inst)
            inst.sandbox.kill()
            with trio.CancelScope(shield=True):
                await self._destroy(inst)
            raise
        # Init Duration covers the runtime's start as well as the handler's
        # import, as AWS's does.
        inst.init_ns = time.monotonic_ns() - started
        dropped = 0
        if reply is None:
            output, dropped = inst.take_log()
            status = await self._destroy(inst)
            detail = "Runtime exited with error: " + _describe_status(status)
            reply = InitError("Runtime.ExitError", function_errors.platform("Runtime.ExitError", "", detail), output)
        reply.log, reply.log_marks = self._capped(reply.log, reply.log_marks, None, rec, dropped)
        if spec.runtime_version:
            line = logs.init_start(spec.runtime_version, spec.runtime_mapping, logging_config=rec.logging_config,
                                   initialization_type=initialization_type, function_name=rec.name,
                                   version=spec.version)
            reply.log, reply.log_marks = logs.prefixed(line, started_ms, reply.log, reply.log_marks)
        return inst, reply

    def _running_nursery(self) -> trio.Nursery:
        """Where an instance's own tasks run (a custom runtime's Runtime API)."""
        if self._nursery is None:
            raise LambdaError("ServiceException", "The pool is not running")
        return self._nursery

    async def _limit_cpu_after(self, inst: Instance, delay_s: float) -> None:
        await trio.sleep(delay_s)
        self._limit_cpu(inst)

    def _limit_cpu(self, inst: Instance) -> None:
        """The start-up boost is over (init ended, or ran CPU_BOOST_S): CPU
        as the function's memory buys. Once per instance."""
        if inst not in self._boosted:
            return
        self._boosted.discard(inst)
        if inst.dead:
            return
        try:
            inst.sandbox.limit_cpu(inst.memory_mb)
        except OSError as exc:
            # Its cgroup is gone: the worker is dead, and init says so.
            log.warning("instance %s: cannot set its CPU share: %s", inst.id, exc)

    async def _destroy(self, inst: Instance) -> int | None:
        if inst.dead:
            return None
        inst.dead = True
        self._memory_mb -= inst.memory_mb
        if inst.revision in self._stale and inst.revision not in self._starting and not any(b.revision == inst.revision for b in self._busy):
            self._stale.discard(inst.revision)  # its last instance: nothing left to mark
        if inst.extensions is not None:
            await inst.extensions.shutdown()
        # Wake (with an error) anything still waiting on the channel before
        # another thread closes it.
        inst.closing()
        # Shielded: once marked dead nothing else would ever destroy it.
        with trio.CancelScope(shield=True):
            try:
                return await trio.to_thread.run_sync(inst.destroy)
            finally:
                # Only now is the tree unmounted and no process runs in it.
                if inst.code_dir:
                    self.code_holds.release(inst.code_dir)
                    inst.code_dir = ""
                for path in inst.layer_dirs:
                    self.code_holds.release(path)
                inst.layer_dirs = ()
        return None  # mypy's view: a cancel scope may swallow an exception (a shielded one here does not)


def _can_freeze(backend: SandboxBackend) -> bool:
    return backend.protections().get("idle_freeze", False)


def network_of(rec: FunctionRecord) -> str:
    """A function's network: "none" (loopback only, the default) or
    "egress" (NAT to the outside), chosen with the lambdalet:network tag."""
    return rec.tags.get(NETWORK_TAG, "none")


def default_memory_budget_mb() -> int:
    """What the host can give instances: MemAvailable at start-up, less a
    reserve for the server and the rest of the system."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return max(256, int(line.split()[1]) // 1024 - 512)
    except (OSError, ValueError):
        pass
    return 4096


def log_stream_name(instance_id: str, version: str = "$LATEST") -> str:
    day = time.strftime("%Y/%m/%d", time.gmtime())
    return f"{day}/[{version}]{instance_id}"


def _printable(error_type: str) -> str:
    """A worker's errorType as the platform shows it: it lands in log lines
    and platform events, so no control characters and no novels."""
    text = error_type[:256]
    return text if text.isprintable() else "".join(c if c.isprintable() else "?" for c in text)


def _describe_status(status: int | None) -> str:
    if status is None:
        return "Runtime exited without providing a reason"
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        name = signal.Signals(sig).name[3:].lower() if sig in signal.Signals._value2member_map_ else str(sig)
        return f"signal: {'killed' if sig == signal.SIGKILL else name}"
    if os.WIFEXITED(status):
        return f"exit status {os.WEXITSTATUS(status)}"
    return "Runtime exited without providing a reason"
