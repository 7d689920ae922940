"""The socket loop: one trio task per connection, HTTP/1.1 keep-alive.

This module and slow_client.py (the waits on a slow or refused client)
are the only ones that read or write the client's socket. Parsing lives in
http1, answers in the handler (handler.py), the limits in limits.py, and
the connections' deadlines in watchdog.py.

What a slow or greedy client meets, and what it is told:
- an idle keep-alive connection (no byte of a next request) is closed
  silently after ``idle_timeout_s`` (a new connection that has sent
  nothing, after ``head_timeout_s``), or sooner when the server is at its
  connection cap and a new client is waiting;
- a head that is not complete ``head_timeout_s`` after its first byte gets
  408 and a close;
- a body that is silent for ``head_timeout_s``, or not complete within
  ``body_timeout_s``, gets the route's 408 RequestTimeoutException and a
  close; the 408s are sent without waiting, so a client that is not
  reading may see only the close;
- a response the client does not take within ``send_timeout_s`` is dropped
  with the connection, and so is one the client is slow to take while the
  budget below is spent (a response waiting on a slow reader counts against it).
A request refused from its head (a signature that cannot be valid, too
large, no room in the unauthenticated byte budget) is answered before its
body is read, and the connection is closed after a short linger that reads
and drops the rest, holding no memory.

The fast path (a request whose body arrived with its head) does none of
this beyond a few attribute stores: the checks run only when the server
would otherwise wait for more bytes.
"""

from __future__ import annotations

import errno
import logging
import math
import socket
from typing import cast

import trio

from . import http1, rawio
from .body import StreamAborted, StreamedBody
from .handler import Handler, Reply
from .limits import ByteBudget, ConnectionSlots, HttpLimits
from .slow_client import RECV, receive_body, refuse, send_rest
from .watchdog import Watchdog, Watched

log = logging.getLogger("lambdalet.listener")

DEFAULT_LIMITS = HttpLimits()
# Kept for readers of the old names (tests, bench); the limits hold the values.
HEAD_TIMEOUT_S = DEFAULT_LIMITS.head_timeout_s
IDLE_TIMEOUT_S = DEFAULT_LIMITS.idle_timeout_s


_HEAD_TIMED_OUT: Reply = (408, [("Content-Type", "text/plain")], b"Request head not received in time")
_NO_ROOM: Reply = (503, [("Content-Type", "text/plain"), ("Retry-After", "1")], b"Too many requests are arriving at once; retry shortly")

_send_all = rawio.send_all


async def serve_connection(
    sock: socket.socket,
    router: Handler,
    watchdog: Watchdog | None = None,
    limits: HttpLimits = DEFAULT_LIMITS,
    budget: ByteBudget | None = None,
) -> None:
    if budget is None:
        budget = ByteBudget(limits.unauthenticated_buffer_bytes)
    watched = Watched(sock)
    try:
        with watched.scope:
            if watchdog is not None:
                watchdog.watched.add(watched)
            try:
                await _serve(sock, router, watched, limits, budget)
            except Exception:
                # Whatever one connection did, it ends that connection only:
                # an exception escaping here would take the server down with it.
                log.exception("connection from %s failed", _peer(sock))
            finally:
                if watchdog is not None:
                    watchdog.watched.discard(watched)
        if watched.scope.cancelled_caught and watched.timeout_reply is not None:
            status, headers, payload = watched.timeout_reply
            # The connection's own refusals: bytes.
            rawio.send_nowait(sock, http1.render_response(status, headers, cast(bytes, payload), keep_alive=False))
    finally:
        rawio.close(sock)


def _peer(sock: socket.socket) -> str:
    try:
        return str(sock.getpeername())
    except OSError:
        return "?"


