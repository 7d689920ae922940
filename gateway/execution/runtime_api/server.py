"""The Runtime API's sockets, served from the gateway's trio loop.

One RuntimeApiServer per custom-runtime sandbox: it accepts on the
listening socket that lives in the sandbox's network namespace, reads each
connection with wire.RequestReader, feeds state.RuntimeApi, and carries
out what comes back: bytes are sent here, everything else goes to a sink
(session.py). This is the only module that touches the runtime's sockets.

Who reads a connection. A runtime client keeps one connection and
alternates on it: `GET next` waits, the event goes out, the answer comes
back, the next `GET next` follows. The task running a call does that
reading itself (serve_call), as the Python fast path waits on its
worker's channel, so a call wakes no task but its own: the `GET next`
that follows an answer stays in the socket until the next call reads it.
Connections at rest ("free") sit in a private epoll set with an eventfd
(connections.py's FreeSet), and the call waits on that set's fd: any
free connection (a second one too) or a wake-up from another task
(wake()) ends the wait. Only what strays from the pattern (a new
connection, requests while no call runs, init) gets a task of its own,
which gives its connection back once a `next` waits on it.

Everything a runtime sends is untrusted: heads are parsed strictly, bodies
are bounded by state.py, connections are capped per sandbox, and a
connection that breaks HTTP is closed.
"""

from __future__ import annotations

import errno
import logging
import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import trio

from lambdalet.gateway.http import rawio
from lambdalet.gateway.http.http1 import ProtocolError

from . import state, wire
from .connections import CALLER, FREE, RECV, TASK, Conn, FreeSet, linger
from .outputs import Close, Send

if TYPE_CHECKING:
    from .dispatch import SandboxApi

log = logging.getLogger("lambdalet.runtime_api")

MAX_CONNECTIONS = 32  # per sandbox; runtime clients use one or two


