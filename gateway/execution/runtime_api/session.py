"""A custom runtime's instance, as the pool drives it.

launch() turns a fresh worker (spawned, or a spare) into the function's
bootstrap (runtime/bootstrap.py does the worker's side) and waits for init
to end: the runtime's first `next` (InitOk), its init/error (InitError),
an exec that failed (Runtime.InvalidEntrypoint) or its exit (WorkerGone).
The instance then answers Instance.call() through its RuntimeApiSession.

What is billed is the gateway's own measure: a call's Duration runs from
the moment `next` hands out its event to the moment its answer has been
read (Instance.call_started_ns and last_heard_ns, which the pool reads);
Init Duration ends at the first `next`; Max Memory Used is the cgroup's
peak over the call. Nothing the runtime says about itself is used.
"""

from __future__ import annotations

import json
import os
import random
import socket
import time

import trio

from lambdalet.gateway.execution.instance import Instance, WorkerGone
from lambdalet.gateway.http import rawio
from lambdalet.runtime.protocol import Bootstrap, FrameError, Init, InitError, InitOk, Invoke, Launched, Result, encode

from .. import languages
from ..languages import Launch
from . import handover, state
from .outputs import Answered, InitDone, InitFailed, Send, StreamData, StreamOpened
from .server import RuntimeApiServer

HOST = "127.0.0.1"
PORT = 9001
SANDBOX_TASK_ROOT = "/var/task"
LAYER_BOOTSTRAP = "/opt/bootstrap"


def bootstrap_paths(task_root: str) -> list[str]:
    """Where Lambda looks for a bootstrap, in order: the code's root, then
    the layers'. Layers exist only inside a sandbox."""
    own = f"{task_root}/bootstrap"
    return [own, LAYER_BOOTSTRAP] if task_root == SANDBOX_TASK_ROOT else [own]


def trace_id() -> str:
    """A fresh X-Ray trace header for one call (Root, Parent, Sampled=0).
    Unique, not secret: no system call for randomness on every call."""
    bits = f"{random.getrandbits(160):040x}"
    return f"Root=1-{int(time.time()):08x}-{bits[:24]};Parent={bits[24:]};Sampled=0"


def api_port(task_root: str) -> int:
    """Lambda's port inside a sandbox, which has a network namespace of its
    own; any free port for a plain process (`serve --sandbox process`),
    which shares the host's."""
    return PORT if task_root == SANDBOX_TASK_ROOT else 0


def header_json(text: str | None) -> str | None:
    """A caller's JSON (the client context) as one header line: compact and
    ASCII, whatever spacing or characters it came with."""
    if not text:
        return None
    try:
        return json.dumps(json.loads(text), separators=(",", ":"))
    except ValueError:
        return None


class Prelaunched:
    """A language runtime exec'd before its function was known (a spare):
    its Runtime API socket and log, waiting for launch() to serve them."""

    __slots__ = ("port", "listener", "answers")

    def __init__(self, port: int, listener: socket.socket | None, answers: list) -> None:
        self.port = port
        self.listener = listener
        self.answers = answers  # what the worker sent after Launched

    def close(self) -> None:
        if self.listener is not None:
            self.listener.close()


async def exec_runtime(inst: Instance, task_root: str, env: dict[str, str], language: Launch | None) -> Prelaunched | InitError:
    """Has inst's worker exec the bootstrap (or a language's runtime, with
    env as its environment until its configuration comes). Raises
    WorkerGone if the worker is gone."""
    # With extensions the API's socket is open already (extension_start.py).
    host = inst.extensions
    port = api_port(task_root) if host is None else host.port
    if language is None:
        request = Bootstrap(bootstrap_paths(task_root), dict(env), task_root, HOST, port, api_open=host is not None)
    else:
        request = Bootstrap(
            [language.program],
            languages.exec_env(language, env),
            task_root,
            HOST,
            port,
            argv=language.argv,
            stdin=True,
            api_open=host is not None,
        )
    try:
        await rawio.send_all(inst.sock, encode(request))
    except OSError:
        raise WorkerGone(delivered=False) from None
    answers, fds = await handover.read_answers(inst)
    reply = answers[0]
    if isinstance(reply, InitError):
        handover.close_all(fds)
        return reply
    if not isinstance(reply, Launched):
        handover.close_all(fds)
        raise WorkerGone()
    if host is not None:
        listener, log_fd = None, handover.log_fd_of(fds)
    else:
        listener, log_fd = handover.listener_and_log(fds)
    if inst.log_fd is not None:
        os.close(inst.log_fd)
    inst.log_fd = log_fd
    return Prelaunched(reply.port, listener, answers[1:])


