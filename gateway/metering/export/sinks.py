"""Where a batch of finished calls goes: the OTLP/HTTP receiver and the
syslog server. Each sink turns a batch into payloads once (encode, no
I/O), then delivers each payload, perhaps several times (deliver); the
channel (channel.py) decides when to try again."""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, TypeVar

import trio

from ..log_records import split_events
from .http_client import HttpClient, HttpError
from .syslog_format import CallMessages, octet_counted
from .targets import OtlpTarget, SyslogTarget

if TYPE_CHECKING:
    from .otlp_encode import Encoder

# What the hook hands over per finished call: (ledger.UsageRecord, log_records.CallLog or None).
Call = tuple


class Retry(Exception):
    """The payload was not delivered and may be on a later try (the
    receiver is down, busy or slow)."""


class Rejected(Exception):
    """The receiver refused the payload for good: trying again would not help."""


# What a sink makes of a batch and then delivers: its own type per sink.
P = TypeVar("P")


class Sink(Protocol[P]):
    name: str

    async def start(self) -> None: ...

    def encode(self, batch: list[Call], now_ns: int) -> list[P]: ...

    async def deliver(self, payload: P) -> None: ...

    async def aclose(self) -> None: ...


def _lines(log) -> list[tuple[int, str]]:
    return split_events(log) if log is not None else []


# OTLP/HTTP's answers that ask for a later try (the specification's list).
RETRYABLE_STATUS = frozenset({429, 502, 503, 504})
PROTOBUF = "application/x-protobuf"


class OtlpSink:
    name = "otlp"

    def __init__(self, target: OtlpTarget, encoder: Encoder, *, headers: Sequence[tuple[str, str]] = (), timeout_s: float = 10.0) -> None:
        self.target = target
        self.encoder = encoder
        self.headers = list(headers) or list(target.headers)
        self.client = HttpClient(target.scheme, target.host, target.port, timeout_s=timeout_s)
        self._window_start_ns = time.time_ns()

    async def start(self) -> None:
        pass

    def encode(self, batch: list[Call], now_ns: int) -> list[tuple[str, bytes]]:
        """(URL path, protobuf body) per request: the logs, if any line
        was written, then the metrics."""
        calls = [(usage, log.log_group, log.log_stream, _lines(log)) for usage, log in batch if log is not None]
        start, self._window_start_ns = self._window_start_ns, now_ns
        payloads: list[tuple[str, bytes]] = []
        if any(lines for *_, lines in calls):
            payloads.append((self.target.logs_path, self.encoder.logs(calls, now_ns)))
        payloads.append((self.target.metrics_path, self.encoder.metrics([usage for usage, _ in batch], start, now_ns)))
        return payloads

    async def deliver(self, payload: tuple[str, bytes]) -> None:
        path, body = payload
        try:
            status, _ = await self.client.post(path, body, PROTOBUF, self.headers)
        except HttpError as exc:
            raise Retry(str(exc)) from None
        if 200 <= status < 300:
            return
        if status in RETRYABLE_STATUS:
            raise Retry(f"HTTP {status} from {self.target.url(path)}")
        raise Rejected(f"HTTP {status} from {self.target.url(path)}")

    async def aclose(self) -> None:
        await self.client.aclose()


# A TCP payload is cut into sends of about this size, so that one send of a
# large batch does not hold the event loop.
TCP_CHUNK_BYTES = 256 * 1024


class SyslogSink:
    name = "syslog"

    def __init__(self, target: SyslogTarget, hostname: str, *, timeout_s: float = 10.0) -> None:
        self.target = target
        self.messages = CallMessages(hostname)
        self.timeout_s = timeout_s
        self._stream: trio.SocketStream | None = None
        self._udp: trio.socket.SocketType | None = None
        self._udp_addr: tuple[object, ...] | None = None

    async def start(self) -> None:
        pass

    def encode(self, batch: list[Call], now_ns: int) -> list[bytes | list[bytes]]:
        """Over UDP one payload, the list of datagrams (a retry sends the
        ones not sent yet); over TCP the octet-counted messages, cut into
        sends of about TCP_CHUNK_BYTES."""
        messages: list[bytes] = []
        for usage, log in batch:
            messages.extend(self.messages.of_call(usage, _lines(log), log.log_stream if log is not None else None))
        if self.target.transport == "udp":
            return [messages]
        payloads: list[bytes | list[bytes]] = []
        chunk: list[bytes] = []
        size = 0
        for msg in messages:
            framed = octet_counted(msg)
            chunk.append(framed)
            size += len(framed)
            if size >= TCP_CHUNK_BYTES:
                payloads.append(b"".join(chunk))
                chunk, size = [], 0
        if chunk:
            payloads.append(b"".join(chunk))
        return payloads

    async def deliver(self, payload: bytes | list[bytes]) -> None:
        try:
            with trio.fail_after(self.timeout_s):
                if isinstance(payload, list):
                    await self._send_datagrams(payload)
                else:
                    await self._send_stream(payload)
        except (OSError, trio.BrokenResourceError, trio.ClosedResourceError, trio.TooSlowError) as exc:
            await self.aclose()
            raise Retry(f"{self.target.url()}: {exc or type(exc).__name__}") from None

    async def _send_stream(self, data: bytes) -> None:
        if self._stream is not None and _peer_closed(self._stream.socket.fileno()):
            # rsyslog never writes on a syslog connection: anything to read
            # is its close (a restart, an idle timeout). A send now would
            # still succeed, into a socket whose peer is gone.
            await self.aclose()
        if self._stream is None:
            self._stream = await trio.open_tcp_stream(self.target.host, self.target.port)
        await self._stream.send_all(data)

    async def _send_datagrams(self, datagrams: list[bytes]) -> None:
        if self._udp is None or self._udp_addr is None:
            family, kind, proto, _, addr = (await trio.socket.getaddrinfo(self.target.host, self.target.port, type=socket.SOCK_DGRAM))[0]
            self._udp = trio.socket.socket(family, kind, proto)
            self._udp_addr = addr
        udp, to = self._udp, self._udp_addr
        sent = 0
        try:
            for datagram in datagrams:
                await udp.sendto(datagram, to)
                sent += 1
        finally:
            del datagrams[:sent]  # a later try sends only the rest

    async def aclose(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            with trio.CancelScope(shield=True):
                await trio.aclose_forcefully(stream)
        udp, self._udp = self._udp, None
        if udp is not None:
            udp.close()


def _peer_closed(fd: int) -> bool:
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLRDHUP | select.POLLHUP | select.POLLERR)
    return bool(poller.poll(0))
