"""The Runtime API's sockets, served from the gateway's trio loop.

One RuntimeApiServer per custom-runtime sandbox: it accepts on the
listening socket that lives in the sandbox's network namespace, reads each
connection with wire.RequestReader, feeds state.RuntimeApi, and carries
out what comes back: bytes are sent here, everything else goes to a sink
(session.py). This is the only module that touches the runtime's sockets.

Everything a runtime sends is untrusted: heads are parsed strictly, bodies
are bounded by state.py, connections are capped per sandbox, and a
connection that breaks HTTP is closed.
"""
from __future__ import annotations

import errno
import logging
import socket
import time
from typing import Callable

import trio

from lambdalet.gateway import rawio
from lambdalet.gateway.http1 import ProtocolError

from . import state, wire

log = logging.getLogger("lambdalet.runtime_api")

MAX_CONNECTIONS = 32  # per sandbox; runtime clients use one or two
RECV = 65536


class _Conn:
    __slots__ = ("id", "sock", "reader", "sending", "send_done", "unparked", "closed")

    def __init__(self, conn_id: int, sock: socket.socket) -> None:
        self.id = conn_id
        self.sock = sock
        self.reader = wire.RequestReader()
        self.sending = False  # a send is under way (sends from two tasks must not interleave)
        self.send_done: trio.Event | None = None
        self.unparked: trio.Event | None = None  # set when a parked `next` is answered
        self.closed = False


class RuntimeApiServer:
    def __init__(self, listener: socket.socket, api: state.RuntimeApi, sink: Callable[[object, int], None]) -> None:
        """sink(output, now_ns) receives every output that is not sent here
        (InitDone, InitFailed, Answered, StreamData) with the monotonic time
        the bytes that caused it were read, and each Send that hands out a
        call's event, with the time just before it is sent."""
        listener.setblocking(False)
        self.listener = listener
        self.api = api
        self._sink = sink
        self._conns: dict[int, _Conn] = {}
        self._next_id = 0
        self._nursery: trio.Nursery | None = None
        self._closed = False

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Accepts and serves connections until close() (or cancellation)."""
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
                if len(self._conns) >= MAX_CONNECTIONS:
                    sock.close()
                    continue
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self._next_id += 1
                conn = _Conn(self._next_id, sock)
                self._conns[conn.id] = conn
                nursery.start_soon(self._serve, conn)

    async def apply(self, outputs: list) -> None:
        """Carries out state.py's outputs in order."""
        now = time.monotonic_ns()
        for out in outputs:
            if isinstance(out, state.Send):
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
            elif isinstance(out, state.Close):
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

    async def _serve(self, conn: _Conn) -> None:
        api = self.api
        reader = conn.reader
        receive = rawio.recv
        try:
            while not conn.closed:
                while not api.parked(conn.id):
                    try:
                        event = reader.next_event()
                    except ProtocolError as exc:
                        await self._send(conn, wire.closing(wire.reply(exc.status, exc.message.encode(), "text/plain")))
                        return
                    if event is wire.NEED_DATA:
                        break
                    if (isinstance(event, wire.Request) and event.head.expect_continue
                            and (event.head.chunked or reader.buffered < event.head.content_length)):
                        await self._send(conn, wire.CONTINUE)
                    outputs = api.receive(conn.id, event)
                    if outputs:
                        await self.apply(outputs)
                        receive = rawio.recv_after_wait  # its next request follows our reply
                    if conn.closed:
                        return
                if api.parked(conn.id) and reader.buffered:
                    # Pipelined behind a `next` that waits: HTTP answers in
                    # order, so the rest waits until that `next` is answered.
                    conn.unparked = trio.Event()
                    await conn.unparked.wait()
                    conn.unparked = None
                    continue
                try:
                    data = await receive(conn.sock, RECV)
                except (OSError, trio.ClosedResourceError):
                    return
                receive = rawio.recv
                if not data:
                    return
                reader.feed(data)
        finally:
            self._close_conn(conn)

    def _close_conn(self, conn: _Conn) -> None:
        if conn.closed:
            return
        conn.closed = True
        self._conns.pop(conn.id, None)
        rawio.close(conn.sock)
        if conn.unparked is not None:
            conn.unparked.set()
        # closed() never asks for a send, only tells the sink (a call cut
        # off mid-response).
        now = time.monotonic_ns()
        for out in self.api.closed(conn.id):
            if not isinstance(out, (state.Send, state.Close)):
                self._sink(out, now)

    def close(self) -> None:
        """Stop serving: on the event loop, before the sandbox is destroyed."""
        if self._closed:
            return
        self._closed = True
        for conn in list(self._conns.values()):
            self._close_conn(conn)
        rawio.close(self.listener)
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()
