"""The Telemetry API's deliveries: each subscriber's buffer POSTed to its
listener inside the sandbox, from the gateway's trio loop.

A subscriber's events go out as one JSON array per POST, in order, once
`maxItems` or `maxBytes` are waiting or `timeoutMs` after the oldest
arrived (telemetry.Buffer decides), and only while the environment runs:
a frozen sandbox cannot answer, so between calls nothing is sent and what
waits goes first when the next call (or SHUTDOWN) thaws it (flush()).

The listener is the extension's, so it is untrusted like everything in
the sandbox: a POST gets DELIVERY_TIMEOUT_S for its answer, an answer's
head and body are read up to small caps, a batch that could not go is put
back first (once a subscriber's queue is full, newer events are dropped
and counted in platform.logsDropped), and a flush is bounded in time so
that a listener that never answers costs its own function at most
FLUSH_BUDGET_S per call.
"""

from __future__ import annotations

import logging
import math
import os
import socket
from collections.abc import Awaitable, Callable

import trio

from . import telemetry as tm

log = logging.getLogger("lambdalet.telemetry")

DELIVERY_TIMEOUT_S = 1.0
FLUSH_BUDGET_S = 1.0
MAX_ANSWER_HEAD = 16 * 1024
MAX_ANSWER_BODY = 64 * 1024
RETRY_AFTER_S = 0.1  # a failed POST is tried again this much later at the earliest

Connect = Callable[[int], Awaitable[trio.socket.SocketType]]


class DeliveryFailed(Exception):
    pass


def now_ms() -> int:
    return int(trio.current_time() * 1000)


class Subscriber:
    def __init__(self, name: str, sub: tm.Subscription) -> None:
        self.name = name
        self.buffer = tm.Buffer(sub)
        self.lock = trio.Lock()  # one POST at a time, in order
        self.changed = trio.Event()
        self.conn: trio.socket.SocketType | None = None
        self.retry_at = 0.0  # trio time before which a failed listener is not tried again
        self.failures = 0
        self.batches = 0

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


class Deliveries:
    """Every subscriber of one environment."""

    def __init__(self, connect: Connect) -> None:
        self._connect = connect
        self.subscribers: list[Subscriber] = []
        # What was emitted during init, before anyone could subscribe: a
        # subscription made during init receives it (initStart included),
        # as on AWS. Dropped once init is over.
        self._backlog: list[tm.Event] | None = []
        self._backlog_bytes = 0
        self.active = True  # the sandbox runs (init, a call, SHUTDOWN): deliveries may go
        self._nursery: trio.Nursery | None = None
        self._closed = False

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            await trio.sleep_forever()

    def subscribe(self, name: str, sub: tm.Subscription) -> None:
        """An extension's subscription; one that subscribes again changes
        its own (what waits for it stays, in order)."""
        for subscriber in self.subscribers:
            if subscriber.name == name:
                subscriber.buffer.sub = sub
                subscriber.close()  # the listener may have moved
                subscriber.changed.set()
                return
        subscriber = Subscriber(name, sub)
        now = now_ms()
        for event in self._backlog or ():
            subscriber.buffer.add(event, now)
        self.subscribers.append(subscriber)
        if self._nursery is not None:
            self._nursery.start_soon(self._serve, subscriber)

    def listening(self) -> bool:
        """Someone subscribed, or may still (init is not over)."""
        return bool(self.subscribers) or self._backlog is not None

    def init_over(self) -> None:
        self._backlog = None

    def emit(self, events: list[tm.Event]) -> None:
        if not events:
            return
        if self._backlog is not None and self._backlog_bytes < tm.QUEUE_BYTES:
            self._backlog += events
            self._backlog_bytes += sum(len(e.data) for e in events)
        now = now_ms()
        for subscriber in self.subscribers:
            added = False
            for event in events:
                added = subscriber.buffer.add(event, now) or added
            if added or subscriber.buffer.dropped_records:
                subscriber.changed.set()

    def set_active(self, active: bool) -> None:
        self.active = active
        for subscriber in self.subscribers:
            subscriber.changed.set()

    async def flush(self) -> None:
        """Delivers whatever waits now, whatever the buffering says (the
        sandbox is about to run a call or to shut down), within
        FLUSH_BUDGET_S."""
        with trio.move_on_after(FLUSH_BUDGET_S):
            for subscriber in self.subscribers:
                while subscriber.buffer.due_ms() is not None and trio.current_time() >= subscriber.retry_at:
                    if not await self._deliver(subscriber):
                        break

    async def quiet(self) -> None:
        """Waits for the POSTs under way (the sandbox is about to be frozen:
        an answer cut by the freeze would send its batch twice)."""
        with trio.move_on_after(DELIVERY_TIMEOUT_S):
            for subscriber in self.subscribers:
                async with subscriber.lock:
                    pass

    async def _serve(self, subscriber: Subscriber) -> None:
        try:
            await self._serve_one(subscriber)
        except Exception:  # a fault here must not take the server's loop down with it
            log.exception("telemetry delivery to %s stopped", subscriber.name)

    async def _serve_one(self, subscriber: Subscriber) -> None:
        buffer = subscriber.buffer
        while not self._closed:
            due = buffer.due_ms()
            if self.active and due is not None:
                at = max(due / 1000, subscriber.retry_at)
                if buffer.full() and trio.current_time() >= subscriber.retry_at:
                    at = 0.0
            else:
                at = math.inf
            if trio.current_time() >= at:
                await self._deliver(subscriber)
                continue
            with trio.move_on_at(at):
                await subscriber.changed.wait()
            subscriber.changed = trio.Event()

    async def _deliver(self, subscriber: Subscriber) -> bool:
        """One batch; False if it could not go (it is put back first)."""
        async with subscriber.lock:
            batch = subscriber.buffer.take(now_ms())
            if batch is None:
                return True
            try:
                with trio.fail_after(DELIVERY_TIMEOUT_S):
                    await self._post(subscriber, batch)
            except (OSError, DeliveryFailed, trio.TooSlowError):
                subscriber.close()
                subscriber.buffer.put_back(batch)
                subscriber.failures += 1
                subscriber.retry_at = trio.current_time() + RETRY_AFTER_S
                return False
            subscriber.batches += 1
            return True

    async def _post(self, subscriber: Subscriber, batch: bytes) -> None:
        sub = subscriber.buffer.sub
        head = (
            f"POST {sub.path} HTTP/1.1\r\nHost: sandbox.localdomain:{sub.port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(batch)}\r\n\r\n"
        ).encode()
        reused = subscriber.conn is not None
        if subscriber.conn is None:
            subscriber.conn = await self._connect(sub.port)
        conn = subscriber.conn
        try:
            await _send_all(conn, head + batch)
            status, keep = await _read_answer(conn)
        except (OSError, DeliveryFailed):
            if not reused:
                raise
            # A kept connection the listener closed meanwhile: once more on a new one.
            subscriber.close()
            subscriber.conn = conn = await self._connect(sub.port)
            await _send_all(conn, head + batch)
            status, keep = await _read_answer(conn)
        if not keep:
            subscriber.close()
        if not 200 <= status < 300:
            raise DeliveryFailed(f"the listener answered {status}")

    def close(self) -> None:
        self._closed = True
        for subscriber in self.subscribers:
            subscriber.close()
            subscriber.changed.set()
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()


