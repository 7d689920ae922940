"""TLS and HTTP/2 for the whole API, served by hypercorn.

The plain-HTTP port is the lean listener, built for latency. When the
server is given a certificate it also listens on a TLS port, where
hypercorn does what it is best at — TLS, HTTP/2 and ALPN — and hands every
request to the same Router that the lean listener uses, so Invoke, function
URLs and the control plane behave identically on both ports.
"""

from __future__ import annotations

import errno
import logging

import trio
from hypercorn.config import Config
from hypercorn.trio.tcp_server import TCPServer
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.utils import wrap_app

from . import http1
from .handler import Handler, Reply
from .http1 import Head
from .limits import ByteBudget, ConnectionSlots, HttpLimits

log = logging.getLogger("lambdalet.tls")

DEFAULT_LIMITS = HttpLimits()


def asgi_front(router: Handler, limits: HttpLimits = DEFAULT_LIMITS, budget: ByteBudget | None = None):
    """An ASGI app that answers each request with router.handle()."""
    if budget is None:
        budget = ByteBudget(limits.unauthenticated_buffer_bytes)

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        target = scope.get("raw_path", scope["path"].encode()).decode("latin-1")
        if scope.get("query_string"):
            target += "?" + scope["query_string"].decode("latin-1")
        headers = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope["headers"]]
        if not any(k == "host" for k, _ in headers):
            # HTTP/2 carries the host as :authority; SigV4 signed it as Host.
            for k, v in scope["headers"]:
                if k == b":authority":
                    headers.append(("host", v.decode("latin-1")))
        length = next((int(v) for k, v in headers if k == "content-length" and v.isascii() and v.isdigit()), 0)
        head = Head(scope["method"], target, headers, length, False, True, False)
        limit = router.body_limit(head)
        if length > limit:
            await _respond(send, *router.too_large(head))
            return
        # What the head alone refuses, it refuses before the body is read
        # (the lean listener's rule; here hypercorn has no fast path to keep).
        refusal = router.precheck(head)
        if refusal is not None:
            await _respond(send, *refusal)
            return
        body = await _read_body(receive, head, router, limit, limits, budget)
        if body is None:
            return
        if not isinstance(body, bytes):
            await _respond(send, *body)
            return
        client = scope.get("client") or ("", 0)
        status, out_headers, payload = await router.handle(head, body, (client[0], client[1]))
        await _respond(send, status, out_headers, payload, head_only=scope["method"] == "HEAD")

    return app


async def _read_body(receive, head: Head, router: Handler, limit: int, limits: HttpLimits, budget: ByteBudget) -> bytes | Reply | None:
    """The body, or the refusal to send instead, or None if the client left.
    The same budget and deadlines as the lean listener's."""
    # A declared length counts whole before a byte is read; beyond it (or
    # without one, as HTTP/2 allows) the body counts as it grows.
    held = head.content_length
    if not budget.try_take(held):
        return router.busy(head)
    try:
        body = bytearray()
        more = True
        with trio.move_on_after(limits.body_timeout_s):
            while more:
                message = None
                with trio.move_on_after(limits.head_timeout_s):
                    message = await receive()
                if message is None:
                    break
                if message["type"] == "http.disconnect":
                    return None
                chunk = message.get("body", b"")
                if len(body) + len(chunk) > limit:
                    return router.too_large(head)
                if len(body) + len(chunk) > held:
                    extra = len(body) + len(chunk) - held
                    if not budget.try_take(extra):
                        return router.busy(head)
                    held += extra
                body += chunk
                more = message.get("more_body", False)
        if more:
            return router.timed_out(head)
        return bytes(body)
    finally:
        budget.give_back(held)


async def _respond(send, status: int, headers: list[tuple[str, str]], payload, head_only: bool = False) -> None:
    """payload: bytes, a body streamed from files (http/body.py), or one
    of unknown length (api/streaming.py: no content-length, so hypercorn
    sends it chunked, or as HTTP/2 data frames)."""
    raw = [
        (k.lower().encode("latin-1"), v.encode("latin-1"))
        for k, v in headers
        if k.lower() not in ("connection", "content-length", "transfer-encoding")
    ]
    length = getattr(payload, "length", None) if hasattr(payload, "chunks") else len(payload)
    if length is not None:
        raw.append((b"content-length", str(length).encode()))
    if not hasattr(payload, "chunks"):
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": payload})
        return
    try:
        await send({"type": "http.response.start", "status": status, "headers": raw})
        if head_only:
            await send({"type": "http.response.body", "body": b""})
            return
        async for chunk in payload.chunks():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    finally:
        payload.close()


