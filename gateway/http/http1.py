"""A small, strict HTTP/1.1 server-side codec. Sans-IO.

Why not h11: docs/architecture.md measures trio+h11 at ~8-9k requests/s on these
machines against ~40k for a raw trio loop, and the invoke path has to beat a
peer doing ~5k while also making a round trip to a worker. This codec does
only what a server needs (request heads, Content-Length and chunked bodies,
keep-alive) and refuses everything ambiguous rather than guessing:
conflicting lengths, obsolete line folding, bare LF line ends, unknown
transfer codings.

Why not llhttp through httptools (uvicorn's parser): measured on the same
requests (issue 19), a parser built on it, with this codec's checks in its
callbacks, took 4.5 us for a function-URL request against this codec's
4.2, and 6.8 us against 7.2 for boto3's signed Invoke head: httptools
calls back into Python once per header, which costs what the C parsing
saves. Parsing is ~1-3% of the gateway's CPU per call either way.
"""

from __future__ import annotations

import email.utils
import re
import time

MAX_HEAD = 64 * 1024
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}")
_CONTROL_OR_SPACE = re.compile(r"[\x00-\x20\x7f]")
_BARE_LF = re.compile(rb"(?<!\r)\n")
MAX_HEADERS = 100
# RFC 9110 token characters, matched in C rather than a Python loop per character.
_TOKEN_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Methods that need no token check.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"})
# Header names already seen to be tokens, with their lower-case form: clients
# send the same few names on every request, and one dict lookup replaces a
# regex match and a lower(). Bounded in count and in name length, and
# emptied when full, so an unauthenticated client sending made-up names can
# neither pin memory nor keep the common names out for good.
_NAMES: dict[str, str] = {}
_NAMES_MAX = 512
_NAME_MAX_LEN = 64


class ProtocolError(Exception):
    """The client broke HTTP. status says what to answer before closing."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class BodyTooLarge(Exception):
    """The body exceeds the route's limit; the connection must close."""


class Head:
    __slots__ = ("method", "target", "headers", "content_length", "chunked", "keep_alive", "expect_continue")

    def __init__(
        self,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        content_length: int,
        chunked: bool,
        keep_alive: bool,
        expect_continue: bool,
    ) -> None:
        self.method = method
        self.target = target
        self.headers = headers  # names lower-cased, in order received
        self.content_length = content_length
        self.chunked = chunked
        self.keep_alive = keep_alive
        self.expect_continue = expect_continue

    def header(self, name: str, default: str | None = None) -> str | None:
        for k, value in self.headers:
            if k == name:
                return value
        return default

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]

    @property
    def query(self) -> str:
        parts = self.target.split("?", 1)
        return parts[1] if len(parts) == 2 else ""


