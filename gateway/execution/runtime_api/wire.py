"""HTTP/1.1 between a runtime and the Runtime API, as events. Sans-IO.

Runtime clients speak plain HTTP/1.1 with keep-alive: a GET that waits for
the next event, then a POST with the answer. Heads go through gateway/http1's
strict parser; bodies are not collected here but pass through as Data
events, because a response in streaming mode is chunked and ends with
trailers that may carry an error, and a body past the API's limit is
counted and dropped rather than kept (state.py decides).

Replies are rendered here too. The runtime's side needs no Date or Server
header, so the replies every call sends are prebuilt bytes.
"""

from __future__ import annotations

import json
import re

from lambdalet.gateway.http import http1
from lambdalet.gateway.http.http1 import Head as Head  # the requests this module reads are http1's
from lambdalet.gateway.http.http1 import ProtocolError

MAX_HEAD = http1.MAX_HEAD
MAX_CHUNK_LINE = 1024  # a chunk-size line with extensions; anything longer is garbage
MAX_TRAILERS = 64 * 1024
FIELD_CACHE = 8
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


class Request:
    """A request head has arrived; its body follows as Data, then End."""

    __slots__ = ("head",)

    def __init__(self, head: Head) -> None:
        self.head = head


class Data:
    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data


class End:
    """The request is complete. trailers: a chunked body's trailer fields,
    names lower-cased."""

    __slots__ = ("trailers",)

    def __init__(self, trailers: list[tuple[str, str]]) -> None:
        self.trailers = trailers


class Whole:
    """A request that arrived complete: its head, body (as the chunks it was
    sent in) and trailers at once; what Request, Data... and End would have
    said, in one event."""

    __slots__ = ("head", "parts", "trailers")

    def __init__(self, head: Head, parts: list[bytes], trailers: list[tuple[str, str]]) -> None:
        self.head = head
        self.parts = parts
        self.trailers = trailers


class _NeedData:
    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA = _NeedData()

_HEAD, _LENGTH, _CHUNK_LINE, _CHUNK_DATA, _CHUNK_END, _TRAILERS = range(6)


