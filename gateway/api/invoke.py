"""The Invoke operation on the fast path: no framework between the socket
and the pool."""

from __future__ import annotations

import base64
import binascii
import urllib.parse
from typing import TYPE_CHECKING

import msgspec
import trio

from ..errors import LambdaError, invalid
from ..execution.call_stream import CallStream
from ..execution.pool import Pool
from ..execution.specs import FunctionSpecs
from ..functions.service import FunctionService
from ..http.handler import Reply
from ..http.http1 import Head
from ..ids import request_id as new_request_id
from ..metering import log_lines
from . import operations, streaming

if TYPE_CHECKING:
    from ..events.async_queue import AsyncQueue


SYNC_PAYLOAD_MAX = 6 * 1024 * 1024
ASYNC_PAYLOAD_MAX = 1024 * 1024
INVOCATION_TYPES = ("RequestResponse", "Event", "DryRun")
STREAM_INVOCATION_TYPES = ("RequestResponse", "DryRun")


def body_limit(head: Head) -> int:
    kind = head.header("x-amz-invocation-type", "RequestResponse")
    return ASYNC_PAYLOAD_MAX if kind == "Event" else SYNC_PAYLOAD_MAX


def too_large(head: Head) -> LambdaError:
    return too_large_for(head.header("x-amz-invocation-type") or "RequestResponse")


def too_large_for(kind: str) -> LambdaError:
    """The refusal of a payload past the limit of its invocation type."""
    limit = ASYNC_PAYLOAD_MAX if kind == "Event" else SYNC_PAYLOAD_MAX
    op = "InvokeAsync" if kind == "Event" else "Invoke"
    return LambdaError("RequestTooLargeException", f"Request must be smaller than {limit} bytes for the {op} operation")


class Invoker:
    def __init__(
        self, service: FunctionService, pool: Pool, nursery: trio.Nursery, specs: FunctionSpecs, async_queue: AsyncQueue | None = None
    ) -> None:
        self.service = service
        self.pool = pool
        self.nursery = nursery
        self.specs = specs
        self.spec_for = specs.spec_for
        self.async_queue = async_queue  # Event invokes go through it; None: refused

    async def handle(self, head: Head, function_ref: str, body: bytes) -> Reply:
        query = urllib.parse.parse_qs(head.query) if head.query else {}
        qualifier = query.get("Qualifier", [None])[0]
        ref = urllib.parse.unquote(function_ref)
        try:
            rec = self.service.resolve(ref, qualifier)
        except LambdaError:
            # AWS validates the request before it looks for the function;
            # only a request that found nothing can have broken the model
            # in its name or qualifier, so the fast path skips the check.
            _check_model("Invoke", head, ref, query)
            raise
        kind = head.header("x-amz-invocation-type", "RequestResponse")
        if kind not in INVOCATION_TYPES or head.header("x-amz-log-type", "None") not in ("None", "Tail"):
            _check_model("Invoke", head, ref, query)
        log_type, client_context = _checked(head, body)
        spec = self.spec_for(rec)
        if kind == "DryRun":
            return 204, [("x-amzn-RequestId", new_request_id())], b""
        if kind == "Event":
            if self.async_queue is None:
                raise LambdaError("ServiceException", "The asynchronous queue is not running.")
            # 202 only once the event is committed to queue.db.
            request_id = await self.async_queue.enqueue(rec, body, ref=urllib.parse.unquote(function_ref), qualifier=qualifier)
            return 202, [("x-amzn-RequestId", request_id)], b""
        outcome = await self.pool.invoke(spec, body, client_context)
        headers = [
            ("Content-Type", "application/json"),
            ("x-amzn-RequestId", outcome.request_id),
            ("X-Amz-Executed-Version", rec.version),
        ]
        if outcome.function_error:
            headers.append(("X-Amz-Function-Error", outcome.function_error))
        if log_type == "Tail":
            headers.append(("X-Amz-Log-Result", log_lines.log_result(outcome.log)))
        return 200, headers, outcome.payload

    async def handle_stream(self, head: Head, function_ref: str, body: bytes, error_reply) -> Reply:
        """InvokeWithResponseStream (api/streaming.py)."""
        query = urllib.parse.parse_qs(head.query) if head.query else {}
        ref = urllib.parse.unquote(function_ref)
        try:
            rec = self.service.resolve(ref, query.get("Qualifier", [None])[0])
        except LambdaError:
            _check_model("InvokeWithResponseStream", head, ref, query)
            raise
        kind = head.header("x-amz-invocation-type", "RequestResponse")
        if kind not in STREAM_INVOCATION_TYPES or head.header("x-amz-log-type", "None") not in ("None", "Tail"):
            _check_model("InvokeWithResponseStream", head, ref, query)
        log_type, client_context = _checked(head, body)
        spec = self.spec_for(rec)
        if kind == "DryRun":
            return 204, [("x-amzn-RequestId", new_request_id())], b""
        stream = CallStream()
        request_id = new_request_id()  # in the head, which leaves before the call ends
        self.nursery.start_soon(streaming.start, lambda: self.pool.invoke(spec, body, client_context, request_id, stream), stream)
        return await streaming.answer_invoke(stream, rec.version, log_type == "Tail", request_id, error_reply)


def _checked(head: Head, body: bytes) -> tuple[str, str | None]:
    """The LogType and the client context of an Invoke, with the payload
    checked: Lambda's validation errors for each."""
    log_type = head.header("x-amz-log-type", "None")
    if log_type not in ("None", "Tail"):
        raise invalid(
            f"1 validation error detected: Value '{log_type}' at 'logType' failed to satisfy constraint: Member must satisfy enum value set: [None, Tail]"
        )
    if len(body) > body_limit(head):
        raise too_large(head)
    if body.strip():
        try:
            msgspec.json.decode(body)
        except msgspec.DecodeError as exc:
            raise LambdaError(
                "InvalidRequestContentException", f"Could not parse request body into json: Could not parse payload into json: {exc}"
            ) from None
    return log_type, _client_context(head.header("x-amz-client-context"))


def _check_model(operation: str, head: Head, ref: str, query: dict[str, list[str]]) -> None:
    """An invocation's input against the model: ValidationException if it
    breaks it."""
    operations.check(operations.by_name(operation), {"FunctionName": ref}, query, dict(head.headers), None)


def _client_context(raw: str | None) -> str | None:
    if not raw:
        return None
    try:
        text = base64.b64decode(raw, validate=True).decode()
        msgspec.json.decode(text)
    except (binascii.Error, UnicodeDecodeError, msgspec.DecodeError):
        raise invalid("Client context must be a valid Base64-encoded JSON object.") from None
    if len(raw) > 3583:
        raise invalid("Client context must be no longer than 3583 bytes")
    return text
