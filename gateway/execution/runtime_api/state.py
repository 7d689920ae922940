"""The Runtime API's rules for one execution environment. Sans-IO.

`RuntimeApi` takes what arrives on the runtime's connections (wire.py's
events, tagged with a connection number) and the calls the pool hands in,
and returns outputs (outputs.py): bytes to send on a connection, and what
the pool needs to know (init is done or failed, a call's answer). Nothing here
touches a socket or a clock, so tests drive every rule directly.

The rules are the Runtime Interface Emulator's (AWS's open-source copy of
the service's runtime-facing side), state for state:

    Started --next--> Ready --call--> Running --POST response/error--> ResponseSent --next--> Ready ...
       \\--POST init/error--> InitError

- `next` parks until a call arrives; several may wait (FIFO). The first
  `next` ends init. `next` while a call is open answers that same call
  again, as the emulator does; after init/error, or while an answer is
  being read, it is refused with 403 InvalidStateTransition.
- An answer (`response`, `error`) for any id but the open call's, or for a
  call already answered, is 400 InvalidRequestID.
- A response over MAX_RESPONSE bytes gets 413 RequestEntityTooLarge, and
  the caller Function.ResponseSizeTooLarge (as soon as the limit is
  crossed; the rest of the body is read and dropped). An error body, or an
  init error, over MAX_ERROR_BODY gets 413 and changes nothing.
- `init/error` is accepted only before the first `next`; the caller gets
  the posted body and the error type from Lambda-Runtime-Function-Error-Type
  (runtime_errors.py reads the error reports).
- Lambda-Runtime-Function-Response-Mode: streaming takes a chunked body;
  its trailers Lambda-Runtime-Function-Error-Type and -Error-Body (base64)
  turn it into an error. Its head (StreamOpened, with its content type)
  and its chunks (StreamData) are also passed on as they arrive, for a
  caller that streams.
"""

from __future__ import annotations

import collections
import enum

from . import wire
from .outputs import Answered, Close, InitDone, InitFailed, Send, StreamData, StreamOpened
from .runtime_errors import ERROR_CAUSE_CONTENT_TYPE, ERROR_TYPE_HEADER, platform_error, trailer_error, valid_error_type, without_cause

API = "/2018-06-01"
NEXT_PATH = API + "/runtime/invocation/next"
INIT_ERROR_PATH = API + "/runtime/init/error"
INVOCATION_PREFIX = API + "/runtime/invocation/"
PING_PATH = API + "/ping"

MAX_RESPONSE = 6 * 1024 * 1024 + 100  # the emulator's MaxPayloadSize: 6291556 bytes
MAX_ERROR_BODY = 1024 * 1024  # /error and /init/error bodies (the emulator's request limit)
# A body past its limit is read and dropped so that the runtime sees the 413;
# a runtime that keeps sending past this much more has its connection closed.
MAX_DRAIN = 64 * 1024 * 1024

RESPONSE_MODE_HEADER = "lambda-runtime-function-response-mode"

OVERSIZED_TYPE = "Function.ResponseSizeTooLarge"
OVERSIZED_MESSAGE = f"Response payload size exceeded maximum allowed payload size ({MAX_RESPONSE} bytes)."
TRUNCATED_TYPE = "Runtime.TruncatedResponse"
BAD_MODE_TYPE = "Runtime.InvalidResponseModeHeader"


class State(enum.Enum):
    # The emulator's state names: they appear in 403 messages.
    STARTED = "Started"
    INIT_ERROR = "InitError"
    READY = "Ready"
    RUNNING = "Running"
    RESPONDING = "InvocationResponse"
    ERRORING = "InvocationErrorResponse"
    RESPONSE_SENT = "RuntimeResponseSentState"


