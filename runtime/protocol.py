"""Messages between the gateway and a worker, and their framing.

Sans-IO: this module turns messages into bytes and bytes into messages and
never touches a socket. A frame is a 4-byte little-endian length followed by
a msgpack body; msgspec's tagged unions tell the message types apart.
"""

from __future__ import annotations

import struct
from typing import Optional, Union

try:
    import msgspec
except ImportError:  # an interpreter with no msgspec build of its own (README: Runtimes)
    from . import msgspec_fallback as msgspec  # type: ignore[no-redef]

# What a worker may send back. Everything it sends is untrusted (the function
# runs in the worker's process and can write on the channel itself), so the
# gateway measures durations and memory itself and enforces these limits.
MAX_RESPONSE = 6_291_556  # bytes of a synchronous response, as AWS allows
MAX_CALL_LOG = 1 << 20  # bytes of log one call (or one init) may leave
# A frame from a worker holds one response and one log, plus a request id
# and an error type; a bigger declared length is refused from its header
# alone, so a function cannot make the gateway buffer more than this.
MAX_FRAME_FROM_WORKER = MAX_RESPONSE + MAX_CALL_LOG + 256 * 1024  # + ids and up to 4096 log marks
# Frames to a worker come from the gateway: a 6 MB request grows to ~8 MB
# as a function URL's base64 event; this only stops a corrupt length.
MAX_FRAME_TO_WORKER = 64 * 1024 * 1024
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
# written by then (gateway/metering/log_lines.py says how they are used, and checked).


class InitOk(msgspec.Struct, tag="init_ok", array_like=True):
    log: bytes = b""
    log_marks: list[tuple[int, int]] = []


class InitError(msgspec.Struct, tag="init_error", array_like=True):
    """The handler could not be loaded. payload is Lambda's error JSON."""

    error_type: str
    payload: bytes
    log: bytes = b""
    log_marks: list[tuple[int, int]] = []


class Invoke(msgspec.Struct, tag="invoke", array_like=True):
    request_id: str
    payload: bytes
    deadline_ms: int  # wall-clock epoch milliseconds, as Lambda-Runtime-Deadline-Ms
    invoked_arn: str
    client_context: Optional[str] = None


class Result(msgspec.Struct, tag="result", array_like=True):
    """One call's outcome. error_type is None on success; otherwise payload
    holds Lambda's {"errorMessage", "errorType", ...} document. It carries no
    duration or memory figure: what is billed, the gateway measures."""

    request_id: str
    payload: bytes
    error_type: Optional[str] = None
    log: bytes = b""
    log_marks: list[tuple[int, int]] = []


class Bootstrap(msgspec.Struct, tag="bootstrap", array_like=True):
    """Sent instead of Init to a custom runtime's worker (provided.al2023,
    provided.al2): become the function's bootstrap. The worker opens the
    Runtime API's listening socket at host:port (port 0: any), answers
    Launched with that socket and its log memfd attached (SCM_RIGHTS), and
    execs the first of paths that exists, in cwd, with exactly env plus
    AWS_LAMBDA_RUNTIME_API. When nothing can be exec'd it answers InitError
    (Runtime.InvalidEntrypoint) instead. From then on the channel is silent:
    the gateway serves the Runtime API on the socket.

    A language runtime (nodejs*, java*, dotnet8) is launched the same way:
    paths names its program, argv what follows the program's own name,
    and with stdin the control channel becomes the program's fd 0, on
    which the gateway sends the function's configuration (one JSON line)
    once the program has started (gateway/execution/languages.py)."""

    paths: list[str]
    env: dict[str, str]
    cwd: str
    host: str
    port: int
    argv: list[str] = []
    stdin: bool = False
    # The API's socket was opened for the extensions already (and is the
    # gateway's): port is the one it listens on, and only the log memfd
    # comes with Launched.
    api_open: bool = False


class Launched(msgspec.Struct, tag="launched", array_like=True):
    """The worker is about to exec path; the Runtime API listens on port."""

    path: str
    port: int


class StartExtensions(msgspec.Struct, tag="start_extensions", array_like=True):
    """Sent before Init or Bootstrap when the function's layers hold
    /opt/extensions: open the API socket at host:port and start each
    extension there with env (runtime/extensions.py)."""

    env: dict[str, str]
    host: str
    port: int
    directory: str = "/opt/extensions"


class ExtensionsStarted(msgspec.Struct, tag="extensions_started", array_like=True):
    """The answer to StartExtensions, with the API's listening socket, the
    extensions' log memfd and a pidfd per started extension attached, in
    the order of started. failed: [name, why] for each that could not be
    started."""

    port: int
    started: list[str]
    failed: list[list[str]]


# typing.Union and Optional above, not `|`: the runtime runs on Python 3.9 too.
ToWorker = Union[Init, Invoke, Bootstrap, StartExtensions]
FromWorker = Union[Ready, InitOk, InitError, Result, Launched, ExtensionsStarted]

_encoder = msgspec.msgpack.Encoder()
_to_worker = msgspec.msgpack.Decoder(ToWorker)
_from_worker = msgspec.msgpack.Decoder(FromWorker)


class FrameError(ValueError):
    """The peer sent bytes that are not a valid frame."""


class FrameTooLarge(FrameError):
    """A frame's header declares more bytes than the reader accepts."""

    def __init__(self, length: int, limit: int) -> None:
        super().__init__(f"frame of {length} bytes exceeds {limit}")
        self.length = length
        self.limit = limit


def encode(msg: msgspec.Struct) -> bytes:
    body = _encoder.encode(msg)
    return _LEN.pack(len(body)) + body


class FrameReader:
    """Accumulates bytes and yields whole decoded messages. A length over
    the direction's limit raises FrameTooLarge as soon as its 4-byte header
    is in, before any of the body is kept."""

    __slots__ = ("_buf", "_decoder", "_limit")

    def __init__(self, direction: str) -> None:
        if direction not in ("to_worker", "from_worker"):
            raise ValueError(direction)
        self._buf = bytearray()
        self._decoder = _to_worker if direction == "to_worker" else _from_worker
        self._limit = MAX_FRAME_TO_WORKER if direction == "to_worker" else MAX_FRAME_FROM_WORKER

    def feed(self, data: bytes) -> list:
        self._buf += data
        out = []
        buf = self._buf
        while len(buf) >= 4:
            (n,) = _LEN.unpack_from(buf)
            if n > self._limit:
                raise FrameTooLarge(n, self._limit)
            if len(buf) < 4 + n:
                break
            body = bytes(buf[4 : 4 + n])
            del buf[: 4 + n]
            if n > 1 << 20 and not buf:
                # Deleting from the front keeps the buffer's allocation: let
                # a large frame's go rather than hold it for the instance's life.
                self._buf = buf = bytearray()
            try:
                out.append(self._decoder.decode(body))
            except msgspec.DecodeError as exc:
                raise FrameError(str(exc)) from exc
        return out
