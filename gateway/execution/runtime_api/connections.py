"""A runtime's connections to the sandbox's API, as server.py keeps them.

Each connection is read by one party at a time (Conn.owner): a task of its
own (TASK), the task running a call (CALLER), or nobody (FREE). The free
ones sit in a FreeSet, a private epoll set with an eventfd, whose one fd
the calling task waits on: any free connection that becomes readable, or
a wake() from another task, ends the wait.

linger() is how a connection that broke HTTP is let go without losing the
error reply sent to it.
"""

from __future__ import annotations

import os
import select
import socket

import trio

from lambdalet.gateway.http import rawio

from . import wire

RECV = 65536
MAX_DISCARD = 1 << 20  # read and dropped before closing a connection that broke HTTP
LINGER_S = 2.0  # how long such a connection may keep sending before it is closed anyway
_READY = select.EPOLLIN | select.EPOLLRDHUP

FREE, TASK, CALLER = range(3)  # who reads a connection


class Conn:
    __slots__ = ("id", "sock", "fd", "reader", "owner", "watched", "sending", "send_done", "unparked", "closed")

    def __init__(self, conn_id: int, sock: socket.socket) -> None:
        self.id = conn_id
        self.sock = sock
        self.fd = sock.fileno()
        self.reader = wire.RequestReader()
        self.owner = TASK
        self.watched = False  # in the FreeSet (while free)
        self.sending = False  # a send is under way (sends from two tasks must not interleave)
        self.send_done: trio.Event | None = None
        self.unparked: trio.Event | None = None  # set when a parked `next` is answered
        self.closed = False


class FreeSet:
    """The connections no task reads, and an eventfd to wake their reader."""

    def __init__(self) -> None:
        self._epoll = select.epoll()
        self._wakefd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._epoll.register(self._wakefd, select.EPOLLIN)

    def fileno(self) -> int:
        """Readable once a free connection is, or after wake()."""
        return self._epoll.fileno()

    def watch(self, conn: Conn) -> None:
        if not conn.watched and not conn.closed:
            self._epoll.register(conn.fd, _READY)
            conn.watched = True

    def unwatch(self, conn: Conn) -> None:
        if conn.watched:
            try:
                self._epoll.unregister(conn.fd)
            except (OSError, ValueError):  # the set is closed already
                pass
            conn.watched = False

    def ready(self) -> list[int]:
        """The fds of the free connections readable now; consumes a wake()."""
        try:
            ready = self._epoll.poll(0)
        except (OSError, ValueError):  # closed under us
            return []
        fds = []
        for fd, _events in ready:
            if fd == self._wakefd:
                try:
                    os.eventfd_read(fd)
                except BlockingIOError:
                    pass
                continue
            fds.append(fd)
        return fds

    def wake(self) -> None:
        os.eventfd_write(self._wakefd, 1)

    def close(self) -> None:
        """On the event loop: whoever waits on fileno() is told first."""
        trio.lowlevel.notify_closing(self._epoll.fileno())
        self._epoll.close()
        os.close(self._wakefd)


async def linger(sock: socket.socket) -> None:
    """Lets go of a connection that broke HTTP without losing the error
    reply; the caller closes it after. A close with unread bytes resets the
    connection, and a reset can overtake the reply the peer has not read
    yet; so, as web servers do (a "lingering close"), our side is shut
    first (the reply, then EOF) and what the peer still sends is read and
    dropped until it closes, within a byte and a time budget."""
    try:
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    dropped = 0
    with trio.move_on_after(LINGER_S):
        while dropped < MAX_DISCARD:
            try:
                data = await rawio.recv(sock, RECV)
            except (OSError, trio.ClosedResourceError):
                break
            if not data:
                break
            dropped += len(data)