class Invocation:
    """One call as `next` hands it out."""

    __slots__ = ("request_id", "payload", "deadline_ms", "invoked_arn", "trace_id", "client_context", "cognito_identity", "_rendered")

    def __init__(
        self,
        request_id: str,
        payload: bytes,
        deadline_ms: int,
        invoked_arn: str,
        trace_id: str,
        client_context: str | None = None,
        cognito_identity: str | None = None,
    ) -> None:
        self.request_id = request_id
        self.payload = payload
        self.deadline_ms = deadline_ms
        self.invoked_arn = invoked_arn
        self.trace_id = trace_id
        self.client_context = client_context
        self.cognito_identity = cognito_identity
        self._rendered: bytes | None = None

    def rendered(self) -> bytes:
        if self._rendered is None:
            self._rendered = wire.event_reply(
                self.request_id, self.payload, self.deadline_ms, self.invoked_arn, self.trace_id, self.client_context, self.cognito_identity
            )
        return self._rendered


# -- the rules -----------------------------------------------------------------

_NEXT, _RESPONSE, _ERROR, _INIT_ERROR, _PING, _REFUSED = range(6)


class _Reading:
    """The request being read on one connection."""

    __slots__ = (
        "kind",
        "request_id",
        "parts",
        "size",
        "limit",
        "over",
        "streaming",
        "refusal",
        "error_type",
        "content_type",
        "keep_alive",
        "expect_continue",
    )

    def __init__(self, kind: int, head: wire.Head, request_id: str = "", limit: int = 0, refusal: bytes = b"") -> None:
        self.kind = kind
        self.request_id = request_id
        self.parts: list[bytes] = []
        self.size = 0
        self.limit = limit
        self.over = False
        self.streaming = False
        self.refusal = refusal  # the reply, when the request is refused whatever its body
        self.error_type = ""
        self.content_type = ""
        self.keep_alive = head.keep_alive
        self.expect_continue = head.expect_continue


def _not_allowed(frm: State, to: str) -> bytes:
    return wire.error_reply(
        403,
        "InvalidStateTransition",
        f"State transition from {frm.value} to {to} failed for runtime. Error: State transition is not allowed",
    )


INVALID_REQUEST_ID = wire.error_reply(400, "InvalidRequestID", "Invalid request ID")
TOO_LARGE = wire.error_reply(413, "RequestEntityTooLarge", f"Exceeded maximum allowed payload size ({MAX_RESPONSE} bytes).")
BAD_MODE = wire.error_reply(400, "InvalidFunctionResponseMode", "Invalid function response mode")
NOT_FOUND = wire.reply(404, b"404 page not found\n", "text/plain; charset=utf-8")
NOT_ALLOWED_METHOD = wire.reply(405, b"", None)
PONG = wire.reply(200, b"pong", "text/plain; charset=utf-8")


