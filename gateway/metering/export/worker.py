"""The export's worker process: where batches become OTLP requests or
syslog messages and go out, off the server's event loop.

Encoding a call costs ~15 us of CPU in Python (a protobuf record per log
line, or an RFC 5424 message), as much as a tenth of what the server
spends answering a warm call; under the GIL that time would be taken from
the calls themselves. So the server only hands each batch over, as one
msgpack frame on this process's stdin (~1 us a call), and this process
encodes it and delivers it with the real sink (sinks.py), answering each
frame with what happened. The server's channel keeps the buffer, the
backoff and the counts (channel.py); a frame sent again after `retry`
(same seq) resumes where the last try stopped, so a payload that went
through is not sent twice.

Frames, both ways: a 4-byte big-endian length, then msgpack. The first
frame is the SinkSpec (on stdin, not on the command line, which any user
of the host may read: it may hold an API key). The process ends when its
stdin does (the server stopped, or died).

    python -m lambdalet.gateway.metering.export   (__main__.py)
"""

from __future__ import annotations

import os
import signal
import struct
import sys
import time

import msgspec
import trio

from ..ledger import UsageRecord
from ..log_records import CallLog
from .sinks import OtlpSink, P, Rejected, Retry, Sink, SyslogSink
from .targets import OtlpTarget, SyslogTarget

_LENGTH = struct.Struct(">I")
MAX_FRAME_BYTES = 1 << 30


class SinkSpec(msgspec.Struct, frozen=True, kw_only=True):
    """What the worker builds its sink from."""

    otlp: OtlpTarget | None = None
    syslog: SyslogTarget | None = None
    region: str = ""
    account: str = ""
    hostname: str = ""
    version: str = ""

    @property
    def name(self) -> str:
        return "otlp" if self.otlp is not None else "syslog"


class Batch(msgspec.Struct, array_like=True):
    seq: int
    calls: list[tuple[UsageRecord, CallLog | None]]


class Answer(msgspec.Struct, array_like=True):
    seq: int
    status: str  # ok | retry | rejected
    message: str = ""


def frame(body: bytes) -> bytes:
    return _LENGTH.pack(len(body)) + body


async def read_frame(stream: trio.abc.ReceiveStream, pending: bytearray) -> bytes | None:
    """The next frame's body, None at the end of the stream. `pending`
    holds what was read past the last frame."""
    while True:
        if len(pending) >= 4:
            (size,) = _LENGTH.unpack_from(pending)
            if size > MAX_FRAME_BYTES:
                raise ValueError(f"export frame of {size} bytes")
            if len(pending) >= 4 + size:
                body = bytes(pending[4 : 4 + size])
                del pending[: 4 + size]
                return body
        data = await stream.receive_some(1 << 20)
        if not data:
            return None
        pending += data


async def serve(stdin: trio.abc.ReceiveStream, stdout: trio.abc.SendStream) -> None:
    """Builds the sink the first frame's SinkSpec names, then answers each
    batch that follows."""
    pending = bytearray()
    first = await read_frame(stdin, pending)
    if first is None:
        return
    spec = msgspec.msgpack.decode(first, type=SinkSpec)
    if spec.otlp is not None:
        from .otlp_encode import Encoder

        encoder = Encoder(region=spec.region, account=spec.account, host_name=spec.hostname, scope_version=spec.version)
        await _serve(OtlpSink(spec.otlp, encoder), stdin, stdout, pending)
    elif spec.syslog is not None:
        await _serve(SyslogSink(spec.syslog, spec.hostname), stdin, stdout, pending)
    else:
        raise ValueError("the export worker was given no destination")


async def _serve(sink: Sink[P], stdin: trio.abc.ReceiveStream, stdout: trio.abc.SendStream, pending: bytearray) -> None:
    decode = msgspec.msgpack.Decoder(Batch).decode
    encode = msgspec.msgpack.Encoder().encode
    seq: int | None = None
    payloads: list[P] = []
    try:
        while (body := await read_frame(stdin, pending)) is not None:
            batch = decode(body)
            if batch.seq != seq:
                seq = batch.seq
                payloads = sink.encode(batch.calls, time.time_ns())
            answer = Answer(seq, "ok")
            try:
                while payloads:
                    await sink.deliver(payloads[0])
                    payloads.pop(0)
            except Retry as exc:
                answer = Answer(seq, "retry", str(exc))
            except Rejected as exc:
                payloads = []
                answer = Answer(seq, "rejected", str(exc))
            await stdout.send_all(frame(encode(answer)))
    finally:
        await sink.aclose()


def main() -> int:
    # A Ctrl-C in the server's terminal reaches this process too: the server
    # stops it, by closing its stdin, once the last batch went out.
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    async def run() -> None:
        stdin = trio.lowlevel.FdStream(os.dup(sys.stdin.fileno()))
        stdout = trio.lowlevel.FdStream(os.dup(sys.stdout.fileno()))
        async with stdin, stdout:
            await serve(stdin, stdout)

    try:
        trio.run(run)
    except trio.BrokenResourceError:
        return 0  # the server went away while we answered
    return 0