def hypercorn_config(host: str, port: int, certfile: str | None, keyfile: str | None, limits: HttpLimits) -> Config:
    config = Config()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.certfile = certfile
    config.keyfile = keyfile
    config.alpn_protocols = ["h2", "http/1.1"]
    config.accesslog = None
    config.errorlog = None
    config.backlog = 1024
    # hypercorn's own limits, matched to the lean listener's. Its idle timer
    # runs from the end of one response until the next request's head is
    # complete, so keep_alive_timeout also bounds a trickled head (HTTP/1.1
    # and HTTP/2 alike); read_timeout stays off, since it would also cut a
    # client that waits quietly for a long Invoke. Bodies are bounded in
    # asgi_front, which reads them.
    config.keep_alive_timeout = limits.head_timeout_s
    config.ssl_handshake_timeout = limits.head_timeout_s
    config.h11_max_incomplete_size = http1.MAX_HEAD
    config.h2_max_header_list_size = http1.MAX_HEAD
    config.h2_max_concurrent_streams = 100
    config.max_app_queue_size = 10
    return config


class _GuardedStream:
    """The TLS stream hypercorn writes to, under the lean listener's rules
    for responses: what waits to be sent counts against the budget (past it
    the connection ends), and a send the client does not take within
    ``send_timeout_s`` ends the connection. hypercorn shields its sends from
    cancellation, so the deadline must sit inside them, here."""

    def __init__(self, inner, limits: HttpLimits, budget: ByteBudget) -> None:
        self._inner = inner
        self._limits = limits
        self._budget = budget

    def __getattr__(self, name):
        return getattr(self._inner, name)

    async def send_all(self, data) -> None:
        # Until it is sent, the server holds the plaintext and its
        # encrypted copy (trio's TLS stream encrypts all of it at once).
        n = 2 * len(data)
        if not self._budget.try_take(n):
            await trio.aclose_forcefully(self._inner)
            raise trio.BrokenResourceError("no room left for a response waiting on its reader")
        try:
            with trio.move_on_after(self._limits.send_timeout_s) as scope:
                await self._inner.send_all(data)
        finally:
            self._budget.give_back(n)
        if scope.cancelled_caught:
            await trio.aclose_forcefully(self._inner)
            raise trio.BrokenResourceError("the client did not read its response in time")


async def _serve_one(
    app, config: Config, context: WorkerContext, stream, slots: ConnectionSlots, limits: HttpLimits, budget: ByteBudget
) -> None:
    try:
        # hypercorn uses only the stream's methods, which the guard passes on.
        await TCPServer(app, config, context, {}, _GuardedStream(stream, limits, budget))  # type: ignore[arg-type]
    finally:
        # hypercorn returns from a timed-out TLS handshake without closing
        # the stream, leaving the socket to the garbage collector (and the
        # slot-holder's fd open meanwhile). Closing twice is harmless.
        await trio.aclose_forcefully(stream)
        slots.release()


async def serve_tls(
    router: Handler,
    host: str,
    port: int,
    certfile: str | None,
    keyfile: str | None,
    *,
    limits: HttpLimits = DEFAULT_LIMITS,
    budget: ByteBudget | None = None,
    slots: ConnectionSlots | None = None,
    task_status=trio.TASK_STATUS_IGNORED,
) -> None:
    """hypercorn's connection handling behind our own accept loop: hypercorn
    has no connection cap, and this one shares the lean listener's slots."""
    config = hypercorn_config(host, port, certfile, keyfile, limits)
    if budget is None:
        budget = ByteBudget(limits.unauthenticated_buffer_bytes)
    if slots is None:
        slots = ConnectionSlots(limits.max_connections)
    ssl_context = config.create_ssl_context()
    if ssl_context is None:  # hypercorn makes none without a certificate
        raise ValueError("TLS needs a certificate and its key")
    sockets = config.create_sockets().secure_sockets
    try:
        for sock in sockets:
            sock.listen(config.backlog)
        listeners = [
            trio.SSLListener(trio.SocketListener(trio.socket.from_stdlib_socket(sock)), ssl_context, https_compatible=True)
            for sock in sockets
        ]
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    app = wrap_app(asgi_front(router, limits, budget), config.wsgi_max_body_size, "asgi")
    context = WorkerContext(None)
    async with trio.open_nursery() as nursery:
        for listener in listeners:
            nursery.start_soon(_accept_loop, listener, app, config, context, slots, nursery, limits, budget)
        task_status.started()


async def _accept_loop(
    listener, app, config: Config, context: WorkerContext, slots: ConnectionSlots, nursery, limits: HttpLimits, budget: ByteBudget
) -> None:
    async with listener:
        while True:
            try:
                stream = await listener.accept()
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    log.warning("accept: %s; backing off", exc)
                    await trio.sleep(0.1)
                    continue
                raise
            try:
                # Past the cap: wait with this one connection, as the lean
                # listener does (limits.ConnectionSlots says why).
                await slots.acquire()
            except BaseException:
                await trio.aclose_forcefully(stream)
                raise
            nursery.start_soon(_serve_one, app, config, context, stream, slots, limits, budget)