class RuntimeApi:
    def __init__(self, *, max_response: int = MAX_RESPONSE, max_error_body: int = MAX_ERROR_BODY, max_drain: int = MAX_DRAIN) -> None:
        self.state = State.STARTED
        self.max_response = max_response
        self.max_error_body = max_error_body
        self.max_drain = max_drain
        self.current: Invocation | None = None  # the open call, handed out or waiting for a `next`
        self.delivered = False  # whether current has been handed out
        # Connections parked in `next`, oldest first, each with whether it
        # closes after its answer.
        self._waiting: collections.OrderedDict[int, bool] = collections.OrderedDict()
        self._reading: dict[int, _Reading] = {}

    # -- what the pool asks -----------------------------------------------------

    def parked(self, conn: int) -> bool:
        """Whether conn waits in `next` (and so its later requests wait too:
        HTTP/1.1 answers a connection's requests in order)."""
        return conn in self._waiting

    def invoke(self, call: Invocation) -> list:
        """Hand a call to the runtime: at once to a waiting `next`, else to
        the next one that arrives."""
        if self.current is not None:
            raise RuntimeError(f"call {self.current.request_id} is still open")
        if self.state in (State.STARTED, State.INIT_ERROR):
            raise RuntimeError(f"a call before init is over ({self.state.value})")
        self.current = call
        self.delivered = False
        return self._deliver()

    def _deliver(self) -> list:
        if self.current is None or self.delivered or not self._waiting:
            return []
        conn, close = self._waiting.popitem(last=False)
        self.delivered = True
        self.state = State.RUNNING
        return [Send(conn, self.current.rendered(), delivers=self.current.request_id, close=close)]

    def _close_call(self) -> None:
        """The caller has its outcome; the runtime may still be sending."""
        self.current = None
        self.delivered = False

    # -- what the runtime sends -------------------------------------------------

    def receive(self, conn: int, event) -> list:
        """One wire event from connection conn."""
        kind = type(event)
        if kind is wire.Whole:
            out = self._head(conn, event.head)
            for part in event.parts:
                if conn not in self._reading:  # closed for sending too much
                    return out
                out += self._data(conn, part)
            if conn in self._reading:
                out += self._end(conn, event.trailers)
            return out
        if kind is wire.Data:
            return self._data(conn, event.data)
        if kind is wire.End:
            return self._end(conn, event.trailers)
        return self._head(conn, event.head)

    def closed(self, conn: int) -> list:
        """Connection conn is gone (the runtime closed it, or it was closed)."""
        self._waiting.pop(conn, None)
        reading = self._reading.pop(conn, None)
        if reading is None or reading.refusal:
            return []
        if reading.kind == _RESPONSE:
            self.state = State.RESPONSE_SENT
            if reading.over:
                return []  # the caller has its answer already
            # Cut off mid-response: the emulator's truncated response.
            self._close_call()
            return [Answered(reading.request_id, platform_error(TRUNCATED_TYPE, "Runtime sent a truncated response"), TRUNCATED_TYPE)]
        if reading.kind == _ERROR:
            self.state = State.RUNNING  # the error never arrived: the call is still open
        return []

    def _head(self, conn: int, head: wire.Head) -> list:
        if conn in self._reading or conn in self._waiting:
            raise RuntimeError("a request on a connection before its previous request was answered")
        path = head.path
        method = head.method
        out: list = []
        if path == NEXT_PATH:
            reading = _Reading(_NEXT, head) if method == "GET" else _Reading(_REFUSED, head, refusal=NOT_ALLOWED_METHOD)
        elif path.startswith(INVOCATION_PREFIX) and path.endswith(("/response", "/error")):
            request_id, _, action = path[len(INVOCATION_PREFIX) :].rpartition("/")
            if not request_id or "/" in request_id:
                reading = _Reading(_REFUSED, head, refusal=NOT_FOUND)
            elif method != "POST":
                reading = _Reading(_REFUSED, head, refusal=NOT_ALLOWED_METHOD)
            else:
                reading = self._answer_head(head, request_id, action, out)
        elif path == INIT_ERROR_PATH:
            if method != "POST":
                reading = _Reading(_REFUSED, head, refusal=NOT_ALLOWED_METHOD)
            elif self.state is not State.STARTED:
                reading = _Reading(_REFUSED, head, refusal=_not_allowed(self.state, State.INIT_ERROR.value))
            else:
                reading = _Reading(_INIT_ERROR, head, limit=self.max_error_body)
                reading.error_type = valid_error_type(head.header(ERROR_TYPE_HEADER))
                reading.over = not head.chunked and head.content_length > reading.limit
        elif path == PING_PATH:
            reading = _Reading(_PING, head) if method == "GET" else _Reading(_REFUSED, head, refusal=NOT_ALLOWED_METHOD)
        else:
            reading = _Reading(_REFUSED, head, refusal=NOT_FOUND)
        self._reading[conn] = reading
        return out

    def _answer_head(self, head: wire.Head, request_id: str, action: str, out: list) -> _Reading:
        """A POST .../{id}/response or .../{id}/error: taken only for the
        open call, handed out and not yet being answered."""
        call = self.current
        if call is None or request_id != call.request_id or not self.delivered or self.state is not State.RUNNING:
            return _Reading(_REFUSED, head, refusal=INVALID_REQUEST_ID)
        declared_over = not head.chunked and head.content_length
        if action == "error":
            self.state = State.ERRORING
            reading = _Reading(_ERROR, head, request_id, limit=self.max_error_body)
            reading.error_type = valid_error_type(head.header(ERROR_TYPE_HEADER))
            reading.content_type = head.header("content-type") or ""
            reading.over = bool(declared_over) and head.content_length > reading.limit
            return reading
        mode = head.header(RESPONSE_MODE_HEADER)
        if mode and mode != "streaming":
            # The caller gets the error at once, the runtime a 400 when its
            # body has been read, and the call is over.
            self.state = State.RESPONSE_SENT
            self._close_call()
            out.append(Answered(request_id, platform_error(BAD_MODE_TYPE, "Invalid function response mode"), BAD_MODE_TYPE))
            return _Reading(_REFUSED, head, refusal=BAD_MODE)
        self.state = State.RESPONDING
        reading = _Reading(_RESPONSE, head, request_id, limit=self.max_response)
        reading.streaming = mode == "streaming"
        if reading.streaming:
            out.append(StreamOpened(request_id, head.header("content-type") or "application/octet-stream"))
        if declared_over and head.content_length > reading.limit:
            reading.over = True
            out.append(self._oversized(reading))
        return reading

    def _data(self, conn: int, data: bytes) -> list:
        reading = self._reading[conn]
        reading.size += len(data)
        if reading.size > reading.limit + self.max_drain:
            # What is past a limit is read and dropped, up to a point.
            return [Close(conn)] + self.closed(conn)
        if reading.over or reading.refusal or reading.kind in (_NEXT, _PING):
            return []  # dropped: the reply does not depend on it
        if reading.size > reading.limit:
            reading.over = True
            reading.parts.clear()
            return [self._oversized(reading)] if reading.kind == _RESPONSE else []
        reading.parts.append(data)
        if reading.streaming:
            return [StreamData(reading.request_id, data)]
        return []

    def _oversized(self, reading: _Reading) -> Answered:
        """The caller learns at once; the runtime gets its 413 when its body
        ends (the emulator's RequestEntityTooLarge)."""
        self._close_call()
        return Answered(reading.request_id, platform_error(OVERSIZED_TYPE, OVERSIZED_MESSAGE), OVERSIZED_TYPE)

    def _end(self, conn: int, trailers: list[tuple[str, str]]) -> list:
        reading = self._reading.pop(conn)
        kind = reading.kind
        close = not reading.keep_alive
        if reading.refusal:
            return [Send(conn, reading.refusal, close=close)]
        if kind == _NEXT:
            return self._next(conn, close)
        if kind == _PING:
            return [Send(conn, PONG, close=close)]
        if kind == _RESPONSE:
            self.state = State.RESPONSE_SENT
            if reading.over:
                return [Send(conn, TOO_LARGE, close=close)]
            self._close_call()
            body = b"".join(reading.parts)
            error = trailer_error(trailers) if reading.streaming else None
            answer = Answered(reading.request_id, body, None) if error is None else Answered(reading.request_id, error[1], error[0])
            return [Send(conn, wire.ACCEPTED, close=close), answer]
        if kind == _ERROR:
            if reading.over:
                self.state = State.RUNNING  # refused: the call stays open for another answer
                return [Send(conn, TOO_LARGE, close=close)]
            self.state = State.RESPONSE_SENT
            self._close_call()
            body = b"".join(reading.parts)
            if reading.content_type == ERROR_CAUSE_CONTENT_TYPE:
                body = without_cause(body)
            return [Send(conn, wire.ACCEPTED, close=close), Answered(reading.request_id, body, reading.error_type)]
        # _INIT_ERROR
        if reading.over:
            return [Send(conn, TOO_LARGE, close=close)]
        if self.state is not State.STARTED:  # a `next` came first, on another connection
            return [Send(conn, _not_allowed(self.state, State.INIT_ERROR.value), close=close)]
        self.state = State.INIT_ERROR
        return [Send(conn, wire.ACCEPTED, close=close), InitFailed(reading.error_type, b"".join(reading.parts))]

    def _next(self, conn: int, close: bool) -> list:
        state = self.state
        if state is State.RUNNING:
            # The emulator answers a second `next` with the open call again.
            assert self.current is not None
            return [Send(conn, self.current.rendered(), close=close)]
        if state in (State.INIT_ERROR, State.RESPONDING, State.ERRORING):
            return [Send(conn, _not_allowed(state, State.READY.value), close=close)]
        out: list = []
        if state is State.STARTED:
            out.append(InitDone())
        self.state = State.READY
        self._waiting[conn] = close
        return out + self._deliver()