class RuntimeApiServer:
    def __init__(self, listener: socket.socket, api: state.RuntimeApi | SandboxApi, sink: Callable[[object, int], None]) -> None:
        """sink(output, now_ns) receives every output that is not sent here
        (InitDone, InitFailed, Answered, StreamData) with the monotonic time
        the bytes that caused it were read, and each Send that hands out a
        call's event, with the time just before it is sent."""
        listener.setblocking(False)
        self.listener = listener
        self.api = api
        self._sink = sink
        self._conns: dict[int, Conn] = {}
        self._by_fd: dict[int, Conn] = {}
        self._next_id = 0
        self._nursery: trio.Nursery | None = None
        self._closed = False
        self._free_set = FreeSet()
        self._in_call = False  # the calling task is reading (wake() need not wake it)
        self._call_waits = False  # the calling task waits on the epoll set
        self._waiter: trio.Event | None = None

    # -- tasks -------------------------------------------------------------

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Accepts connections until close() (or cancellation)."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            while True:
                try:
                    sock, _ = await rawio.accept(self.listener)
                except trio.ClosedResourceError:
                    return
                except OSError as exc:
                    if self._closed or exc.errno in (errno.EBADF, errno.EINVAL):
                        return
                    if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                        log.warning("runtime API accept: %s; backing off", exc)
                        await trio.sleep(0.1)
                    continue
                if len(self._conns) >= MAX_CONNECTIONS and not self._reap_closed():
                    sock.close()
                    continue
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self._next_id += 1
                conn = Conn(self._next_id, sock)
                self._conns[conn.id] = conn
                self._by_fd[conn.fd] = conn
                nursery.start_soon(self._serve, conn)

    def _reap_closed(self) -> int:
        """Closes the connections whose peer has closed and that nobody
        has read to the end yet (free connections are read only during a
        call); how many. So that a runtime that closed many connections is
        not refused its next one while we have not noticed."""
        reaped = 0
        for conn in list(self._conns.values()):
            try:
                peeked = conn.sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
            except BlockingIOError:
                continue
            except OSError:
                peeked = b""
            if not peeked:
                self._close_conn(conn)
                reaped += 1
        return reaped

    def _free(self, conn: Conn) -> None:
        """No task reads conn: a call will, through the epoll set."""
        conn.owner = FREE
        self._free_set.watch(conn)

    def _give_task(self, conn: Conn) -> None:
        if conn.owner != FREE or conn.closed or self._nursery is None:
            return
        conn.owner = TASK
        self._free_set.unwatch(conn)
        self._nursery.start_soon(self._serve, conn)

    async def _serve(self, conn: Conn) -> None:
        """A connection's own task: reads until its `next` waits (then the
        connection is free for a call to read) or it closes."""
        try:
            while not conn.closed:
                if not await self._process_buffered(conn):
                    return
                if self.api.parked(conn.id):
                    if not conn.reader.buffered:
                        self._free(conn)
                        return
                    # Pipelined behind a `next` that waits: HTTP answers in
                    # order, so the rest waits until that `next` is answered.
                    conn.unparked = trio.Event()
                    await conn.unparked.wait()
                    conn.unparked = None
                    continue
                if not await self._receive(conn):
                    return
        finally:
            if conn.owner == TASK:
                self._close_conn(conn)  # cancelled, or closed: nothing to hand back

    async def _process_buffered(self, conn: Conn) -> bool:
        """Handles the requests buffered on conn, stopping at a parked
        `next`. False once the connection is closed."""
        api = self.api
        reader = conn.reader
        while not api.parked(conn.id):
            try:
                event = reader.next_event()
            except ProtocolError as exc:
                await self._send(conn, wire.closing(wire.reply(exc.status, exc.message.encode(), "text/plain")))
                await linger(conn.sock)
                self._close_conn(conn)
                return False
            if event is wire.NEED_DATA:
                break
            if (
                type(event) is wire.Request
                and event.head.expect_continue
                and (event.head.chunked or reader.buffered < event.head.content_length)
            ):
                await self._send(conn, wire.CONTINUE)
            outputs = api.receive(conn.id, event)
            if outputs:
                await self.apply(outputs)
            if conn.closed:
                return False
        return True

    async def _receive(self, conn: Conn) -> bool:
        try:
            data = await rawio.recv(conn.sock, RECV)
        except (OSError, trio.ClosedResourceError):
            data = b""
        if not data:
            self._close_conn(conn)
            return False
        conn.reader.feed(data)
        return True

    def _receive_nowait(self, conn: Conn) -> bool:
        """What a connection holds already. False once it is closed."""
        while True:
            try:
                data = conn.sock.recv(RECV)
            except BlockingIOError:
                return True
            except OSError:
                data = b""
            if not data:
                self._close_conn(conn)
                return False
            conn.reader.feed(data)
            if len(data) < RECV:
                return True

    # -- a call ------------------------------------------------------------

    async def serve_call(self, outputs: list, done: Callable[[], bool]) -> None:
        """Carries out state.invoke()'s outputs, then reads the free
        connections until done(); other tasks that change what done() looks
        at call wake()."""
        self._in_call = True
        try:
            await self.apply(outputs)
            await self._read_free()
        finally:
            self._in_call = False
        while not done() and not self._closed:
            self._call_waits = True
            try:
                await trio.lowlevel.wait_readable(self._free_set.fileno())
            except trio.ClosedResourceError:
                return
            finally:
                self._call_waits = False
            self._in_call = True
            try:
                await self._read_free()
            finally:
                self._in_call = False

    async def _read_free(self) -> None:
        """Reads and handles what the free connections hold now."""
        for fd in self._free_set.ready():
            conn = self._by_fd.get(fd)
            if conn is None or conn.owner != FREE or conn.closed:
                continue
            conn.owner = CALLER
            try:
                if self._receive_nowait(conn):
                    await self._process_buffered(conn)
            finally:
                if conn.owner == CALLER and not conn.closed:
                    conn.owner = FREE

    async def wait(self, done: Callable[[], bool]) -> None:
        """Until done(), with every connection read by a task of its own
        (init, before any call)."""
        for conn in list(self._conns.values()):
            if not self.api.parked(conn.id):
                self._give_task(conn)
        while not done() and not self._closed:
            self._waiter = trio.Event()
            try:
                await self._waiter.wait()
            finally:
                self._waiter = None

    def wake(self) -> None:
        """Something done() looks at has changed, outside the calling task's
        own reading: wake whoever waits."""
        if self._waiter is not None:
            self._waiter.set()
        if self._call_waits and not self._in_call:
            self._free_set.wake()

    # -- outputs -------------------------------------------------------------

    async def apply(self, outputs: list) -> None:
        """Carries out state.py's outputs in order."""
        now = time.monotonic_ns()
        for out in outputs:
            if isinstance(out, Send):
                conn = self._conns.get(out.conn)
                if conn is None or conn.closed:
                    continue  # closed since; state.py was told then
                if out.delivers:
                    self._sink(out, time.monotonic_ns())
                await self._send(conn, out.data)
                if conn.unparked is not None:
                    conn.unparked.set()
                if out.close:
                    self._close_conn(conn)
            elif isinstance(out, Close):
                conn = self._conns.get(out.conn)
                if conn is not None:
                    self._close_conn(conn)
            else:
                self._sink(out, now)

    async def _send(self, conn: Conn, data: bytes) -> None:
        while conn.sending:  # rare: a reply and a delivery for one connection at once
            if conn.send_done is None:
                conn.send_done = trio.Event()
            await conn.send_done.wait()
        if conn.closed:
            return
        conn.sending = True
        try:
            await rawio.send_all(conn.sock, data)
        except (OSError, trio.ClosedResourceError):
            self._close_conn(conn)
        finally:
            conn.sending = False
            if conn.send_done is not None:
                conn.send_done.set()
                conn.send_done = None

    def _close_conn(self, conn: Conn) -> None:
        if conn.closed:
            return
        conn.closed = True
        self._conns.pop(conn.id, None)
        self._by_fd.pop(conn.fd, None)
        self._free_set.unwatch(conn)
        rawio.close(conn.sock)
        if conn.unparked is not None:
            conn.unparked.set()
        # closed() never asks for a send, only tells the sink (a call cut
        # off mid-response).
        now = time.monotonic_ns()
        for out in self.api.closed(conn.id):
            if not isinstance(out, (Send, Close)):
                self._sink(out, now)

    def close(self) -> None:
        """Stop serving: on the event loop, before the sandbox is destroyed."""
        if self._closed:
            return
        self._closed = True
        for conn in list(self._conns.values()):
            self._close_conn(conn)
        rawio.close(self.listener)
        self._free_set.close()
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()
        if self._waiter is not None:
            self._waiter.set()