class RequestReader:
    """Feed a connection's bytes; next_event() returns Whole (a request
    complete in what was fed), or Request, Data..., End as a request
    arrives, or NEED_DATA; it raises http1.ProtocolError for bytes that are
    not HTTP."""

    __slots__ = ("_buf", "_state", "_left", "_trailers", "_last_raw", "_last_head", "_fields")

    def __init__(self) -> None:
        self._buf = bytearray()
        self._state = _HEAD
        self._left = 0
        self._trailers: list[tuple[str, str]] = []
        # A runtime sends the same `GET next` head before every call: the
        # last head parsed is kept with its bytes, and identical bytes are
        # not parsed again (Head is never changed once made).
        self._last_raw = b""
        self._last_head: Head | None = None
        # And a runtime's answers differ from one another only in their
        # request line (the request id) and perhaps Content-Length: the
        # header fields of the last few heads are kept by their bytes.
        self._fields: dict[bytes, Head] = {}

    @property
    def buffered(self) -> int:
        return len(self._buf)

    @property
    def idle(self) -> bool:
        """Between requests: no request has begun."""
        return self._state == _HEAD and not self._buf

    def feed(self, data: bytes) -> None:
        self._buf += data

    def next_event(self):
        buf = self._buf
        while True:
            state = self._state
            if state == _HEAD:
                return self._head()
            if state == _LENGTH:
                if not self._left:
                    self._state = _HEAD
                    return End([])
                if not buf:
                    return NEED_DATA
                return Data(self._take(_LENGTH))  # End follows once nothing is left
            if state == _CHUNK_DATA:
                if not buf:
                    return NEED_DATA
                return Data(self._take(_CHUNK_END))
            if state == _CHUNK_END:
                if len(buf) < 2:
                    return NEED_DATA
                if buf[:2] != b"\r\n":
                    raise ProtocolError(400, "malformed chunk")
                del buf[:2]
                self._state = _CHUNK_LINE
            elif state == _CHUNK_LINE:
                end = buf.find(b"\r\n", 0, MAX_CHUNK_LINE)
                if end < 0:
                    if len(buf) >= MAX_CHUNK_LINE:
                        raise ProtocolError(400, "malformed chunk size")
                    return NEED_DATA
                size = _chunk_size(bytes(buf[:end]))
                del buf[: end + 2]
                if size == 0:
                    self._state = _TRAILERS
                else:
                    self._state = _CHUNK_DATA
                    self._left = size
            else:  # _TRAILERS: fields up to a blank line
                end = buf.find(b"\r\n", 0, MAX_TRAILERS)
                if end < 0:
                    if len(buf) >= MAX_TRAILERS:
                        raise ProtocolError(431, "trailers too large")
                    return NEED_DATA
                line = bytes(buf[:end])
                del buf[: end + 2]
                if not line:
                    self._state = _HEAD
                    trailers, self._trailers = self._trailers, []
                    return End(trailers)
                if len(self._trailers) >= http1.MAX_HEADERS:
                    raise ProtocolError(400, "malformed trailer")
                self._trailers.append(_trailer(line))

    def _head(self):
        buf = self._buf
        while buf.startswith(b"\r\n"):  # RFC 9112 2.2: empty lines before a request
            del buf[:2]
        end = buf.find(b"\r\n\r\n", 0, MAX_HEAD + 4)
        if end < 0:
            if len(buf) > MAX_HEAD:
                raise ProtocolError(431, "request head too large")
            return NEED_DATA
        raw = bytes(buf[:end])
        if raw == self._last_raw and self._last_head is not None:
            head = self._last_head
        else:
            head = self._parse(raw)
            if head.method == "GET":  # `next`; heads that name a request id never repeat
                self._last_raw, self._last_head = raw, head
        start = end + 4
        if head.chunked:
            whole = _whole_chunked(buf, start)
            if whole is not None:
                parts, trailers, stop = whole
                del buf[:stop]
                return Whole(head, parts, trailers)
            del buf[:start]
            self._state = _CHUNK_LINE
            self._trailers = []
            return Request(head)
        length = head.content_length
        if len(buf) >= start + length:
            body = bytes(buf[start : start + length])
            del buf[: start + length]
            return Whole(head, [body] if body else [], [])
        del buf[:start]
        self._state = _LENGTH
        self._left = length
        return Request(head)

    def _parse(self, raw: bytes) -> Head:
        line_end = raw.find(b"\r\n")
        fields = self._fields.get(raw[line_end:]) if line_end > 0 else None
        if fields is None:
            head = http1.parse_head(raw)
            if line_end > 0:
                if len(self._fields) >= FIELD_CACHE:
                    self._fields.clear()
                self._fields[raw[line_end:]] = head
            return head
        # Known fields: only the request line is new, and it is parsed (and
        # checked) as strictly as a whole head.
        line = http1.parse_head(raw[:line_end])
        connection = (fields.header("connection") or "").lower()
        keep_alive = False if "close" in connection else True if "keep-alive" in connection else line.keep_alive
        return Head(line.method, line.target, fields.headers, fields.content_length, fields.chunked, keep_alive, fields.expect_continue)

    def _take(self, after: int) -> bytes:
        """Up to the rest of the body (or chunk) from the buffer."""
        buf = self._buf
        left = self._left
        if len(buf) <= left:
            data = bytes(buf)
            buf.clear()
        else:
            data = bytes(buf[:left])
            del buf[:left]
        self._left = left - len(data)
        if not self._left:
            self._state = after
        return data


def _chunk_size(line: bytes) -> int:
    size_text = line.split(b";", 1)[0].strip(b" \t")
    # Hex digits only: int() would also take "0x10", "1_0" and signs.
    if not _CHUNK_SIZE.fullmatch(size_text):
        raise ProtocolError(400, "malformed chunk size")
    return int(size_text, 16)


