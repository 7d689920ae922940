"""The connection loop under a mock clock: keep-alive and timeouts, no sleeps."""
from __future__ import annotations

import socket

import pytest
import trio

from lambdalet.gateway import listener, rawio


class EchoRouter:
    def body_limit(self, head):
        return 1024

    def too_large(self, head):
        return 413, [], b"too large"

    async def handle(self, head, body, client):
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
    watchdog = listener.Watchdog()
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
    watchdog = listener.Watchdog()
    async with trio.open_nursery() as nursery:
        await nursery.start(watchdog.run)
        nursery.start_soon(listener.serve_connection, server_end, EchoRouter(), watchdog)
        await rawio.send_all(client, b"GET /slow HTTP/1.1\r\nX-Part: ")
        started = trio.current_time()
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
