"""One warm worker as the gateway sees it: a sandbox plus its control channel.

Everything that arrives on the channel is untrusted: the function runs in
the worker's process and can write frames itself. So the gateway keeps its
own clock on each call (call_started_ns to last_heard_ns, monotonic), and
refuses a frame whose header declares more than an answer may hold before
reading any of it.

An instance's life is a short state machine (State, TRANSITIONS): STARTING
(spawned or handed a spare, init under way) -> IDLE (initialised, waiting in
the pool) <-> BUSY (running one call) -> DEAD (killed, being or already
destroyed; never used again). Whether its sandbox is frozen is kept apart
(`frozen`): an idle instance may be frozen, and so may one that is being
destroyed, whose extensions are thawed to be told SHUTDOWN.
"""

from __future__ import annotations

import enum
import os
import select
import socket
import sys
import time
from typing import TYPE_CHECKING

import trio

from lambdalet.runtime import errors as function_errors
from lambdalet.runtime.protocol import (
    MAX_CALL_LOG,
    FrameError,
    FrameReader,
    FrameTooLarge,
    Init,
    InitError,
    InitOk,
    Invoke,
    Ready,
    Result,
    encode,
)
from lambdalet.sandbox.spec import Sandbox

from ..http import rawio
from .log_memfd import is_log_memfd, kind_of

if TYPE_CHECKING:
    from .runtime_api.extension_host import ExtensionHost
    from .runtime_api.session import Prelaunched, RuntimeApiSession


class WorkerGone(Exception):
    """The worker closed its channel: it exited, crashed or was killed.
    delivered is False when the request never reached it (the send failed):
    the function cannot have seen that call."""

    def __init__(self, delivered: bool = True) -> None:
        super().__init__()
        self.delivered = delivered


# What an idle worker's channel or its sandbox's pidfd report once it has
# gone: a hang-up, or bytes nobody asked for (a protocol breach, as bad).
_GONE = select.POLLIN | select.POLLPRI | select.POLLRDHUP | select.POLLHUP | select.POLLERR


class AnswerTooLarge(WorkerGone):
    """The worker declared a frame larger than any answer may be; it was
    refused from its header, unread, and the worker can no longer be used."""


class State(enum.Enum):
    STARTING = "starting"
    IDLE = "idle"
    BUSY = "busy"
    DEAD = "dead"


STARTING, IDLE, BUSY, DEAD = State.STARTING, State.IDLE, State.BUSY, State.DEAD

# Every legal move; anything else is a bug in the pool and raises.
TRANSITIONS: dict[State, frozenset[State]] = {
    STARTING: frozenset({IDLE, BUSY, DEAD}),  # provisioned ahead of calls, or started for one
    IDLE: frozenset({BUSY, DEAD}),
    BUSY: frozenset({IDLE, DEAD}),
    DEAD: frozenset(),
}


class IllegalTransition(RuntimeError):
    pass