def _trailer(line: bytes) -> tuple[str, str]:
    name, sep, value = line.decode("latin-1").partition(":")
    value = value.strip(" \t")
    if not sep or not _TOKEN.fullmatch(name) or "\x00" in value:
        raise ProtocolError(400, "malformed trailer")
    return name.lower(), value


def _whole_chunked(buf: bytearray, pos: int) -> tuple[list[bytes], list[tuple[str, str]], int] | None:
    """A chunked body already complete in buf from pos: (its chunks,
    trailers, where it ends); None if more is needed. Malformed input raises as the
    incremental reader would."""
    parts = []
    while True:
        eol = buf.find(b"\r\n", pos, pos + MAX_CHUNK_LINE)
        if eol < 0:
            return None
        size = _chunk_size(bytes(buf[pos:eol]))
        pos = eol + 2
        if size == 0:
            break
        if len(buf) < pos + size + 2:
            return None
        if buf[pos + size : pos + size + 2] != b"\r\n":
            raise ProtocolError(400, "malformed chunk")
        parts.append(bytes(buf[pos : pos + size]))
        pos += size + 2
    trailers: list[tuple[str, str]] = []
    while True:
        eol = buf.find(b"\r\n", pos, pos + MAX_TRAILERS)
        if eol < 0:
            return None
        if eol == pos:
            return parts, trailers, pos + 2
        if len(trailers) >= http1.MAX_HEADERS:
            raise ProtocolError(400, "malformed trailer")
        trailers.append(_trailer(bytes(buf[pos:eol])))
        pos = eol + 2


# -- replies ---------------------------------------------------------------

_REASONS = {
    100: "Continue",
    200: "OK",
    202: "Accepted",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Request Entity Too Large",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    505: "HTTP Version Not Supported",
}
CONTINUE = http1.CONTINUE


def reply(status: int, body: bytes = b"", content_type: str | None = "application/json") -> bytes:
    head = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}\r\n"]
    if content_type is not None:
        head.append(f"Content-Type: {content_type}\r\n")
    head.append(f"Content-Length: {len(body)}\r\n\r\n")
    return "".join(head).encode("latin-1") + body


def error_document(error_type: str, message: str) -> bytes:
    """The API's own error body, as the emulator renders it (Go's JSON
    encoder: errorMessage first, a newline at the end)."""
    return json.dumps({"errorMessage": message, "errorType": error_type}, separators=(",", ":")).encode() + b"\n"


def error_reply(status: int, error_type: str, message: str) -> bytes:
    return reply(status, error_document(error_type, message))


def closing(data: bytes) -> bytes:
    """A rendered reply that also says the connection closes after it."""
    line_end = data.index(b"\r\n") + 2
    return data[:line_end] + b"Connection: close\r\n" + data[line_end:]


ACCEPTED = reply(202, b'{"status":"OK"}\n')


def _header_value(value: str) -> str:
    # Every value here is the platform's own, but one carried from a caller
    # (the client context) must never split a header.
    if "\r" in value or "\n" in value or "\x00" in value:
        raise ValueError("line break in a header value")
    return value


def event_reply(
    request_id: str,
    payload: bytes,
    deadline_ms: int,
    invoked_arn: str,
    trace_id: str,
    client_context: str | None = None,
    cognito_identity: str | None = None,
) -> bytes:
    """`next`'s answer: the event as the body, the call's context as headers."""
    head = (
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        f"Lambda-Runtime-Aws-Request-Id: {_header_value(request_id)}\r\n"
        f"Lambda-Runtime-Deadline-Ms: {int(deadline_ms)}\r\n"
        f"Lambda-Runtime-Invoked-Function-Arn: {_header_value(invoked_arn)}\r\n"
        f"Lambda-Runtime-Trace-Id: {_header_value(trace_id)}\r\n"
    )
    if client_context:
        head += f"Lambda-Runtime-Client-Context: {_header_value(client_context)}\r\n"
    if cognito_identity:
        head += f"Lambda-Runtime-Cognito-Identity: {_header_value(cognito_identity)}\r\n"
    head += f"Content-Length: {len(payload)}\r\n\r\n"
    return head.encode("latin-1") + payload
