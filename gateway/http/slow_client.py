"""What a connection does when the server would otherwise wait on the
client: reading a body that did not come with its head (against the
unauthenticated byte budget, a progress timeout and a total deadline),
sending the rest of a response the client is slow to take (counted
against the same budget), and refusing a request without reading its body
(then reading and dropping what the client still sends, for a short
linger). The listener's fast path never comes here.
"""

from __future__ import annotations

import math
import socket
from typing import cast

import trio

from . import http1, rawio
from .handler import Handler, Reply
from .limits import ByteBudget, HttpLimits
from .watchdog import Watched

RECV = 65536
# Where a refused request's remaining bytes go: one buffer for every
# connection, since a recv_into() completes without yielding.
_DISCARD = bytearray(65536)

_send_all = rawio.send_all


async def receive_body(
    sock: socket.socket,
    parser: http1.RequestParser,
    head: http1.Head,
    router: Handler,
    watched: Watched,
    limits: HttpLimits,
    budget: ByteBudget,
) -> bytes | None:
    """The rest of a body that did not come with its head. None when the
    request was refused or the client went away (the connection is done)."""
    refusal = router.precheck(head)
    if refusal is not None:
        await refuse(sock, refusal, watched, limits)
        return None
    # A declared length counts whole before a byte of it is read, so that a
    # request past the budget is refused unread; a chunked body counts as
    # it grows.
    held = parser.buffered if head.chunked else head.content_length
    if not budget.try_take(held):
        await refuse(sock, router.busy(head), watched, limits)
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
                        await refuse(sock, router.busy(head), watched, limits)
                        return None
                    held = grown
            body = parser.read_body()
        watched.timeout_reply = None
        return body
    finally:
        # From here the handler authenticates the request (or, for a URL with
        # AuthType NONE, runs it under the concurrency limit).
        budget.give_back(held)


async def send_rest(sock: socket.socket, response: bytes, sent: int, budget: ByteBudget) -> bool:
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
            view = view[rawio.send_now(sock, view) :]
    finally:
        budget.give_back(held)
    return True


async def refuse(sock: socket.socket, reply: Reply, watched: Watched, limits: HttpLimits) -> None:
    """Answers a request whose body will not be read, then reads and drops
    whatever the client still sends for up to ``linger_s``.

    Closing a socket that has unread bytes sends a reset, which can destroy
    the answer before the client reads it; a client still uploading would
    see "connection reset" instead of the 403 or 413 it was sent.
    """
    status, headers, payload = reply
    watched.timeout_reply = None
    watched.deadline = trio.current_time() + limits.send_timeout_s
    # A refusal's body is always bytes (the handler builds it whole).
    await _send_all(sock, http1.render_response(status, headers, cast(bytes, payload), keep_alive=False))
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