def _parse_head(raw: bytes | bytearray) -> Head:
    try:
        text = raw.decode("latin-1")
    except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes anything
        raise ProtocolError(400, "undecodable head") from None
    lines = text.split("\r\n")
    request_line = lines[0]
    parts = request_line.split(" ")
    if len(parts) != 3:
        raise ProtocolError(400, "malformed request line")
    method, target, version = parts
    if method not in _METHODS and not _TOKEN_RE.fullmatch(method):
        raise ProtocolError(400, "malformed method")
    if version == "HTTP/1.1":
        keep_alive = True
    elif version == "HTTP/1.0":
        keep_alive = False
    else:
        raise ProtocolError(505, "unsupported HTTP version")
    if not target.startswith("/") or _CONTROL_OR_SPACE.search(target):
        if not (method == "OPTIONS" and target == "*"):
            raise ProtocolError(400, "malformed request target")
    if len(lines) - 1 > MAX_HEADERS:
        raise ProtocolError(431, "too many headers")
    headers: list[tuple[str, str]] = []
    content_length: int | None = None
    transfer_encoding: str | None = None
    expect_continue = False
    connection = ""
    for line in lines[1:]:
        if not line:
            continue
        if line[0] in " \t":
            raise ProtocolError(400, "obsolete line folding")
        name, sep, value = line.partition(":")
        if not sep:
            raise ProtocolError(400, "malformed header")
        lowered = _NAMES.get(name)
        if lowered is None:
            if not _TOKEN_RE.fullmatch(name):
                raise ProtocolError(400, "malformed header")
            lowered = name.lower()
            if len(name) <= _NAME_MAX_LEN:
                if len(_NAMES) >= _NAMES_MAX:
                    _NAMES.clear()
                _NAMES[name] = lowered
        name = lowered
        value = value.strip(" \t")
        if "\x00" in value or "\r" in value or "\n" in value:
            raise ProtocolError(400, "malformed header value")
        headers.append((name, value))
        if name == "content-length":
            # isascii(): str.isdigit() also accepts superscripts int() refuses.
            if not (value.isascii() and value.isdigit()) or len(value) > 18:
                raise ProtocolError(400, "malformed Content-Length")
            n = int(value)
            if content_length is not None and content_length != n:
                raise ProtocolError(400, "conflicting Content-Length")
            content_length = n
        elif name == "transfer-encoding":
            if transfer_encoding is not None:
                raise ProtocolError(400, "repeated Transfer-Encoding")
            transfer_encoding = value.lower()
        elif name == "connection":
            connection = value.lower()
        elif name == "expect":
            if value.lower() != "100-continue":
                raise ProtocolError(417, "unsupported expectation")
            expect_continue = True
    chunked = False
    if transfer_encoding is not None:
        if content_length is not None:
            raise ProtocolError(400, "both Content-Length and Transfer-Encoding")
        if transfer_encoding != "chunked":
            raise ProtocolError(501, "unsupported Transfer-Encoding")
        chunked = True
    if "close" in connection:
        keep_alive = False
    elif "keep-alive" in connection:
        keep_alive = True
    return Head(method, target, headers, content_length or 0, chunked, keep_alive, expect_continue)


def parse_head(raw: bytes | bytearray) -> Head:
    """One request head (the bytes before its blank line), parsed as strictly
    as RequestParser parses it; for codecs that read bodies their own way
    (the Runtime API's streamed, trailer-carrying responses)."""
    return _parse_head(raw)


class RequestParser:
    """Feed bytes; read a head, then its body, then the next head.

    read_head() and read_body() return None while more bytes are needed.
    """

    __slots__ = ("_buf", "_head", "_limit", "_body", "_chunk_left", "_chunk_state")

    def __init__(self) -> None:
        self._buf = bytearray()
        self._head: Head | None = None
        self._limit = 0
        self._body = bytearray()
        self._chunk_left = 0
        self._chunk_state = "size"

    @property
    def buffered(self) -> int:
        """Bytes received and not yet returned as a head or a body."""
        return len(self._buf) + len(self._body)

    def feed(self, data: bytes) -> None:
        self._buf += data

    def read_head(self) -> Head | None:
        if self._head is not None:
            raise RuntimeError("read the body of the previous request first")
        buf = self._buf
        # Tolerate empty lines between pipelined requests (RFC 9112 2.2).
        while buf.startswith(b"\r\n"):
            del buf[:2]
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > MAX_HEAD:
                raise ProtocolError(431, "request head too large")
            # A head whose lines end in a bare LF never ends here; a reader
            # in front that takes LF as a line end has framed it already.
            if _BARE_LF.search(buf):
                raise ProtocolError(400, "bare LF in request head")
            return None
        if end > MAX_HEAD:
            raise ProtocolError(431, "request head too large")
        head = _parse_head(buf[:end])
        del buf[: end + 4]
        self._head = head
        self._body = bytearray()
        self._chunk_state = "size"
        return head

    def set_body_limit(self, limit: int) -> None:
        """Raises BodyTooLarge at once when a declared length exceeds limit."""
        assert self._head is not None
        self._limit = limit
        if not self._head.chunked and self._head.content_length > limit:
            raise BodyTooLarge()

    def read_body(self) -> bytes | None:
        head = self._head
        if head is None:
            raise RuntimeError("no request head")
        if head.chunked:
            done = self._read_chunked()
            if not done:
                return None
            body = bytes(self._body)
            self._body = bytearray()
        else:
            n = head.content_length
            buf = self._buf
            if len(buf) < n:
                return None
            if n == len(buf):
                # The usual case, and the one large bodies take: one copy,
                # and the buffer's memory goes back at once.
                body = bytes(buf)
                buf.clear()
            else:
                with memoryview(buf) as view:
                    body = bytes(view[:n])
                del buf[:n]
        self._head = None
        return body

    def _read_chunked(self) -> bool:
        buf = self._buf
        while True:
            if self._chunk_state == "size":
                end = buf.find(b"\r\n")
                if end < 0:
                    if len(buf) > 1024:
                        raise ProtocolError(400, "malformed chunk size")
                    return False
                size_text = bytes(buf[:end]).split(b";", 1)[0]
                # Hex digits only: int() would also take "0x10", "1_0" and
                # signs, which a proxy in front may read differently.
                if not _CHUNK_SIZE.fullmatch(size_text):
                    raise ProtocolError(400, "malformed chunk size")
                size = int(size_text, 16)
                del buf[: end + 2]
                if size == 0:
                    self._chunk_state = "trailers"
                    continue
                if len(self._body) + size > self._limit:
                    raise BodyTooLarge()
                self._chunk_left = size
                self._chunk_state = "data"
            elif self._chunk_state == "data":
                take = min(self._chunk_left, len(buf))
                self._body += buf[:take]
                del buf[:take]
                self._chunk_left -= take
                if self._chunk_left:
                    return False
                self._chunk_state = "crlf"
            elif self._chunk_state == "crlf":
                if len(buf) < 2:
                    return False
                if buf[:2] != b"\r\n":
                    raise ProtocolError(400, "malformed chunk")
                del buf[:2]
                self._chunk_state = "size"
            else:  # trailers: ignored, up to the blank line
                end = buf.find(b"\r\n")
                if end < 0:
                    if len(buf) > MAX_HEAD:
                        raise ProtocolError(431, "trailers too large")
                    return False
                del buf[: end + 2]
                if end == 0:
                    return True