async def _send_all(conn: trio.socket.SocketType, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[await conn.send(view) :]


async def _read_answer(conn: trio.socket.SocketType) -> tuple[int, bool]:
    """The listener's answer: its status, and whether the connection may
    carry the next POST. Its body is read and dropped (up to a cap)."""
    data = b""
    while b"\r\n\r\n" not in data:
        if len(data) > MAX_ANSWER_HEAD:
            raise DeliveryFailed("answer head too long")
        more = await conn.recv(65536)
        if not more:
            raise DeliveryFailed("connection closed before an answer")
        data += more
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit() or len(parts[1]) != 3:
        raise DeliveryFailed("not an HTTP answer")
    status = int(parts[1])
    length = None
    keep = parts[0] == b"HTTP/1.1"
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        value = value.strip()
        if name == b"content-length":
            if not value.isdigit() or len(value) > 12:
                raise DeliveryFailed("bad Content-Length")
            length = int(value)
        elif name == b"connection":
            keep = value.lower() == b"keep-alive" or (keep and value.lower() != b"close")
        elif name == b"transfer-encoding":
            keep = False  # not read: the connection is not reused
    if status in (204, 304) or 100 <= status < 200:
        length = 0
    if length is None or length > MAX_ANSWER_BODY:
        return status, False
    while len(rest) < length:
        more = await conn.recv(65536)
        if not more:
            return status, False
        rest += more
    return status, keep and len(rest) == length


async def connect_in(pidfd: int | None, port: int) -> trio.socket.SocketType:
    """A TCP connection to 127.0.0.1:port in the network namespace of the
    process pidfd refers to (the sandbox's PID 1; the caller's fd, which
    this duplicates so that closing it meanwhile cannot hand the thread
    another fd), or in the server's own (None: a plain-process sandbox
    shares the host's network)."""
    if pidfd is None:
        raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    else:
        from lambdalet.sandbox.netns_socket import tcp_socket_in

        own = os.dup(pidfd)
        try:
            raw = await trio.to_thread.run_sync(tcp_socket_in, own)
        finally:
            os.close(own)
    sock = trio.socket.from_stdlib_socket(raw)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        await sock.connect(("127.0.0.1", port))
    except BaseException:
        sock.close()
        raise
    return sock
