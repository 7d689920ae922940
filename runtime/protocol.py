"""Messages between the gateway and a worker, and their framing.

Sans-IO: this module turns messages into bytes and bytes into messages and
never touches a socket. A frame is a 4-byte little-endian length followed by
a msgpack body; msgspec's tagged unions tell the message types apart.
"""
from __future__ import annotations

import struct

import msgspec

MAX_FRAME = 64 * 1024 * 1024  # a 6 MB payload plus its log fits with room to spare
_LEN = struct.Struct("<I")


class Init(msgspec.Struct, tag="init", array_like=True):
    """Sent once after spawn: import the handler and get ready to serve."""

    handler: str
    task_root: str
    env: dict[str, str]
    function_name: str
    function_version: str
    memory_mb: int
    log_group: str
    log_stream: str


class Ready(msgspec.Struct, tag="ready", array_like=True):
    """Sent once at start: the runtime is loaded and waits for Init. Lets a
    pre-started (spare) sandbox be known ready before it is needed."""


# log_marks: (offset in log, epoch ms) pairs, the bytes before each offset
# written by then (gateway/logs.py says how they are used, and checked).


class InitOk(msgspec.Struct, tag="init_ok", array_like=True):
    init_ns: int
    log: bytes = b""
    log_marks: list[tuple[int, int]] = []


class InitError(msgspec.Struct, tag="init_error", array_like=True):
    """The handler could not be loaded. payload is Lambda's error JSON."""

    error_type: str
    payload: bytes
    init_ns: int
    log: bytes = b""
    log_marks: list[tuple[int, int]] = []


class Invoke(msgspec.Struct, tag="invoke", array_like=True):
    request_id: str
    payload: bytes
    deadline_ms: int  # wall-clock epoch milliseconds, as Lambda-Runtime-Deadline-Ms
    invoked_arn: str
    client_context: str | None = None


class Result(msgspec.Struct, tag="result", array_like=True):
    """One call's outcome. error_type is None on success; otherwise payload
    holds Lambda's {"errorMessage", "errorType", ...} document."""

    request_id: str
    payload: bytes
    duration_ns: int
    error_type: str | None = None
    log: bytes = b""
    max_rss_kb: int = 0  # the instance's peak resident memory, itself and reaped children
    log_marks: list[tuple[int, int]] = []


ToWorker = Init | Invoke
FromWorker = Ready | InitOk | InitError | Result

_encoder = msgspec.msgpack.Encoder()
_to_worker = msgspec.msgpack.Decoder(ToWorker)
_from_worker = msgspec.msgpack.Decoder(FromWorker)


class FrameError(ValueError):
    """The peer sent bytes that are not a valid frame."""


def encode(msg: msgspec.Struct) -> bytes:
    body = _encoder.encode(msg)
    return _LEN.pack(len(body)) + body


class FrameReader:
    """Accumulates bytes and yields whole decoded messages."""

    __slots__ = ("_buf", "_decoder")

    def __init__(self, direction: str) -> None:
        if direction not in ("to_worker", "from_worker"):
            raise ValueError(direction)
        self._buf = bytearray()
        self._decoder = _to_worker if direction == "to_worker" else _from_worker

    def feed(self, data: bytes) -> list:
        self._buf += data
        out = []
        buf = self._buf
        while len(buf) >= 4:
            (n,) = _LEN.unpack_from(buf)
            if n > MAX_FRAME:
                raise FrameError(f"frame of {n} bytes exceeds {MAX_FRAME}")
            if len(buf) < 4 + n:
                break
            body = bytes(buf[4 : 4 + n])
            del buf[: 4 + n]
            try:
                out.append(self._decoder.decode(body))
            except msgspec.DecodeError as exc:
                raise FrameError(str(exc)) from exc
        return out