_REASONS = {
    100: "Continue",
    200: "OK",
    201: "Created",
    202: "Accepted",
    204: "No Content",
    206: "Partial Content",
    301: "Moved Permanently",
    302: "Found",
    303: "See Other",
    304: "Not Modified",
    307: "Temporary Redirect",
    308: "Permanent Redirect",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    409: "Conflict",
    411: "Length Required",
    412: "Precondition Failed",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    417: "Expectation Failed",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
    505: "HTTP Version Not Supported",
}
_STATUS_LINES = {code: f"HTTP/1.1 {code} {reason}\r\n".encode() for code, reason in _REASONS.items()}
_date_cache = [0, b""]


def _date() -> bytes:
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache[0] = now
        _date_cache[1] = b"Date: " + email.utils.formatdate(now, usegmt=True).encode() + b"\r\n"
    return _date_cache[1]  # type: ignore[return-value]


def render_response(
    status: int,
    headers: list[tuple[str, str]],
    body: bytes,
    keep_alive: bool,
    head_only: bool = False,
    content_length: int | None = None,
    chunked: bool = False,
) -> bytes:
    """The response's bytes. ``content_length``: the body is sent apart
    (streamed after these bytes); ``body`` is then empty. ``chunked``: so
    is the body, of a length unknown until it ends (sent chunked)."""
    line = _STATUS_LINES.get(status) or f"HTTP/1.1 {status} Status\r\n".encode()
    parts = [line, _date(), b"Server: lambdalet\r\n"]
    for name, value in headers:
        if "\r" in value or "\n" in value or "\r" in name or "\n" in name:
            raise ValueError(f"header {name!r} contains a line break")
        parts.append(f"{name}: {value}\r\n".encode("latin-1", "replace"))
    if chunked:
        parts.append(b"Transfer-Encoding: chunked\r\n")
    elif status != 204 and status != 304 and not 100 <= status < 200:
        parts.append(b"Content-Length: %d\r\n" % (len(body) if content_length is None else content_length))
    if not keep_alive:
        parts.append(b"Connection: close\r\n")
    parts.append(b"\r\n")
    # 204, 304 and 1xx never carry a body, whatever the handler returned.
    if not head_only and status not in (204, 304) and status >= 200:
        parts.append(body)
    return b"".join(parts)


CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