async def prelaunch(inst: Instance, task_root: str, language: Launch) -> None:
    """Starts a language runtime in a spare sandbox, ahead of its function:
    it loads itself, then waits for its configuration (languages.py)."""
    env = {"LANG": "en_US.UTF-8", "TZ": ":UTC", "LAMBDA_TASK_ROOT": task_root, "LAMBDA_RUNTIME_DIR": "/var/runtime"}
    started = await exec_runtime(inst, task_root, env, language)
    if not isinstance(started, Prelaunched):
        raise WorkerGone()
    inst.prelaunched = started


async def launch(inst: Instance, init: Init, nursery: trio.Nursery, language: Launch | None = None) -> InitOk | InitError:
    """Execs the bootstrap (or a language's runtime) in inst's sandbox, or
    takes the runtime a spare started already, serves its Runtime API from
    nursery, and returns once its init is over. Raises WorkerGone if the
    runtime exits first."""
    started = inst.prelaunched
    inst.prelaunched = None
    if started is None:
        executed = await exec_runtime(inst, init.task_root, init.env, language)
        if isinstance(executed, InitError):
            return executed
        started = executed
    listener, answers = started.listener, started.answers
    pidfd = inst.sandbox.pidfd
    own_pidfd = pidfd < 0
    if own_pidfd:
        # A plain-process sandbox: the worker is this process's child and
        # not yet reaped, so its pid is still its own.
        pidfd = os.pidfd_open(inst.sandbox.pid)
    session = RuntimeApiSession(inst, listener, pidfd, own_pidfd, host=inst.extensions)
    session.control_messages(answers)
    inst.runtime_api = session
    inst.watch_exit_only(pidfd)
    await nursery.start(session.run)
    if language is not None:
        # The runtime waits for its configuration on its fd 0, the channel.
        try:
            await rawio.send_all(inst.sock, languages.config_line(language, init.env, f"{HOST}:{started.port}"))
        except OSError:
            pass  # it has gone: wait_init() says so
    return await session.wait_init()


