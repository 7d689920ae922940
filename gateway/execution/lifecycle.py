"""An instance's life from spawn to destroy, as the pool drives it.

start() makes room in the host's budget, takes a spare sandbox or spawns
one, sends Init (or launches a Runtime API runtime, with the layers'
extensions first when they bring any) and answers the init's reply with
the platform's INIT_START line; destroy() tells extensions SHUTDOWN, kills
and reaps the sandbox off the event loop, and gives back its memory and its
code holds. Revisions replaced while an instance of theirs was starting or
busy are "stale": such an instance is destroyed instead of going idle.
"""

from __future__ import annotations

import errno
import logging
import time
import uuid
from collections.abc import Callable
from collections.abc import Set as AbstractSet

import trio

from lambdalet.runtime import errors as function_errors
from lambdalet.runtime.protocol import Init, InitError, InitOk
from lambdalet.sandbox.attach import attach_tree
from lambdalet.sandbox.spec import SandboxBackend, SandboxSpec

from ..errors import LambdaError
from ..functions.code_gc import CodeHolds
from ..functions.model import FunctionRecord
from ..functions.validation import NETWORK_TAG
from ..metering import log_lines as logs
from . import admission, languages
from .instance import DEAD, Instance, WorkerGone
from .memory_budget import MemoryBudget
from .outcomes import FunctionSpec, capped, describe_status, log_stream_name
from .runtime_api import extension_start, platform_events
from .runtime_api import session as runtime_api
from .spares import SparePool
from .spawner import SpawnerThread

log = logging.getLogger("lambdalet.pool")

# A sandbox starts with a vCPU at least (sandbox/cgroups.py) so that a small
# function's share does not stretch its cold start; its own share applies
# once init is over, or after this long, so that an init that fails on
# purpose call after call gets little CPU for nothing.
CPU_BOOST_S = 0.5


