"""The socket loop: one trio task per connection, HTTP/1.1 keep-alive.

This is the only module that reads or writes the client's socket. Parsing
lives in http1, answers in the handler (handler.py), and the limits in limits.py.

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

import trio

from . import http1, rawio
from .body import StreamAborted
from .handler import Handler, Reply
from .limits import ByteBudget, ConnectionSlots, HttpLimits

log = logging.getLogger("lambdalet.listener")

DEFAULT_LIMITS = HttpLimits()
# Kept for readers of the old names (tests, bench); the limits hold the values.
HEAD_TIMEOUT_S = DEFAULT_LIMITS.head_timeout_s
IDLE_TIMEOUT_S = DEFAULT_LIMITS.idle_timeout_s
RECV = 65536


_HEAD_TIMED_OUT: Reply = (408, [("Content-Type", "text/plain")], b"Request head not received in time")
_NO_ROOM: Reply = (503, [("Content-Type", "text/plain"), ("Retry-After", "1")], b"Too many requests are arriving at once; retry shortly")
# Where a refused request's remaining bytes go: one buffer for every
# connection, since a recv_into() completes without yielding.
_DISCARD = bytearray(65536)

_send_all = rawio.send_all


class _Watched:
    """A connection as the watchdog sees it: its cancel scope, the time it
    must next make progress by, what to tell the client if it does not,
    and whether it sits idle between requests."""

    __slots__ = ("scope", "deadline", "timeout_reply", "idle", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.scope = trio.CancelScope()
        self.deadline = math.inf
        self.timeout_reply: Reply | None = None
        self.idle = False
        self.sock = sock


class Watchdog:
    """Closes connections that stay silent past their deadline.

    One task checks every connection once a second, instead of each request
    opening its own timeout scope: on the invoke path a cancel scope per
    request costs more than the rest of the request's framing.
    """

    def __init__(self) -> None:
        self.watched: set[_Watched] = set()

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            await trio.sleep(1.0)
            now = trio.current_time()
            for w in list(self.watched):
                if w.deadline < now:
                    w.scope.cancel()

    def reclaim_idle(self) -> bool:
        """Closes an idle keep-alive connection to make room for a new one:
        the one whose idle timeout would close it first (a new connection
        that has sent nothing comes before one that has been served).
        False when every connection is in the middle of a request."""
        for w in sorted((w for w in self.watched if w.idle), key=lambda w: w.deadline):
            # A request may have arrived that its task has not read yet.
            if rawio.has_pending(w.sock):
                continue
            w.idle = False
            w.scope.cancel()
            return True
        return False


async def serve_connection(sock: socket.socket, router: Handler, watchdog: Watchdog | None = None,
                           limits: HttpLimits = DEFAULT_LIMITS, budget: ByteBudget | None = None) -> None:
    if budget is None:
        budget = ByteBudget(limits.unauthenticated_buffer_bytes)
    watched = _Watched(sock)
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
            rawio.send_nowait(sock, http1.render_response(status, headers, payload, keep_alive=False))
    finally:
        rawio.close(sock)


def _peer(sock: socket.socket) -> str:
    try:
        return str(sock.getpeername())
    except OSError:
        return "?"


async def _serve(sock: socket.socket, router: Handler, watched: _Watched, limits: HttpLimits, budget: ByteBudget) -> None:
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
                                    await _refuse(sock, _NO_ROOM, watched, limits)
                                    return
                                held = want
                    if held:
                        budget.give_back(held)
                        held = 0
                        watched.timeout_reply = None
                try:
                    parser.set_body_limit(router.body_limit(head))
                except http1.BodyTooLarge:
                    await _refuse(sock, router.too_large(head), watched, limits)
                    return
                body = parser.read_body()
                if body is None:
                    body = await _receive_body(sock, parser, head, router, watched, limits, budget)
                    if body is None:
                        return
            except http1.BodyTooLarge:
                await _refuse(sock, router.too_large(head), watched, limits)
                return
            except http1.ProtocolError as exc:
                payload = exc.message.encode()
                await _send_all(sock, http1.render_response(exc.status, [("Content-Type", "text/plain")], payload, keep_alive=False))
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
                status, headers, payload = 500, [("x-amzn-ErrorType", "ServiceException"), ("Content-Type", "application/json")], b'{"Type":"Service","Message":"Internal error"}'
            stream = None
            chunked = False
            if hasattr(payload, "chunks"):
                # A body streamed from files (an S3 GET), or of unknown
                # length, sent chunked as it comes (response streaming):
                # sent after the head.
                stream, payload = payload, b""
                chunked = stream.length is None
            try:
                try:
                    response = http1.render_response(status, headers, payload, head.keep_alive, head_only=head.method == "HEAD",
                                                     content_length=None if stream is None else stream.length, chunked=chunked)
                except ValueError:
                    log.exception("unrenderable response to %s %s", head.method, head.path)
                    response = http1.render_response(500, [("Content-Type", "application/json")], b'{"Type":"Service","Message":"Internal error"}', keep_alive=False)
                    if stream is not None:
                        stream.close()
                        stream = None
                # Nothing of this request may outlive its use: a response waiting
                # on a slow reader, or an idle connection, would pin them.
                body = payload = None  # type: ignore[assignment]
                # A client that stops reading cannot hold the response forever.
                watched.deadline = trio.current_time() + limits.send_timeout_s
                try:
                    sent = rawio.send_now(sock, response)
                    if sent < len(response) and not await _send_rest(sock, response, sent, budget):
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
                            if sent < len(chunk) and not await _send_rest(sock, chunk, sent, budget):
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


async def _receive_body(sock: socket.socket, parser: http1.RequestParser, head: http1.Head, router: Handler,
                        watched: _Watched, limits: HttpLimits, budget: ByteBudget) -> bytes | None:
    """The rest of a body that did not come with its head. None when the
    request was refused or the client went away (the connection is done)."""
    refusal = router.precheck(head)
    if refusal is not None:
        await _refuse(sock, refusal, watched, limits)
        return None
    # A declared length counts whole before a byte of it is read, so that a
    # request past the budget is refused unread; a chunked body counts as
    # it grows.
    held = parser.buffered if head.chunked else head.content_length
    if not budget.try_take(held):
        await _refuse(sock, router.busy(head), watched, limits)
        return None
    try:
        if head.expect_continue:
            watched.deadline = trio.current_time() + limits.send_timeout_s
            await _send_all(sock, http1.CONTINUE)
        watched.timeout_reply = router.timed_out(head)
        # A total deadline, and within it a progress timeout: a large upload
        # on a slow link is fine as long as bytes keep coming, but not forever.
        body_deadline = trio.current_time() + limits.body_timeout_s
        body = None
        while body is None:
            watched.deadline = min(body_deadline, trio.current_time() + limits.head_timeout_s)
            data = await rawio.recv(sock, RECV)
            if not data:
                return None
            parser.feed(data)
            if head.chunked:
                grown = parser.buffered
                if grown > held:
                    if not budget.try_take(grown - held):
                        await _refuse(sock, router.busy(head), watched, limits)
                        return None
                    held = grown
            body = parser.read_body()
        watched.timeout_reply = None
        return body
    finally:
        # From here the handler authenticates the request (or, for a URL with
        # AuthType NONE, runs it under the concurrency limit).
        budget.give_back(held)


async def _send_rest(sock: socket.socket, response: bytes, sent: int, budget: ByteBudget) -> bool:
    """The rest of a response the client is not taking as fast as it comes.
    While it waits, the whole response counts against the budget: a client
    that reads slowly pins memory as surely as one that writes slowly, and
    many of them (a function URL with AuthType NONE answers anyone) must
    not pin more than the budget. False, to close the connection, when the
    budget has no room for it."""
    held = len(response)
    if not budget.try_take(held):
        return False
    try:
        view = memoryview(response)[sent:]
        while view:
            await trio.lowlevel.wait_writable(sock)
            view = view[rawio.send_now(sock, view):]
    finally:
        budget.give_back(held)
    return True


async def _refuse(sock: socket.socket, reply: Reply, watched: _Watched, limits: HttpLimits) -> None:
    """Answers a request whose body will not be read, then reads and drops
    whatever the client still sends for up to ``linger_s``.

    Closing a socket that has unread bytes sends a reset, which can destroy
    the answer before the client reads it; a client still uploading would
    see "connection reset" instead of the 403 or 413 it was sent.
    """
    status, headers, payload = reply
    watched.timeout_reply = None
    watched.deadline = trio.current_time() + limits.send_timeout_s
    await _send_all(sock, http1.render_response(status, headers, payload, keep_alive=False))
    try:
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        return
    # Its own timer, not the watchdog's: the linger must end even for a
    # connection served without one.
    watched.deadline = math.inf
    with trio.move_on_after(limits.linger_s):
        while await rawio.recv_into(sock, _DISCARD):
            pass


async def _serve_counted(sock: socket.socket, router: Handler, watchdog: Watchdog, limits: HttpLimits,
                         budget: ByteBudget, slots: ConnectionSlots) -> None:
    try:
        await serve_connection(sock, router, watchdog, limits, budget)
    finally:
        slots.release()


async def serve(listen_sock: socket.socket, router: Handler, *, limits: HttpLimits = DEFAULT_LIMITS,
                budget: ByteBudget | None = None, slots: ConnectionSlots | None = None,
                task_status=trio.TASK_STATUS_IGNORED) -> None:
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