class RuntimeApiSession:
    """One custom runtime's API: the state machine, its server, and the
    call in flight."""

    def __init__(self, inst: Instance, listener: socket.socket | None, pidfd: int, own_pidfd: bool, host=None) -> None:
        """host: the instance's ExtensionHost (extension_host.py), whose
        server serves this API too, on the one port; listener is then None."""
        self.inst = inst
        self.api = state.RuntimeApi()
        self._owns_server = host is None
        if host is None:
            assert listener is not None
            self.server = RuntimeApiServer(listener, self.api, self._sink)
        else:
            self.server = host.server
            host.sandbox_api.runtime = self.api
            host.runtime_sink = self._sink
        self._pidfd = pidfd
        self._own_pidfd = own_pidfd
        self._scope = trio.CancelScope()
        self._init: object = None  # InitDone, InitFailed, or the worker's InitError (its exec failed)
        self._request_id = ""  # the call in flight
        self._answer: Answered | None = None
        self._handed_out = False
        self._stream = None  # the call in flight's CallStream, when its caller streams
        self.gone = False  # the runtime's process has exited (or the session was closed)
        self._closed = False

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        with self._scope:
            async with trio.open_nursery() as nursery:
                if self._owns_server:
                    await nursery.start(self.server.run)
                nursery.start_soon(self._watch_exit)
                nursery.start_soon(self._watch_control)
                task_status.started()

    async def _watch_exit(self) -> None:
        try:
            await trio.lowlevel.wait_readable(self._pidfd)
        except trio.ClosedResourceError:
            return
        self._read_control_nowait()  # an exec failure reported just before the exit
        self._gone()

    async def _watch_control(self) -> None:
        """Until the exec closes it, the channel may still bring the
        worker's InitError: its exec of the bootstrap failed."""
        sock = self.inst.sock
        while True:
            try:
                data = await rawio.recv(sock, 65536)
            except (OSError, trio.ClosedResourceError):
                return
            if not data or not self._control_data(data):
                return

    def _read_control_nowait(self) -> None:
        sock = self.inst.sock
        while True:
            try:
                data = sock.recv(65536)
            except (BlockingIOError, OSError):
                return
            if not data or not self._control_data(data):
                return

    def _control_data(self, data: bytes) -> bool:
        try:
            msgs = self.inst.reader.feed(data)
        except FrameError:
            return False
        self.control_messages(msgs)
        return True

    def control_messages(self, msgs: list) -> None:
        for msg in msgs:
            if isinstance(msg, InitError) and self._init is None:
                self._init = msg
                self.server.wake()

    def _gone(self) -> None:
        self.gone = True
        self.server.wake()

    def _sink(self, out: object, now_ns: int) -> None:
        if isinstance(out, Answered):
            if out.request_id == self._request_id and self._answer is None:
                self.inst.last_heard_ns = now_ns
                self._answer = out
                self.server.wake()
        elif isinstance(out, Send):  # a call's event, about to go out
            if out.delivers == self._request_id:
                self.inst.call_started_ns = now_ns
                self._handed_out = True
        elif isinstance(out, (InitDone, InitFailed)):
            if self._init is None:
                self._init = out
                self.server.wake()
        elif isinstance(out, StreamData):
            # Kept whole by state.py too, for the outcome (and a caller
            # that does not stream).
            if out.request_id == self._request_id and self._stream is not None:
                self._stream.feed(out.data)
        elif isinstance(out, StreamOpened):
            if out.request_id == self._request_id and self._stream is not None:
                self._stream.open(out.content_type)

    async def wait_init(self) -> InitOk | InitError:
        await self.server.wait(lambda: self._init is not None or self.gone)
        result = self._init
        if result is None:
            raise WorkerGone()  # its output stays for the pool to read
        log, _dropped = self.inst.take_log()
        if isinstance(result, InitDone):
            return InitOk(log)
        if isinstance(result, InitFailed):
            return InitError(result.error_type, result.payload, log)
        assert isinstance(result, InitError)  # the worker's: its exec failed
        result.log = log + result.log
        return result

    async def call(self, invoke: Invoke, stream=None) -> Result:
        """stream: a CallStream (execution/call_stream.py) that gets a
        streamed answer as it arrives."""
        inst = self.inst
        if self.gone:
            raise WorkerGone(delivered=False)
        inst.sandbox.reset_peak_memory()
        inst.call_started_ns = inst.last_heard_ns = time.monotonic_ns()
        self._request_id = invoke.request_id
        self._answer = None
        self._handed_out = False
        self._stream = stream
        call = state.Invocation(
            invoke.request_id, invoke.payload, invoke.deadline_ms, invoke.invoked_arn, trace_id(), header_json(invoke.client_context)
        )
        try:
            await self.server.serve_call(self.api.invoke(call), lambda: self._answer is not None or self.gone)
        finally:
            self._request_id = ""
            self._stream = None
        answer = self._answer
        if answer is None:
            inst.last_heard_ns = time.monotonic_ns()
            raise WorkerGone(delivered=self._handed_out)
        return Result(answer.request_id, answer.payload, answer.error_type, self._take_log())

    def _take_log(self) -> bytes:
        """What the runtime wrote since the last call: usually nothing, at
        the cost of one fstat."""
        fd = self.inst.log_fd
        try:
            if fd is None or not os.fstat(fd).st_size:
                return b""
        except OSError:
            return b""
        return self.inst.take_log()[0]

    def close(self) -> None:
        """On the event loop, before the sandbox is destroyed."""
        if self._closed:
            return
        self._closed = True
        if self._owns_server:
            self.server.close()
        trio.lowlevel.notify_closing(self._pidfd)
        self._scope.cancel()
        if self._own_pidfd:
            os.close(self._pidfd)
        self._gone()