class Lifecycle:
    def __init__(
        self,
        backend: SandboxBackend,
        budget: MemoryBudget,
        code_holds: CodeHolds,
        idle: dict[str, list[Instance]],
        busy: set[Instance],
        *,
        init_timeout_s: float,
        spawner: SpawnerThread | None,
        spares: SparePool | None,
        monotonic_ns: Callable[[], int] = time.monotonic_ns,
        wall_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.backend = backend
        self.budget = budget
        self.code_holds = code_holds
        self.idle = idle  # the pool's idle instances, by revision: make_room may evict them
        self.busy = busy  # the pool's busy instances (deadlines.py's set)
        self.init_timeout_s = init_timeout_s
        self.spawner = spawner
        self.spares = spares
        self.monotonic_ns = monotonic_ns
        self.wall_ns = wall_ns
        self.stale: set[str] = set()  # revisions replaced while some of their calls ran or instances started
        self.starting: dict[str, tuple[str, int]] = {}  # revision -> (function, starts in progress)
        self._boosted: set[Instance] = set()  # started with a vCPU, their own CPU share not yet applied
        self.nursery: trio.Nursery | None = None  # the pool's, while it runs

    def running_nursery(self) -> trio.Nursery:
        """Where an instance's own tasks run (a custom runtime's Runtime API)."""
        if self.nursery is None:
            raise LambdaError("ServiceException", "The pool is not running")
        return self.nursery

    def mark_stale(self, name: str, live_revisions: AbstractSet[str]) -> None:
        """Function name changed: its busy and starting instances whose
        revision is not live are destroyed when their call or start ends."""
        for inst in self.busy:
            if inst.function == name and inst.revision not in live_revisions:
                self.stale.add(inst.revision)
        for revision, (function, _n) in self.starting.items():
            if function == name and revision not in live_revisions:
                self.stale.add(revision)

    # -- start -------------------------------------------------------------

    async def start(self, spec: FunctionSpec, initialization_type: str = "on-demand") -> tuple[Instance, InitOk | InitError]:
        # Counted while it runs, so that a change of the function can mark
        # an instance whose revision is replaced before it has started.
        revision = spec.record.revision_id
        function, n = self.starting.get(revision, (spec.record.name, 0))
        self.starting[revision] = (function, n + 1)
        try:
            return await self._start(spec, initialization_type)
        finally:
            function, n = self.starting[revision]
            if n > 1:
                self.starting[revision] = (function, n - 1)
            else:
                del self.starting[revision]

    async def _start(self, spec: FunctionSpec, initialization_type: str) -> tuple[Instance, InitOk | InitError]:
        rec = spec.record
        inst, started, started_ms = await self._sandbox_for(spec)
        sandbox = inst.sandbox
        inst.code_dir = spec.code_dir
        inst.layer_dirs = spec.layers
        inst.function = rec.name
        inst.memory_mb = rec.memory_size
        stream = log_stream_name(inst.id, spec.version)
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
        reply: InitOk | InitError | None = None
        self._boosted.add(inst)
        if self.nursery is not None:
            self.nursery.start_soon(self._limit_cpu_after, inst, CPU_BOOST_S)

        async def run_init() -> InitOk | InitError:
            if spec.custom or spec.launch is not None:
                return await runtime_api.launch(inst, init, self.running_nursery(), spec.launch)
            return await inst.init(init)

        try:
            with trio.move_on_after(self.init_timeout_s):
                try:
                    if spec.layers and extension_start.wanted(spec.layers):
                        figures = platform_events.Figures.of(spec, initialization_type)
                        reply = await extension_start.init_with_extensions(inst, init, figures, self.running_nursery(), run_init)
                    else:
                        reply = await run_init()
                except WorkerGone:
                    reply = None
            self._limit_cpu(inst)
        except BaseException:
            self._boosted.discard(inst)
            inst.sandbox.kill()
            with trio.CancelScope(shield=True):
                await self.destroy(inst)
            raise
        # Init Duration covers the runtime's start as well as the handler's
        # import, as AWS's does.
        inst.init_ns = self.monotonic_ns() - started
        dropped = 0
        if reply is None:
            output, dropped = inst.take_log()
            status = await self.destroy(inst)
            detail = "Runtime exited with error: " + describe_status(status)
            reply = InitError("Runtime.ExitError", function_errors.platform("Runtime.ExitError", "", detail), output)
        reply.log, reply.log_marks = capped(reply.log, reply.log_marks, None, rec, dropped)
        if spec.runtime_version:
            line = logs.init_start(
                spec.runtime_version,
                spec.runtime_mapping,
                logging_config=rec.logging_config,
                initialization_type=initialization_type,
                function_name=rec.name,
                version=spec.version,
            )
            reply.log, reply.log_marks = logs.prefixed(line, started_ms, reply.log, reply.log_marks)
        return inst, reply

    async def _sandbox_for(self, spec: FunctionSpec) -> tuple[Instance, int, int]:
        """A new instance of spec in its own sandbox (a spare, or spawned),
        with room made for it in the budget and its code held; and when its
        start began (monotonic ns, for Init Duration; wall ms, INIT_START's
        stamp): the sandbox's start is part of the init, as on AWS."""
        rec = spec.record
        # Held from here until destroy: the trees are mounted (or the cwd) of
        # the sandbox from spawn, or attach, to its end.
        paths = spec.code_paths()
        for path in paths:
            self.code_holds.hold(path)
        try:
            await self.budget.make_room(rec.memory_size, self.idle, self.destroy)
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
        started = self.monotonic_ns()
        started_ms = self.wall_ns() // 1_000_000
        try:
            inst = self._from_spare(spec)
            if inst is None:
                try:
                    if self.spawner is not None:
                        sandbox = await self.spawner.run(lambda: self.backend.spawn(sandbox_spec), on_abandoned=lambda sb: sb.destroy())
                    else:
                        sandbox = self.backend.spawn(sandbox_spec)
                except OSError as exc:
                    if exc.errno == errno.EAGAIN:  # the tasks cap, reached since make_room looked
                        raise admission.refusal("tasks", rec.memory_size, self.budget.usage()) from exc
                    raise LambdaError("ServiceException", f"Could not start a sandbox: {exc}") from exc
                inst = Instance(instance_id, sandbox, rec.revision_id)
        except BaseException:
            self.budget.released(rec.memory_size)  # the reservation make_room took
            for path in paths:
                self.code_holds.release(path)
            raise
        finally:
            self.budget.spawned()
        return inst, started, started_ms

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
            inst.to(DEAD)
            trio.lowlevel.notify_closing(inst.sock)
            if self.nursery is not None:
                self.nursery.start_soon(trio.to_thread.run_sync, inst.destroy)
            return None
        inst.revision = rec.revision_id
        return inst

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

    # -- end ---------------------------------------------------------------

    def retire(self, inst: Instance) -> None:
        """Kill now, destroy soon (from the pool's nursery)."""
        if inst.extensions is None:  # else destroy's SHUTDOWN comes first
            inst.sandbox.kill()
        if self.nursery is not None:
            self.nursery.start_soon(self.destroy, inst)

    async def destroy(self, inst: Instance) -> int | None:
        if inst.dead:
            return None
        inst.to(DEAD)
        self.budget.released(inst.memory_mb)
        if inst.revision in self.stale and inst.revision not in self.starting and not any(b.revision == inst.revision for b in self.busy):
            self.stale.discard(inst.revision)  # its last instance: nothing left to mark
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


def network_of(rec: FunctionRecord) -> str:
    """A function's network: "none" (loopback only, the default) or
    "egress" (NAT to the outside), chosen with the lambdalet:network tag."""
    return rec.tags.get(NETWORK_TAG, "none")