class Instance:
    __slots__ = (
        "id",
        "sandbox",
        "revision",
        "sock",
        "reader",
        "log_fd",
        "init_ns",
        "used",
        "last_used",
        "state",
        "log_stream",
        "function",
        "memory_mb",
        "provisioned",
        "deadline",
        "timed_out",
        "_watch",
        "code_dir",
        "frozen",
        "call_started_ns",
        "last_heard_ns",
        "runtime_api",
        "prelaunched",
        "layer_dirs",
        "extensions",
    )

    def __init__(self, instance_id: str, sandbox: Sandbox, revision: str) -> None:
        self.id = instance_id
        self.sandbox = sandbox
        self.revision = revision
        self.sock = sandbox.control
        self.sock.setblocking(False)
        self.reader = FrameReader("from_worker")
        self.log_fd: int | None = None
        self.init_ns = 0
        self.used = False  # True after its first call: REPORT shows Init Duration only before
        self.last_used = 0.0
        self.state = STARTING
        self.log_stream = ""
        self.function = ""
        self.memory_mb = 0
        self.provisioned = False  # kept initialised by provisioned concurrency
        self.deadline = 0.0  # trio clock time the current call must end by
        self.timed_out = False
        # The gateway's clock on the current call: when its Invoke went out,
        # and when the worker was last heard from (its answer, or its EOF).
        self.call_started_ns = 0
        self.last_heard_ns = 0
        self.code_dir = ""  # the tree the pool holds for this instance, until destroyed
        self.layer_dirs: tuple[str, ...] = ()  # its layers' trees, held likewise
        self.frozen = False  # stopped by the pool's IdleFreezer; thawed before its next call
        # A custom runtime's Runtime API (gateway/execution/runtime_api/
        # session.py) once its bootstrap is launched; None for Python.
        self.runtime_api: RuntimeApiSession | None = None
        # A language runtime a spare sandbox started before its function was
        # known (runtime_api/session.py's Prelaunched), until launch() takes it.
        self.prelaunched: Prelaunched | None = None
        # The external extensions its layers brought (runtime_api/
        # extension_host.py), once started; None without any.
        self.extensions: ExtensionHost | None = None
        # One poll(2) over the channel and PID 1's pidfd tells whether an
        # idle worker has gone; the set is built once per instance.
        self._watch = select.poll()
        self._watch.register(self.sock, _GONE)
        pidfd = sandbox.pidfd
        if pidfd >= 0:
            self._watch.register(pidfd, select.POLLIN)

    def to(self, state: State) -> None:
        """Moves to state, if TRANSITIONS allows it from the current one."""
        if state not in TRANSITIONS[self.state]:
            raise IllegalTransition(f"instance {self.id}: {self.state.value} -> {state.value}")
        self.state = state

    @property
    def busy(self) -> bool:
        return self.state is BUSY

    @property
    def dead(self) -> bool:
        return self.state is DEAD

    def watch_exit_only(self, pidfd: int) -> None:
        """From now on only the process's end says the worker has gone: a
        custom runtime's channel closes when the worker execs its bootstrap."""
        self._watch = select.poll()
        self._watch.register(pidfd, select.POLLIN)

    def exited(self) -> bool:
        """True once the worker is gone (or broke the protocol) while idle:
        one non-blocking poll(2), cheap enough to make before every call.
        An environment an extension failed is gone too (it is being killed)."""
        return bool(self._watch.poll(0)) or (self.extensions is not None and self.extensions.closed)

    async def wait_ready(self) -> None:
        """Waits for the runtime's Ready frame (spare sandboxes)."""
        while True:
            data = await self._recv(rawio.recv)
            if not data:
                raise WorkerGone()
            for msg in self._feed(data):
                if isinstance(msg, Ready):
                    return
                raise WorkerGone()

    async def init(self, init: Init) -> InitOk | InitError:
        """The worker's answer to init, or the platform's InitError when the
        fd attached to it is not the log memfd (the caller then destroys the
        instance, as after any failed init)."""
        await self._send(encode(init))
        # The worker attaches its log memfd to the init reply (SCM_RIGHTS).
        refused: str | None = None
        while True:
            try:
                data, ancdata, _flags, _addr = await rawio.recvmsg(self.sock, 65536, socket.CMSG_SPACE(4))
            except OSError:  # ECONNRESET: it died with our request unread
                raise WorkerGone() from None
            for level, kind, payload in ancdata:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds = [
                        int.from_bytes(payload[i : i + 4], sys.byteorder, signed=True) for i in range(0, len(payload) - len(payload) % 4, 4)
                    ]
                    for fd in fds:
                        if self.log_fd is None and refused is None and is_log_memfd(fd):
                            self.log_fd = fd
                        else:
                            refused = refused or kind_of(fd)
                            os.close(fd)
            if not data:
                raise WorkerGone()
            for reply in self._feed(data):
                if isinstance(reply, Ready):
                    continue
                if not isinstance(reply, (InitOk, InitError)):
                    raise WorkerGone()
                if refused is not None:
                    return _log_fd_refused(refused, reply)
                return reply

    async def call(self, invoke: Invoke, stream=None) -> Result:
        """Sends one call and returns its answer. The call's duration is
        last_heard_ns - call_started_ns, whatever the answer claims.
        stream: where a streamed answer goes as it arrives (a runtime over
        the Runtime API; the Python worker answers whole)."""
        if self.runtime_api is not None:
            return await self.runtime_api.call(invoke, stream)
        frame = encode(invoke)
        self.sandbox.reset_peak_memory()
        self.call_started_ns = time.monotonic_ns()
        await self._send(frame)
        # The worker takes tens of microseconds at least to answer: wait
        # before the first read instead of trying one that must fail.
        receive = rawio.recv_after_wait
        while True:
            data = await self._recv(receive)
            receive = rawio.recv
            if not data:
                raise WorkerGone()
            msgs = self._feed(data)
            if msgs:
                reply = msgs[0]
                if not isinstance(reply, Result) or reply.request_id != invoke.request_id:
                    raise WorkerGone()
                return reply

    def _feed(self, data: bytes) -> list:
        # Garbage on the channel means the worker (or the user code that owns
        # its process) broke the protocol: the instance is finished, not the server.
        try:
            return self.reader.feed(data)
        except FrameTooLarge:
            raise AnswerTooLarge() from None
        except FrameError:
            raise WorkerGone() from None

    async def _recv(self, receive) -> bytes:
        try:
            data = await receive(self.sock, 65536)  # 1 MiB would mmap a buffer per call
        except OSError:  # ECONNRESET: it died with our request unread
            self.last_heard_ns = time.monotonic_ns()
            raise WorkerGone() from None
        self.last_heard_ns = time.monotonic_ns()
        return data

    async def _send(self, data: bytes) -> None:
        try:
            await rawio.send_all(self.sock, data)
        except OSError:
            # EPIPE or ECONNRESET: gone before the request reached it. (A
            # partial send that then fails may have been read in part; the
            # worker cannot act on half a frame.)
            raise WorkerGone(delivered=False) from None

    def take_log(self) -> tuple[bytes, int]:
        """What the worker wrote since its last call, read from our memfd
        copy, at most its last MAX_CALL_LOG bytes, and how many bytes before
        those were dropped. Used after a kill, when the worker can no longer
        send it."""
        if self.log_fd is None:
            return b"", 0
        try:
            size = os.fstat(self.log_fd).st_size
            start = max(0, size - MAX_CALL_LOG)
            data = os.pread(self.log_fd, size - start, start)
            os.ftruncate(self.log_fd, 0)
            return data, start
        except OSError:
            return b"", 0

    def closing(self) -> None:
        """On the event loop, before destroy() runs on a thread: wakes (with
        an error) whatever waits on this instance's sockets."""
        trio.lowlevel.notify_closing(self.sock)
        if self.runtime_api is not None:
            self.runtime_api.close()
        if self.extensions is not None:
            self.extensions.close()

    def destroy(self) -> int | None:
        """Blocking: kill and reap. Call from a thread."""
        status = self.sandbox.destroy()
        if self.prelaunched is not None:
            self.prelaunched.close()
            self.prelaunched = None
        if self.log_fd is not None:
            os.close(self.log_fd)
            self.log_fd = None
        if self.extensions is not None:
            self.extensions.release_fds()
        return status


def _log_fd_refused(kind: str, reply: InitOk | InitError) -> InitError:
    """The init failure when the worker attached kind instead of its log
    memfd: the function's own process sends the reply, so this is its doing."""
    detail = f"Runtime handed over {kind} where its log memfd belongs"
    return InitError(
        "Runtime.InvalidLogDescriptor", function_errors.platform("Runtime.InvalidLogDescriptor", "", detail), reply.log, reply.log_marks
    )
