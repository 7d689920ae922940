"""An execution environment's external extensions, as the pool drives them.

extension_start.py starts them and builds their ExtensionHost, which
serves the Extensions and Telemetry APIs on the sandbox's API socket (the
Runtime API too, for a custom runtime: one port, dispatch.py), watches
each extension's exit, and ends init once every extension has asked for
its first event (finish_init()).

A call (call()) sends INVOKE to the extensions registered for it along
with the call to the runtime, and ends for the sandbox only once every one
of them has asked for its next event: that time is part of the call's
Duration and billed, as AWS bills it (and the answer goes back then).
When the environment is reclaimed, shutdown() sends SHUTDOWN and gives
the extensions SHUTDOWN_LIMIT_S to ask for their next event (or exit).

An extension that exits outside SHUTDOWN has crashed: its call (or init)
fails with Extension.Crash and the environment is not reused;
init/error and exit/error end it likewise (Extension.InitError,
Extension.ExitError). Everything the extensions send is untrusted:
state.py-style caps in extensions.py, the server's connection caps, and
every wait here bounded by the function's own limits.

Telemetry: platform events (platform_events.py), the runtime's log lines
(function) and the extensions' (extension) go to each subscriber's buffer
(telemetry_delivery.py).
"""

from __future__ import annotations

import errno
import os
import select
import socket
import time
from collections.abc import Callable

import trio

from lambdalet.gateway.execution.instance import Instance
from lambdalet.runtime import errors as function_errors
from lambdalet.runtime.protocol import MAX_CALL_LOG, InitError, InitOk, Invoke, Result

from . import dispatch, platform_events, telemetry_delivery
from . import extensions as ex
from . import telemetry as tm
from .outputs import PROGRESS, AgentFailed, Registered, Subscribed
from .platform_events import Figures, now_ms
from .server import RuntimeApiServer
from .session import trace_id

SHUTDOWN_LIMIT_S = 2.0  # AWS's, with one or more external extensions registered
MAX_EXTENSION_LOG = MAX_CALL_LOG  # what the extensions wrote since it was last read, at most


