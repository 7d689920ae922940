"""The connection loop under a mock clock: keep-alive, timeouts, the
unauthenticated byte budget and the connection cap; no sleeps."""

from __future__ import annotations

import socket

import pytest
import trio

from lambdalet.gateway.http import listener, rawio
from lambdalet.gateway.http.limits import BudgetStatistics, ByteBudget, ConnectionSlots, HttpLimits
from lambdalet.gateway.http.watchdog import Watchdog


class EchoRouter:
    def __init__(self, limit: int = 1024) -> None:
        self.limit = limit
        self.handled = 0

    def body_limit(self, head):
        return self.limit

    def too_large(self, head):
        return 413, [], b"too large"

    def precheck(self, head):
        if head.header("authorization") == "bad":
            return 403, [], b"refused from the head"
        return None

    def busy(self, head):
        return 429, [], b"busy"

    def timed_out(self, head):
        return 408, [], b"body timed out"

    async def handle(self, head, body, client):
        self.handled += 1
        return 200, [("Content-Type", "text/plain")], head.path.encode() + b":" + body


async def _read_response(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = await rawio.recv(sock)
        if not chunk:
            return data
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    length = int([l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")][0].split(b":")[1])
    while len(rest) < length:
        rest += await rawio.recv(sock)
    return head + b"\r\n\r\n" + rest


def _pair() -> tuple[socket.socket, socket.socket]:
    server_end, client = socket.socketpair()
    server_end.setblocking(False)
    client.setblocking(False)
    return server_end, client


@pytest.mark.trio
async def test_keep_alive_then_idle_timeout(autojump_clock):
    server_end, client = _pair()
    watchdog = Watchdog()
    async with trio.open_nursery() as nursery:
        await nursery.start(watchdog.run)
        nursery.start_soon(listener.serve_connection, server_end, EchoRouter(), watchdog)
        for i in range(3):
            await rawio.send_all(client, f"POST /p{i} HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi".encode())
            reply = await _read_response(client)
            assert reply.startswith(b"HTTP/1.1 200 ") and reply.endswith(f"/p{i}:hi".encode())
        started = trio.current_time()
        # Silence: the server closes the connection once the idle timeout passes.
        assert await rawio.recv(client) == b""
        waited = trio.current_time() - started
        assert listener.IDLE_TIMEOUT_S <= waited <= listener.IDLE_TIMEOUT_S + 2
        nursery.cancel_scope.cancel()
    client.close()


@pytest.mark.trio
async def test_a_trickled_head_is_cut_off_at_the_head_timeout(autojump_clock):
    server_end, client = _pair()
    watchdog = Watchdog()
    async with trio.open_nursery() as nursery:
        await nursery.start(watchdog.run)
        nursery.start_soon(listener.serve_connection, server_end, EchoRouter(), watchdog)
        await rawio.send_all(client, b"GET /slow HTTP/1.1\r\nX-Part: ")
        started = trio.current_time()
        reply = await _read_response(client)
        assert reply.startswith(b"HTTP/1.1 408 ") and b"Connection: close" in reply
        assert await rawio.recv(client) == b""
        assert trio.current_time() - started <= listener.HEAD_TIMEOUT_S + 2
        nursery.cancel_scope.cancel()
    client.close()


@pytest.mark.trio
async def test_body_over_the_limit_gets_the_routes_answer_and_a_close(autojump_clock):
    server_end, client = _pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(listener.serve_connection, server_end, EchoRouter(), None)
        await rawio.send_all(client, b"POST /big HTTP/1.1\r\nContent-Length: 5000\r\n\r\n")
        reply = await _read_response(client)
        assert reply.startswith(b"HTTP/1.1 413 ") and b"Connection: close" in reply
        assert await rawio.recv(client) == b""
    client.close()


async def _read_all(sock: socket.socket) -> bytes:
    data = b""
    while True:
        chunk = await rawio.recv(sock)
        if not chunk:
            return data
        data += chunk


@pytest.mark.trio
async def test_a_trickled_body_meets_its_total_deadline(autojump_clock):
    """One byte every 2 s never trips the progress timeout; the total
    deadline still ends it, with a 408 in the route's shape."""
    limits = HttpLimits(body_timeout_s=20.0)
    router = EchoRouter(limit=10_000)
    budget = ByteBudget(1 << 20)
    server_end, client = _pair()
    watchdog = Watchdog()
    async with trio.open_nursery() as nursery:
        await nursery.start(watchdog.run)
        nursery.start_soon(listener.serve_connection, server_end, router, watchdog, limits, budget)
        await rawio.send_all(client, b"POST /trickle HTTP/1.1\r\nContent-Length: 1000\r\n\r\n")
        started = trio.current_time()
        reply = b""
        with trio.move_on_after(600):
            for _ in range(1000):
                try:
                    await rawio.send_all(client, b"x")
                except OSError:
                    break
                await trio.sleep(2)
                try:
                    got = client.recv(65536)
                except BlockingIOError:
                    continue
                reply += got
                if not got:
                    break
            reply += await _read_all(client)
        elapsed = trio.current_time() - started
        assert reply.startswith(b"HTTP/1.1 408 ") and b"body timed out" in reply
        assert elapsed <= limits.body_timeout_s + 4
        assert router.handled == 0
        assert budget.statistics().used == 0
        nursery.cancel_scope.cancel()
    client.close()


@pytest.mark.trio
async def test_a_stalled_body_meets_its_progress_timeout(autojump_clock):
    limits = HttpLimits(head_timeout_s=10.0, body_timeout_s=1000.0)
    server_end, client = _pair()
    watchdog = Watchdog()
    async with trio.open_nursery() as nursery:
        await nursery.start(watchdog.run)
        nursery.start_soon(listener.serve_connection, server_end, EchoRouter(), watchdog, limits)
        await rawio.send_all(client, b"POST /stall HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc")
        started = trio.current_time()
        reply = await _read_all(client)
        assert reply.startswith(b"HTTP/1.1 408 ")
        assert limits.head_timeout_s <= trio.current_time() - started <= limits.head_timeout_s + 2
        nursery.cancel_scope.cancel()
    client.close()


@pytest.mark.trio
async def test_a_head_that_cannot_be_authentic_is_refused_before_its_body(autojump_clock):
    router = EchoRouter(limit=100 << 20)
    budget = ByteBudget(1 << 20)
    server_end, client = _pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(listener.serve_connection, server_end, router, None, listener.DEFAULT_LIMITS, budget)
        # 80 MB declared, not one byte of it sent: the refusal comes anyway.
        await rawio.send_all(client, b"POST /x HTTP/1.1\r\nAuthorization: bad\r\nContent-Length: 80000000\r\n\r\n")
        reply = await _read_response(client)
        assert reply.startswith(b"HTTP/1.1 403 ") and b"Connection: close" in reply
        # What the client sends after the refusal is read and dropped: the
        # budget never counted it, and the server's buffer never held it.
        for _ in range(64):
            await rawio.send_all(client, b"y" * 65536)
        assert budget.statistics() == BudgetStatistics(1 << 20, 0, 0)
        assert router.handled == 0
        client.shutdown(socket.SHUT_WR)
        assert await rawio.recv(client) == b""
    client.close()


@pytest.mark.trio
async def test_bodies_past_the_budget_get_429_unread(autojump_clock):
    router = EchoRouter(limit=10_000)
    budget = ByteBudget(2000)
    watchdog = Watchdog()
    a_end, a = _pair()
    b_end, b = _pair()
    c_end, c = _pair()
    async with trio.open_nursery() as nursery:
        await nursery.start(watchdog.run)
        for end in (a_end, b_end, c_end):
            nursery.start_soon(listener.serve_connection, end, router, watchdog, listener.DEFAULT_LIMITS, budget)
        await rawio.send_all(a, b"POST /a HTTP/1.1\r\nContent-Length: 1500\r\n\r\n" + b"a" * 100)
        await trio.testing.wait_all_tasks_blocked()
        assert budget.statistics().used == 1500  # declared, counted whole
        await rawio.send_all(b, b"POST /b HTTP/1.1\r\nContent-Length: 1000\r\n\r\n")
        reply = await _read_response(b)
        assert reply.startswith(b"HTTP/1.1 429 ") and b"busy" in reply
        await rawio.send_all(a, b"a" * 1400)
        assert (await _read_response(a)).startswith(b"HTTP/1.1 200 ")
        assert budget.statistics().used == 0
        await rawio.send_all(c, b"POST /c HTTP/1.1\r\nContent-Length: 1000\r\n\r\n")
        await trio.testing.wait_all_tasks_blocked()
        await rawio.send_all(c, b"c" * 1000)
        assert (await _read_response(c)).startswith(b"HTTP/1.1 200 ")
        assert budget.statistics().refused == 1
        nursery.cancel_scope.cancel()
    for s in (a, b, c):
        s.close()


@pytest.mark.trio
async def test_a_chunked_body_counts_as_it_grows(autojump_clock):
    router = EchoRouter(limit=1 << 20)
    budget = ByteBudget(4096)
    server_end, client = _pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(listener.serve_connection, server_end, router, None, listener.DEFAULT_LIMITS, budget)
        await rawio.send_all(client, b"POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")
        await trio.testing.wait_all_tasks_blocked()
        for _ in range(3):
            await rawio.send_all(client, b"400\r\n" + b"z" * 1024 + b"\r\n")
            await trio.testing.wait_all_tasks_blocked()
            assert 1024 <= budget.statistics().used <= 4096
        await rawio.send_all(client, b"800\r\n" + b"z" * 2048 + b"\r\n")
        reply = await _read_response(client)
        assert reply.startswith(b"HTTP/1.1 429 ")
        client.shutdown(socket.SHUT_WR)
    assert budget.statistics().used == 0
    assert router.handled == 0
    client.close()


@pytest.mark.trio
async def test_partial_heads_count_against_the_budget(autojump_clock):
    budget = ByteBudget(1000)
    a_end, a = _pair()
    b_end, b = _pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(listener.serve_connection, a_end, EchoRouter(), None, listener.DEFAULT_LIMITS, budget)
        nursery.start_soon(listener.serve_connection, b_end, EchoRouter(), None, listener.DEFAULT_LIMITS, budget)
        await rawio.send_all(a, b"GET /a HTTP/1.1\r\nX-Pad: " + b"p" * 800)
        await trio.testing.wait_all_tasks_blocked()
        assert budget.statistics().used > 800
        await rawio.send_all(b, b"GET /b HTTP/1.1\r\nX-Pad: " + b"p" * 400)
        reply = await _read_response(b)
        assert reply.startswith(b"HTTP/1.1 503 ")
        await rawio.send_all(a, b"\r\n\r\n")
        assert (await _read_response(a)).startswith(b"HTTP/1.1 200 ")
        assert budget.statistics().used == 0
        a.close()
        b.shutdown(socket.SHUT_WR)
    b.close()


@pytest.mark.trio
async def test_pipelined_requests_are_answered_in_order():
    server_end, client = _pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(listener.serve_connection, server_end, EchoRouter(), None)
        batch = b"".join(f"POST /p{i} HTTP/1.1\r\nContent-Length: 2\r\n\r\n{i % 100:02d}".encode() for i in range(300))
        async with trio.open_nursery() as inner:
            inner.start_soon(rawio.send_all, client, batch + b"GET /last HTTP/1.1\r\nConnection: close\r\n\r\n")
            replies = await _read_all(client)
        bodies = [part.rsplit(b"\r\n\r\n", 1)[-1] for part in replies.split(b"HTTP/1.1 200 OK")[1:]]
        assert bodies[:300] == [f"/p{i}:{i % 100:02d}".encode() for i in range(300)]
        assert bodies[300].startswith(b"/last:")
    client.close()


async def _connect(port: int) -> socket.socket:
    sock = socket.socket()
    sock.setblocking(False)
    try:
        sock.connect(("127.0.0.1", port))
    except BlockingIOError:
        await trio.lowlevel.wait_writable(sock)
    return sock


@pytest.fixture
def listening():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    yield sock
    sock.close()


@pytest.mark.trio
async def test_at_the_cap_an_idle_connection_makes_room(autojump_clock, listening):
    slots = ConnectionSlots(2)
    port = listening.getsockname()[1]
    async with trio.open_nursery() as nursery:
        await nursery.start(lambda task_status: listener.serve(listening, EchoRouter(), slots=slots, task_status=task_status))
        first, second = await _connect(port), await _connect(port)
        for sock in (first, second):
            await rawio.send_all(sock, b"GET /hello HTTP/1.1\r\n\r\n")
            assert (await _read_response(sock)).startswith(b"HTTP/1.1 200 ")
            await trio.sleep(1)  # so that first has been idle longer
        assert slots.statistics().open == 2
        started = trio.current_time()
        third = await _connect(port)
        await rawio.send_all(third, b"GET /third HTTP/1.1\r\n\r\n")
        assert (await _read_response(third)).endswith(b"/third:")
        assert trio.current_time() - started < listener.IDLE_TIMEOUT_S  # not by the idle timeout
        assert await rawio.recv(first) == b""  # the one idle longest was closed
        await rawio.send_all(second, b"GET /again HTTP/1.1\r\n\r\n")
        assert (await _read_response(second)).endswith(b"/again:")
        assert slots.statistics().reclaimed == 1
        nursery.cancel_scope.cancel()
    for s in (first, second, third):
        s.close()


@pytest.mark.trio
async def test_at_the_cap_busy_connections_make_new_ones_wait(autojump_clock, listening):
    limits = HttpLimits(head_timeout_s=10.0)
    slots = ConnectionSlots(2)
    port = listening.getsockname()[1]
    async with trio.open_nursery() as nursery:
        await nursery.start(
            lambda task_status: listener.serve(listening, EchoRouter(), limits=limits, slots=slots, task_status=task_status)
        )
        slow = [await _connect(port), await _connect(port)]
        for sock in slow:
            await rawio.send_all(sock, b"GET /slow HTTP/1.1\r\nX-Part: ")
        await trio.testing.wait_all_tasks_blocked()
        started = trio.current_time()
        third = await _connect(port)
        await rawio.send_all(third, b"GET /third HTTP/1.1\r\n\r\n")
        # Nothing idle to reclaim: the third is served only once the slow
        # heads have met their timeout.
        assert (await _read_response(third)).endswith(b"/third:")
        assert trio.current_time() - started >= limits.head_timeout_s - 1
        for sock in slow:
            assert (await _read_all(sock)).startswith(b"HTTP/1.1 408 ")
        assert slots.statistics().reclaimed == 0
        nursery.cancel_scope.cancel()
    for s in (*slow, third):
        s.close()


class KeepingRouter(EchoRouter):
    """Keeps what it was given and what it answered, to count who else does."""

    async def handle(self, head, body, client):
        self.body = body
        self.payload = b"r" * 100_000
        return 200, [], self.payload


@pytest.mark.trio
async def test_an_idle_connection_holds_no_request_or_response(autojump_clock):
    """A client that sends a large body, reads the answer and then idles
    must not pin either for the keep-alive timeout (a URL with AuthType NONE
    would let anyone pin 6 MB per connection that way)."""
    import sys

    router = KeepingRouter(limit=1 << 20)
    server_end, client = _pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(listener.serve_connection, server_end, router, None)
        await rawio.send_all(client, b"POST /big HTTP/1.1\r\nContent-Length: 200000\r\n\r\n" + b"b" * 200_000)
        assert (await _read_response(client)).endswith(router.payload)
        await trio.testing.wait_all_tasks_blocked()
        # Only the router and getrefcount's argument refer to them now
        # (counted outside the assert, which pytest rewrites to keep its parts).
        refs = sys.getrefcount(router.body), sys.getrefcount(router.payload)
        assert refs == (2, 2)
        nursery.cancel_scope.cancel()
    client.close()


class BigAnswerRouter(EchoRouter):
    async def handle(self, head, body, client):
        return 200, [], b"a" * 1_000_000


@pytest.mark.trio
async def test_a_response_waiting_on_a_slow_reader_counts_against_the_budget(autojump_clock):
    budget = ByteBudget(4 << 20)
    server_end, client = _pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(listener.serve_connection, server_end, BigAnswerRouter(), None, listener.DEFAULT_LIMITS, budget)
        await rawio.send_all(client, b"GET /big HTTP/1.1\r\n\r\n")
        await trio.testing.wait_all_tasks_blocked()
        # The client has not read: the response waits, counted.
        assert budget.statistics().used > 1_000_000
        reply = await _read_response(client)
        assert reply.endswith(b"a" * 1000) and len(reply) > 1_000_000
        await trio.testing.wait_all_tasks_blocked()
        assert budget.statistics().used == 0
        nursery.cancel_scope.cancel()
    client.close()


@pytest.mark.trio
async def test_a_slow_reader_past_the_budget_is_cut_off(autojump_clock):
    budget = ByteBudget(512 << 10)
    server_end, client = _pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(listener.serve_connection, server_end, BigAnswerRouter(), None, listener.DEFAULT_LIMITS, budget)
        await rawio.send_all(client, b"GET /big HTTP/1.1\r\n\r\n")
        await trio.testing.wait_all_tasks_blocked()
        started = trio.current_time()
        got = await _read_all(client)
        assert 0 < len(got) < 1_000_000  # what the socket had taken, then the close
        assert trio.current_time() == started  # not by the send timeout
        assert budget.statistics() == BudgetStatistics(512 << 10, 0, 1)
    client.close()
