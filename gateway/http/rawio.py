"""Non-blocking socket I/O for the data plane, scheduled by trio.

trio's socket wrappers checkpoint on every call, even when the kernel could
complete it at once; on the invoke path that is four trips through the
scheduler per request. Here a call goes straight to the kernel and yields
to trio only when it would block (wait_readable / wait_writable), which is
also where cancellation and timeouts take effect.
"""

from __future__ import annotations

import socket

import trio


async def recv(sock: socket.socket, size: int = 65536) -> bytes:
    while True:
        try:
            return sock.recv(size)
        except BlockingIOError:
            await trio.lowlevel.wait_readable(sock)


async def recv_after_wait(sock: socket.socket, size: int = 65536) -> bytes:
    """recv() for a socket whose data cannot be there yet: the peer has only
    just been sent a request (a worker) or a response (a client). Waiting
    first skips a recv() that would fail with EAGAIN, and the exception it
    raises, on every call."""
    while True:
        await trio.lowlevel.wait_readable(sock)
        try:
            return sock.recv(size)
        except BlockingIOError:
            pass


async def recv_into(sock: socket.socket, buffer: bytearray) -> int:
    while True:
        try:
            return sock.recv_into(buffer)
        except BlockingIOError:
            await trio.lowlevel.wait_readable(sock)


async def recvmsg(sock: socket.socket, size: int, ancsize: int):
    while True:
        try:
            return sock.recvmsg(size, ancsize)
        except BlockingIOError:
            await trio.lowlevel.wait_readable(sock)


async def send_all(sock: socket.socket, data: bytes) -> None:
    try:
        sent = sock.send(data)
    except BlockingIOError:
        sent = 0
    if sent == len(data):
        return
    view = memoryview(data)[sent:]
    while view:
        await trio.lowlevel.wait_writable(sock)
        try:
            sent = sock.send(view)
        except BlockingIOError:
            continue
        view = view[sent:]


def send_now(sock: socket.socket, data: bytes | memoryview) -> int:
    """What the socket takes of data without waiting (0 when its buffer is full)."""
    try:
        return sock.send(data)
    except BlockingIOError:
        return 0


def send_nowait(sock: socket.socket, data: bytes) -> None:
    """Sends what the socket takes now, without waiting; for a last word to
    a client that may no longer be reading."""
    try:
        sock.send(data)
    except OSError:
        pass


def has_pending(sock: socket.socket) -> bool:
    """Whether the peer has sent something not read yet (or closed)."""
    try:
        sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except BlockingIOError:
        return False
    except OSError:
        return True
    return True


async def accept(sock: socket.socket) -> tuple[socket.socket, object]:
    while True:
        try:
            conn, addr = sock.accept()
        except BlockingIOError:
            await trio.lowlevel.wait_readable(sock)
            continue
        conn.setblocking(False)
        return conn, addr


def close(sock: socket.socket) -> None:
    """Closes a socket another task may be waiting on."""
    trio.lowlevel.notify_closing(sock)
    sock.close()