async def _serve(sock: socket.socket, router: Handler, watched: Watched, limits: HttpLimits, budget: ByteBudget) -> None:
    try:
        peer = sock.getpeername()
    except OSError:
        peer = None
    # A unix-socket peer has no address; only TCP peers have (host, port).
    client = (peer[0], peer[1]) if isinstance(peer, tuple) else ("", 0)
    parser = http1.RequestParser()
    served = 0
    held = 0  # bytes of a partial head counted against the budget
    # A new connection must send its first request promptly; only a
    # connection that has been served may sit idle for the long timeout.
    idle_timeout = limits.head_timeout_s
    # A new connection's first request is usually in the socket already.
    receive = rawio.recv
    try:
        while True:
            try:
                head = parser.read_head()
                if head is None:
                    # Idle between requests gets the long timeout; a started
                    # head must finish quickly.
                    now = trio.current_time()
                    if parser.buffered:
                        watched.deadline = now + limits.head_timeout_s
                        watched.timeout_reply = _HEAD_TIMED_OUT
                    else:
                        watched.deadline = now + idle_timeout
                        watched.idle = True
                    while head is None:
                        data = await receive(sock, RECV)
                        watched.idle = False
                        receive = rawio.recv
                        if not data:
                            return
                        parser.feed(data)
                        head = parser.read_head()
                        if head is None:
                            # Part of a head arrived: the rest is due soon,
                            # and until then its bytes are unauthenticated.
                            watched.deadline = min(watched.deadline, trio.current_time() + limits.head_timeout_s)
                            watched.timeout_reply = _HEAD_TIMED_OUT
                            want = parser.buffered
                            if want > held:
                                if not budget.try_take(want - held):
                                    await refuse(sock, _NO_ROOM, watched, limits)
                                    return
                                held = want
                    if held:
                        budget.give_back(held)
                        held = 0
                        watched.timeout_reply = None
                try:
                    parser.set_body_limit(router.body_limit(head))
                except http1.BodyTooLarge:
                    await refuse(sock, router.too_large(head), watched, limits)
                    return
                body = parser.read_body()
                if body is None:
                    body = await receive_body(sock, parser, head, router, watched, limits, budget)
                    if body is None:
                        return
            except http1.BodyTooLarge:
                if head is not None:  # raised reading the body, which comes after its head
                    await refuse(sock, router.too_large(head), watched, limits)
                return
            except http1.ProtocolError as exc:
                await _send_all(
                    sock, http1.render_response(exc.status, [("Content-Type", "text/plain")], exc.message.encode(), keep_alive=False)
                )
                return
            except OSError as exc:
                if exc.errno in (errno.ECONNRESET, errno.EPIPE):
                    return
                raise
            # The handler enforces its own limits (a function's Timeout).
            watched.deadline = math.inf
            try:
                status, headers, payload = await router.handle(head, body, client)
            except Exception:
                log.exception("unhandled error serving %s %s", head.method, head.path)
                status, headers, payload = (
                    500,
                    [("x-amzn-ErrorType", "ServiceException"), ("Content-Type", "application/json")],
                    b'{"Type":"Service","Message":"Internal error"}',
                )
            stream: StreamedBody | None = None
            chunked = False
            if hasattr(payload, "chunks"):
                # A body streamed from files (an S3 GET), or of unknown
                # length, sent chunked as it comes (response streaming):
                # sent after the head.
                stream, payload = cast(StreamedBody, payload), b""
                chunked = stream.length is None
            try:
                try:
                    response = http1.render_response(
                        status,
                        headers,
                        cast(bytes, payload),
                        head.keep_alive,
                        head_only=head.method == "HEAD",
                        content_length=None if stream is None else stream.length,
                        chunked=chunked,
                    )
                except ValueError:
                    log.exception("unrenderable response to %s %s", head.method, head.path)
                    response = http1.render_response(
                        500, [("Content-Type", "application/json")], b'{"Type":"Service","Message":"Internal error"}', keep_alive=False
                    )
                    if stream is not None:
                        stream.close()
                        stream = None
                # Nothing of this request may outlive its use: a response waiting
                # on a slow reader, or an idle connection, would pin them.
                body = payload = None
                # A client that stops reading cannot hold the response forever.
                watched.deadline = trio.current_time() + limits.send_timeout_s
                try:
                    sent = rawio.send_now(sock, response)
                    if sent < len(response) and not await send_rest(sock, response, sent, budget):
                        return
                    response = None  # type: ignore[assignment]
                    if stream is not None and head.method != "HEAD":
                        if chunked:
                            # Between chunks the wait is on the function (its
                            # Timeout bounds it), not on the client.
                            watched.deadline = math.inf
                        async for chunk in stream.chunks():
                            if chunked:
                                if not chunk:
                                    continue
                                chunk = b"%x\r\n%b\r\n" % (len(chunk), chunk)
                            watched.deadline = trio.current_time() + limits.send_timeout_s
                            sent = rawio.send_now(sock, chunk)
                            if sent < len(chunk) and not await send_rest(sock, chunk, sent, budget):
                                return
                            if chunked:
                                watched.deadline = math.inf
                        if chunked:
                            watched.deadline = trio.current_time() + limits.send_timeout_s
                            await _send_all(sock, b"0\r\n\r\n")
                except StreamAborted:
                    return  # no final chunk: the client sees the body cut short
                except OSError:
                    return
            finally:
                if stream is not None:
                    stream.close()
            if not head.keep_alive:
                return
            # The client reads this response before it sends the next
            # request (unless it pipelines, and then the request is in the
            # parser's buffer already): a read now would only fail.
            receive = rawio.recv_after_wait
            idle_timeout = limits.idle_timeout_s
            served += 1
            if served % 64 == 0:
                # A client pipelining without pause never makes us wait on
                # the socket; give other connections their turn.
                await trio.lowlevel.checkpoint()
    finally:
        if held:
            budget.give_back(held)


async def _serve_counted(
    sock: socket.socket, router: Handler, watchdog: Watchdog, limits: HttpLimits, budget: ByteBudget, slots: ConnectionSlots
) -> None:
    try:
        await serve_connection(sock, router, watchdog, limits, budget)
    finally:
        slots.release()


async def serve(
    listen_sock: socket.socket,
    router: Handler,
    *,
    limits: HttpLimits = DEFAULT_LIMITS,
    budget: ByteBudget | None = None,
    slots: ConnectionSlots | None = None,
    task_status=trio.TASK_STATUS_IGNORED,
) -> None:
    """Accepts connections until cancelled. ``budget`` and ``slots`` may be
    shared with the TLS front; by default they are this listener's own."""
    if budget is None:
        budget = ByteBudget(limits.unauthenticated_buffer_bytes)
    watchdog = Watchdog()
    if slots is None:
        slots = ConnectionSlots(limits.max_connections)
    slots.reclaim = watchdog.reclaim_idle
    listen_sock.setblocking(False)
    async with trio.open_nursery() as nursery:
        await nursery.start(watchdog.run)
        task_status.started()
        while True:
            try:
                conn, _ = await rawio.accept(listen_sock)
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    log.warning("accept: %s; backing off", exc)
                    await trio.sleep(0.1)
                    continue
                if exc.errno in (errno.ECONNABORTED, errno.EPROTO):
                    continue
                raise
            try:
                # At the cap this waits, holding the one connection just
                # accepted (unread) and accepting no other: the rest wait in
                # the kernel's backlog (limits.ConnectionSlots says why).
                await slots.acquire()
            except BaseException:
                conn.close()
                raise
            if conn.family in (socket.AF_INET, socket.AF_INET6):
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            nursery.start_soon(_serve_counted, conn, router, watchdog, limits, budget, slots)
