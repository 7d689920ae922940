"""The socket loop: one trio task per connection, HTTP/1.1 keep-alive.

This is the only module that reads or writes the client's socket. Parsing
lives in http1 and answers in the router.
"""
from __future__ import annotations

import errno
import logging
import math
import socket

import trio

from . import http1, rawio
from .router import Router

log = logging.getLogger("lambdalet.listener")

HEAD_TIMEOUT_S = 30.0  # a client that trickles its request head is cut off
IDLE_TIMEOUT_S = 75.0  # keep-alive connections idle longer than this are closed
RECV = 65536


_send_all = rawio.send_all


class _Watched:
    """A connection's cancel scope and the time it must next make progress by."""

    __slots__ = ("scope", "deadline")

    def __init__(self, scope: trio.CancelScope) -> None:
        self.scope = scope
        self.deadline = math.inf


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


async def serve_connection(sock: socket.socket, router: Router, watchdog: Watchdog | None = None) -> None:
    with trio.CancelScope() as scope:
        watched = _Watched(scope)
        if watchdog is not None:
            watchdog.watched.add(watched)
        try:
            await _serve(sock, router, watched)
        except Exception:
            # Whatever one connection did, it ends that connection only:
            # an exception escaping here would take the server down with it.
            log.exception("connection from %s failed", _peer(sock))
        finally:
            if watchdog is not None:
                watchdog.watched.discard(watched)


def _peer(sock: socket.socket) -> str:
    try:
        return str(sock.getpeername())
    except OSError:
        return "?"


async def _serve(sock: socket.socket, router: Router, watched: _Watched) -> None:
    try:
        peer = sock.getpeername()
    except OSError:
        peer = None
    # A unix-socket peer has no address; only TCP peers have (host, port).
    client = (peer[0], peer[1]) if isinstance(peer, tuple) else ("", 0)
    parser = http1.RequestParser()
    served = 0
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
                    watched.deadline = now + (HEAD_TIMEOUT_S if parser.buffered else IDLE_TIMEOUT_S)
                    while head is None:
                        data = await receive(sock, RECV)
                        receive = rawio.recv
                        if not data:
                            return
                        parser.feed(data)
                        head = parser.read_head()
                        if head is None:
                            # Part of a head arrived: the rest is due soon.
                            watched.deadline = min(watched.deadline, trio.current_time() + HEAD_TIMEOUT_S)
                try:
                    parser.set_body_limit(router.body_limit(head))
                except http1.BodyTooLarge:
                    status, headers, payload = router.too_large(head)
                    await _send_all(sock, http1.render_response(status, headers, payload, keep_alive=False))
                    return
                body = parser.read_body()
                if body is None:
                    if head.expect_continue:
                        await _send_all(sock, http1.CONTINUE)
                    while body is None:
                        # A progress timeout: a large upload on a slow link
                        # is fine as long as bytes keep coming.
                        watched.deadline = trio.current_time() + HEAD_TIMEOUT_S
                        data = await rawio.recv(sock, RECV)
                        if not data:
                            return
                        parser.feed(data)
                        body = parser.read_body()
            except http1.BodyTooLarge:
                status, headers, payload = router.too_large(head)
                await _send_all(sock, http1.render_response(status, headers, payload, keep_alive=False))
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
            try:
                response = http1.render_response(status, headers, payload, head.keep_alive, head_only=head.method == "HEAD")
            except ValueError:
                log.exception("unrenderable response to %s %s", head.method, head.path)
                response = http1.render_response(500, [("Content-Type", "application/json")], b'{"Type":"Service","Message":"Internal error"}', keep_alive=False)
            # A client that stops reading cannot hold the response forever.
            watched.deadline = trio.current_time() + HEAD_TIMEOUT_S
            try:
                await _send_all(sock, response)
            except OSError:
                return
            if not head.keep_alive:
                return
            # The client reads this response before it sends the next
            # request (unless it pipelines, and then the request is in the
            # parser's buffer already): a read now would only fail.
            receive = rawio.recv_after_wait
            served += 1
            if served % 64 == 0:
                # A client pipelining without pause never makes us wait on
                # the socket; give other connections their turn.
                await trio.lowlevel.checkpoint()
    finally:
        rawio.close(sock)


async def serve(listen_sock: socket.socket, router: Router, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
    listen_sock.setblocking(False)
    watchdog = Watchdog()
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
            if conn.family in (socket.AF_INET, socket.AF_INET6):
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            nursery.start_soon(serve_connection, conn, router, watchdog)
