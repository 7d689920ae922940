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
Connections at rest ("free") sit in a private epoll set with an eventfd,
and the call waits on that set's fd: any free connection (a second one
too) or a wake-up from another task (wake()) ends the wait. Only what
strays from the pattern (a new connection, requests while no call runs,
init) gets a task of its own, which gives its connection back once a
`next` waits on it.

Everything a runtime sends is untrusted: heads are parsed strictly, bodies
are bounded by state.py, connections are capped per sandbox, and a
connection that breaks HTTP is closed.
"""

from __future__ import annotations

import errno
import logging
import os
import select
import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import trio

from lambdalet.gateway.http import rawio
from lambdalet.gateway.http.http1 import ProtocolError

from . import state, wire
from .outputs import Close, Send

if TYPE_CHECKING:
    from .dispatch import SandboxApi

log = logging.getLogger("lambdalet.runtime_api")

MAX_CONNECTIONS = 32  # per sandbox; runtime clients use one or two
RECV = 65536
MAX_DISCARD = 1 << 20  # read and dropped before closing a connection that broke HTTP
LINGER_S = 2.0  # how long such a connection may keep sending before it is closed anyway
_READY = select.EPOLLIN | select.EPOLLRDHUP

_FREE, _TASK, _CALLER = range(3)  # who reads a connection


class _Conn:
    __slots__ = ("id", "sock", "fd", "reader", "owner", "watched", "sending", "send_done", "unparked", "closed")

    def __init__(self, conn_id: int, sock: socket.socket) -> None:
        self.id = conn_id
        self.sock = sock
        self.fd = sock.fileno()
        self.reader = wire.RequestReader()
        self.owner = _TASK
        self.watched = False  # in the private epoll set (while free)
        self.sending = False  # a send is under way (sends from two tasks must not interleave)
        self.send_done: trio.Event | None = None
        self.unparked: trio.Event | None = None  # set when a parked `next` is answered
        self.closed = False


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
        self._conns: dict[int, _Conn] = {}
        self._by_fd: dict[int, _Conn] = {}
        self._next_id = 0
        self._nursery: trio.Nursery | None = None
        self._closed = False
        self._epoll = select.epoll()
        self._wakefd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._epoll.register(self._wakefd, select.EPOLLIN)
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
                conn = _Conn(self._next_id, sock)
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

    def _free(self, conn: _Conn) -> None:
        """No task reads conn: a call will, through the epoll set."""
        conn.owner = _FREE
        if not conn.watched and not conn.closed:
            self._epoll.register(conn.fd, _READY)
            conn.watched = True

    def _give_task(self, conn: _Conn) -> None:
        if conn.owner != _FREE or conn.closed or self._nursery is None:
            return
        conn.owner = _TASK
        if conn.watched:
            self._epoll.unregister(conn.fd)
            conn.watched = False
        self._nursery.start_soon(self._serve, conn)

    async def _serve(self, conn: _Conn) -> None:
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
            if conn.owner == _TASK:
                self._close_conn(conn)  # cancelled, or closed: nothing to hand back

    async def _process_buffered(self, conn: _Conn) -> bool:
        """Handles the requests buffered on conn, stopping at a parked
        `next`. False once the connection is closed."""
        api = self.api
        reader = conn.reader
        while not api.parked(conn.id):
            try:
                event = reader.next_event()
            except ProtocolError as exc:
                await self._send(conn, wire.closing(wire.reply(exc.status, exc.message.encode(), "text/plain")))
                await self._linger_close(conn)
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

    async def _receive(self, conn: _Conn) -> bool:
        try:
            data = await rawio.recv(conn.sock, RECV)
        except (OSError, trio.ClosedResourceError):
            data = b""
        if not data:
            self._close_conn(conn)
            return False
        conn.reader.feed(data)
        return True

    def _receive_nowait(self, conn: _Conn) -> bool:
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

    async def _linger_close(self, conn: _Conn) -> None:
        """Closes a connection that broke HTTP without losing the error reply.
        A close with unread bytes resets the connection, and a reset can
        overtake the reply the peer has not read yet; so, as web servers do
        (a "lingering close"), our side is shut first (the reply, then EOF)
        and what the peer still sends is read and dropped until it closes,
        within a byte and a time budget."""
        try:
            conn.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        dropped = 0
        with trio.move_on_after(LINGER_S):
            while dropped < MAX_DISCARD:
                try:
                    data = await rawio.recv(conn.sock, RECV)
                except (OSError, trio.ClosedResourceError):
                    break
                if not data:
                    break
                dropped += len(data)
        self._close_conn(conn)

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
                await trio.lowlevel.wait_readable(self._epoll.fileno())
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
        try:
            ready = self._epoll.poll(0)
        except (OSError, ValueError):  # closed under us
            return
        for fd, _events in ready:
            if fd == self._wakefd:
                try:
                    os.eventfd_read(fd)
                except BlockingIOError:
                    pass
                continue
            conn = self._by_fd.get(fd)
            if conn is None or conn.owner != _FREE or conn.closed:
                continue
            conn.owner = _CALLER
            try:
                if self._receive_nowait(conn):
                    await self._process_buffered(conn)
            finally:
                if conn.owner == _CALLER and not conn.closed:
                    conn.owner = _FREE

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
            os.eventfd_write(self._wakefd, 1)

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

    async def _send(self, conn: _Conn, data: bytes) -> None:
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

    def _close_conn(self, conn: _Conn) -> None:
        if conn.closed:
            return
        conn.closed = True
        self._conns.pop(conn.id, None)
        self._by_fd.pop(conn.fd, None)
        if conn.watched:
            try:
                self._epoll.unregister(conn.fd)
            except (OSError, ValueError):
                pass
            conn.watched = False
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
        trio.lowlevel.notify_closing(self._epoll.fileno())
        self._epoll.close()
        os.close(self._wakefd)
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()
        if self._waiter is not None:
            self._waiter.set()
