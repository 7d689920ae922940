"""Response streaming on the HTTP side: InvokeWithResponseStream, and
function URLs whose InvokeMode is RESPONSE_STREAM.

The call runs in a task of its own and fills a CallStream
(execution/call_stream.py). The request's answer waits only until the
function's streamed answer opens (or the call ends), then its head goes
out and the body follows chunk by chunk as the function writes it:
the first bytes reach the client before the handler has returned.

- InvokeWithResponseStream answers 200 in AWS's event-stream framing
  (api/event_stream.py): PayloadChunk events, then one InvokeComplete
  with ErrorCode (the X-Amz-Function-Error value, "Unhandled") and
  ErrorDetails (the error document) when the function failed, and
  LogResult when LogType is Tail. Content-Type is the function's own
  (what botocore reads as ResponseStreamContentType). A function that
  does not stream gets its whole answer in one PayloadChunk.
- A RESPONSE_STREAM function URL answers chunked: status and headers from
  the prelude a function writes with awslambda.HttpResponseStream.from()
  (else 200 and the stream's content type), then the body. A failure
  before the head is a 502, as with BUFFERED; one after it cuts the
  response short (no final chunk), so a client knows it is incomplete.
"""

from __future__ import annotations

import msgspec

from ..errors import LambdaError
from ..execution.call_stream import CallStream
from ..http.body import StreamAborted
from ..http.handler import Reply
from ..metering import log_lines
from . import event_stream, url_events

PRELUDE_CONTENT_TYPE = "application/vnd.awslambda.http-integration-response"
PRELUDE_DELIMITER = b"\0" * 8
MAX_PRELUDE = 64 * 1024  # status, headers and cookies; the rest of a prelude this long is a broken one


class ChunkedBody:
    """A response body of unknown length, sent chunked as it arrives
    (http/listener.py)."""

    length = None

    def __init__(self, pieces) -> None:
        self._pieces = pieces  # an async iterator of bytes; raises StreamAborted to cut the response

    def chunks(self):
        return self._pieces

    def close(self) -> None:
        # Left unfinished when the client went away: trio finalises the
        # generator, which holds nothing that needs awaiting.
        self._pieces = None


async def start(call, stream: CallStream) -> None:
    """Runs call() (which gives the CallOutcome) into stream."""
    try:
        outcome = await call()
    except LambdaError as exc:
        stream.fail(exc)
    else:
        stream.finish(outcome)


# -- InvokeWithResponseStream -------------------------------------------------


async def _events(stream: CallStream, tail: bool):
    async for data in stream.chunks():
        yield event_stream.payload_chunk(data)
    outcome = stream.outcome
    if outcome is None:  # the platform failed it after it had opened
        error = stream.error
        yield event_stream.invoke_complete("ServiceException", error.message if error else "")
        return
    if not stream.opened and outcome.payload and not outcome.function_error:
        yield event_stream.payload_chunk(outcome.payload)
    log = log_lines.log_result(outcome.log) if tail else None
    if outcome.function_error:
        yield event_stream.invoke_complete(outcome.function_error, outcome.payload.decode("utf-8", "replace"), log)
    else:
        yield event_stream.invoke_complete(None, None, log)


async def answer_invoke(stream: CallStream, version: str, tail: bool, request_id: str, error_reply) -> Reply:
    """The InvokeWithResponseStream reply, once the stream opens or the
    call ends. error_reply turns a LambdaError into a reply."""
    await stream.started()
    if stream.error is not None and not stream.opened:
        return error_reply(stream.error, request_id)
    headers = [
        ("Content-Type", stream.content_type or "application/octet-stream"),
        ("X-Amz-Executed-Version", version),
        ("x-amzn-RequestId", request_id),
    ]
    return 200, headers, ChunkedBody(_events(stream, tail))


# -- function URLs --------------------------------------------------------------


async def _prelude(stream: CallStream, pieces) -> tuple[bytes, bytes]:
    """The prelude and what followed it in the same chunks."""
    held = b""
    async for data in pieces:
        held += data
        end = held.find(PRELUDE_DELIMITER)
        if end >= 0:
            return held[:end], held[end + len(PRELUDE_DELIMITER) :]
        if len(held) > MAX_PRELUDE:
            break
    raise url_events.BadResponse("no end to the prelude")


async def _body(first: bytes, pieces, stream: CallStream):
    if first:
        yield first
    async for data in pieces:
        yield data
    outcome = stream.outcome
    if outcome is None or outcome.function_error:
        raise StreamAborted()


async def answer_url(stream: CallStream, request_id: str, extra: list[tuple[str, str]], internal_error) -> Reply:
    """A RESPONSE_STREAM URL's reply, once the stream opens or the call
    ends. internal_error() is the 502 (or the platform's refusal)."""
    await stream.started()
    if not stream.opened:
        if stream.error is not None:
            return internal_error(stream.error)
        outcome = stream.outcome
        assert outcome is not None  # ended without an error: finish() set it
        if outcome.function_error:
            return internal_error(None)
        # An answer that was not streamed goes out as it came.
        return 200, [("Content-Type", "application/json"), ("x-amzn-RequestId", request_id), *extra], outcome.payload
    pieces = stream.chunks()
    first = b""
    if stream.content_type == PRELUDE_CONTENT_TYPE:
        try:
            prelude, first = await _prelude(stream, pieces)
            status, headers = url_events.head_from_prelude(prelude)
        except (url_events.BadResponse, msgspec.DecodeError):
            return internal_error(None)
    else:
        status, headers = 200, [("Content-Type", stream.content_type or "application/octet-stream")]
    headers += [("x-amzn-RequestId", request_id), *extra]
    return status, headers, ChunkedBody(_body(first, pieces, stream))