class ExtensionHost:
    def __init__(
        self,
        inst: Instance,
        listener: socket.socket,
        port: int,
        log_fd: int,
        pidfds: dict[str, int],
        failed: list[list[str]],
        figures: Figures,
    ) -> None:
        self.inst = inst
        self.port = port
        self.figures = figures
        self.api = ex.ExtensionsApi(
            list(pidfds),
            function_name=figures.function_name,
            function_version=figures.version,
            handler=figures.handler,
            account_id=figures.account_id,
        )
        self.sandbox_api = dispatch.SandboxApi(None, self.api)
        self.server = RuntimeApiServer(listener, self.sandbox_api, self._sink)
        self.runtime_sink: Callable[[object, int], None] | None = None  # a custom runtime's session's
        # Deliveries enter the sandbox's network namespace by a pidfd of its
        # own (not by pid, which may be another sandbox's once this one is
        # gone); a plain-process sandbox shares the host's network.
        namespaced = inst.sandbox.task_root == "/var/task"
        self._netns_pidfd = os.dup(inst.sandbox.pidfd) if namespaced and inst.sandbox.pidfd >= 0 else -1
        self.deliveries = telemetry_delivery.Deliveries(self._connect if namespaced else lambda p: telemetry_delivery.connect_in(None, p))
        self.log_fd = log_fd
        self._pidfds = pidfds
        self.start_failures = failed
        self.crashed: list[str] = []  # exited outside SHUTDOWN
        self.exited: set[str] = set()
        self.shutting_down = False
        self.shutdown_log = b""
        self._running = False  # its tasks run (not yet cancelled with the pool)
        self.closed = False
        self._scope = trio.CancelScope()
        self._trace = ""
        self._request_id = ""

    # -- tasks -------------------------------------------------------------

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        try:
            with self._scope:
                async with trio.open_nursery() as nursery:
                    await nursery.start(self.server.run)
                    await nursery.start(self.deliveries.run)
                    for name, pidfd in self._pidfds.items():
                        nursery.start_soon(self._watch_exit, name, pidfd)
                    self._running = True
                    task_status.started()
        finally:
            self._running = False

    async def _watch_exit(self, name: str, pidfd: int) -> None:
        try:
            await trio.lowlevel.wait_readable(pidfd)
        except trio.ClosedResourceError:
            return
        self.exited.add(name)
        if not self.shutting_down and not self.closed:
            self.crashed.append(name)
        self.api.forget(name)
        self.server.wake()

    def _sink(self, out: object, now_ns: int) -> None:
        if out is PROGRESS:
            self.server.wake()
        elif isinstance(out, Registered):
            self.deliveries.emit([tm.extension(now_ms(), out.name, out.events)])
        elif isinstance(out, Subscribed):
            self.deliveries.subscribe(out.name, out.subscription)
            self.deliveries.emit([tm.subscription(now_ms(), out.name, out.subscription.types)])
        elif isinstance(out, AgentFailed):
            self.server.wake()
        elif self.runtime_sink is not None:
            self.runtime_sink(out, now_ns)

    # -- init --------------------------------------------------------------

    def failure(self) -> tuple[str, str] | None:
        """(error type, message) once an extension has failed the environment."""
        if self.crashed:
            return ex.CRASH, f"Extension {self.crashed[0]} exited before it was done"
        failure = self.api.failure
        if failure is not None:
            return failure.error_type, f"Extension {failure.name} reported {failure.reported}"
        return None

    async def wait_registered(self) -> None:
        await self.server.wait(lambda: self.api.registered() or self.failure() is not None or self.closed)

    async def finish_init(self, reply: InitOk | InitError, started_ms: int, init_ns: int) -> InitOk | InitError:
        """The runtime's init is over: wait for the extensions' first
        `next`, then close registration and subscriptions."""
        self.deliveries.emit(platform_events.init_runtime_done(self.figures, reply))
        if isinstance(reply, InitOk):
            await self.server.wait(lambda: self.api.ready() or self.failure() is not None or self.closed)
        self.api.close_init()
        reply.log += self.emit_extension_log()
        failure = self.failure()
        if isinstance(reply, InitOk) and failure is not None:
            reply = InitError(failure[0], function_errors.platform(failure[0], "", failure[1]), reply.log, reply.log_marks)
        self.deliveries.emit([platform_events.init_report(self.figures, reply, time.monotonic_ns() - init_ns)])
        self.deliveries.init_over()
        await self._pause()
        return reply

    # -- calls -------------------------------------------------------------

    async def call(self, invoke: Invoke, stream=None) -> Result:
        """inst.call() with the extensions: INVOKE to them, and the call
        over for the sandbox once each has asked for its next event."""
        inst = self.inst
        self.deliveries.set_active(True)
        await self.deliveries.flush()  # what the last call left (its platform.report)
        self._trace = trace_id()
        self._request_id = invoke.request_id
        listening = self.deliveries.listening()  # else no event is built: nobody subscribed
        if listening:
            self.deliveries.emit([tm.start(now_ms(), invoke.request_id, self.figures.version, self._trace)])
        # The call is billed from INVOKE's delivery: an extension may start
        # work on it before the runtime is sent the call (inst.call stamps
        # its own start, which the runtime's done event keeps).
        invoked_ns = time.monotonic_ns()
        await self.server.apply(self.api.invoke(invoke.request_id, invoke.deadline_ms, invoke.invoked_arn, self._trace))
        started_ms = now_ms()
        result = await inst.call(invoke, stream)  # WorkerGone: the pool kills the sandbox
        if listening:
            runtime_ns = max(0, inst.last_heard_ns - inst.call_started_ns)
            self.deliveries.emit(platform_events.runtime_done(self.figures, invoke, result, started_ms, runtime_ns, self._trace))
        # The pool's deadline watcher kills the sandbox at the Timeout: an
        # extension that never asks again ends the wait that way.
        await self.server.serve_call([], lambda: self.api.ready() or bool(self.crashed) or self.api.failure is not None or self.closed)
        inst.last_heard_ns = max(inst.last_heard_ns, time.monotonic_ns())
        inst.call_started_ns = min(inst.call_started_ns, invoked_ns)
        result.log = result.log + self.emit_extension_log()
        failure = self.failure()
        if failure is not None and not inst.timed_out:
            # The environment cannot be trusted to serve another call.
            inst.sandbox.kill()
            self.closed = True
            error_type, message = failure
            result = Result(
                invoke.request_id,
                function_errors.platform(error_type, invoke.request_id, message),
                error_type,
                result.log + f"RequestId: {invoke.request_id} Error: {message}\n{error_type}\n".encode(),
            )
        else:
            await self._pause()
        return result

    def reported(self, outcome, granularity_ms: int) -> None:
        """The call's outcome (pool.CallOutcome) as the pool billed it:
        platform.report, delivered when the sandbox next runs."""
        if not self.deliveries.listening():
            return
        self.deliveries.emit([platform_events.report(self.figures, outcome, granularity_ms, self._trace or trace_id())])

    async def _pause(self) -> None:
        """The sandbox is about to be frozen: let the POSTs under way end."""
        self.deliveries.set_active(False)
        await self.deliveries.quiet()

    # -- the end -------------------------------------------------------------

    def alive(self) -> bool:
        """Some extension still runs (its pidfd is not readable yet)."""
        if self.closed or not self._running or not self._pidfds:
            return False
        poll = select.poll()
        for pidfd in self._pidfds.values():
            poll.register(pidfd, select.POLLIN)
        return len(poll.poll(0)) < len(self._pidfds)

    async def shutdown(self, reason: str = "spindown") -> None:
        """SHUTDOWN to the extensions registered for it, with
        SHUTDOWN_LIMIT_S to finish (ask for their next event, or exit);
        the pool kills the sandbox after."""
        if self.shutting_down or self.inst.timed_out or not self.alive():
            return
        self.shutting_down = True
        if self.inst.frozen:
            try:
                self.inst.sandbox.thaw()
            except OSError:
                return  # its cgroup is gone: nothing runs to be told
            self.inst.frozen = False
        deadline_ms = now_ms() + int(SHUTDOWN_LIMIT_S * 1000)
        with trio.move_on_after(SHUTDOWN_LIMIT_S):
            self.deliveries.set_active(True)
            await self.deliveries.flush()
            outputs = self.api.shutdown(reason, deadline_ms)
            await self.server.apply(outputs)
            await self.server.wait(lambda: self.api.ready() or len(self.exited) == len(self._pidfds) or self.closed)
        # What they wrote while shutting down (the log dies with the sandbox).
        self.shutdown_log = self.take_extension_log()

    def take_extension_log(self) -> bytes:
        try:
            size = os.fstat(self.log_fd).st_size
            if not size:
                return b""
            start = max(0, size - MAX_EXTENSION_LOG)
            data = os.pread(self.log_fd, size - start, start)
            os.ftruncate(self.log_fd, 0)
            return data
        except OSError:
            return b""

    def emit_extension_log(self) -> bytes:
        text = self.take_extension_log()
        if text and self.deliveries.listening():
            self.deliveries.emit(tm.log_lines("extension", text, [], now_ms(), self.figures.json_logs))
        return text

    def close(self) -> None:
        """On the event loop, before the sandbox is destroyed."""
        if self._scope.cancel_called:
            return
        self.closed = True
        self.server.close()
        self.deliveries.close()
        for pidfd in self._pidfds.values():
            trio.lowlevel.notify_closing(pidfd)
        self._scope.cancel()

    async def _connect(self, port: int) -> trio.socket.SocketType:
        # closed is set on the event loop before release_fds may close the
        # pidfd, so while it is unset the fd is ours to duplicate.
        if self.closed or self._netns_pidfd < 0:
            raise OSError(errno.ESRCH, "the sandbox is gone")
        return await telemetry_delivery.connect_in(self._netns_pidfd, port)

    def release_fds(self) -> None:
        """After the sandbox is gone (from destroy, on any thread)."""
        if self._netns_pidfd >= 0:
            os.close(self._netns_pidfd)
            self._netns_pidfd = -1
        for pidfd in self._pidfds.values():
            os.close(pidfd)
        self._pidfds = {}
        if self.log_fd >= 0:
            os.close(self.log_fd)
            self.log_fd = -1
